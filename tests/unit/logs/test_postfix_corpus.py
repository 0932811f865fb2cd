"""Real Postfix lines from fail2ban's and crowdsec's sample logs (read from the corpus)."""

from __future__ import annotations

import datetime as dt
import json

from mailwarden.logs.model import EventKind
from mailwarden.logs.readers import detect
from mailwarden.logs.readers.postfix import PostfixReader
from mailwarden.logs.timestamps import SyslogYear


def test_fail2ban_postfix_annotations(corpus):
    """Every ``match: true`` line: the client IP and the time fail2ban expects.

    fail2ban's tests run with "now" in mid-August 2005 and put later months in 2004: the same
    rule as ours for a file's mtime (a line cannot be younger than the file).
    """
    now = dt.datetime(2005, 8, 14).timestamp()
    path = corpus("fail2ban", "postfix.log")
    expect = None
    checked = 0
    for text in path.read_text("utf-8").splitlines():
        if text.startswith("# failJSON:"):
            expect = json.loads(text.split(":", 1)[1])
            continue
        if not text.strip() or text.startswith("#"):
            continue
        if expect and expect.get("match") and "host" in expect:
            (event,) = PostfixReader().events([text], "f2b", clock=SyslogYear(mtime=now))
            assert event.kind is not EventKind.UNPARSED, text
            assert event.fields.get("client_ip") == expect["host"], text
            if "time" in expect:
                date, clock = expect["time"].split("T")
                y, m, d = (int(x) for x in date.split("-"))
                h, mi, s = (int(x) for x in clock.split(":"))
                assert event.ts == dt.datetime(y, m, d, h, mi, s), text
            checked += 1
        expect = None
    assert checked >= 40


def test_crowdsec_postfix_files_parse_and_detect(corpus):
    for name in ("postfix-helo.log", "postfix-honeypot-users.log", "postfix-logs.log",
                 "postfix-non-smtp.log", "postfix-relay.log", "postfix-sasl-bf.log", "postfix-spam.log"):
        path = corpus("crowdsec-hub", name)
        lines = [t for t in path.read_text("utf-8").splitlines() if t.strip()]
        assert detect(lines[:20]).name == "postfix", name
        events = list(PostfixReader().events(lines, name, clock=SyslogYear(2024)))
        assert all(e.kind is not EventKind.UNPARSED for e in events), name


def test_sasl_failure_with_username(corpus):
    path = corpus("crowdsec-hub", "postfix-honeypot-users.log")
    events = list(PostfixReader().events(path.read_text("utf-8").splitlines(), path.name,
                                         clock=SyslogYear(2024)))
    assert [e.fields["sasl_username"] for e in events][:3] == [
        "postmaster@example.org", "admin@example.org", "test@example.org"]
    assert events[0].kind is EventKind.AUTH_FAIL and events[0].fields["sasl_method"] == "LOGIN"
    assert events[0].service == "postfix/smtps/smtpd" and events[0].fields["client_ip"] == "203.0.113.10"
