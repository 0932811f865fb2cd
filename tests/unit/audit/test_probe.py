"""The live SMTP probe against real in-process SMTP servers (aiosmtpd) and raw sockets."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailwarden.audit.model import AuditContext, Status
from mailwarden.audit.probe import (
    CONV_AUTH_SENDER_MISMATCH,
    CONV_CAPABILITIES,
    CONV_OPEN_RELAY,
    CONV_UNAUTH_LOCAL_TO_LOCAL,
    OUTSIDE_RECIPIENT,
    Capabilities,
    Conversation,
    Outcome,
    ProbeFailure,
    ProbeSettings,
    SmtpSession,
    is_loopback,
    probe_auth_sender_mismatch,
    run_probe,
)
from mailwarden.audit.rules import rules_for
from tests.unit.audit.conftest import ACCOUNTS, DOMAIN, _start

PROBE_RULES = {
    "smtp-unauth-local-sender-outside",
    "smtp-unauth-local-sender-local",
    "smtp-auth-sender-mismatch",
    "smtp-open-relay",
    "smtp-auth-requires-tls",
    "smtp-plaintext-auth-unencrypted",
}


def settings(port: int, **overrides) -> ProbeSettings:
    values = dict(host="127.0.0.1", port=port, local_user=f"alice@{DOMAIN}", other_local_user=f"bob@{DOMAIN}",
                  login="alice", password=ACCOUNTS["alice"], timeout=5.0, helo="probe.example.test")
    values.update(overrides)
    return ProbeSettings(**values)


def findings_of(report) -> dict:
    ctx = AuditContext(probe=report)
    return {rule.name: rule.check(ctx) for rule in rules_for("smtp")}


def test_misbehaving_server_fails_every_check(misbehaving_server):
    port, handler = misbehaving_server
    report = run_probe(settings(port))
    found = findings_of(report)
    assert {name for name, f in found.items() if f.status is Status.FAIL} == PROBE_RULES
    assert found["smtp-auth-from-header-mismatch"].status is Status.SKIPPED
    # The exact exchange is the evidence: the forged sender and the server's acceptance.
    spoof = found["smtp-auth-sender-mismatch"]
    assert f"C: MAIL FROM:<bob@{DOMAIN}>" in spoof.evidence
    assert f"C: RCPT TO:<{OUTSIDE_RECIPIENT}>" in spoof.evidence
    assert any(line.startswith("S: 354") for line in spoof.evidence)
    assert "AUTH offered on an unencrypted connection" in found["smtp-auth-requires-tls"].summary
    assert "PLAIN" in found["smtp-plaintext-auth-unencrypted"].summary
    # Nothing was ever delivered, and the password never reached a transcript.
    assert handler.data_received == 0
    for conv in report.conversations.values():
        assert not any(ACCOUNTS["alice"] in line for line in conv.transcript)


def test_behaving_server_passes_every_check(behaving_server):
    port, handler = behaving_server
    report = run_probe(settings(port))
    found = findings_of(report)
    assert {name for name, f in found.items() if f.status is Status.PASS} == PROBE_RULES, \
        {n: (f.status, f.summary) for n, f in found.items()}
    caps = report.capabilities
    assert caps.starttls_offered and caps.tls_established
    assert caps.auth_before_tls == [] and "PLAIN" in caps.auth_after_tls
    assert caps.plain_auth_accepted_in_clear is False
    spoof = report.conversations[CONV_AUTH_SENDER_MISMATCH]
    assert spoof.tls and spoof.authenticated
    assert spoof.attempts["control"].outcome is Outcome.ACCEPTED
    assert spoof.attempts["probe"].outcome is Outcome.REFUSED
    assert spoof.attempts["probe"].stage == "MAIL"
    assert "not owned by user alice" in spoof.attempts["probe"].reply
    local = report.conversations[CONV_UNAUTH_LOCAL_TO_LOCAL]
    assert local.attempts["control"].outcome is Outcome.ACCEPTED   # plain inbound mail still works
    assert "not logged in" in local.attempts["probe"].reply
    relay = report.conversations[CONV_OPEN_RELAY].attempts["probe"]
    assert (relay.stage, relay.reply[:3]) == ("RCPT", "554")
    assert handler.data_received == 0


def _refusing_server(reply: str):
    class RefuseAll:
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            return reply

    return _start(RefuseAll(), auth_require_tls=False)


def test_refusing_everything_is_inconclusive_not_a_pass():
    controller = _refusing_server("550 5.1.8 <sender>: Sender address rejected: Domain not found")
    try:
        report = run_probe(settings(controller.port))
    finally:
        controller.stop()
    found = findings_of(report)
    # The control envelope (outside sender -> local user) was refused too: no verdict possible.
    assert found["smtp-unauth-local-sender-local"].status is Status.ERROR
    assert "inconclusive" in found["smtp-unauth-local-sender-local"].summary
    assert found["smtp-auth-sender-mismatch"].status is Status.ERROR
    # Without a control, a refusal is the right answer whatever the reason.
    assert found["smtp-open-relay"].status is Status.PASS


def test_port_that_refuses_all_unauthenticated_mail_passes_the_local_check():
    # A submission port: "554 5.7.1 ... Client host rejected: Access denied" for anyone not logged in.
    controller = _refusing_server("554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied")
    try:
        report = run_probe(settings(controller.port))
    finally:
        controller.stop()
    found = findings_of(report)
    assert found["smtp-unauth-local-sender-local"].status is Status.PASS
    assert "refuses all unauthenticated mail" in found["smtp-unauth-local-sender-local"].summary
    # The authenticated control must still be accepted: a policy refusal there proves nothing.
    assert found["smtp-auth-sender-mismatch"].status is Status.ERROR


def test_silent_server_is_an_error_not_a_pass(raw_server):
    def silent(conn, stopped):
        stopped.wait(30)  # accept, then never say a word

    server = raw_server(silent)
    started = time.monotonic()
    report = run_probe(settings(server.port, timeout=0.5))
    assert time.monotonic() - started < 10
    found = findings_of(report)
    assert {name for name, f in found.items() if f.status is Status.ERROR} == PROBE_RULES
    assert "timed out after 0.5 s waiting for the greeting" in report.conversations[CONV_CAPABILITIES].error
    # One silent connection is enough: the other checks are not run (and say why).
    assert report.conversations[CONV_OPEN_RELAY].error.startswith("not run:")


def test_dropped_connection_is_reported_as_such(raw_server):
    def hang_up_after_ehlo(conn, stopped):
        conn.sendall(b"220 mx.example.test ESMTP\r\n")
        conn.recv(1024)
        conn.close()

    server = raw_server(hang_up_after_ehlo)
    report = run_probe(settings(server.port, timeout=2))
    found = findings_of(report)
    assert found["smtp-open-relay"].status is Status.ERROR
    assert "server closed the connection waiting for EHLO" in found["smtp-open-relay"].summary
    assert found["smtp-auth-requires-tls"].status is Status.ERROR


@pytest.mark.parametrize("flood", [
    b"250-" + b"x" * 100 + b"\r\n",      # an endless multi-line reply
    b"2" * 10_000,                       # one line that never ends
    b"\x80\xffFAIL\r\n",                 # not an SMTP reply at all
])
def test_hostile_replies_end_in_an_error_not_a_hang(raw_server, flood):
    def hostile(conn, stopped):
        conn.sendall(b"220 hostile ESMTP\r\n")
        conn.recv(1024)
        deadline = time.monotonic() + 5
        while not stopped.is_set() and time.monotonic() < deadline:
            conn.sendall(flood)
            if not flood.startswith(b"250-"):
                stopped.wait(5)

    server = raw_server(hostile)
    started = time.monotonic()
    report = run_probe(settings(server.port, timeout=1))
    assert time.monotonic() - started < 30
    conv = report.conversations[CONV_CAPABILITIES]
    assert conv.error
    assert findings_of(report)["smtp-auth-requires-tls"].status is Status.ERROR


def test_password_is_not_sent_in_clear_to_a_remote_host():
    caps = Capabilities(banner="mx ESMTP", auth_before_tls=["PLAIN", "LOGIN"])
    conv = probe_auth_sender_mismatch(
        settings(25, host="192.0.2.25"), caps)  # TEST-NET-1: never contacted, skipped before connecting
    assert conv.skipped and "--allow-cleartext-auth" in conv.skipped
    assert conv.transcript == []


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("192.0.2.1", False), ("mail.example.com", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


@hypothesis_settings(max_examples=150, deadline=3000)
@given(st.binary(max_size=4000))
def test_reply_reader_never_raises_anything_but_probe_failure(data):
    """Arbitrary bytes from a server end in a Reply or a ProbeFailure, quickly."""
    client, server = socket.socketpair()
    try:
        server.sendall(data)
        server.close()
        conv = Conversation("fuzz")
        session = SmtpSession(conv, settings(25, timeout=1.0))
        session.sock = client
        try:
            reply = session.read_reply("fuzz")
        except ProbeFailure:
            assert conv.transcript and conv.transcript[-1].startswith("-- ")
        else:
            assert 0 <= reply.code <= 999 and len(reply.lines) <= 200
    finally:
        client.close()
