"""MDaemon AccountPrune-style switches (``/d=5 /p="Inbox.IMAP" /n /z="c:\\backup\\archive"``).

The real AccountPrune.txt is not public (see docs/prune.md), so this mapping is *inspired by*
the switches quoted in our seed, not compatible with AccountPrune.exe. Exactly these are
understood; any other ``/x`` is an error, never silently ignored:

====  ============================  ===========================================
/d=N  messages older than N days    ``--days N``
/p=F  this folder (IMAP or .IMAP)   ``--folder F`` (repeatable)
/u=A  this account (mailbox@domain) ``--account A`` (repeatable)
/n    move (not delete) ...         with /z=: ``--archive DIR``
/z=D  ... into zip archives in D    (needs /n)
/t    test: log only                ``--test``
====  ============================  ===========================================

Windows paths (``c:\\backup\\archive``) are mapped on POSIX systems: drive ``X:`` becomes the
directory configured as ``[prune.drives] x = "/srv/..."`` in mailwarden.toml, else ``/mnt/x``
(the WSL convention). On Windows they are used as given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mailwarden.errors import ConfigError

_SWITCH = re.compile(r"/([A-Za-z])(?:(=)(.*))?", re.DOTALL)
_DRIVE = re.compile(r"([A-Za-z]):[\\/](.*)", re.DOTALL)
_MAX_ARG = 4096

# letter -> (takes a value?, what it means); the help text and the error list both come from here
SWITCHES: dict[str, tuple[bool, str]] = {
    "d": (True, "days: messages older than N days (--days N)"),
    "p": (True, "folder: IMAP name or MDaemon .IMAP name (--folder F)"),
    "u": (True, "account: mailbox@domain (--account A)"),
    "n": (False, "move instead of delete; with /z= the messages go into zip archives"),
    "z": (True, "zip archive folder (--archive DIR); needs /n"),
    "t": (False, "test mode: log only, change nothing (--test)"),
}


@dataclass
class Switches:
    """The switches found on the command line, already mapped to our options."""

    days: float | None = None
    folders: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    move: bool = False
    archive: Path | None = None
    test: bool = False
    seen: list[str] = field(default_factory=list)  # the switches as given, for the log

    @property
    def any(self) -> bool:
        return bool(self.seen)


def is_switch(arg: str) -> bool:
    """``/d=5``, ``/n``: a slash, one letter, optionally ``=value`` (a one-letter root dir is not a store)."""
    return _SWITCH.fullmatch(arg) is not None


def map_windows_path(text: str, drives: dict[str, str] | None = None) -> Path:
    """``c:\\backup\\archive`` -> ``/mnt/c/backup/archive`` (or the configured drive root) on POSIX."""
    if os.name == "nt":
        return Path(text)
    if text.startswith("\\\\"):
        raise ConfigError(f"UNC path {text!r}: mount the share and give its local path")
    m = _DRIVE.fullmatch(text)
    if not m:
        if "\\" in text:
            raise ConfigError(f"path {text!r} has backslashes but no drive letter; give a POSIX path")
        return Path(text)
    letter = m.group(1).lower()
    root = (drives or {}).get(letter) or f"/mnt/{letter}"
    parts = [p for p in re.split(r"[\\/]", m.group(2)) if p]
    if any(p == ".." for p in parts):
        raise ConfigError(f"path {text!r} climbs out of its drive with '..'")
    return Path(root).joinpath(*parts) if parts else Path(root)


def parse(args: list[str], drives: dict[str, str] | None = None) -> tuple[Switches, list[str]]:
    """Split ``args`` into AccountPrune-style switches and everything else (the store)."""
    sw = Switches()
    rest: list[str] = []
    for arg in args:
        if len(arg) > _MAX_ARG:
            raise ConfigError("command-line argument too long")
        m = _SWITCH.fullmatch(arg)
        if not m:
            rest.append(arg)
            continue
        letter, has_eq, value = m.group(1).lower(), m.group(2), m.group(3)
        if letter not in SWITCHES:
            known = " ".join(f"/{k}=" if v[0] else f"/{k}" for k, v in SWITCHES.items())
            raise ConfigError(f"unknown AccountPrune-style switch {arg!r}; understood: {known} (docs/prune.md)")
        takes_value = SWITCHES[letter][0]
        if takes_value and not has_eq:
            raise ConfigError(f"switch /{letter} needs a value: /{letter}=...")
        if not takes_value and has_eq:
            raise ConfigError(f"switch /{letter} takes no value")
        value = (value or "").strip().strip('"')
        sw.seen.append(arg)
        if letter == "d":
            try:
                sw.days = float(value)
            except ValueError:
                raise ConfigError(f"/d= needs a number of days, not {value!r}") from None
            if sw.days < 0:
                raise ConfigError("/d= must be 0 or more")
        elif letter == "p":
            if not value:
                raise ConfigError("/p= needs a folder name")
            sw.folders.append(value)
        elif letter == "u":
            sw.accounts.append(value)
        elif letter == "n":
            sw.move = True
        elif letter == "z":
            if not value:
                raise ConfigError("/z= needs an archive folder")
            sw.archive = map_windows_path(value, drives)
        elif letter == "t":
            sw.test = True
    if sw.archive is not None and not sw.move and not sw.test:
        raise ConfigError("/z= (zip archive folder) needs /n (move the messages into it)")
    if sw.move and sw.archive is None:
        raise ConfigError("/n (move) needs /z=ARCHIVE_DIR here; to move into a folder use --move-to FOLDER")
    return sw, rest


DEFAULT_MDAEMON_STORE = "C:\\MDaemon\\Users"


def posix_display(path: Path) -> str:
    return str(PurePosixPath(path)) if os.name != "nt" else str(path)
