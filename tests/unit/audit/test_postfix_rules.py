"""Static Postfix rules on Debian's real configuration files and variants derived from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailwarden.audit.config.postfix import load_postfix
from mailwarden.audit.model import AuditContext, Status
from mailwarden.audit.rules import rules_for
from mailwarden.config import SiteConfig, parse_network

DATA = Path(__file__).resolve().parents[2] / "data" / "audit"


def audit(path: Path, site: SiteConfig | None = None) -> dict:
    ctx = AuditContext(site=site, postfix=load_postfix(path))
    return {rule.name: rule.check(ctx) for rule in rules_for("postfix")}


def statuses(found: dict) -> dict[str, str]:
    return {name: f.status.value for name, f in found.items()}


def variant(tmp_path: Path, base: str, *, main_add: str = "", master_replace: tuple[str, str] | None = None) -> Path:
    """A copy of tests/data/audit/<base> with lines appended to main.cf / one master.cf edit."""
    target = tmp_path / base
    shutil.copytree(DATA / base, target)
    if main_add:
        with open(target / "main.cf", "a") as handle:
            handle.write("\n" + main_add)
    if master_replace:
        text = (target / "master.cf").read_text()
        assert master_replace[0] in text
        (target / "master.cf").write_text(text.replace(master_replace[0], master_replace[1], 1))
    return target


def test_debian_defaults():
    found = audit(DATA / "debian")
    assert statuses(found) == {
        "postfix-sender-login-authenticated": "skipped",   # no AUTH anywhere
        "postfix-sender-login-unauthenticated": "fail",
        "postfix-mynetworks-scope": "pass",                # loopback only
        "postfix-permit-mynetworks-order": "skipped",
        "postfix-own-domain-trusted": "pass",              # no sender access table
        "postfix-relay-restrictions": "pass",
        "postfix-submission-service": "fail",              # commented out in master.cf
        "postfix-sasl-auth-tls-only": "pass",
    }
    assert "main.cf:25: smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated " \
           "defer_unauth_destination" in "\n".join(found["postfix-relay-restrictions"].evidence)


def test_weak_variant_fails_every_relevant_rule():
    found = audit(DATA / "weak")
    assert statuses(found) == {
        "postfix-sender-login-authenticated": "fail",
        "postfix-sender-login-unauthenticated": "fail",
        "postfix-mynetworks-scope": "fail",
        "postfix-permit-mynetworks-order": "skipped",      # no sender-login check to bypass
        "postfix-own-domain-trusted": "pass",
        "postfix-relay-restrictions": "pass",              # the hole is mynetworks, not the list
        "postfix-submission-service": "fail",
        "postfix-sasl-auth-tls-only": "fail",
    }
    mynetworks = found["postfix-mynetworks-scope"]
    assert "172.32.0.0/16 (main.cf)" in mynetworks.summary
    assert "  10.0.0.0/8: private-wide (a whole /8: every machine in it can send without AUTH)" in mynetworks.evidence
    assert "smtp (inet)" in found["postfix-sasl-auth-tls-only"].summary
    assert "submission (inet)" in found["postfix-sasl-auth-tls-only"].summary
    assert found["postfix-sender-login-authenticated"].remediation.postfix.startswith("smtpd_sender_login_maps")


def test_hardened_variant_passes_every_rule():
    found = audit(DATA / "hardened")
    assert set(statuses(found).values()) == {"pass"}, {n: f.summary for n, f in found.items()}


def test_submission_that_empties_sender_restrictions_loses_the_login_check(tmp_path):
    # Debian's template line "-o smtpd_sender_restrictions=" uncommented as is.
    path = variant(tmp_path, "hardened", master_replace=(
        "-o smtpd_sender_restrictions=$mua_sender_restrictions", "-o smtpd_sender_restrictions="))
    found = audit(path)
    assert found["postfix-sender-login-authenticated"].status is Status.FAIL
    assert "submission (inet): no reject_sender_login_mismatch" in found["postfix-sender-login-authenticated"].summary


def test_login_check_after_permit_sasl_authenticated_is_dead(tmp_path):
    path = variant(tmp_path, "hardened", main_add=(
        "mua_sender_restrictions = permit_sasl_authenticated, reject_sender_login_mismatch, reject\n"))
    found = audit(path)
    assert found["postfix-sender-login-authenticated"].status is Status.FAIL
    assert "comes after permit_sasl_authenticated" in found["postfix-sender-login-authenticated"].summary


def test_login_check_ignored_where_sasl_is_off(tmp_path):
    # Port 25 without SASL: Postfix logs "ignored: no SASL support" and accepts the forged sender.
    path = variant(tmp_path, "hardened", main_add="smtpd_sasl_auth_enable = no\n")
    found = audit(path)
    assert found["postfix-sender-login-unauthenticated"].status is Status.FAIL
    assert "SASL is off" in found["postfix-sender-login-unauthenticated"].summary


def test_permit_mynetworks_first_with_office_network(tmp_path):
    path = variant(tmp_path, "hardened", main_add=(
        "mynetworks = 127.0.0.0/8 192.168.10.0/24\n"
        "smtpd_sender_restrictions = permit_mynetworks, reject_sender_login_mismatch\n"))
    found = audit(path)
    assert found["postfix-permit-mynetworks-order"].status is Status.FAIL
    assert found["postfix-mynetworks-scope"].status is Status.PASS  # a private /24 is fine by itself
    # With only loopback in mynetworks the same order is harmless.
    path = variant(tmp_path / "lo", "hardened", main_add=(
        "smtpd_sender_restrictions = permit_mynetworks, reject_sender_login_mismatch\n"))
    found = audit(path)
    assert found["postfix-permit-mynetworks-order"].status is Status.PASS
    assert "only this machine" in found["postfix-permit-mynetworks-order"].summary


@pytest.mark.parametrize(("setting", "status"), [
    ("mynetworks_style = class", "fail"),
    ("mynetworks_style = subnet", "warn"),
    ("mynetworks_style = host", "pass"),
    ("mynetworks = 0.0.0.0/0", "fail"),
    ("mynetworks = 127.0.0.1 hash:/etc/postfix/network_table", "warn"),
    ("mynetworks = [fd00:1:2:3::]/64 [::1]/128", "pass"),  # one unique-local /64
    ("mynetworks = [2001:db8::]/32 [::1]/128", "warn"),    # private (documentation) but a whole /32
    ("mynetworks = [2a00:1450::]/32", "fail"),
])
def test_mynetworks_forms(tmp_path, setting, status):
    text = (DATA / "debian" / "main.cf").read_text().replace(
        "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n", "")
    (tmp_path / "main.cf").write_text(text + "\n" + setting + "\n")
    assert audit(tmp_path / "main.cf")["postfix-mynetworks-scope"].status.value == status


def test_mynetworks_outside_the_site_networks(tmp_path):
    path = variant(tmp_path, "hardened", main_add="mynetworks = 127.0.0.0/8 192.168.0.0/16\n")
    site = SiteConfig(trusted_networks=[parse_network("192.168.10.0/24")])
    found = audit(path, site)
    assert found["postfix-mynetworks-scope"].status is Status.FAIL
    assert "192.168.0.0/16" in found["postfix-mynetworks-scope"].summary


def test_compatibility_level_zero_has_no_relay_restrictions(tmp_path):
    # An old main.cf without compatibility_level and without relay lists: Postfix would refuse to
    # start ("specify at least one working instance of: reject_unauth_destination ...").
    (tmp_path / "main.cf").write_text("myhostname = mx.example.test\n")
    found = audit(tmp_path / "main.cf")
    assert found["postfix-relay-restrictions"].status is Status.FAIL
    assert found["postfix-mynetworks-scope"].status is Status.WARN   # legacy mynetworks_style = subnet


def test_bare_permit_before_relay_check_is_an_open_relay(tmp_path):
    path = variant(tmp_path, "debian", main_add=(
        "smtpd_relay_restrictions = permit, reject_unauth_destination\n"))
    found = audit(path)
    assert found["postfix-relay-restrictions"].status is Status.FAIL


SENDER_ACCESS_BEFORE_RELAY = (
    "smtpd_recipient_restrictions = check_sender_access hash:/etc/postfix/sender_access,\n"
    "    reject_unauth_destination\n")


def test_own_domain_ok_in_sender_access_opens_the_relay(tmp_path):
    path = variant(tmp_path, "debian", main_add=SENDER_ACCESS_BEFORE_RELAY)
    # The server's path /etc/postfix/sender_access is looked up beside the audited main.cf too.
    (path / "sender_access").write_text("# trusted senders\nspammer@example.net REJECT\nmailwarden.test   OK\n")
    finding = audit(path)["postfix-own-domain-trusted"]
    assert finding.status is Status.FAIL
    assert finding.severity.value == "critical"
    assert "open relay for forged senders" in finding.summary
    assert f"{path / 'sender_access'}:3: mailwarden.test OK" in finding.evidence


@pytest.mark.parametrize(("table_line", "status"), [
    ("/@mailwarden\\.test$/ OK", "fail"),
    ("/@mailwarden\\.test$/i PERMIT", "fail"),
    ("/@mailwarden\\.test$/ REJECT not from outside", "pass"),
    ("/@example\\.net$/ OK", "pass"),
])
def test_own_domain_in_a_regexp_table(tmp_path, table_line, status):
    path = variant(tmp_path, "debian", main_add=(
        "smtpd_sender_restrictions = check_sender_access regexp:/etc/postfix/sender_checks\n"))
    (path / "sender_checks").write_text(table_line + "\n")
    finding = audit(path)["postfix-own-domain-trusted"]
    assert finding.status.value == status
    if status == "fail":
        assert finding.severity.value == "high"  # not in a relay list: a bypass, not an open relay


def test_unreadable_sender_access_table_is_a_warning(tmp_path):
    path = variant(tmp_path, "debian", main_add=SENDER_ACCESS_BEFORE_RELAY.replace("hash:", "mysql:"))
    finding = audit(path)["postfix-own-domain-trusted"]
    assert finding.status is Status.WARN
    assert "mysql: tables are not files" in finding.summary
    path = variant(tmp_path / "missing", "debian", main_add=SENDER_ACCESS_BEFORE_RELAY)
    assert "not found" in audit(path)["postfix-own-domain-trusted"].summary


def test_inline_table_and_site_domains(tmp_path):
    path = variant(tmp_path, "debian", main_add=(
        "smtpd_sender_restrictions = check_sender_access inline:{ example.com=OK, mailwarden.test=REJECT }\n"))
    assert audit(path)["postfix-own-domain-trusted"].status is Status.PASS
    # example.com is ours only according to the site configuration.
    site = SiteConfig(local_domains=["example.com"])
    assert audit(path, site)["postfix-own-domain-trusted"].status is Status.FAIL
