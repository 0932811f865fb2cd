"""Hunt settings: the alarm line, each signal's threshold and weight, read from ``[hunt]``.

A signal scores nothing below its threshold; at the threshold it scores its
weight, and more in proportion to how far it is over (capped at ``cap`` times the
weight), so one wild number cannot drown every other signal. A suspect whose
total reaches ``alarm`` is over the alarm line (``--quiet`` exits 3).

```toml
[hunt]
alarm = 10                 # score at which a suspect is "over the line"
cap = 3                    # a signal scores at most cap * weight
peer_factor = 3            # volume thresholds rise to peer_factor x the median account/IP
off_hours = [22, 6]        # local hours [start, end) that count as off-hours
burst_window_minutes = 10  # failed-AUTH bursts are counted in windows this long
geoip = "/var/lib/GeoIP/GeoLite2-Country.mmdb"   # optional (pip install 'mailwarden[geoip]')

[hunt.thresholds]
recipients = 100
[hunt.weights]
recipients = 3
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailwarden.errors import ConfigError

# name -> (threshold, weight). The thresholds are for one day of an ordinary small
# site's log; raise them for bigger sites. Weights are points at the threshold: the
# signals that mean "our side is compromised" (a guessed password, unauthenticated
# relaying from a trusted machine) reach the alarm line alone, the weaker ones
# need company.
DEFAULT_SIGNALS: dict[str, tuple[float, float]] = {
    # per authenticated account
    "recipients": (100, 3),            # recipients of accepted mail
    "recipient-domains": (20, 3),      # distinct recipient domains
    "recipients-per-message": (10, 2),  # average recipients per message
    "client-ips": (3, 3),              # distinct client IPs the account sent or logged in from
    "client-networks": (3, 3),         # distinct /24 (IPv4) or /48 (IPv6) networks
    "countries": (2, 4),               # distinct countries (needs a GeoIP file)
    "failed-share": (0.2, 3),          # share of recipients rejected or bounced (>= 20 recipients)
    "auth-failures": (5, 2),           # failed AUTH in the worst burst window (account and IP)
    "guessed-password": (5, 8),        # failed AUTH before a success for the same user
    "rate-burst": (5, 3),              # busiest hour / the account's own median hour (>= 20 msgs)
    "off-hours": (0.5, 2),             # share of messages sent off-hours (>= 10 msgs)
    "sender-mismatch": (2, 3),         # distinct envelope senders that are not the AUTH user
    # per client IP
    "trusted-relay": (20, 5),          # remote recipients relayed without AUTH from a trusted/local IP
    "forged-sender": (3, 4),           # foreign envelope senders relayed without AUTH
    "suspicious-helo": (0.5, 4),       # share of unauthenticated sessions with a HELO no server uses
    "auth-users": (3, 2),              # distinct users tried from one IP
    "rejects": (20, 1),                # rejected commands (NOQUEUE reject ...)
    # per local user (pickup uid, Exim U=, qmail invoked by uid)
    "local-injection": (50, 4),        # remote recipients of locally injected mail
}

MIN_MESSAGES_FOR_RATE = 20
MIN_MESSAGES_FOR_OFF_HOURS = 10
MIN_RECIPIENTS_FOR_SHARE = 20
MIN_SESSIONS_FOR_HELO = 3


@dataclass
class HuntSettings:
    """Everything that tunes the ranking; defaults are sensible for one day of a small site."""

    alarm: float = 10.0
    cap: float = 3.0
    peer_factor: float = 3.0
    off_hours: tuple[int, int] = (22, 6)
    burst_window_minutes: int = 10
    geoip: str | None = None
    thresholds: dict[str, float] = field(
        default_factory=lambda: {k: v[0] for k, v in DEFAULT_SIGNALS.items()})
    weights: dict[str, float] = field(
        default_factory=lambda: {k: v[1] for k, v in DEFAULT_SIGNALS.items()})

    def threshold(self, signal: str) -> float:
        return self.thresholds[signal]

    def weight(self, signal: str) -> float:
        return self.weights[signal]

    def to_json(self) -> dict[str, Any]:
        return {"alarm": self.alarm, "cap": self.cap, "peer_factor": self.peer_factor,
                "off_hours": list(self.off_hours),
                "burst_window_minutes": self.burst_window_minutes,
                "geoip": self.geoip, "thresholds": self.thresholds, "weights": self.weights}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[hunt] {where} must be a number, not {value!r}")
    if value < 0:
        raise ConfigError(f"[hunt] {where} must not be negative")
    return float(value)


def settings_from_section(section: dict[str, Any] | None) -> HuntSettings:
    """Build settings from the raw ``[hunt]`` table (``SiteConfig.sections['hunt']``)."""
    settings = HuntSettings()
    section = dict(section or {})
    known = {"alarm", "cap", "peer_factor", "off_hours", "burst_window_minutes", "geoip", "thresholds", "weights"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"[hunt] unknown setting(s): {', '.join(unknown)}")
    if "alarm" in section:
        settings.alarm = _number(section["alarm"], "alarm")
    if "cap" in section:
        settings.cap = max(1.0, _number(section["cap"], "cap"))
    if "peer_factor" in section:
        settings.peer_factor = _number(section["peer_factor"], "peer_factor")
    if "off_hours" in section:
        hours = section["off_hours"]
        if (not isinstance(hours, list) or len(hours) != 2
                or not all(isinstance(h, int) and 0 <= h <= 24 for h in hours)):
            raise ConfigError("[hunt] off_hours must be [start, end] hours between 0 and 24")
        settings.off_hours = (hours[0], hours[1])
    if "burst_window_minutes" in section:
        minutes = section["burst_window_minutes"]
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise ConfigError("[hunt] burst_window_minutes must be a whole number of minutes (1..1440)")
        settings.burst_window_minutes = minutes
    if "geoip" in section:
        if not isinstance(section["geoip"], str):
            raise ConfigError("[hunt] geoip must be a file path")
        settings.geoip = section["geoip"]
    for table, target in (("thresholds", settings.thresholds), ("weights", settings.weights)):
        values = section.get(table, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[hunt.{table}] must be a table")
        for name, value in values.items():
            if name not in DEFAULT_SIGNALS:
                raise ConfigError(f"[hunt.{table}] unknown signal {name!r} "
                                  f"(known: {', '.join(DEFAULT_SIGNALS)})")
            target[name] = _number(value, f"{table}.{name}")
    return settings
