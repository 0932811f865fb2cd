"""`mailwarden audit` against a real Postfix on 127.0.0.1: weak configuration fails, hardened passes.

Each Postfix (with Dovecot for SASL) is started by the harness with its own config directory; the
probe connects from 127.0.0.77 (an outside host, unless mynetworks covers it), and `audit config`
reads the very directory that instance runs from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.errors import ExitCode
from tests.server.conftest import require_dovecot, require_postfix
from tests.server.harness import DEFAULT_USERS, Dovecot, Postfix
from tests.unit.audit.certs import self_signed_cert

pytestmark = pytest.mark.server

PROBE_IP = "127.0.0.77"
PROBE_CHECKS = {
    "smtp-unauth-local-sender-outside",
    "smtp-unauth-local-sender-local",
    "smtp-auth-sender-mismatch",
    "smtp-open-relay",
    "smtp-auth-requires-tls",
    "smtp-plaintext-auth-unencrypted",
}


def _start_site(workdir: Path, *, mynetworks, main_cf) -> Postfix:
    dovecot = Dovecot(workdir / "dovecot", dict(DEFAULT_USERS))
    postfix = Postfix(workdir / "postfix", dovecot=dovecot, mynetworks=mynetworks, main_cf=main_cf,
                      outbound="discard")
    try:
        postfix.start()  # also starts the Dovecot it was given
    except BaseException:
        postfix.remove_files()
        dovecot.remove_files()
        raise
    return postfix


def _stop_site(postfix: Postfix) -> None:
    dovecot = postfix.dovecot
    postfix.stop()
    postfix.remove_files()
    if dovecot is not None:
        dovecot.remove_files()


@pytest.fixture(scope="module")
def weak_postfix(tmp_path_factory):
    """AUTH on port 25 without TLS, no sender-login check, mynetworks covering the probe."""
    require_dovecot()
    require_postfix()
    postfix = _start_site(tmp_path_factory.mktemp("weak"),
                          mynetworks=("127.0.0.0/8", "10.0.0.0/8", "172.32.0.0/16"), main_cf={})
    yield postfix
    _stop_site(postfix)


@pytest.fixture(scope="module")
def hardened_postfix(tmp_path_factory):
    """TLS-only AUTH, reject_sender_login_mismatch with a login map, mynetworks = 127.0.0.1/32."""
    require_dovecot()
    require_postfix()
    workdir = tmp_path_factory.mktemp("hardened")
    cert, key = self_signed_cert(workdir / "tls")
    logins = workdir / "sender_login"
    logins.write_text("".join(f"{user}@example.test {user}\n" for user in DEFAULT_USERS))
    postfix = _start_site(workdir, mynetworks=("127.0.0.1/32",), main_cf={
        "smtpd_tls_cert_file": str(cert),
        "smtpd_tls_key_file": str(key),
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_sender_login_maps": f"texthash:{logins}",
        "smtpd_sender_restrictions": "reject_sender_login_mismatch",
    })
    yield postfix
    _stop_site(postfix)


@pytest.fixture
def alice_credentials(tmp_path) -> Path:
    path = tmp_path / "alice.cred"
    path.write_text(f"user = alice\npassword = {DEFAULT_USERS['alice']}\n")
    path.chmod(0o600)
    return path


def _probe(run_cli, postfix: Postfix, credentials: Path, port: int | None = None):
    return run_cli("audit", "smtp", f"127.0.0.1:{port or postfix.smtp_port}", "--local-domain", "example.test",
                   "--local-user", "alice", "--other-local-user", "bob", "--credentials", str(credentials),
                   "--source-address", PROBE_IP, "--helo", "probe.example.net", "--json")


def _by_rule(doc) -> dict:
    return {f["rule"]: f for f in doc["findings"]}


def test_probe_weak_postfix_fails_every_check(run_cli, weak_postfix, alice_credentials):
    result = _probe(run_cli, weak_postfix, alice_credentials)
    assert result.exit_code == ExitCode.FINDINGS, result.output
    found = _by_rule(result.json())
    assert {rule for rule, f in found.items() if f["status"] == "fail"} == PROBE_CHECKS
    assert found["smtp-auth-from-header-mismatch"]["status"] == "skipped"
    assert found["smtp-auth-requires-tls"]["summary"].startswith("AUTH offered on an unencrypted connection")
    # The evidence is Postfix's own words.
    spoof = found["smtp-auth-sender-mismatch"]["evidence"]
    assert "S: 235 2.7.0 Authentication successful" in spoof
    assert "C: MAIL FROM:<bob@example.test>" in spoof
    assert "S: 354 End data with <CR><LF>.<CR><LF>" in spoof
    # Nothing was delivered: Postfix saw the connections drop in DATA, and bob's mailbox is empty.
    weak_postfix.wait_for_log(f"lost connection after DATA (0 bytes) from unknown[{PROBE_IP}]")
    assert not any(weak_postfix.mailbox("bob").joinpath("new").iterdir())
    assert not any("status=sent" in line or "status=deliverable" in line for line in weak_postfix.log_lines())


def test_probe_hardened_postfix_passes_every_check(run_cli, hardened_postfix, alice_credentials):
    result = _probe(run_cli, hardened_postfix, alice_credentials)
    assert result.exit_code == 0, result.output
    doc = result.json()
    found = _by_rule(doc)
    assert {rule for rule, f in found.items() if f["status"] == "pass"} == PROBE_CHECKS, \
        {rule: f["summary"] for rule, f in found.items()}
    assert "not owned by user alice" in found["smtp-auth-sender-mismatch"]["summary"]
    assert "Sender address rejected: not logged in" in found["smtp-unauth-local-sender-local"]["summary"]
    assert "Relay access denied" in found["smtp-open-relay"]["summary"]
    caps = doc["probe"]["capabilities"]
    assert caps["auth_before_tls"] == [] and caps["auth_after_tls"] == ["PLAIN", "LOGIN"]
    assert caps["plain_auth_reply_in_clear"] == "503 5.5.1 Error: authentication not enabled"


def test_probe_hardened_submission_port(run_cli, hardened_postfix, alice_credentials):
    # The harness's submission service refuses every unauthenticated client outright.
    result = _probe(run_cli, hardened_postfix, alice_credentials, port=hardened_postfix.submission_port)
    assert result.exit_code == 0, result.output
    found = _by_rule(result.json())
    assert {rule for rule, f in found.items() if f["status"] == "pass"} == PROBE_CHECKS
    assert "refuses all unauthenticated mail" in found["smtp-unauth-local-sender-local"]["summary"]


def test_config_of_weak_instance(run_cli, weak_postfix):
    result = run_cli("audit", "config", str(weak_postfix.config_dir), "--json")
    assert result.exit_code == ExitCode.FINDINGS
    statuses = {f["rule"]: f["status"] for f in result.json()["findings"]}
    assert statuses == {
        "postfix-sender-login-authenticated": "fail",
        "postfix-sender-login-unauthenticated": "fail",
        "postfix-mynetworks-scope": "fail",          # 172.32.0.0/16 is public
        "postfix-permit-mynetworks-order": "skipped",  # there is no sender-login check to bypass
        "postfix-own-domain-trusted": "pass",
        "postfix-relay-restrictions": "pass",        # reject_unauth_destination is there
        "postfix-submission-service": "fail",        # AUTH without TLS
        "postfix-sasl-auth-tls-only": "fail",
    }


def test_config_of_hardened_instance(run_cli, hardened_postfix):
    result = run_cli("audit", "config", str(hardened_postfix.config_dir), "--json")
    assert result.exit_code == 0, result.output
    assert {f["status"] for f in result.json()["findings"]} == {"pass"}
    # The same verdicts from `postconf -n` output (no master.cf: the submission rule skips).
    result = run_cli("audit", "config", "-", "--json", input=hardened_postfix.postconf_n())
    statuses = {f["rule"]: f["status"] for f in result.json()["findings"]}
    assert statuses.pop("postfix-submission-service") == "skipped"
    assert set(statuses.values()) == {"pass"}


def test_login_check_without_sasl_is_ignored_and_both_audits_say_so(run_cli, tmp_path):
    """Postfix ignores reject_unauthenticated_sender_login_mismatch where SASL is off (port 25 of an
    MX without AUTH): the config looks hardened on paper, the probe shows the forged sender accepted,
    and the static rule reports it too."""
    require_postfix()
    logins = tmp_path / "sender_login"
    logins.write_text("alice@example.test alice\nbob@example.test bob\n")
    postfix = Postfix(tmp_path / "postfix", dovecot=None, outbound="discard", main_cf={
        "smtpd_sender_login_maps": f"texthash:{logins}",
        "smtpd_sender_restrictions": "reject_unauthenticated_sender_login_mismatch",
    })
    try:
        postfix.start()
        result = run_cli("audit", "smtp", f"127.0.0.1:{postfix.smtp_port}", "--local-domain", "example.test",
                         "--local-user", "alice", "--other-local-user", "bob", "--source-address", PROBE_IP,
                         "--json", "--rule", "smtp-unauth-local-sender-local")
        (finding,) = result.json()["findings"]
        assert finding["status"] == "fail"
        postfix.wait_for_log("restriction `reject_unauthenticated_sender_login_mismatch' ignored: no SASL support")
        result = run_cli("audit", "config", str(postfix.config_dir), "--json",
                         "--rule", "postfix-sender-login-unauthenticated")
        (finding,) = result.json()["findings"]
        assert finding["status"] == "fail"
        assert "SASL is off" in finding["summary"]
    finally:
        postfix.stop()
        postfix.remove_files()
