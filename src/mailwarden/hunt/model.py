"""The hunt result model: suspects, the evidence behind each score, and the whole answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# Suspect kinds. Stable: they appear in --json.
ACCOUNT = "account"        # an authenticated (SASL / SMTP AUTH) user
CLIENT_IP = "client-ip"    # a client machine
LOCAL_USER = "local-user"  # a local uid/user that injected mail (pickup, Exim U=, qmail uid)


@dataclass(slots=True)
class Evidence:
    """One signal's verdict on one suspect: the number, how it scored, and why in words."""

    signal: str
    value: float
    threshold: float
    weight: float
    points: float
    text: str                                   # "412 recipients in 37 messages"
    numbers: dict[str, Any] = field(default_factory=dict)
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None


@dataclass(slots=True)
class Suspect:
    """An account, client IP or local user with its score and the evidence behind it."""

    kind: str
    name: str
    score: float = 0.0
    alarm: bool = False
    evidence: list[Evidence] = field(default_factory=list)
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    next_action: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def signal(self, name: str) -> Evidence | None:
        for ev in self.evidence:
            if ev.signal == name:
                return ev
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "score": round(self.score, 2),
            "alarm": self.alarm, "first_seen": self.first_seen, "last_seen": self.last_seen,
            "next_action": self.next_action,
            "signals": [
                {"signal": e.signal, "value": _round(e.value), "threshold": e.threshold,
                 "weight": e.weight, "points": round(e.points, 2), "text": e.text,
                 "numbers": {k: _round(v) for k, v in e.numbers.items()},
                 "first_seen": e.first_seen, "last_seen": e.last_seen}
                for e in self.evidence
            ],
        }


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


@dataclass
class HuntResult:
    """Ranked suspects (highest score first) and what was read to find them."""

    suspects: list[Suspect]
    alarm: float
    inputs: list[str] = field(default_factory=list)
    db: str | None = None
    sessions: int = 0
    messages: int = 0
    first_ts: dt.datetime | None = None
    last_ts: dt.datetime | None = None
    notes: list[str] = field(default_factory=list)   # e.g. "no GeoIP file: countries not scored"

    @property
    def over_alarm(self) -> list[Suspect]:
        return [s for s in self.suspects if s.alarm]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1, "alarm": self.alarm, "inputs": self.inputs, "db": self.db,
            "sessions": self.sessions, "messages": self.messages,
            "first_ts": self.first_ts, "last_ts": self.last_ts,
            "over_alarm": len(self.over_alarm), "notes": self.notes,
            "suspects": [s.to_json() for s in self.suspects],
        }
