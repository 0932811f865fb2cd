"""Helpers shared by the bench scripts (run as `python bench/X.py`, so this imports as `benchlib`)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, for the machine line every bench prints."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def count_lines(path: Path) -> int:
    """Lines in a file, counted in 16 MiB chunks (constant memory)."""
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def mailwarden_command() -> str:
    """The installed `mailwarden` script beside this Python (what a venv's PATH finds), not a
    version manager's shim in front of it: pyenv's costs 0.1 s of bash per run."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "mailwarden"
    return str(beside) if beside.exists() else (shutil.which("mailwarden") or "mailwarden")
