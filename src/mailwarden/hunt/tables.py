"""The working tables every hunt signal reads, built once per run over the log index.

The index (``logs/schema.sql``: sessions, transactions, recipients, auth_events,
rejects) is the only input, so ``hunt --db FILE`` and ``hunt LOG...`` (loaded into
an in-memory index first) run the same SQL. Everything here is TEMP: an index
opened read-only is never written. Views are recomputed where they are read: they
are the ones that cost less to compute again than to copy.

- ``hw_ips``      client IP -> trusted / private / network (/24, /48) / country.
- ``hw_local``    our domains (configured, else inferred from local deliveries).
- ``hw_sessions`` (view) sessions in the time window, AUTH user lower-cased.
- ``hw_msgs``     accepted messages with their session's client, AUTH user, local user.
- ``hw_rcpts``    one row per (message, recipient): domain, bad (bounced/rejected), remote.
- ``hw_msg_rcpt`` (view) hw_msgs with n_rcpt, the recipients each message counts.
- ``hw_auth``     AUTH successes and failures in the window.
- ``hw_rejects``  (view) refused commands in the window.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb

from mailwarden.config import SiteConfig
from mailwarden.hunt.ingest import insert_rows

# Postfix/Exim delivery agents that put mail into a local mailbox: the recipient
# domains they deliver to are ours (used when [site] local_domains is not set).
LOCAL_RELAY_SQL = (
    "(lower(relay) IN ('local', 'virtual', 'dovecot', 'maildrop', 'procmail')"
    " OR lower(relay) LIKE '%lmtp%' OR lower(relay) LIKE 'local%'"
    " OR lower(relay) LIKE '%[private/%' OR lower(relay) LIKE '%virtual%')"
)

# Statuses that mean the recipient did not get the message.
BAD_STATUSES = ("bounced", "expired", "rejected", "failed", "undeliverable")

# A content filter re-injects every message it scanned over loopback without AUTH
# (Postfix + amavis on 127.0.0.1:10025); counting it as relaying would make
# localhost the top suspect on every such server (pflogsumm FAQ 14).
DEFAULT_IGNORED_CLIENTS = ("127.0.0.1", "::1")


@dataclass
class Window:
    """The time range a hunt looks at (naive server-local times, as in the index)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def clause(self, column: str) -> str:
        parts = []
        if self.since is not None:
            parts.append(f"{column} >= TIMESTAMP '{_ts_literal(self.since)}'")
        if self.until is not None:
            parts.append(f"{column} < TIMESTAMP '{_ts_literal(self.until)}'")
        return " AND ".join(parts) if parts else "TRUE"


def _ts_literal(value: dt.datetime) -> str:
    # isoformat of a datetime we built ourselves: digits, '-', ':', '.', ' ' only.
    return value.replace(tzinfo=None).isoformat(sep=" ")


@dataclass
class Context:
    """What the working tables were built with; signals read it for their notes."""

    site: SiteConfig
    window: Window = field(default_factory=Window)
    ignored_clients: tuple[str, ...] = DEFAULT_IGNORED_CLIENTS
    local_domains_inferred: bool = False
    local_domains: list[str] = field(default_factory=list)
    trusted_inferred: bool = False
    geoip_loaded: bool = False
    notes: list[str] = field(default_factory=list)


def network_of(ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) an address belongs to; None for junk."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return _network(addr)


def _network(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # The network address from the integer, as str(ip_network(f"{addr}/48")) writes it,
    # without formatting and parsing the address again (3/4 of the time for IPv6).
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return f"{ipaddress.IPv6Address(int(addr) >> 80 << 80)}/48"
        addr = addr.ipv4_mapped
    return f"{ipaddress.IPv4Address(int(addr) & 0xFFFFFF00)}/24"


def _classify(ip: str, ctx: Context, logged_trusted: bool | None) -> tuple:
    """An hw_ips row for an address that is not dotted-quad IPv4 (parsed once)."""
    try:  # ip_address() would try IPv4 first; a string with ':' can only be IPv6
        addr = ipaddress.IPv6Address(ip) if ":" in ip else ipaddress.IPv4Address(ip)
    except ValueError:
        addr = None
    private = addr is not None and (addr.is_private or addr.is_loopback or addr.is_link_local)
    trusted = bool(logged_trusted) or (private if ctx.trusted_inferred else ctx.site.is_trusted_ip(addr))
    network = None if addr is None else _network(addr)
    return (ip, trusted, private, network, None, ip in ctx.ignored_clients)


# The index columns `build` and `engine.window_for_last` read, for a hunt from LOG files:
# its throw-away index keeps only these (and source_id), so nothing else is built or stored
# (every column took about 2 s more on the 1 GiB bench log). A column read above or below must
# be listed here: a query of a dropped one fails to bind, and tests/unit/hunt/test_hunt_cli.py
# checks that the answer from LOG files is the answer from a full index. auth_events is whole.
COLUMNS_READ: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id", "kind", "start_ts", "end_ts", "client_ip", "helo", "auth_user", "local_user",
                 "trusted", "auth_failures"),
    "transactions": ("txn_id", "session_id", "start_ts", "accepted", "sender", "nrcpt"),
    "recipients": ("txn_id", "address", "orig_address", "status", "relay", "ts"),
    "rejects": ("session_id", "ts", "client_ip", "stage", "reason", "sender", "recipient", "helo"),
}


def build(con: duckdb.DuckDBPyConnection, ctx: Context, country_of=None) -> None:
    """Create the hw_* TEMP tables and views for the window in ``ctx``;
    ``country_of(ip) -> str|None``.

    A working table is materialised only when it is read several times and costs a join or
    an aggregate to compute (copying the 1.5 M sessions of the 1 GiB bench log took longer
    than scanning them again in each of their readers).
    """
    w = ctx.window
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW hw_sessions AS
        SELECT session_id, kind, start_ts, end_ts, client_ip, helo,
               lower(nullif(trim(auth_user), '')) AS auth_user,
               nullif(trim(local_user), '') AS local_user, trusted, auth_failures
        FROM sessions
        WHERE {w.clause('coalesce(start_ts, end_ts)')} OR coalesce(start_ts, end_ts) IS NULL
    """)
    _build_ips(con, ctx, country_of)
    _build_local_domains(con, ctx)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hw_msgs AS
        SELECT t.txn_id, t.session_id, coalesce(t.start_ts, s.start_ts) AS ts,
               coalesce(s.kind, 'smtp') AS kind, s.client_ip, s.auth_user, s.local_user,
               lower(t.sender) AS sender, t.nrcpt
        FROM transactions t LEFT JOIN hw_sessions s USING (session_id)
        WHERE t.accepted AND ({w.clause('coalesce(t.start_ts, s.start_ts)')})
    """)
    bad = ", ".join(f"'{s}'" for s in BAD_STATUSES)
    # The recipient's domain and whether it is remote are worked out before the join with
    # hw_msgs: the join then carries two short columns instead of both addresses.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hw_rcpts AS
        WITH per_rcpt AS (
            SELECT txn_id, lower(split_part(lower(address), '@', 2)) AS domain,
                   lower(split_part(lower(coalesce(any_value(orig_address), lower(address))), '@', 2))
                       NOT IN (SELECT domain FROM hw_local) AS remote,
                   bool_or(lower(status) IN ({bad})) AS bad, min(ts) AS ts
            FROM recipients WHERE address IS NOT NULL AND address <> ''
            GROUP BY txn_id, lower(address)
        )
        SELECT m.txn_id, coalesce(r.ts, m.ts) AS ts, m.kind, m.client_ip,
               m.auth_user, m.local_user, r.domain, r.bad, r.remote
        FROM per_rcpt r JOIN hw_msgs m USING (txn_id)
    """)
    # A message whose recipients were not (yet) delivered in this log still counts
    # its nrcpt; one with no nrcpt counts the recipients seen.
    con.execute("""
        CREATE OR REPLACE TEMP VIEW hw_msg_rcpt AS
        SELECT m.*, greatest(coalesce(m.nrcpt, 0), coalesce(r.n, 0), 1) AS n_rcpt
        FROM hw_msgs m LEFT JOIN (SELECT txn_id, count(*) AS n FROM hw_rcpts GROUP BY txn_id) r
        USING (txn_id)
    """)
    # Postfix logs a successful AUTH only as sasl_username= on the client= line, which a
    # loader may keep on the session alone: a session with an AUTH user and no logged
    # success counts as one, at its first message (or its end).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hw_auth AS
        SELECT a.session_id, a.ts, coalesce(a.client_ip, s.client_ip) AS client_ip,
               lower(nullif(trim(a.user), '')) AS user, a.ok, a.method
        FROM auth_events a LEFT JOIN hw_sessions s USING (session_id)
        WHERE {w.clause('a.ts')}
        UNION ALL
        SELECT s.session_id, coalesce(min(m.ts), s.end_ts, s.start_ts), s.client_ip, s.auth_user,
               true, NULL
        FROM hw_sessions s LEFT JOIN hw_msgs m USING (session_id)
        WHERE s.auth_user IS NOT NULL AND s.session_id NOT IN
              (SELECT session_id FROM auth_events WHERE ok AND session_id IS NOT NULL)
        GROUP BY s.session_id, s.end_ts, s.start_ts, s.client_ip, s.auth_user
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW hw_rejects AS
        SELECT r.session_id, r.ts, r.client_ip, r.stage, r.reason, lower(r.sender) AS sender,
               r.recipient, r.helo, s.auth_user
        FROM rejects r LEFT JOIN hw_sessions s USING (session_id)
        WHERE {w.clause('r.ts')}
    """)


_V4 = r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$"
# RFC 1918, loopback and link-local, on the octets (o1, o2) of an IPv4 address.
_V4_PRIVATE = ("o1 = 10 OR (o1 = 172 AND o2 BETWEEN 16 AND 31) OR (o1 = 192 AND o2 = 168)"
               " OR o1 = 127 OR (o1 = 169 AND o2 = 254)")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _build_ips(con: duckdb.DuckDBPyConnection, ctx: Context, country_of) -> None:
    """Classify every client IP once. IPv4 in SQL (hundreds of thousands on a busy MX), the
    rest (IPv6, junk) with the ipaddress module."""
    site = ctx.site
    ctx.trusted_inferred = not site.trusted_networks
    if ctx.trusted_inferred:
        ctx.notes.append("no trusted networks configured (--trusted-net / [site] trusted_networks): "
                         "private and loopback addresses are taken as the local network")
    v4_nets = [n for n in site.trusted_networks if n.version == 4]
    in_config = " OR ".join(
        f"n BETWEEN {int(net.network_address)} AND {int(net.broadcast_address)}" for net in v4_nets
    ) or "FALSE"
    trusted = f"({_V4_PRIVATE})" if ctx.trusted_inferred else f"({in_config})"
    ignored = ", ".join(_sql_str(ip) for ip in ctx.ignored_clients) or "NULL"
    # One pass: the octets are split once (string_split, not four split_parts). An address
    # that is not dotted-quad IPv4 keeps private = NULL and trusted = logged_trusted here,
    # and is classified in Python below.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hw_ips AS
        WITH seen AS (
            SELECT client_ip AS ip, bool_or(coalesce(trusted, false)) AS logged_trusted FROM (
                SELECT client_ip, trusted FROM hw_sessions WHERE client_ip IS NOT NULL
                UNION ALL SELECT client_ip, NULL FROM auth_events WHERE client_ip IS NOT NULL)
            GROUP BY client_ip),
        parts AS (SELECT ip, logged_trusted,
                         CASE WHEN regexp_matches(ip, '{_V4}') THEN string_split(ip, '.') END AS p
                  FROM seen),
        octets AS (SELECT ip, logged_trusted,
                          CAST(p[1] AS BIGINT) AS o1, CAST(p[2] AS BIGINT) AS o2,
                          CAST(p[3] AS BIGINT) AS o3, CAST(p[4] AS BIGINT) AS o4 FROM parts),
        v4 AS (SELECT *, o1 * 16777216 + o2 * 65536 + o3 * 256 + o4 AS n,
                      coalesce(o1 < 256 AND o2 < 256 AND o3 < 256 AND o4 < 256, false) AS ok
               FROM octets)
        SELECT ip, CASE WHEN ok THEN logged_trusted OR {trusted} ELSE logged_trusted END AS trusted,
               CASE WHEN ok THEN ({_V4_PRIVATE}) END AS private,
               CASE WHEN ok THEN concat(o1, '.', o2, '.', o3, '.0/24') END AS network,
               NULL::VARCHAR AS country, ip IN ({ignored}) AS ignored
        FROM v4
    """)
    records = [_classify(ip, ctx, logged_trusted) for ip, logged_trusted in
               con.execute("SELECT ip, trusted FROM hw_ips WHERE private IS NULL").fetchall()]
    if records:
        con.execute("DELETE FROM hw_ips WHERE private IS NULL")
        insert_rows(con, "hw_ips (ip, trusted, private, network, country, ignored)", records)
    if country_of is not None:
        # Only the countries of account IPs are read (the countries signal, over the IPs an AUTH
        # user sent or logged in from): a busy MX has hundreds of thousands of other clients,
        # each a GeoIP look-up in Python. A superset of hw_msgs' and hw_auth's account IPs.
        ips = [ip for (ip,) in con.execute("""
            SELECT ip FROM hw_ips WHERE ip IN (
                SELECT client_ip FROM hw_sessions WHERE auth_user IS NOT NULL
                UNION
                SELECT coalesce(a.client_ip, s.client_ip) FROM auth_events a LEFT JOIN hw_sessions s USING (session_id)
                WHERE a.ok AND nullif(trim(a.user), '') IS NOT NULL)
        """).fetchall()]
        countries = [(ip, c) for ip in ips if (c := country_of(ip))]
        if countries:
            con.execute("CREATE OR REPLACE TEMP TABLE hw_ip_country (ip VARCHAR, country VARCHAR)")
            insert_rows(con, "hw_ip_country (ip, country)", countries)
            con.execute("UPDATE hw_ips SET country = c.country FROM hw_ip_country c "
                        "WHERE hw_ips.ip = c.ip").fetchall()


def _build_local_domains(con: duckdb.DuckDBPyConnection, ctx: Context) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE hw_local (domain VARCHAR)")
    domains: Iterable[str] = ctx.site.local_domains
    if not ctx.site.local_domains:
        ctx.local_domains_inferred = True
        domains = [d for (d,) in con.execute(f"""
            SELECT DISTINCT lower(split_part(address, '@', 2)) FROM recipients
            WHERE {LOCAL_RELAY_SQL} AND address LIKE '%@%'
        """).fetchall() if d]
        ctx.notes.append("local domains inferred from local deliveries: "
                         + (", ".join(sorted(domains)[:10]) or "none found, every recipient counts as remote"))
    ctx.local_domains = sorted(set(domains))
    if ctx.local_domains:
        insert_rows(con, "hw_local (domain)", [(d,) for d in ctx.local_domains])
