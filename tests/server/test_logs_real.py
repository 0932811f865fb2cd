"""Issue 3's real-server test: ``trace`` and ``logs find`` on mail a real Postfix accepted.

The standard scenario (scenarios.standard_scenario) sends, from distinct loopback
addresses, an authenticated submission (alice on 127.0.0.20), mail from the
trusted office PC (127.0.0.10, in mynetworks), plain inbound mail from an outside
host (127.0.0.77), a bad-password AUTH and a relay attempt. Then ``mailwarden
trace`` on each delivered file and ``mailwarden logs find`` on the real maillog
must name the right account, client IP and reason.

Both commands are exercised through the CLI (``run_cli``) with ``--json``; the
JSON shapes are the ones documented in docs/json.md.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.server.scenarios import OFFICE_PC, OUTSIDE, ROAMING, delivered_file, standard_scenario

pytestmark = pytest.mark.server

# Where each delivered scenario message lands (label -> local user).
DELIVERED = {"auth-submission": "bob", "trusted-pc": "alice", "inbound": "alice"}
EXPECTED = {
    # label: (trace verdict, account, client IP, HELO)
    "auth-submission": ("authenticated-account", "alice", ROAMING, "alice-laptop"),
    "trusted-pc": ("internal-host", None, OFFICE_PC, "office-pc"),
    "inbound": ("external", None, OUTSIDE, "mx.outside.test"),
}


@pytest.fixture(scope="module")
def traffic(mail_site, tmp_path_factory):
    """Run the scenario once; copy the delivered files out and write the site's mailwarden.toml."""
    sent = {message.label: message for message in standard_scenario(mail_site)}
    out = tmp_path_factory.mktemp("delivered")
    files = {}
    for label, user in DELIVERED.items():
        path = delivered_file(mail_site, user, sent[label].message_id)
        assert path is not None, f"{label} was not delivered to {user}"
        files[label] = Path(shutil.copy(path, out / f"{label}.eml"))
    config = out / "mailwarden.toml"
    config.write_text(
        "[site]\n"
        f'local_domains = ["{mail_site.domain}"]\n'
        f'server_names = ["{mail_site.postfix.hostname}"]\n'
        f'trusted_networks = ["{OFFICE_PC}/32"]\n'
    )
    return {"sent": sent, "files": files, "config": config, "maillog": mail_site.maillog}


def _single_trace(run_cli, traffic, label: str) -> dict:
    result = run_cli("trace", traffic["files"][label], "--json", "--config", traffic["config"])
    assert result.exit_code == 0, result.stderr or result.stdout
    doc = result.json()
    assert doc["errors"] == []
    assert len(doc["messages"]) == 1
    return doc["messages"][0]


# -- trace ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(DELIVERED))
def test_trace_names_message_client_and_our_hop(run_cli, traffic, label):
    sent = traffic["sent"][label]
    _verdict, _account, client_ip, helo = EXPECTED[label]
    trace = _single_trace(run_cli, traffic, label)
    assert trace["message_id"] == sent.message_id
    assert trace["client_ip"] == client_ip
    assert trace["client_helo"] == helo
    assert trace["our_hop"]["id"] == sent.queue_id  # the Postfix queue id in our Received line
    assert trace["our_hop"]["by"] == "mail.example.test"
    assert dt.datetime.fromisoformat(trace["received_at"]).tzinfo is not None


@pytest.mark.parametrize(
    "label",
    ["auth-submission", "inbound", "trusted-pc"],
)
def test_trace_verdict_and_account(run_cli, traffic, label):
    verdict, account, client_ip, _helo = EXPECTED[label]
    trace = _single_trace(run_cli, traffic, label)
    assert trace["verdict"] == verdict, trace.get("reason")
    assert trace["account"] == account
    if verdict != "authenticated-account":
        # The next step for unauthenticated mail is the SMTP session in the log.
        assert "mailwarden logs find" in trace["next_action"]
        assert client_ip in trace["reason"]


def test_trace_summary_counts_the_three_verdicts(run_cli, traffic):
    files = [traffic["files"][label] for label in sorted(DELIVERED)]
    result = run_cli("trace", *files, "--json", "--config", traffic["config"])
    assert result.exit_code == 0, result.stderr
    by_verdict = result.json()["summary"]["by_verdict"]
    assert by_verdict["authenticated-account"] == 1
    assert by_verdict["internal-host"] == 1
    assert by_verdict["external"] == 1


# -- logs find --------------------------------------------------------------------------------


def _sessions(doc) -> list[dict]:
    """Every session object in a `logs find --json` document (dicts with client_ip + transactions)."""
    found: list[dict] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "transactions" in node and "client_ip" in node:
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def _explanations(doc) -> list:
    """The explanation parts ("why accepted") of a `logs find --json` document."""
    found: list = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("explanation", "why", "why_accepted", "explain"):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def _line_texts(session: dict) -> list[str]:
    return [line["text"] if isinstance(line, dict) else str(line) for line in session["lines"]]


def _find(run_cli, traffic, *args: str) -> dict:
    result = run_cli(
        "logs", "find", traffic["maillog"], *args, "--json", "--config", traffic["config"]
    )
    assert result.exit_code == 0, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    return result.json()


def _the_session(doc, sent) -> dict:
    sessions = _sessions(doc)
    assert len(sessions) == 1, f"expected one session for {sent.message_id}, got {len(sessions)}"
    session = sessions[0]
    txns = [t for t in session["transactions"] if t.get("message_id") == sent.message_id]
    assert len(txns) == 1, session["transactions"]
    assert txns[0]["queue_id"] == sent.queue_id
    assert txns[0]["accepted"] is True
    return session


FIND_CASES = {
    # label: (client IP, AUTH user, service, the explanation's reason code)
    "auth-submission": (ROAMING, "alice", "postfix/submission/smtpd", "authenticated"),
    "auth-outside": (ROAMING, "alice", "postfix/submission/smtpd", "authenticated"),
    "trusted-pc": (OFFICE_PC, None, "postfix/smtpd", "trusted-network"),
    "inbound": (OUTSIDE, None, "postfix/smtpd", "inbound-local"),
}


@pytest.mark.parametrize("label", sorted(FIND_CASES))
def test_logs_find_by_message_id_names_client_account_and_reason(run_cli, traffic, label):
    sent = traffic["sent"][label]
    client_ip, auth_user, service, reason_code = FIND_CASES[label]
    doc = _find(run_cli, traffic, "--message-id", sent.message_id)
    assert doc["found"] is True
    session = _the_session(doc, sent)
    assert session["client_ip"] == client_ip
    assert session["auth_user"] == auth_user
    assert session["service"] == service
    if auth_user:
        assert session["auth_method"] == "PLAIN"
    # Postfix logs the HELO name only in reject lines, so an accepted session has none.
    texts = _line_texts(session)
    # The transcript is the real log: the client= line of this message is in it.
    client_line = [t for t in texts if f"{sent.queue_id}: client=" in t]
    assert len(client_line) == 1 and f"[{client_ip}]" in client_line[0]
    assert any(f"connect from unknown[{client_ip}]" in t for t in texts)

    [explanation] = _explanations(doc)
    assert explanation["accepted"] is True
    codes = [reason["code"] for reason in explanation["reasons"]]
    assert codes[0] == reason_code, explanation
    first = explanation["reasons"][0]
    if auth_user:
        assert f"authenticated as {auth_user} (PLAIN)" in first["text"]
        assert first["inferred"] is False
    if reason_code == "trusted-network":
        # Postfix does not log mynetworks membership: it comes from the site config.
        assert client_ip in first["text"] and first["inferred"] is True
        # bob@example.test sent without AUTH from inside: the missing safeguard is named.
        stoppers = [s["setting"] for s in explanation["would_have_stopped"]]
        assert "auth-required-for-local-senders" in stoppers
    if reason_code == "inbound-local":
        assert "authenticated" not in codes and "trusted-network" not in codes


def test_logs_find_outside_recipient_relayed_to_sink(run_cli, traffic, mail_site):
    sent = traffic["sent"]["auth-outside"]
    session = _the_session(_find(run_cli, traffic, "--message-id", sent.message_id), sent)
    txn = next(t for t in session["transactions"] if t.get("message_id") == sent.message_id)
    assert txn["sender"] == "alice@example.test"
    [rcpt] = txn["recipients"]
    assert rcpt["address"] == "friend@outside.test"
    assert rcpt["status"] == "sent"
    assert rcpt["relay"].startswith("127.0.0.1[127.0.0.1]:")


@pytest.mark.parametrize("label", sorted(DELIVERED))
def test_logs_find_from_message_finds_the_same_session(run_cli, traffic, label):
    sent = traffic["sent"][label]
    client_ip = FIND_CASES[label][0]
    doc = _find(run_cli, traffic, "--from-message", traffic["files"][label])
    session = _the_session(doc, sent)
    assert session["client_ip"] == client_ip


def test_logs_find_unknown_message_id_exits_4(run_cli, traffic):
    result = run_cli(
        "logs", "find", traffic["maillog"], "--message-id", "no-such-message@example.test", "--json"
    )
    assert result.exit_code == 4


# -- trace --logs, and the DuckDB index on the same real log -----------------------------------


@pytest.mark.parametrize("label", sorted(DELIVERED))
def test_trace_with_logs_adds_the_session_and_why(run_cli, traffic, label):
    sent = traffic["sent"][label]
    client_ip, auth_user, service, reason_code = FIND_CASES[label]
    result = run_cli(
        "trace", traffic["files"][label], "--logs", traffic["maillog"], "--json",
        "--config", traffic["config"],
    )
    assert result.exit_code == 0, result.stderr
    [message] = result.json()["messages"]
    session = message["session"]
    assert session["client_ip"] == client_ip
    assert session["auth_user"] == auth_user
    assert session["service"] == service
    assert [t["queue_id"] for t in session["transactions"]] == [sent.queue_id]
    assert session["explanation"]["reasons"][0]["code"] == reason_code


@pytest.fixture(scope="module")
def index_db(traffic, tmp_path_factory):
    """The scenario's maillog loaded into a DuckDB index with `logs index`."""
    from typer.testing import CliRunner

    from mailwarden.cli import app

    db = tmp_path_factory.mktemp("index") / "maillog.duckdb"
    result = CliRunner().invoke(app, ["logs", "index", str(traffic["maillog"]), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize("label", sorted(FIND_CASES))
def test_logs_find_from_the_index_matches_the_log(run_cli, traffic, index_db, label):
    sent = traffic["sent"][label]
    client_ip, auth_user, service, reason_code = FIND_CASES[label]
    doc = _find_db(run_cli, traffic, index_db, "--message-id", sent.message_id)
    session = _the_session(doc, sent)
    assert (session["client_ip"], session["auth_user"], session["service"]) == (
        client_ip, auth_user, service
    )
    [explanation] = _explanations(doc)
    assert explanation["reasons"][0]["code"] == reason_code


def _find_db(run_cli, traffic, db, *args: str) -> dict:
    result = run_cli("logs", "find", "--db", db, *args, "--json", "--config", traffic["config"])
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return result.json()


def test_index_holds_every_scenario_session(run_cli, index_db):
    # 127.0.0.1 is the harness's readiness probe (one QUIT session per smtpd service).
    result = run_cli(
        "logs", "sql", "--db", index_db, "--json",
        "SELECT client_ip, service, coalesce(auth_user, '-'), auth_failures FROM sessions "
        "WHERE client_ip <> '127.0.0.1' ORDER BY 1, 2, 3, 4",
    )
    assert result.exit_code == 0, result.stderr
    rows = [tuple(row) for row in result.json()["rows"]]
    assert rows == [
        (OFFICE_PC, "postfix/smtpd", "-", 0),                       # trusted-pc
        (ROAMING, "postfix/submission/smtpd", "alice", 0),          # auth-submission
        (ROAMING, "postfix/submission/smtpd", "alice", 0),          # auth-outside
        (OUTSIDE, "postfix/smtpd", "-", 0),                         # inbound
        (OUTSIDE, "postfix/smtpd", "-", 0),                         # relay-denied
        (OUTSIDE, "postfix/submission/smtpd", "-", 1),              # bad-password
    ]
