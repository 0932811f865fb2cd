"""Keep prune journals and logs of every test inside its own tmp dir."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    monkeypatch.delenv("MAILWARDEN_PRUNE_KILL_AFTER", raising=False)
