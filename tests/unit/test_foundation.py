"""The shared foundation: config loading, the registry, the CLI's error handling."""

from __future__ import annotations

import ipaddress

import pytest

from mailwarden.config import load_config
from mailwarden.errors import ConfigError, ExitCode
from mailwarden.registry import Registry
from tests.conftest import REPO


def test_config_file_and_overrides(tmp_path):
    cfg_file = tmp_path / "mailwarden.toml"
    cfg_file.write_text(
        '[site]\nlocal_domains = ["Example.COM"]\nserver_names = ["mail.example.com."]\n'
        'trusted_networks = ["192.168.0.0/16", "2001:db8::/32"]\nsmtp_logs = ["/var/log/mail.log"]\n'
        '[hunt]\nalarm = 50\n'
    )
    cfg = load_config(cfg_file).with_overrides(server_names=["mx2.example.com"], trusted_networks=["10.0.0.1"])
    assert cfg.local_domains == ["example.com"]
    assert cfg.server_names == ["mail.example.com", "mx2.example.com"]
    assert cfg.is_trusted_ip("192.168.4.5") and cfg.is_trusted_ip("10.0.0.1")
    assert cfg.is_trusted_ip("::ffff:192.168.1.1")  # v4-mapped v6 counts as the v4 address
    assert not cfg.is_trusted_ip("10.0.0.2") and not cfg.is_trusted_ip("garbage")
    assert cfg.is_local_domain("sub.example.com") and not cfg.is_local_domain("badexample.com")
    assert cfg.sections["hunt"]["alarm"] == 50
    assert cfg.with_overrides(smtp_logs=["mail.log.1"]).smtp_logs == ["/var/log/mail.log", "mail.log.1"]
    assert ipaddress.ip_network("2001:db8::/32") in cfg.trusted_networks


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text('[site]\nlocal_domain = ["example.com"]\n')
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) in \[site\]: local_domain"):
        load_config(typo)
    typo.write_text('[sitee]\nlocal_domains = ["example.com"]\n')
    with pytest.raises(ConfigError, match="unknown table"):
        load_config(typo)
    with pytest.raises(ConfigError, match="not an IP network"):
        load_config(None).with_overrides(trusted_networks=["10.0.0.0/33"])


def test_no_config_is_unconfigured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    assert not load_config().configured


def test_registry_rejects_duplicates():
    class Thing:
        def __init__(self, name):
            self.name = name

    reg = Registry("rule", [Thing("a"), Thing("b")])
    assert reg.names() == ["a", "b"] and "a" in reg
    with pytest.raises(ValueError, match="duplicate rule name: a"):
        reg.add(Thing("a"))
    with pytest.raises(KeyError, match="unknown rule 'zz'"):
        reg.get("zz")


def test_cli_version_and_usage_error(run_cli):
    assert run_cli("--version").stdout.startswith("mailwarden ")
    assert run_cli("no-such-command").exit_code == ExitCode.USAGE


def test_closed_stdout_exits_like_sigpipe(tmp_path):
    """`mailwarden ... | head`: exit 141 quietly, never a traceback or the 'bug' status 1."""
    import subprocess
    import sys

    many = ["samples/"] * 60  # output well beyond a pipe's 64 KiB buffer, so the write must fail
    for args in (["trace", *many, "--json"], ["trace", *many, "--summary"]):
        proc = subprocess.Popen([sys.executable, "-m", "mailwarden", *args], cwd=str(REPO),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.read(10)
        proc.stdout.close()  # the reader leaves early
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, stderr
        assert "Traceback" not in stderr
