"""One hunt over an index connection: working tables, signals, ranking (shared by every mode)."""

from __future__ import annotations

import datetime as dt

import duckdb

from mailwarden.config import SiteConfig
from mailwarden.errors import MailwardenError
from mailwarden.hunt import tables
from mailwarden.hunt.geoip import country_lookup
from mailwarden.hunt.model import HuntResult
from mailwarden.hunt.rank import rank, summarise
from mailwarden.hunt.settings import HuntSettings
from mailwarden.hunt.tables import Context, Window


def window_for_last(con: duckdb.DuckDBPyConnection, last: dt.timedelta,
                    until: dt.datetime | None = None) -> Window:
    """The final ``last`` of the data (logs are often old: "now" would select nothing)."""
    if until is None:
        (until,) = con.execute("SELECT max(coalesce(end_ts, start_ts)) FROM sessions").fetchall()[0]
        if until is None:
            return Window()
        until = until + dt.timedelta(microseconds=1)
    return Window(since=until - last, until=until)


def run_hunt(con: duckdb.DuckDBPyConnection, *, site: SiteConfig, settings: HuntSettings,
             window: Window | None = None, inputs: list[str] | None = None,
             db: str | None = None, country_of=None) -> tuple[HuntResult, Context]:
    """Build the working tables and rank the suspects; returns the result and its context."""
    ctx = Context(site=site, window=window or Window())
    if country_of is None and settings.geoip is not None:
        country_of = country_lookup(settings.geoip, ctx.notes)
    elif country_of is None:
        ctx.notes.append("no GeoIP file (--geoip / [hunt] geoip): countries not scored")
    ctx.geoip_loaded = country_of is not None
    try:
        tables.build(con, ctx, country_of)
        suspects = rank(con, ctx, settings)
        return summarise(con, suspects, ctx, settings, inputs or [], db), ctx
    except duckdb.Error as exc:
        # An index from another mailwarden version, or a bug: one line, not a traceback.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MailwardenError(f"hunt query failed: {first}") from exc
