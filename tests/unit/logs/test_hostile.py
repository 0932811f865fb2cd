"""Hostile input: arbitrary lines never raise in any reader or in the assembler; junk is counted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.logs.find import FindQuery, find_in_logs
from mailwarden.logs.model import EventKind
from mailwarden.logs.readers import READERS, detect
from mailwarden.logs.sessions import SessionAssembler
from mailwarden.logs.sources import text_lines
from mailwarden.logs.timestamps import SyslogYear
from tests.conftest import DATA

REAL = (DATA / "logs" / "postfix" / "postfix-3.7-maillog.log").read_text("utf-8").splitlines()

# Lines that look almost right: real prefixes with random tails, so the parsers get past the
# timestamp and into the field extraction.
PREFIXES = [
    "Nov 23 00:10:09 mail postfix/smtpd[29073]: ",
    "Nov 23 00:10:09 mail postfix/cleanup[1]: 725C320D15C: ",
    "Nov 23 00:10:09 mail postfix/smtp[1]: 725C320D15C: to=<",
    "Nov 23 00:10:09 mail postfix/postscreen[1]: ",
    "2024-08-29T01:08:59.764590+00:00 machine postfix/submission/smtpd[2]: NOQUEUE: reject: RCPT from ",
    "2022-06-29 16:04:05 ",
    "2022-06-29 16:04:05 1ajLoq-0001wC-Pk <= ",
    "2022-06-29 16:04:05 1ajLoq-0001wC-Pk => ",
    "Thu 2019-03-14 00:00:17.768: 05: ",
    "Thu 2019-03-14 00:00:17.768: --> 250 Ok, message saved <Message-ID: ",
    "Jun 29 16:04:19 server exim[1234]: H=",
    "",
]
tails = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
lines = st.builds(lambda p, t: p + t, st.sampled_from(PREFIXES), tails)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, max_size=30))
def test_readers_and_assembler_never_raise(batch):
    for reader in READERS:
        assembler = SessionAssembler()
        for event in reader.events(batch, "h", clock=SyslogYear(2024)):
            assert isinstance(event.kind, EventKind)
            assembler.feed(event)
        for session in assembler.flush():
            assert session.lines


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_binary_junk_between_real_lines(junk):
    data = b"\n".join(line.encode() for line in REAL[:20]) + b"\n" + b"\n".join(junk) + b"\n"
    data += b"\n".join(line.encode() for line in REAL[20:]) + b"\n"
    reader = detect([line.text for line in text_lines(data)][:50])
    assert reader is not None and reader.name == "postfix"
    assembler = SessionAssembler()
    sessions = []
    for event in reader.events(text_lines(data), "junk", clock=SyslogYear(2026)):
        sessions.extend(assembler.feed(event))
    sessions.extend(assembler.flush())
    # the real sessions still come out whole
    ids = {t.message_id.split(".")[0] for s in sessions for t in s.transactions if t.message_id}
    assert {"auth-submission", "auth-outside", "trusted-pc", "inbound"} <= ids


def test_megabyte_lines_and_nul_bytes_in_a_searched_file(tmp_path):
    path = tmp_path / "mail.log"
    with open(path, "wb") as fh:
        fh.write(b"Nov 23 00:10:08 mail postfix/smtpd[1]: " + b"A" * (1 << 20) + b"\n")
        fh.write(b"\x00\x00\x00 binary \xff\xfe\n")
        fh.write("\n".join(REAL).encode() + b"\n")
        fh.write(b"Nov 23 00:10:10 mail postfix/smtpd[29073]: truncated li")
    mid = "inbound.676085f1e7374c968dd52ca451ac3aab@outside.test"
    fast = find_in_logs([str(path)], FindQuery(message_id=mid))
    (session,) = fast.sessions
    assert session.client_ip == "127.0.0.77" and session.lines[0].lineno == 2 + 22
    counted = []
    slow = find_in_logs([str(path)], FindQuery(message_id=mid), unparsed_sink=counted.append)
    assert len(slow.sessions) == 1
    assert slow.truncated_lines == 1
    # the cut 1 MB line and the cut last line are smtpd lines we cannot read; the NUL/binary
    # line has no syslog prefix: all three are counted as unparsed, nothing else breaks
    assert [line.lineno for line in counted] == [1, 2, 43]


def test_unknown_format_is_reported(tmp_path, run_cli):
    path = tmp_path / "access.log"
    path.write_text('127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326\n' * 5)
    result = run_cli("logs", "find", str(path), "-m", "x@y")
    assert result.exit_code == 4
    assert "format not recognised" in result.stderr
