"""The syslog line prefix (timestamp, host, ``program[pid]:``) that Postfix and syslog'd Exim share.

Shapes handled (string operations only):

- classic / journald ``short`` / Postfix ``maillog_file``:
  ``Nov  3 14:02:01 mail postfix/smtpd[123]: text`` (no year: see `SyslogYear`)
- RFC 3339 / journald ``short-iso``: ``2024-08-29T01:08:59.764590+00:00 mail postfix/smtpd[123]: text``
- journald ``short-full``: ``Thu 2024-08-29 01:08:59 UTC mail postfix/smtpd[123]: text``
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mailwarden.logs.timestamps import (
    WEEKDAYS,
    SyslogYear,
    parse_date_time,
    parse_iso,
    parse_offset,
    parse_syslog_stamp,
)


@dataclass(slots=True)
class SyslogPrefix:
    ts: dt.datetime | None
    ts_is_local: bool
    host: str
    program: str      # "postfix/submission/smtpd"
    pid: int | None
    message: str


def parse_tag(tag: str) -> tuple[str, int | None] | None:
    """``postfix/smtpd[123]:`` -> ("postfix/smtpd", 123); ``exim:`` -> ("exim", None)."""
    if not tag.endswith(":") or len(tag) > 128:
        return None
    tag = tag[:-1]
    if tag.endswith("]"):
        open_at = tag.rfind("[")
        pid_text = tag[open_at + 1:-1]
        if open_at <= 0 or not pid_text.isdigit() or len(pid_text) > 10:
            return None
        return tag[:open_at], int(pid_text)
    if not tag or "[" in tag:
        return None
    return tag, None


def split_syslog(text: str, clock: SyslogYear | None) -> SyslogPrefix | None:
    """Split one syslog line; None when it has no recognisable prefix."""
    if len(text) < 20:
        return None
    first = text[0]
    if first.isdigit():
        parts = text.split(maxsplit=3)
        if len(parts) < 4:
            return None
        ts = parse_iso(parts[0])
        if ts is None:
            return None
        tagged = parse_tag(parts[2])
        if tagged is None:
            return None
        return SyslogPrefix(ts, ts.tzinfo is None, parts[1], tagged[0], tagged[1], parts[3])
    parts = text.split(maxsplit=5)
    if len(parts) < 5:
        return None
    if parts[0].lower() in WEEKDAYS and len(parts[1]) == 10:
        # journald short-full: "Thu 2024-08-29 01:08:59 UTC host tag: msg"
        more = text.split(maxsplit=6)
        if len(more) < 7:
            return None
        zone = parse_offset(more[3])
        ts = parse_date_time(more[1], more[2], more[3] if zone else None)
        tagged = parse_tag(more[5])
        if ts is None or tagged is None:
            return None
        return SyslogPrefix(ts, ts.tzinfo is None, more[4], tagged[0], tagged[1], more[6])
    stamp = parse_syslog_stamp(parts[0], parts[1], parts[2])
    if stamp is None:
        return None
    tagged = parse_tag(parts[4])
    if tagged is None:
        return None
    clock = clock if clock is not None else SyslogYear()
    ts = clock.datetime(*stamp)
    message = parts[5] if len(parts) > 5 else ""
    return SyslogPrefix(ts, True, parts[3], tagged[0], tagged[1], message)
