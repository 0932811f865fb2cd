"""Annotated fixtures (fail2ban style): ``# expect: {...}`` before a log line says what event it gives.

Every ``*.log`` under tests/data/logs/<dialect>/ with annotations runs here; the directory name
picks the reader. Keys: ``kind``, ``ts`` (ISO), ``ident`` (MDaemon ``NN:`` id), ``queue_id``;
any other key is an event field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwarden.logs.readers import get_reader
from mailwarden.logs.timestamps import SyslogYear
from tests.conftest import DATA

FIXTURES = sorted(p for p in (DATA / "logs").glob("*/*.log") if "# expect:" in p.read_text("utf-8"))


def annotated_lines(path: Path) -> list[tuple[int, dict, str]]:
    out: list[tuple[int, dict, str]] = []
    pending: dict | None = None
    for lineno, text in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if text.startswith("# expect: "):
            pending = json.loads(text[len("# expect: "):])
        elif text.startswith("#"):
            continue
        elif pending is not None:
            out.append((lineno, pending, text))
            pending = None
    return out


def test_fixtures_exist_for_every_dialect() -> None:
    dialects = {p.parent.name for p in FIXTURES}
    assert "mdaemon" in dialects


@pytest.mark.parametrize("path", FIXTURES, ids=[f"{p.parent.name}/{p.name}" for p in FIXTURES])
def test_annotated_fixture(path: Path) -> None:
    reader = get_reader(path.parent.name)
    cases = annotated_lines(path)
    assert cases, f"{path} has no annotated lines"
    events = list(reader.events([text for _, _, text in cases], path.name, clock=SyslogYear(2020)))
    assert len(events) == len(cases)
    for (lineno, expect, text), event in zip(cases, events, strict=True):
        where = f"{path.name}:{lineno}: {text[:80]}"
        for key, value in expect.items():
            if key == "kind":
                assert event.kind.value == value, where
            elif key == "ts":
                assert event.ts is not None and event.ts.isoformat() == value, where
            elif key == "ident":
                assert event.session_key is not None and event.session_key.endswith(":" + value), where
            elif key == "queue_id":
                assert event.queue_id == value, where
            else:
                assert event.fields.get(key) == value, f"{where}: {key}"
