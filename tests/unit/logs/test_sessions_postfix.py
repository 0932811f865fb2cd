"""Sessions from a real Postfix 3.7.11 log (written by tests/server/harness.py on this machine).

tests/data/logs/postfix/postfix-3.7-maillog.log is the ``maillog_file`` of the standard scenario:
alice authenticated on submission (to a local and an outside address), the office PC in
mynetworks, an outside host, a bad password, a relay attempt. smtpd pids 29073 and 29079 each
serve several connections one after another, so connect/disconnect must keep them apart.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mailwarden.logs.readers.postfix import PostfixReader
from mailwarden.logs.sessions import SessionAssembler, assemble
from mailwarden.logs.sources import text_lines
from mailwarden.logs.timestamps import SyslogYear
from tests.conftest import DATA

REAL = DATA / "logs" / "postfix" / "postfix-3.7-maillog.log"


@pytest.fixture(scope="module")
def sessions():
    lines = REAL.read_text("utf-8").splitlines()
    return list(assemble(PostfixReader().events(lines, REAL.name, clock=SyslogYear(2026))))


def by_mid(sessions, prefix):
    found = [s for s in sessions for t in s.transactions if t.message_id and t.message_id.startswith(prefix)]
    assert len(found) == 1, prefix
    return found[0]


def test_pid_reuse_gives_one_session_per_connection(sessions):
    smtp = [s for s in sessions if s.kind == "smtp"]
    # 29073: banner probe, office PC, outside host, relay attempt; 29079: probe, 2x alice, bad password
    assert len([s for s in smtp if s.lines[0].text.count("smtpd[29073]")]) == 4
    assert len([s for s in smtp if s.lines[0].text.count("smtpd[29079]")]) == 4
    assert all(not s.defects for s in smtp)


def test_authenticated_submission(sessions):
    s = by_mid(sessions, "auth-submission.")
    assert (s.client_ip, s.auth_user, s.auth_method) == ("127.0.0.20", "alice", "PLAIN")
    assert s.service == "postfix/submission/smtpd"
    txn = s.transactions[0]
    assert txn.queue_id == "725C320D15C" and txn.sender == "alice@example.test" and txn.size == 575
    assert [(r.address, r.status, r.relay) for r in txn.recipients] == [("bob@example.test", "sent", "virtual")]
    assert s.commands == "ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6"
    # transcript: smtpd, cleanup, qmgr, virtual, qmgr removed - in file order
    assert [line.lineno for line in s.lines] == [7, 8, 9, 10, 11, 28, 29]
    assert s.start == dt.datetime(2026, 11, 23, 0, 10, 9)


def test_relayed_to_outside(sessions):
    s = by_mid(sessions, "auth-outside.")
    rcpt = s.transactions[0].recipients[0]
    assert (rcpt.address, rcpt.status, rcpt.dsn) == ("friend@outside.test", "sent", "2.0.0")
    assert rcpt.relay.startswith("127.0.0.1[127.0.0.1]:")


def test_unauthenticated_sessions(sessions):
    pc = by_mid(sessions, "trusted-pc.")
    assert pc.client_ip == "127.0.0.10" and pc.auth_user is None
    assert pc.transactions[0].sender == "bob@example.test"
    inbound = by_mid(sessions, "inbound.")
    assert inbound.client_ip == "127.0.0.77"


def test_auth_failure_and_relay_reject(sessions):
    failed = [s for s in sessions if s.auth_failures]
    assert len(failed) == 1
    assert failed[0].auth_failure_users == ["bob"] and failed[0].client_ip == "127.0.0.77"
    assert failed[0].commands == "ehlo=1 auth=0/1 quit=1 commands=2/3"
    rejected = [s for s in sessions if any(t.reject_reason for t in s.transactions)]
    assert len(rejected) == 1
    txn = rejected[0].transactions[0]
    assert txn.queue_id is None and not txn.accepted and txn.sender == "spammer@outside.test"
    assert [(r.address, r.status, r.dsn) for r in txn.recipients] == [
        ("victim@elsewhere.outside.test", "rejected", "5.7.1")]
    assert "Relay access denied" in txn.reject_reason
    assert rejected[0].helo == "spambot"


def test_incremental_feed_completes_sessions_when_mail_leaves_the_queue():
    """`feed` hands out a session as soon as its disconnect and its qmgr 'removed' are both seen."""
    lines = REAL.read_text("utf-8").splitlines()
    assembler = SessionAssembler()
    completed_at: dict[str, int] = {}
    for event in PostfixReader().events(lines, REAL.name, clock=SyslogYear(2026)):
        for session in assembler.feed(event):
            for txn in session.transactions:
                if txn.message_id:
                    completed_at[txn.message_id.split(".")[0]] = event.line.lineno
    assert completed_at["auth-submission"] == 29   # "725C320D15C: removed"
    assert completed_at["auth-outside"] == 35
    assert assembler.flush() == []


def test_pid_reuse_without_disconnect_is_not_merged():
    log = (
        "Jan  5 10:00:00 mx postfix/smtpd[100]: connect from a.example[192.0.2.1]\n"
        "Jan  5 10:00:01 mx postfix/smtpd[100]: AAAAA11111: client=a.example[192.0.2.1]\n"
        # the disconnect line of the first connection was lost (log rotation, full disk ...)
        "Jan  5 11:00:00 mx postfix/smtpd[100]: connect from b.example[198.51.100.7]\n"
        "Jan  5 11:00:01 mx postfix/smtpd[100]: NOQUEUE: reject: RCPT from b.example[198.51.100.7]: "
        "554 5.7.1 <x@y.example>: Relay access denied; from=<s@b.example> to=<x@y.example> proto=ESMTP helo=<b>\n"
        "Jan  5 11:00:02 mx postfix/smtpd[100]: disconnect from b.example[198.51.100.7] ehlo=1 mail=1 rcpt=0/1 commands=2/3\n"
    )
    sessions = sorted(assemble(PostfixReader().events(text_lines(log), "t", clock=SyslogYear(2024))),
                      key=lambda s: s.lines[0].lineno)
    assert [s.client_ip for s in sessions] == ["192.0.2.1", "198.51.100.7"]
    assert "pid reused" in sessions[0].defects[0]
    assert sessions[1].transactions[0].recipients[0].status == "rejected"


def test_year_rollover_in_one_file():
    log = (
        "Dec 31 23:59:58 mx postfix/smtpd[7]: connect from a.example[192.0.2.1]\n"
        "Dec 31 23:59:59 mx postfix/smtpd[7]: B1B1B1B1B1: client=a.example[192.0.2.1]\n"
        "Jan  1 00:00:01 mx postfix/cleanup[8]: B1B1B1B1B1: message-id=<ny@a.example>\n"
        "Jan  1 00:00:02 mx postfix/qmgr[9]: B1B1B1B1B1: from=<s@a.example>, size=10, nrcpt=1 (queue active)\n"
        "Jan  1 00:00:03 mx postfix/smtpd[7]: disconnect from a.example[192.0.2.1]\n"
    )
    clock = SyslogYear(2023)
    (session,) = assemble(PostfixReader().events(text_lines(log), "t", clock=clock))
    assert session.start == dt.datetime(2023, 12, 31, 23, 59, 58)
    assert session.end == dt.datetime(2024, 1, 1, 0, 0, 3)
    assert clock.rollovers == 1


def test_year_from_mtime_puts_december_lines_in_the_previous_year():
    # file written on 2 Jan 2025: its December lines are from 2024
    mtime = dt.datetime(2025, 1, 2, 8, 0).timestamp()
    clock = SyslogYear(mtime=mtime)
    assert clock.datetime(12, 30, 10, 0, 0).year == 2024
    assert clock.datetime(1, 1, 9, 0, 0).year == 2025


def test_crowdsec_rfc3339_and_submission_service(corpus):
    path = corpus("crowdsec-hub", "postfix-logs.log")
    events = list(PostfixReader().events(path.read_text("utf-8").splitlines(), path.name,
                                         clock=SyslogYear(2024)))
    assert events[2].ts == dt.datetime(2024, 8, 26, 1, 33, 38, 572449, tzinfo=dt.UTC)
    assert events[2].fields["helo"] == "WIN-9QL4SDRB93L" and events[2].fields["client_ip"] == "192.168.1.1"
    assert events[5].service == "postfix/submission/smtpd"
    assert events[5].fields["command"] == "GET / HTTP/1.1"
    sessions = list(assemble(iter(events)))
    # RFC 3339 sessions carry aware times
    assert any(not s.ts_is_local for s in sessions)


def test_deferred_mail_session_is_handed_out_after_linger():
    """A message that stays deferred does not hold its session forever in `hunt --follow`."""
    head = (
        "Mar  1 10:00:00 mx postfix/smtpd[9]: connect from a.example[192.0.2.1]\n"
        "Mar  1 10:00:01 mx postfix/smtpd[9]: DEFE12345: client=a.example[192.0.2.1]\n"
        "Mar  1 10:00:01 mx postfix/qmgr[7]: DEFE12345: from=<s@a.example>, size=10, nrcpt=1 (queue active)\n"
        "Mar  1 10:00:02 mx postfix/smtpd[9]: disconnect from a.example[192.0.2.1]\n"
        "Mar  1 10:00:05 mx postfix/smtp[6]: DEFE12345: to=<x@slow.example>, relay=none, delay=4, delays=1/0/3/0, dsn=4.4.1, status=deferred (connect to slow.example[203.0.113.9]:25: Connection timed out)\n"
    )
    # 2,000 unrelated server lines over the next hour (the assembler sweeps every 2,000 events)
    tail = "".join(f"Mar  1 {10 + i // 1200:02d}:{i // 20 % 60:02d}:{i % 60:02d} mx postfix/anvil[5]: statistics: max cache size 1 at Mar  1 10:00:00\n"
                   for i in range(2000))
    assembler = SessionAssembler()
    handed_out = []
    for event in PostfixReader().events(text_lines(head + tail), "t", clock=SyslogYear(2024)):
        handed_out.extend(assembler.feed(event))
    (session,) = handed_out
    (rcpt,) = session.transactions[0].recipients
    assert rcpt.status == "deferred" and rcpt.dsn == "4.4.1"
    assert assembler.flush() == []


def test_rotated_set_across_new_year(tmp_path):
    """mail.log.1 (December) then mail.log (January), years from the files' mtimes."""
    import os

    from mailwarden.logs.find import FindQuery, TimeWindow, find_in_logs

    old = tmp_path / "mail.log.1"
    old.write_text(
        "Dec 31 23:59:58 mx postfix/smtpd[7]: connect from a.example[192.0.2.1]\n"
        "Dec 31 23:59:59 mx postfix/smtpd[7]: B1B1B1B1B1: client=a.example[192.0.2.1]\n")
    new = tmp_path / "mail.log"
    new.write_text(
        "Jan  1 00:00:01 mx postfix/cleanup[8]: B1B1B1B1B1: message-id=<ny@a.example>\n"
        "Jan  1 00:00:02 mx postfix/qmgr[9]: B1B1B1B1B1: from=<s@a.example>, size=10, nrcpt=1 (queue active)\n"
        "Jan  1 00:00:03 mx postfix/smtpd[7]: disconnect from a.example[192.0.2.1]\n")
    jan1 = dt.datetime(2025, 1, 1, 0, 5).timestamp()
    jan3 = dt.datetime(2025, 1, 3, 6, 0).timestamp()
    os.utime(old, (jan1, jan1))
    os.utime(new, (jan3, jan3))
    window = TimeWindow(since=dt.datetime(2024, 12, 31), until=dt.datetime(2025, 1, 2))
    result = find_in_logs([str(new), str(old)], FindQuery(window=window))
    assert result.sources == [str(old), str(new)]       # oldest first whatever the order given
    (session,) = result.sessions
    assert session.start == dt.datetime(2024, 12, 31, 23, 59, 58)
    assert session.end == dt.datetime(2025, 1, 1, 0, 0, 3)
    assert [ln.source for ln in session.lines] == [str(old)] * 2 + [str(new)] * 3
    assert session.transactions[0].message_id == "ny@a.example" and not session.defects
