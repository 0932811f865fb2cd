"""The DuckDB log index: real corpus logs, the columnar Postfix path against the Python readers,
incremental loading, years, pid reuse, find_sessions, and hostile input."""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.logs.find import read_sessions
from mailwarden.logs.index import SCHEMA_VERSION, find_sessions, index_logs
from mailwarden.logs.linestore import register_lines_view
from tests.conftest import REPO, corpus_path, generate_postfix_log


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        register_lines_view(con)  # `lines`: the raw lines, read out of the zstd blocks of line_blocks
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def one(db: Path, sql: str, params: list | None = None):
    (row,) = rows(db, sql, params)
    return row[0] if len(row) == 1 else row


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- real corpus logs -----------------------------------------------------------------------------

def test_crowdsec_sasl_failures(tmp_path):
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [corpus_path("crowdsec-hub", "postfix-spam.log"),
                              corpus_path("crowdsec-hub", "postfix-honeypot-users.log")], year=2024)
    assert [(s.status, s.dialect) for s in summary.sources] == [("loaded", "postfix")] * 2
    spam = rows(db, "SELECT client_ip, method, ok, reason, ts FROM auth_events WHERE source_id = 1 ORDER BY lineno")
    assert spam == [("1.2.3.4", "LOGIN", False, "authentication failure", dt.datetime(2024, 5, 11, 4, 2, s))
                    for s in (33, 34, 35, 36)]
    # one pid and no connect line: all its lines are one session, from the first line
    assert rows(db, "SELECT auth_failures, client_ip FROM sessions WHERE source_id = 1") == [(4, "1.2.3.4")]
    assert rows(db, "SELECT client_ip, code, dsn, reason FROM rejects ORDER BY lineno") == [
        ("1.2.3.4", "554", "5.7.1", "Service unavailable")] * 2
    honeypot = rows(db, "SELECT client_ip, user, reason FROM auth_events WHERE source_id = 2 ORDER BY lineno")
    assert len(honeypot) == 9
    assert honeypot[0] == ("203.0.113.10", "postmaster@example.org", "(reason unavailable)")
    assert one(db, "SELECT count(DISTINCT service) FROM sessions WHERE source_id = 2") == 1
    assert one(db, "SELECT any_value(service) FROM sessions WHERE source_id = 2") == "postfix/smtps/smtpd"


def test_crowdsec_mixed_stamps_relay_denied(tmp_path):
    """RFC 3339 lines (UTC, out of order) and a classic syslog line in one file."""
    db = tmp_path / "i.duckdb"
    index_logs(db, [corpus_path("crowdsec-hub", "postfix-logs.log")], year=2024)
    got = rows(db, """SELECT r.ts, r.client_ip, r.client_name, r.stage, r.code, r.dsn, r.reason, r.sender,
                             r.recipient, r.helo, s.ts_is_local
                      FROM rejects r JOIN sessions s USING (session_id)
                      WHERE r.reason = 'Relay access denied' ORDER BY r.lineno""")
    assert got[0] == (dt.datetime(2024, 8, 25, 12, 31, 56, 154748), "192.168.1.1", None, "RCPT", "454", "4.7.1",
                      "Relay access denied", "spammer@domain.tld", "spammer@domain.tld", "WIN-CLJ1B0GQ6JP", False)
    assert got[1][0] == dt.datetime(2024, 6, 4, 22, 24, 28)
    assert got[1][1:3] == ("192.168.1.1", "static.1.1.168.192.client.domain.xyz")
    assert got[1][10] is True
    assert one(db, "SELECT unparsed FROM sources") == 0


def test_fail2ban_postfix_rejects(tmp_path):
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [corpus_path("fail2ban", "postfix.log")], year=2005)
    src = summary.sources[0]
    # comment lines ("# failJSON: ...") and blank lines have no syslog prefix
    assert src.unparsed == one(db, "SELECT count(*) FROM lines WHERE text = '' OR text LIKE '#%'")
    relay = rows(db, "SELECT client_ip, client_name, sender, recipient, helo, proto FROM rejects "
                     "WHERE reason = 'Relay access denied' ORDER BY lineno")
    assert relay[0] == ("1.2.3.4", "1-2-3-4-example.com", "john@example.com", "smtp@example.org",
                        "198.51.100.17", "SMTP")
    milter = rows(db, "SELECT action, stage, queue_id, code, dsn, reason FROM rejects WHERE action = 'milter-reject'")
    assert milter == [("milter-reject", "DATA", "1D8CC1CA0A7F", "550", "5.7.1", "Command rejected")]
    # a queue-id reject with no connect line: the transaction still belongs to the smtpd session
    assert one(db, """SELECT s.client_ip FROM transactions t JOIN sessions s USING (session_id)
                      WHERE t.queue_id = '00ADB3C0899'""") == "192.0.2.1"


GROK_PROGRAMS = {"SMTPD": "postfix/smtpd", "POSTSCREEN": "postfix/postscreen", "SMTP": "postfix/smtp",
                 "CLEANUP": "postfix/cleanup", "QMGR": "postfix/qmgr", "LMTP": "postfix/lmtp",
                 "LOCAL": "postfix/local", "PICKUP": "postfix/pickup", "BOUNCE": "postfix/bounce",
                 "ANVIL": "postfix/anvil", "DNSBLOG": "postfix/dnsblog", "PIPE": "postfix/pipe"}


def yaml_scalar(text: str) -> str | None:
    """The flat YAML of these test cases: plain or double-quoted scalars (JSON-compatible escapes)."""
    text = text.strip()
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def grok_case(text: str) -> dict:
    """pattern / data / results of one postfix-grok-patterns case (no YAML library needed)."""
    case: dict = {"results": {}}
    in_results = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        if line.startswith((" ", "\t")) and in_results:
            case["results"][key] = yaml_scalar(value)
        else:
            in_results = key == "results"
            if not in_results:
                case[key] = yaml_scalar(value)
    return case


def grok_samples() -> list[dict]:
    """The postfix-grok-patterns test cases whose program we know, with a syslog prefix added."""
    folder = corpus_path("postfix-grok-patterns")
    samples = []
    for path in sorted(folder.glob("*.yaml")):
        case = grok_case(path.read_text("utf-8"))
        name = str(case.get("pattern", "")).strip("^$%{}").removeprefix("POSTFIX_")
        program = GROK_PROGRAMS.get(name)
        data = case.get("data")
        if program and isinstance(data, str) and "\n" not in data:
            samples.append({"file": path.name, "program": program, "data": data,
                            "results": case.get("results") or {}})
    return samples


def test_grok_pattern_samples(tmp_path):
    samples = grok_samples()
    lines = [f"Mar  1 10:{n // 60:02d}:{n % 60:02d} mx {s['program']}[{1000 + n}]: {s['data']}"
             for n, s in enumerate(samples)]
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [write(tmp_path / "grok.log", lines)], year=2024)
    assert summary.sources[0].unparsed == 0
    checked = 0
    for n, sample in enumerate(samples, start=1):
        want = sample["results"]
        if "NOQUEUE: reject:" in sample["data"] and "postfix_client_ip" in want:
            (got,) = rows(db, "SELECT client_ip, code, dsn, stage FROM rejects WHERE lineno = ?", [n])
            for value, key in zip(got, ("postfix_client_ip", "postfix_status_code",
                                        "postfix_status_code_enhanced", "postfix_smtp_stage"), strict=True):
                if key in want:
                    assert value == str(want[key]), (sample["file"], key)
            checked += 1
        elif "message-id=<" in sample["data"] and "postfix_message-id" in want:
            assert one(db, "SELECT message_id FROM transactions t JOIN session_lines USING (session_id) "
                           "WHERE lineno = ?", [n]) == want["postfix_message-id"], sample["file"]
            checked += 1
        elif sample["program"] in ("postfix/smtp", "postfix/lmtp") and want.get("postfix_status"):
            got = one(db, "SELECT status, queue_id FROM recipients WHERE lineno = ?", [n])
            assert got == (want["postfix_status"], str(want["postfix_queueid"])), sample["file"]
            checked += 1
        elif sample["data"].startswith("connect from ") and "postfix_client_ip" in want:
            assert one(db, "SELECT client_ip FROM sessions WHERE first_lineno = ?", [n]) == \
                want["postfix_client_ip"], sample["file"]
            checked += 1
    assert checked >= 15  # NOQUEUE rejects (smtpd, postscreen), message-ids, deliveries, connects


# -- the columnar path agrees with the Python readers ---------------------------------------------

def by_queue_id_python(path: Path, year: int) -> dict:
    out = {}
    for session in read_sessions([str(path)], year=year):
        for txn in session.transactions:
            if txn.queue_id:
                out[txn.queue_id] = (session.client_ip, session.auth_user, txn.message_id, txn.sender,
                                     sorted((r.address, r.status) for r in txn.recipients))
    return out


def by_queue_id_index(db: Path) -> dict:
    got = rows(db, """
        SELECT t.queue_id, s.client_ip, s.auth_user, t.message_id, t.sender,
               list([r.address, r.status]) FILTER (WHERE r.address IS NOT NULL)
        FROM transactions t JOIN sessions s USING (session_id) LEFT JOIN recipients r ON r.txn_id = t.txn_id
        GROUP BY ALL""")
    return {q: (ip, user, mid, sender, sorted(tuple(x) for x in (rc or []))) for q, ip, user, mid, sender, rc in got}


@pytest.fixture(scope="module")
def generated_log(tmp_path_factory) -> Path:
    """A real-shaped Postfix log from bench/gen_postfix_log.py (fixed seed, ~6000 lines)."""
    return generate_postfix_log(tmp_path_factory.mktemp("gen") / "mail.log", seed=7, lines=6000)


OTHER_LOGS = {
    "fail2ban": lambda: corpus_path("fail2ban", "postfix.log"),
    # a real Postfix 3.7 maillog (the real-server test's), and hostile payloads in every field
    "postfix-3.7": lambda: REPO / "tests" / "data" / "logs" / "postfix" / "postfix-3.7-maillog.log",
    "scenario-2": lambda: REPO / "tests" / "data" / "logs" / "postfix" / "scenario-2" / "maillog.log",
    "hostile": lambda: REPO / "tests" / "data" / "hunt" / "hostile-postfix.log",
}


@pytest.mark.parametrize("which", ["generated", *OTHER_LOGS])
def test_columnar_matches_python_readers(tmp_path, generated_log, which):
    log = generated_log if which == "generated" else OTHER_LOGS[which]()
    if not log.exists():
        pytest.skip(f"{log} not present")
    db = tmp_path / "i.duckdb"
    index_logs(db, [log], year=2026)
    python, index = by_queue_id_python(log, 2026), by_queue_id_index(db)
    assert python and set(python) == set(index)
    mismatched = {q: (python[q], index[q]) for q in python if python[q] != index[q]}
    assert not mismatched
    if which == "generated":
        assert any(v[1] for v in index.values())           # authenticated submissions
        assert any(s == "bounced" for v in index.values() for _, s in v[4])


# -- incremental loading --------------------------------------------------------------------------

def test_incremental_skip_rename_and_growth(tmp_path, generated_log):
    log = tmp_path / "mail.log"
    shutil.copy(generated_log, log)
    db = tmp_path / "i.duckdb"
    first = index_logs(db, [log])
    sessions = one(db, "SELECT count(*) FROM sessions")
    assert first.sources[0].status == "loaded" and sessions > 100

    again = index_logs(db, [log])
    assert again.sources[0].status == "skipped"
    assert one(db, "SELECT count(*) FROM sessions") == sessions

    rotated = tmp_path / "mail.log.1"                 # logrotate renamed it
    log.rename(rotated)
    moved = index_logs(db, [rotated])
    assert moved.sources[0].status == "renamed"
    assert one(db, "SELECT path FROM sources") == str(rotated)
    assert one(db, "SELECT count(*) FROM sessions") == sessions

    # the file grew: it is loaded again whole, not twice
    lines = rotated.read_text().splitlines()
    extra = [line.replace("Mar  1", "Mar  2") for line in lines[:200]]
    with rotated.open("a") as fh:
        fh.write("\n".join(extra) + "\n")
    grown = index_logs(db, [rotated])
    assert grown.sources[0].status == "reloaded"
    assert one(db, "SELECT count(*) FROM sources") == 1
    assert one(db, "SELECT lines FROM sources") == len(lines) + 200
    assert one(db, "SELECT count(*) FROM lines") == len(lines) + 200
    assert one(db, "SELECT count(*) FROM sessions") > sessions


def test_gzip_and_bzip2_sources(tmp_path, generated_log):
    gz = tmp_path / "mail.log.2.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(generated_log.read_bytes())
    bz = tmp_path / "other.log.bz2"
    bz.write_bytes(bz2.compress(generated_log.read_bytes()))
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [gz, bz])
    assert [s.status for s in summary.sources] == ["loaded", "loaded"]
    assert summary.sources[0].cleaned is False and summary.sources[1].cleaned is True
    counts = rows(db, "SELECT source_id, count(*) FROM sessions GROUP BY 1 ORDER BY 1")
    assert counts[0][1] == counts[1][1] > 100


# -- years, pids, find ---------------------------------------------------------------------------

def test_new_year_rollover(tmp_path):
    log = write(tmp_path / "mail.log", [
        "Dec 31 23:59:58 mx postfix/smtpd[100]: connect from a.example[192.0.2.1]",
        "Dec 31 23:59:59 mx postfix/smtpd[100]: 1A2B3C4D5E: client=a.example[192.0.2.1]",
        "Jan  1 00:00:00 mx postfix/cleanup[200]: 1A2B3C4D5E: message-id=<ny@example.org>",
        "Dec 31 23:59:59 mx postfix/smtpd[101]: connect from late.example[192.0.2.9]",   # out of order
        "Jan  1 00:00:01 mx postfix/smtpd[100]: disconnect from a.example[192.0.2.1] ehlo=1 commands=1",
        "Jan  1 00:00:02 mx postfix/smtpd[101]: disconnect from late.example[192.0.2.9] ehlo=1 commands=1",
    ])
    db = tmp_path / "i.duckdb"
    index_logs(db, [log], year=2026)
    got = rows(db, "SELECT client_ip, start_ts, end_ts FROM sessions WHERE kind = 'smtp' ORDER BY session_id")
    assert got == [("192.0.2.1", dt.datetime(2026, 12, 31, 23, 59, 58), dt.datetime(2027, 1, 1, 0, 0, 1)),
                   ("192.0.2.9", dt.datetime(2026, 12, 31, 23, 59, 59), dt.datetime(2027, 1, 1, 0, 0, 2))]
    assert one(db, "SELECT start_ts FROM transactions") == dt.datetime(2026, 12, 31, 23, 59, 59)


def test_pid_reuse_makes_two_sessions(tmp_path):
    log = write(tmp_path / "mail.log", [
        "Mar  1 10:00:00 mx postfix/smtpd[4242]: connect from one.example[198.51.100.1]",
        "Mar  1 10:00:01 mx postfix/smtpd[4242]: AAAAA11111: client=one.example[198.51.100.1], sasl_method=PLAIN, sasl_username=alice@example.com",
        "Mar  1 10:00:02 mx postfix/smtpd[4242]: disconnect from one.example[198.51.100.1] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6",
        "Mar  1 10:00:03 mx postfix/cleanup[77]: AAAAA11111: message-id=<first@example.com>",
        "Mar  1 10:05:00 mx postfix/smtpd[4242]: connect from two.example[198.51.100.2]",
        "Mar  1 10:05:01 mx postfix/smtpd[4242]: BBBBB22222: client=two.example[198.51.100.2]",
        "Mar  1 10:05:01 mx postfix/cleanup[77]: BBBBB22222: message-id=<second@example.com>",
        "Mar  1 10:05:02 mx postfix/qmgr[50]: BBBBB22222: from=<bob@example.net>, size=1234, nrcpt=1 (queue active)",
        "Mar  1 10:05:03 mx postfix/smtpd[4242]: disconnect from two.example[198.51.100.2] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
        "Mar  1 10:05:04 mx postfix/lmtp[60]: BBBBB22222: to=<carol@example.com>, relay=mx[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
        "Mar  1 10:05:05 mx postfix/qmgr[50]: BBBBB22222: removed",
    ])
    db = tmp_path / "i.duckdb"
    index_logs(db, [log], year=2026)
    got = rows(db, """SELECT s.client_ip, s.auth_user, s.commands, t.message_id, t.sender, t.removed
                      FROM sessions s JOIN transactions t USING (session_id) ORDER BY s.session_id""")
    assert got == [
        ("198.51.100.1", "alice@example.com", "ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6",
         "first@example.com", None, False),
        ("198.51.100.2", None, "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", "second@example.com",
         "bob@example.net", True),
    ]
    (session,) = find_sessions(db, message_id="<second@example.com>")
    assert [line.lineno for line in session.lines] == [5, 6, 7, 8, 9, 10, 11]
    assert session.transactions[0].recipients[0].address == "carol@example.com"
    assert session.transactions[0].recipients[0].status == "sent"
    assert session.session_id == f"postfix:{log}:5"


def test_find_sessions(tmp_path, generated_log):
    db = tmp_path / "i.duckdb"
    index_logs(db, [generated_log], year=2026)
    mid, qid, user = one(db, """SELECT t.message_id, t.queue_id, s.auth_user FROM transactions t
                                JOIN sessions s USING (session_id) WHERE s.auth_user IS NOT NULL
                                ORDER BY t.txn_id LIMIT 1""")
    (by_mid,) = find_sessions(db, message_id=f"<{mid}>")
    (by_qid,) = find_sessions(db, queue_id=qid)
    assert by_mid.session_id == by_qid.session_id and by_mid.auth_user == user
    txn = by_mid.transaction_for(mid)
    assert txn is not None and txn.queue_id == qid and txn.recipients
    # the transcript is the raw lines, in file order, and holds the client= line
    texts = [line.text for line in by_mid.lines]
    assert [line.lineno for line in by_mid.lines] == sorted(line.lineno for line in by_mid.lines)
    assert any(f"{qid}: client=" in t and f"sasl_username={user}" in t for t in texts)
    assert all(f" {qid}: " in line.text for line in txn.lines)
    assert find_sessions(db, message_id=mid.upper()) != []        # case-insensitive fallback
    assert find_sessions(db, message_id="nobody@nowhere") == []
    assert find_sessions(db, message_id=mid, until=by_mid.start - dt.timedelta(seconds=5)) == []
    assert find_sessions(db, message_id=mid, since=by_mid.start) != []


# -- hostile input ---------------------------------------------------------------------------------

GOOD = [
    "Mar  1 10:00:00 mx postfix/smtpd[1]: connect from good.example[192.0.2.10]",
    "Mar  1 10:00:01 mx postfix/smtpd[1]: 0ABCDEF123: client=good.example[192.0.2.10]",
    "Mar  1 10:00:02 mx postfix/cleanup[2]: 0ABCDEF123: message-id=<good@example.org>",
    "Mar  1 10:00:03 mx postfix/smtpd[1]: disconnect from good.example[192.0.2.10] ehlo=1 commands=1",
]


@pytest.mark.parametrize("junk", [
    b"\xff\xfe\x00\x80 binary junk \xc3\x28",               # invalid UTF-8 and a NUL
    b"\x00" * 50,
    b"Mar  1 10:00:00 mx postfix/smtpd[9]: " + b"A" * 600_000,   # a huge line
    b"\x01\x01\x01 the reader's delimiter byte",
    b"Mar  1 10:00:00 mx postfix/smtpd[9]: connect from crlf.example[192.0.2.99]\r",  # CR LF
    b"",
])
def test_bad_input_counted_not_fatal(tmp_path, junk):
    good = [line.encode() for line in GOOD]
    data = b"\n".join(good[:2] + [junk] + good[2:]) + b"\n"
    log = tmp_path / "mail.log"
    log.write_bytes(data)
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [log], year=2026)
    src = summary.sources[0]
    assert src.status == "loaded", src.message
    assert src.lines == 5                       # line numbers are those of the file
    (session,) = find_sessions(db, message_id="good@example.org")
    assert [line.lineno for line in session.lines if "good" in line.text] == [1, 2, 4, 5]
    if junk and not junk.startswith(b"Mar"):
        assert src.unparsed == 1


def test_huge_line_is_cut(tmp_path):
    log = tmp_path / "mail.log"
    log.write_bytes(b"\n".join([GOOD[0].encode(), b"x" * 3_000_000, GOOD[3].encode()]) + b"\n")
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [log], year=2026)
    assert summary.sources[0].status == "loaded" and summary.sources[0].cleaned
    assert "cut" in (summary.sources[0].message or "")
    assert one(db, "SELECT strlen(text) FROM lines WHERE lineno = 2") <= 1 << 18
    assert one(db, "SELECT text FROM lines WHERE lineno = 3") == GOOD[3]


def test_missing_and_unknown_inputs(tmp_path):
    db = tmp_path / "i.duckdb"
    unknown = write(tmp_path / "notes.txt", ["hello", "world"])
    summary = index_logs(db, [tmp_path / "absent.log", unknown])
    assert [s.status for s in summary.sources] == ["failed", "failed"]
    assert "not recognised" in summary.sources[1].message
    assert one(db, "SELECT count(*) FROM sources") == 0


def test_exim_through_python_readers(tmp_path):
    db = tmp_path / "i.duckdb"
    summary = index_logs(db, [corpus_path("crowdsec-hub", "exim-logs.log")])
    src = summary.sources[0]
    assert src.status == "loaded" and src.dialect == "exim"
    assert src.sessions == one(db, "SELECT count(*) FROM sessions") > 0
    assert one(db, "SELECT count(*) FROM lines") == src.lines
    assert one(db, "SELECT count(*) FROM sessions WHERE dialect = 'exim' AND client_ip = '1.2.3.4'") > 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6))
def test_arbitrary_bytes_never_break_a_load(tmp_path_factory, junk):
    """Arbitrary bytes between good lines: the load succeeds and the good session is whole."""
    folder = tmp_path_factory.mktemp("hyp")
    junk_lines = [j.replace(b"\n", b" ").replace(b"\r", b" ") for j in junk]
    data = b"\n".join([GOOD[0].encode(), *junk_lines, *(g.encode() for g in GOOD[1:])]) + b"\n"
    log = folder / "mail.log"
    log.write_bytes(data)
    summary = index_logs(folder / "i.duckdb", [log], year=2026)
    assert summary.sources[0].status == "loaded", summary.sources[0].message
    assert summary.sources[0].lines == len(GOOD) + len(junk_lines)
    (session,) = find_sessions(folder / "i.duckdb", message_id="good@example.org")
    assert session.client_ip == "192.0.2.10"


def test_generated_log_across_new_year(tmp_path):
    """A real-shaped log from 23:55 on 31 Dec to past midnight: two years, no session ends before it starts."""
    log = generate_postfix_log(tmp_path / "mail.log", seed=3, lines=8000,
                               extra=("--rate", "2", "--start", "2025-12-31T23:55:30"))
    db = tmp_path / "i.duckdb"
    index_logs(db, [log], year=2025)
    years = rows(db, "SELECT year(start_ts), count(*) FROM sessions GROUP BY 1 ORDER BY 1")
    assert [y for y, _ in years] == [2025, 2026] and all(n > 100 for _, n in years)
    assert one(db, "SELECT count(*) FROM sessions WHERE end_ts < start_ts") == 0
    assert one(db, "SELECT max(start_ts) FROM sessions WHERE year(start_ts) = 2025") <= dt.datetime(2025, 12, 31, 23, 59, 59)
    assert by_queue_id_python(log, 2025) == by_queue_id_index(db)


def test_version_1_index_is_refused_unchanged(tmp_path):
    """A schema-1 index (one row per line in `lines`) is not read or changed: re-create it."""
    from mailwarden.logs.index import IndexUnavailable, connect

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("CREATE TABLE lines (source_id INTEGER, lineno BIGINT, text VARCHAR)")
    con.close()
    for read_only in (True, False):
        with pytest.raises(IndexUnavailable, match=f"schema version 1 is not {SCHEMA_VERSION}; re-create it"):
            connect(db, read_only=read_only)
    summary_error = None
    try:
        index_logs(db, [corpus_path("fail2ban", "postfix.log")])
    except IndexUnavailable as exc:
        summary_error = str(exc)
    assert summary_error and "re-create" in summary_error
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()} == {"meta", "lines"}
    finally:
        con.close()


def test_lookup_tables_hold_every_key_sorted_per_file(tmp_path):
    """message_ids / queue_ids: one row per transaction with a session and the key, for every
    loader (compiled Postfix, Exim's Python readers), each file's rows sorted by key; what
    `hunt LOG...` builds (lookup_tables=False) has the same rows elsewhere and none in them."""
    logs = [corpus_path("fail2ban", "postfix.log"), corpus_path("exim-testsuite", "log", "0008")]
    if not all(log.exists() for log in logs):
        pytest.skip("corpus logs not present")
    plain = generate_postfix_log(tmp_path / "mail.log", seed=5, lines=3000)
    full, bare = tmp_path / "full.duckdb", tmp_path / "bare.duckdb"
    summary = index_logs(full, [*map(str, logs), str(plain)], year=2026)
    assert [s.status for s in summary.sources] == ["loaded"] * 3
    index_logs(bare, [str(plain)], year=2026, lookup_tables=False)
    assert rows(full, "SELECT count(*) FROM duckdb_indexes()") == [(0,)]
    for table, key in (("message_ids", "message_id"), ("queue_ids", "queue_id")):
        expected = rows(full, f"""SELECT {key}, session_id, source_id FROM transactions
                                  WHERE {key} IS NOT NULL AND session_id IS NOT NULL ORDER BY ALL""")
        # Message-IDs: the Exim log and the generated one; queue ids: all three
        assert len({r[2] for r in expected}) == (2 if key == "message_id" else 3), table
        assert rows(full, f"SELECT * FROM {table} ORDER BY ALL") == expected
        stored = rows(full, f"SELECT source_id, {key} FROM {table}")   # storage order
        for source_id in {r[0] for r in stored}:
            keys = [k for sid, k in stored if sid == source_id]
            assert keys == sorted(keys), (table, source_id)
        assert one(bare, f"SELECT count(*) FROM {table}") == 0
    plain_id = one(full, "SELECT source_id FROM sources WHERE path = ?", [str(plain)])
    assert one(bare, "SELECT count(*) FROM transactions") == one(
        full, "SELECT count(*) FROM transactions WHERE source_id = ?", [plain_id]) > 0
    with pytest.raises(ValueError, match="lookup_tables=False"):
        index_logs(tmp_path / "narrow.duckdb", [str(plain)], columns={"sessions": ["session_id"]})


KILLED_LOAD = """
import os, sys
from mailwarden.logs import columnar_postfix, index

real = columnar_postfix.load_file

def load_then_die(con, *args, **kwargs):
    counts = real(con, *args, **kwargs)
    con.execute("CHECKPOINT")   # as an automatic checkpoint may have done: the rows are on disk
    os._exit(9)                 # killed before the file's sources row is written

columnar_postfix.load_file = load_then_die
index.index_logs(sys.argv[1], [sys.argv[2]], year=2026)
"""

TABLES_PER_SOURCE = ("sessions", "transactions", "message_ids", "queue_ids", "recipients", "auth_events",
                     "rejects", "line_blocks", "session_lines")


def test_rows_of_a_killed_load_are_deleted_not_doubled(tmp_path, generated_log):
    """A load killed after some of a file's rows reached the disk leaves rows without a sources
    row; the next run deletes them before it loads the file again (same source id), so nothing
    is there twice, and says how many it deleted."""
    import subprocess
    import sys

    clean, killed = tmp_path / "clean.duckdb", tmp_path / "killed.duckdb"
    index_logs(clean, [generated_log], year=2026)
    proc = subprocess.run([sys.executable, "-c", KILLED_LOAD, str(killed), str(generated_log)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert one(killed, "SELECT count(*) FROM sources") == 0
    left = sum(one(killed, f"SELECT count(*) FROM {t}") for t in TABLES_PER_SOURCE)
    assert left > 0  # the rows reached the file: this is the case to clean up

    summary = index_logs(killed, [generated_log], year=2026)
    assert summary.sources[0].status == "loaded"
    assert summary.dropped_rows == left
    for table in TABLES_PER_SOURCE:
        assert rows(killed, f"SELECT * FROM {table} ORDER BY ALL") == rows(clean, f"SELECT * FROM {table} ORDER BY ALL"), table
    again = index_logs(killed, [generated_log], year=2026)
    assert again.sources[0].status == "skipped" and again.dropped_rows == 0


def test_load_writes_no_wal_and_works_beside_an_open_connection(tmp_path, generated_log):
    """index_logs attaches the index without write-ahead log and checkpoints each file: no .wal
    is left and the rows are in the file. With the index already open for writing in this
    process (DuckDB then refuses a second instance on the file), it loads through that one."""
    from mailwarden.logs.index import connect

    db = tmp_path / "i.duckdb"
    index_logs(db, [generated_log], year=2026)
    assert not Path(str(db) + ".wal").exists()
    sessions = one(db, "SELECT count(*) FROM sessions")
    assert sessions > 100

    other = tmp_path / "other.log"
    write(other, [line.replace("Mar  1", "Mar  3") for line in Path(generated_log).read_text().splitlines()[:400]])
    held = connect(db)   # a writable connection of this process, kept open during the load
    try:
        summary = index_logs(db, [other], year=2026)
        assert summary.sources[0].status == "loaded"
        assert held.execute("SELECT count(*) FROM sources").fetchall() == [(2,)]
        added = held.execute("SELECT count(*) FROM sessions WHERE source_id = 2").fetchall()[0][0]
    finally:
        held.close()
    assert added > 0 and one(db, "SELECT count(*) FROM sessions") == sessions + added


def test_a_load_leaves_no_thread_or_descriptor_of_its_own(tmp_path, generated_log, monkeypatch):
    """The write-back thread (index._WriteBack) stops and closes its descriptor of the index
    at the end of index_logs, also when a file fails; the scanner is released in the end."""
    import os
    import threading

    from mailwarden.logs import columnar_postfix, index

    monkeypatch.setattr(index, "WRITE_BACK_EVERY", 0.001)   # it syncs many times during the load
    released = threading.Event()
    release = columnar_postfix._release
    monkeypatch.setattr(columnar_postfix, "_release", lambda scanner: (release(scanner), released.set()))
    db = tmp_path / "i.duckdb"

    def open_on_db() -> list[str]:
        fds = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}") == str(db):
                    fds.append(fd)
        return fds

    summary = index_logs(db, [generated_log, tmp_path / "missing.log"], year=2026)
    assert [s.status for s in summary.sources] == ["loaded", "failed"]
    assert not [t for t in threading.enumerate() if t.name == "mw-writeback"]
    assert open_on_db() == []
    assert released.wait(10)
    assert one(db, "SELECT count(*) FROM sessions") > 100
