"""Shared test helpers: where the read-only corpus lives, and the CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# ../shared beside the clone (CI and developers have it); MAILWARDEN_SHARED overrides.
SHARED = Path(os.environ.get("MAILWARDEN_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "corpus"


def corpus_path(*parts: str) -> Path:
    """A path inside ../shared/corpus; the test is skipped (not failed) when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus not available: {path}")
    return path


def generate_postfix_log(out: Path, *, seed: int, lines: int, extra: tuple[str, ...] = ()) -> Path:
    """A real-shaped Postfix log from bench/gen_postfix_log.py (fixed seed: the same file every run)."""
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_postfix_log.py"), "--seed", str(seed),
                    "--lines", str(lines), "--jobs", "1", *extra, "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def corpus():
    return corpus_path


class CliResult:
    def __init__(self, result):
        self._result = result
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr if result.stderr_bytes is not None else ""
        self.output = result.output

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def run_cli():
    """Run ``mailwarden ARGS`` in-process; returns exit code, stdout, stderr and .json()."""
    from mailwarden.cli import app

    def run(*args: str, input: str | bytes | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        return CliResult(result)

    return run
