"""The ``MailStore`` contract every store implements, and the ``StoredMessage`` record it yields."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from mailwarden.errors import ServerError, StoreError

# IMAP system flags, the common vocabulary of every store's flags.
SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
RECENT = "\\Recent"

INBOX = "INBOX"
# Canonical folder separator in mailwarden: "Archive/2020" whatever the store writes on disk.
SEP = "/"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message as a store lists it: cheap to produce, enough to select it and find it again."""

    account: str
    folder: str            # canonical name: "INBOX", "Archive/2020"
    key: str               # store-specific locator (relative path, "uidvalidity:uid", mbox offset)
    size: int
    arrival: float | None  # the store's own date (Maildir mtime, From_ line, IMAP.MRK Date, INTERNALDATE)
    mtime: float | None = None
    flags: frozenset[str] = frozenset()
    identity: str = ""     # what must still match at action time (inode, UID, content hash)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def seen(self) -> bool:
        return SEEN in self.flags

    @property
    def flagged(self) -> bool:
        return FLAGGED in self.flags

    @property
    def deleted(self) -> bool:
        return DELETED in self.flags


@dataclass(slots=True)
class ActionResult:
    """What happened to one message in a batch action."""

    message: StoredMessage
    ok: bool
    reason: str = ""        # why it failed or was skipped
    new_key: str | None = None


@runtime_checkable
class MailStore(Protocol):
    """A mail store ``prune`` can list, read and change (see docs/prune.md)."""

    name: str               # "maildir", "mbox", "mdaemon", "imap"
    store_id: str           # stable id of this store (journal and lock are keyed by it)

    def accounts(self) -> Iterator[str]: ...
    def folders(self, account: str) -> Iterator[str]: ...
    def messages(self, account: str, folder: str) -> Iterator[StoredMessage]: ...
    def read(self, message: StoredMessage) -> bytes: ...
    def read_head(self, message: StoredMessage, limit: int = 65536) -> bytes: ...
    def recheck(self, message: StoredMessage) -> StoredMessage | None:
        """The same message as it is now (its key may have changed), or None when it is gone."""
        ...
    def delete(self, messages: list[StoredMessage]) -> list[ActionResult]: ...
    def move(self, messages: list[StoredMessage], dest_folder: str) -> list[ActionResult]: ...
    def add(self, account: str, folder: str, data: bytes, flags: frozenset[str],
            arrival: float | None) -> str: ...
    def contains_copy(self, account: str, folder: str, sha256: str) -> bool:
        """True when ``folder`` holds a message with these exact bytes (restore and move resume)."""
        ...
    def last_activity(self, account: str) -> float | None: ...
    def lock(self) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (symlinks followed), so we never leave the store."""
    try:
        resolved = path.resolve(strict=False)
    except OSError:
        return False
    root_resolved = root.resolve()
    return resolved == root_resolved or root_resolved in resolved.parents


def is_plain_file(path: Path) -> bool:
    """A regular file that is not a symlink (a symlinked message may point out of the store)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode)


def fsync_dir(path: Path | str) -> None:
    """fsync a directory so that a rename or unlink inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.mailwarden-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is None else mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if mode is None and path.exists():
        st = path.stat()
        os.chmod(tmp, st.st_mode & 0o7777)
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except PermissionError:
            pass
    os.replace(tmp, path)
    fsync_dir(path.parent)


def check_folder_name(folder: str) -> str:
    """Reject folder names that could escape the store (``..``, empty parts, NULs)."""
    parts = folder.split(SEP)
    if not folder or any(p in ("", ".", "..") or "\x00" in p or "\\" in p for p in parts):
        raise StoreError(f"unsafe folder name: {folder!r}")
    return folder


# unlink() spends most of its time in the kernel freeing the inode and its blocks, which ext4 does
# after it has released the directory lock: a few threads overlap that work (about 2x faster on a
# 2-core VM, measured in bench/prune_vs_doveadm.py). More threads than this only add contention.
_UNLINK_THREADS = 4
_UNLINK_MIN_PARALLEL = 64   # below this a thread pool costs more than it saves
_unlink_pool: ThreadPoolExecutor | None = None


def unlink_many(paths: list[str]) -> list[OSError | None]:
    """Unlink every path (never following a symlink: unlink removes the link itself).

    Returns, in the same order, None for each path removed or the OSError it raised. The caller
    passes paths in the order it wants them removed (inode order); each thread takes one
    contiguous slice, so each still walks the disk in that order.
    """
    results: list[OSError | None] = [None] * len(paths)

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            try:
                os.unlink(paths[i])
            except OSError as exc:
                results[i] = exc

    if len(paths) < _UNLINK_MIN_PARALLEL:
        work(0, len(paths))
        return results
    global _unlink_pool
    if _unlink_pool is None:
        _unlink_pool = ThreadPoolExecutor(_UNLINK_THREADS, thread_name_prefix="mw-unlink")
    step = -(-len(paths) // _UNLINK_THREADS)
    futures = [_unlink_pool.submit(work, i, min(i + step, len(paths))) for i in range(0, len(paths), step)]
    for future in futures:
        future.result()  # work() catches OSError; anything else is a bug and propagates
    return results


def identity_field(identity: str, index: int) -> int:
    """One integer field of a ``a:b:c`` identity (the inode, for acting in inode order), 0 if absent."""
    try:
        return int(identity.split(":")[index])
    except (IndexError, ValueError):
        return 0


def newest_mtime(paths: Iterable[Path]) -> float | None:
    """The newest lstat mtime among the paths that exist (None if none does)."""
    newest = None
    for path in paths:
        with contextlib.suppress(OSError):
            mtime = os.lstat(path).st_mtime
            newest = mtime if newest is None else max(newest, mtime)
    return newest


class LocalStoreMixin:
    """What the file-per-message stores (Maildir, MDaemon) do the same way."""

    def checked_folder_dir(self, account: str, folder: str) -> Path:
        """The folder's directory, refused when it resolves outside the store root (symlinks)."""
        fdir = self.folder_dir(account, folder)
        if not inside(self.root, fdir):
            raise StoreError(f"folder {folder!r} leaves the store")
        return fdir

    def contains_copy(self, account: str, folder: str, sha256: str) -> bool:
        try:
            fdir = self.folder_dir(account, folder)
        except StoreError:
            return False
        if not fdir.is_dir():
            return False
        for message in self.messages(account, folder):
            with contextlib.suppress(OSError):
                if hashlib.sha256((fdir / message.key).read_bytes()).hexdigest() == sha256:
                    return True
        return False

    def lock(self):
        # Per-folder locks (MDaemon) are taken around each change; the store-wide one is the executor's.
        return contextlib.nullcontext()

    def close(self) -> None:
        pass


class ServerUnreachable(ServerError):
    """The server could not be reached at all (as opposed to refusing one login)."""
