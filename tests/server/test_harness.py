"""The real-server harness itself: Dovecot and Postfix start, deliver, log and stop as expected."""

from __future__ import annotations

import hashlib
import imaplib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import require_dovecot, require_postfix
from tests.server.harness import (
    DEFAULT_USERS,
    Dovecot,
    HarnessError,
    Postfix,
    read_banner,
    reap_stale_instances,
    wait_until,
)
from tests.server.scenarios import (
    ACCEPTED,
    AUTH_FAILED,
    OFFICE_PC,
    OUTSIDE,
    REJECTED,
    ROAMING,
    delivered_file,
    send_message,
    standard_scenario,
)

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario(mail_site):
    """The standard scenario, sent once for this module: label -> SentMessage."""
    return {sent.label: sent for sent in standard_scenario(mail_site)}


def _log_line(site, *needles: str) -> str:
    """The one maillog line that contains every needle (fails listing the log otherwise)."""
    lines = [line for line in site.postfix.log_lines() if all(n in line for n in needles)]
    assert len(lines) == 1, f"expected one line with {needles}, got {lines}\n" + "\n".join(
        site.postfix.log_lines()
    )
    return lines[0]


def _imap_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


# -- the scenario's outcomes ----------------------------------------------------------------


def test_server_answers_match_the_scenario(scenario):
    assert scenario["auth-submission"].outcome == ACCEPTED
    assert scenario["auth-submission"].reply_to("AUTH")[0] == 235
    assert scenario["auth-outside"].outcome == ACCEPTED
    assert scenario["trusted-pc"].outcome == ACCEPTED
    assert scenario["inbound"].outcome == ACCEPTED
    bad = scenario["bad-password"]
    assert bad.outcome == AUTH_FAILED
    assert bad.reply_to("AUTH")[0] == 535
    relay = scenario["relay-denied"]
    assert relay.outcome == REJECTED
    code, text = relay.reply_to("RCPT")
    assert code == 554 and "Relay access denied" in text
    # Every accepted message got a queue id from the DATA reply.
    for label in ("auth-submission", "auth-outside", "trusted-pc", "inbound"):
        assert scenario[label].queue_id, label


def test_messages_land_in_the_right_maildirs(mail_site, scenario):
    assert delivered_file(mail_site, "bob", scenario["auth-submission"].message_id)
    assert delivered_file(mail_site, "alice", scenario["auth-submission"].message_id) is None
    assert delivered_file(mail_site, "alice", scenario["trusted-pc"].message_id)
    assert delivered_file(mail_site, "alice", scenario["inbound"].message_id)
    for label in ("auth-outside", "bad-password", "relay-denied"):
        for user in ("alice", "bob"):
            assert delivered_file(mail_site, user, scenario[label].message_id) is None, label
    # Postfix delivers into the very Maildir Dovecot serves.
    assert mail_site.postfix.mailbox("bob") == mail_site.dovecot.maildir("bob")


def test_received_header_names_the_authenticated_sender(mail_site, scenario):
    path = delivered_file(mail_site, "bob", scenario["auth-submission"].message_id)
    head = path.read_bytes().split(b"\n\n", 1)[0].decode()
    received = head.split("Received: ", 1)[1].split("\nFrom:", 1)[0]
    assert f"unknown [{ROAMING}]" in received
    assert "(Authenticated sender: alice)" in received
    assert f"with ESMTPA id {scenario['auth-submission'].queue_id}" in received
    inbound = delivered_file(mail_site, "alice", scenario["inbound"].message_id).read_text()
    assert f"unknown [{OUTSIDE}]" in inbound and "Authenticated sender" not in inbound


def test_log_shows_sasl_username_for_the_submission(mail_site, scenario):
    sent = scenario["auth-submission"]
    line = _log_line(mail_site, f"{sent.queue_id}: client=")
    assert "postfix/submission/smtpd[" in line
    assert f"client=unknown[{ROAMING}], sasl_method=PLAIN, sasl_username=alice" in line
    assert f"{sent.queue_id}: message-id=<{sent.message_id}>" in "\n".join(
        mail_site.postfix.log_lines()
    )
    delivery = _log_line(mail_site, f"{sent.queue_id}: to=<bob@example.test>")
    assert "relay=virtual" in delivery and "status=sent (delivered to maildir)" in delivery


def test_log_shows_trusted_and_inbound_clients_without_sasl(mail_site, scenario):
    trusted = _log_line(mail_site, f"{scenario['trusted-pc'].queue_id}: client=")
    assert trusted.endswith(f"client=unknown[{OFFICE_PC}]")
    inbound = _log_line(mail_site, f"{scenario['inbound'].queue_id}: client=")
    assert inbound.endswith(f"client=unknown[{OUTSIDE}]")


def test_log_shows_outside_mail_relayed_to_the_sink(mail_site, scenario):
    line = _log_line(mail_site, f"{scenario['auth-outside'].queue_id}: to=<friend@outside.test>")
    assert f"relay=127.0.0.1[127.0.0.1]:{mail_site.postfix.sink_port}" in line
    assert "status=sent (250" in line


def test_log_shows_relay_access_denied(mail_site, scenario):
    line = _log_line(mail_site, "NOQUEUE: reject: RCPT from", "Relay access denied")
    assert f"unknown[{OUTSIDE}]: 554 5.7.1 <victim@elsewhere.outside.test>" in line
    assert "from=<spammer@outside.test>" in line and "helo=<spambot>" in line


def test_log_shows_authentication_failed(mail_site, scenario):
    line = _log_line(mail_site, "authentication failed")
    assert f"warning: unknown[{OUTSIDE}]: SASL PLAIN authentication failed" in line
    assert "sasl_username=bob" in line
    assert "postfix/submission/smtpd[" in line


def test_every_accepted_message_is_finished_in_the_log(mail_site, scenario):
    assert mail_site.postfix.open_queue_ids() == set()
    for label in ("auth-submission", "auth-outside", "trusted-pc", "inbound"):
        _log_line(mail_site, f"{scenario[label].queue_id}: removed")


def test_submission_refuses_mail_without_auth(mail_site, scenario):
    sent = send_message(
        mail_site,
        label="submission-no-auth",
        port=mail_site.postfix.submission_port,
        source_ip=OUTSIDE,
        mail_from="bob@example.test",
        rcpt_to=["alice@example.test"],
    )
    assert sent.outcome == REJECTED
    code, text = sent.reply_to("RCPT")
    assert code == 554 and "Client host rejected: Access denied" in text


def test_postconf_n_shows_the_scenario_configuration(mail_site):
    settings = dict(
        line.split(" = ", 1) for line in mail_site.postfix.postconf_n().splitlines() if " = " in line
    )
    assert settings["mynetworks"] == "127.0.0.10/32"
    assert settings["smtpd_sasl_type"] == "dovecot"
    assert settings["smtpd_sasl_path"] == "private/auth"
    assert settings["smtpd_sasl_authenticated_header"] == "yes"
    assert settings["maillog_file"] == str(mail_site.postfix.log_path)
    master_cf = (mail_site.postfix.config_dir / "master.cf").read_text()
    assert f"127.0.0.1:{mail_site.postfix.submission_port} inet" in master_cf
    assert "smtpd_client_restrictions=permit_sasl_authenticated,reject" in master_cf
    # The SASL socket lives in this instance's own queue directory.
    assert mail_site.dovecot.auth_socket == mail_site.postfix.queue_dir / "private" / "auth"
    assert mail_site.dovecot.auth_socket.is_socket()


def test_imap_sees_the_delivered_message(mail_site, scenario):
    imap = imaplib.IMAP4("127.0.0.1", mail_site.dovecot.imap_port)
    try:
        imap.login("bob", mail_site.users["bob"])
        imap.select("INBOX", readonly=True)
        wanted = scenario["auth-submission"].message_id
        status, data = imap.search(None, "HEADER", "Message-ID", wanted)
        assert status == "OK" and len(data[0].split()) == 1
    finally:
        imap.logout()


# -- Dovecot on its own -----------------------------------------------------------------------


def test_dovecot_imap_login_append_and_bad_password(dovecot):
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    try:
        assert imap.login("alice", DEFAULT_USERS["alice"])[0] == "OK"
        message = b"From: a@example.test\r\nSubject: hello\r\nMessage-ID: <harness-1@x>\r\n\r\nhi\r\n"
        assert imap.append("INBOX", None, None, message)[0] == "OK"
        assert imap.create("Archive")[0] == "OK"
        status, count = imap.select("INBOX")
        assert status == "OK" and count == [b"1"]
    finally:
        imap.logout()
    maildir = dovecot.maildir("alice")
    assert len(list((maildir / "cur").iterdir())) + len(list((maildir / "new").iterdir())) == 1
    assert (maildir / ".Archive" / "maildirfolder").exists()

    refused = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        refused.login("alice", "wrong-password")
    refused.shutdown()
    log = dovecot.log_path.read_text()
    assert "Login: user=<alice>" in log
    assert "passwd-file(alice,127.0.0.1," in log and "Password mismatch" in log


def test_dovecot_doveadm_uses_the_instance_config(dovecot):
    result = dovecot.doveadm("mailbox", "list", "-u", "bob")
    assert result.stdout.split() == ["INBOX"]


def test_dovecot_stop_closes_the_port_and_is_idempotent(tmp_path):
    require_dovecot()
    server = Dovecot(tmp_path / "d", {"carol": "pw"})
    with server:
        assert read_banner("127.0.0.1", server.imap_port).startswith(b"* OK")
        pid = server._process.pid
    assert _imap_refused(server.imap_port)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    server.stop()  # a second stop is harmless
    server.remove_files()
    assert not server.runtime.exists()


# -- Postfix on its own ---------------------------------------------------------------------


def _etc_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path("/etc/postfix").glob("*.cf")) + [Path("/etc/dovecot/dovecot.conf")]:
        if path.exists():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_postfix_without_dovecot_delivers_and_stops_cleanly(tmp_path):
    require_postfix()
    before = _etc_fingerprint()
    postfix = Postfix(tmp_path / "pf", users={"dave": "unused"}, outbound="discard")
    try:
        postfix.start()
        assert postfix.submission_port is None  # no SASL without Dovecot
        local = send_message(
            postfix,
            label="local",
            port=postfix.smtp_port,
            source_ip="127.0.0.1",  # the default mynetworks
            mail_from="someone@example.test",
            rcpt_to=["dave@example.test", "nobody-here@example.test"],
        )
        outside = send_message(
            postfix,
            label="outside",
            port=postfix.smtp_port,
            source_ip="127.0.0.1",
            mail_from="someone@example.test",
            rcpt_to=["x@outside.test"],
        )
        postfix.wait_for_queue_empty()
        assert local.outcome == ACCEPTED and local.accepted_rcpts == ["dave@example.test"]
        assert local.replies[-2][1] == 550  # unknown virtual user
        assert delivered_file(postfix, "dave", local.message_id)
        line = postfix.wait_for_log(f"{outside.queue_id}: to=<x@outside.test>")
        assert "relay=none" in line and "status=sent" in line  # discard transport
        # reload() rewrites main.cf from the (changed) settings; new sessions see it.
        postfix.main_cf_overrides["smtpd_banner"] = "$myhostname ESMTP reloaded"
        postfix.reload()
        assert postfix.postconf("-h", "smtpd_banner").strip() == "$myhostname ESMTP reloaded"
        wait_until(
            lambda: read_banner("127.0.0.1", postfix.smtp_port, goodbye=b"QUIT\r\n")
            == b"220 mail.example.test ESMTP reloaded",
            30,
            "the reloaded banner",
        )
        master_pid = postfix._master_pid
        assert master_pid
    finally:
        postfix.stop()
    assert read_banner("127.0.0.1", postfix.smtp_port) is None
    state = Path(f"/proc/{master_pid}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    postfix.remove_files()
    assert _etc_fingerprint() == before


def test_postfix_tls_requires_starttls_before_auth_on_submission(tmp_path):
    require_dovecot()
    require_postfix()
    dovecot = Dovecot(tmp_path, {"erin": "erin-pw"})
    postfix = Postfix(tmp_path, dovecot=dovecot, tls=True, mynetworks=())
    try:
        postfix.start()  # starts its Dovecot too
        assert dovecot.running
        plain = send_message(
            postfix,
            port=postfix.submission_port,
            source_ip=ROAMING,
            auth=("erin", "erin-pw"),
            mail_from="erin@example.test",
            rcpt_to=["erin@example.test"],
        )
        ehlo = plain.reply_to("EHLO")[1]
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo  # smtpd_tls_auth_only=yes
        assert plain.outcome == AUTH_FAILED
        assert plain.reply_to("AUTH")[0] == 530, plain.replies  # "Must issue a STARTTLS command first"
        secure = send_message(
            postfix,
            port=postfix.submission_port,
            source_ip=ROAMING,
            starttls=True,
            auth=("erin", "erin-pw"),
            mail_from="erin@example.test",
            rcpt_to=["erin@example.test"],
        )
        assert secure.outcome == ACCEPTED, secure.replies
        postfix.wait_for_queue_empty()
        received = delivered_file(postfix, "erin", secure.message_id).read_text()
        assert "(Authenticated sender: erin)" in received
        assert f"with ESMTPSA id {secure.queue_id}" in received
        assert postfix.wait_for_log(f"Anonymous TLS connection established from unknown[{ROAMING}]")
    finally:
        postfix.stop()
        assert not dovecot.running  # the Postfix that started it stopped it
        postfix.remove_files()
        dovecot.remove_files()


@pytest.mark.slow  # a refused Postfix master start costs ~3 s
def test_a_port_taken_after_free_port_is_replaced_on_start(tmp_path):
    require_dovecot()
    require_postfix()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        dovecot = Dovecot(tmp_path, {"frank": "pw"})
        dovecot.imap_port = taken  # as if another process had bound it meanwhile
        postfix = Postfix(tmp_path, outbound="discard")
        postfix.smtp_port = taken
        try:
            dovecot.start()
            postfix.start()
            assert dovecot.imap_port != taken and postfix.smtp_port != taken
            assert read_banner("127.0.0.1", dovecot.imap_port).startswith(b"* OK")
            assert read_banner("127.0.0.1", postfix.smtp_port).startswith(b"220 ")
        finally:
            postfix.stop()
            dovecot.stop()
            postfix.remove_files()
            dovecot.remove_files()


def test_two_running_dovecots_may_not_share_a_workdir(tmp_path):
    require_dovecot()
    first = Dovecot(tmp_path, {"gina": "pw"})
    second = Dovecot(tmp_path, {"hal": "pw"})
    try:
        first.start()
        with pytest.raises(HarnessError, match="already uses"):
            second.start()
        assert not second.running
    finally:
        first.stop()
        second.stop()
        first.remove_files()
        second.remove_files()


def test_instances_of_a_killed_test_process_are_reaped(tmp_path):
    require_dovecot()
    require_postfix()
    # A test process that starts both servers and then dies by SIGKILL (no finalizers, no atexit).
    child_code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.server.harness import Dovecot, Postfix\n"
        f"work = Path({str(tmp_path)!r})\n"
        "d = Dovecot(work, {'ivan': 'pw'})\n"
        "p = Postfix(work, dovecot=d).start()\n"
        "print(d.imap_port, p.smtp_port, p.sink_port, d.runtime, p.runtime, flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", child_code],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        fields = child.stdout.readline().split()
    finally:
        child.kill()
        child.wait()
    assert len(fields) == 5, "the child did not start its servers"
    ports, runtimes = [int(f) for f in fields[:3]], [Path(f) for f in fields[3:]]
    assert all(read_banner("127.0.0.1", port) for port in ports)  # orphaned, still serving

    removed = reap_stale_instances()
    assert set(runtimes) <= set(removed)
    assert not any(path.exists() for path in runtimes)
    wait_until(
        lambda: all(read_banner("127.0.0.1", port, 1.0) is None for port in ports),
        30,
        "the orphaned servers to go away",
    )


def test_server_tests_skip_with_a_reason_when_not_root(monkeypatch):
    import tests.server.harness as harness

    monkeypatch.setattr(harness, "_is_root", lambda: False)
    assert not harness.have_dovecot() and not harness.have_postfix()
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require_dovecot()
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require_postfix()
    monkeypatch.setattr(harness, "_is_root", lambda: True)
    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="install-test-servers.sh"):
        require_postfix()
