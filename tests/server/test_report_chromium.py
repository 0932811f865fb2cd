"""A report built from hostile log fields runs no script in a real headless Chromium, and renders."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest

from tests.conftest import DATA

HOSTILE = DATA / "hunt" / "hostile-postfix.log"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install-test-servers.sh)"),
]


def dump_dom(page, profile) -> str:
    """The DOM after load (scripts, had any run, would have changed it) as Chromium serialises it."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def title(dom: str) -> str:
    m = re.search(r"<title>(.*?)</title>", dom, re.S)
    return html.unescape(m.group(1)) if m else ""


def test_detector_sees_a_script_that_runs(tmp_path):
    # The control: without escaping and CSP the same payload does run, and we can tell.
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><title>start</title><script>document.title='PWNED-control'</script>")
    assert title(dump_dom(page, tmp_path / "profile")) == "PWNED-control"


def test_hostile_report_runs_no_script_and_renders(tmp_path, run_cli):
    page = tmp_path / "report.html"
    result = run_cli("report", HOSTILE, "--year", "2026", "-o", page)
    assert result.exit_code == 0, result.output
    dom = dump_dom(page, tmp_path / "profile")
    assert title(dom) == "mailwarden hunt report"
    assert "PWNED" not in title(dom)
    # No element came out of the log data: every payload is text.
    assert not re.search(r"<(script|img|iframe|svg onload)\b", dom.replace("<svg xmlns", "<svgok"))
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "mailwarden hunt report" in text
    assert "1 suspect(s) over the alarm line" in text
    assert "<script>document.title='PWNED-helo'</script>" in text
    assert "onerror=\"document.title='pwned-user'\"" in text
    assert "</style><script>document.title='PWNED-sender'</script>" in text
    assert dom.count("<svg") >= 1           # the timeline chart rendered
