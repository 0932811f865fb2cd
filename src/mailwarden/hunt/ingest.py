"""Sessions and AUTH/reject events -> the index tables, in an in-memory DuckDB (for ``--follow``).

``hunt --follow`` feeds a live log through the readers and ``SessionAssembler``;
this writer puts what they produce into the same tables ``logs index`` fills
(``logs/schema.sql``), so the follow mode ranks with the very SQL of a batch hunt.
AUTH and reject events are taken from the event stream as they happen (not from
finished sessions), so a password-guessing burst is counted while its
connection is still open.
"""

from __future__ import annotations

import datetime as dt
import itertools
from importlib import resources

import duckdb

from mailwarden.logs.model import EventKind, LogEvent, Session

SOURCE_ID = 1  # a follow run reads one file


def schema_statements() -> list[str]:
    """The index DDL, one statement per item (the file separates them with ';' at line end)."""
    text = resources.files("mailwarden.logs").joinpath("schema.sql").read_text(encoding="utf-8")
    statements = []
    for chunk in text.split(";\n"):
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            statements.append(body)
    return statements


def create_index(con: duckdb.DuckDBPyConnection) -> None:
    for statement in schema_statements():
        con.execute(statement)


def insert_rows(con: duckdb.DuckDBPyConnection, target: str, rows: list[tuple]) -> None:
    """INSERT many rows at once: through Arrow when it is installed (executemany goes row by row)."""
    columns = [c.strip() for c in target[target.index("(") + 1:target.rindex(")")].split(",")]
    try:
        import pyarrow as pa
    except ImportError:
        marks = ", ".join("?" * len(columns))
        con.executemany(f"INSERT INTO {target} VALUES ({marks})", rows)
        return
    batch = pa.table({name: list(col) for name, col in zip(columns, zip(*rows, strict=True),
                                                           strict=True)})
    con.register("_hunt_batch", batch)
    try:
        con.execute(f"INSERT INTO {target} SELECT {', '.join(columns)} FROM _hunt_batch")
    finally:
        con.unregister("_hunt_batch")


def _naive(ts: dt.datetime | None) -> dt.datetime | None:
    # Index timestamps are naive: aware values (RFC 3339 logs) are stored in UTC, as the index does.
    if ts is not None and ts.tzinfo is not None:
        return ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


class IndexWriter:
    """Appends sessions and events to the index tables of ``con`` in batches."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: str, *,
                 keep_lines: bool = False) -> None:
        self.con = con
        self.source = source
        self.keep_lines = keep_lines
        self._lines: list[tuple] = []
        self._session_lines: list[tuple] = []
        self._ids = itertools.count(1)
        self._sessions: list[tuple] = []
        self._txns: list[tuple] = []
        self._rcpts: list[tuple] = []
        self._auth: list[tuple] = []
        self._rejects: list[tuple] = []
        create_index(con)

    @property
    def pending(self) -> int:
        return len(self._sessions) + len(self._auth) + len(self._rejects)

    def add_event(self, event: LogEvent, client_ip: str | None = None) -> None:
        """Record AUTH results and rejects straight from the stream."""
        f = event.fields
        ip = f.get("client_ip") or client_ip
        lineno = event.line.lineno
        if event.kind in (EventKind.AUTH_OK, EventKind.AUTH_FAIL):
            user = f.get("sasl_username") or f.get("user") or f.get("auth_user")
            method = f.get("sasl_method") or f.get("method")
            self._auth.append((None, SOURCE_ID, _naive(event.ts), ip, user, method,
                               event.kind is EventKind.AUTH_OK, f.get("reason"), lineno))
        elif event.kind is EventKind.REJECT:
            self._rejects.append((None, SOURCE_ID, _naive(event.ts), ip, f.get("client_name"),
                                  f.get("stage"), f.get("action"), event.queue_id, f.get("code"),
                                  f.get("dsn"), f.get("reason") or f.get("detail"),
                                  f.get("from"), f.get("to"), f.get("helo"), f.get("proto"), lineno))

    def add_session(self, s: Session) -> None:
        sid = next(self._ids)
        first = s.lines[0].lineno if s.lines else 0
        last = s.lines[-1].lineno if s.lines else 0
        self._sessions.append((
            sid, SOURCE_ID, s.dialect, s.source, s.kind, _naive(s.start), _naive(s.end),
            s.ts_is_local, s.host, s.service, s.client_ip, s.client_port, s.client_name, s.helo,
            s.server_ip, s.server_port, s.tls, s.tls_info, s.auth_user, s.auth_method,
            s.auth_failures, s.local_user, s.trusted, s.outcome, s.commands, first, last,
            len(s.lines)))
        if self.keep_lines:
            self._lines.extend((SOURCE_ID, ln.lineno, ln.text) for ln in s.lines)
            self._session_lines.extend((sid, SOURCE_ID, ln.lineno) for ln in s.lines)
        for txn in s.transactions:
            tid = next(self._ids)
            rcpt_count = len({r.address.lower() for r in txn.recipients if r.address})
            self._txns.append((
                sid, SOURCE_ID, tid, txn.queue_id, txn.message_id, txn.sender, txn.size,
                txn.accepted, txn.reject_reason, txn.subject, _naive(txn.start), _naive(txn.end),
                txn.spam_score, txn.spam_threshold, rcpt_count or None))
            for r in txn.recipients:
                self._rcpts.append((sid, SOURCE_ID, tid, txn.queue_id, r.address, r.orig_address,
                                    r.status, r.relay, r.dsn, r.detail,
                                    _naive(r.ts or txn.end or txn.start), 0))

    def flush(self) -> None:
        """Write the pending rows (one executemany per table)."""
        inserts = (
            ("sessions (session_id, source_id, dialect, source, kind, start_ts, end_ts, ts_is_local, "
             "host, service, client_ip, client_port, client_name, helo, server_ip, server_port, tls, "
             "tls_info, auth_user, auth_method, auth_failures, local_user, trusted, outcome, commands, "
             "first_lineno, last_lineno, n_lines)", self._sessions),
            ("transactions (session_id, source_id, txn_id, queue_id, message_id, sender, size, accepted, "
             "reject_reason, subject, start_ts, end_ts, spam_score, spam_threshold, nrcpt)", self._txns),
            ("recipients (session_id, source_id, txn_id, queue_id, address, orig_address, status, relay, "
             "dsn, detail, ts, lineno)", self._rcpts),
            ("auth_events (session_id, source_id, ts, client_ip, user, method, ok, reason, lineno)",
             self._auth),
            ("rejects (session_id, source_id, ts, client_ip, client_name, stage, action, queue_id, code, "
             "dsn, reason, sender, recipient, helo, proto, lineno)", self._rejects),
            ("lines (source_id, lineno, text)", self._lines),
            ("session_lines (session_id, source_id, lineno)", self._session_lines),
        )
        for target, rows in inserts:
            if rows:
                insert_rows(self.con, target, rows)
                rows.clear()

    def forget_before(self, cutoff: dt.datetime) -> None:
        """Drop activity older than ``cutoff`` so the rolling counters cover only the window."""
        for statement in (
            "DELETE FROM auth_events WHERE ts < $cut",
            "DELETE FROM rejects WHERE ts < $cut",
            "DELETE FROM recipients WHERE txn_id IN "
            "(SELECT txn_id FROM transactions WHERE coalesce(end_ts, start_ts) < $cut)",
            "DELETE FROM transactions WHERE coalesce(end_ts, start_ts) < $cut",
            "DELETE FROM sessions WHERE coalesce(end_ts, start_ts) < $cut",
        ):
            # DuckDB wants every result consumed before the next statement on this connection.
            self.con.execute(statement, {"cut": cutoff}).fetchall()

