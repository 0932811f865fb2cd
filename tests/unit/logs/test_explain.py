"""Why accepted / what would have stopped it, on the real Postfix 3.7 log and on crafted sessions."""

from __future__ import annotations

import pytest

from mailwarden.config import SiteConfig
from mailwarden.logs.explain import explain, pick_transaction
from mailwarden.logs.readers.postfix import PostfixReader
from mailwarden.logs.sessions import assemble
from mailwarden.logs.sources import text_lines
from mailwarden.logs.timestamps import SyslogYear
from tests.conftest import DATA

REAL = DATA / "logs" / "postfix" / "postfix-3.7-maillog.log"


@pytest.fixture(scope="module")
def sessions():
    lines = REAL.read_text("utf-8").splitlines()
    return list(assemble(PostfixReader().events(lines, REAL.name, clock=SyslogYear(2026))))


def session_for(sessions, label):
    for s in sessions:
        for t in s.transactions:
            if t.message_id and t.message_id.startswith(label + "."):
                return s, t
    raise AssertionError(label)


def codes(why):
    return [r.code for r in why.reasons]


def test_authenticated(sessions):
    why = explain(*session_for(sessions, "auth-submission"))
    assert why.accepted and codes(why)[0] == "authenticated"
    assert why.summary == "accepted: authenticated as alice (PLAIN)"
    assert why.would_have_stopped == []
    assert why.reasons[0].evidence == [f"{REAL.name}:8"]


def test_trusted_pc_without_auth_sending_as_a_local_user(sessions):
    s, t = session_for(sessions, "trusted-pc")
    why = explain(s, t)  # local domains inferred from the virtual(8) delivery
    assert [g.setting for g in why.would_have_stopped] == ["auth-required-for-local-senders"]
    assert "bob@example.test" in why.would_have_stopped[0].text
    with_site = explain(s, t, SiteConfig().with_overrides(trusted_networks=["127.0.0.10/32"],
                                                          local_domains=["example.test"]))
    assert "trusted-network" in codes(with_site)
    assert "inferred" not in with_site.would_have_stopped[0].text


def test_inbound_mail_from_outside(sessions):
    s, t = session_for(sessions, "inbound")
    why = explain(s, t, SiteConfig().with_overrides(local_domains=["example.test"]))
    assert "inbound-local" in codes(why) and why.would_have_stopped == []


def test_refused_relay(sessions):
    s = next(s for s in sessions if any(t.reject_reason for t in s.transactions))
    why = explain(s, pick_transaction(s))
    assert not why.accepted and why.summary.startswith("refused: ") and "Relay access denied" in why.summary


def _one(log: str):
    (session,) = assemble(PostfixReader().events(text_lines(log), "t", clock=SyslogYear(2024)))
    return session


def test_auth_user_differs_from_sender_and_failures_before_success():
    session = _one(
        "Mar  1 10:00:00 mx postfix/submission/smtpd[9]: connect from unknown[198.51.100.9]\n"
        "Mar  1 10:00:01 mx postfix/submission/smtpd[9]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=info@example.com\n"
        "Mar  1 10:00:05 mx postfix/submission/smtpd[9]: C0FFEE1234: client=unknown[198.51.100.9], sasl_method=LOGIN, sasl_username=info@example.com\n"
        "Mar  1 10:00:05 mx postfix/cleanup[8]: C0FFEE1234: message-id=<spam1@bulk.example>\n"
        "Mar  1 10:00:05 mx postfix/qmgr[7]: C0FFEE1234: from=<ceo@paypal-secure.example>, size=900, nrcpt=1 (queue active)\n"
        "Mar  1 10:00:06 mx postfix/smtp[6]: C0FFEE1234: to=<victim@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.1.27]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)\n"
        "Mar  1 10:00:06 mx postfix/qmgr[7]: C0FFEE1234: removed\n"
        "Mar  1 10:00:07 mx postfix/submission/smtpd[9]: disconnect from unknown[198.51.100.9] ehlo=1 auth=1/2 mail=1 rcpt=1 data=1 quit=1 commands=6/7\n")
    why = explain(session)
    assert [g.setting for g in why.would_have_stopped] == ["sender-login-match"]
    assert "info@example.com differs from the envelope sender ceo@paypal-secure.example" in why.would_have_stopped[0].text
    assert any("1 failed AUTH attempt" in n for n in why.notes)


def test_relay_without_auth_is_inferred_mynetworks():
    session = _one(
        "Mar  1 10:00:00 mx postfix/smtpd[9]: connect from pc17.office.example[10.1.2.17]\n"
        "Mar  1 10:00:01 mx postfix/smtpd[9]: BEEF12345: client=pc17.office.example[10.1.2.17]\n"
        "Mar  1 10:00:01 mx postfix/cleanup[8]: BEEF12345: message-id=<x@pc17>\n"
        "Mar  1 10:00:01 mx postfix/qmgr[7]: BEEF12345: from=<invoice@random.example>, size=900, nrcpt=1 (queue active)\n"
        "Mar  1 10:00:02 mx postfix/smtp[6]: BEEF12345: to=<someone@yahoo.com>, relay=mta5.am0.yahoodns.net[67.195.204.72]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)\n"
        "Mar  1 10:00:02 mx postfix/qmgr[7]: BEEF12345: removed\n"
        "Mar  1 10:00:03 mx postfix/smtpd[9]: disconnect from pc17.office.example[10.1.2.17]\n")
    why = explain(session)
    (reason,) = [r for r in why.reasons if r.code == "relay-inferred"]
    assert reason.inferred and "mynetworks" in reason.text and "10.1.2.17" in reason.text
    assert [g.setting for g in why.would_have_stopped] == ["no-relay-without-auth"]


def test_spam_score_dnsbl_and_spf_lines_are_used():
    session = _one(
        "Mar  1 10:00:00 mx postfix/postscreen[5]: CONNECT from [203.0.113.50]:4000 to [192.0.2.1]:25\n"
        "Mar  1 10:00:00 mx postfix/dnsblog[4]: addr 203.0.113.50 listed by domain list.dnswl.org as 127.0.5.1\n"
        "Mar  1 10:00:01 mx postfix/postscreen[5]: PASS NEW [203.0.113.50]:4000\n"
        "Mar  1 10:00:01 mx postfix/smtpd[9]: connect from mail.friend.example[203.0.113.50]\n"
        "Mar  1 10:00:02 mx policyd-spf[3]: prepend Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=203.0.113.50; helo=mail.friend.example; envelope-from=a@friend.example; receiver=<UNKNOWN>\n"
        "Mar  1 10:00:02 mx postfix/smtpd[9]: D00D12345: client=mail.friend.example[203.0.113.50]\n"
        "Mar  1 10:00:02 mx postfix/cleanup[8]: D00D12345: message-id=<m1@friend.example>\n"
        "Mar  1 10:00:03 mx spamd[2]: spamd: result: . 1 - BAYES_00,SPF_PASS scantime=0.2,size=1200,user=amavis,uid=1,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=4444,mid=<m1@friend.example>,autolearn=ham\n"
        "Mar  1 10:00:03 mx opendkim[1]: D00D12345: s=sel d=friend.example SSL\n"
        "Mar  1 10:00:03 mx postfix/qmgr[7]: D00D12345: from=<a@friend.example>, size=1200, nrcpt=1 (queue active)\n"
        "Mar  1 10:00:03 mx postfix/virtual[6]: D00D12345: to=<me@example.com>, relay=virtual, delay=1, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (delivered to maildir)\n"
        "Mar  1 10:00:03 mx postfix/qmgr[7]: D00D12345: removed\n"
        "Mar  1 10:00:04 mx postfix/smtpd[9]: disconnect from mail.friend.example[203.0.113.50]\n")
    assert session.lines[0].text.endswith("CONNECT from [203.0.113.50]:4000 to [192.0.2.1]:25")
    assert session.server_port == 25 and len(session.lines) == 13
    why = explain(session, site=SiteConfig().with_overrides(local_domains=["example.com"]))
    got = codes(why)
    assert "spam-score" in got and "dnsbl" in got and "auth-results" in got and "postscreen" in got
    spam = next(r for r in why.reasons if r.code == "spam-score")
    assert spam.text == "spam score 1 below the threshold 5"
    dnsbl = next(r for r in why.reasons if r.code == "dnsbl")
    assert "list.dnswl.org as 127.0.5.1" in dnsbl.text
