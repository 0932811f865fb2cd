"""The compiled Postfix scanner (``_pfscan.c``) against the SQL path it replaces.

Both paths must fill the index with exactly the same rows: the SQL statements of
``columnar_postfix`` are the specification, the C scanner is the fast implementation. Every
test here indexes the same log twice (once with the scanner, once with ``_pfscan`` switched
off) and compares every table row for row, on real corpus logs, a generated log, hostile
payloads and hypothesis-made logs, with slices small enough that sessions span them.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.logs import columnar_postfix
from mailwarden.logs.index import index_logs
from tests.conftest import REPO, corpus_path, generate_postfix_log

if columnar_postfix._pfscan is None:  # pragma: no cover - depends on the build
    if os.environ.get("MAILWARDEN_REQUIRE_PFSCAN"):
        pytest.fail("mailwarden.logs._pfscan is not built (setup.py; a C compiler is needed)")
    pytest.skip("the compiled scanner is not built", allow_module_level=True)

from mailwarden.logs._pfscan import Scanner

TABLES = {
    "sessions": "session_id",
    "transactions": "txn_id",
    "recipients": "lineno, address",
    "auth_events": "lineno",
    "rejects": "lineno",
    "session_lines": "session_id, lineno",
    "message_ids": "message_id, session_id",
    "queue_ids": "queue_id, session_id",
}
SOURCE_COLUMNS = "lines, unparsed, other, year_assumed, sessions, dialect"


def index_both(tmp_path: Path, log: Path, monkeypatch, *, year: int | None = 2026, slice_bytes: int | None = None,
               two_parts: bool = False):
    """Index ``log`` with the scanner and with the SQL path; returns the two database paths.
    ``two_parts``: the scanner reads the file in two halves side by side, however small it is."""
    if slice_bytes:
        monkeypatch.setattr(columnar_postfix, "SLICE_BYTES", slice_bytes)
    if two_parts:
        monkeypatch.setattr(columnar_postfix, "TWO_PARTS_MIN_BYTES", 1)
    compiled, sql = tmp_path / "compiled.duckdb", tmp_path / "sql.duckdb"
    index_logs(compiled, [str(log)], year=year)
    with monkeypatch.context() as m:
        m.setattr(columnar_postfix, "_pfscan", None)
        index_logs(sql, [str(log)], year=year)
    return compiled, sql


def differences(compiled: Path, sql: Path) -> dict[str, list]:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{compiled}' AS c (READ_ONLY)")
        con.execute(f"ATTACH '{sql}' AS s (READ_ONLY)")
        out = {}
        for table, order in TABLES.items():
            only_c = con.execute(f"SELECT * FROM (SELECT * FROM c.{table} EXCEPT ALL SELECT * FROM s.{table}) "
                                 f"ORDER BY {order} LIMIT 5").fetchall()
            only_s = con.execute(f"SELECT * FROM (SELECT * FROM s.{table} EXCEPT ALL SELECT * FROM c.{table}) "
                                 f"ORDER BY {order} LIMIT 5").fetchall()
            if only_c or only_s:
                out[table] = [("compiled", r) for r in only_c] + [("sql", r) for r in only_s]
        src_c = con.execute(f"SELECT {SOURCE_COLUMNS} FROM c.sources ORDER BY source_id").fetchall()
        src_s = con.execute(f"SELECT {SOURCE_COLUMNS} FROM s.sources ORDER BY source_id").fetchall()
        if src_c != src_s:
            out["sources"] = [("compiled", src_c), ("sql", src_s)]
        return out
    finally:
        con.close()


def count(db: Path, sql: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def generated_log(tmp_path_factory) -> Path:
    return generate_postfix_log(tmp_path_factory.mktemp("gen") / "mail.log", seed=11, lines=20000)


REAL_LOGS = {
    "fail2ban": lambda: corpus_path("fail2ban", "postfix.log"),
    "crowdsec-spam": lambda: corpus_path("crowdsec-hub", "postfix-spam.log"),
    "crowdsec-users": lambda: corpus_path("crowdsec-hub", "postfix-honeypot-users.log"),
    "crowdsec-mixed": lambda: corpus_path("crowdsec-hub", "postfix-logs.log"),
    "postfix-3.7": lambda: REPO / "tests" / "data" / "logs" / "postfix" / "postfix-3.7-maillog.log",
    "scenario-2": lambda: REPO / "tests" / "data" / "logs" / "postfix" / "scenario-2" / "maillog.log",
    "hostile": lambda: REPO / "tests" / "data" / "hunt" / "hostile-postfix.log",
}


@pytest.mark.parametrize("two_parts", [False, True], ids=["whole", "halves"])
@pytest.mark.parametrize("which", sorted(REAL_LOGS))
def test_real_logs_same_rows(tmp_path, monkeypatch, which, two_parts):
    log = REAL_LOGS[which]()
    if not log.exists():
        pytest.skip(f"{log} not present")
    compiled, sql = index_both(tmp_path, log, monkeypatch, slice_bytes=4096, two_parts=two_parts)
    assert differences(compiled, sql) == {}
    assert count(compiled, "SELECT count(*) FROM sessions") > 0


def test_numbers_no_log_writes_are_null_on_both_paths(tmp_path, monkeypatch):
    # DuckDB's TRY_CAST reads 'Inf', '1e3', '0x1F' and '1_000' as numbers; the scanner reads plain
    # decimals only, and the SQL path casts only those (hypothesis found 'score=Inf' apart)
    log = tmp_path / "mail.log"
    log.write_text(
        "Mar  1 10:00:00 mx postfix/smtpd[1e3]: connect from a.example[192.0.2.7]\n"
        "Mar  1 10:00:01 mx postfix/smtpd[1e3]: 4A1B2C3D4E: client=a.example[192.0.2.7]:0x1F\n"
        "Mar  1 10:00:01 mx postfix/cleanup[7]: 4A1B2C3D4E: message-id=<1@a.example>\n"
        "Mar  1 10:00:01 mx postfix/cleanup[7]: 4A1B2C3D4E: info: header X-Spam-Status: Yes, "
        "score=Inf required=1_000 tests=X\n"
        "Mar  1 10:00:02 mx postfix/qmgr[8]: 4A1B2C3D4E: from=<a@a.example>, size=1e3, nrcpt=0x1F (queue active)\n"
        "Mar  1 10:00:03 mx postfix/smtpd[102]: connect from b.example[192.0.2.8]\n"
        "Mar  1 10:00:03 mx postfix/smtpd[102]: 5B1B2C3D4E: client=b.example[192.0.2.8]\n"
        "Mar  1 10:00:03 mx postfix/cleanup[7]: 5B1B2C3D4E: info: header X-Spam-Status: No, "
        "score=-0.5 required=5.0 tests=X\n"
        "Mar  1 10:00:04 mx postfix/qmgr[8]: 5B1B2C3D4E: from=<b@b.example>, size=1234, nrcpt=2 (queue active)\n")
    compiled, sql = index_both(tmp_path, log, monkeypatch)
    assert differences(compiled, sql) == {}
    con = duckdb.connect(str(sql), read_only=True)
    try:
        rows = con.execute("SELECT queue_id, size, nrcpt, spam_score, spam_threshold FROM transactions "
                           "ORDER BY queue_id").fetchall()
        pids = con.execute("SELECT pid FROM sessions WHERE kind = 'smtp' ORDER BY session_id").fetchall()
    finally:
        con.close()
    assert rows == [("4A1B2C3D4E", None, None, None, None), ("5B1B2C3D4E", 1234, 2, -0.5, 5.0)]
    assert pids == [(None,), (102,)]


def test_generated_log_same_rows_across_slices(tmp_path, monkeypatch, generated_log):
    # 64 KiB slices: hundreds of slice boundaries inside open sessions and transactions
    compiled, sql = index_both(tmp_path, generated_log, monkeypatch, slice_bytes=64 << 10)
    assert differences(compiled, sql) == {}
    # the log has what the comparison must cover: AUTH, rejects, postscreen, bounces, pickup
    for table, where in [("auth_events", "NOT ok"), ("auth_events", "ok"), ("rejects", "true"),
                         ("sessions", "kind = 'postscreen'"), ("sessions", "kind = 'local'"),
                         ("recipients", "status = 'bounced'")]:
        assert count(compiled, f"SELECT count(*) FROM {table} WHERE {where}") > 0, (table, where)


def test_gzip_and_year_from_mtime(tmp_path, monkeypatch, generated_log):
    gz = tmp_path / "mail.log.1.gz"
    gz.write_bytes(gzip.compress(generated_log.read_bytes()))
    os.utime(gz, (1767225600, 1767225600))  # 2026-01-01: the March lines are from 2025
    compiled, sql = index_both(tmp_path, gz, monkeypatch, year=None, slice_bytes=1 << 20)
    assert differences(compiled, sql) == {}
    assert count(compiled, "SELECT year_assumed FROM sources") == 2025


def test_new_year_pid_reuse_and_mid_session_start(tmp_path, monkeypatch):
    log = tmp_path / "rollover.log"
    log.write_text(
        # the log begins inside a session: its lines before any connect form a session
        "Dec 31 23:59:58 mx postfix/smtpd[7]: AAAAA11111: client=late.example[192.0.2.1]\n"
        "Dec 31 23:59:59 mx postfix/cleanup[8]: AAAAA11111: message-id=<late@example>\n"
        "Dec 31 23:59:59 mx postfix/smtpd[7]: disconnect from late.example[192.0.2.1] ehlo=1 commands=1\n"
        "Jan  1 00:00:01 mx postfix/smtpd[7]: connect from early.example[192.0.2.2]\n"
        "Jan  1 00:00:02 mx postfix/smtpd[7]: BBBBB22222: client=early.example[192.0.2.2], "
        "sasl_method=PLAIN, sasl_username=alice@example.org\n"
        "Jan  1 00:00:02 mx postfix/qmgr[9]: AAAAA11111: from=<a@example>, size=10, nrcpt=1 (queue active)\n"
        "Jan  1 00:00:03 mx postfix/smtpd[7]: disconnect from early.example[192.0.2.2] ehlo=1 auth=1 commands=2\n"
        "Feb 29 12:00:00 mx postfix/smtpd[7]: connect from leap.example[192.0.2.3]\n",
        encoding="utf-8")
    compiled, sql = index_both(tmp_path, log, monkeypatch, year=2025)
    assert differences(compiled, sql) == {}
    assert count(compiled, "SELECT count(*) FROM sessions WHERE pid = 7") == 3
    # Feb 29 of 2026 (not a leap year) becomes Feb 28, as the SQL path's `+ to_years()` does
    assert count(compiled, "SELECT strftime(max(start_ts), '%Y-%m-%d') FROM sessions") == "2026-02-28"


# -- hypothesis: logs made of real line shapes, mixed and broken ----------------------------------

QIDS = ["4A1B2C3D4E", "8F00AA1234", "3Tb8nW2vZk0yXq", "1111A"]
PIDS = ["101", "102", "7777"]
CLIENTS = ["unknown[203.0.113.9]", "mail.example.net[198.51.100.7]", "x[2001:db8::1]", "[192.0.2.1]:25"]
TEMPLATES = [
    "postfix/smtpd[{pid}]: connect from {client}",
    "postfix/submission/smtpd[{pid}]: connect from {client}",
    "postfix/smtpd[{pid}]: {qid}: client={client}",
    "postfix/smtpd[{pid}]: {qid}: client={client}, sasl_method=PLAIN, sasl_username={text}",
    "postfix/smtpd[{pid}]: disconnect from {client} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    "postfix/smtpd[{pid}]: warning: {client}: SASL LOGIN authentication failed: {text}",
    "postfix/smtpd[{pid}]: Anonymous TLS connection established from {client}: TLSv1.3 with cipher {text}",
    "postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from {client}: 554 5.7.1 <{text}>: Relay access denied; "
    "from=<{text}> to=<{text}> proto=ESMTP helo=<{text}>",
    "postfix/smtpd[{pid}]: {qid}: reject: DATA from {client}: 550 5.7.1 {text}; from=<a@b> to=<c@d> proto=SMTP",
    "postfix/cleanup[{pid}]: {qid}: milter-reject: END-OF-MESSAGE from {client}: 5.7.1 {text}; "
    "from=<{text}> to=<{text}>",
    "postfix/cleanup[{pid}]: {qid}: message-id=<{text}>",
    "postfix/cleanup[{pid}]: {qid}: warning: header Subject: {text} from {client}",
    "postfix/cleanup[{pid}]: {qid}: info: header X-Spam-Status: Yes, score={text} required=5.0 tests=X",
    "postfix/qmgr[{pid}]: {qid}: from=<{text}>, size={text}, nrcpt=1 (queue active)",
    "postfix/qmgr[{pid}]: {qid}: removed",
    "postfix/pickup[{pid}]: {qid}: uid=1000 from=<{text}>",
    "postfix/smtp[{pid}]: {qid}: to=<{text}>, orig_to=<{text}>, relay={client}, delay=1, dsn=2.0.0, "
    "status=sent (250 {text})",
    "postfix/local[{pid}]: {qid}: to=<{text}>, relay=local, delay=0, dsn=5.1.1, status=bounced ({text})",
    "postfix/postscreen[{pid}]: CONNECT from [192.0.2.{pid}]:4{pid} to [203.0.113.25]:25",
    "postfix/postscreen[{pid}]: PASS OLD [192.0.2.{pid}]:4{pid}",
    "postfix/postscreen[{pid}]: NOQUEUE: reject: RCPT from [192.0.2.{pid}]:4{pid}: 550 5.7.1 Service "
    "unavailable; client [192.0.2.{pid}] blocked using zen.spamhaus.org; from=<{text}>, to=<{text}>, "
    "proto=ESMTP, helo=<{text}>",
    "postfix/postscreen[{pid}]: DISCONNECT [192.0.2.{pid}]:4{pid}",
    "postfix/smtpd[{pid}]: lost connection after {text} from {client}",
    "dovecot: imap-login: Login: user=<{text}>",
    "{text}",
]
STAMPS = ["Mar  1 10:00:{s:02d}", "Mar 1 10:00:{s:02d}", "Dec 31 23:59:{s:02d}", "Jan  1 00:00:{s:02d}",
          "2024-08-29T01:08:{s:02d}.76+02:00", "2024-08-29T01:08:{s:02d}Z", "Feb 30 10:00:{s:02d}", "garbage"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
               max_size=40)


@st.composite
def log_lines(draw) -> str:
    lines = []
    for n in range(draw(st.integers(1, 60))):
        template = draw(st.sampled_from(TEMPLATES))
        line = template.format(pid=draw(st.sampled_from(PIDS)), qid=draw(st.sampled_from(QIDS)),
                               client=draw(st.sampled_from(CLIENTS)), text=draw(TEXT))
        stamp = draw(st.sampled_from(STAMPS)).format(s=n % 60)
        lines.append(f"{stamp} {draw(st.sampled_from(['mx', 'mx2', '']))} {line}")
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=log_lines(), slice_bytes=st.sampled_from([256, 4096, 1 << 20]), two_parts=st.booleans())
def test_generated_line_mixes_same_rows(tmp_path_factory, text, slice_bytes, two_parts):
    tmp = tmp_path_factory.mktemp("mix")
    log = tmp / "mail.log"
    log.write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        compiled, sql = index_both(tmp, log, monkeypatch, slice_bytes=slice_bytes, two_parts=two_parts)
        assert differences(compiled, sql) == {}


# -- the scanner alone: any bytes, never a crash --------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=4000).map(lambda b: b.replace(b"\x00", b"\n")), cut=st.integers(0, 4000))
def test_scanner_takes_any_bytes(data, cut):
    from mailwarden.logs._pfscan import SAW_CR, SAW_NOT_ASCII

    scanner = Scanner(10**12, 2026, 2026, 3)
    cut = min(cut, len(data))
    rows = 0
    for part in (data[:cut], data[cut:]):  # the caller's slices are arbitrary here too
        n, longest, tables, seen = scanner.scan(part)
        lines = part.split(b"\n")
        if part.endswith(b"\n") or not part:
            lines.pop()   # the text after the last '\n' is a line only when there is some
        assert n == len(lines)
        assert longest == max(map(len, lines), default=0)
        assert seen == (SAW_CR if b"\r" in part else 0) | (0 if part.isascii() else SAW_NOT_ASCII)
        rows += n
        assert set(tables) == {"auth"}
    tables, counts = scanner.finish()
    assert counts["lines"] == rows
    assert counts["unparsed"] + counts["other"] <= rows
    assert set(tables) == {"sessions", "transactions", "recipients", "rejects", "session_lines"}


def test_scanner_huge_fields_and_many_keys():
    # a 900 KiB Subject, and 200k distinct postscreen clients (the key maps grow many times)
    big = "x" * (900 << 10)
    lines = [f"Mar  1 10:00:00 mx postfix/cleanup[1]: 4A1B2C3D4E: warning: header Subject: {big} from a[b]"]
    lines += [f"Mar  1 10:00:01 mx postfix/postscreen[2]: CONNECT from [10.{i >> 16}.{(i >> 8) & 255}.{i & 255}]"
              f":{i % 60000} to [192.0.2.1]:25" for i in range(200_000)]
    scanner = Scanner(10**12, 2026, 2026, 3)
    n, longest, _, _seen = scanner.scan(("\n".join(lines) + "\n").encode())
    assert n == len(lines) and longest > 900 << 10
    tables, counts = scanner.finish()
    assert tables["sessions"]["session_id"][5] == 200_001  # the clients, and the message's own ("queue")
    assert tables["transactions"]["subject"][5] == 1  # rows


def test_without_transcripts_the_same_rows_but_no_lines(tmp_path, generated_log):
    # what `hunt LOG...` builds: no raw lines, no session_lines, every other table unchanged
    full, bare = tmp_path / "full.duckdb", tmp_path / "bare.duckdb"
    index_logs(full, [str(generated_log)], year=2026)
    index_logs(bare, [str(generated_log)], year=2026, transcripts=False)
    diff = {t: v for t, v in differences(full, bare).items() if t != "session_lines"}
    assert diff == {}
    assert count(bare, "SELECT count(*) FROM line_blocks") == 0
    assert count(bare, "SELECT count(*) FROM session_lines") == 0
    assert count(full, "SELECT count(*) FROM session_lines") > 0


def test_a_log_too_big_for_memory_goes_the_sql_way(tmp_path, monkeypatch, generated_log):
    # the scanner keeps a file's sessions in memory; beyond the RAM share the SQL path (which
    # spills to disk) takes the file, with the same rows
    scanned = []
    real_scan = columnar_postfix.scan_file
    monkeypatch.setattr(columnar_postfix, "scan_file", lambda *a, **k: scanned.append(a) or real_scan(*a, **k))
    index_logs(tmp_path / "small.duckdb", [str(generated_log)], year=2026)
    assert len(scanned) == 1
    monkeypatch.setattr(columnar_postfix, "RAM_SHARE", 1e-9)
    assert not columnar_postfix.fits_in_memory(str(generated_log))
    index_logs(tmp_path / "big.duckdb", [str(generated_log)], year=2026)
    assert len(scanned) == 1  # not called again
    assert differences(tmp_path / "small.duckdb", tmp_path / "big.duckdb") == {}


def test_progress_moves_with_the_slices(tmp_path, monkeypatch, generated_log):
    monkeypatch.setattr(columnar_postfix, "SLICE_BYTES", 64 << 10)
    seen = []
    index_logs(tmp_path / "p.duckdb", [str(generated_log)], year=2026, progress=lambda what, n: seen.append((what, n)))
    parsing = [n for what, n in seen if "parsing" in what]
    size = generated_log.stat().st_size
    assert len(parsing) > size // (64 << 10) // 2          # one step per slice, not one per file
    assert parsing == sorted(parsing) and parsing[-1] == size


@pytest.mark.parametrize("two_parts", [False, True])
def test_rows_are_stored_in_lookup_order(tmp_path, monkeypatch, generated_log, two_parts):
    # find --db skips row groups by their min/max: sessions, recipients and transcript lines
    # must be stored by session, transactions by txn_id (the scanner makes them so), and the
    # look-up tables by their key (DuckDB sorts them); a file scanned in halves too
    if two_parts:
        monkeypatch.setattr(columnar_postfix, "TWO_PARTS_MIN_BYTES", 1)
    db = tmp_path / "i.duckdb"
    index_logs(db, [str(generated_log)], year=2026)
    con = duckdb.connect(str(db), read_only=True, config={"threads": 1})
    try:
        def stored(sql):
            return con.execute(sql).fetchall()  # one thread, no ORDER BY: the storage order
        assert stored("SELECT session_id FROM sessions") == sorted(stored("SELECT session_id FROM sessions"))
        lines = stored("SELECT session_id, lineno FROM session_lines")
        assert lines == sorted(lines)
        recipients = stored("SELECT session_id, lineno FROM recipients")
        assert recipients == sorted(recipients)
        rejects = [(s is None, s or 0, n) for s, n in stored("SELECT session_id, lineno FROM rejects")]
        assert len(rejects) > 100 and rejects == sorted(rejects)  # NULL sessions last
        txns = stored("SELECT txn_id FROM transactions")
        assert len(txns) > 100 and txns == sorted(txns)
        for table, key in (("message_ids", "message_id"), ("queue_ids", "queue_id")):
            keys = stored(f"SELECT {key} FROM {table}")
            assert len(keys) > 100 and keys == sorted(keys), table
    finally:
        con.close()


# -- a file in two halves, scanned side by side and merged -----------------------------------------

def _rows(columns: dict) -> list[dict]:
    return columnar_postfix._arrow_table(columns).to_pylist()


def scan_whole(data: bytes) -> tuple[dict, dict, list]:
    scanner = Scanner(10**12, 0, 2026, 3)
    auth = _rows(scanner.scan(data)[2]["auth"])
    tables, counts = scanner.finish()
    return {name: _rows(cols) for name, cols in tables.items()}, counts, auth


def scan_halves(data: bytes, cut: int) -> tuple[dict, dict, list, bool]:
    """What columnar_postfix.scan_file does with a cut: (tables, counts, auth rows, merged?)."""
    first, later = Scanner(10**12, 0, 2026, 3), Scanner(10**12, 0, 2026, 3)
    auth = _rows(first.scan(data[:cut])[2]["auth"])
    assert later.skip(data[:cut]) == data[:cut].count(b"\n")
    later_auth = _rows(later.scan(data[cut:])[2]["auth"])
    renamed = first.merge(later)
    if renamed is None:  # the fallback: the first scanner reads the second half too
        auth += _rows(first.scan(data[cut:])[2]["auth"])
    else:
        new_id = dict(renamed)
        auth += [{**row, "session_id": new_id.get(row["session_id"], row["session_id"])} for row in later_auth]
    tables, counts = first.finish()
    return {name: _rows(cols) for name, cols in tables.items()}, counts, auth, renamed is not None


def assert_halves_same(data: bytes, cuts) -> int:
    """Every cut gives the whole file's rows; returns how many cuts merged (no fallback)."""
    whole, counts, auth = scan_whole(data)
    merged = 0
    for cut in cuts:
        tables, split_counts, split_auth, was_merged = scan_halves(data, cut)
        merged += was_merged
        for name in whole:
            assert tables[name] == whole[name], (cut, name)
        assert split_counts == counts, cut
        key = lambda r: (r["lineno"], r["ok"])  # noqa: E731 - AUTH rows come in any order
        assert sorted(split_auth, key=key) == sorted(auth, key=key), cut
    return merged


def line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < len(data)]


@settings(max_examples=150, deadline=None)
@given(text=log_lines())
def test_halves_merge_to_the_whole_file_rows(text):
    data = text.encode()
    assert_halves_same(data, line_starts(data))


@pytest.mark.parametrize("which", ["fail2ban", "postfix-3.7", "scenario-2", "crowdsec-mixed"])
def test_halves_of_real_logs(which):
    log = REAL_LOGS[which]()
    if not log.exists():
        pytest.skip(f"{log} not present")
    data = log.read_bytes()
    starts = line_starts(data)
    cuts = starts[:: max(1, len(starts) // 40)]
    assert assert_halves_same(data, cuts) == len(cuts)  # real logs always merge


def test_halves_of_a_generated_log(generated_log):
    data = generated_log.read_bytes()
    starts = line_starts(data)
    cuts = starts[len(starts) // 7:: len(starts) // 5]  # cuts inside many open sessions
    assert assert_halves_same(data, cuts) == len(cuts)


def test_halves_that_cannot_merge_are_scanned_again():
    # a message logged by two smtpd processes, one of them a connection begun before the cut:
    # which is "the latest" depends on the merge, so the second half is scanned again
    head = (b"Mar  1 10:00:00 mx postfix/smtpd[101]: connect from a.example[192.0.2.1]\n"
            b"Mar  1 10:00:01 mx postfix/smtpd[101]: NOQUEUE: reject: RCPT from a.example[192.0.2.1]: "
            b"554 5.7.1 <x@y>: Relay access denied; from=<s@a> to=<x@y> proto=ESMTP helo=<a>\n")
    tail = (b"Mar  1 10:00:02 mx postfix/smtpd[102]: connect from b.example[192.0.2.2]\n"
            b"Mar  1 10:00:03 mx postfix/smtpd[102]: 4A1B2C3D4E: client=b.example[192.0.2.2]\n"
            b"Mar  1 10:00:04 mx postfix/smtpd[101]: 4A1B2C3D4E: reject: DATA from a.example[192.0.2.1]: "
            b"550 5.7.1 no; from=<a@b> to=<c@d> proto=SMTP\n")
    data = head + tail
    assert assert_halves_same(data, [len(head)]) == 0
    assert assert_halves_same(data, line_starts(data)) < len(line_starts(data))


def test_new_year_in_the_first_half_dates_the_second(tmp_path):
    lines = [b"Dec 31 23:59:59 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n",
             b"Jan  1 00:00:01 mx postfix/smtpd[1]: disconnect from a[192.0.2.1] commands=0\n",
             b"Jan  1 00:00:02 mx postfix/smtpd[2]: connect from b[192.0.2.2]\n"]
    data = b"".join(lines)
    tables, _counts, _auth, _merged = scan_halves(data, len(lines[0]) + len(lines[1]))
    years = sorted(row["start_ts"].year for row in tables["sessions"])
    assert years == [2025, 2026]  # the anchor is March 2026: December was 2025, January 2026


def test_index_scans_big_files_in_two_halves(tmp_path, monkeypatch, generated_log):
    merges = []
    real = columnar_postfix._merge_later
    monkeypatch.setattr(columnar_postfix, "_merge_later", lambda *a, **k: merges.append(a[4]) or real(*a, **k))
    monkeypatch.setattr(columnar_postfix, "TWO_PARTS_MIN_BYTES", 1)
    compiled, sql = index_both(tmp_path, generated_log, monkeypatch, slice_bytes=64 << 10)
    assert len(merges) == 1 and 0 < merges[0] < generated_log.stat().st_size
    assert differences(compiled, sql) == {}
    # the transcript of a session that crosses the cut reads both halves' lines
    con = duckdb.connect(str(compiled), read_only=True)
    try:
        from mailwarden.logs import linestore
        session_id, first, last, n = con.execute(
            "SELECT s.session_id, min(l.lineno), max(l.lineno), count(*) FROM session_lines l JOIN sessions s "
            "USING (session_id) GROUP BY s.session_id HAVING min(l.lineno) < ? AND max(l.lineno) > ? LIMIT 1",
            [count(compiled, "SELECT min(first_lineno) FROM line_blocks WHERE first_lineno > 1"),
             count(compiled, "SELECT min(first_lineno) FROM line_blocks WHERE first_lineno > 1")]).fetchone()
        texts = linestore.line_texts(con, [(1, first), (1, last)])
    finally:
        con.close()
    lines = generated_log.read_text().splitlines()
    assert texts == {(1, first): lines[first - 1], (1, last): lines[last - 1]}


@pytest.mark.parametrize("damage", ["invalid-utf8", "crlf", "huge-line"])
def test_halves_with_bad_bytes_in_the_second_half(tmp_path, monkeypatch, generated_log, damage):
    # the second half's reader meets what needs the clean copy while the first still scans:
    # both stop, the clean copy is loaded (in halves again), the rows equal the SQL path's
    lines = generated_log.read_bytes().splitlines(keepends=True)
    at = len(lines) * 3 // 4
    bad = {"invalid-utf8": lines[at].replace(b"connect", b"conn\xff\xfeect", 1),
           "crlf": lines[at].replace(b"\n", b"\r\n"),
           "huge-line": b"Mar  1 10:00:00 mx postfix/cleanup[1]: " + b"x" * (5 << 20) + b"\n"}[damage]
    log = tmp_path / "mail.log"
    log.write_bytes(b"".join(lines[:at]) + bad + b"".join(lines[at + 1:]))
    compiled, sql = index_both(tmp_path, log, monkeypatch, slice_bytes=64 << 10, two_parts=True)
    assert differences(compiled, sql) == {}
    assert count(compiled, "SELECT lines FROM sources") == len(lines)


def test_finish_table_builds_only_the_columns_asked_for(generated_log):
    # a hunt's narrowed index asks for a few columns: the same values, the others left out
    data = generated_log.read_bytes()[: 4 << 20]
    data = data[: data.rfind(b"\n") + 1]
    whole, _counts, _auth = scan_whole(data)
    scanner = Scanner(10**12, 0, 2026, 3, transcripts=False)
    scanner.scan(data)
    scanner.finish_begin()
    wanted = {"sessions": ("session_id", "kind", "helo", "auth_user", "start_ts"),
              "recipients": ("txn_id", "address", "status"), "transactions": ("txn_id", "sender", "nrcpt")}
    try:
        for name, columns in wanted.items():
            rows = _rows(scanner.finish_table(name, frozenset(columns) | {"not-a-column"}))
            assert rows and set(rows[0]) == set(columns)
            expected = [{c: row[c] for c in columns} for row in whole[name]]
            assert rows == expected, name
        assert _rows(scanner.finish_table("session_lines")) == []   # no transcripts kept
        assert whole["session_lines"]
    finally:
        scanner.finish_end()


def test_scanner_made_with_fewer_columns_keeps_their_values(generated_log):
    # hunt's narrowed index: the scanner keeps no strings for the other columns, and says so if
    # one of those is asked for
    from mailwarden.hunt.tables import COLUMNS_READ

    data = generated_log.read_bytes()[: 4 << 20]
    data = data[: data.rfind(b"\n") + 1]
    # a message whose cleanup line is all there is of it: accepted because its Message-ID was
    # logged, which the scanner must remember without keeping the text
    cleanup = re.search(rb"^.*postfix/cleanup\[\d+\]: ([0-9A-F]+): message-id=<.*$", data, re.M)
    data += cleanup.group(0).replace(cleanup.group(1), b"ABCDEF98765") + b"\n"
    cut = data.index(b"\n", len(data) // 2) + 1
    whole, _counts, _auth = scan_whole(data)
    assert [t["accepted"] for t in whole["transactions"] if t["queue_id"] == "ABCDEF98765"] == [True]
    wanted = {name: frozenset(columns) for name, columns in COLUMNS_READ.items()}
    first = Scanner(10**12, 0, 2026, 3, transcripts=False, columns=wanted)
    later = Scanner(10**12, 0, 2026, 3, transcripts=False, columns=wanted)
    first.scan(data[:cut])
    later.skip(data[:cut])
    later.scan(data[cut:])
    with pytest.raises(ValueError):
        first.merge(Scanner(10**12, 0, 2026, 3, transcripts=False))   # kept other strings
    assert first.merge(later) is not None
    first.finish_begin()
    try:
        for name, columns in wanted.items():
            rows = _rows(first.finish_table(name, columns))
            built = sorted(columns & set(whole[name][0]))   # (trusted is the index's, not the scanner's)
            assert rows and sorted(rows[0]) == built
            assert (sorted(repr([r[c] for c in built]) for r in rows)
                    == sorted(repr([r[c] for c in built]) for r in whole[name])), name
        with pytest.raises(ValueError, match="tls_info"):
            first.finish_table("sessions", ("session_id", "tls_info"))
        with pytest.raises(ValueError):
            first.finish_table("recipients")   # every column, detail too
    finally:
        first.finish_end()
    # the columns left out did hold text in this sample, so something was left out
    assert any(r["tls_info"] for r in whole["sessions"]) and any(r["detail"] for r in whole["recipients"])
    with pytest.raises(ValueError):
        Scanner(10**12, 0, 2026, 3, columns={"sessions": ("kind",)}).finish()


def test_halves_without_transcripts_merge_to_the_same_rows(generated_log):
    data = generated_log.read_bytes()[: 2 << 20]
    data = data[: data.rfind(b"\n") + 1]
    cut = data.index(b"\n", len(data) // 2) + 1
    whole, counts, _auth = scan_whole(data)
    first, later = Scanner(10**12, 0, 2026, 3, transcripts=False), Scanner(10**12, 0, 2026, 3, transcripts=False)
    first.scan(data[:cut])
    later.skip(data[:cut])
    later.scan(data[cut:])
    assert first.merge(later) is not None
    tables, bare_counts = first.finish()
    assert bare_counts == counts
    for name in ("sessions", "transactions", "recipients", "rejects"):
        assert _rows(tables[name]) == whole[name], name
    assert _rows(tables["session_lines"]) == []


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600).map(lambda b: b.replace(b"\x00", b"\n")),
       start=st.integers(-5, 700), stop=st.integers(-5, 700))
def test_count_lines_is_bytes_count(data, start, stop):
    from mailwarden.logs._pfscan import count_lines

    lo, hi = max(start, 0), min(stop, len(data))
    assert count_lines(data, start, stop) == (data.count(b"\n", lo, hi) if lo < hi else 0)
    assert count_lines(bytearray(data)) == data.count(b"\n")


@settings(max_examples=25, deadline=None)
@given(text=log_lines(), chunk=st.integers(1, 40),
       order=st.permutations(["sessions", "transactions", "recipients", "rejects", "session_lines"]))
def test_tables_built_in_ranges_are_the_whole_tables(text, chunk, order):
    # store_finished builds each table chunk by chunk as DuckDB reads it, then declares it done
    # (finish_done frees what no table left needs: recipients and rejects both read the reject
    # lines), in whatever order its two connections get there; a table done is not built again
    data = text.encode()
    whole, _counts, _auth = scan_whole(data)
    scanner = Scanner(10**12, 0, 2026, 3)
    scanner.scan(data)
    scanner.finish_begin()
    try:
        for name in order:
            rows = whole[name]
            assert scanner.finish_rows(name) == len(rows)
            got = []
            for start in range(0, len(rows), chunk):
                got += _rows(scanner.finish_table(name, None, start, start + chunk))
            assert got == rows, name
            assert _rows(scanner.finish_table(name, None, len(rows), len(rows) + 5)) == []
            scanner.finish_done(name)
            with pytest.raises(RuntimeError):
                scanner.finish_table(name)
    finally:
        scanner.finish_end()
    with pytest.raises(RuntimeError):
        scanner.finish_rows("sessions")


@settings(max_examples=25, deadline=None)
@given(text=log_lines())
def test_transactions_come_in_id_order(text):
    # the index stores transactions in txn_id order, as the scanner makes them (no sort): a
    # transaction is made at its first line, whatever the lines after it, its columns narrowed or not
    data = text.encode()
    whole, _counts, _auth = scan_whole(data)
    assert [r["txn_id"] for r in whole["transactions"]] == sorted(r["txn_id"] for r in whole["transactions"])
    columns = ("txn_id", "session_id", "sender", "accepted")
    scanner = Scanner(10**12, 0, 2026, 3)
    scanner.scan(data)
    scanner.finish_begin()
    try:
        assert scanner.finish_rows("transactions") == len(whole["transactions"])
        got = _rows(scanner.finish_table("transactions", columns))
    finally:
        scanner.finish_end()
    assert got == [{c: r[c] for c in columns} for r in whole["transactions"]]
