"""Signals that need time and delivery outcomes: rate against the account's baseline,
off-hours, bounced share. The log is written with the fixture builder's real line shapes."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.data.hunt.build_postfix_fixture import START, Log


@pytest.fixture(scope="module")
def answer(tmp_path_factory):
    log = Log()
    day = START.replace(hour=9)
    # frank: two messages an hour through the working day, then 30 in one night hour.
    for h in range(5):
        for k in range(2):
            log.submission(day + dt.timedelta(hours=h, minutes=10 * k), "frank@example.com",
                           "192.0.2.60", [("frank@example.com", [f"c{h}{k}@client.test"])])
    night = START.replace(hour=3) + dt.timedelta(days=1)
    for k in range(30):
        log.submission(night + dt.timedelta(minutes=k), "frank@example.com", "192.0.2.60",
                       [("frank@example.com", [f"n{k}@list.test"])])
    # gina: 25 recipients, 10 of them bounce.
    t = day + dt.timedelta(hours=1)
    log.submission(t, "gina@example.com", "192.0.2.61",
                   [("gina@example.com", [f"old{j}@stale.test" for j in range(25)])])
    lines = [text for _, _, text in sorted(log.lines)]
    bounced = 0
    for i, text in enumerate(lines):
        if "to=<old" in text and bounced < 10:
            lines[i] = text.replace("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as",
                                    "dsn=5.1.1, status=bounced (host said: 550 5.1.1 no such user; was")
            bounced += 1
    path = tmp_path_factory.mktemp("time") / "mail.log"
    path.write_text("\n".join(lines) + "\n")
    from typer.testing import CliRunner

    from mailwarden.cli import app

    result = CliRunner().invoke(app, ["hunt", str(path), "--year", "2026", "--json"])
    assert result.exit_code == 0, result.output
    import json

    return {s["name"]: s for s in json.loads(result.stdout)["suspects"]}


def test_rate_against_its_own_baseline(answer):
    frank = {e["signal"]: e for e in answer["frank@example.com"]["signals"]}
    burst = frank["rate-burst"]
    assert burst["numbers"]["peak"] == 30
    assert burst["numbers"]["baseline"] == 2
    assert burst["value"] == 15
    assert burst["numbers"]["peak_hour"].startswith("2026-11-21T03:00")
    off = frank["off-hours"]
    assert off["numbers"]["off"] == 30 and off["numbers"]["messages"] == 40
    assert answer["frank@example.com"]["alarm"]


def test_bounced_share(answer):
    gina = {e["signal"]: e for e in answer["gina@example.com"]["signals"]}
    share = gina["failed-share"]
    assert (share["numbers"]["failed"], share["numbers"]["total"]) == (10, 25)
    assert share["value"] == pytest.approx(0.4)
