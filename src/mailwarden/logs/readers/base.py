"""The `LogReader` contract every dialect implements, and helpers the readers share.

A reader turns lines into `LogEvent`s; it never groups them (``logs/sessions.py`` does that for
every dialect). Per-line parsing is a pure function in each dialect module, so the index can
reuse it. Readers never raise on hostile input: a line they cannot read becomes an
``EventKind.UNPARSED`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from mailwarden.logs.model import EventKind, LogEvent, LogLine
from mailwarden.logs.timestamps import SyslogYear

# Longest line a reader looks at; sources.py cuts longer lines (and records it).
MAX_LINE = 64 * 1024


@runtime_checkable
class LogReader(Protocol):
    """One log dialect: cheap detection plus line -> event parsing."""

    name: str      # stable kebab-case registry name ("postfix", "exim", "mdaemon")
    dialect: str   # the value put in LogEvent.dialect / Session.dialect

    def sniff(self, head_lines: list[str]) -> bool:
        """True when these first lines of a file look like this dialect."""
        ...

    def events(self, lines: Iterable[str | LogLine], source: str, *,
               clock: SyslogYear | None = None) -> Iterator[LogEvent]:
        """One event per line, in order (``UNPARSED`` for lines the reader cannot place)."""
        ...


def numbered(lines: Iterable[str | LogLine], source: str) -> Iterator[LogLine]:
    """Accept plain strings (numbered from 1) or ready `LogLine`s."""
    lineno = 0
    for item in lines:
        lineno += 1
        if isinstance(item, LogLine):
            yield item
        else:
            yield LogLine(source, lineno, item.rstrip("\r\n"))


def unparsed(dialect: str, line: LogLine, reason: str = "") -> LogEvent:
    fields = {"reason": reason} if reason else {}
    return LogEvent(ts=None, dialect=dialect, kind=EventKind.UNPARSED, line=line, fields=fields)


def split_host_ip(text: str) -> tuple[str | None, str | None, int | None]:
    """``name[1.2.3.4]:25`` / ``[1.2.3.4]:25`` / ``name[1.2.3.4]`` -> (name, ip, port)."""
    open_at = text.find("[")
    close_at = text.find("]", open_at + 1)
    if open_at < 0 or close_at < 0:
        return None, None, None
    name = text[:open_at] or None
    ip = text[open_at + 1:close_at] or None
    port = None
    rest = text[close_at + 1:]
    if rest.startswith(":") and rest[1:7].isdigit():
        digits = rest[1:].split(" ", 1)[0].split(",", 1)[0].rstrip(":")
        port = int(digits) if digits.isdigit() and len(digits) <= 5 else None
    if ip and ip.lower().startswith("ipv6:"):
        ip = ip[5:]
    return name, ip, port


def angle(value: str) -> str:
    """``<a@b>`` -> ``a@b`` (``<>`` -> empty string)."""
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    return value


def parse_space_kv(text: str) -> dict[str, str]:
    """``from=<a b> to=<c> proto=ESMTP helo=<x>`` -> dict; values in <> may hold spaces."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq]
        if not key or " " in key or len(key) > 32:
            break
        j = eq + 1
        if j < n and text[j] == "<":
            # The value ends at a '>' followed by a delimiter; a bare '>' inside stays in it.
            close = text.find(">", j)
            first_close = close
            while close >= 0 and close + 1 < n and text[close + 1] not in " ,;":
                close = text.find(">", close + 1)
            if close < 0:
                close = first_close
            if close < 0:
                value, i = text[j + 1:], n
            else:
                value, i = text[j + 1:close], close + 1
        else:
            end = j
            while end < n and text[end] not in " ,":
                end += 1
            value = text[j:end]
            i = end
        out[key] = value
    return out
