"""MDaemon's store: ``Users/<domain>/<mailbox>/*.msg``, ``<Name>.IMAP`` folders, per-folder ``IMAP.MRK``.

IMAP.MRK layout (reference: everything-mdaemon.com "IMAP.MRK file format", cross-checked with
Horde's MDaemon quota driver; see docs/prune.md): a 36-byte header of nine little-endian
uint32 (HeaderVersion=1, UIDValidity, UIDNext, LastWriteCounter, four fillers, CRLF) and then
36-byte records ``char Filename[23]; uint8 Flags; uint32 UID; uint32 Size; uint32 Date``.

What we do with it: a removed message loses its record, LastWriteCounter goes up by one, and the
file is replaced through a temp file + rename. We refuse a folder (clear reason, nothing changed)
when the header version is not 1 or a record does not parse. The name of MDaemon's own folder
lock file is NOT public (the only source is truncated at "IMA..."), so the lock we take is a
configurable guess (``lock_name``) and docs/prune.md says to prune at a quiet time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailwarden.errors import StoreError
from mailwarden.prune.stores.base import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    INBOX,
    RECENT,
    SEEN,
    SEP,
    ActionResult,
    LocalStoreMixin,
    StoredMessage,
    check_folder_name,
    fsync_dir,
    identity_field,
    inside,
    newest_mtime,
    unlink_many,
    write_atomic,
)

MRK_NAME = "IMAP.MRK"
MRK_VERSION = 1
HEADER = struct.Struct("<9I")
RECORD = struct.Struct("<23sBIII")
assert HEADER.size == 36 and RECORD.size == 36
CRLF_WORD = 0x0A0D  # "\r\n" followed by two NULs, read as a little-endian uint32

FLAG_BITS = {SEEN: 32, ANSWERED: 16, FLAGGED: 8, DELETED: 4, DRAFT: 2, RECENT: 1}
FOLDER_SUFFIX = ".IMAP"
DEFAULT_LOCK_NAME = "IMAP.LCK"   # unverified guess at MDaemon's folder lock; configurable
_LOCK_WAIT = 10.0
_MAX_NAME = 22                   # 23 bytes with the terminating NUL


def flags_from_bits(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in FLAG_BITS.items() if bits & bit)


def bits_from_flags(flags: frozenset[str]) -> int:
    return sum(bit for name, bit in FLAG_BITS.items() if name in flags)


@dataclass
class MrkRecord:
    filename: str
    flags: int
    uid: int
    size: int
    date: int


@dataclass
class Mrk:
    """One parsed IMAP.MRK."""

    version: int
    uid_validity: int
    uid_next: int
    write_counter: int
    fillers: tuple[int, int, int, int]
    crlf: int
    records: list[MrkRecord]

    @classmethod
    def parse(cls, data: bytes, where: str) -> Mrk:
        if len(data) < HEADER.size:
            raise StoreError(f"{where}: IMAP.MRK is {len(data)} bytes, shorter than its 36-byte header; folder left alone")
        version, validity, uid_next, counter, f0, f1, f2, f3, crlf = HEADER.unpack_from(data, 0)
        if version != MRK_VERSION:
            raise StoreError(f"{where}: IMAP.MRK header version {version} is not the documented 1; folder left alone")
        body = len(data) - HEADER.size
        if body % RECORD.size:
            raise StoreError(f"{where}: IMAP.MRK has a partial record ({body % RECORD.size} stray bytes); folder left alone")
        records = []
        for n in range(body // RECORD.size):
            raw_name, flags, uid, size, date = RECORD.unpack_from(data, HEADER.size + n * RECORD.size)
            name_bytes = raw_name.split(b"\0", 1)[0]
            try:
                name = name_bytes.decode("ascii")
            except UnicodeDecodeError:
                name = ""
            if (not name or not name.isprintable() or "/" in name or "\\" in name or name in (".", "..")
                    or flags > 63):
                raise StoreError(f"{where}: IMAP.MRK record {n + 1} does not parse; folder left alone")
            records.append(MrkRecord(name, flags, uid, size, date))
        return cls(version, validity, uid_next, counter, (f0, f1, f2, f3), crlf, records)

    def to_bytes(self) -> bytes:
        out = [HEADER.pack(self.version, self.uid_validity, self.uid_next, self.write_counter, *self.fillers,
                           self.crlf)]
        for r in self.records:
            out.append(RECORD.pack(r.filename.encode("ascii"), r.flags, r.uid, r.size, r.date & 0xFFFFFFFF))
        return b"".join(out)

    @classmethod
    def new(cls) -> Mrk:
        return cls(MRK_VERSION, int(time.time()) & 0xFFFFFFFF, 1, 0, (0, 0, 0, 0), CRLF_WORD, [])


def _has_mailbox_content(path: Path) -> bool:
    with contextlib.suppress(OSError), os.scandir(path) as it:
        for entry in it:
            low = entry.name.lower()
            if low.endswith(".msg") or low in ("imap.mrk", "hiwater.mrk") or low.endswith(".imap"):
                return True
    return False


class MDaemonStore(LocalStoreMixin):
    """See `MailStore`. Root = ``...\\MDaemon\\Users`` (domains below it) or one mailbox directory."""

    name = "mdaemon"

    def __init__(self, root: Path, lock_name: str = DEFAULT_LOCK_NAME, lock_wait: float = _LOCK_WAIT):
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory")
        self.store_id = f"mdaemon:{self.root.resolve()}"
        self.lock_name = lock_name
        self.lock_wait = lock_wait
        self._accounts: dict[str, Path] = {}
        self._mrk_cache: dict[Path, dict[str, MrkRecord]] = {}
        if _has_mailbox_content(self.root):
            self._accounts[f"{self.root.name}@{self.root.parent.name}".lower()] = self.root
        else:
            for domain in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()):
                for mailbox in sorted(p for p in domain.iterdir() if p.is_dir() and not p.is_symlink()):
                    if not mailbox.name.lower().endswith(FOLDER_SUFFIX.lower()):
                        self._accounts[f"{mailbox.name}@{domain.name}".lower()] = mailbox

    # -- layout -------------------------------------------------------------------------------
    def accounts(self) -> Iterator[str]:
        yield from self._accounts

    def account_dir(self, account: str) -> Path:
        try:
            return self._accounts[account]
        except KeyError:
            raise StoreError(f"no mailbox {account!r} under {self.root}") from None

    def folder_dir(self, account: str, folder: str) -> Path:
        base = self.account_dir(account)
        if folder == INBOX:
            return base
        check_folder_name(folder)
        return base.joinpath(*(part + FOLDER_SUFFIX for part in folder.split(SEP)))

    def folders(self, account: str) -> Iterator[str]:
        yield INBOX
        yield from self._subfolders(self.account_dir(account), "")

    def _subfolders(self, directory: Path, prefix: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name.lower())
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name.upper().endswith(FOLDER_SUFFIX) \
                    and len(entry.name) > len(FOLDER_SUFFIX):
                name = prefix + entry.name[: -len(FOLDER_SUFFIX)]
                yield name
                yield from self._subfolders(Path(entry.path), name + SEP)

    # -- IMAP.MRK -----------------------------------------------------------------------------
    def read_mrk(self, fdir: Path) -> Mrk | None:
        path = fdir / MRK_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read IMAP.MRK: {exc}") from None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(64 * 1024 * 1024 + 1)
        if len(data) > 64 * 1024 * 1024:
            raise StoreError(f"{path}: IMAP.MRK larger than 64 MiB; folder left alone")
        return Mrk.parse(data, str(path))

    def write_mrk(self, fdir: Path, mrk: Mrk) -> None:
        mrk.write_counter = (mrk.write_counter + 1) & 0xFFFFFFFF
        write_atomic(fdir / MRK_NAME, mrk.to_bytes())

    @contextlib.contextmanager
    def folder_lock(self, fdir: Path):
        """Exclusive lock file in the folder (O_EXCL); waits up to 10 s, then refuses."""
        path = fdir / self.lock_name
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                break
            except FileExistsError:
                if _our_stale_lock(path):
                    path.unlink(missing_ok=True)  # left by a killed mailwarden run on this host
                    continue
                if time.monotonic() > deadline:
                    raise StoreError(f"{fdir}: folder is locked ({self.lock_name} exists); left alone") from None
                time.sleep(0.1)
        try:
            os.write(fd, f"mailwarden {socket.gethostname()} {os.getpid()}\r\n".encode())
            os.close(fd)
            yield
        finally:
            path.unlink(missing_ok=True)

    # -- listing ------------------------------------------------------------------------------
    def messages(self, account: str, folder: str) -> Iterator[StoredMessage]:
        fdir = self.folder_dir(account, folder)
        mrk = self.read_mrk(fdir)  # read whole (small) before we change anything in the folder
        by_name = {r.filename.lower(): r for r in mrk.records} if mrk else {}
        names = []
        with os.scandir(fdir) as it:
            for entry in it:
                if entry.name.lower().endswith(".msg"):
                    names.append(entry.name)
        for name in sorted(names):
            try:
                st = os.lstat(fdir / name)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            rec = by_name.get(name.lower())
            yield StoredMessage(
                account=account, folder=folder, key=name, size=st.st_size,
                # The record's Date is the store's arrival date; a .msg with no record yet
                # (MDaemon adds one on next access) falls back to the file time.
                arrival=float(rec.date) if rec else st.st_mtime, mtime=st.st_mtime,
                flags=flags_from_bits(rec.flags) if rec else frozenset(),
                identity=f"{st.st_ino}:{st.st_size}:{rec.uid if rec else 0}",
                extra={"uid": rec.uid if rec else None},
            )

    def _path(self, message: StoredMessage) -> Path:
        if "/" in message.key or "\\" in message.key or message.key in (".", ".."):
            raise StoreError(f"unsafe message name {message.key!r}")
        path = self.folder_dir(message.account, message.folder) / message.key
        if not inside(self.root, path):
            raise StoreError(f"{path} leaves the store")
        return path

    def read(self, message: StoredMessage) -> bytes:
        fd = os.open(self._path(message), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def read_head(self, message: StoredMessage, limit: int = 65536) -> bytes:
        fd = os.open(self._path(message), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            return fh.read(limit)

    def recheck(self, message: StoredMessage) -> StoredMessage | None:
        fdir = self.folder_dir(message.account, message.folder)
        try:
            st = os.lstat(self._path(message))
            records = self._mrk_cache.get(fdir)
            if records is None:
                mrk = self.read_mrk(fdir)
                records = self._mrk_cache[fdir] = {r.filename.lower(): r for r in mrk.records} if mrk else {}
        except (OSError, StoreError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        rec = records.get(message.key.lower())
        identity = f"{st.st_ino}:{st.st_size}:{rec.uid if rec else 0}"
        if message.identity and identity != message.identity:
            return None
        return StoredMessage(account=message.account, folder=message.folder, key=message.key, size=st.st_size,
                             arrival=float(rec.date) if rec else st.st_mtime, mtime=st.st_mtime,
                             flags=flags_from_bits(rec.flags) if rec else frozenset(), identity=identity,
                             extra={"uid": rec.uid if rec else None})

    @staticmethod
    def order_key(message: StoredMessage) -> int:
        """Inode number (see MaildirStore.order_key)."""
        return identity_field(message.identity, 0)

    def begin_batch(self) -> None:
        """Forget cached IMAP.MRK contents: the next recheck reads them again."""
        self._mrk_cache.clear()

    # -- changes ------------------------------------------------------------------------------
    def delete(self, messages: list[StoredMessage]) -> list[ActionResult]:
        results: list[ActionResult] = []
        for fdir, group in _by_folder(self, messages).items():
            try:
                with self.folder_lock(fdir):
                    self.read_mrk(fdir)  # refuse before removing anything if the index is unreadable
                    removed = set()
                    group = sorted(group, key=self.order_key)
                    paths = [str(self._path(message)) for message in group]
                    for message, error in zip(group, unlink_many(paths), strict=True):
                        if isinstance(error, FileNotFoundError):
                            results.append(ActionResult(message, False, "gone"))
                        elif error is not None:
                            results.append(ActionResult(message, False, f"delete failed: {error}"))
                        else:
                            removed.add(message.key.lower())
                            results.append(ActionResult(message, True))
                    fsync_dir(fdir)
                    self._drop_records(fdir, removed)
            except StoreError as exc:
                results.extend(ActionResult(m, False, str(exc)) for m in group
                               if not any(r.message is m for r in results))
        return results

    def _drop_records(self, fdir: Path, names: set[str]) -> None:
        mrk = self.read_mrk(fdir)  # fresh: MDaemon may have written since we listed
        if mrk is None or not names:
            return
        kept = [r for r in mrk.records if r.filename.lower() not in names]
        if len(kept) != len(mrk.records):
            mrk.records = kept
            self.write_mrk(fdir, mrk)

    def reconcile(self, account: str, folder: str) -> None:
        """After a killed run: drop the IMAP.MRK records whose .msg file no longer exists."""
        fdir = self.folder_dir(account, folder)
        with contextlib.suppress(StoreError), self.folder_lock(fdir):
            mrk = self.read_mrk(fdir)
            if mrk is None:
                return
            gone = {r.filename.lower() for r in mrk.records if not (fdir / r.filename).exists()}
            self._drop_records(fdir, gone)

    def ensure_folder(self, account: str, folder: str) -> Path:
        fdir = self.checked_folder_dir(account, folder)
        fdir.mkdir(parents=True, exist_ok=True)
        return fdir

    def _free_name(self, fdir: Path, wanted: str) -> str:
        if len(wanted) <= _MAX_NAME and not (fdir / wanted).exists():
            return wanted
        n = int(time.time() * 1000) % 10**11
        while True:
            name = f"md50{n:011d}.msg"  # MDaemon's md<precedence><number>.msg pattern
            if not (fdir / name).exists():
                return name
            n += 1

    def move(self, messages: list[StoredMessage], dest_folder: str) -> list[ActionResult]:
        results: list[ActionResult] = []
        for fdir, group in _by_folder(self, messages).items():
            try:
                dest = self.ensure_folder(group[0].account, dest_folder)
                with self.folder_lock(fdir), self.folder_lock(dest):
                    src_mrk = self.read_mrk(fdir)
                    dest_mrk = self.read_mrk(dest) or Mrk.new()
                    by_name = {r.filename.lower(): r for r in src_mrk.records} if src_mrk else {}
                    moved = set()
                    for message in group:
                        new_name = self._free_name(dest, message.key)
                        try:
                            os.rename(self._path(message), dest / new_name)
                        except FileNotFoundError:
                            results.append(ActionResult(message, False, "gone"))
                            continue
                        except OSError as exc:
                            results.append(ActionResult(message, False, f"move failed: {exc}"))
                            continue
                        old = by_name.get(message.key.lower())
                        dest_mrk.records.append(MrkRecord(
                            new_name, old.flags if old else bits_from_flags(message.flags), dest_mrk.uid_next,
                            message.size, int(old.date if old else (message.arrival or time.time()))))
                        dest_mrk.uid_next += 1
                        moved.add(message.key.lower())
                        results.append(ActionResult(message, True, new_key=new_name))
                    fsync_dir(dest)
                    fsync_dir(fdir)
                    if moved:
                        self.write_mrk(dest, dest_mrk)
                    self._drop_records(fdir, moved)
            except StoreError as exc:
                results.extend(ActionResult(m, False, str(exc)) for m in group
                               if not any(r.message is m for r in results))
        return results

    def add(self, account: str, folder: str, data: bytes, flags: frozenset[str], arrival: float | None) -> str:
        fdir = self.ensure_folder(account, folder)
        with self.folder_lock(fdir):
            name = self._free_name(fdir, "")
            tmp = fdir / (name + ".mailwarden-tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if arrival is not None:
                os.utime(tmp, (arrival, arrival))
            os.rename(tmp, fdir / name)
            fsync_dir(fdir)
            mrk = self.read_mrk(fdir) or Mrk.new()
            mrk.records.append(MrkRecord(name, bits_from_flags(flags), mrk.uid_next, len(data),
                                         int(arrival if arrival is not None else time.time())))
            mrk.uid_next += 1
            self.write_mrk(fdir, mrk)
        return name

    def last_activity(self, account: str) -> float | None:
        """Newest IMAP.MRK / HIWATER.MRK change (MDaemon rewrites them when a client works on a folder)."""
        return newest_mtime(self.folder_dir(account, folder) / name for folder in self.folders(account)
                            for name in (MRK_NAME, "HIWATER.MRK", "hiwater.mrk"))


def _our_stale_lock(path: Path) -> bool:
    """A lock file written by a mailwarden process on this host that no longer runs."""
    try:
        words = path.read_bytes()[:200].decode("ascii", "replace").split()
    except OSError:
        return False
    if len(words) != 3 or words[0] != "mailwarden" or words[1] != socket.gethostname() or not words[2].isdigit():
        return False
    return not pid_alive(int(words[2]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _by_folder(store: MDaemonStore, messages: list[StoredMessage]) -> dict[Path, list[StoredMessage]]:
    groups: dict[Path, list[StoredMessage]] = {}
    for m in messages:
        groups.setdefault(store.folder_dir(m.account, m.folder), []).append(m)
    return groups
