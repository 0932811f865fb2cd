"""Selection criteria as small composable predicates, and the age sources they read.

A predicate answers "does this message match?" and, when it does not, why. The age
of a message comes from one stated source (``arrival`` by default) and the source
is recorded with every decision, because every tool uses a different clock
(see docs/prune.md, "Which date?").
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from mailwarden.errors import ConfigError
from mailwarden.prune.stores.base import INBOX, SEP, StoredMessage

AGE_SOURCES = ("arrival", "date-header", "mtime")
_MAX_HEADER_LINE = 998 * 4  # a folded Date: longer than this is hostile; ignore it

# Folder names: MDaemon writes "Sent.IMAP\Old.IMAP", Maildir++ ".Sent.Old", IMAP "Sent/Old" or
# "Sent.Old". We compare on one canonical form.
_IMAP_SUFFIX = ".imap"


def canonical_folder(name: str) -> str:
    """``Inbox.IMAP``, ``inbox``, ``Sent.IMAP\\Old.IMAP``, ``Sent/Old`` -> ``INBOX``, ``Sent/Old``."""
    name = name.strip().replace("\\", SEP)
    parts = [p for p in name.split(SEP) if p]
    out = []
    for part in parts:
        if part.lower().endswith(_IMAP_SUFFIX) and len(part) > len(_IMAP_SUFFIX):
            part = part[: -len(_IMAP_SUFFIX)]
        out.append(part)
    if out and out[0].lower() == "inbox":
        out[0] = INBOX  # INBOX is case-insensitive in IMAP (RFC 3501 5.1); other names are not
    return SEP.join(out) if out else INBOX


def folder_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Glob match on canonical folder names; ``.`` in a pattern also matches ``/`` (Maildir++ habit)."""
    compiled = []
    for pattern in patterns:
        canon = canonical_folder(pattern)
        variants = {canon, canon.replace(".", SEP)}
        compiled.extend(re.compile(fnmatch.translate(v)) for v in variants)
    if not compiled:
        return lambda folder: True
    return lambda folder: any(rx.fullmatch(folder) for rx in compiled)


def parse_size(text: str) -> int:
    """``1M``, ``500k``, ``2G``, ``1234`` -> bytes (powers of 1024, as doveadm reads them)."""
    m = re.fullmatch(r"\s*(\d{1,15})\s*([kKmMgG]?)[bB]?\s*", text or "")
    if not m:
        raise ConfigError(f"not a size: {text!r} (use e.g. 500k, 2M, 1G)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def parse_date(text: str) -> float:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS][+TZ]`` (UTC when no zone) -> epoch seconds."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    except (ValueError, OverflowError):
        raise ConfigError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def header_date(head: bytes) -> float | None:
    """The Date: header of a message head as epoch seconds, or None when missing or unparsable."""
    end = head.find(b"\n\n")
    end2 = head.find(b"\r\n\r\n")
    cut = min(x for x in (end, end2, len(head)) if x >= 0)
    value: bytes | None = None
    for raw in head[:cut].split(b"\n"):
        line = raw.rstrip(b"\r")
        if value is not None:
            if line[:1] in (b" ", b"\t"):
                if len(value) < _MAX_HEADER_LINE:
                    value += b" " + line.strip()
                continue
            break
        if line[:5].lower() == b"date:":
            value = line[5:].strip()
    if not value or len(value) > _MAX_HEADER_LINE:
        return None
    try:
        parsed = parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


@dataclass
class Criteria:
    """What to select. Empty/None fields do not restrict."""

    cutoff: float | None = None          # select messages older than this epoch time
    age_source: str = "arrival"
    folders: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    larger_than: int | None = None
    seen: bool | None = None             # True: only seen; False: only unseen
    deleted_only: bool = False
    include_flagged: bool = False

    def __post_init__(self) -> None:
        if self.age_source not in AGE_SOURCES:
            raise ConfigError(f"unknown age source {self.age_source!r}; use one of {', '.join(AGE_SOURCES)}")
        self._folder_ok = folder_matcher(self.folders)
        self._account_rx = [re.compile(fnmatch.translate(a.lower())) for a in self.accounts]
        self._domains = {d.lower().lstrip("@").rstrip(".") for d in self.domains}

    def account_ok(self, account: str) -> bool:
        """``--account`` (globs, case-insensitive) and ``--domain`` (the part after @, or the first path part)."""
        low = account.lower()
        if self._account_rx and not any(rx.fullmatch(low) for rx in self._account_rx):
            return False
        if self._domains:
            domain = low.rpartition("@")[2] if "@" in low else low.partition("/")[0]
            return domain in self._domains
        return True

    def folder_ok(self, folder: str) -> bool:
        return self._folder_ok(folder)

    def needs_head(self) -> bool:
        return self.age_source == "date-header" and self.cutoff is not None

    def message_date(self, message: StoredMessage, head: bytes | None) -> float | None:
        """The date the age test uses, from the chosen source (None: unknown, so never selected)."""
        if self.age_source == "arrival":
            return message.arrival
        if self.age_source == "mtime":
            return message.mtime
        return header_date(head) if head is not None else None

    def decide(self, message: StoredMessage, head: bytes | None = None) -> tuple[bool, str, float | None]:
        """(selected?, reason, the date used). Reasons are short stable words used in the log."""
        if self.deleted_only and not message.deleted:
            return False, "not-deleted", None
        if not self.include_flagged and message.flagged:
            return False, "flagged", None
        if self.seen is True and not message.seen:
            return False, "unseen", None
        if self.seen is False and message.seen:
            return False, "seen", None
        if self.larger_than is not None and message.size <= self.larger_than:
            return False, "small", None
        date = self.message_date(message, head)
        if self.cutoff is not None:
            if date is None:
                # A message with no usable date counts as new (archivemail's rule): never pruned.
                return False, "no-date", None
            if date >= self.cutoff:
                return False, "young", date
        return True, "selected", date


def cutoff_from(days: float | None, before: str | None, now: float | None = None) -> float | None:
    """``--days N`` (N*86400 s before now) or ``--before DATE``; both given is a usage error."""
    if days is not None and before is not None:
        raise ConfigError("give --days or --before, not both")
    if days is not None:
        if not math.isfinite(days) or days < 0:
            raise ConfigError(f"--days must be a finite number ≥ 0, got {days}")
        return _representable((time.time() if now is None else now) - days * 86400, f"--days {days:g}")
    if before is not None:
        return _representable(parse_date(before), f"--before {before}")
    return None


def _representable(cutoff: float, what: str) -> float:
    """A cutoff every later step (log, JSON, gmtime) can print; checked before anything runs."""
    try:
        dt.datetime.fromtimestamp(cutoff, dt.UTC)
        time.gmtime(cutoff)
    except (OverflowError, ValueError, OSError):
        raise ConfigError(f"{what}: the date is out of range") from None
    return cutoff
