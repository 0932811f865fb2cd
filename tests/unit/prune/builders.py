"""Build real on-disk test stores: MDaemon (from the documented layout) and Maildir++.

The MDaemon builder follows docs/prune.md (IMAP.MRK: 36-byte header, 36-byte records,
``Users/<domain>/<mailbox>/*.msg``, ``<Name>.IMAP`` folders); the Maildir builder writes what
Dovecot writes (tmp -> new/cur, ``,S=`` size, ``:2,`` flags, mtime = arrival).
"""

from __future__ import annotations

import datetime as dt
import os
import struct
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path

DAY = 86400
NOW = time.time()

_FLAG_BITS = {"S": 32, "R": 16, "F": 8, "T": 4, "D": 2}


def message_bytes(n: int, subject: str = "", date: float | None = None, body_size: int = 200) -> bytes:
    """A small RFC 822 message with a unique Message-ID."""
    when = format_datetime(dt.datetime.fromtimestamp(date or NOW, dt.UTC))
    body = (f"message number {n}\r\n" * (body_size // 20 + 1))[:body_size]
    return (f"From: sender{n}@example.org\r\nTo: user@example.com\r\nSubject: {subject or f'test {n}'}\r\n"
            f"Date: {when}\r\nMessage-ID: <msg{n}@mailwarden.test>\r\n\r\n{body}\r\n").encode()


@dataclass
class MDaemonBuilder:
    """Writes ``Users/<domain>/<mailbox>`` with .msg files and an IMAP.MRK per folder."""

    root: Path
    counter: int = 0
    uid_validity: int = 1234567
    records: dict[Path, list[tuple[str, int, int, int, int]]] = field(default_factory=dict)

    def folder_dir(self, account: str, folder: str = "INBOX") -> Path:
        mailbox, _, domain = account.partition("@")
        base = self.root / domain / mailbox
        if folder != "INBOX":
            base = base.joinpath(*(p + ".IMAP" for p in folder.split("/")))
        base.mkdir(parents=True, exist_ok=True)
        return base

    def add(self, account: str, folder: str = "INBOX", age_days: float = 0, flags: str = "",
            data: bytes | None = None, record: bool = True) -> str:
        self.counter += 1
        fdir = self.folder_dir(account, folder)
        name = f"md5000{self.counter:09d}.msg"
        date = NOW - age_days * DAY
        data = data or message_bytes(self.counter, date=date)
        (fdir / name).write_bytes(data)
        os.utime(fdir / name, (date, date))
        if record:
            bits = sum(_FLAG_BITS[c] for c in flags)
            recs = self.records.setdefault(fdir, [])
            recs.append((name, bits, len(recs) + 1, len(data), int(date)))
        else:
            self.records.setdefault(fdir, [])
        self.write_mrk(fdir)
        return name

    def write_mrk(self, fdir: Path, version: int = 1) -> None:
        recs = self.records.get(fdir, [])
        header = struct.pack("<9I", version, self.uid_validity, len(recs) + 1, 7, 0, 0, 0, 0, 0x0A0D)
        body = b"".join(struct.pack("<23sBIII", n.encode(), f, u, s, d) for n, f, u, s, d in recs)
        (fdir / "IMAP.MRK").write_bytes(header + body)


def read_mrk(path: Path) -> tuple[tuple, list[tuple[str, int, int, int, int]]]:
    data = path.read_bytes()
    header = struct.unpack_from("<9I", data)
    recs = []
    for off in range(36, len(data), 36):
        n, f, u, s, d = struct.unpack_from("<23sBIII", data, off)
        recs.append((n.split(b"\0")[0].decode(), f, u, s, d))
    return header, recs


@dataclass
class MaildirBuilder:
    """Writes a Dovecot-style Maildir++ for one account."""

    root: Path
    counter: int = 0

    def folder_dir(self, folder: str = "INBOX") -> Path:
        fdir = self.root if folder == "INBOX" else self.root / ("." + folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (fdir / sub).mkdir(parents=True, exist_ok=True)
        if folder != "INBOX":
            (fdir / "maildirfolder").touch()
        return fdir

    def add(self, folder: str = "INBOX", age_days: float = 0, flags: str | None = "S",
            data: bytes | None = None) -> Path:
        """flags None -> new/ (not yet seen by a client); else cur/ with ``:2,<flags>``."""
        self.counter += 1
        fdir = self.folder_dir(folder)
        date = NOW - age_days * DAY
        data = data or message_bytes(self.counter, date=date)
        name = f"{int(date)}.M{self.counter}P4242.testhost,S={len(data)}"
        tmp = fdir / "tmp" / name
        tmp.write_bytes(data)
        os.utime(tmp, (date, date))
        final = fdir / "new" / name if flags is None else fdir / "cur" / f"{name}:2,{flags}"
        os.rename(tmp, final)
        return final


def maildir_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
