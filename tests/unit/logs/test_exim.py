"""Exim mainlogs and rejectlogs from the Exim test suite (read from the corpus: GPL, not copied)."""

from __future__ import annotations

import datetime as dt

from mailwarden.logs.model import EventKind
from mailwarden.logs.readers import detect
from mailwarden.logs.readers.exim import EximReader, is_exim_id
from mailwarden.logs.sessions import assemble
from mailwarden.logs.timestamps import SyslogYear


def _sessions(path):
    lines = path.read_text("utf-8", "replace").splitlines()
    return list(assemble(EximReader().events(lines, path.name)))


def test_exim_ids():
    assert is_exim_id("1ajLoq-0001wC-Pk") and is_exim_id("10HmaX-000000005vi-0000")
    assert not is_exim_id("1999-03-02") and not is_exim_id("a-b-c")


def test_authenticated_arrivals_and_failures_in_one_connection(corpus):
    sessions = _sessions(corpus("exim-testsuite", "log", "3400"))
    by_id = {t.queue_id: (s, t) for s in sessions for t in s.transactions if t.queue_id}
    s, t = by_id["10HmaZ-000000005vi-0000"]
    assert (s.client_ip, s.helo, s.auth_method, s.auth_user) == ("10.0.0.3", "testclient.ex", "mylogin", None)
    assert t.sender == "userx@cus.cam.ac.uk"
    assert [(r.address, r.status) for r in t.recipients] == [("userx8@test.ex", "sent")]
    # "defer/plain authenticator failed for H=(test.host) [10.0.0.1]" then A=login:userx from the same host
    s, t = by_id["10HmbC-000000005vi-0000"]
    assert (s.client_ip, s.auth_method, s.auth_user) == ("10.0.0.1", "login", "userx")
    assert s.auth_failures == 2
    # unauthenticated arrival (P=esmtp) has no auth
    s, _ = by_id["10HmaX-000000005vi-0000"]
    assert s.auth_method is None and s.auth_user is None


def test_every_authenticated_arrival_in_the_suite(corpus):
    """All arrivals with A= (101 A= lines include outgoing '=>' ones, which are not ours)."""
    logs = sorted(corpus("exim-testsuite", "log").iterdir())
    expected = 0
    found = 0
    for path in logs:
        text = path.read_text("utf-8", "replace")
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) > 3 and parts[3] == "<=" and " A=" in line:
                expected += 1
        found += sum(1 for s in _sessions(path) for t in s.transactions
                     if s.auth_method and t.accepted and t.lines and " A=" in t.lines[0].text)
    assert expected >= 50
    assert found == expected


def test_whole_suite_parses_without_tracebacks(corpus):
    unparsed = total = 0
    for path in sorted(corpus("exim-testsuite", "log").iterdir()):
        lines = path.read_text("utf-8", "replace").splitlines()
        for event in EximReader().events(lines, path.name):
            total += 1
            unparsed += event.kind is EventKind.UNPARSED
    assert total > 17000
    # what is left unparsed is the test harness's own output (LMTP simulations, notes), not Exim's
    assert unparsed < total * 0.03


def test_rejectlog_header_dump_stays_with_its_reject(corpus):
    sessions = _sessions(corpus("exim-testsuite", "rejectlog", "0021"))
    first = next(s for s in sessions if any(t.queue_id == "10HmaY-000000005vi-0000" for t in s.transactions))
    txn = first.transactions[0]
    assert txn.reject_reason == "don't like sender userx@test1"
    assert txn.message_id == "E10HmaY-000000005vi-0000@myhost.test.ex"
    assert len(txn.lines) == 11  # the reject line and its 10 header-dump lines


def test_crowdsec_exim_rejects_and_auth_failures(corpus):
    path = corpus("crowdsec-hub", "exim-logs.log")
    events = list(EximReader().events(path.read_text("utf-8").splitlines(), path.name))
    assert events[0].kind is EventKind.AUTH_FAIL
    assert events[0].fields["auth_user"] == "abuse@test.com" and events[0].fields["client_ip"] == "1.2.3.4"
    rbl = events[3]
    assert rbl.kind is EventKind.REJECT and rbl.fields["to"] == "toto@toto.com"
    assert "spamhaus" in rbl.fields["dnsbl"]
    assert events[10].ts == dt.datetime(2023, 5, 30, 6, 10, 13, 345000)


def test_syslog_wrapped_exim_is_detected_and_read(corpus):
    path = corpus("crowdsec-hub", "exim-syslog-logs.log")
    lines = path.read_text("utf-8").splitlines()
    assert detect(lines[:10]).name == "exim"
    events = list(EximReader().events(lines, path.name, clock=SyslogYear(2022)))
    assert events[0].pid == 1234 and events[0].fields["auth_user"] == "abuse@test.com"
    assert events[3].fields["client_ip"] == "1.2.3.4" and events[3].kind is EventKind.REJECT


def test_fail2ban_exim_lines_give_the_host(corpus):
    """fail2ban's annotated exim.log: every ``match: true`` line names the client IP we extract."""
    import json

    path = corpus("fail2ban", "exim.log")
    expect = None
    checked = 0
    for text in path.read_text("utf-8").splitlines():
        if text.startswith("# failJSON:"):
            expect = json.loads(text.split(":", 1)[1])
            continue
        if not text or text.startswith("#"):
            continue
        if expect and expect.get("match") and "authenticator failed" in text:
            (event,) = EximReader().events([text], "f2b", clock=SyslogYear(2005))
            assert event.fields.get("client_ip") == expect["host"], text
            checked += 1
        expect = None
    assert checked >= 10


def test_find_by_message_id_in_an_exim_mainlog(corpus):
    from mailwarden.logs.explain import explain
    from mailwarden.logs.find import FindQuery, find_in_logs

    path = corpus("exim-testsuite", "log", "0036")
    result = find_in_logs([str(path)], FindQuery(message_id="E10HmaX-000000005vi-0000@myhost.test.ex"))
    assert result.formats == {str(path): "exim"}
    (session,) = result.sessions
    assert [line.lineno for line in session.lines] == [10, 12, 13, 14]
    (txn,) = session.transactions
    assert txn.queue_id == "10HmaY-000000005vi-0000" and txn.sender == "CALLER@myhost.test.ex"
    assert [(r.address, r.status, r.relay) for r in txn.recipients] == [
        ("abcd@eximtesthost.test.ex", "sent", "local_delivery"),
        ("userx@alias-eximtesthost.test.ex", "sent", "local_delivery")]
    assert session.helo == "myhost.test.ex" and session.client_name == "the.local.host.name"
    why = explain(session, txn)
    # delivered by the local_delivery transport: the recipient domain is ours (inferred)
    assert "inbound-local" in [r.code for r in why.reasons]


def test_explain_exim_authenticated_arrival(corpus):
    from mailwarden.logs.explain import explain

    sessions = _sessions(corpus("exim-testsuite", "log", "3400"))
    session = next(s for s in sessions if any(t.queue_id == "10HmbC-000000005vi-0000" for t in s.transactions))
    why = explain(session)
    assert why.summary == "accepted: authenticated as userx (login)"
    assert why.would_have_stopped == []          # userx sent as userx@...: credentials match
    assert any("2 failed AUTH attempt" in note for note in why.notes)
