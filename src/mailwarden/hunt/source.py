"""Where a hunt reads from: an existing log index (``--db``) or logs loaded into memory.

Both give a DuckDB connection holding the index tables of ``logs/schema.sql``;
everything after that (``tables.build``, the signals, the report) is one code
path. Logs are loaded with the index's own loader (``mailwarden.logs.index``),
so the columnar Postfix path and the Python readers for Exim/MDaemon are the
same ones ``logs index`` uses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mailwarden import output
from mailwarden.errors import ConfigError, InputError

REQUIRED_TABLES = ("sessions", "transactions", "recipients", "auth_events", "rejects")


def open_index(db: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Open a ``logs index`` database read-only (hunt only creates TEMP tables)."""
    path = Path(db)
    if not path.is_file():
        raise InputError(f"no log index at {path} (build one with `mailwarden logs index LOG... --db {path}`)")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise InputError(f"cannot open {path} as a DuckDB log index: {_first_line(exc)}") from None
    check_tables(con, str(path))
    return con


def check_tables(con: duckdb.DuckDBPyConnection, where: str) -> None:
    have = {name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    missing = [t for t in REQUIRED_TABLES if t not in have]
    if missing:
        raise InputError(f"{where} is not a mailwarden log index (missing tables: {', '.join(missing)})")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class Loaded:
    """An index connection ready for a hunt, and what went into it."""

    con: duckdb.DuckDBPyConnection
    inputs: list[str] = field(default_factory=list)
    db: str | None = None
    problems: list[str] = field(default_factory=list)   # inputs that could not be loaded


@contextlib.contextmanager
def hunt_source(logs: list[str] | None, db: str | os.PathLike[str] | None, *, fmt: str | None = None,
                year: int | None = None, show_progress: bool = True, transcripts: bool = True,
                columns: Mapping[str, Collection[str]] | None = None) -> Iterator[Loaded]:
    """``--db FILE`` opened read-only, or LOG files loaded into a temporary index.

    ``transcripts=False``: the temporary index keeps no raw lines (no session transcripts),
    which a hunt does not show and which cost a tenth of the load. ``columns``: it keeps only
    these (`logs.index.index_logs`).
    """
    if db is not None and logs:
        raise ConfigError("give LOG files or --db FILE, not both")
    if db is not None:
        con = open_index(db)
        try:
            yield Loaded(con, db=str(db))
        finally:
            con.close()
        return
    with tempfile.TemporaryDirectory(prefix="mailwarden-hunt-") as tmp:
        loaded = load_logs(list(logs or []), os.path.join(tmp, "hunt.duckdb"), fmt=fmt, year=year,
                           show_progress=show_progress, transcripts=transcripts, columns=columns)
        try:
            yield loaded
        finally:
            loaded.con.close()


def load_logs(paths: list[str], db_path: str, *, fmt: str | None = None, year: int | None = None,
              show_progress: bool = True, transcripts: bool = True,
              columns: Mapping[str, Collection[str]] | None = None) -> Loaded:
    """Load LOG files with the index loader (``logs index``) into ``db_path`` and open it."""
    if not paths:
        raise ConfigError("give LOG files to read, or --db FILE")
    for p in paths:
        if p != "-" and not Path(p).exists():
            raise InputError(f"no such log file: {p}")
    from mailwarden.logs.index import index_logs

    total = sum(Path(p).stat().st_size for p in paths if p != "-")
    with output.progress(bytes_mode=True, disable=None if show_progress else True) as bar:
        task = bar.add_task("loading logs", total=total or None)

        def advance(what: str, done_bytes: int) -> None:
            bar.update(task, completed=done_bytes, description=what[:40])

        # a throw-away index read by whole-table scans only: no look-up indexes
        summary = index_logs(db_path, paths, year=year, fmt=fmt or "auto", progress=advance,
                             transcripts=transcripts, lookup_tables=False, columns=columns)
    problems = [r.message if (r.message or "").startswith(r.path) else f"{r.path}: {r.message or r.status}"
                for r in summary.sources if r.status == "failed"]
    if problems and len(problems) == len(summary.sources):
        raise InputError("; ".join(problems))
    con = duckdb.connect(db_path, read_only=True)
    check_tables(con, "the temporary index")
    return Loaded(con, inputs=list(paths), problems=problems)


# -- time window ---------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``24h``, ``7d``, ``2w`` -> timedelta."""
    m = _DURATION.match(text or "")
    if not m:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90m, 24h, 7d)")
    return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def parse_time(text: str) -> dt.datetime:
    """``2026-11-20``, ``2026-11-20 10:00``, ``2026-11-20T10:00:00`` -> naive server-local time."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"not a date/time: {text!r} (use e.g. 2026-11-20 or 2026-11-20T10:00)") from None
    return value.replace(tzinfo=None)

