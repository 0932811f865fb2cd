"""The 835 real Exim test-suite mainlogs parse and rank without errors."""

from __future__ import annotations

import pytest

from tests.conftest import corpus_path


@pytest.mark.slow
def test_exim_testsuite_logs_rank(run_cli):
    logs = sorted(str(p) for p in corpus_path("exim-testsuite", "log").iterdir())
    assert len(logs) == 835
    result = run_cli("hunt", *logs, "--format", "exim", "--json")
    assert result.exit_code == 0, result.output[-2000:]
    answer = result.json()
    assert not [n for n in answer["notes"] if n.startswith("not loaded")]
    assert answer["sessions"] > 3000 and answer["messages"] > 3000
    accounts = {s["name"] for s in answer["suspects"] if s["kind"] == "account"}
    # A=... on the <= lines (P=esmtpa): the test suite's authenticated users.
    assert "userx" in accounts
    userx = next(s for s in answer["suspects"] if s["name"] == "userx")
    assert {e["signal"] for e in userx["signals"]} >= {"guessed-password", "auth-failures"}
    # Exim's local submissions (U=CALLER, P=local) are local-user suspects.
    assert any(s["kind"] == "local-user" and s["name"] == "CALLER" for s in answer["suspects"])
