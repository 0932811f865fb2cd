"""`find_sessions` (`logs find --db`): what a look-up in the index returns, whatever the query plan.

The other look-up tests (tests/unit/logs/test_index.py) use sessions without AUTH failures or
NOQUEUE rejects; these pin the parts of the answer that come from their own tables, a Message-ID
found in more than one session, the order, ``limit``, the time windows, a connection passed in,
and the errors for files that are not an index of this version.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from mailwarden.logs.find import session_to_json
from mailwarden.logs.index import (
    SCHEMA_VERSION,
    IndexUnavailable,
    connect,
    find_sessions,
    index_logs,
)
from mailwarden.output import to_jsonable

LOG = [
    # 1: two failed AUTHs (one names the user), a NOQUEUE reject, then a message; deliveries after
    "Mar  1 10:00:00 mx postfix/smtpd[100]: connect from c.example[198.51.100.7]",
    "Mar  1 10:00:01 mx postfix/smtpd[100]: warning: c.example[198.51.100.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=mallory@example.com",
    "Mar  1 10:00:02 mx postfix/smtpd[100]: warning: c.example[198.51.100.7]: SASL PLAIN authentication failed: ",
    "Mar  1 10:00:03 mx postfix/smtpd[100]: NOQUEUE: reject: RCPT from c.example[198.51.100.7]: 554 5.7.1 <x@elsewhere.example>: Relay access denied; from=<alice@example.com> to=<x@elsewhere.example> proto=ESMTP helo=<c.example>",
    "Mar  1 10:00:04 mx postfix/smtpd[100]: AAAAA11111: client=c.example[198.51.100.7], sasl_method=PLAIN, sasl_username=alice@example.com",
    "Mar  1 10:00:04 mx postfix/cleanup[200]: AAAAA11111: message-id=<dup@example.com>",
    "Mar  1 10:00:05 mx postfix/qmgr[300]: AAAAA11111: from=<alice@example.com>, size=100, nrcpt=2 (queue active)",
    "Mar  1 10:00:06 mx postfix/smtpd[100]: disconnect from c.example[198.51.100.7] ehlo=1 auth=1/3 mail=2 rcpt=2/3 data=1 quit=1 commands=8/11",
    "Mar  1 10:00:07 mx postfix/lmtp[400]: AAAAA11111: to=<bob@example.com>, relay=mx[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
    "Mar  1 10:00:08 mx postfix/smtp[401]: AAAAA11111: to=<dave@remote.example>, relay=remote.example[203.0.113.9]:25, delay=1, delays=0/0/0.5/0.5, dsn=4.4.1, status=deferred (connect to remote.example[203.0.113.9]:25: Connection refused)",
    # 11: the same Message-ID again an hour later, from another client, without AUTH failures
    "Mar  1 11:00:00 mx postfix/smtpd[101]: connect from d.example[198.51.100.8]",
    "Mar  1 11:00:01 mx postfix/smtpd[101]: BBBBB22222: client=d.example[198.51.100.8]",
    "Mar  1 11:00:01 mx postfix/cleanup[200]: BBBBB22222: message-id=<dup@example.com>",
    "Mar  1 11:00:02 mx postfix/qmgr[300]: BBBBB22222: from=<alice@example.com>, size=100, nrcpt=1 (queue active)",
    "Mar  1 11:00:03 mx postfix/smtpd[101]: disconnect from d.example[198.51.100.8] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    "Mar  1 11:00:04 mx postfix/lmtp[400]: BBBBB22222: to=<carol@example.com>, relay=mx[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
    "Mar  1 11:00:05 mx postfix/qmgr[300]: BBBBB22222: removed",
    # 18: the first message's retry, long after its session ended
    "Mar  1 11:30:00 mx postfix/smtp[402]: AAAAA11111: to=<dave@remote.example>, relay=remote.example[203.0.113.9]:25, delay=1800, delays=1799/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)",
    "Mar  1 11:30:01 mx postfix/qmgr[300]: AAAAA11111: removed",
]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("find-db")
    log = folder / "mail.log"
    log.write_text("".join(line + "\n" for line in LOG), encoding="utf-8")
    db = folder / "i.duckdb"
    summary = index_logs(db, [log], year=2026)
    assert [s.status for s in summary.sources] == ["loaded"]
    return db, log


def _json(sessions, **ids) -> str:
    return json.dumps([session_to_json(s, **ids) for s in sessions], sort_keys=True, default=str)


def test_message_in_two_sessions_oldest_first(indexed):
    db, log = indexed
    first, second = find_sessions(db, message_id="<dup@example.com>")
    assert (first.client_ip, second.client_ip) == ("198.51.100.7", "198.51.100.8")
    assert first.start < second.start
    assert [line.lineno for line in first.lines] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 19]
    assert [line.text for line in second.lines] == LOG[10:17]
    # the queued message, then the refused attempt (NOQUEUE) after it
    queued, refused = first.transactions
    assert (queued.queue_id, queued.message_id, queued.sender, queued.accepted) == (
        "AAAAA11111", "dup@example.com", "alice@example.com", True)
    assert [(r.address, r.status) for r in queued.recipients] == [
        ("bob@example.com", "sent"), ("dave@remote.example", "deferred"), ("dave@remote.example", "sent")]
    assert (refused.queue_id, refused.sender, refused.accepted) == (None, "alice@example.com", False)
    assert [(r.address, r.status, r.dsn) for r in refused.recipients] == [("x@elsewhere.example", "rejected", "5.7.1")]
    # AUTH failures: the count, and the users the log names
    assert (first.auth_failures, first.auth_failure_users, first.auth_user) == (2, ["mallory@example.com"],
                                                                                 "alice@example.com")
    assert (second.auth_failures, second.auth_failure_users) == (0, [])
    assert [t.queue_id for t in second.transactions] == ["BBBBB22222"]


def test_queue_id_limit_and_windows(indexed):
    db, _log = indexed
    (by_qid,) = find_sessions(db, queue_id="BBBBB22222")
    assert (by_qid.client_ip, by_qid.auth_failures, by_qid.auth_failure_users) == ("198.51.100.8", 0, [])
    (by_qid,) = find_sessions(db, queue_id="AAAAA11111")
    assert (by_qid.auth_failures, by_qid.auth_failure_users) == (2, ["mallory@example.com"])
    assert [t.queue_id for t in by_qid.transactions] == ["AAAAA11111", None]
    assert [s.client_ip for s in find_sessions(db, message_id="dup@example.com", limit=1)] == ["198.51.100.7"]
    noon = dt.datetime(2026, 3, 1, 10, 30)
    assert [s.client_ip for s in find_sessions(db, message_id="dup@example.com", since=noon)] == ["198.51.100.8"]
    assert [s.client_ip for s in find_sessions(db, message_id="dup@example.com", until=noon)] == ["198.51.100.7"]
    assert find_sessions(db, message_id="dup@example.com", queue_id="BBBBB22222")[0].client_ip == "198.51.100.8"
    # both given: one transaction must have both (found by Message-ID, then checked), with or without case
    assert [s.client_ip for s in find_sessions(db, message_id="dup@example.com", queue_id="AAAAA11111")] == [
        "198.51.100.7"]
    assert [s.client_ip for s in find_sessions(db, message_id="DUP@example.com", queue_id="BBBBB22222")] == [
        "198.51.100.8"]
    assert find_sessions(db, message_id="dup@example.com", queue_id="CCCCC33333") == []
    assert find_sessions(db, message_id="DUP@Example.COM") != []      # case-insensitive fallback
    assert find_sessions(db, message_id="it's \"odd\" \\ ;--") == []
    assert find_sessions(db, queue_id="CCCCC33333") == []
    # a time window alone: every session in it, oldest first, each with its details
    both = find_sessions(db, since=dt.datetime(2026, 3, 1, 9), until=dt.datetime(2026, 3, 1, 12))
    assert _json(both) == _json(find_sessions(db, message_id="dup@example.com"))
    assert len(find_sessions(db, since=dt.datetime(2026, 3, 1, 9), until=dt.datetime(2026, 3, 1, 12), limit=1)) == 1


def test_connection_passed_in(indexed):
    db, _log = indexed
    con = connect(db, read_only=True)
    try:
        assert _json(find_sessions(db, message_id="dup@example.com", con=con)) == \
            _json(find_sessions(db, message_id="dup@example.com"))
        assert to_jsonable(find_sessions(db, queue_id="AAAAA11111", con=con))[0]["client_ip"] == "198.51.100.7"
    finally:
        con.close()


def test_not_an_index_of_this_version(tmp_path, indexed):
    db, _log = indexed
    with pytest.raises(IndexUnavailable, match="no such index"):
        find_sessions(tmp_path / "absent.duckdb", message_id="dup@example.com")
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexUnavailable, match="cannot open the index"):
        find_sessions(junk, message_id="dup@example.com")
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE transactions (session_id BIGINT, message_id VARCHAR, queue_id VARCHAR)")
    con.close()
    for query in ({"message_id": "dup@example.com"}, {"since": dt.datetime(2026, 3, 1)}):
        with pytest.raises(IndexUnavailable, match="not a mailwarden log index"):
            find_sessions(foreign, **query)
    older = tmp_path / "older.duckdb"
    older.write_bytes(db.read_bytes())
    con = duckdb.connect(str(older))
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    for query in ({"message_id": "dup@example.com"}, {"message_id": "nobody@nowhere"},
                  {"queue_id": "AAAAA11111"}, {"since": dt.datetime(2026, 3, 1)}):
        with pytest.raises(IndexUnavailable, match=f"schema version 1 is not {SCHEMA_VERSION}"):
            find_sessions(older, **query)
    # schema 2's shape (ART indexes on transactions, no look-up tables): refused, not a DuckDB error
    two = tmp_path / "two.duckdb"
    two.write_bytes(db.read_bytes())
    con = duckdb.connect(str(two))
    con.execute("DROP TABLE message_ids; DROP TABLE queue_ids; CREATE INDEX tq ON transactions (queue_id)")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    for query in ({"message_id": "dup@example.com"}, {"queue_id": "AAAAA11111"}, {"since": dt.datetime(2026, 3, 1)}):
        with pytest.raises(IndexUnavailable, match=f"schema version 2 is not {SCHEMA_VERSION}; re-create it"):
            find_sessions(two, **query)
