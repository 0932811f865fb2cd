"""The log dialects mailwarden reads, listed explicitly, and per-file auto-detection."""

from __future__ import annotations

from mailwarden.errors import FormatNotRecognised
from mailwarden.logs.readers.base import LogReader
from mailwarden.logs.readers.exim import EximReader
from mailwarden.logs.readers.mdaemon import MDaemonReader
from mailwarden.logs.readers.postfix import PostfixReader
from mailwarden.registry import Registry

# Detection order matters only when two dialects could claim the same head: MDaemon's
# weekday-prefixed stamp and Exim's ISO stamp are distinctive, syslog'd Exim is checked before
# Postfix because a Postfix mail.log never has "exim[" tags.
READERS: Registry[LogReader] = Registry("log reader", [MDaemonReader(), EximReader(), PostfixReader()])

FORMAT_NAMES = ["auto", *READERS.names()]


def get_reader(name: str) -> LogReader:
    """The reader called ``name`` (kebab-case, as in ``--format``)."""
    try:
        return READERS.get(name)
    except KeyError as exc:
        raise FormatNotRecognised(str(exc).strip('"')) from None


def detect(head_lines: list[str]) -> LogReader | None:
    """The first reader whose `sniff` accepts these lines, or None."""
    for reader in READERS:
        try:
            if reader.sniff(head_lines):
                return reader
        except Exception:  # a reader's sniff must never stop detection of the others
            continue
    return None


__all__ = ["FORMAT_NAMES", "READERS", "LogReader", "detect", "get_reader"]
