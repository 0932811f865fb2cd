"""The Postfix path of the index: a whole syslog file into sessions, transactions and the rest.

Two implementations fill the same intermediate tables (``pf_sessions``, ``pf_txn``,
``pf_recip``, ``pf_rejects``, ``pf_auth``, ``pf_sl``), which `finish_tables` stores:

* **compiled** (``_pfscan.c``, built by setup.py; used when it is there): one pass over the
  file in slices, in a thread with the GIL released. It cuts each line, keeps the open
  sessions and transactions in two hash maps (pid / queue-id reuse safe: a new ``connect
  from`` or ``client=`` line starts a new one) and at the end hands over finished rows as
  Arrow buffers, sessions and transcript lines already in session order. Speed:
  docs/log-index.md.
* **SQL** (`stage_lines`, `assign_sql`, `sql_intermediates`): DuckDB reads the file as one
  text column, cuts fields with string functions and numbers sessions with window
  functions. It is the specification the compiled path is tested against
  (tests/unit/logs/test_pfscan.py compares every table row for row) and the fallback when
  the extension is not built.

What a line means, on both paths: a *connection* is an smtpd process (host, service, pid)
from its ``connect from`` line to the next one of the same process (postscreen: the
client ``[ip]:port`` from ``CONNECT from``); lines before a process's first connect (the log
began mid-session) form a session of their own. A *transaction* is a queue id from its
``client=`` / pickup ``uid=`` line to the next such line; it belongs to the connection of
its ``client=`` line, else it is a session of its own (``local`` for pickup, ``queue`` for
mail Postfix made itself).

Classic syslog has no year. The first month gets the year given (or the file's mtime's),
and in the order months first appear a drop of more than six months (Dec -> Jan) is a New
Year (`year_case`; the same rule as the Python readers). A few lines out of order around
midnight change nothing. The raw lines go to ``line_blocks`` (linestore.py) as the file is
read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, Queue, SimpleQueue

import duckdb

from mailwarden.logs import linestore

try:  # the compiled scanner (setup.py); without it the SQL path below does the same work
    from mailwarden.logs import _pfscan
except ImportError:  # pragma: no cover - depends on the build
    _pfscan = None

# session_id / txn_id = source_id * ID_BASE + line number (see schema.sql).
ID_BASE = 10**12
# A file with a line over 4 x MAX_LINE_BYTES (1 MiB) goes through index.py's clean copy,
# which cuts every line to MAX_LINE_BYTES (256 KiB); the margin covers U+FFFD expansion.
MAX_LINE_BYTES = 1 << 18

# Short (hex) and long (base-52 without vowels) Postfix queue ids, anchored at the message start.
# No capture groups in hot paths: RE2 answers yes/no with its DFA, submatches cost ~10x more.
QID_RE = r"^(?:[0-9A-F]{5,14}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{12,20}): "
REJECT_ACTIONS = "(?:reject|reject_warning|milter-reject|discard|milter-discard|proxy-reject)"


# Numbers as the compiled scanner reads them (_pfscan.c try_int / try_double / the pid). DuckDB's
# TRY_CAST takes more ('1e3', '0x1F', '1_000', 'Inf', '1.5' rounded to 2 for an integer), which no
# Postfix or SpamAssassin writes: the SQL path casts only what the scanner accepts, so the two
# paths cannot disagree on hostile text.
_INT_RE = r"[ \t]*[+-]?[0-9]{1,19}[ \t]*"
_DOUBLE_RE = r"[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*"


def strict_int(expr: str, typ: str) -> str:
    """SQL: ``expr`` (VARCHAR) as ``typ`` (INTEGER, BIGINT) when it is a plain decimal, else NULL."""
    return f"(CASE WHEN regexp_full_match({expr}, '{_INT_RE}') THEN TRY_CAST({expr} AS {typ}) END)"


def strict_double(expr: str) -> str:
    """SQL: ``expr`` (VARCHAR) as DOUBLE when it is a plain decimal number (at most 60 characters
    but spaces), else NULL."""
    return (f"(CASE WHEN regexp_full_match({expr}, '{_DOUBLE_RE}') AND length(trim({expr}, ' \t')) <= 60 "
            f"THEN TRY_CAST({expr} AS DOUBLE) END)")


def read_csv_sql(path: str, compression: str = "none") -> str:
    """The table function that yields one VARCHAR per physical line, in file order."""
    quoted = path.replace("'", "''")
    return (
        f"read_csv('{quoted}', columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='', escape='', "
        f"header=false, auto_detect=false, new_line='\\n', compression='{compression}', "
        f"max_line_size={MAX_LINE_BYTES * 4})"
    )


# Line roles (pf_ev.role). Stable only inside one load.
R_OTHER, R_CONNECT, R_DISCONNECT, R_END, R_CLIENT, R_TLS, R_AUTH_FAIL, R_REJECT = range(8)
R_MESSAGE_ID, R_QMGR_FROM, R_REMOVED, R_DELIVERY, R_PICKUP, R_SUBJECT, R_SPAM, R_FROM = range(8, 16)


# The value of ``key<...>``: it ends at a '>' followed by a space, ',' or ';' (or at the end of
# the line), so a '>' inside the address ("<a<b>c@d>", hostile but logged as is) stays in it,
# as in the Python readers (`readers.base.parse_space_kv`). NULL when the key is absent.
ANGLE_MACRO = """
CREATE OR REPLACE TEMP MACRO pf_close(a) AS
    least(nullif(strpos(a, '> '), 0), nullif(strpos(a, '>,'), 0), nullif(strpos(a, '>;'), 0));
CREATE OR REPLACE TEMP MACRO pf_angle_tail(a) AS
    CASE WHEN pf_close(a) IS NOT NULL THEN left(a, pf_close(a) - 1)
         WHEN ends_with(a, '>') THEN left(a, length(a) - 1) ELSE a END;
CREATE OR REPLACE TEMP MACRO pf_angle(txt, key) AS
    CASE WHEN strpos(txt, key) > 0 THEN pf_angle_tail(substr(txt, strpos(txt, key) + length(key))) END;
"""


def stage_lines(con: duckdb.DuckDBPyConnection, relation_sql: str) -> None:
    """The SQL path's one pass over the file into the narrow temp table ``pf_ev0``: one row per line.

    The syslog prefix ends at the first ": " (classic "Mar  1 06:00:00 host prog[pid]: ",
    RFC 3339 "2024-08-29T01:08:59.76+00:00 host prog[pid]: "); its last two words are the host
    and the tag. Classic stamps get year 2000 here (see `year_case`). Lines of other programs
    are kept (counted as "other"); lines without a stamp have ``mts`` NULL (unparsed).

    The message text is not kept: each line's role (connect, client=, delivery ...) is
    decided once, and only the few fields that role carries are cut, into the generic
    columns ``ip``/``name`` (the client, on connection lines), ``a``/``b``/``c`` (per role, see
    the CASEs below) and ``body`` (the whole message, only for the delivery, reject and AUTH
    failure lines that later statements cut further). ``ck``/``qk`` are the connection and
    message keys `assign_sql` numbers sessions and transactions by. ``_pfscan.c`` cuts the
    same fields, field by field.
    """
    con.execute(ANGLE_MACRO)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_ev0 AS
        WITH r AS (
            SELECT row_number() OVER () AS lineno, coalesce(line, '') AS text FROM {relation_sql}
        ), h AS (
            SELECT lineno, text, substr(text, 5, 1) = '-' AS rfc, split_part(text, ': ', 1) AS head FROM r
        ), f AS (
            SELECT lineno, rfc,
                   CASE WHEN rfc THEN timezone('UTC', TRY_CAST(split_part(head, ' ', 1) AS TIMESTAMPTZ))
                        ELSE TRY_STRPTIME('2000 ' || left(head, 15), '%Y %b %d %H:%M:%S') END AS mts,
                   split_part(head, ' ', -2) AS host,
                   split_part(split_part(head, ' ', -1), '[', 1) AS prog,
                   CASE WHEN regexp_full_match(rtrim(split_part(split_part(head, ' ', -1), '[', 2), ']'), '[0-9]{{1,18}}')
                        THEN CAST(rtrim(split_part(split_part(head, ' ', -1), '[', 2), ']') AS BIGINT) END AS pid,
                   substr(text, length(head) + 3) AS msg
            FROM h
        ), g AS (
            SELECT *, split_part(prog, '/', -1) AS daemon,
                   mts IS NOT NULL AND starts_with(prog, 'postfix') AS pf,
                   CASE WHEN regexp_matches(msg, '{QID_RE}') THEN split_part(msg, ': ', 1) END AS qid
            FROM f
        ), k AS MATERIALIZED (
            SELECT *,
               CASE
                 WHEN NOT starts_with(prog, 'postfix') THEN {R_OTHER}
                 WHEN qid IS NOT NULL THEN CASE
                   WHEN daemon = 'smtpd' AND contains(msg, ': client=') THEN {R_CLIENT}
                   WHEN contains(msg, ': to=') AND contains(msg, ', status=') THEN {R_DELIVERY}
                   WHEN daemon = 'cleanup' AND contains(msg, ': message-id=') THEN {R_MESSAGE_ID}
                   WHEN daemon = 'qmgr' AND contains(msg, ': from=<') THEN {R_QMGR_FROM}
                   WHEN daemon = 'qmgr' AND ends_with(msg, ': removed') THEN {R_REMOVED}
                   WHEN daemon = 'pickup' AND contains(msg, ': uid=') THEN {R_PICKUP}
                   WHEN regexp_matches(msg, '^[0-9A-Za-z]{{5,20}}: {REJECT_ACTIONS}: ') THEN {R_REJECT}
                   WHEN contains(msg, ' header Subject: ') THEN {R_SUBJECT}
                   WHEN contains(msg, 'X-Spam-Status: ') THEN {R_SPAM}
                   ELSE {R_OTHER} END
                 WHEN daemon = 'smtpd' AND starts_with(msg, 'connect from ') THEN {R_CONNECT}
                 WHEN daemon = 'postscreen' AND starts_with(msg, 'CONNECT from ') THEN {R_CONNECT}
                 WHEN starts_with(msg, 'disconnect from ') OR starts_with(msg, 'DISCONNECT [') THEN {R_DISCONNECT}
                 WHEN starts_with(msg, 'NOQUEUE: ') AND regexp_matches(msg, '^NOQUEUE: {REJECT_ACTIONS}: ') THEN {R_REJECT}
                 WHEN starts_with(msg, 'warning: ') AND contains(msg, ' authentication failed') THEN {R_AUTH_FAIL}
                 WHEN contains(msg, 'TLS connection established from ') THEN {R_TLS}
                 WHEN starts_with(msg, 'lost connection after ') OR starts_with(msg, 'timeout after ')
                      OR starts_with(msg, 'PASS ') OR starts_with(msg, 'HANGUP ') OR starts_with(msg, 'PREGREET ')
                      OR starts_with(msg, 'too many errors after ') THEN {R_END}
                 WHEN daemon = 'smtpd' AND contains(msg, ' from ') AND contains(msg, '[') THEN {R_FROM}
                 ELSE {R_OTHER}
               END::UTINYINT AS role,
               -- ck: the connection (smtpd process; postscreen client "[ip]:port"); qk: the message.
               CASE WHEN NOT pf THEN NULL
                    WHEN daemon = 'smtpd' THEN hash(host, prog, pid)
                    WHEN daemon = 'postscreen' AND contains(msg, '[') THEN
                         hash(host, rtrim(split_part(split_part(msg, '[', 2), ' ', 1), ':'))
               END AS ck,
               CASE WHEN pf AND qid IS NOT NULL THEN hash(host, qid) END AS qk
            FROM g
        )
        SELECT lineno, mts, rfc, role, ck, qk,
               CASE WHEN ck IS NOT NULL OR qk IS NOT NULL THEN host END AS host,
               CASE WHEN ck IS NOT NULL THEN prog END AS prog,
               CASE WHEN ck IS NOT NULL THEN pid END AS pid,
               qid,
               prog IS NOT NULL AND NOT starts_with(prog, 'postfix') AS other_prog,
               -- the client is in the first [...] of connect, client=, reject, warning, disconnect lines
               CASE WHEN ck IS NOT NULL AND role <> {R_OTHER} THEN split_part(split_part(msg, '[', 2), ']', 1) END AS ip,
               CASE WHEN ck IS NOT NULL AND role <> {R_OTHER} AND daemon = 'smtpd'
                    THEN replace(split_part(split_part(msg, '[', 1), ' ', -1), 'client=', '') END AS name,
               CASE
                 WHEN ck IS NOT NULL AND role = {R_CONNECT} AND daemon = 'postscreen'
                      THEN split_part(split_part(msg, ']:', 2), ' ', 1)
                 WHEN ck IS NOT NULL AND role = {R_CLIENT} AND contains(msg, 'sasl_username=')
                      THEN split_part(msg, ', sasl_method=', 2)
                 WHEN ck IS NOT NULL AND role = {R_TLS} THEN split_part(msg, ']: ', 2)
                 WHEN ck IS NOT NULL AND role = {R_DISCONNECT} THEN split_part(msg, '] ', 2)
                 WHEN ck IS NOT NULL AND role = {R_END} THEN
                      CASE WHEN starts_with(msg, 'PASS ') THEN lower(split_part(msg, ' [', 1))
                           WHEN starts_with(msg, 'HANGUP ') OR starts_with(msg, 'PREGREET ')
                                THEN lower(split_part(msg, ' ', 1))
                           ELSE split_part(msg, ' from ', 1) END
                 WHEN ck IS NOT NULL AND role = {R_REJECT} AND contains(msg, 'helo=<') THEN pf_angle(msg, ' helo=<')
                 WHEN qk IS NULL THEN NULL
                 WHEN role = {R_MESSAGE_ID} THEN trim(split_part(msg, 'message-id=', 2), '<> ')
                 WHEN role = {R_QMGR_FROM} THEN pf_angle(msg, ': from=<')
                 WHEN role = {R_PICKUP} THEN pf_angle(msg, ' from=<')
                 WHEN role = {R_SUBJECT} THEN split_part(split_part(msg, ' header Subject: ', 2), ' from ', 1)
                 WHEN role = {R_SPAM} THEN split_part(split_part(msg, ' score=', 2), ' ', 1)
               END AS a,
               CASE
                 WHEN ck IS NOT NULL AND role = {R_CONNECT} AND daemon = 'postscreen' THEN split_part(msg, ' to ', 2)
                 WHEN qk IS NULL THEN NULL
                 WHEN role = {R_QMGR_FROM} THEN split_part(split_part(msg, ', size=', 2), ',', 1)
                 WHEN role = {R_PICKUP} THEN split_part(split_part(msg, 'uid=', 2), ' ', 1)
                 WHEN role = {R_SPAM} THEN split_part(split_part(msg, ' required=', 2), ' ', 1)
               END AS b,
               CASE WHEN qk IS NOT NULL AND role = {R_QMGR_FROM}
                    THEN split_part(split_part(msg, ', nrcpt=', 2), ' ', 1) END AS c,
               CASE WHEN role IN ({R_DELIVERY}, {R_REJECT}, {R_AUTH_FAIL}) THEN msg END AS body
        FROM k
    """)


def year_case(con: duckdb.DuckDBPyConnection, first_year: int | None, *,
              anchor: dt.date | None = None) -> tuple[str, int | None]:
    """SQL that moves a year-2000 stamp (``mts``) to its real year (see the module docstring).

    The same rule as the Python readers (``timestamps.SyslogYear``): the first line gets
    ``first_year`` or, without it, the year of ``anchor`` (the file's mtime), minus one when
    its month is later than the anchor's (no line is younger than the file); then, in file
    order, a month more than six below the previous one (Jan after Dec) is a New Year.
    Months are taken in the order of the line they first appear on, so a few lines out of
    order around midnight change nothing.
    """
    months = [m for (m, _first) in con.execute("""
        SELECT month(mts) AS m, min(lineno) AS first FROM pf_ev
        WHERE NOT rfc AND mts IS NOT NULL GROUP BY 1 ORDER BY 2
    """).fetchall()]
    if not months:
        return "mts", first_year
    if first_year is None:
        anchor = anchor or dt.date.today()
        first_year = anchor.year - (1 if months[0] > anchor.month else 0)
    years: dict[int, int] = {}
    year = first_year
    previous = None
    for month in months:
        if previous is not None and month < previous - 6:
            year += 1
        years[month] = year
        previous = month
    whens = " ".join(f"WHEN {m} THEN {y - 2000}" for m, y in years.items())
    return f"CASE WHEN rfc THEN mts ELSE mts + to_years(CASE month(mts) {whens} END) END", first_year


def assign_sql(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    """``pf_ev0`` -> ``pf_ev``: session and transaction ids by window functions (the SQL path).

    A connection line (key ``ck``) gets the line number of the latest ``connect from`` of its
    key, so a pid reused later in the log starts a new session; lines before the first
    connect (the log began mid-session) form a session from the key's first line. A queue-id
    line (key ``qk``) gets the latest ``client=`` / pickup ``uid=`` line of its queue id; mail
    Postfix made itself starts at the queue id's first line. ``_pfscan`` does the same with
    two hash maps in one pass.
    """
    base = int(source_id) * ID_BASE
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_ev AS
        SELECT lineno, mts, rfc, role,
               CASE WHEN ck IS NOT NULL THEN
                    {base} + coalesce(max(CASE WHEN role = {R_CONNECT} THEN lineno END) OVER wc,
                                      first_value(lineno) OVER wc) END AS conn_session,
               CASE WHEN qk IS NOT NULL THEN
                    {base} + coalesce(max(CASE WHEN role IN ({R_CLIENT}, {R_PICKUP}) THEN lineno END) OVER wq,
                                      first_value(lineno) OVER wq) END AS txn_id,
               host, prog, pid, qid, other_prog, ip, name, a, b, c, body
        FROM pf_ev0
        WINDOW wc AS (PARTITION BY ck ORDER BY lineno ROWS UNBOUNDED PRECEDING),
               wq AS (PARTITION BY qk ORDER BY lineno ROWS UNBOUNDED PRECEDING)
    """)
    con.execute("DROP TABLE pf_ev0")


def sql_intermediates(con: duckdb.DuckDBPyConnection, ts: str) -> None:
    """The SQL path: ``pf_ev`` -> the intermediate tables `finish_tables` reads.

    ``_pfscan.Scanner`` produces the same tables (same names, columns and values) in one
    pass; ``ts`` is the SQL that puts a line's stamp in its year (`year_case`).
    """
    # The owner of each transaction: the connection of its client= line (or of any smtpd line
    # naming its queue id, when the log began after client=), else a session of its own.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_owner AS
        WITH m AS (
            SELECT txn_id, coalesce(max(conn_session) FILTER (WHERE role = {R_CLIENT}),
                                    max(conn_session)) AS conn_session
            FROM pf_ev WHERE txn_id IS NOT NULL AND conn_session IS NOT NULL
            GROUP BY txn_id
        )
        SELECT txn_id, coalesce(m.conn_session, txn_id) AS session_id, m.conn_session IS NULL AS orphan
        FROM (SELECT DISTINCT txn_id FROM pf_ev WHERE txn_id IS NOT NULL) LEFT JOIN m USING (txn_id)
    """)
    # Connections: each line brings only the small field its role carries.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_sess_info AS
        SELECT conn_session AS session_id,
               arg_min({ts}, lineno) AS first_ts, arg_max({ts}, lineno) AS last_ts, bool_or(rfc) AS any_rfc,
               any_value(host) AS host, any_value(prog) AS service, any_value(pid) AS pid,
               arg_min(ip, CASE WHEN ip IS NOT NULL THEN lineno END) AS ip,
               arg_min(name, CASE WHEN name IS NOT NULL THEN lineno END) AS name,
               max(CASE WHEN role = {R_CONNECT} THEN a END) AS port,
               max(CASE WHEN role = {R_CONNECT} THEN b END) AS server,
               arg_max(CASE WHEN role = {R_CLIENT} THEN a END,
                       CASE WHEN role = {R_CLIENT} AND a IS NOT NULL THEN lineno END) AS auth,
               count(*) FILTER (WHERE role = {R_AUTH_FAIL}) AS auth_failures,
               min(CASE WHEN role = {R_TLS} THEN a END) AS tls_info,
               max(CASE WHEN role = {R_DISCONNECT} THEN a END) AS commands,
               count(*) FILTER (WHERE role = {R_DISCONNECT}) AS disconnects,
               arg_max(CASE WHEN role = {R_END} THEN a END, CASE WHEN role = {R_END} THEN lineno END) AS ended,
               arg_max(CASE WHEN role = {R_REJECT} THEN a END,
                       CASE WHEN role = {R_REJECT} AND a IS NOT NULL THEN lineno END) AS helo,
               min(lineno) AS first_lineno, max(lineno) AS last_lineno, count(*) AS n_lines
        FROM pf_ev WHERE conn_session IS NOT NULL GROUP BY conn_session
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_txn_info AS
        WITH q AS (
            SELECT txn_id, lineno, role, rfc, {ts} AS ts, host, qid, a, b, c FROM pf_ev WHERE txn_id IS NOT NULL
        )
        SELECT txn_id, any_value(qid) AS queue_id, any_value(host) AS host, bool_or(rfc) AS any_rfc,
               min(CASE WHEN role = {R_MESSAGE_ID} THEN a END) AS message_id,
               bool_or(role = {R_QMGR_FROM}) AS queued,
               arg_min(CASE WHEN role = {R_QMGR_FROM} THEN a END, CASE WHEN role = {R_QMGR_FROM} THEN lineno END) AS qmgr_from,
               arg_min(CASE WHEN role = {R_QMGR_FROM} THEN b END, CASE WHEN role = {R_QMGR_FROM} THEN lineno END) AS size,
               arg_min(CASE WHEN role = {R_QMGR_FROM} THEN c END, CASE WHEN role = {R_QMGR_FROM} THEN lineno END) AS nrcpt,
               bool_or(role = {R_PICKUP}) AS picked_up,
               min(CASE WHEN role = {R_PICKUP} THEN a END) AS pickup_from,
               min(CASE WHEN role = {R_PICKUP} THEN b END) AS pickup_uid,
               bool_or(role = {R_REJECT}) AS rejected,
               arg_min(CASE WHEN role = {R_SUBJECT} THEN a END, CASE WHEN role = {R_SUBJECT} THEN lineno END) AS subject,
               arg_min(CASE WHEN role = {R_SPAM} THEN a END, CASE WHEN role = {R_SPAM} THEN lineno END) AS score,
               arg_min(CASE WHEN role = {R_SPAM} THEN b END, CASE WHEN role = {R_SPAM} THEN lineno END) AS required,
               bool_or(role = {R_REMOVED}) AS removed,
               min(ts) AS start_ts, max(ts) AS end_ts, min(lineno) AS first_lineno,
               max(lineno) AS last_lineno, count(*) AS n_lines
        FROM q GROUP BY txn_id
    """)
    # pf_sessions: the rows of `sessions` (connections, then transactions no connection owns).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_sessions AS
        SELECT session_id,
               CASE WHEN split_part(service, '/', -1) = 'postscreen' THEN 'postscreen' ELSE 'smtp' END AS kind,
               first_ts AS start_ts, last_ts AS end_ts,
               NOT any_rfc AS ts_is_local, host, service, pid,
               nullif(ip, '') AS client_ip,
               {strict_int("nullif(rtrim(port, ':'), '')", 'INTEGER')} AS client_port,
               nullif(nullif(name, ''), 'unknown') AS client_name,
               nullif(helo, '') AS helo,
               nullif(split_part(split_part(server, '[', 2), ']', 1), '') AS server_ip,
               {strict_int("nullif(split_part(server, ']:', 2), '')", 'INTEGER')} AS server_port,
               tls_info IS NOT NULL AS tls, nullif(tls_info, '') AS tls_info,
               nullif(split_part(split_part(auth, 'sasl_username=', 2), ',', 1), '') AS auth_user,
               nullif(split_part(auth, ',', 1), '') AS auth_method,
               auth_failures, NULL::VARCHAR AS local_user,
               coalesce(ended, CASE WHEN disconnects > 0 THEN 'disconnect' END) AS outcome,
               CASE WHEN split_part(service, '/', -1) = 'smtpd' THEN nullif(commands, '') END AS commands,
               first_lineno, last_lineno, n_lines
        FROM pf_sess_info
        UNION ALL
        SELECT txn_id, CASE WHEN picked_up THEN 'local' ELSE 'queue' END, start_ts, end_ts, NOT any_rfc, host,
               CASE WHEN picked_up THEN 'postfix/pickup' END, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               false, NULL, NULL, NULL, 0, CASE WHEN picked_up THEN 'uid=' || pickup_uid END, NULL, NULL,
               first_lineno, last_lineno, n_lines
        FROM pf_txn_info JOIN pf_owner USING (txn_id) WHERE orphan
    """)
    # Every reject line, cut into fields once, for rejects, transactions and recipients:
    # "NOQUEUE|QID: ACTION: STAGE from name[ip](:port): [CODE ][D.S.N ][<data>: ]reason; from=<> to=<> ...".
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_rej AS
        WITH r AS MATERIALIZED (
            SELECT coalesce(e.conn_session, o.session_id) AS session_id, e.txn_id, {ts} AS ts, lineno, qid,
                   body AS msg, split_part(body, ': ', 2) AS action, split_part(body, ': ', 3) AS who
            FROM pf_ev e LEFT JOIN pf_owner o USING (txn_id) WHERE role = {R_REJECT}
        ), s AS MATERIALIZED (
            SELECT *, substr(msg, length(split_part(msg, ': ', 1)) + length(action) + length(who) + 7) AS rest FROM r
        ), c AS MATERIALIZED (
            SELECT *, CASE WHEN regexp_matches(left(rest, 4), '^[245][0-9][0-9] ') THEN left(rest, 3) END AS code FROM s
        ), d AS MATERIALIZED (
            SELECT *, CASE WHEN code IS NOT NULL THEN substr(rest, 5) ELSE rest END AS rest2 FROM c
        ), e AS MATERIALIZED (
            SELECT *, CASE WHEN regexp_matches(split_part(rest2, ' ', 1), '^[245]\\.[0-9]{{1,3}}\\.[0-9]{{1,3}}$')
                           THEN split_part(rest2, ' ', 1) END AS dsn FROM d
        ), f AS MATERIALIZED (
            SELECT *, trim(split_part(split_part(CASE WHEN dsn IS NOT NULL THEN substr(rest2, length(dsn) + 2) ELSE rest2 END,
                                                 '; from=<', 1), ', from=<', 1), ' ') AS text FROM e
        )
        SELECT session_id, txn_id, ts, lineno, qid, action,
               nullif(split_part(who, ' ', 1), '') AS stage,
               nullif(split_part(split_part(who, '[', 2), ']', 1), '') AS client_ip,
               nullif(nullif(split_part(split_part(who, ' from ', 2), '[', 1), ''), 'unknown') AS client_name,
               code, dsn,
               -- "<rcpt@example.com>: Recipient address rejected: ..." -> the reason after the data
               ltrim(CASE WHEN starts_with(text, '<') AND contains(text, '>: ') THEN substr(text, strpos(text, '>: ') + 3)
                          ELSE text END, ': ') AS reason,
               pf_angle(msg, '; from=<') AS sender,
               pf_angle(msg, ' to=<') AS recipient,
               pf_angle(msg, ' helo=<') AS helo,
               nullif(rtrim(split_part(split_part(msg, 'proto=', 2), ' ', 1), ','), '') AS proto
        FROM f
""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pf_rejects AS
        SELECT session_id, ts, client_ip, client_name, stage, action, qid AS queue_id, code, dsn, reason,
               sender, recipient, helo, proto, lineno
        FROM pf_rej
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_txn AS
        WITH r AS (
            SELECT txn_id, arg_min(reason, lineno) AS reason, arg_min(sender, lineno) AS sender
            FROM pf_rej WHERE txn_id IS NOT NULL GROUP BY txn_id
        )
        SELECT o.session_id, txn_id, queue_id, message_id,
               CASE WHEN queued THEN qmgr_from WHEN picked_up THEN pickup_from ELSE r.sender END AS sender,
               {strict_int("nullif(size, '')", 'BIGINT')} AS size,
               (message_id IS NOT NULL OR queued) AND NOT rejected AS accepted,
               r.reason AS reject_reason, subject, start_ts, end_ts,
               {strict_double("nullif(score, '')")} AS spam_score,
               {strict_double("nullif(required, '')")} AS spam_threshold,
               {strict_int("nullif(nrcpt, '')", 'INTEGER')} AS nrcpt, removed
        FROM pf_txn_info JOIN pf_owner o USING (txn_id) LEFT JOIN r USING (txn_id)
    """)
    # Deliveries: "QID: to=<a>, [orig_to=<b>,] relay=..., delay=..., dsn=..., status=... (detail)".
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_recip AS
        WITH d AS (
            SELECT o.session_id, txn_id, qid, {ts} AS ts, lineno, substr(body, strlen(qid) + 3) AS body
            FROM pf_ev JOIN pf_owner o USING (txn_id) WHERE role = {R_DELIVERY}
        ), e AS MATERIALIZED (
            SELECT *, split_part(body, ', status=', 2) AS st FROM d
        )
        SELECT session_id, txn_id, qid AS queue_id,
               CASE WHEN starts_with(body, 'to=<') THEN pf_angle(body, 'to=<')
                    ELSE split_part(substr(body, 4), ',', 1) END AS address,
               CASE WHEN contains(body, ', orig_to=<') THEN pf_angle(body, ', orig_to=<')
                    ELSE nullif(split_part(split_part(body, ', orig_to=', 2), ',', 1), '') END AS orig_address,
               nullif(split_part(st, ' ', 1), '') AS status,
               nullif(split_part(split_part(body, ', relay=', 2), ', ', 1), '') AS relay,
               nullif(split_part(split_part(body, ', dsn=', 2), ',', 1), '') AS dsn,
               CASE WHEN contains(st, ' (') THEN rtrim(substr(st, strpos(st, ' (') + 2), ')') END AS detail,
               ts, lineno
        FROM e
    """)
    # A message refused after it got a queue id (cleanup/milter reject): its recipient, rejected.
    con.execute("""
        INSERT INTO pf_recip
        SELECT session_id, txn_id, qid, recipient, NULL, 'rejected', NULL, dsn, reason, ts, lineno
        FROM pf_rej WHERE txn_id IS NOT NULL AND recipient IS NOT NULL
    """)
    # AUTH: failures (warning lines) and successes (client= with sasl_username).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_auth AS
        SELECT lineno, conn_session AS session_id, {ts} AS ts,
               nullif(split_part(split_part(body, ']: SASL', 1), '[', -1), '') AS client_ip,
               nullif(split_part(split_part(body, 'sasl_username=', 2), ',', 1), '') AS user,
               nullif(split_part(split_part(body, ': SASL ', 2), ' ', 1), '') AS method,
               0::UTINYINT AS ok,
               nullif(split_part(split_part(body, 'authentication failed: ', 2), ', sasl_username=', 1), '') AS reason
        FROM pf_ev WHERE role = {R_AUTH_FAIL}
        UNION ALL
        SELECT lineno, conn_session, {ts}, nullif(ip, ''),
               nullif(split_part(split_part(a, 'sasl_username=', 2), ',', 1), ''),
               nullif(split_part(a, ',', 1), ''), 1::UTINYINT, NULL
        FROM pf_ev WHERE conn_session IS NOT NULL AND role = {R_CLIENT} AND a IS NOT NULL
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pf_sl AS
        SELECT coalesce(e.conn_session, o.session_id) AS session_id, lineno
        FROM pf_ev e LEFT JOIN pf_owner o USING (txn_id)
        WHERE e.conn_session IS NOT NULL OR e.txn_id IS NOT NULL
    """)


def index_columns(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    """{table: its columns} of the index's tables (fewer in an index narrowed by index_logs)."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                     "WHERE database_name = current_database() AND schema_name = 'main'").fetchall():
        have.setdefault(table, set()).add(column)
    return {table: frozenset(columns) for table, columns in have.items()}


# What store_statements stores: the index table, the intermediate table it comes from, its
# order (when the rows are not in order yet) and (index column, SELECT expression) pairs; a
# bare name is both. {sid} and {src} stand for the source's id and path.
_STORED: dict[str, tuple[str, str, str, tuple]] = {
    "sessions": ("sessions", "pf_sessions", "session_id", (
        "session_id", ("source_id", "{sid}"), ("dialect", "'postfix'"), ("source", "{src}"), "kind", "start_ts",
        "end_ts", ("ts_is_local", "ts_is_local::BOOLEAN"), "host", "service", "pid", "client_ip", "client_port",
        "client_name", "helo", "server_ip", "server_port", ("tls", "tls::BOOLEAN"), "tls_info", "auth_user",
        "auth_method", "auth_failures", "local_user", ("trusted", "NULL"), "outcome", "commands",
        "first_lineno", "last_lineno", "n_lines", ("defects", "NULL"))),
    "recipients": ("recipients", "pf_recip", "session_id, lineno", (
        "session_id", ("source_id", "{sid}"), "txn_id", "queue_id", "address", "orig_address", "status", "relay",
        "dsn", "detail", "ts", "lineno")),
    # Which lines make each session's transcript.
    "session_lines": ("session_lines", "pf_sl", "session_id, lineno", ("session_id", ("source_id", "{sid}"), "lineno")),
    "transactions": ("transactions", "pf_txn", "txn_id", (
        "session_id", ("source_id", "{sid}"), "txn_id", "queue_id", "message_id", "sender", "size",
        ("accepted", "accepted::BOOLEAN"), "reject_reason", "subject", "start_ts", "end_ts", "spam_score",
        "spam_threshold", "nrcpt", ("removed", "removed::BOOLEAN"))),
    # AUTH rows come slice by slice (both paths): sorted here, unless no look-ups (store_statements).
    "auth": ("auth_events", "pf_auth", "session_id, lineno", (
        "session_id", ("source_id", "{sid}"), "ts", "client_ip", "user", "method",
        ("ok", "ok::BOOLEAN"), "reason", "lineno")),
    "rejects": ("rejects", "pf_rejects", "session_id, lineno", (
        "session_id", ("source_id", "{sid}"), "ts", "client_ip", "client_name", "stage", "action", "queue_id",
        "code", "dsn", "reason", "sender", "recipient", "helo", "proto", "lineno")),
}


def store_statements(source_id: int, source: str, *, in_order: bool,
                     have: Mapping[str, Collection[str]] | None = None, lookups: bool = True,
                     transcripts: bool = True) -> dict[str, str]:
    """The INSERT of each index table from its intermediate table (pf_sessions, pf_txn, ...).

    ``in_order``: the rows are already in the order the index keeps (the compiled path makes
    them so: sessions, recipients, rejects and transcript lines by session, transactions by
    txn_id), so they are stored as they are instead of sorted again. ``have``: {table: its columns} of
    an index narrowed by ``index_logs(columns=...)``; the missing columns are not stored.
    ``lookups=False``: an index read by whole-table scans only (a hunt's) stores the AUTH rows
    as they arrived, slice by slice, instead of sorting them by session for look-ups (0.3-0.4 s
    of the 1 GiB bench log's load), and no look-up tables (``lookup_keys``, see lookup_statement).
    ``transcripts=False``: no ``session_lines``.
    """
    values = {"sid": str(int(source_id)), "src": "'" + source.replace("'", "''") + "'"}
    statements = {}
    for name, (table, intermediate, order, spec) in _STORED.items():
        if name == "session_lines" and not transcripts:
            continue
        pairs = [(c, c) if isinstance(c, str) else c for c in spec]
        if have is not None and table in have:
            pairs = [(c, e) for c, e in pairs if c in have[table]]
        columns = ", ".join(c for c, _ in pairs)
        exprs = ", ".join(e.format(**values) if "{" in e else e for _, e in pairs)
        ordered = f"ORDER BY {order}" if (name == "auth" and lookups) or not in_order else ""
        statements[name] = f"INSERT INTO {table} ({columns}) SELECT {exprs} FROM {intermediate} {ordered}"
    if lookups:
        statements["lookup_keys"] = lookup_statement(source_id)
    return statements


def lookup_statement(source_id: int) -> str:
    """Fill the look-up tables (message_ids, queue_ids) of one loaded file from its stored
    transactions, each sorted by its key: a look-up then reads one row group of each file.
    Every loader runs it once its transactions are stored (a hunt's index needs none)."""
    sid = int(source_id)
    return "; ".join(
        f"INSERT INTO {table} SELECT {key}, session_id, source_id FROM transactions "
        f"WHERE source_id = {sid} AND {key} IS NOT NULL AND session_id IS NOT NULL ORDER BY {key}"
        for table, key in (("message_ids", "message_id"), ("queue_ids", "queue_id")))


def finish_tables(con: duckdb.DuckDBPyConnection, source_id: int, source: str, *,
                  transcripts: bool = True, lookups: bool = True,
                  have: Mapping[str, Collection[str]] | None = None) -> None:
    """Fill the index tables from the intermediate tables of the SQL path, one after another."""
    statements = store_statements(source_id, source, in_order=False, have=have, lookups=lookups,
                                  transcripts=transcripts)
    for name in ("sessions", "recipients", "session_lines", "transactions", "lookup_keys", "auth", "rejects"):
        if name in statements:
            con.execute(statements[name])


def line_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """lines, unparsed (no syslog stamp/prefix), other (another program's well-formed lines)."""
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE mts IS NULL),
               count(*) FILTER (WHERE mts IS NOT NULL AND other_prog),
               count(*) FILTER (WHERE role <> {R_OTHER})
        FROM pf_ev
    """).fetchall()[0]
    return {"lines": row[0], "unparsed": row[1], "other": row[2], "understood": row[3]}


TEMP_TABLES = ("pf_ev0", "pf_ev", "pf_owner", "pf_sess_info", "pf_txn_info", "pf_sessions", "pf_txn", "pf_recip",
               "pf_auth", "pf_rejects", "pf_sl", "pf_rej")


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for name in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")


class NeedsCleanCopy(Exception):
    """The file must go through index.clean_copy first (CR line ends, invalid UTF-8, huge lines)."""


def _arrow_table(columns: dict):
    """Column buffers of ``_pfscan`` (kind, values, data, validity, nulls, rows) as a pyarrow table, no copy."""
    import pyarrow as pa

    arrays, names = [], []
    for name, (kind, values, data, valid, nulls, rows) in columns.items():
        validity = pa.py_buffer(valid) if valid is not None else None
        if kind == "s":
            array = pa.Array.from_buffers(pa.string(), rows, [validity, pa.py_buffer(values), pa.py_buffer(data)],
                                          null_count=nulls)
        else:
            typ = {"l": pa.int64(), "t": pa.timestamp("us"), "u": pa.uint8(), "d": pa.float64()}[kind]
            array = pa.Array.from_buffers(typ, rows, [validity, pa.py_buffer(values)], null_count=nulls)
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _check_slice(data: bytes, seen: int) -> None:
    """What read_csv could not take as it is goes through the clean copy, on both paths alike.
    ``seen``: what the scanner saw in these bytes (a CR, a byte that is not ASCII)."""
    if seen & _pfscan.SAW_CR:
        raise NeedsCleanCopy("CR line ends")
    if seen & _pfscan.SAW_NOT_ASCII:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise NeedsCleanCopy("invalid UTF-8") from None


def _slices(path: str, compression: str, start: int = 0, stop: int | None = None,
            spare: SimpleQueue | None = None) -> Iterator[bytearray]:
    """The file in slices cut at line ends (linestore.read_slices); a damaged compressed stream
    raises (the clean copy then loads what it can and says so), a line over 1 MiB too."""
    try:
        yield from linestore.read_slices(path, compression, SLICE_BYTES, max_line=4 * MAX_LINE_BYTES,
                                         start=start, stop=stop, spare=spare)
    except linestore.LineTooLong:
        raise NeedsCleanCopy("a line over 1 MiB") from None


SLICE_BYTES = linestore.SLICE_SIZE
# The compiled scanner's tables -> the intermediate tables of `finish_tables`.
SCANNER_TABLES = {"auth": "pf_auth", "sessions": "pf_sessions", "transactions": "pf_txn",
                  "recipients": "pf_recip", "rejects": "pf_rejects", "session_lines": "pf_sl"}

# A plain file at least this big is scanned in two halves side by side (two scanners, merged).
TWO_PARTS_MIN_BYTES = 64 << 20
# Where the second half begins: a little past the middle, because its scanner first skips the
# first half (0.25-0.35 s of the 2.3-2.6 s a half takes on the 1 GiB bench log, one core each);
# at the middle it ended that much after the first.
CUT_AT = 0.53


def split_point(path: str, compression: str) -> int | None:
    """Where to cut the file in two (the first byte of a line a little past its middle, see
    CUT_AT), or None: a compressed or small file, one CPU, or no line end after that."""
    if compression not in ("none", "", None) or (os.cpu_count() or 1) < 2:
        return None
    try:
        size = os.path.getsize(path)
        if size < TWO_PARTS_MIN_BYTES:
            return None
        with open(path, "rb") as fh:
            fh.seek(int(size * CUT_AT))
            chunk = fh.read(4 * MAX_LINE_BYTES)
    except OSError:
        return None
    nl = chunk.find(b"\n")
    cut = int(size * CUT_AT) + nl + 1
    return cut if 0 <= nl and cut < size else None


# on_slice(part, first line number, text, release): see scan_file.
SliceFn = Callable[[int, int, bytearray, Callable[[bytearray], None]], None]


def scan_file(path: str, *, source_id: int, first_year: int | None,
              anchor: dt.date | None, compression: str = "none", on_slice: SliceFn | None = None,
              cut: int | None = None, transcripts: bool = True, on_read: Callable[[], None] | None = None,
              columns: Mapping[str, Collection[str]] | None = None):
    """Feed the file to the compiled scanner, one slice of text in memory at a time.

    With ``cut`` (see `split_point`), two threads scan the halves side by side: the second
    scanner skips the first half's lines (line numbers, the year rule) and scans its own,
    then is merged into the first (``Scanner.merge``); if the halves cannot be merged exactly,
    the second half is scanned again by the first scanner. The AUTH events are kept slice by
    slice (Arrow); everything else waits in the scanner until it is finished (see `load_file`).
    ``on_slice(part, first_lineno, data, release)`` gets every slice, in file order within its
    part, and calls ``release(data)`` (from this thread) once it holds no view of it any more:
    released slices are read into again instead of allocated anew (fresh memory: the slices of
    the 1 GiB bench log took 265 MiB of new pages, zeroed, and the line store's compression
    holds a few at a time). Without ``on_slice`` each slice is released once scanned. ``transcripts=False``: the scanner keeps no session_lines.
    ``on_read()`` is called once every slice is read and scanned, before the halves are merged.
    ``columns``: {table: names} of the columns that will be built (`index_columns`); the scanners
    keep no strings for the others (a hunt's narrowed index: 200 MiB less on the 1 GiB bench log).
    Returns the scanner and the AUTH rows (a pyarrow Table, file order within each half).
    """
    anchor = anchor or dt.date.today()

    try:  # what each scanner reads, so that it sizes its maps once (a compressed file: unknown)
        size = os.path.getsize(path) if compression in ("none", "", None) else 0
    except OSError:
        size = 0

    def new_scanner(part_bytes: int):
        return _pfscan.Scanner(int(source_id) * ID_BASE, first_year or 0, anchor.year, anchor.month,
                               transcripts=transcripts, columns=columns, size_hint=part_bytes)

    scanners = ([new_scanner(size)] if cut is None else [new_scanner(cut), new_scanner(max(0, size - cut))])
    # each part's AUTH rows, slice by slice (as Arrow), stored in one INSERT at the end (see
    # store_finished): one per slice took 0.2-0.3 s of this thread's CPU beside the scanners
    auth: list[list] = [[] for _ in scanners]

    # Reader threads read and scan (the scanner releases the GIL); this one keeps the AUTH
    # rows and hands the text to the line store meanwhile.
    queue: Queue = Queue(maxsize=2 * len(scanners))
    stop = threading.Event()
    spares = [SimpleQueue() for _ in scanners]

    def produce(part: int) -> None:
        scanner = scanners[part]
        try:
            first = 1 + (_skip(scanner, path, cut) if part == 1 else 0)
            for data in _slices(path, compression, *((0, cut) if part == 0 else (cut, None)), spare=spares[part]):
                if stop.is_set():
                    return
                _rows, longest, tables, seen = scanner.scan(data)
                if seen:
                    _check_slice(data, seen)
                if longest > 4 * MAX_LINE_BYTES:
                    raise NeedsCleanCopy("a line over 1 MiB")
                queue.put((part, first, data, tables))
            queue.put(part)
        except BaseException as exc:  # handed over to the consumer, raised there
            queue.put(exc)

    readers = [threading.Thread(target=produce, args=(part,), name=f"mw-pfscan{part}", daemon=True)
               for part in range(len(scanners))]
    for reader in readers:
        reader.start()
    try:
        running = len(readers)
        while running:
            item = queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, int):
                running -= 1
                continue
            part, first, data, tables = item
            if tables["auth"]["lineno"][-1]:  # any AUTH rows (a column's last field counts them)
                auth[part].append(_arrow_table(tables["auth"]))
            if on_slice:
                on_slice(part, first, data, spares[part].put)
            else:
                spares[part].put(data)
            del data
    except (EOFError, OSError, zlib.error) as exc:
        raise duckdb.IOException(f"{path}: {exc}") from exc
    finally:
        stop.set()
        for reader in readers:  # let the readers finish (or fail) before a scanner is used again
            while reader.is_alive():
                with contextlib.suppress(Empty):
                    queue.get(timeout=0.1)
            reader.join()
    if on_read:
        on_read()
    import pyarrow as pa

    scanner = scanners[0]
    tables = auth[0] or [_arrow_table(scanner.scan(b"")[2]["auth"])]
    if len(scanners) == 2:
        tables += _merge_later(path, compression, scanner, scanners[1], cut, auth[1])
    return scanner, pa.concat_tables(tables)


def _skip(scanner, path: str, cut: int) -> int:
    """Let the second half's scanner skip the first half (a plain file), mapped rather than read:
    no copy, nothing zeroed. Returns the number of lines skipped."""
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), cut, access=mmap.ACCESS_READ) as mapped:
        with memoryview(mapped) as view:
            return scanner.skip(view)


def _merge_later(path: str, compression: str, scanner, later, cut: int | None, later_auth: list) -> list:
    """Fold the second half's scanner into the first; returns the second half's AUTH rows
    (Arrow tables) with the session ids the merge gave them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    renamed = scanner.merge(later)
    if renamed is None:  # not exactly mergeable: the first scanner reads the second half too
        return [_arrow_table(scanner.scan(data)[2]["auth"]) for data in _slices(path, compression, cut, None)]
    if not renamed:
        return later_auth
    old_ids, new_ids = (pa.array(c, pa.int64()) for c in zip(*renamed, strict=True))

    def rename(table):
        ids = table.column("session_id")
        new = pc.take(new_ids, pc.index_in(ids, value_set=old_ids))
        return table.set_column(table.schema.get_field_index("session_id"), "session_id", pc.coalesce(new, ids))

    return [rename(t) for t in later_auth]


def load_file(con: duckdb.DuckDBPyConnection, csv_path: str, *, source_id: int, source: str,
              first_year: int | None, anchor: dt.date | None = None, compression: str = "none",
              transcripts: bool = True, lookups: bool = True,
              progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Parse one Postfix syslog file into the index tables; returns line counts.

    The caller owns the transaction (a failed load leaves nothing behind). ``transcripts=False``:
    no raw lines (``line_blocks``) and no ``session_lines`` (a hunt's throw-away index).
    ``lookups=False``: no look-up tables, and rows need no order for point look-ups (the same;
    see store_statements).
    Only the columns the index's tables have are built and stored (see index_logs' columns).
    """
    have = index_columns(con)
    if _pfscan is None or not fits_in_memory(csv_path, compression):
        try:
            with _line_writer(con, source_id, transcripts) as raw_lines:
                counts = _sql_path(con, csv_path, source_id, first_year, anchor, compression)
                for data in _slices(csv_path, compression):
                    raw_lines.add(data)
            con.execute("RESET preserve_insertion_order")
            finish_tables(con, source_id, source, transcripts=transcripts, lookups=lookups, have=have)
            return counts
        finally:
            con.execute("RESET preserve_insertion_order")
            drop_temp(con)
    raw_lines = _PartWriters(con, source_id) if transcripts else _NoLines()
    read = 0

    def on_slice(part: int, first_lineno: int, data: bytearray, release) -> None:
        nonlocal read
        if transcripts:
            raw_lines.add(part, first_lineno, data, release)
        else:
            release(data)
        read += len(data)
        if progress:
            progress(read)

    try:
        try:
            scanner, auth = scan_file(csv_path, source_id=source_id, first_year=first_year, anchor=anchor,
                                      compression=compression, on_slice=on_slice,
                                      cut=split_point(csv_path, compression), transcripts=transcripts,
                                      columns=have, on_read=raw_lines.start_closing)
        except OverflowError as exc:  # over 2^32 lines: the scanner's transcripts cannot number them
            raw_lines.abort()
            raise NeedsCleanCopy(str(exc)) from None
        except BaseException:
            raw_lines.abort()
            raise
        counts = scanner.finish_begin()
        statements = store_statements(source_id, source, in_order=True, have=have, lookups=lookups,
                                      transcripts=transcripts)
        store_finished(con, scanner, auth, statements, raw_lines, have=have)
        return counts
    finally:
        drop_temp(con)


# Which connection stores which table (the raw-line blocks have one of their own, see
# _PartWriters): about the same work on each. On the 1 GiB bench log, side by side: sessions
# 2.9 s and recipients 1.4 s; transactions 1.5, rejects 0.9, session_lines 0.6, the look-up
# tables 1.1 (after transactions: they are read from it) and the AUTH rows 0.3.
STORE_PLAN = (("sessions", "side"), ("transactions", "main"), ("recipients", "side"), ("rejects", "main"),
              ("session_lines", "main"), ("lookup_keys", "main"), ("auth", "main"))

# Rows of a finished table built at a time: one DuckDB row group (122,880 rows). Not a multiple
# of it, and DuckDB writes a part-filled row group for each chunk: 131,072-row chunks took twice
# the CPU to store the sessions of the 1 GiB bench log, into a file twice the size.
CHUNK_ROWS = 122_880


def _table_stream(scanner, name: str, columns: Collection[str] | None):
    """A finished table as a pyarrow RecordBatchReader, built chunk by chunk as DuckDB reads it:
    the chunks' memory is used again (the whole tables took 1.2 GiB of fresh pages, about 300 k
    page faults, on the 1 GiB bench log), and building overlaps storing."""
    import pyarrow as pa

    rows = scanner.finish_rows(name)
    first = _arrow_table(scanner.finish_table(name, columns, 0, min(rows, CHUNK_ROWS)))

    def batches():
        yield from first.to_batches()
        for start in range(CHUNK_ROWS, rows, CHUNK_ROWS):
            chunk = scanner.finish_table(name, columns, start, min(rows, start + CHUNK_ROWS))
            yield from _arrow_table(chunk).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor on the database ``con`` uses: a DuckDB cursor is a new connection, which starts in
    the instance's default database, not the one ``con`` switched to (index.connect(bulk=True)
    attaches the index to an in-memory instance)."""
    ((name,),) = con.execute("SELECT current_database()").fetchall()
    cur = con.cursor()
    cur.execute('USE "' + name.replace('"', '""') + '"')
    return cur


def store_finished(con: duckdb.DuckDBPyConnection, scanner, auth, statements: dict[str, str], raw_lines, *,
                   have: Mapping[str, Collection[str]] | None = None) -> None:
    """Store the scanner's finished tables, each built chunk by chunk as it is stored, and the
    AUTH rows (``auth``, the Arrow table scan_file returned), then the look-up tables when
    ``statements`` has them (from the stored transactions, on the connection that stored them).

    Two DuckDB connections store them side by side (DuckDB writes a table mostly on one core),
    each building the chunks it reads (C, GIL released); ``raw_lines.close()`` at the end.
    Only the columns the index's table has are built (all but in a hunt's throw-away index).
    The scanner's state is freed at the end, in a thread of its own.
    """
    plan = [(name, where) for name, where in STORE_PLAN if name in statements]
    have = have or {}
    side = cursor(con)
    storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mw-index")

    def store(c: duckdb.DuckDBPyConnection, name: str) -> None:
        if name not in SCANNER_TABLES:   # the look-up tables: SQL over what is stored already
            c.execute(statements[name])
            return
        view = SCANNER_TABLES[name]
        c.register(view, auth if name == "auth" else _table_stream(scanner, name, have.get(name)))
        try:
            c.execute(statements[name])
        finally:
            c.unregister(view)
        if name != "auth":   # its memory serves the tables still to come (scanner.finish_done)
            scanner.finish_done(name)

    try:
        side_done = storer.submit(lambda: [store(side, name) for name, where in plan if where == "side"])
        try:
            for name, where in plan:
                if where == "main":
                    store(con, name)
            raw_lines.close()  # the blocks, stored meanwhile (start_closing) or now
        finally:
            side_done.result()
    except BaseException:
        with contextlib.suppress(Exception):
            raw_lines.abort()
        raise
    finally:
        storer.shutdown(wait=True)
        # The scanner's memory (over 1 GiB for the 1 GiB bench log) is given back in a thread
        # of its own, beside the checkpoint that follows: 0.05-0.1 s on one core otherwise.
        threading.Thread(target=_release, args=(scanner,), name="mw-release", daemon=True).start()
        side.close()


def _release(scanner) -> None:
    with contextlib.suppress(RuntimeError):
        scanner.finish_end()


# The compiled scanner holds the file's sessions and transactions in memory until the end
# (peak about 1.6x the log's size for the 1 GiB bench log since the raw-line frames are joined
# as they come, 2.2-2.3x since the tables are stored chunk by chunk, 3.3-3.5x before; 3x
# leaves a margin). A log whose estimate exceeds this
# share of the machine's RAM goes the SQL way instead, which spills to disk beyond
# MAILWARDEN_INDEX_MEMORY: slower, but bounded.
MEMORY_PER_LOG_BYTE = 3.0
RAM_SHARE = 0.5
GZIP_RATIO = 6  # a compressed syslog holds about this many times its size (bench log: 5.6)


def fits_in_memory(path: str, compression: str = "none") -> bool:
    """Whether the compiled scanner's estimated peak for ``path`` fits in RAM_SHARE of the RAM."""
    try:
        size = os.path.getsize(path) * (GZIP_RATIO if compression == "gzip" else 1)
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return True
    return size * MEMORY_PER_LOG_BYTE <= ram * RAM_SHARE


class _PartWriters:
    """The raw lines of a file scanned in parts: a linestore.BlockWriter per part, each
    numbering its lines from the part's first line. They store their blocks on a connection of
    their own, and ``start_closing`` does it in a thread of its own: the merge of the halves
    (0.4-0.5 s on one core) and the blocks' INSERT (about as long) then run side by side."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source_id: int) -> None:
        self.con, self.source_id = cursor(con), source_id
        self.writers: dict[int, linestore.BlockWriter] = {}
        self._closer: ThreadPoolExecutor | None = None
        self._closing = None

    def add(self, part: int, first_lineno: int, data, release=None) -> int:
        writer = self.writers.get(part)
        if writer is None:
            writer = self.writers[part] = linestore.BlockWriter(self.con, self.source_id, first_lineno=first_lineno)
        return writer.add(data, release)

    def start_closing(self) -> None:
        if self._closing is None:
            self._closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mw-lines")
            self._closing = self._closer.submit(self._close)

    def _close(self) -> int:
        try:
            lines = sum(self.writers[part].close() for part in sorted(self.writers))
            # Write the blocks to the file now, while the halves are merged (one core) and no
            # other connection writes yet, rather than in the checkpoint after the file, when
            # nothing else runs: 0.46 -> 0.17 s at the end of the 1 GiB bench log's load. A
            # checkpoint refused because another write has begun leaves it to that one.
            with contextlib.suppress(duckdb.TransactionException):
                self.con.execute("CHECKPOINT")
            return lines
        finally:
            self.con.close()

    def close(self) -> int:
        """Store the blocks (or wait for start_closing to have stored them); the line count."""
        if self._closing is None:
            return self._close()
        try:
            return self._closing.result()
        finally:
            self._closer.shutdown(wait=True)

    def abort(self) -> None:
        if self._closing is not None:   # let a running close end first (the caller deletes its rows)
            with contextlib.suppress(Exception):
                self.close()
        for writer in self.writers.values():
            writer.abort()
        with contextlib.suppress(duckdb.Error):
            self.con.close()


class _NoLines:
    """Stands in for linestore.BlockWriter when no raw lines are kept."""

    def __enter__(self) -> _NoLines:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add(self, *data) -> int:
        return 0

    def start_closing(self) -> None:
        return None

    def close(self) -> int:
        return 0

    def abort(self) -> None:
        return None


def _line_writer(con: duckdb.DuckDBPyConnection, source_id: int, transcripts: bool):
    return linestore.BlockWriter(con, source_id) if transcripts else _NoLines()


def _sql_path(con, csv_path, source_id, first_year, anchor, compression) -> dict[str, int]:
    con.execute("RESET preserve_insertion_order")  # row_number() numbers lines in file order
    stage_lines(con, read_csv_sql(csv_path, compression))
    # Only the read needs rows in file order; the steps after it carry lineno.
    con.execute("SET preserve_insertion_order = false")
    assign_sql(con, source_id)
    ts, year = year_case(con, first_year, anchor=anchor)
    sql_intermediates(con, ts)
    return {**line_counts(con), "first_year": year}
