"""The library path: hunt_source + run_hunt, with injected collaborators (GeoIP)."""

from __future__ import annotations

import pytest

from mailwarden.config import SiteConfig
from mailwarden.errors import ConfigError, InputError
from mailwarden.hunt.engine import run_hunt
from mailwarden.hunt.geoip import country_lookup
from mailwarden.hunt.settings import HuntSettings
from mailwarden.hunt.source import hunt_source, parse_duration, parse_time
from tests.conftest import DATA

LOG = str(DATA / "hunt" / "postfix-spambots.log")
COUNTRY = {"198.18.7.21": "NG", "100.64.9.33": "BR", "203.0.113.201": "VN", "192.0.2.150": "DE",
           "192.0.2.10": "DE", "192.0.2.44": "DE"}


def test_countries_are_scored_when_a_lookup_is_given():
    with hunt_source([LOG], None, year=2026, show_progress=False) as src:
        result, ctx = run_hunt(src.con, site=SiteConfig(), settings=HuntSettings(),
                               inputs=src.inputs, country_of=COUNTRY.get)
    assert ctx.geoip_loaded
    carol = next(s for s in result.suspects if s.name == "carol@example.com")
    countries = carol.signal("countries")
    assert countries.value == 4
    assert countries.numbers["examples"] == ["BR", "DE", "NG", "VN"]
    alice = [s for s in result.suspects if s.name == "alice@example.com"]
    assert not alice or alice[0].signal("countries") is None


def test_only_account_ips_are_looked_up():
    # the same countries, from look-ups of the IPs AUTH users came from only
    asked: list[str] = []

    def lookup(ip):
        asked.append(ip)
        return COUNTRY.get(ip)

    with hunt_source([LOG], None, year=2026, show_progress=False) as src:
        result, _ctx = run_hunt(src.con, site=SiteConfig(), settings=HuntSettings(), country_of=lookup)
        all_ips = {ip for (ip,) in src.con.execute("SELECT DISTINCT client_ip FROM sessions "
                                                   "WHERE client_ip IS NOT NULL").fetchall()}
    carol = next(s for s in result.suspects if s.name == "carol@example.com")
    assert carol.signal("countries").numbers["examples"] == ["BR", "DE", "NG", "VN"]
    assert set(COUNTRY) - {"192.0.2.10", "192.0.2.44"} <= set(asked)
    assert len(set(asked)) == len(asked) and set(asked) < all_ips   # once each, and not every client


def test_without_geoip_the_result_says_so():
    with hunt_source([LOG], None, year=2026, show_progress=False) as src:
        result, ctx = run_hunt(src.con, site=SiteConfig(), settings=HuntSettings())
    assert not ctx.geoip_loaded
    assert any("countries not scored" in n for n in result.notes)
    assert all(s.signal("countries") is None for s in result.suspects)


def test_geoip_file_errors(tmp_path):
    notes: list[str] = []
    assert country_lookup(None, notes) is None and notes
    with pytest.raises(InputError, match="not found"):
        country_lookup(str(tmp_path / "none.mmdb"), [])
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a maxmind database" * 10)
    with pytest.raises(InputError, match="cannot read GeoIP"):
        country_lookup(str(bogus), [])


def test_local_domains_from_config_replace_inference():
    site = SiteConfig().with_overrides(local_domains=["example.com"])
    with hunt_source([LOG], None, year=2026, show_progress=False) as src:
        result, ctx = run_hunt(src.con, site=site, settings=HuntSettings())
    assert not ctx.local_domains_inferred and ctx.local_domains == ["example.com"]
    assert not any("inferred" in n for n in result.notes)


def test_time_parsing():
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("7d").days == 7
    assert parse_time("2026-11-20T10:00:00+01:00").tzinfo is None
    for bad in ("", "10", "1y", "9" * 30):
        with pytest.raises(ConfigError):
            parse_duration(bad)



@pytest.mark.parametrize("loader", ["compiled", "sql"])
def test_a_hunt_from_logs_keeps_only_the_columns_it_reads(tmp_path, monkeypatch, loader):
    # `hunt LOG` narrows its throw-away index to tables.COLUMNS_READ: the kept columns hold what
    # a full load holds, the others are gone (a hunt query of one would fail to bind, and every
    # hunt-from-LOG test would fail with it)
    import duckdb

    from mailwarden.hunt.tables import COLUMNS_READ
    from mailwarden.logs import columnar_postfix
    from mailwarden.logs.index import index_logs

    if loader == "sql":  # the loader without the C extension
        monkeypatch.setattr(columnar_postfix, "_pfscan", None)
    full, narrow = tmp_path / "full.duckdb", tmp_path / "narrow.duckdb"
    index_logs(full, [LOG], year=2026)
    summary = index_logs(narrow, [LOG], year=2026, transcripts=False, lookup_tables=False, columns=COLUMNS_READ)
    assert [s.status for s in summary.sources] == ["loaded"]
    with duckdb.connect(str(full), read_only=True) as f, duckdb.connect(str(narrow), read_only=True) as n:
        for table, names in COLUMNS_READ.items():
            have = {c for (c,) in n.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?",
                                            [table]).fetchall()}
            assert have == {*names, "source_id"}, table
            cols = ", ".join(f'"{c}"' for c in sorted(have))
            sql = f"SELECT {cols} FROM {table} ORDER BY ALL"
            assert n.execute(sql).fetchall() == f.execute(sql).fetchall(), table
        assert n.execute("SELECT count(*) FROM sessions").fetchone()[0] > 20


def test_only_a_new_index_is_narrowed(tmp_path):
    from mailwarden.hunt.tables import COLUMNS_READ
    from mailwarden.logs.index import index_logs

    db = tmp_path / "idx.duckdb"
    index_logs(db, [LOG], year=2026)
    with pytest.raises(ValueError, match="narrows only a new index"):
        index_logs(db, [LOG], year=2026, columns=COLUMNS_READ, lookup_tables=False)
    assert index_logs(db, [LOG], year=2026).sources[0].status == "skipped"  # nothing was dropped
