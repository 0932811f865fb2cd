"""Zip archives of pruned mail: one part per account and folder, ZIP64, verified before use.

A part is written to ``<name>.zip.partial``, flushed and fsynced, renamed to ``<name>.zip``,
the directory fsynced, then re-opened and every entry read back (zipfile checks the CRC-32)
and its SHA-256 compared with what we wrote. Only a part that passes may lead to removals.
The last entry, ``mailwarden-manifest.jsonl``, says where each message came from (account,
folder, flags, arrival date, hash), which is what ``prune restore`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailwarden.errors import InputError, StoreError
from mailwarden.prune.stores.base import StoredMessage, fsync_dir

MANIFEST = "mailwarden-manifest.jsonl"
MANIFEST_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._,=+-]")
_ZIP_EPOCH = time.mktime((1980, 1, 1, 0, 0, 0, 0, 0, -1))
_ZIP_END = time.mktime((2107, 12, 31, 23, 59, 58, 0, 0, -1))
# zlib level 1: about 3x faster than 6 and, on mail (text, base64), only a few percent larger.
_LEVEL = 1


def safe_component(text: str, limit: int = 80) -> str:
    """A path or entry-name part that cannot escape a directory or upset Windows unzip tools."""
    cleaned = _SAFE.sub("_", text)[:limit].strip(".") or "_"
    return cleaned


def zip_time(epoch: float | None) -> tuple[int, int, int, int, int, int]:
    """Entry time = message date (local time, as zip stores it), clamped to zip's 1980..2107."""
    if epoch is None:
        epoch = time.time()
    epoch = min(max(epoch, _ZIP_EPOCH), _ZIP_END)
    return time.localtime(epoch)[:6]


@dataclass
class PartWriter:
    """Writes one archive part; ``finish()`` makes it durable and verifies it."""

    path: Path
    store_name: str
    store_id: str
    _entries: list[dict] = field(default_factory=list)
    bytes: int = 0

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._fh = open(self.partial, "wb")  # closed in finish() or abort()
        self._zip = zipfile.ZipFile(self._fh, "w", compression=zipfile.ZIP_DEFLATED,
                                    compresslevel=_LEVEL, allowZip64=True)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, message: StoredMessage, data: bytes, date: float | None, step_id: int) -> tuple[str, str]:
        """Add one message; returns (entry name, sha256)."""
        ordinal = len(self._entries) + 1
        base = message.key.rpartition("/")[2].partition(":")[0]
        entry = f"{ordinal:07d}-{safe_component(base, 60)}.eml"
        info = zipfile.ZipInfo(entry, date_time=zip_time(date))
        info.compress_type = zipfile.ZIP_DEFLATED
        # a ZipInfo we build does not inherit the ZipFile's level (zipfile's own private field;
        # Python 3.13 names it compress_level and keeps the old name as an alias)
        info._compresslevel = _LEVEL
        info.external_attr = 0o600 << 16
        digest = hashlib.sha256(data).hexdigest()
        with self._zip.open(info, "w", force_zip64=len(data) > 0x7FFFFFFF) as out:
            out.write(data)
        self.bytes += len(data)
        self._entries.append({
            "entry": entry, "account": message.account, "folder": message.folder, "key": message.key,
            "flags": sorted(message.flags), "arrival": message.arrival, "date": date,
            "size": len(data), "sha256": digest, "step": step_id,
            **({"envelope": message.extra["from_line"]} if message.extra.get("from_line") else {}),
        })
        return entry, digest

    def finish(self) -> dict[str, str]:
        """Write the manifest, fsync, rename into place, re-read and check; returns entry -> sha256."""
        header = {"mailwarden_manifest": MANIFEST_VERSION, "store": self.store_name, "store_id": self.store_id,
                  "written": time.time()}
        lines = [json.dumps(header)] + [json.dumps(e) for e in self._entries]
        info = zipfile.ZipInfo(MANIFEST, date_time=zip_time(None))
        info.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(info, ("\n".join(lines) + "\n").encode())
        self._zip.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.partial, self.path)
        fsync_dir(self.path.parent)
        expected = {e["entry"]: e["sha256"] for e in self._entries}
        verify(self.path, expected)
        return expected

    def abort(self) -> None:
        try:
            self._zip.close()
        except (OSError, ValueError):
            pass
        self._fh.close()
        self.partial.unlink(missing_ok=True)


def verify(path: Path, expected: dict[str, str]) -> None:
    """Read every entry back (CRC-32 by zipfile, SHA-256 by us); raise StoreError on any mismatch."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = set(expected) - names
            if missing:
                raise StoreError(f"archive {path}: {len(missing)} entries missing after write")
            for entry, digest in expected.items():
                h = hashlib.sha256()
                with zf.open(entry) as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
                if h.hexdigest() != digest:
                    raise StoreError(f"archive {path}: entry {entry} does not match what was written")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise StoreError(f"archive {path} failed verification: {exc}") from None


@dataclass
class ArchivedMessage:
    """One message in an archive, as the manifest describes it."""

    archive: Path
    entry: str
    account: str
    folder: str
    flags: frozenset[str]
    arrival: float | None
    size: int
    sha256: str
    envelope: str | None = None   # the mbox From_ line, so a restore writes the same bytes


def read_manifest(path: Path) -> Iterator[ArchivedMessage]:
    """The messages of one archive part (InputError when it is not a mailwarden archive)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(MANIFEST) as fh:
            header = None
            for raw in fh:
                if len(raw) > 1 << 20:
                    raise InputError(f"{path}: manifest line too long")
                record = json.loads(raw)
                if header is None:
                    header = record
                    if header.get("mailwarden_manifest") != MANIFEST_VERSION:
                        raise InputError(f"{path}: unknown manifest version {header.get('mailwarden_manifest')!r}")
                    continue
                yield ArchivedMessage(path, str(record["entry"]), str(record["account"]),
                                      str(record["folder"]), frozenset(record.get("flags") or ()),
                                      record.get("arrival"), int(record["size"]), str(record["sha256"]),
                                      record.get("envelope"))
    except KeyError:
        raise InputError(f"{path} is not a mailwarden prune archive (no {MANIFEST})") from None
    except (zipfile.BadZipFile, OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: unreadable archive or invalid manifest: {exc}") from None


def read_entry(path: Path, entry: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(entry)
