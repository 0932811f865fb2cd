"""Scoring arithmetic, the next-action table and the [hunt] settings."""

from __future__ import annotations

import pytest

from mailwarden.errors import ConfigError
from mailwarden.hunt.model import ACCOUNT, CLIENT_IP, LOCAL_USER, Evidence, Suspect
from mailwarden.hunt.rank import NEXT_ACTIONS, next_action, points
from mailwarden.hunt.settings import DEFAULT_SIGNALS, HuntSettings, settings_from_section
from mailwarden.hunt.signals import all_signals


def test_points_start_at_the_threshold_and_are_capped():
    assert points(4.9, 5, 8, 3) == 0
    assert points(5, 5, 8, 3) == 8
    assert points(10, 5, 8, 3) == 16
    assert points(10_000, 5, 8, 3) == 24
    assert points(5, 5, 0, 3) == 0            # weight 0 switches a signal off
    assert points(float("nan"), 5, 8, 3) == 0


def _suspect(kind, *signals, score=20.0, alarm=True):
    return Suspect(kind=kind, name="x", score=score, alarm=alarm,
                   evidence=[Evidence(s, 1, 1, 1, 1, "") for s in signals])


@pytest.mark.parametrize("kind, signals, starts", [
    (ACCOUNT, ("recipients", "guessed-password"), "change the password now"),
    (ACCOUNT, ("recipients", "client-ips"), "freeze the account and change"),
    (ACCOUNT, ("rate-burst",), "freeze the account until"),
    (CLIENT_IP, ("suspicious-helo", "forged-sender"), "clean the machine (it relays"),
    (CLIENT_IP, ("auth-failures",), "block the IP"),
    (LOCAL_USER, ("local-injection",), "find the script"),
])
def test_next_action_table(kind, signals, starts):
    assert next_action(_suspect(kind, *signals)).startswith(starts)
    assert next_action(_suspect(kind, *signals, score=5, alarm=False)).startswith("watch: " + starts)


def test_every_signal_has_settings_and_an_action():
    names = {s.name for s in all_signals()}
    assert names == set(DEFAULT_SIGNALS)
    covered = set().union(*(a.signals for a in NEXT_ACTIONS))
    assert names <= covered


def test_settings_defaults_and_overrides():
    s = settings_from_section(None)
    assert s.alarm == 10 and s.threshold("recipients") == 100
    s = settings_from_section({"alarm": 5, "off_hours": [20, 7], "thresholds": {"recipients": 50},
                               "weights": {"guessed-password": 12}, "burst_window_minutes": 5})
    assert (s.alarm, s.off_hours, s.burst_window_minutes) == (5.0, (20, 7), 5)
    assert s.threshold("recipients") == 50 and s.weight("guessed-password") == 12
    assert HuntSettings().to_json()["thresholds"]["client-ips"] == 3


@pytest.mark.parametrize("section, message", [
    ({"alarm": "high"}, "must be a number"),
    ({"alarm": -1}, "must not be negative"),
    ({"off_hours": [22]}, "off_hours"),
    ({"burst_window_minutes": 0}, "burst_window_minutes"),
    ({"thresholds": {"nope": 1}}, "unknown signal"),
    ({"weights": []}, "must be a table"),
    ({"colour": "red"}, "unknown setting"),
])
def test_settings_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_section(section)
