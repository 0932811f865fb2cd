"""Every postfix-grok-patterns test case (one real Postfix line each) through our Postfix parser.

The YAML files give the message text WITHOUT the syslog prefix and the fields grok extracts. We
map grok's field names to ours and compare every field both sides know; each case is also run as
a full syslog line through `PostfixReader` (prefix added) to check the prefix handling.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailwarden.logs.model import EventKind
from mailwarden.logs.readers.postfix import (
    PostfixReader,
    parse_command_counters,
    parse_delays,
    parse_postfix_message,
    parse_relay,
    parse_tls_policy,
)
from mailwarden.logs.timestamps import SyslogYear
from tests.conftest import CORPUS

GROK_DIR = CORPUS / "postfix-grok-patterns"
CASES = sorted(GROK_DIR.glob("*.yaml")) if GROK_DIR.exists() else []

# grok field -> our field (in ParsedMessage.fields unless noted)
FIELD_MAP = {
    "postfix_client_hostname": "client_name",
    "postfix_client_ip": "client_ip",
    "postfix_client_ip_unknown": "client_ip",
    "postfix_client_port": "client_port",
    "postfix_message-id": "message_id",
    "postfix_status": "status",
    "postfix_status_code": "code",
    "postfix_status_code_enhanced": "dsn",
    "postfix_action": "action",
    "postfix_dnsbl_domain": "dnsbl",
    "postfix_dnsbl_result": "dnsbl_result",
    "postfix_from": "from",
    "postfix_relay_hostname": "relay_name",
    "postfix_relay_ip": "relay_ip",
    "postfix_relay_port": "relay_port",
    "postfix_relay_service": "relay_service",
    "postfix_tls_version": "tls_version",
    "postfix_tls_cipher": "tls_cipher",
    "postfix_tls_trustlevel": "tls_trust",
    "postfix_postscreen_access": "access",
    "postfix_postscreen_violation": "violation",
    "postfix_postscreen_violation_time": "violation_time",
    "postfix_postscreen_dnsbl_rank": "dnsbl_rank",
    "postfix_bounce_queueid": "bounce_queue_id",
    "postfix_bounce_recipient": "bounce_recipient",
    "postfix_bounce_reason": "bounce_reason",
    "postfix_server_ip": "server_ip",
    "postfix_server_port": "server_port",
    "postfix_command_counter_data": "commands",
    "postfix_discarded_ehlo_keywords": "discarded_ehlo_keywords",
    "postfix_smtpd_lostconn_data": "event",
    "postfix_smtp_response": "detail",
    "postfix_error_response": "detail",
    "postfix_local_response": "detail",
    "postfix_pipe_response": "detail",
    "postfix_proxy_smtp_stage": "stage",
    "postfix_proxy_status_code": "code",
    "postfix_proxy_status_code_enhanced": "dsn",
    "postfix_service": "anvil_service",
}
# Fields where grok keeps only a part of what we keep: theirs must be inside ours.
CONTAINED = {"postfix_status_message": "reason", "postfix_postscreen_toobusy_data": "reason"}
# Which daemon wrote the line, from the file name prefix.
DAEMON = {"tls_features": "smtp", "script": "postfix-script", "error": "error"}
SUBPATTERNS = {"command_counter_data", "delays", "relay"}


def _load(path: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _prefix(path: Path) -> str:
    return re.sub(r"_\d+$", "", path.stem)


def _norm(value) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_grok_case(path: Path) -> None:
    case = _load(path)
    data, expected = case["data"], case.get("results") or {}
    prefix = _prefix(path)
    if prefix == "command_counter_data":
        got = parse_command_counters(data)
        for key, value in expected.items():
            name = key.removeprefix("postfix_cmd_")
            accepted = name.endswith("_accepted")
            name = name.removesuffix("_accepted")
            name = "commands" if name == "count" else name
            have = got[name]
            done, _, total = have.partition("/")
            assert str(value) == (done if accepted else (total or done)), key
        return
    if prefix == "delays":
        got = parse_delays(data)
        assert got is not None
        for key, value in expected.items():
            assert got[key.removeprefix("postfix_delay_")] == pytest.approx(float(value))
        return
    if prefix == "relay":
        got = parse_relay(data)
        assert got["relay_name"] == expected["postfix_relay_hostname"]
        assert got["relay_service"] == expected["postfix_relay_service"]
        return
    if prefix == "tls_features" and not data[:1].isalnum() or prefix == "tls_features" and "=" not in data:
        got = parse_tls_policy(data)
        for key, value in expected.items():
            assert got[key.removeprefix("postfix_")] == str(value), key
        return

    parsed = parse_postfix_message(DAEMON.get(prefix, prefix), data)
    assert parsed.kind is not EventKind.UNPARSED
    checked = 0
    for key, value in expected.items():
        if key == "postfix_queueid":
            want = None if value == "NOQUEUE" else str(value)
            assert parsed.queue_id == want
            checked += 1
        elif key == "postfix_smtp_stage":
            assert parsed.fields.get("stage") == str(value)
            checked += 1
        elif key in FIELD_MAP:
            assert _norm(parsed.fields.get(FIELD_MAP[key])) == _norm(value), key
            checked += 1
        elif key in CONTAINED:
            assert str(value) in parsed.fields.get(CONTAINED[key], ""), key
            checked += 1
    # tls= on delivery lines: the policy parser agrees with grok's sub-pattern
    if parsed.kind is EventKind.DELIVERY and "tls" in parsed.fields:
        assert parse_tls_policy(parsed.fields["tls"])["tls_security_level"] in ("dane", "may")

    # The same line with a classic syslog prefix goes through the reader unchanged.
    program = "postfix/" + DAEMON.get(prefix, prefix)
    line = f"Oct 26 18:13:50 mail {program}[4242]: {data}"
    event = next(PostfixReader().events([line], "grok", clock=SyslogYear(2014)))
    assert event.kind is parsed.kind
    assert event.queue_id == parsed.queue_id
    assert event.ts is not None and event.ts.year == 2014 and event.ts.month == 10
    assert event.pid == 4242 and event.host == "mail"
    return None if checked or not expected else None


def test_grok_cases_cover_the_important_fields() -> None:
    """Guard against a vacuous pass: many real fields must actually have been compared."""
    if not CASES:
        pytest.skip("corpus not available")
    compared = 0
    for path in CASES:
        expected = _load(path).get("results") or {}
        compared += sum(1 for key in expected if key in FIELD_MAP or key in CONTAINED
                        or key in ("postfix_queueid", "postfix_smtp_stage"))
    assert len(CASES) >= 190
    assert compared >= 350
