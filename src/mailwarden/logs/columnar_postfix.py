"""The fast Postfix path: a whole syslog file parsed as columns in DuckDB SQL.

Instead of a Python loop over lines, DuckDB reads the file (``read_csv`` with one VARCHAR
column), cuts the syslog prefix with plain string functions, and builds sessions with window
functions (measured speed: docs/log-index.md):

* connection lines (smtpd ``host/service[pid]``, postscreen ``[ip]:port``) get the line
  number of the latest ``connect from`` / ``CONNECT from`` of the same key, so a pid reused
  later in the log starts a new session;
* queue-id lines get the line number of the latest ``client=`` / pickup ``uid=`` line of the
  same queue id (a transaction); a queue id reused later starts a new transaction;
* the ``client=`` line carries both, which ties a transaction to its session.

Then aggregates fill ``sessions``, ``transactions``, ``recipients``, ``auth_events``,
``rejects`` and ``session_lines`` (schema.sql); ``lines`` gets every raw line first, and the
parse reads it back from there, so the file is read once. Each line's role (connect,
client=, delivery ...) is computed once as a small integer so that the aggregates filter on
integers, not strings. Every pattern is anchored and bounded (DuckDB's
regular expressions are RE2: linear time, no backtracking), and most fields are cut with
``split_part``/``strpos``, which are faster than any regex.

Classic syslog has no year. Lines are stamped in year 2000 (a leap year, so ``Feb 29``
parses) and moved to their real year afterwards (`year_case`, the same rule as the Python
readers): the first month gets the year given (or the mtime's), and in the order months first
appear a drop of more than six months (Dec -> Jan) is a New Year. A few lines out of order
around midnight change nothing.
"""

from __future__ import annotations

import datetime as dt

import duckdb

DIALECT = "postfix"
# session_id / txn_id = source_id * ID_BASE + line number (see schema.sql).
ID_BASE = 10**12
# A file with a line over 4 x MAX_LINE_BYTES (1 MiB) goes through index.py's clean copy,
# which cuts every line to MAX_LINE_BYTES (256 KiB); the margin covers U+FFFD expansion.
MAX_LINE_BYTES = 1 << 18

# Short (hex) and long (base-52 without vowels) Postfix queue ids, anchored at the message start.
# No capture groups in hot paths: RE2 answers yes/no with its DFA, submatches cost ~10x more.
QID_RE = r"^(?:[0-9A-F]{5,14}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{12,20}): "
REJECT_ACTIONS = "(?:reject|reject_warning|milter-reject|discard|milter-discard|proxy-reject)"


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


def load_raw_lines(con: duckdb.DuckDBPyConnection, relation_sql: str, source_id: int) -> None:
    """Every physical line into ``lines`` (zstd: 5x smaller than the default here, and faster).

    ``preserve_insertion_order = false`` halves this step (measured: 1.1 s -> 0.6 s per million
    lines): the numbering is still file order (row_number() OVER () runs in DuckDB's
    order-keeping streaming window; checked on the 1 GiB bench log: bench/logs_vs_pflogsumm.py),
    only the storage order of the rows may interleave a little, which the zone maps tolerate.
    """
    con.execute("SET force_compression = 'zstd'")
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(f"""
            INSERT INTO lines (source_id, lineno, text)
            SELECT {int(source_id)}, row_number() OVER (), coalesce(line, '') FROM {relation_sql}
        """)
    finally:
        con.execute("SET force_compression = 'auto'")
        con.execute("RESET preserve_insertion_order")


def stage_lines(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    """Parse the loaded lines into temp table ``pf_ev``.

    The syslog prefix ends at the first ": " (classic "Mar  1 06:00:00 host prog[pid]: ",
    RFC 3339 "2024-08-29T01:08:59.76+00:00 host prog[pid]: "); its last two words are the host
    and the tag. Classic stamps get year 2000 here (see `year_case`). Lines of other programs
    are kept (counted as "other"); lines without a stamp have ``mts`` NULL (unparsed).
    """
    con.execute(ANGLE_MACRO)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_ev AS
        WITH h AS (
            SELECT lineno, text,
                   substr(text, 5, 1) = '-' AS rfc,
                   split_part(text, ': ', 1) AS head
            FROM lines WHERE source_id = {int(source_id)}
        ), f AS (
            SELECT lineno, rfc,
                   CASE WHEN rfc THEN timezone('UTC', TRY_CAST(split_part(head, ' ', 1) AS TIMESTAMPTZ))
                        ELSE TRY_STRPTIME('2000 ' || left(head, 15), '%Y %b %d %H:%M:%S') END AS mts,
                   split_part(head, ' ', -2) AS host,
                   split_part(split_part(head, ' ', -1), '[', 1) AS prog,
                   TRY_CAST(rtrim(split_part(split_part(head, ' ', -1), '[', 2), ']') AS BIGINT) AS pid,
                   substr(text, length(head) + 3) AS msg
            FROM h
        ), g AS (
            SELECT *, split_part(prog, '/', -1) AS daemon,
                   CASE WHEN regexp_matches(msg, '{QID_RE}') THEN split_part(msg, ': ', 1) END AS qid
            FROM f
        )
        SELECT lineno, rfc, mts, host, prog, daemon, pid, msg, qid,
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
               END::UTINYINT AS role
        FROM g
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


def assign(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    """Session and transaction ids by window functions (pid / queue id reuse safe).

    Works on a narrow table of integer keys (hashes), so the sorts behind the windows move
    a few bytes per line, not the text. Results: ``pf_conn(lineno, conn_session)``,
    ``pf_txn(lineno, txn_id, on_conn)`` and ``pf_txn_map(txn_id, session_id)``.
    """
    base = int(source_id) * ID_BASE
    # ck: the connection a line belongs to (smtpd process; postscreen client "[ip]:port").
    # qk: the message (host + queue id).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pf_keys AS
        SELECT lineno, role,
               CASE WHEN daemon = 'smtpd' THEN hash(host, prog, pid)
                    WHEN daemon = 'postscreen' AND contains(msg, '[') THEN
                         hash(host, rtrim(split_part(split_part(msg, '[', 2), ' ', 1), ':'))
               END AS ck,
               CASE WHEN qid IS NOT NULL THEN hash(host, qid) END AS qk
        FROM pf_ev WHERE mts IS NOT NULL AND starts_with(prog, 'postfix')
    """)
    # A connection line gets the latest connect of its key; lines before the first connect
    # (the log began mid-session) form a session from the key's first line.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_conn AS
        SELECT lineno, {base} + coalesce(max(CASE WHEN role = {R_CONNECT} THEN lineno END) OVER w,
                                         first_value(lineno) OVER w) AS conn_session
        FROM pf_keys WHERE ck IS NOT NULL
        WINDOW w AS (PARTITION BY ck ORDER BY lineno ROWS UNBOUNDED PRECEDING)
    """)
    # A queue-id line gets the latest client= / pickup uid= of its queue id; mail Postfix
    # made itself (bounces) starts at the queue id's first line.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_txn AS
        SELECT lineno, ck IS NOT NULL AS on_conn,
               {base} + coalesce(max(CASE WHEN role IN ({R_CLIENT}, {R_PICKUP}) THEN lineno END) OVER w,
                                 first_value(lineno) OVER w) AS txn_id
        FROM pf_keys WHERE qk IS NOT NULL
        WINDOW w AS (PARTITION BY qk ORDER BY lineno ROWS UNBOUNDED PRECEDING)
    """)
    # A transaction belongs to the connection of its client= line (or of any smtpd line that
    # names its queue id, when the log began after client=). Those without one
    # (pickup, bounces, log began mid-flight) become their own session, keyed by txn_id.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_txn_map AS
        SELECT t.txn_id, coalesce(max(c.conn_session) FILTER (WHERE k.role = {R_CLIENT}),
                                  max(c.conn_session), t.txn_id) AS session_id,
               max(c.conn_session) IS NULL AS orphan
        FROM pf_txn t JOIN pf_keys k USING (lineno) LEFT JOIN pf_conn c USING (lineno)
        GROUP BY t.txn_id
    """)


def _stage_rejects(con: duckdb.DuckDBPyConnection, ts: str) -> None:
    """Every reject line, cut into fields once (``pf_rej``), for rejects, transactions, recipients."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_rej AS
        WITH r AS MATERIALIZED (
            SELECT coalesce(c.conn_session, m.session_id) AS session_id, t.txn_id, {ts} AS ts, lineno, qid, msg,
                   split_part(msg, ': ', 2) AS action, split_part(msg, ': ', 3) AS who
            FROM pf_ev LEFT JOIN pf_conn c USING (lineno) LEFT JOIN pf_txn t USING (lineno)
                 LEFT JOIN pf_txn_map m USING (txn_id)
            WHERE role = {R_REJECT}
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
                                                 '; from=<', 1), ', from=<', 1)) AS text FROM e
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


def build_tables(con: duckdb.DuckDBPyConnection, source_id: int, source: str, first_year: int | None,
                 anchor: dt.date | None = None) -> int | None:
    """Fill the index tables from ``pf_ev`` and the id tables of `assign`; returns the first line's year."""
    src = source.replace("'", "''")
    sid = int(source_id)
    ts, first_year = year_case(con, first_year, anchor=anchor)

    # Sessions from connection lines. Each line contributes only the small field its role
    # carries (cut before aggregating): string aggregates over whole lines are what is slow.
    con.execute(f"""
        INSERT INTO sessions (session_id, source_id, dialect, source, kind, start_ts, end_ts, ts_is_local,
            host, service, pid, client_ip, client_port, client_name, helo, server_ip, server_port,
            tls, tls_info, auth_user, auth_method, auth_failures, local_user, trusted, outcome, commands,
            first_lineno, last_lineno, n_lines, defects)
        WITH info AS MATERIALIZED (
            -- CASE inside the aggregate, not FILTER: the field is then cut only on the lines
            -- that carry it (DuckDB evaluates an aggregate's argument before its FILTER).
            SELECT conn_session AS session_id,
                   arg_min(mts, lineno) AS first_mts, arg_max(mts, lineno) AS last_mts, bool_or(rfc) AS any_rfc,
                   any_value(host) AS host, any_value(prog) AS service, any_value(pid) AS pid,
                   any_value(daemon) AS daemon,
                   -- the client is in the first [...] of connect, client=, reject, warning, disconnect lines
                   arg_min(CASE WHEN role <> {R_OTHER} THEN split_part(split_part(msg, '[', 2), ']', 1) END,
                           CASE WHEN role <> {R_OTHER} THEN lineno END) AS ip,
                   arg_min(CASE WHEN role <> {R_OTHER} AND daemon = 'smtpd'
                                THEN replace(split_part(split_part(msg, '[', 1), ' ', -1), 'client=', '') END,
                           CASE WHEN role <> {R_OTHER} AND daemon = 'smtpd' THEN lineno END) AS name,
                   max(CASE WHEN role = {R_CONNECT} AND daemon = 'postscreen'
                            THEN split_part(split_part(msg, ']:', 2), ' ', 1) END) AS port,
                   max(CASE WHEN role = {R_CONNECT} AND daemon = 'postscreen' THEN split_part(msg, ' to ', 2) END) AS server,
                   arg_max(CASE WHEN role = {R_CLIENT} AND contains(msg, 'sasl_username=')
                                THEN split_part(msg, ', sasl_method=', 2) END,
                           CASE WHEN role = {R_CLIENT} AND contains(msg, 'sasl_username=') THEN lineno END) AS auth,
                   count(*) FILTER (WHERE role = {R_AUTH_FAIL}) AS auth_failures,
                   min(CASE WHEN role = {R_TLS} THEN split_part(msg, ']: ', 2) END) AS tls_info,
                   max(CASE WHEN role = {R_DISCONNECT} THEN split_part(msg, '] ', 2) END) AS commands,
                   count(*) FILTER (WHERE role = {R_DISCONNECT}) AS disconnects,
                   arg_max(CASE WHEN role = {R_END} THEN
                                CASE WHEN starts_with(msg, 'PASS ') THEN lower(split_part(msg, ' [', 1))
                                     WHEN starts_with(msg, 'HANGUP ') OR starts_with(msg, 'PREGREET ')
                                          THEN lower(split_part(msg, ' ', 1))
                                     ELSE split_part(msg, ' from ', 1) END END,
                           CASE WHEN role = {R_END} THEN lineno END) AS ended,
                   arg_max(CASE WHEN role = {R_REJECT} AND contains(msg, 'helo=<')
                                THEN pf_angle(msg, ' helo=<') END,
                           CASE WHEN role = {R_REJECT} AND contains(msg, 'helo=<') THEN lineno END) AS helo,
                   min(lineno) AS first_lineno, max(lineno) AS last_lineno, count(*) AS n_lines
            FROM pf_ev JOIN pf_conn USING (lineno) GROUP BY conn_session
        )
        SELECT session_id, {sid}, 'postfix', '{src}',
               CASE WHEN daemon = 'postscreen' THEN 'postscreen' ELSE 'smtp' END,
               {ts.replace("mts", "first_mts").replace("rfc", "any_rfc")},
               {ts.replace("mts", "last_mts").replace("rfc", "any_rfc")},
               NOT any_rfc, host, service, pid,
               nullif(ip, ''),
               TRY_CAST(nullif(rtrim(port, ':'), '') AS INTEGER),
               nullif(nullif(name, ''), 'unknown'),
               nullif(helo, ''),
               nullif(split_part(split_part(server, '[', 2), ']', 1), ''),
               TRY_CAST(nullif(split_part(server, ']:', 2), '') AS INTEGER),
               tls_info IS NOT NULL, nullif(tls_info, ''),
               nullif(split_part(split_part(auth, 'sasl_username=', 2), ',', 1), ''),
               nullif(split_part(auth, ',', 1), ''),
               auth_failures, NULL, NULL,
               coalesce(ended, CASE WHEN disconnects > 0 THEN 'disconnect' END),
               CASE WHEN daemon = 'smtpd' THEN nullif(commands, '') END,
               first_lineno, last_lineno, n_lines, NULL
        FROM info ORDER BY session_id
    """)

    _stage_rejects(con, ts)

    # Transactions.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pf_txn_info AS
        SELECT t.txn_id, any_value(m.session_id) AS session_id, any_value(m.orphan) AS orphan, any_value(qid) AS queue_id,
               any_value(host) AS host, bool_or(rfc) AS any_rfc,
               min(msg) FILTER (WHERE role = {R_MESSAGE_ID}) AS mid_msg,
               arg_min(msg, lineno) FILTER (WHERE role = {R_QMGR_FROM}) AS qmgr_msg,
               min(msg) FILTER (WHERE role = {R_PICKUP}) AS pickup_msg,
               bool_or(role = {R_REJECT}) AS rejected,
               arg_min(msg, lineno) FILTER (WHERE role = {R_SUBJECT}) AS subject_msg,
               arg_min(msg, lineno) FILTER (WHERE role = {R_SPAM}) AS spam_msg,
               bool_or(role = {R_REMOVED}) AS removed,
               min({ts}) AS start_ts, max({ts}) AS end_ts, min(lineno) AS first_lineno,
               max(lineno) AS last_lineno, count(*) AS n_lines
        FROM pf_ev JOIN pf_txn t USING (lineno) JOIN pf_txn_map m USING (txn_id)
        GROUP BY t.txn_id
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pf_txn_rej AS
        SELECT txn_id, arg_min(reason, lineno) AS reason, arg_min(sender, lineno) AS sender
        FROM pf_rej WHERE txn_id IS NOT NULL GROUP BY txn_id
    """)
    con.execute(f"""
        INSERT INTO transactions (session_id, source_id, txn_id, queue_id, message_id, sender, size, accepted,
            reject_reason, subject, start_ts, end_ts, spam_score, spam_threshold, nrcpt, removed)
        SELECT session_id, {sid}, txn_id, queue_id,
               trim(split_part(mid_msg, 'message-id=', 2), '<> '),
               CASE WHEN qmgr_msg IS NOT NULL THEN pf_angle(qmgr_msg, ': from=<')
                    WHEN pickup_msg IS NOT NULL THEN pf_angle(pickup_msg, ' from=<')
                    ELSE r.sender END,
               TRY_CAST(nullif(split_part(split_part(qmgr_msg, ', size=', 2), ',', 1), '') AS BIGINT),
               (mid_msg IS NOT NULL OR qmgr_msg IS NOT NULL) AND NOT rejected,
               r.reason,
               CASE WHEN subject_msg IS NOT NULL THEN
                    split_part(split_part(subject_msg, ' header Subject: ', 2), ' from ', 1) END,
               start_ts, end_ts,
               TRY_CAST(nullif(split_part(split_part(spam_msg, ' score=', 2), ' ', 1), '') AS DOUBLE),
               TRY_CAST(nullif(split_part(split_part(spam_msg, ' required=', 2), ' ', 1), '') AS DOUBLE),
               TRY_CAST(nullif(split_part(split_part(qmgr_msg, ', nrcpt=', 2), ' ', 1), '') AS INTEGER),
               removed
        FROM pf_txn_info LEFT JOIN pf_txn_rej r USING (txn_id)
        ORDER BY 5, 3
    """)
    # Sessions for transactions that no connection owns: pickup (local), Postfix's own mail.
    con.execute(f"""
        INSERT INTO sessions (session_id, source_id, dialect, source, kind, start_ts, end_ts, ts_is_local,
            host, service, local_user, first_lineno, last_lineno, n_lines)
        SELECT txn_id, {sid}, 'postfix', '{src}',
               CASE WHEN pickup_msg IS NOT NULL THEN 'local' ELSE 'queue' END,
               start_ts, end_ts, NOT any_rfc, host,
               CASE WHEN pickup_msg IS NOT NULL THEN 'postfix/pickup' END,
               CASE WHEN pickup_msg IS NOT NULL THEN 'uid=' || split_part(split_part(pickup_msg, 'uid=', 2), ' ', 1) END,
               first_lineno, last_lineno, n_lines
        FROM pf_txn_info WHERE orphan ORDER BY txn_id
    """)

    # Recipients: "QID: to=<a>, [orig_to=<b>,] relay=..., delay=..., dsn=..., status=... (detail)".
    con.execute(f"""
        INSERT INTO recipients (session_id, source_id, txn_id, queue_id, address, orig_address, status, relay,
            dsn, detail, ts, lineno)
        WITH d AS (
            SELECT t.txn_id, m.session_id, qid, {ts} AS ts, lineno,
                   substr(msg, strlen(qid) + 3) AS body
            FROM pf_ev JOIN pf_txn t USING (lineno) JOIN pf_txn_map m USING (txn_id)
            WHERE role = {R_DELIVERY}
        ), e AS MATERIALIZED (
            SELECT *, split_part(body, ', status=', 2) AS st FROM d
        )
        SELECT session_id, {sid}, txn_id, qid,
               CASE WHEN starts_with(body, 'to=<') THEN pf_angle(body, 'to=<')
                    ELSE split_part(substr(body, 4), ',', 1) END,
               CASE WHEN contains(body, ', orig_to=<') THEN pf_angle(body, ', orig_to=<')
                    ELSE nullif(split_part(split_part(body, ', orig_to=', 2), ',', 1), '') END,
               nullif(split_part(st, ' ', 1), ''),
               nullif(split_part(split_part(body, ', relay=', 2), ', ', 1), ''),
               nullif(split_part(split_part(body, ', dsn=', 2), ',', 1), ''),
               CASE WHEN contains(st, ' (') THEN rtrim(substr(st, strpos(st, ' (') + 2), ')') END,
               ts, lineno
        FROM e ORDER BY session_id, lineno
    """)

    # A message refused after it got a queue id (cleanup/milter reject): its recipient, rejected.
    con.execute(f"""
        INSERT INTO recipients (session_id, source_id, txn_id, queue_id, address, orig_address, status, relay,
            dsn, detail, ts, lineno)
        SELECT session_id, {sid}, txn_id, qid, recipient, NULL, 'rejected', NULL, dsn, reason, ts, lineno
        FROM pf_rej WHERE txn_id IS NOT NULL AND recipient IS NOT NULL
    """)

    # AUTH: failures (warning lines) and successes (client= with sasl_username).
    con.execute(f"""
        INSERT INTO auth_events (session_id, source_id, ts, client_ip, user, method, ok, reason, lineno)
        SELECT * FROM (
        SELECT conn_session, {sid}, {ts},
               nullif(split_part(split_part(msg, ']: SASL', 1), '[', -1), ''),
               nullif(split_part(split_part(msg, 'sasl_username=', 2), ',', 1), ''),
               nullif(split_part(split_part(msg, ': SASL ', 2), ' ', 1), ''),
               false,
               nullif(split_part(split_part(msg, 'authentication failed: ', 2), ', sasl_username=', 1), ''),
               lineno
        FROM pf_ev LEFT JOIN pf_conn USING (lineno) WHERE role = {R_AUTH_FAIL}
        UNION ALL
        SELECT conn_session, {sid}, {ts},
               nullif(split_part(split_part(msg, '[', 2), ']', 1), ''),
               nullif(split_part(split_part(msg, 'sasl_username=', 2), ',', 1), ''),
               nullif(split_part(split_part(msg, 'sasl_method=', 2), ',', 1), ''),
               true, NULL, lineno
        FROM pf_ev LEFT JOIN pf_conn USING (lineno) WHERE role = {R_CLIENT} AND contains(msg, 'sasl_username=')
        ) ORDER BY 1, 9
    """)

    # Rejects: "NOQUEUE|QID: ACTION: STAGE from name[ip](:port): [CODE ][D.S.N ][<data>: ]reason; from=<> to=<> ...".
    con.execute(f"""
        INSERT INTO rejects (session_id, source_id, ts, client_ip, client_name, stage, action, queue_id, code,
            dsn, reason, sender, recipient, helo, proto, lineno)
        SELECT session_id, {sid}, ts, client_ip, client_name, stage, action, qid, code, dsn, reason,
               sender, recipient, helo, proto, lineno
        FROM pf_rej ORDER BY session_id, lineno
    """)

    # Which lines make each session's transcript.
    con.execute(f"""
        INSERT INTO session_lines (session_id, source_id, lineno)
        SELECT session_id, {sid}, lineno FROM (
            SELECT conn_session AS session_id, lineno FROM pf_conn
            UNION ALL
            SELECT m.session_id, t.lineno FROM pf_txn t JOIN pf_txn_map m USING (txn_id) WHERE NOT t.on_conn
        ) ORDER BY 1, 2
    """)


def line_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """lines, unparsed (no syslog stamp/prefix), other (another program's well-formed lines)."""
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE mts IS NULL),
               count(*) FILTER (WHERE mts IS NOT NULL AND NOT starts_with(coalesce(prog, ''), 'postfix')),
               count(*) FILTER (WHERE role <> {R_OTHER})
        FROM pf_ev
    """).fetchone()
    return {"lines": row[0], "unparsed": row[1], "other": row[2], "understood": row[3]}


TEMP_TABLES = ("pf_ev", "pf_keys", "pf_conn", "pf_txn", "pf_txn_map", "pf_txn_info", "pf_rej", "pf_txn_rej")


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for name in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def load_file(con: duckdb.DuckDBPyConnection, csv_path: str, *, source_id: int, source: str,
              first_year: int | None, anchor: dt.date | None = None, compression: str = "none") -> dict[str, int]:
    """Parse one Postfix syslog file into the index tables; returns line counts.

    The caller owns the transaction (a failed load leaves nothing behind).
    """
    try:
        load_raw_lines(con, read_csv_sql(csv_path, compression), source_id)
        # Only the raw read needs rows in file order (row_number() is the line number); the
        # steps after it carry lineno, so DuckDB may reorder them (less memory, more parallel).
        con.execute("SET preserve_insertion_order = false")
        stage_lines(con, source_id)
        assign(con, source_id)
        year = build_tables(con, source_id, source, first_year, anchor)
        return {**line_counts(con), "first_year": year}
    finally:
        con.execute("RESET preserve_insertion_order")
        drop_temp(con)
