"""MDaemon SMTP (in) sessions from the fixture files (lines quoted in mdaemon-formats.md)."""

from __future__ import annotations

import datetime as dt

from mailwarden.config import SiteConfig
from mailwarden.logs.explain import explain
from mailwarden.logs.find import FindQuery, find_in_logs
from mailwarden.logs.readers import detect
from mailwarden.logs.readers.mdaemon import MDaemonReader
from mailwarden.logs.sessions import assemble
from tests.conftest import DATA

MD = DATA / "logs" / "mdaemon"


def _log_lines(path):
    return [t for t in path.read_text("utf-8").splitlines() if not t.startswith("#")]


def test_detected_as_mdaemon():
    for path in MD.glob("*.log"):
        assert detect(_log_lines(path)).name == "mdaemon", path.name


def test_composed_session():
    path = MD / "smtp-in-session-composed.log"
    (session,) = assemble(MDaemonReader().events(_log_lines(path), path.name))
    assert (session.client_ip, session.client_port) == ("10.2.6.35", 64407)
    assert (session.server_ip, session.server_port) == ("91.226.133.9", 587)
    assert session.helo == "xia.bdwater.com"
    assert session.auth_failures == 1 and session.auth_user is None and session.auth_method == "LOGIN"
    assert session.outcome == "successful"
    assert session.start == dt.datetime(2019, 3, 14, 0, 0, 17, 768000)
    (txn,) = session.transactions
    assert txn.accepted and txn.sender == "test1@bdwater.com"
    assert txn.message_id == "20190314000017.md5000@bdwater.com"
    assert [(r.address, r.status) for r in txn.recipients] == [("test2@bdwater.com", "accepted")]
    why = explain(session, txn, SiteConfig().with_overrides(local_domains=["bdwater.com"]))
    # unauthenticated (AUTH LOGIN failed), sender in our own domain: the MDaemon setting is named
    assert why.accepted and "inbound-local" in [r.code for r in why.reasons]
    (gap,) = why.would_have_stopped
    assert gap.setting == "auth-required-for-local-senders"
    assert "Authentication is always required when mail is from local accounts" in gap.mdaemon
    assert any("1 failed AUTH" in n for n in why.notes) is False  # no success followed the failure


def test_interleaved_ids_make_separate_sessions():
    path = MD / "smtp-in-v26.log"
    sessions = list(assemble(MDaemonReader().events(_log_lines(path), path.name)))
    keys = sorted(s.lines[0].text[29:31] for s in sessions)
    assert keys == ["03", "05"]
    five = next(s for s in sessions if s.client_ip)
    assert five.client_ip == "203.0.113.10" and five.server_port == 25


def test_find_by_message_id_in_mdaemon_log(tmp_path):
    log = tmp_path / "MDaemon-2019-03-14-SMTP-(in).log"
    log.write_text("\n".join(_log_lines(MD / "smtp-in-session-composed.log")) + "\n")
    result = find_in_logs([str(log)], FindQuery(message_id="20190314000017.md5000@bdwater.com"))
    (session,) = result.sessions
    assert result.formats[str(log)] == "mdaemon"
    assert session.lines[0].lineno == 2 and session.lines[-1].text.endswith("SMTP session successful")
    assert session.client_ip == "10.2.6.35"


def test_routing_records_of_the_all_log():
    path = MD / "routing-v25.log"
    sessions = sorted(assemble(MDaemonReader().events(_log_lines(path), path.name)),
                      key=lambda s: s.lines[0].lineno)
    assert [s.kind for s in sessions] == ["routing", "routing"]
    assert [(t.queue_id, t.message_id) for s in sessions for t in s.transactions] == [
        ("pdd666.msg", "123"), ("pdd667.msg", None)]
    assert all(not s.defects for s in sessions)
