"""The working tables and the SQL side of the signals, on a few hand-made index rows."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

import duckdb
import pytest

from mailwarden.config import SiteConfig
from mailwarden.hunt import tables
from mailwarden.hunt.ingest import create_index
from mailwarden.hunt.rank import run_signal
from mailwarden.hunt.settings import HuntSettings
from mailwarden.hunt.signals import SIGNALS
from mailwarden.hunt.tables import Context

T0 = dt.datetime(2026, 3, 1, 8, 0)

# Dotted quads go through SQL, the rest through Python: both must say what ipaddress says.
ODD_IPS = ["10.1.2.3", "010.001.2.3", "300.1.2.3", "1.2.3", "unknown", "2001:db8:1:2::5",
           "2a00:1450:4001:81c::200e", "::ffff:192.168.0.9", "::ffff:0.0.0.0", "fe80::1%eth0",
           "fd00::1", "::1", "::", "::5", "127.0.0.1", "8.8.8.8"]


def _index() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    create_index(con)
    return con


def _session(con, sid: int, ip: str | None, *, helo: str | None = None, kind: str = "smtp",
             minutes: int = 0) -> None:
    con.execute("INSERT INTO sessions (session_id, source_id, dialect, source, kind, start_ts, client_ip, "
                "helo, first_lineno, last_lineno) VALUES (?, 1, 'postfix', 'mail.log', ?, ?, ?, ?, ?, ?)",
                [sid, kind, T0 + dt.timedelta(minutes=minutes), ip, helo, sid, sid])


def _expected(ip: str, site: SiteConfig) -> tuple[bool, bool, str | None]:
    """(trusted, private, network) the way the first version of tables.py worked them out.
    A dotted quad is read as four numbers (in SQL), so "010.001.2.3" is 10.1.2.3, not junk."""
    octets = ip.split(".")
    if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", ip) and all(int(o) < 256 for o in octets):
        ip = ".".join(str(int(o)) for o in octets)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False, False, None
    private = addr.is_private or addr.is_loopback or addr.is_link_local
    trusted = site.is_trusted_ip(addr) if site.trusted_networks else private
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return trusted, private, str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@pytest.mark.parametrize("trusted_nets", [[], ["10.0.0.0/8", "2001:db8::/32"]])
def test_every_client_ip_is_classified_like_ipaddress_does(trusted_nets):
    con = _index()
    for i, ip in enumerate(ODD_IPS):
        _session(con, i + 1, ip)
    site = SiteConfig(trusted_networks=[ipaddress.ip_network(n) for n in trusted_nets])
    tables.build(con, Context(site=site))
    got = {ip: (trusted, private, network, ignored) for ip, trusted, private, network, ignored in
           con.execute("SELECT ip, trusted, private, network, ignored FROM hw_ips").fetchall()}
    assert set(got) == set(ODD_IPS)
    for ip in ODD_IPS:
        assert got[ip] == (*_expected(ip, site), ip in ("127.0.0.1", "::1")), ip


def test_gate_is_applied_in_sql():
    # suspicious-helo counts only from MIN_SESSIONS_FOR_HELO (3) bad HELOs on: the IP with two
    # does not even come back from the query.
    con = _index()
    sid = 0
    for ip, n in (("198.51.100.2", 2), ("198.51.100.3", 3)):
        for _ in range(n):
            sid += 1
            _session(con, sid, ip, helo="DESKTOP-1A2B3C", minutes=sid)
    tables.build(con, Context(site=SiteConfig()))
    settings = HuntSettings()
    rows, _ = run_signal(con, SIGNALS.get("suspicious-helo"), settings,
                         settings.threshold("suspicious-helo"))
    assert [(r["subject"], r["sessions_bad"]) for r in rows] == [("198.51.100.3", 3)]


def test_equal_counts_are_broken_the_same_way_every_run():
    # rejects: the most frequent reason, of equals the first; rate-burst: of equal hours the first.
    con = _index()
    reasons = ["Service unavailable", "Relay access denied"] * 15
    con.executemany("INSERT INTO rejects (source_id, ts, client_ip, reason, lineno) VALUES (1, ?, ?, ?, ?)",
                    [(T0 + dt.timedelta(seconds=i), "203.0.113.9", r, i + 1) for i, r in enumerate(reasons)])
    _session(con, 1, "203.0.113.9")
    con.execute("UPDATE sessions SET auth_user = 'eve@example.com'")
    con.executemany("INSERT INTO transactions (session_id, source_id, txn_id, accepted, start_ts) "
                    "VALUES (1, 1, ?, true, ?)",
                    [(i + 1, T0 + dt.timedelta(hours=h, minutes=i % 50))
                     for i, h in enumerate([0] * 25 + [1] * 25 + [2] * 2)])
    tables.build(con, Context(site=SiteConfig()))
    settings = HuntSettings()
    for _ in range(3):
        rows, _ = run_signal(con, SIGNALS.get("rejects"), settings, 1)
        assert rows[0]["top_reason"] == "Relay access denied"
        rows, _ = run_signal(con, SIGNALS.get("rate-burst"), settings, 1)
        assert rows[0]["peak_hour"] == T0
