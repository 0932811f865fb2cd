"""hunt on real third-party log samples (read from the corpus, never copied)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.hunt.follow import Tailer
from tests.conftest import DATA, corpus_path


def test_windows_pc_helo_in_a_real_postfix_log(run_cli):
    # crowdsec-hub postfix-logs.log (MIT): a client that greets as a Windows PC name.
    log = corpus_path("crowdsec-hub", "postfix-logs.log")
    answer = run_cli("hunt", log, "--year", "2026", "--json").json()
    pc = next(s for s in answer["suspects"] if s["name"] == "192.168.1.1")
    helo = next(e for e in pc["signals"] if e["signal"] == "suspicious-helo")
    assert helo["numbers"]["sessions_bad"] == 3
    assert helo["numbers"]["examples"] == ["WIN-9QL4SDRB93L", "WIN-CLJ1B0GQ6JP"]
    assert not pc["alarm"]
    assert pc["next_action"].startswith("watch: clean the machine")


def test_real_sasl_brute_force_lines(run_cli, tmp_path):
    # crowdsec-hub postfix-sasl-bf.log (MIT): three failures; under the default threshold (5),
    # scored once the threshold is lowered in mailwarden.toml.
    log = corpus_path("crowdsec-hub", "postfix-sasl-bf.log")
    assert run_cli("hunt", log, "--year", "2026", "--json").json()["suspects"] == []
    cfg = tmp_path / "mailwarden.toml"
    cfg.write_text("[hunt.thresholds]\nauth-failures = 3\n")
    answer = run_cli("hunt", log, "--year", "2026", "--json", "--config", cfg).json()
    [ip] = answer["suspects"]
    assert (ip["kind"], ip["name"]) == ("client-ip", "203.0.113.42")
    assert ip["signals"][0]["value"] == 3 and ip["signals"][0]["numbers"]["failures"] == 3
    assert ip["next_action"].startswith("watch: block the IP")


def test_fail2ban_postfix_log_parses(run_cli):
    # fail2ban's postfix samples (GPL, read in place): failures spread over many IPs, no suspect.
    answer = run_cli("hunt", corpus_path("fail2ban", "postfix.log"), "--year", "2026", "--json").json()
    assert answer["sessions"] >= 40
    assert not [s for s in answer["suspects"] if s["alarm"]]


def test_mdaemon_logs_parse(run_cli):
    logs = sorted((DATA / "logs" / "mdaemon").glob("*.log"))
    assert logs
    result = run_cli("hunt", *logs, "--year", "2026", "--format", "mdaemon", "--json")
    assert result.exit_code == 0, result.output
    assert result.json()["sessions"] >= 5


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       cuts=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=10))
def test_tailer_reassembles_any_chunking(tmp_path_factory, lines, cuts):
    """Whatever sizes the writer's chunks have, the tailer yields exactly the written lines."""
    path = tmp_path_factory.mktemp("tail") / "mail.log"
    path.write_bytes(b"")
    tail = Tailer(path)
    data = b"".join(line + b"\n" for line in lines)
    got, pos, i = [], 0, 0
    with open(path, "ab", buffering=0) as fh:
        while pos < len(data):
            step = cuts[i % len(cuts)]
            fh.write(data[pos:pos + step])
            pos, i = pos + step, i + 1
            got += tail.poll()
    got += tail.poll()
    tail.close()
    assert got == [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
    os.unlink(path)
