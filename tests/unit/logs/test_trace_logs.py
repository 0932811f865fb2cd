"""`trace --logs`: from a real delivered message to its real Postfix session (scenario-2 fixtures)."""

from __future__ import annotations

from tests.conftest import DATA

SCENARIO = DATA / "logs" / "postfix" / "scenario-2"
LOG = SCENARIO / "maillog.log"


def test_trace_json_gains_the_session(run_cli):
    result = run_cli("trace", str(SCENARIO / "auth-submission.eml"), str(SCENARIO / "trusted-pc.eml"),
                     "--logs", str(LOG), "--json")
    assert result.exit_code == 0, result.stderr
    auth, pc = result.json()["messages"]
    session = auth["session"]
    assert session["auth_user"] == "alice" and session["client_ip"] == "127.0.0.20"
    txn = session["transactions"][session["matched_transaction"]]
    assert txn["queue_id"] == "D09CA212E77"            # the id in the message's Received header
    assert session["explanation"]["summary"] == "accepted: authenticated as alice (PLAIN)"
    assert auth["log_search"]["method"] == "byte-search"
    assert pc["session"]["client_ip"] == "127.0.0.10" and pc["session"]["auth_user"] is None
    assert [g["setting"] for g in pc["session"]["explanation"]["would_have_stopped"]] == [
        "auth-required-for-local-senders"]


def test_trace_rich_view_shows_the_transcript(run_cli):
    result = run_cli("trace", str(SCENARIO / "inbound.eml"), "--logs", str(LOG))
    assert result.exit_code == 0
    flat = result.stdout.replace("\n", "")
    assert "SMTP session in the logs" in flat
    assert "connect from unknown[127.0.0.77]" in flat


def test_logs_find_from_message(run_cli):
    result = run_cli("logs", "find", str(LOG), "--from-message", str(SCENARIO / "auth-submission.eml"),
                     "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["query"]["queue_id"] == "D09CA212E77"
    assert doc["query"]["message_id"].startswith("auth-submission.")
    assert doc["query"]["since"].startswith("2026-11-22T00:18:35")   # ±1 day around Received
    assert doc["sessions"][0]["auth_user"] == "alice"


def test_trace_next_action_names_the_given_log(run_cli):
    result = run_cli("trace", str(SCENARIO / "trusted-pc.eml"), "--server-name", "mail.example.test",
                     "--trusted-net", "127.0.0.10/32", "--logs", str(LOG), "--json")
    assert result.exit_code == 0, result.stderr
    action = result.json()["messages"][0]["next_action"]
    assert f"mailwarden logs find {LOG} --message-id trusted-pc." in action
    assert "/var/log/mail.log" not in action


def test_trace_with_a_missing_log_is_an_input_error(run_cli, tmp_path):
    result = run_cli("trace", str(SCENARIO / "trusted-pc.eml"), "--logs", str(tmp_path / "nope.log"))
    assert result.exit_code == 4
    assert "no such file" in result.stderr
