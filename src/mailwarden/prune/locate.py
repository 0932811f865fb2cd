"""Turn ``STORE`` (a path or an ``imap://`` URL) into a ``MailStore``, detecting the type."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailwarden.errors import ConfigError, InputError
from mailwarden.prune.stores.base import MailStore

STORE_TYPES = ("auto", "maildir", "mbox", "mdaemon", "imap")


@dataclass
class ImapLogin:
    """How to log in to the accounts of an ``imap://`` store."""

    users: list[str] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    password: str | None = None          # one password for every user (or the master password)
    master_user: str | None = None       # Dovecot master user: log in as "user*master"
    master_separator: str = "*"


def read_user_list(path: Path) -> tuple[list[str], dict[str, str]]:
    """``user`` or ``user<TAB>password`` per line; ``#`` comments. The file should be mode 600."""
    users, passwords = [], {}
    try:
        with open(path, encoding="utf-8") as fh:
            for n, raw in enumerate(fh, 1):
                if len(raw) > 4096:
                    raise ConfigError(f"{path}:{n}: line too long")
                line = raw.rstrip("\r\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                user, _, password = line.partition("\t")
                users.append(user.strip())
                if password:
                    passwords[user.strip()] = password
    except OSError as exc:
        raise ConfigError(f"cannot read user list {path}: {exc}") from None
    return users, passwords


def detect(path: Path) -> str:
    """Guess the store type of a local path."""
    from mailwarden.prune.stores.maildir import is_maildir
    from mailwarden.prune.stores.mdaemon import _has_mailbox_content

    if path.is_file():
        return "mbox"
    if path.exists() and not path.is_dir():
        raise InputError(f"store {path} is not a regular file or directory")
    if not path.is_dir():
        raise InputError(f"store {path} does not exist; hint: give the path of a Maildir, an mbox file "
                         "or dir, an MDaemon Users dir, or an imap://user@host URL")
    if is_maildir(path) or _any_below(path, is_maildir):
        return "maildir"
    if _has_mailbox_content(path) or _any_below(path, _has_mailbox_content, depth=2):
        return "mdaemon"
    if any(_looks_like_mbox(p) for p in path.iterdir() if p.is_file()):
        return "mbox"
    raise InputError(f"cannot tell what kind of store {path} is (no Maildir cur/new/tmp, no MDaemon *.msg, "
                     "no mbox 'From ' file found); hint: give --store-type maildir|mbox|mdaemon")


def _looks_like_mbox(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


def _any_below(path: Path, test, depth: int = 3) -> bool:
    if depth == 0:
        return False
    try:
        children = [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return False
    return any(test(c) or _any_below(c, test, depth - 1) for c in children[:200])


def open_store(spec: str, store_type: str = "auto", *, imap: ImapLogin | None = None,
               mdaemon_lock_name: str | None = None, mbox_lock_timeout: float = 30.0) -> MailStore:
    if store_type not in STORE_TYPES:
        raise ConfigError(f"unknown store type {store_type!r}; use one of {', '.join(STORE_TYPES)}")
    if spec.startswith(("imap://", "imaps://")) or store_type == "imap":
        from mailwarden.prune.stores.imap import ImapStore

        url = urlsplit(spec)
        if url.scheme not in ("imap", "imaps") or not url.hostname:
            raise ConfigError(f"not an IMAP URL: {spec!r} (imap://user@host:143 or imaps://host)")
        login = imap or ImapLogin()
        users = list(login.users)
        passwords = dict(login.passwords)
        if url.username:
            user = unquote(url.username)
            users.insert(0, user)
            if url.password:
                passwords[user] = unquote(url.password)
        if not users:
            raise ConfigError("no IMAP account: give imap://USER@host, --user or --user-list")
        port = url.port or (993 if url.scheme == "imaps" else 143)
        return ImapStore(url.hostname, port, ssl=url.scheme == "imaps", users=users, passwords=passwords,
                         password=login.password or os.environ.get("MAILWARDEN_IMAP_PASSWORD"),
                         master_user=login.master_user, master_separator=login.master_separator)
    path = Path(spec)
    kind = detect(path) if store_type == "auto" else store_type
    if kind == "maildir":
        from mailwarden.prune.stores.maildir import MaildirStore

        return MaildirStore(path)
    if kind == "mdaemon":
        from mailwarden.prune.stores.mdaemon import DEFAULT_LOCK_NAME, MDaemonStore

        return MDaemonStore(path, lock_name=mdaemon_lock_name or DEFAULT_LOCK_NAME)
    from mailwarden.prune.stores.mbox import MboxStore

    return MboxStore(path, lock_timeout=mbox_lock_timeout)
