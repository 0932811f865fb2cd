"""The spambot signals: one small SQL query per signal over the hw_* working tables.

A signal only measures. Each query returns one row per subject with ``subject``,
``value`` (the number the threshold applies to), ``first_seen``, ``last_seen`` and
any extra columns, which become the evidence's ``numbers``. Scoring, thresholds
and the next action live in ``rank.py``; the signals stay unaware of one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailwarden.hunt.model import ACCOUNT, CLIENT_IP, LOCAL_USER
from mailwarden.hunt.settings import (
    MIN_MESSAGES_FOR_OFF_HOURS,
    MIN_MESSAGES_FOR_RATE,
    MIN_RECIPIENTS_FOR_SHARE,
    MIN_SESSIONS_FOR_HELO,
    HuntSettings,
)
from mailwarden.registry import Registry


@dataclass(frozen=True)
class Signal:
    """One measurement: ``sql(settings)`` -> rows; ``describe(numbers)`` -> evidence text."""

    name: str
    kind: str
    description: str
    sql: Callable[[HuntSettings], str]
    describe: Callable[[dict[str, Any]], str]
    # A SQL condition on the query's columns: rows that fail it (e.g. too few messages
    # for a share to mean anything) score 0. It is applied in the query (after the peer
    # median), so a busy MX's thousands of such rows are never fetched.
    gate: str = "TRUE"
    needs_geoip: bool = False
    # Volume signals are also measured against their peers: the threshold becomes
    # at least peer_factor x the median subject, so a busy site is not all suspects.
    peer_scaled: bool = False


def _examples(values: Any) -> str:
    values = list(values or [])
    return ", ".join(str(v) for v in values[:5]) + (" ..." if len(values) > 5 else "")


# -- per account --------------------------------------------------------------------

RECIPIENTS = Signal(
    "recipients", ACCOUNT, "recipients of accepted mail sent by the account",
    lambda s: """
        SELECT auth_user AS subject, sum(n_rcpt)::DOUBLE AS value, count(*) AS messages,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_msg_rcpt WHERE auth_user IS NOT NULL GROUP BY auth_user""",
    lambda n: f"{n['value']:.0f} recipients in {n['messages']} messages",
    peer_scaled=True,
)

RECIPIENT_DOMAINS = Signal(
    "recipient-domains", ACCOUNT, "distinct recipient domains",
    lambda s: """
        SELECT auth_user AS subject, count(DISTINCT domain)::DOUBLE AS value,
               list(DISTINCT domain ORDER BY domain)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_rcpts WHERE auth_user IS NOT NULL AND domain <> '' GROUP BY auth_user""",
    lambda n: f"{n['value']:.0f} recipient domains ({_examples(n['examples'])})",
    peer_scaled=True,
)

RECIPIENTS_PER_MESSAGE = Signal(
    "recipients-per-message", ACCOUNT, "average recipients per message",
    lambda s: """
        SELECT auth_user AS subject, avg(n_rcpt)::DOUBLE AS value, max(n_rcpt) AS max_rcpt,
               count(*) AS messages, min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_msg_rcpt WHERE auth_user IS NOT NULL GROUP BY auth_user""",
    lambda n: f"{n['value']:.1f} recipients per message on average (max {n['max_rcpt']}, "
              f"{n['messages']} messages)",
)

_ACCOUNT_IPS = """
    WITH seen AS (
        SELECT auth_user AS u, client_ip AS ip, ts FROM hw_msgs
        WHERE auth_user IS NOT NULL AND client_ip IS NOT NULL
        UNION ALL
        SELECT user, client_ip, ts FROM hw_auth WHERE ok AND user IS NOT NULL AND client_ip IS NOT NULL)
"""

CLIENT_IPS = Signal(
    "client-ips", ACCOUNT, "distinct client IPs the account logged in or sent from",
    lambda s: _ACCOUNT_IPS + """
        SELECT u AS subject, count(DISTINCT ip)::DOUBLE AS value,
               list(DISTINCT ip ORDER BY ip)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM seen GROUP BY u""",
    lambda n: f"{n['value']:.0f} client IPs ({_examples(n['examples'])})",
    peer_scaled=True,
)

CLIENT_NETWORKS = Signal(
    "client-networks", ACCOUNT, "distinct client networks (/24, /48) of the account",
    lambda s: _ACCOUNT_IPS + """
        SELECT u AS subject, count(DISTINCT i.network)::DOUBLE AS value,
               list(DISTINCT i.network ORDER BY i.network)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM seen JOIN hw_ips i ON i.ip = seen.ip GROUP BY u""",
    lambda n: f"{n['value']:.0f} client networks ({_examples(n['examples'])})",
    peer_scaled=True,
)

COUNTRIES = Signal(
    "countries", ACCOUNT, "distinct countries of the account's client IPs (GeoIP)",
    lambda s: _ACCOUNT_IPS + """
        SELECT u AS subject, count(DISTINCT i.country)::DOUBLE AS value,
               list(DISTINCT i.country ORDER BY i.country)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM seen JOIN hw_ips i ON i.ip = seen.ip WHERE i.country IS NOT NULL GROUP BY u""",
    lambda n: f"{n['value']:.0f} countries ({_examples(n['examples'])})",
    needs_geoip=True,
)

FAILED_SHARE = Signal(
    "failed-share", ACCOUNT, "share of recipients bounced or rejected",
    lambda s: """
        WITH r AS (
            SELECT auth_user, bad, ts FROM hw_rcpts WHERE auth_user IS NOT NULL
            UNION ALL
            SELECT auth_user, true, ts FROM hw_rejects WHERE auth_user IS NOT NULL)
        SELECT auth_user AS subject, avg(bad::INTEGER)::DOUBLE AS value,
               sum(bad::INTEGER) AS failed, count(*) AS total,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM r GROUP BY auth_user""",
    lambda n: f"{n['value']:.0%} of recipients bounced or rejected ({n['failed']} of {n['total']})",
    gate=f"total >= {MIN_RECIPIENTS_FOR_SHARE}",
)


def _burst_sql(key: str, where: str, s: HuntSettings) -> str:
    return f"""
        WITH f AS (
            SELECT {key} AS subject, ts, client_ip, user,
                   count(*) OVER (PARTITION BY {key} ORDER BY ts
                       RANGE BETWEEN INTERVAL {int(s.burst_window_minutes)} MINUTE PRECEDING
                       AND CURRENT ROW) AS in_window
            FROM hw_auth WHERE NOT ok AND {key} IS NOT NULL AND ts IS NOT NULL AND {where})
        SELECT subject, max(in_window)::DOUBLE AS value, count(*) AS failures,
               count(DISTINCT client_ip) AS ips, count(DISTINCT user) AS users,
               list(DISTINCT client_ip ORDER BY client_ip)[1:6] AS examples,
               {int(s.burst_window_minutes)} AS window_minutes,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM f GROUP BY subject"""


AUTH_FAILURES = Signal(
    "auth-failures", ACCOUNT, "failed AUTH for the account (worst burst)",
    lambda s: _burst_sql("user", "TRUE", s),
    lambda n: f"{n['value']:.0f} failed AUTH within {n['window_minutes']} min "
              f"({n['failures']} in all, from {n['ips']} IPs: {_examples(n['examples'])})",
    peer_scaled=True,
)

# A guessed password: failures from the network (/24, /48) that then logged in,
# naming that user or nobody (Postfix often logs failures without the user name).
# Failures from elsewhere are the background noise of every server on the Internet.
GUESSED_PASSWORD = Signal(
    "guessed-password", ACCOUNT, "failed AUTH shortly before a successful login",
    lambda s: """
        WITH ok AS (SELECT user, ts, client_ip FROM hw_auth
                    WHERE ok AND user IS NOT NULL AND ts IS NOT NULL),
             fail AS (SELECT user, ts, client_ip FROM hw_auth WHERE NOT ok AND ts IS NOT NULL),
             per_login AS (
                SELECT ok.user, ok.ts, ok.client_ip, count(*) AS failures,
                       count(DISTINCT fail.client_ip) AS fail_ips
                FROM ok JOIN hw_ips oi ON oi.ip = ok.client_ip
                JOIN fail ON fail.ts <= ok.ts AND fail.ts > ok.ts - INTERVAL 1 HOUR
                 AND (fail.user = ok.user OR fail.user IS NULL)
                JOIN hw_ips fi ON fi.ip = fail.client_ip AND fi.network = oi.network
                GROUP BY ok.user, ok.ts, ok.client_ip)
        SELECT user AS subject, max(failures)::DOUBLE AS value,
               -- the worst login; of equals the first (arg_max would pick any, each its own)
               first(client_ip ORDER BY failures DESC, ts, client_ip) AS login_ip,
               first(ts ORDER BY failures DESC, ts, client_ip) AS login_ts,
               first(fail_ips ORDER BY failures DESC, ts, client_ip) AS fail_ips,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM per_login GROUP BY user""",
    lambda n: f"{n['value']:.0f} failed AUTH from its network in the hour before it logged in "
              f"from {n['login_ip']} at {n['login_ts']} (failures from {n['fail_ips']} IPs)",
)

RATE_BURST = Signal(
    "rate-burst", ACCOUNT, "busiest hour against the account's own median hour",
    lambda s: """
        WITH h AS (SELECT auth_user AS u, date_trunc('hour', ts) AS hour, count(*) AS n
                   FROM hw_msgs WHERE auth_user IS NOT NULL AND ts IS NOT NULL GROUP BY ALL),
             peak AS (SELECT u, max(n) AS peak, first(hour ORDER BY n DESC, hour) AS peak_hour
                      FROM h GROUP BY u),
             base AS (SELECT h.u, median(h.n) AS baseline, count(*) AS other_hours
                      FROM h JOIN peak p ON p.u = h.u AND h.hour <> p.peak_hour GROUP BY h.u)
        SELECT p.u AS subject, (p.peak / b.baseline)::DOUBLE AS value, p.peak,
               p.peak_hour, b.baseline::DOUBLE AS baseline, b.other_hours,
               p.peak_hour AS first_seen, p.peak_hour + INTERVAL 1 HOUR AS last_seen
        FROM peak p JOIN base b ON b.u = p.u""",
    lambda n: f"{n['peak']} messages in the hour from {n['peak_hour']}, "
              f"{n['value']:.1f}x its median hour ({n['baseline']:.1f} over {n['other_hours']} other hours)",
    gate=f"peak >= {MIN_MESSAGES_FOR_RATE}",
)


def _off_hours_clause(s: HuntSettings) -> str:
    start, end = (int(h) for h in s.off_hours)
    if start <= end:
        return f"hour(ts) >= {start} AND hour(ts) < {end}"
    return f"(hour(ts) >= {start} OR hour(ts) < {end})"  # wraps midnight, e.g. [22, 6]


OFF_HOURS = Signal(
    "off-hours", ACCOUNT, "share of the account's messages sent off-hours",
    lambda s: f"""
        SELECT auth_user AS subject, avg(({_off_hours_clause(s)})::INTEGER)::DOUBLE AS value,
               sum(({_off_hours_clause(s)})::INTEGER) AS off, count(*) AS messages,
               '{int(s.off_hours[0]):02d}:00-{int(s.off_hours[1]):02d}:00' AS hours,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_msgs WHERE auth_user IS NOT NULL AND ts IS NOT NULL GROUP BY auth_user""",
    lambda n: f"{n['value']:.0%} of {n['messages']} messages sent off-hours ({n['hours']})",
    gate=f"messages >= {MIN_MESSAGES_FOR_OFF_HOURS}",
)

# The AUTH user is an address (alice@example.com) or a bare name (alice). A sender
# matches when it is that address, or has that local part when the user is bare.
SENDER_MISMATCH = Signal(
    "sender-mismatch", ACCOUNT, "envelope senders that are not the AUTH user",
    lambda s: """
        WITH m AS (
            SELECT auth_user, sender, ts,
                   CASE WHEN position('@' IN auth_user) > 0 THEN sender <> auth_user
                        ELSE split_part(sender, '@', 1) <> auth_user END AS mismatch
            FROM hw_msgs WHERE auth_user IS NOT NULL AND sender IS NOT NULL AND sender <> '')
        SELECT auth_user AS subject,
               count(DISTINCT CASE WHEN mismatch THEN sender END)::DOUBLE AS value,
               sum(mismatch::INTEGER) AS messages,
               list(DISTINCT sender ORDER BY sender) FILTER (WHERE mismatch)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM m GROUP BY auth_user""",
    lambda n: f"{n['value']:.0f} envelope senders other than the AUTH user in {n['messages']} "
              f"messages ({_examples(n['examples'])})",
)

# -- per client IP ------------------------------------------------------------------

TRUSTED_RELAY = Signal(
    "trusted-relay", CLIENT_IP, "remote recipients relayed without AUTH",
    # Postfix does not log mynetworks membership: unauthenticated mail that was
    # relayed to a remote domain was let through by a trusted network (or an open relay).
    lambda s: """
        SELECT r.client_ip AS subject, count(*)::DOUBLE AS value,
               count(DISTINCT r.txn_id) AS messages, count(DISTINCT r.domain) AS domains,
               any_value(i.trusted) AS trusted_net,
               min(r.ts) AS first_seen, max(r.ts) AS last_seen
        FROM hw_rcpts r JOIN hw_ips i ON i.ip = r.client_ip
        WHERE r.auth_user IS NULL AND r.kind = 'smtp' AND r.remote AND NOT i.ignored
        GROUP BY r.client_ip""",
    lambda n: f"{n['value']:.0f} remote recipients ({n['domains']} domains) in {n['messages']} "
              f"messages relayed without AUTH"
              + (" from a trusted network" if n["trusted_net"] else " (not a trusted network: open relay?)"),
    peer_scaled=True,
)

FORGED_SENDER = Signal(
    "forged-sender", CLIENT_IP, "foreign envelope senders relayed without AUTH",
    # A trusted machine (scanner, ERP) sends as one of our addresses; an infected PC
    # relays whatever sender its spam run invents.
    lambda s: """
        SELECT m.client_ip AS subject, count(DISTINCT m.sender)::DOUBLE AS value,
               count(*) AS messages,
               list(DISTINCT m.sender ORDER BY m.sender)[1:6] AS examples,
               min(m.ts) AS first_seen, max(m.ts) AS last_seen
        FROM hw_msgs m JOIN hw_ips i ON i.ip = m.client_ip
        WHERE m.auth_user IS NULL AND m.kind = 'smtp' AND NOT i.ignored AND m.sender LIKE '%@%'
          AND lower(split_part(m.sender, '@', 2)) NOT IN (SELECT domain FROM hw_local)
          AND m.txn_id IN (SELECT txn_id FROM hw_rcpts WHERE remote)
        GROUP BY m.client_ip""",
    lambda n: f"{n['value']:.0f} envelope senders outside our domains relayed to remote "
              f"recipients in {n['messages']} messages ({_examples(n['examples'])})",
)

# HELO names real mail servers never use: Windows defaults ("User", "DESKTOP-1A2B3C"),
# any dotless name, and bare or private IP literals. Counted on unauthenticated
# sessions only: Outlook on a laptop says its PC name on submission, legitimately.
_BAD_HELO_SQL = r"""(
    lower(helo) IN ('user', 'localhost', 'localhost.localdomain', 'pc', 'computer', 'admin', 'home')
    OR regexp_matches(helo, '^[A-Za-z0-9_-]{1,63}$')
    OR regexp_matches(helo, '^[0-9]{1,3}(\.[0-9]{1,3}){3}$')
    OR regexp_matches(helo, '^\[?(10|127)\.[0-9.]{1,12}\]?$')
    OR regexp_matches(helo, '^\[?192\.168\.[0-9.]{1,8}\]?$')
    OR regexp_matches(helo, '^\[?172\.(1[6-9]|2[0-9]|3[01])\.[0-9.]{1,8}\]?$'))"""

SUSPICIOUS_HELO = Signal(
    "suspicious-helo", CLIENT_IP, "share of logged HELOs (unauthenticated) that no server uses",
    lambda s: f"""
        WITH said AS (
                -- Postfix logs the HELO only in reject lines: take it from both places.
                SELECT s.client_ip, coalesce(s.helo, r.helo) AS helo, s.start_ts AS ts
                FROM hw_sessions s
                LEFT JOIN (SELECT session_id, any_value(helo) AS helo FROM hw_rejects
                           WHERE helo IS NOT NULL GROUP BY session_id) r USING (session_id)
                WHERE s.auth_user IS NULL AND s.kind = 'smtp'),
             x AS (SELECT said.client_ip, helo, ts, {_BAD_HELO_SQL} AS bad
                   FROM said JOIN hw_ips i ON i.ip = said.client_ip
                   WHERE NOT i.ignored AND helo IS NOT NULL)
        SELECT client_ip AS subject, avg(bad::INTEGER)::DOUBLE AS value,
               sum(bad::INTEGER) AS sessions_bad, count(*) AS sessions,
               list(DISTINCT helo ORDER BY helo) FILTER (WHERE bad)[1:6] AS examples,
               min(ts) FILTER (WHERE bad) AS first_seen, max(ts) FILTER (WHERE bad) AS last_seen
        FROM x GROUP BY client_ip HAVING sum(bad::INTEGER) > 0""",
    lambda n: f"{n['sessions_bad']} of {n['sessions']} unauthenticated sessions with a logged HELO said "
              f"{_examples(n['examples'])}",
    gate=f"sessions_bad >= {MIN_SESSIONS_FOR_HELO}",
)

IP_AUTH_FAILURES = Signal(
    "auth-failures", CLIENT_IP, "failed AUTH from the IP (worst burst)",
    lambda s: _burst_sql("client_ip", "TRUE", s),
    lambda n: f"{n['value']:.0f} failed AUTH within {n['window_minutes']} min "
              f"({n['failures']} in all, {n['users']} user names logged)",
    peer_scaled=True,
)

AUTH_USERS = Signal(
    "auth-users", CLIENT_IP, "distinct user names that failed AUTH from one IP",
    lambda s: """
        SELECT client_ip AS subject, count(DISTINCT user) FILTER (WHERE NOT ok)::DOUBLE AS value,
               count(DISTINCT user) FILTER (WHERE ok) AS succeeded,
               list(DISTINCT user ORDER BY user) FILTER (WHERE NOT ok)[1:6] AS examples,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_auth WHERE client_ip IS NOT NULL AND user IS NOT NULL GROUP BY client_ip""",
    lambda n: f"{n['value']:.0f} user names failed, {n['succeeded']} logged in "
              f"({_examples(n['examples'])})",
)

REJECTS = Signal(
    "rejects", CLIENT_IP, "commands the server refused",
    lambda s: """
        WITH r AS (SELECT client_ip, regexp_extract(coalesce(reason, ''), '^[^;:]{0,80}') AS reason,
                          count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
                   FROM hw_rejects WHERE client_ip IS NOT NULL GROUP BY ALL)
        SELECT client_ip AS subject, sum(n)::DOUBLE AS value,
               arg_min(reason, (-n, reason)) AS top_reason,  -- the most frequent; of equals the first
               min(first_seen) AS first_seen, max(last_seen) AS last_seen
        FROM r GROUP BY client_ip""",
    lambda n: f"{n['value']:.0f} refused commands (mostly: {n['top_reason'] or 'no reason logged'})",
    peer_scaled=True,
)

# -- per local user -----------------------------------------------------------------

LOCAL_INJECTION = Signal(
    "local-injection", LOCAL_USER, "remote recipients of locally injected mail",
    lambda s: """
        SELECT coalesce(local_user, '(unknown)') AS subject, count(*)::DOUBLE AS value,
               count(DISTINCT txn_id) AS messages, count(DISTINCT domain) AS domains,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM hw_rcpts WHERE kind = 'local' AND remote GROUP BY ALL""",
    lambda n: f"{n['value']:.0f} remote recipients ({n['domains']} domains) in {n['messages']} "
              f"locally injected messages",
    peer_scaled=True,
)

SIGNALS: Registry[Signal] = Registry("signal")
for _signal in (RECIPIENTS, RECIPIENT_DOMAINS, RECIPIENTS_PER_MESSAGE, CLIENT_IPS, CLIENT_NETWORKS,
                COUNTRIES, FAILED_SHARE, AUTH_FAILURES, GUESSED_PASSWORD, RATE_BURST, OFF_HOURS,
                SENDER_MISMATCH, TRUSTED_RELAY, FORGED_SENDER, SUSPICIOUS_HELO, AUTH_USERS, REJECTS,
                LOCAL_INJECTION):
    SIGNALS.add(_signal)
# The same measure for a different subject kind shares its settings name.
PER_IP_SIGNALS = (IP_AUTH_FAILURES,)


def all_signals() -> list[Signal]:
    """Every signal, in the order the evidence is listed."""
    return [*SIGNALS, *PER_IP_SIGNALS]
