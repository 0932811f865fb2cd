"""`hunt --follow`: tailing across rotation and truncation, live alerts, --exec."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from mailwarden.config import SiteConfig
from mailwarden.hunt.follow import Tailer, follow_log
from mailwarden.hunt.settings import HuntSettings
from tests.conftest import DATA

LOG = DATA / "hunt" / "postfix-spambots.log"
SPAMBOTS = {("account", "carol@example.com"), ("account", "bob@example.com"),
            ("client-ip", "192.168.1.77")}


def test_tailer_reads_appends_and_holds_partial_lines(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("old line\n")
    tail = Tailer(log)                       # starts at the end, like tail -f
    assert tail.poll() == []
    with open(log, "a") as fh:
        fh.write("one\ntw")
    assert tail.poll() == ["one"]
    with open(log, "a") as fh:
        fh.write("o\n")
    assert tail.poll() == ["two"]
    tail.close()


def test_tailer_survives_rotation_and_truncation(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("")
    tail = Tailer(log, from_start=True)
    with open(log, "a") as fh:
        fh.write("a1\n")
    assert tail.poll() == ["a1"]
    # logrotate: the writer still appends to the renamed file, then a new file appears.
    with open(log, "a") as old:
        os.rename(log, tmp_path / "mail.log.1")
        old.write("a2\n")
    log.write_text("b1\nb2\n")
    assert tail.poll() == ["a2", "b1", "b2"]
    assert tail.rotations == 1
    # copytruncate: the same file shrinks and starts over.
    with open(log, "r+") as fh:
        fh.truncate(0)
    with open(log, "a") as fh:
        fh.write("c1\n")
    assert tail.poll() == ["c1"]
    assert tail.truncations == 1
    tail.close()


def test_tailer_caps_runaway_lines(tmp_path):
    log = tmp_path / "mail.log"
    log.write_bytes(b"x" * 200_000 + b"\nok\n")
    lines = Tailer(log, from_start=True).poll()
    assert lines == ["x" * 65536, "ok"]   # cut once, the rest of that line skipped


def _writer(target, lines, rotate_at=None):
    """Append the fixture in small bursts, rotating once half-way (as logrotate would)."""
    for i in range(0, len(lines), 40):
        if rotate_at is not None and i >= rotate_at:
            os.rename(target, target.with_name(target.name + ".1"))
            target.write_text("")
            rotate_at = None
        with open(target, "a") as fh:
            fh.write("".join(lines[i:i + 40]))
        time.sleep(0.05)


def test_follow_alerts_on_a_live_rotating_log(tmp_path):
    live = tmp_path / "mail.log"
    live.write_text("")
    lines = LOG.read_text().splitlines(keepends=True)
    alerts = []
    writer = threading.Thread(target=_writer, args=(live, lines, len(lines) // 2))
    writer.start()
    # from_start: the writer may already be writing while the follower sets up.
    n = follow_log(str(live), site=SiteConfig(), settings=HuntSettings(), year=2026, from_start=True,
                   idle_exit=1.5, max_seconds=60, poll=0.05, interval=0.2, quiet=True,
                   on_alert=alerts.append)
    writer.join()
    assert {(s.kind, s.name) for s in alerts} == SPAMBOTS
    assert n == 3
    bob = next(s for s in alerts if s.name == "bob@example.com")
    assert bob.signal("guessed-password").value == 8


def test_follow_exec_gets_the_suspect(tmp_path, run_cli):
    out = tmp_path / "alerts.txt"
    cmd = f'printf "%s|%s|%s\\n" "$MW_KIND" "$MW_NAME" "$MW_SIGNALS" >> {out}; cat >> {out}.json; echo >> {out}.json'
    result = run_cli("hunt", "--follow", LOG, "--from-start", "--year", "2026", "--idle-exit", "1",
                     "--exec", cmd, "--json")
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line)["alert"] for line in result.stdout.splitlines() if line.strip()]
    assert {(a["kind"], a["name"]) for a in alerts} == SPAMBOTS
    rows = out.read_text().splitlines()
    assert len(rows) == 3
    assert any(r.startswith("account|bob@example.com|guessed-password") for r in rows)
    sent = [json.loads(x) for x in (tmp_path / "alerts.txt.json").read_text().splitlines() if x]
    assert {s["name"] for s in sent} == {a["name"] for a in alerts}
    assert all(s["alarm"] and s["next_action"] for s in sent)


def test_follow_quiet_and_max_alerts(run_cli):
    result = run_cli("hunt", "-f", LOG, "--from-start", "--year", "2026", "--idle-exit", "1",
                     "--quiet", "--max-alerts", "1")
    assert result.exit_code == 3
    assert result.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--follow"], "exactly one LOG"),
    (["--follow", str(LOG), str(LOG)], "exactly one LOG"),
    (["--follow", "nope.log"], "no such log file"),
])
def test_follow_usage_errors(run_cli, args, message):
    result = run_cli("hunt", *args)
    assert result.exit_code in (2, 4)
    assert message in result.output
