"""Log timestamps for every dialect, and the year that classic syslog leaves out.

Formats (all parsed with plain string operations: no regex, nothing that can backtrack):

- classic syslog / journald ``short`` / Postfix ``maillog_file``: ``Nov  3 14:02:01`` (no year,
  server local time, naive). Single-digit days come with one or two spaces (``Mar 7`` and
  ``Mar  7`` are both seen in real logs, fail2ban's postfix sample has the first).
- RFC 3339 syslog / journald ``short-iso`` / ``short-iso-precise``:
  ``2024-08-29T01:08:59.764590+00:00`` or ``...+0000`` (aware).
- Exim: ``2022-06-29 16:04:05`` with optional ``.mmm`` and optional `` +0200`` (``log_timezone``).
- MDaemon: ``Sat 2025-06-07 00:00:12.401`` (naive local; milliseconds absent before v18).

Year inference for classic syslog (:class:`SyslogYear`): the first line's year is ``--year`` when
given; otherwise the year of an anchor moment (the received time of the message searched for,
else the file's mtime), one less when the first line's month lies after the anchor's month (a
line cannot be younger than the file that holds it). After that, a month that jumps
back by more than six months is a New Year roll-over and the year goes up by one.
"""

from __future__ import annotations

import datetime as dt

MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
WEEKDAYS = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})


def _int(text: str, lo: int, hi: int) -> int | None:
    if not text or len(text) > 4 or not text.isdigit():
        return None
    value = int(text)
    return value if lo <= value <= hi else None


def parse_clock(text: str) -> tuple[int, int, int, int] | None:
    """``HH:MM:SS`` with an optional ``.fraction`` -> (h, m, s, microseconds)."""
    if len(text) < 8 or text[2] != ":" or text[5] != ":":
        return None
    hour, minute, second = _int(text[0:2], 0, 23), _int(text[3:5], 0, 59), _int(text[6:8], 0, 60)
    if hour is None or minute is None or second is None:
        return None
    micro = 0
    rest = text[8:]
    if rest:
        if rest[0] not in ".," or not rest[1:].isdigit() or len(rest) > 10:
            return None
        micro = int((rest[1:] + "000000")[:6])
    return hour, minute, min(second, 59), micro


def parse_syslog_stamp(month: str, day: str, clock: str) -> tuple[int, int, int, int, int, int] | None:
    """The three tokens of ``Nov  3 14:02:01`` -> (month, day, h, m, s, us); None when not one."""
    mon = MONTHS.get(month[:3].lower()) if len(month) == 3 else None
    mday = _int(day, 1, 31)
    hms = parse_clock(clock)
    if mon is None or mday is None or hms is None:
        return None
    return (mon, mday, *hms)


def parse_iso(text: str) -> dt.datetime | None:
    """RFC 3339 / ISO 8601 ``2024-08-29T01:08:59.76+00:00`` (also ``+0000``, ``Z``); None otherwise."""
    if len(text) < 19 or len(text) > 40 or text[4] != "-" or text[7] != "-" or text[10] not in "T ":
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_date_time(date: str, clock: str, zone: str | None = None) -> dt.datetime | None:
    """``2022-06-29`` + ``16:04:05[.mmm]`` (+ optional ``+0200``) -> datetime (aware with a zone)."""
    if len(date) != 10 or date[4] != "-" or date[7] != "-":
        return None
    year, month, day = _int(date[0:4], 1970, 2200), _int(date[5:7], 1, 12), _int(date[8:10], 1, 31)
    hms = parse_clock(clock)
    if year is None or month is None or day is None or hms is None:
        return None
    tz = parse_offset(zone) if zone else None
    try:
        return dt.datetime(year, month, day, hms[0], hms[1], hms[2], hms[3], tzinfo=tz)
    except ValueError:
        return None


def parse_offset(text: str) -> dt.timezone | None:
    """``+0200`` / ``-05:00`` / ``Z`` -> timezone; None when not an offset."""
    if text in ("Z", "UTC", "GMT"):
        return dt.UTC
    if len(text) not in (5, 6) or text[0] not in "+-":
        return None
    digits = text[1:].replace(":", "")
    if len(digits) != 4 or not digits.isdigit():
        return None
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    if minutes > 18 * 60:
        return None
    sign = -1 if text[0] == "-" else 1
    return dt.timezone(dt.timedelta(minutes=sign * minutes))


class SyslogYear:
    """Gives classic syslog lines (no year) their year, rolling over at New Year.

    One instance per rotated *set* read in time order, so that ``mail.log.1`` (December) and
    ``mail.log`` (January) continue one another.
    """

    def __init__(self, year: int | None = None, *, mtime: float | None = None,
                 anchor: dt.datetime | None = None) -> None:
        self.explicit_year = year
        # ``anchor``: a moment the log is known to reach (the received time of the message being
        # looked for); it beats the mtime, which a copy or a restore from backup changes.
        self.anchor: dt.datetime | None = None
        if year is None and anchor is not None:
            # +1 day: the server's local clock may already be in the next month (time zones)
            self.anchor = anchor.replace(tzinfo=None) + dt.timedelta(days=1)
        elif year is None and mtime is not None:
            self.anchor = dt.datetime.fromtimestamp(mtime)
        self.fixed_anchor = anchor is not None
        self.year: int | None = None
        self.last_month: int | None = None
        self.rollovers = 0

    def reanchor(self, mtime: float | None) -> None:
        """A new file of the set starts: keep the running year once one is known."""
        if self.year is None and self.explicit_year is None and mtime is not None \
                and not self.fixed_anchor:
            self.anchor = dt.datetime.fromtimestamp(mtime)

    def datetime(self, month: int, day: int, hour: int, minute: int, second: int,
                 micro: int = 0) -> dt.datetime | None:
        if self.year is None:
            if self.explicit_year is not None:
                self.year = self.explicit_year
            elif self.anchor is not None:
                self.year = self.anchor.year - (1 if month > self.anchor.month else 0)
            else:
                self.year = dt.date.today().year
        elif self.last_month is not None and month < self.last_month - 6:
            # Dec -> Jan: the log went through New Year.
            self.year += 1
            self.rollovers += 1
        self.last_month = month
        try:
            return dt.datetime(self.year, month, day, hour, minute, second, micro)
        except ValueError:  # Feb 29 in a non-leap year: the inferred year is wrong, keep the line
            return None
