"""mbox files (``/var/mail/<user>`` or one file) with dotlock + fcntl locking and a safe rewrite.

Locking: ``<mbox>.lock`` dotlock (made with a temp file + ``link()``, safe on NFS), then an fcntl
write lock on the mbox, the order Dovecot (``mbox_write_locks = dotlock fcntl``) and procmail
use. We never break another program's lock: after ``lock_timeout`` seconds we give up with a
clear error. A rewrite copies every byte we keep to a temp file in the same directory, fsyncs
it, checks the mbox did not change meanwhile (size, mtime, inode), renames it over the mbox
and fsyncs the directory. Dovecot's pseudo-message (``X-IMAP``, "FOLDER INTERNAL DATA") is
never selected.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import stat
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

from mailwarden.errors import InputError, StoreError
from mailwarden.prune.stores.base import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    INBOX,
    SEEN,
    ActionResult,
    StoredMessage,
    fsync_dir,
)

_CHUNK = 1 << 16          # line reads are capped: a hostile 1 GB "line" is read in pieces
_HEAD_LIMIT = 64 * 1024   # flags and the pseudo-message marker are looked for in the head only
_X_STATUS = {ord("A"): ANSWERED, ord("F"): FLAGGED, ord("T"): DRAFT, ord("D"): DELETED}


def _from_line_date(line: bytes) -> float | None:
    """``From sender Tue Jan  1 10:00:00 2019`` -> epoch (UTC; the line has no zone)."""
    parts = line.split()
    if len(parts) < 7:
        return None
    text = " ".join(p.decode("ascii", "replace") for p in parts[2:7])
    try:
        parsed = time.strptime(text, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    import calendar

    return float(calendar.timegm(parsed))


def _flags_from_head(head: bytes) -> tuple[frozenset[str], bool]:
    flags: set[str] = set()
    pseudo = False
    for raw in head.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            break
        low = line[:10].lower()
        if low.startswith(b"status:") and b"R" in line[7:]:
            flags.add(SEEN)
        elif low.startswith(b"x-status:"):
            flags.update(_X_STATUS[c] for c in line[9:] if c in _X_STATUS)
        elif low.startswith(b"x-imap:"):
            pseudo = True
    return frozenset(flags), pseudo


class _Record:
    __slots__ = ("offset", "length", "from_line", "head", "sha")

    def __init__(self, offset: int, from_line: bytes):
        self.offset = offset
        self.length = 0
        self.from_line = from_line
        self.head = bytearray()
        self.sha = hashlib.sha256()


def scan(fh) -> Iterator[_Record]:
    """Split an mbox into records at ``From `` lines that follow a blank line (or start the file)."""
    fh.seek(0)
    offset = 0
    record: _Record | None = None
    prev_blank = True
    at_line_start = True
    while True:
        line = fh.readline(_CHUNK)
        if not line:
            break
        starts = at_line_start and line.startswith(b"From ") and prev_blank
        if starts:
            if record is not None:
                yield record
            record = _Record(offset, line)
        elif record is not None:
            if len(record.head) < _HEAD_LIMIT:
                record.head += line[: _HEAD_LIMIT - len(record.head)]
        if record is not None:
            record.length += len(line)
            record.sha.update(line)
        offset += len(line)
        ends = line.endswith(b"\n")
        if ends:
            prev_blank = line in (b"\n", b"\r\n") if at_line_start else False
        at_line_start = ends
    if record is not None:
        yield record


class MboxStore:
    """See `MailStore`. Root = one mbox file (one account) or a directory of them (/var/mail)."""

    name = "mbox"

    def __init__(self, root: Path, lock_timeout: float = 30.0):
        self.root = Path(root).absolute()
        self.store_id = f"mbox:{self.root.resolve()}"
        self.lock_timeout = lock_timeout
        self._files: dict[str, Path] = {}
        self.warnings: list[str] = []
        if self.root.is_file():
            try:
                with open(self.root, "rb") as fh:
                    start = fh.read(5)
            except OSError as exc:
                raise InputError(f"cannot read mbox {self.root}: {exc.strerror or exc}") from None
            if start == b"":
                self.warnings.append(f"{self.root}: empty mbox, nothing to prune")
            elif start != b"From ":
                raise InputError(f"{self.root} is not an mbox (it does not start with a 'From ' line); "
                                 "hint: give a Maildir, an MDaemon Users dir or an mbox file")
            self._files[self.root.name] = self.root
        elif self.root.is_dir():
            for p in sorted(self.root.iterdir()):
                if p.is_file() and not p.is_symlink() and not p.name.endswith(".lock") \
                        and not p.name.startswith("."):
                    with open(p, "rb") as fh:
                        start = fh.read(5)
                    if start in (b"From ", b""):
                        self._files[p.name] = p
        else:
            raise InputError(f"store {self.root} does not exist or is not a regular file or directory")
        self._index: dict[str, tuple[tuple, dict[str, list[int]]]] = {}

    def accounts(self) -> Iterator[str]:
        yield from self._files

    def _file(self, account: str) -> Path:
        try:
            return self._files[account]
        except KeyError:
            raise StoreError(f"no mbox {account!r} in {self.root}") from None

    def folders(self, account: str) -> Iterator[str]:
        self._file(account)
        yield INBOX

    @staticmethod
    def _stamp(path: Path) -> tuple:
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def messages(self, account: str, folder: str) -> Iterator[StoredMessage]:
        if folder != INBOX:
            return
        path = self._file(account)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            for rec in scan(fh):
                flags, pseudo = _flags_from_head(bytes(rec.head))
                if pseudo:
                    continue  # Dovecot/c-client folder data: never mail, never pruned
                yield StoredMessage(
                    account=account, folder=folder, key=str(rec.offset), size=rec.length - len(rec.from_line),
                    arrival=_from_line_date(rec.from_line), mtime=None, flags=flags,
                    identity=rec.sha.hexdigest(), extra={"from_line": rec.from_line.decode("latin-1")},
                )

    def _offsets(self, account: str) -> dict[str, list[int]]:
        """identity -> offsets of the current file (rescanned when the file changed)."""
        path = self._file(account)
        stamp = self._stamp(path)
        cached = self._index.get(account)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        index: dict[str, list[int]] = {}
        with open(path, "rb") as fh:
            for rec in scan(fh):
                index.setdefault(rec.sha.hexdigest(), []).append(rec.offset)
        self._index[account] = (stamp, index)
        return index

    def _record_at(self, fh, offset: int) -> _Record | None:
        fh.seek(offset)
        for rec in _scan_from(fh, offset):
            return rec
        return None

    def recheck(self, message: StoredMessage) -> StoredMessage | None:
        try:
            offsets = self._offsets(message.account).get(message.identity)
        except OSError:
            return None
        if not offsets:
            return None
        offset = int(message.key) if message.key.isdigit() and int(message.key) in offsets else offsets[0]
        extra = message.extra
        if not extra.get("from_line"):
            # a message rebuilt from the journal: read its From_ line (the envelope a restore needs)
            try:
                with open(self._file(message.account), "rb") as fh:
                    fh.seek(offset)
                    extra = {"from_line": fh.readline(_CHUNK).decode("latin-1")}
            except OSError:
                return None
        return StoredMessage(account=message.account, folder=message.folder, key=str(offset),
                             size=message.size, arrival=message.arrival, mtime=None, flags=message.flags,
                             identity=message.identity, extra=extra)

    def read(self, message: StoredMessage) -> bytes:
        current = self.recheck(message)
        if current is None:
            raise StoreError("message changed or is gone")
        with open(self._file(message.account), "rb") as fh:
            rec = self._record_at(fh, int(current.key))
            if rec is None or rec.sha.hexdigest() != message.identity:
                raise StoreError("message changed while reading")
            fh.seek(rec.offset + len(rec.from_line))
            return fh.read(rec.length - len(rec.from_line))

    def read_head(self, message: StoredMessage, limit: int = 65536) -> bytes:
        return self.read(message)[:limit]

    # -- locking ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self, path: Path):
        """dotlock, then fcntl; waits up to ``lock_timeout`` and never breaks a lock it did not take."""
        dotlock = path.with_name(path.name + ".lock")
        tmp = path.with_name(f".{path.name}.lock.{socket.gethostname()}.{os.getpid()}")
        deadline = time.monotonic() + self.lock_timeout
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        try:
            while True:
                try:
                    os.link(tmp, dotlock)
                    break
                except FileExistsError:
                    if _stale_dotlock(dotlock):
                        # its pid is dead on this host (Dovecot's file_dotlock does the same check)
                        dotlock.unlink(missing_ok=True)
                        continue
                    if time.monotonic() > deadline:
                        raise StoreError(f"{path} is locked by another program ({dotlock} exists); "
                                         "nothing changed, try again later") from None
                    time.sleep(0.2)
        finally:
            tmp.unlink(missing_ok=True)
        try:
            mfd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
            try:
                while True:
                    try:
                        fcntl.lockf(mfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                            raise StoreError(f"{path}: cannot get the fcntl lock; nothing changed") from None
                        time.sleep(0.2)
                yield
            finally:
                os.close(mfd)  # closing drops the fcntl lock
        finally:
            dotlock.unlink(missing_ok=True)

    def lock(self):
        return contextlib.nullcontext()

    # -- changes ------------------------------------------------------------------------------
    def delete(self, messages: list[StoredMessage]) -> list[ActionResult]:
        by_account: dict[str, list[StoredMessage]] = {}
        for m in messages:
            by_account.setdefault(m.account, []).append(m)
        results: list[ActionResult] = []
        for account, group in by_account.items():
            try:
                results.extend(self._rewrite_without(account, group))
            except (StoreError, OSError) as exc:
                results.extend(ActionResult(m, False, str(exc)) for m in group)
        return results

    def _rewrite_without(self, account: str, group: list[StoredMessage]) -> list[ActionResult]:
        path = self._file(account)
        results = []
        with self.write_lock(path):
            before = self._stamp(path)
            offsets = self._offsets(account)
            ranges: list[tuple[int, int]] = []
            with open(path, "rb") as src:
                for m in group:
                    candidates = offsets.get(m.identity) or []
                    rec = None
                    for off in candidates:
                        if off in {r[0] for r in ranges}:
                            continue
                        rec = self._record_at(src, off)
                        if rec is not None and rec.sha.hexdigest() == m.identity:
                            break
                        rec = None
                    if rec is None:
                        results.append(ActionResult(m, False, "gone"))
                        continue
                    ranges.append((rec.offset, rec.length))
                    results.append(ActionResult(m, True))
                if not ranges:
                    return results
                ranges.sort()
                tmp = path.with_name(f".{path.name}.mailwarden-tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                try:
                    with os.fdopen(fd, "wb") as out:
                        pos = 0
                        for off, length in ranges + [(before[1], 0)]:
                            _copy(src, out, pos, off - pos)
                            pos = off + length
                        out.flush()
                        os.fsync(out.fileno())
                    st = os.stat(path)
                    os.chmod(tmp, stat.S_IMODE(st.st_mode))
                    with contextlib.suppress(PermissionError):
                        os.chown(tmp, st.st_uid, st.st_gid)
                    if self._stamp(path) != before:
                        raise StoreError(f"{path} changed while we rewrote it (someone ignored the lock); "
                                         "nothing changed")
                    os.replace(tmp, path)
                    fsync_dir(path.parent)
                finally:
                    tmp.unlink(missing_ok=True)
        # our own rewrite: shift the cached offsets instead of rescanning the file
        starts = [off for off, _ in ranges]
        removed_before = [0]
        for _, length in ranges:
            removed_before.append(removed_before[-1] + length)
        gone = set(starts)
        index: dict[str, list[int]] = {}
        for digest, offs in offsets.items():
            kept = [o - removed_before[bisect.bisect_right(starts, o)] for o in offs if o not in gone]
            if kept:
                index[digest] = kept
        self._index[account] = (self._stamp(path), index)
        return results

    def move(self, messages: list[StoredMessage], dest_folder: str) -> list[ActionResult]:
        return [ActionResult(m, False, "an mbox store has one folder per file; use --archive") for m in messages]

    def add(self, account: str, folder: str, data: bytes, flags: frozenset[str], arrival: float | None,
            envelope: str | None = None) -> str:
        path = self._file(account)
        when = time.asctime(time.gmtime(arrival if arrival is not None else time.time()))
        from_line = (envelope or f"From MAILER-DAEMON {when}\n").encode("latin-1")
        with self.write_lock(path):
            size = os.path.getsize(path)
            with open(path, "rb+") as fh:
                prefix = b""
                if size:
                    fh.seek(max(0, size - 2))
                    tail = fh.read()
                    prefix = b"" if tail.endswith(b"\n\n") else (b"\n" if tail.endswith(b"\n") else b"\n\n")
                fh.seek(0, os.SEEK_END)
                fh.write(prefix + from_line + data)
                fh.flush()
                os.fsync(fh.fileno())
        return str(size + len(prefix))

    def contains_copy(self, account: str, folder: str, sha256: str) -> bool:
        return any(hashlib.sha256(self.read(m)).hexdigest() == sha256 for m in self.messages(account, folder))

    def last_activity(self, account: str) -> float | None:
        """The mbox's atime when newer than its mtime (a reader opened it), else None."""
        st = os.stat(self._file(account))
        return st.st_atime if st.st_atime > st.st_mtime else None

    def close(self) -> None:
        pass


def _stale_dotlock(path: Path) -> bool:
    """A dotlock whose content is the pid of a process that is not running here."""
    from mailwarden.prune.stores.mdaemon import pid_alive

    try:
        text = path.read_bytes()[:64].decode("ascii", "replace").strip()
    except OSError:
        return False
    return text.isdigit() and 0 < int(text) < 2**22 and not pid_alive(int(text))


def _scan_from(fh, offset: int) -> Iterator[_Record]:
    """Records starting exactly at ``offset`` (which must be a From_ line)."""
    fh.seek(offset)
    first = fh.readline(_CHUNK)
    if not first.startswith(b"From "):
        return
    rec = _Record(offset, first)
    rec.length = len(first)
    rec.sha.update(first)
    prev_blank = False
    at_line_start = first.endswith(b"\n")
    while True:
        line = fh.readline(_CHUNK)
        if not line or (at_line_start and prev_blank and line.startswith(b"From ")):
            break
        rec.length += len(line)
        rec.sha.update(line)
        ends = line.endswith(b"\n")
        if ends:
            prev_blank = line in (b"\n", b"\r\n") if at_line_start else False
        at_line_start = ends
    yield rec


def _copy(src, out, start: int, length: int) -> None:
    src.seek(start)
    while length > 0:
        chunk = src.read(min(length, 1 << 20))
        if not chunk:
            raise StoreError("mbox shrank while we copied it; nothing changed")
        out.write(chunk)
        length -= len(chunk)
