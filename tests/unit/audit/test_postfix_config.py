"""Reading Postfix configuration: continuation lines, $name expansion, master.cf -o overrides."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.audit.config.postfix import (
    PostfixConfig,
    compatibility_level,
    load_postfix,
    load_postfix_text,
    parse_restrictions,
    read_main_cf,
    read_master_cf,
)
from mailwarden.errors import FormatNotRecognised, InputError

DATA = Path(__file__).resolve().parents[2] / "data" / "audit"


def main_cf(text: str) -> PostfixConfig:
    cfg = PostfixConfig(source="test")
    read_main_cf(text.splitlines(), cfg)
    return cfg


def test_debian_main_cf_values_and_line_numbers():
    cfg = load_postfix(DATA / "debian")
    relay = cfg.setting("smtpd_relay_restrictions")
    assert relay.value == "permit_mynetworks permit_sasl_authenticated defer_unauth_destination"
    assert relay.source == "main.cf:25"
    assert cfg.get("mynetworks") == "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128"
    # $myhostname expands from the same file.
    assert cfg.get("smtpd_banner") == "vm ESMTP  (Debian/GNU)"
    assert cfg.defects == []


def test_debian_master_cf_services():
    cfg = load_postfix(DATA / "debian")
    assert [s.name for s in cfg.smtpd_services()] == ["smtp"]
    relay = next(s for s in cfg.services if s.name == "relay")
    # "-o syslog_name=..." sits on a continuation line of the relay entry.
    assert relay.overrides["syslog_name"].value == "postfix/$service_name"
    maildrop = next(s for s in cfg.services if s.name == "maildrop")
    assert maildrop.command == "pipe" and "argv=/usr/bin/maildrop" in maildrop.args
    assert len(cfg.services) == 31  # `postconf -c tests/data/audit/debian -M` lists 31 entries too


def test_main_cf_dist_multiline_value_and_compatibility_default():
    cfg = load_postfix(DATA / "debian" / "main.cf.dist")
    assert cfg.services is None  # no master.cf beside a file named main.cf.dist
    debugger = cfg.setting("debugger_command").value
    assert debugger.startswith("PATH=/bin:/usr/bin") and debugger.endswith("& sleep 5")
    # compatibility_level = 3.7: the built-in relay restrictions apply.
    assert cfg.get("smtpd_relay_restrictions") == \
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
    assert cfg.get("mynetworks_style") == "host"


def test_hardened_submission_override_expands_main_cf_parameter():
    cfg = load_postfix(DATA / "hardened")
    (submission,) = [s for s in cfg.smtpd_services() if s.name == "submission"]
    assert submission.overrides["smtpd_tls_security_level"].value == "encrypt"
    assert cfg.get("smtpd_sender_restrictions", submission) == \
        "reject_sender_login_mismatch, permit_sasl_authenticated, reject"
    # The physical line of the -o, not the first line of the entry (19).
    assert cfg.setting("smtpd_sender_restrictions", submission).source == "master.cf:31 (submission -o)"
    # The smtp service keeps main.cf's value, written over a continuation line.
    smtp = cfg.smtpd_services()[0]
    assert cfg.get("smtpd_sender_restrictions", smtp) == "reject_sender_login_mismatch, permit_mynetworks"


def test_expansion_forms_and_later_setting_wins():
    cfg = main_cf(
        "a = one\n"
        "a = two\n"
        "b = $a ${a} $(a) $$literal\n"
        "c = ${a?set} ${missing?set} ${missing:fallback} ${a:fallback}\n"
        "d = ${a?{braced value}}\n"
    )
    assert cfg.get("b") == "two two two $literal"
    assert cfg.get("c").split() == ["set", "fallback"]
    assert cfg.get("d") == "braced value"


def test_expansion_loop_is_a_defect_not_a_hang():
    cfg = main_cf("a = $b\nb = $a x\n")
    cfg.get("a")
    assert any("deeper than" in d for d in cfg.defects)


def test_master_cf_braced_override_syntax():
    cfg = PostfixConfig(source="test")
    read_master_cf([
        "submission inet n - n - - smtpd",
        "  -o { smtpd_sender_restrictions = reject_sender_login_mismatch, permit_sasl_authenticated, reject }",
        "  -o smtpd_sasl_auth_enable=yes",
    ], cfg)
    (service,) = cfg.services
    assert service.overrides["smtpd_sender_restrictions"].value == \
        "reject_sender_login_mismatch, permit_sasl_authenticated, reject"
    assert service.overrides["smtpd_sasl_auth_enable"].value == "yes"


def test_restriction_arguments_stay_with_their_restriction():
    parsed = parse_restrictions(
        "permit_mynetworks,check_sender_access hash:/etc/postfix/access reject_rbl_client zen.example, "
        "check_policy_service { unix:private/policy, default_action=DUNNO }, reject_unauth_destination")
    assert [str(r) for r in parsed] == [
        "permit_mynetworks",
        "check_sender_access hash:/etc/postfix/access",
        "reject_rbl_client zen.example",
        "check_policy_service { unix:private/policy, default_action=DUNNO }",
        "reject_unauth_destination",
    ]


def test_bad_lines_are_defects():
    cfg = main_cf("  orphan continuation\nnot a setting\nok = yes\n")
    assert cfg.get("ok") == "yes"
    assert len(cfg.defects) == 2


@pytest.mark.parametrize(("text", "level"), [("0", (0,)), ("2", (2,)), ("3.6", (3, 6)), ("junk", (0,))])
def test_compatibility_level(text, level):
    assert compatibility_level(text) == level


def test_errors_for_missing_and_foreign_inputs(tmp_path):
    with pytest.raises(InputError):
        load_postfix(tmp_path / "nope")
    (tmp_path / "MDaemon.ini").write_text("[Special]\nIMAPKeywordFlags=Yes\n")
    with pytest.raises(FormatNotRecognised, match="live probe"):
        load_postfix(tmp_path)
    with pytest.raises(FormatNotRecognised, match="live probe"):
        load_postfix(tmp_path / "MDaemon.ini")
    (tmp_path / "notes.txt").write_text("# nothing here\n\n")
    with pytest.raises(FormatNotRecognised):
        load_postfix(tmp_path / "notes.txt")


@pytest.mark.skipif(shutil.which("postconf") is None, reason="postconf not installed")
@pytest.mark.parametrize("variant", ["debian", "weak", "hardened"])
def test_real_postconf_n_output_reads_the_same(variant):
    """`postconf -n` (Postfix's own parser) and our main.cf reader agree on every value."""
    out = subprocess.run(["postconf", "-c", str(DATA / variant), "-n"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    from_postconf = load_postfix_text(out, "postconf -n")
    ours = load_postfix(DATA / variant)
    for name, setting in from_postconf.main.items():
        if name == "config_directory":
            continue  # postconf adds the -c directory
        assert " ".join(ours.setting(name).value.split()) == setting.value, name


@settings(max_examples=200, deadline=2000)
@given(st.text(max_size=2000))
def test_any_text_parses_without_exception(text):
    cfg = load_postfix_text(text + "\nx = 1\n", "fuzz")
    for name in list(cfg.main)[:20]:
        cfg.get(name)
    cfg2 = PostfixConfig(source="fuzz")
    read_master_cf(text.splitlines(), cfg2)


@settings(max_examples=100, deadline=2000)
@given(st.text(max_size=3000), st.sampled_from(["hash", "regexp", "pcre", "texthash"]))
def test_any_table_text_reads_without_exception(tmp_path_factory, text, kind):
    from mailwarden.audit.config.tables import read_table

    directory = tmp_path_factory.mktemp("table")
    (directory / "access").write_text(text, encoding="utf-8", errors="surrogateescape")
    table = read_table(f"{kind}:/nonexistent/access", directory)
    assert table.error is None and table.source == str(directory / "access")
