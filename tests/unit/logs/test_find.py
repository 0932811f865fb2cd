"""`logs find`: byte search and full parse agree; compressed and stdin inputs; windows; the CLI."""

from __future__ import annotations

import datetime as dt
import gzip
import os

import pytest

from mailwarden.logs.find import FindQuery, TimeWindow, find_in_logs
from tests.conftest import DATA

REAL = DATA / "logs" / "postfix" / "postfix-3.7-maillog.log"
AUTH_MID = "auth-submission.d54586b98abd4ccda5aa6641e9a7378f@example.test"
PC_MID = "trusted-pc.c07ab133a90240538107f97acff10158@example.test"
MTIME = dt.datetime(2026, 11, 23, 0, 15).timestamp()


@pytest.fixture
def big_log(tmp_path):
    """The real log behind ~6 MB of other real-shaped traffic, so hits sit far from the start."""
    filler = []
    for i in range(40_000):
        pid = 5000 + i % 50
        filler.append(f"Nov 22 23:{i // 1000 % 60:02d}:{i % 60:02d} mail postfix/smtpd[{pid}]: connect from unknown[192.0.2.{i % 250}]")
        filler.append(f"Nov 22 23:{i // 1000 % 60:02d}:{i % 60:02d} mail postfix/smtpd[{pid}]: disconnect from unknown[192.0.2.{i % 250}] ehlo=1 quit=1 commands=2")
    path = tmp_path / "mail.log"
    path.write_text("\n".join(filler) + "\n" + REAL.read_text("utf-8"))
    os.utime(path, (MTIME, MTIME))
    return path


def _summary(sessions):
    return [(s.client_ip, s.auth_user, [ln.lineno for ln in s.lines],
             [(t.queue_id, t.message_id, t.sender, [(r.address, r.status) for r in t.recipients])
              for t in s.transactions]) for s in sessions]


def test_byte_search_equals_full_parse(big_log, tmp_path):
    query = FindQuery(message_id=AUTH_MID)
    fast = find_in_logs([str(big_log)], query)
    assert fast.method == "byte-search"
    (session,) = fast.sessions
    assert session.auth_user == "alice" and session.client_ip == "127.0.0.20"
    assert [ln.lineno for ln in session.lines] == [80000 + n for n in (7, 8, 9, 10, 11, 28, 29)]
    slow = find_in_logs([str(big_log)], query, unparsed_sink=lambda line: None)
    assert slow.method == "full-parse"
    assert _summary(slow.sessions) == _summary(fast.sessions)
    # gzip goes through the streaming path with the same answer
    gz = tmp_path / "mail.log.1.gz"
    gz.write_bytes(gzip.compress(big_log.read_bytes()))
    os.utime(gz, (MTIME, MTIME))
    streamed = find_in_logs([str(gz)], query)
    assert _summary(streamed.sessions) == _summary(fast.sessions)


def test_find_by_queue_id(big_log):
    (session,) = find_in_logs([str(big_log)], FindQuery(queue_id="7568D20D15E")).sessions
    assert session.client_ip == "127.0.0.10" and session.transactions[0].message_id == PC_MID


def test_time_window_naive_log_aware_bound(big_log):
    # the log's naive time is 2026-11-23 00:10:09 server-local; an aware bound 14 h away still
    # matches (unknown server zone), 15 h away does not
    near = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
    far = dt.datetime(2026, 11, 23, 15, 30, tzinfo=dt.UTC)
    assert find_in_logs([str(big_log)], FindQuery(message_id=PC_MID, window=TimeWindow(since=near))).sessions
    result = find_in_logs([str(big_log)], FindQuery(message_id=PC_MID, window=TimeWindow(since=far)))
    assert not result.sessions and result.outside_window == 1


def test_cli_find_json(run_cli, big_log):
    result = run_cli("logs", "find", str(big_log), "--message-id", f"<{PC_MID}>", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["found"] and doc["search"]["formats"] == {str(big_log): "postfix"}
    (session,) = doc["sessions"]
    assert session["client_ip"] == "127.0.0.10"
    assert session["lines"][0] == {"source": str(big_log), "lineno": 80017,
                                   "text": "Nov 23 00:10:09 mail postfix/smtpd[29073]: connect from unknown[127.0.0.10]"}
    why = session["explanation"]
    assert [g["setting"] for g in why["would_have_stopped"]] == ["auth-required-for-local-senders"]
    assert session["transactions"][session["matched_transaction"]]["queue_id"] == "7568D20D15E"


def test_cli_rich_view_shows_transcript_and_reason(run_cli, big_log):
    result = run_cli("logs", "find", str(big_log), "-m", AUTH_MID)
    assert result.exit_code == 0
    assert "authenticated as alice (PLAIN)" in result.stdout
    assert "725C320D15C: client=unknown[127.0.0.20], sasl_method=PLAIN" in result.stdout.replace("\n", "")


def test_cli_not_found_and_unreadable_exit_4(run_cli, big_log, tmp_path):
    missing = run_cli("logs", "find", str(big_log), "-m", "nope@nowhere", "--json")
    assert missing.exit_code == 4 and missing.json()["found"] is False
    unreadable = run_cli("logs", "find", str(tmp_path / "absent.log"), "-m", AUTH_MID)
    assert unreadable.exit_code == 4
    assert "absent.log" in unreadable.stderr


def test_cli_usage_errors(run_cli, big_log):
    assert run_cli("logs", "find", str(big_log)).exit_code == 2
    assert run_cli("logs", "find", str(big_log), "-m", "x", "--format", "sendmail").exit_code == 2
    assert run_cli("logs", "find", str(big_log), "-m", "x", "--around", "yesterday").exit_code == 2


def test_cli_unparsed_file(run_cli, tmp_path):
    log = tmp_path / "mixed.log"
    log.write_text(REAL.read_text("utf-8") + "garbage line \x01\x02\nNov 23 00:10:10 mail postfix/smtpd[1]: what is this\n")
    out = tmp_path / "unparsed.txt"
    result = run_cli("logs", "find", str(log), "-m", PC_MID, "--unparsed", str(out), "--json")
    assert result.exit_code == 0
    assert result.json()["search"]["unparsed_lines"] == 2
    written = out.read_text().splitlines()
    assert written[0].startswith(f"{log}:41: garbage line")
    assert written[1].endswith("what is this")


def test_cli_stdin(run_cli):
    result = run_cli("logs", "find", "-", "-m", AUTH_MID, "--json", input=REAL.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.json()["sessions"][0]["auth_user"] == "alice"


def test_cli_find_db(run_cli, tmp_path):
    """``--db`` answers from the DuckDB index built by ``logs index`` (the index engineer's part)."""
    index = pytest.importorskip("mailwarden.logs.index")
    if not hasattr(index, "find_sessions"):
        pytest.skip("index back-end without find_sessions")
    db = tmp_path / "logs.duckdb"
    built = run_cli("logs", "index", str(REAL), "--db", str(db))
    assert built.exit_code == 0, built.stderr
    result = run_cli("logs", "find", "--db", str(db), "-m", AUTH_MID, "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["search"]["method"] == "index"
    (session,) = doc["sessions"]
    assert session["auth_user"] == "alice" and [ln["lineno"] for ln in session["lines"]] == [7, 8, 9, 10, 11, 28, 29]
    assert run_cli("logs", "find", "--db", str(tmp_path / "none.duckdb"), "-m", AUTH_MID).exit_code == 4


def test_too_many_separate_hits_stop_with_a_problem(big_log, monkeypatch):
    import mailwarden.logs.find as find_module

    monkeypatch.setattr(find_module, "BACK", 4096)
    monkeypatch.setattr(find_module, "FORWARD", 4096)
    monkeypatch.setattr(find_module, "MAX_REGIONS", 3)
    result = find_in_logs([str(big_log)], FindQuery(message_id="192.0.2.7]"))
    assert any("more than 3 separate matches" in p for p in result.problems)


def test_cli_says_how_many_recipients_it_left_out(run_cli):
    # a real-shaped hostile log: this message has 20 recipients; the panel shows 10 and says so
    log = DATA / "hunt" / "hostile-postfix.log"
    result = run_cli("logs", "find", str(log), "-m", "0<b>bold</b>@evil.test", "--year", "2026")
    assert result.exit_code == 0, result.stderr
    squeezed = "".join(ch for ch in result.stdout if ch not in " \n│")  # the panel wraps long rows
    assert "…10more(--jsonlistsall)" in squeezed
    assert "<b>bold</b>" in squeezed  # shown as text, never as markup
    full = run_cli("logs", "find", str(log), "-m", "0<b>bold</b>@evil.test", "--year", "2026", "--json").json()
    counts = [len(t["recipients"]) for s in full["sessions"] for t in s["transactions"]
              if t["message_id"] == "0<b>bold</b>@evil.test"]
    assert max(counts) == 20
