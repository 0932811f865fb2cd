"""Signals -> scored suspects with their evidence and the next action.

``rank(con, ctx, settings)`` runs every signal over the hw_* tables (see
``tables.py``), scores each row against its threshold and weight, groups the
evidence by suspect, and picks the next action from ``NEXT_ACTIONS``, a decision
table read top to bottom (first match wins), kept as data like Mailman's chains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from mailwarden.hunt.model import ACCOUNT, CLIENT_IP, LOCAL_USER, Evidence, HuntResult, Suspect
from mailwarden.hunt.settings import HuntSettings
from mailwarden.hunt.signals import Signal, all_signals
from mailwarden.hunt.tables import Context

# Fewer subjects than this and the median says nothing about "normal".
MIN_PEERS = 3


@dataclass(frozen=True)
class Action:
    """A row of the decision table: when a suspect of ``kind`` has any of ``signals``."""

    kind: str
    signals: frozenset[str]
    text: str


def _row(kind: str, signals: Iterable[str], text: str) -> Action:
    return Action(kind, frozenset(signals), text)


NEXT_ACTIONS: tuple[Action, ...] = (
    _row(ACCOUNT, {"guessed-password"},
         "change the password now (it was guessed), then check what the account sent"),
    _row(ACCOUNT, {"client-ips", "client-networks", "countries"},
         "freeze the account and change its password: its credentials are used from several places"),
    _row(ACCOUNT, {"recipients", "recipient-domains", "recipients-per-message", "rate-burst",
                   "failed-share", "off-hours", "sender-mismatch"},
         "freeze the account until its owner explains the mail; change the password"),
    _row(ACCOUNT, {"auth-failures"},
         "warn the owner: someone is trying its password (block the IPs that fail)"),
    _row(CLIENT_IP, {"trusted-relay", "forged-sender"},
         "clean the machine (it relays spam through the trusted network); "
         "tighten mynetworks to the hosts that must relay"),
    _row(CLIENT_IP, {"suspicious-helo"},
         "clean the machine if it is ours (malware speaks SMTP); block it if it is not"),
    _row(CLIENT_IP, {"auth-failures", "auth-users"},
         "block the IP: it is guessing passwords (e.g. a fail2ban jail on the SMTP AUTH failures)"),
    _row(CLIENT_IP, {"rejects"}, "nothing to do unless the IP is ours: the server refuses it"),
    _row(LOCAL_USER, {"local-injection"},
         "find the script running as this user (web form, CMS plug-in) and stop it"),
)


def next_action(suspect: Suspect) -> str:
    """The first decision-table row that matches the suspect's scoring signals."""
    scoring = {e.signal for e in suspect.evidence if e.points > 0}
    for action in NEXT_ACTIONS:
        if action.kind == suspect.kind and action.signals & scoring:
            return action.text if suspect.alarm else f"watch: {action.text}"
    return "nothing to do"


def points(value: float, threshold: float, weight: float, cap: float) -> float:
    """Weight at the threshold, proportionally more above it, at most cap * weight."""
    if weight <= 0 or value is None or not math.isfinite(value) or value < threshold:
        return 0.0
    if threshold <= 0:
        return weight
    return weight * min(value / threshold, cap)


def run_signal(con: duckdb.DuckDBPyConnection, signal: Signal, settings: HuntSettings,
               threshold: float | None = None) -> tuple[list[dict], float | None]:
    """The signal's rows (subject, value, first_seen, last_seen, extra numbers) as dicts.

    With ``threshold``, only rows that reach it come back (a busy MX has hundreds of
    thousands of client IPs; only a few score), and pass the signal's gate. A
    peer-scaled signal raises the threshold to peer_factor x the median subject (of
    every row, gated or not), computed in the same query; the median is returned with
    the rows.
    """
    sql = signal.sql(settings)
    if threshold is None:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()], None
    peer = (f"CASE WHEN count(*) OVER () >= {MIN_PEERS} "
            f"THEN {float(settings.peer_factor)!r} * median(value) OVER () END"
            if signal.peer_scaled else "NULL::DOUBLE")
    cursor = con.execute(f"""
        SELECT * EXCLUDE (_peer), _peer AS _peer_median FROM (
            SELECT *, {peer} AS _peer FROM ({sql}))
        WHERE value >= greatest({float(threshold)!r}, coalesce(_peer, 0)) AND ({signal.gate})""")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    peer_median = None
    for row in rows:
        scaled = row.pop("_peer_median")
        if scaled is not None:
            peer_median = scaled / settings.peer_factor if settings.peer_factor else None
    return rows, peer_median


def rank(con: duckdb.DuckDBPyConnection, ctx: Context, settings: HuntSettings) -> list[Suspect]:
    """Score every signal and return the suspects with points, highest score first."""
    suspects: dict[tuple[str, str], Suspect] = {}
    for signal in all_signals():
        weight = settings.weight(signal.name)
        if weight <= 0 or (signal.needs_geoip and not ctx.geoip_loaded):
            continue
        rows, peer_median = run_signal(con, signal, settings, settings.threshold(signal.name))
        threshold = settings.threshold(signal.name)
        if peer_median is not None:
            threshold = max(threshold, settings.peer_factor * peer_median)
        for row in rows:
            subject = row.pop("subject")
            if subject is None:
                continue
            value = float(row.pop("value") or 0.0)
            first, last = row.pop("first_seen", None), row.pop("last_seen", None)
            if peer_median is not None:
                row["peer_median"] = peer_median
            numbers = {"value": value, **row}
            got = points(value, threshold, weight, settings.cap)
            if got <= 0:
                continue
            key = (signal.kind, str(subject))
            suspect = suspects.get(key)
            if suspect is None:
                suspect = suspects[key] = Suspect(kind=signal.kind, name=str(subject))
            _widen(suspect, first, last)
            suspect.evidence.append(Evidence(
                signal=signal.name, value=value, threshold=threshold, weight=weight, points=got,
                text=signal.describe(numbers), numbers=row, first_seen=first, last_seen=last))
            suspect.score += got
    ranked = list(suspects.values())
    _activity_span(con, ranked)
    for suspect in ranked:
        suspect.alarm = suspect.score >= settings.alarm
        suspect.evidence.sort(key=lambda e: -e.points)
        suspect.next_action = next_action(suspect)
    ranked.sort(key=lambda s: (-s.score, s.kind, s.name))
    return ranked


# First and last activity of each kind of subject, over the whole window.
_SPAN_SQL = {
    ACCOUNT: "SELECT auth_user, ts FROM hw_msgs WHERE auth_user IS NOT NULL "
             "UNION ALL SELECT user, ts FROM hw_auth WHERE user IS NOT NULL",
    CLIENT_IP: "SELECT client_ip, start_ts FROM hw_sessions WHERE client_ip IS NOT NULL "
               "UNION ALL SELECT client_ip, ts FROM hw_auth WHERE client_ip IS NOT NULL",
    LOCAL_USER: "SELECT coalesce(local_user, '(unknown)'), ts FROM hw_msgs WHERE kind = 'local'",
}


def _activity_span(con: duckdb.DuckDBPyConnection, suspects: list[Suspect]) -> None:
    """Widen first/last seen from the scoring evidence to everything the subject did."""
    from mailwarden.hunt.ingest import insert_rows

    for kind, sql in _SPAN_SQL.items():
        names = [(s.name,) for s in suspects if s.kind == kind]
        if not names:
            continue
        con.execute("CREATE OR REPLACE TEMP TABLE hw_wanted (name VARCHAR)")
        insert_rows(con, "hw_wanted (name)", names)
        spans = con.execute(f"""
            SELECT a.name, min(a.ts), max(a.ts) FROM ({sql}) AS a(name, ts)
            WHERE a.name IN (SELECT name FROM hw_wanted) GROUP BY a.name""").fetchall()
        by_name = {s.name: s for s in suspects if s.kind == kind}
        for name, first, last in spans:
            _widen(by_name[name], first, last)


def _widen(suspect: Suspect, first, last) -> None:
    if first is not None and (suspect.first_seen is None or first < suspect.first_seen):
        suspect.first_seen = first
    if last is not None and (suspect.last_seen is None or last > suspect.last_seen):
        suspect.last_seen = last


def summarise(con: duckdb.DuckDBPyConnection, suspects: list[Suspect], ctx: Context,
              settings: HuntSettings, inputs: list[str], db: str | None) -> HuntResult:
    """Wrap the ranking with the totals the views show."""
    sessions, first, last = con.execute(
        "SELECT count(*), min(start_ts), max(coalesce(end_ts, start_ts)) FROM hw_sessions").fetchall()[0]
    (messages,) = con.execute("SELECT count(*) FROM hw_msgs").fetchall()[0]
    return HuntResult(suspects=suspects, alarm=settings.alarm, inputs=inputs, db=db,
                      sessions=sessions, messages=messages, first_ts=first, last_ts=last,
                      notes=list(ctx.notes))
