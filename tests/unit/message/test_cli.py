"""`mailwarden trace` from the command line: JSON schema, summary, stdin, exit codes, the demo."""

from __future__ import annotations

from tests.conftest import DATA, REPO, corpus_path

SAMPLES = REPO / "samples"


def test_demo_samples_json(run_cli):
    result = run_cli("trace", SAMPLES, "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["schema"] == 1 and doc["errors"] == []
    by_file = {m["source"].rsplit("/", 1)[1]: m for m in doc["messages"]}
    assert set(by_file) == {"postfix-authenticated-sender.eml", "exim-cpanel-esmtpa.eml", "qmail-smtp-auth.eml",
                            "sendmail-local-www-data.eml", "exchange-private-client.eml", "external-spam.eml"}
    pf = by_file["postfix-authenticated-sender.eml"]
    assert (pf["verdict"], pf["account"], pf["client_ip"]) == ("authenticated-account", "ctrstdicomsmtp", "79.0.200.161")
    assert pf["our_hop"]["id"] == "67A957337" and pf["received_at"] == "2017-06-09T18:07:16+02:00"
    assert pf["message_id"] == "ed264cf8.1d2e138.18e5b8f.29@voidstudicom.it"
    assert pf["from"] == "Mariachiara Geronazzo <geronazzo@voidstudicom.it>"
    assert pf["boundary"]["inferred"] is True
    assert {"marker", "bound", "binding", "header", "hop_index"} <= set(pf["auth_markers"][0])
    assert by_file["sendmail-local-www-data.eml"]["verdict"] == "local-submission"
    assert by_file["exchange-private-client.eml"]["verdict"] == "internal-host"
    ext = by_file["external-spam.eml"]
    assert ext["verdict"] == "external"
    assert ext["next_action"] == ("mailwarden logs find <SMTP-IN log> --message-id "
                                  "8AF5A2192C2A46BE.2743cdb5-7033-d969-fce8-c552542a49a3@mail.outlook.com "
                                  "--around 2016-08-22T13:56:15+00:00")
    summary = doc["summary"]
    assert summary["by_verdict"] == {"authenticated-account": 3, "internal-host": 1, "local-submission": 1,
                                     "external": 1, "unknown": 0}
    assert {a["account"] for a in summary["accounts"]} == {"ctrstdicomsmtp", "quazi.limon@revesoft.com", "zyb@sgis.com.cn"}


def test_demo_summary_view(run_cli):
    result = run_cli("trace", SAMPLES, "--summary")
    assert result.exit_code == 0
    assert "authenticated-account" in result.stdout and "ctrstdicomsmtp" in result.stdout
    assert "by verdict" in result.stdout


def test_single_message_view_shows_next_command(run_cli):
    result = run_cli("trace", SAMPLES / "external-spam.eml", "--hops")
    assert result.exit_code == 0
    assert "mailwarden logs find" in result.stdout and "67.175.76.202" in result.stdout


def test_stdin_and_bad_inputs_in_one_batch(run_cli, tmp_path):
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.eml"
    binary.write_bytes(bytes(range(256)) * 4)
    good = DATA / "messages" / "qmail-bounce.eml"
    result = run_cli("trace", empty, binary, good, "--json")
    assert result.exit_code == 4  # ExitCode.INPUT: some failed, the others were traced
    doc = result.json()
    assert [m["source"] for m in doc["messages"]] == [str(good)]
    assert {e["source"]: e["error"] for e in doc["errors"]} == {
        str(empty): "empty input", str(binary): "not a mail message: no RFC 5322 header at the start"}
    assert doc["summary"]["failed"] == 2
    assert result.stderr.count("error:") == 2


def test_stdin(run_cli):
    data = (DATA / "messages" / "qmail-bounce.eml").read_bytes()
    result = run_cli("trace", "-", "--json", "--server-name", "smtp.customers.net", input=data)
    assert result.exit_code == 0
    (msg,) = result.json()["messages"]
    assert (msg["source"], msg["verdict"], msg["client_ip"], msg["client_helo"]) == (
        "-", "external", "189.125.104.100", "apus.netpar.com.br")
    assert msg["boundary"]["inferred"] is False


def test_config_file_and_trusted_net(run_cli, tmp_path):
    cfg = tmp_path / "mailwarden.toml"
    cfg.write_text('[site]\nserver_names = ["smtp.customers.net"]\ntrusted_networks = ["189.125.104.0/24"]\n')
    result = run_cli("trace", DATA / "messages" / "qmail-bounce.eml", "--json", "--config", cfg)
    (msg,) = result.json()["messages"]
    assert msg["verdict"] == "internal-host"


def test_bad_config_is_a_usage_error(run_cli):
    result = run_cli("trace", SAMPLES, "--trusted-net", "not-a-net")
    assert result.exit_code == 2 and "not an IP network" in result.stderr


def test_outlook_msg_from_cli(run_cli):
    result = run_cli("trace", corpus_path("mail-parser", "mail_outlook_1"), "--json")
    assert result.exit_code == 0
    assert result.json()["messages"][0]["client_ip"] == "195.189.93.103"
