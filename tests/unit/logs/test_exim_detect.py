"""Exim mainlogs with no message ids at all (only rejects and syntax errors) are still Exim."""

from __future__ import annotations

import pytest

from mailwarden.logs.readers.exim import EximReader
from tests.conftest import corpus_path


@pytest.mark.parametrize("name", ["0019", "0029", "0147", "0255"])
def test_reject_only_exim_mainlogs_are_detected(name):
    path = corpus_path("exim-testsuite", "log", name)
    head = path.read_text(errors="replace").splitlines()[:50]
    assert EximReader().sniff(head)


def test_postfix_and_mdaemon_lines_are_not_exim():
    reader = EximReader()
    assert not reader.sniff(["Nov 23 00:10:09 mail postfix/smtpd[29073]: connect from unknown[127.0.0.10]"])
    assert not reader.sniff(["Tue 2026-08-18 00:00:48.993: 05: Session 09012313; child 0001"])


def test_almost_every_exim_testsuite_log_is_detected():
    logdir = corpus_path("exim-testsuite", "log")
    files = sorted(logdir.iterdir())
    missed = [p.name for p in files
              if not EximReader().sniff(p.read_text(errors="replace").splitlines()[:50])]
    # What is left are harness-only logs (e.g. 0501: filter test output "1: phil.hazel no").
    assert len(missed) <= 6, missed
