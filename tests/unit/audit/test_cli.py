"""`mailwarden audit smtp|config` through the real CLI: exit codes, --json, credentials handling."""

from __future__ import annotations

from pathlib import Path

from mailwarden.errors import ExitCode

DATA = Path(__file__).resolve().parents[2] / "data" / "audit"


def test_config_weak_exits_with_findings_and_json(run_cli):
    result = run_cli("audit", "config", str(DATA / "weak"), "--json")
    assert result.exit_code == ExitCode.FINDINGS
    doc = result.json()
    assert doc["command"] == "audit config"
    assert doc["exit_code"] == 3
    assert doc["summary"] == {"pass": 2, "fail": 5, "warn": 0, "error": 0, "skipped": 1}
    assert doc["config"]["services"] == ["smtp", "submission"]
    finding = next(f for f in doc["findings"] if f["rule"] == "postfix-mynetworks-scope")
    assert finding["severity"] == "high"
    assert set(finding["remediation"]) == {"mdaemon", "postfix"}


def test_config_fail_on_threshold(run_cli):
    # Debian's defaults fail a high and a medium rule: nothing is critical.
    assert run_cli("audit", "config", str(DATA / "debian"), "--fail-on", "critical").exit_code == 0
    assert run_cli("audit", "config", str(DATA / "debian"), "--fail-on", "high").exit_code == 3
    assert run_cli("audit", "config", str(DATA / "debian"), "--fail-on", "never").exit_code == 0
    assert run_cli("audit", "config", str(DATA / "hardened")).exit_code == 0


def test_config_rich_view_names_the_fix(run_cli):
    result = run_cli("audit", "config", str(DATA / "weak"))
    assert "FAIL postfix-sender-login-authenticated" in result.stdout
    assert "fix (MDaemon): Security > Security Settings > SMTP Authentication" in result.stdout
    assert "fix (Postfix): smtpd_sender_login_maps" in result.stdout


def test_config_from_stdin(run_cli):
    text = (DATA / "weak" / "main.cf").read_text()
    result = run_cli("audit", "config", "-", "--json", "--rule", "postfix-mynetworks-scope", input=text)
    assert result.exit_code == 3
    assert [f["status"] for f in result.json()["findings"]] == ["fail"]


def test_config_errors_are_one_line(run_cli, tmp_path):
    result = run_cli("audit", "config", str(tmp_path / "missing"))
    assert result.exit_code == ExitCode.INPUT
    assert "no such file or directory" in result.stderr
    (tmp_path / "MDaemon.ini").write_text("[Special]\n")
    result = run_cli("audit", "config", str(tmp_path))
    assert result.exit_code == ExitCode.INPUT
    assert "live probe" in result.stderr
    assert "Traceback" not in result.output
    assert run_cli("audit", "config", str(DATA / "weak"), "--fail-on", "severe").exit_code == ExitCode.USAGE
    assert run_cli("audit", "config", str(DATA / "weak"), "--rule", "no-such-rule").exit_code == ExitCode.USAGE
    result = run_cli("audit", "config", str(DATA / "weak"), "--rule", "smtp-open-relay")
    assert result.exit_code == ExitCode.USAGE and "audit smtp" in result.stderr


def test_smtp_misbehaving_server_via_environment_credentials(run_cli, misbehaving_server, monkeypatch):
    port, handler = misbehaving_server
    monkeypatch.setenv("MAILWARDEN_SMTP_USER", "alice")
    monkeypatch.setenv("MAILWARDEN_SMTP_PASSWORD", "alice-pw")
    result = run_cli("audit", "smtp", f"127.0.0.1:{port}", "--local-domain", "example.test",
                     "--other-local-user", "bob", "--helo", "probe.example.test", "--json")
    assert result.exit_code == ExitCode.FINDINGS
    doc = result.json()
    assert doc["target"] == f"127.0.0.1:{port}"
    assert doc["probe"]["local_user"] == "alice@example.test"
    assert doc["probe"]["other_local_user"] == "bob@example.test"
    assert "alice-pw" not in result.stdout
    assert doc["summary"]["fail"] == 6
    conv = doc["probe"]["conversations"]["auth-sender-mismatch"]
    assert conv["attempts"]["probe"]["outcome"] == "accepted"
    assert handler.data_received == 0


def test_smtp_behaving_server_with_credentials_file(run_cli, behaving_server, tmp_path):
    port, _ = behaving_server
    creds = tmp_path / "creds"
    creds.write_text("# probe account\nuser = alice\npassword = alice-pw\n")
    creds.chmod(0o600)
    result = run_cli("audit", "smtp", f"127.0.0.1:{port}", "--local-domain", "example.test",
                     "--other-local-user", "bob", "--credentials", str(creds))
    assert result.exit_code == 0, result.output
    assert "6 pass, 1 skipped" in result.stdout


def test_smtp_unreachable_server_exits_with_server_error(run_cli, raw_server):
    def silent(conn, stopped):
        stopped.wait(30)

    server = raw_server(silent)
    result = run_cli("audit", "smtp", f"127.0.0.1:{server.port}", "--timeout", "0.3", "--json")
    doc = result.json()
    assert result.exit_code == ExitCode.SERVER
    assert doc["summary"]["error"] == 6 and doc["summary"]["pass"] == 0


def test_password_is_never_a_command_line_option(run_cli):
    result = run_cli("audit", "smtp", "127.0.0.1:1", "--password", "x")
    assert result.exit_code == ExitCode.USAGE


def test_bad_targets_and_credentials(run_cli, tmp_path):
    assert run_cli("audit", "smtp", "127.0.0.1:99999").exit_code == ExitCode.USAGE
    assert run_cli("audit", "smtp", "host:port").exit_code == ExitCode.USAGE
    bad = tmp_path / "creds"
    bad.write_text("alice:secret\n")
    result = run_cli("audit", "smtp", "127.0.0.1:1", "--credentials", str(bad))
    assert result.exit_code == ExitCode.INPUT and "user = " in result.stderr
