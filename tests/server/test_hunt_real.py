"""issue 5 on a real Postfix + Dovecot: the three spambots are the top three, normal users stay quiet."""

from __future__ import annotations

import pytest

from tests.server.conftest import require_dovecot, require_postfix
from tests.server.hunt_scenario import (
    CAROL_IPS,
    EXPECTED_TOP,
    FAILED_GUESSES,
    GUESSER,
    INFECTED_PC,
    MYNETWORKS,
    hunt_scenario,
    start_hunt_site,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def hunted_site(tmp_path_factory):
    require_dovecot()
    require_postfix()
    site = start_hunt_site(tmp_path_factory.mktemp("hunt_site"))
    try:
        sent = hunt_scenario(site)
        yield site, sent
    finally:
        site.stop()


def _hunt(run_cli, site, *extra):
    nets = [x for net in MYNETWORKS for x in ("--trusted-net", net)]
    result = run_cli("hunt", site.maillog, *nets, "--json", *extra)
    assert result.exit_code == 0, result.output[-3000:]
    return result.json()


def test_the_scenario_went_through(hunted_site):
    site, sent = hunted_site
    outcomes = {m.label: m.outcome for m in sent}
    assert outcomes["dave-spam"] == "accepted"
    assert [outcomes[f"guess-{i}"] for i in range(FAILED_GUESSES)] == ["auth-failed"] * FAILED_GUESSES
    assert all(outcomes[f"carol-{i}"] == "accepted" for i in range(6))
    assert all(outcomes[f"infected-{i}"] == "accepted" for i in range(10))


def test_spambots_are_the_top_three(hunted_site, run_cli):
    site, _ = hunted_site
    answer = _hunt(run_cli, site)
    top = {(s["kind"], s["name"]) for s in answer["suspects"][:3]}
    # Accounts are named as Postfix logs sasl_username=: the Dovecot user names.
    assert top == EXPECTED_TOP, \
        [(s["kind"], s["name"], s["score"]) for s in answer["suspects"]]
    assert all(s["alarm"] for s in answer["suspects"][:3])
    others = answer["suspects"][3:]
    assert not [s for s in others if s["alarm"]]
    by = {s["name"]: s for s in answer["suspects"]}
    for normal in ("alice", "bob", "erin", "127.0.0.11", "127.0.0.20", "127.0.0.77"):
        assert normal not in by or not by[normal]["alarm"]


def test_evidence_names_what_happened(hunted_site, run_cli):
    site, _ = hunted_site
    by = {s["name"]: s for s in _hunt(run_cli, site)["suspects"]}
    carol = {e["signal"]: e for e in by["carol"]["signals"]}
    assert carol["recipients"]["value"] == 120
    assert sorted(carol["client-ips"]["numbers"]["examples"]) == sorted(CAROL_IPS)
    dave = {e["signal"]: e for e in by["dave"]["signals"]}
    assert dave["guessed-password"]["value"] == FAILED_GUESSES
    assert dave["guessed-password"]["numbers"]["login_ip"] == GUESSER
    assert by["dave"]["next_action"].startswith("change the password")
    pc = {e["signal"]: e for e in by[INFECTED_PC]["signals"]}
    assert pc["forged-sender"]["value"] == 10
    assert pc["trusted-relay"]["numbers"]["trusted_net"] is True
    assert "DESKTOP-7Q3K2LP" in pc["suspicious-helo"]["numbers"]["examples"]
    assert "tighten mynetworks" in by[INFECTED_PC]["next_action"]


def test_quiet_and_report_on_the_real_log(hunted_site, run_cli, tmp_path):
    site, _ = hunted_site
    assert run_cli("hunt", site.maillog, "--quiet").exit_code == 3
    out = tmp_path / "report.html"
    result = run_cli("report", site.maillog, "--trusted-net", MYNETWORKS[0], "-o", out, "--json")
    assert result.exit_code == 0
    assert result.json()["over_alarm"] == 3
    page = out.read_text()
    assert "DESKTOP-7Q3K2LP" in page and "sasl_username=carol" in page
