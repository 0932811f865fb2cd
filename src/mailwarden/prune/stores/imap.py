"""A live IMAP server as a store, through imapclient (tested against Dovecot 2.3).

Rules that keep other clients' mail safe (docs/prune.md, "IMAP"):
- everything is addressed by UID, and UIDVALIDITY is checked before every change;
- removal is ``UID STORE +FLAGS.SILENT (\\Deleted)`` then ``UID EXPUNGE <our uids>`` (UIDPLUS,
  RFC 4315); a server without UIDPLUS is refused, because a plain EXPUNGE would also remove
  messages other clients marked \\Deleted;
- a move is ``MOVE`` (RFC 6851) when advertised, else ``UID COPY`` + the scoped removal above;
- many accounts: a list of users with their passwords, or one Dovecot master user
  (log in as ``user*master`` with the master password).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ssl as ssl_mod
from collections.abc import Iterator

from mailwarden.errors import ConfigError, ServerError, StoreError
from mailwarden.prune.stores.base import (
    DELETED,
    INBOX,
    RECENT,
    SEP,
    ActionResult,
    ServerUnreachable,
    StoredMessage,
)

_FETCH_CHUNK = 1000
_TIMEOUT = 60


def _uid_chunks(uids: list[int], size: int = _FETCH_CHUNK):
    for i in range(0, len(uids), size):
        yield uids[i:i + size]


def _flag_names(raw) -> frozenset[str]:
    return frozenset(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in raw)


class ImapStore:
    """See `MailStore`. Keys are ``"<uidvalidity>:<uid>"``; folder names use ``/`` whatever the server's delimiter."""

    name = "imap"

    def __init__(self, host: str, port: int, *, ssl: bool = False, users: list[str],
                 passwords: dict[str, str] | None = None, password: str | None = None,
                 master_user: str | None = None, master_separator: str = "*"):
        self.host, self.port, self.ssl = host, port, ssl
        self.users = list(dict.fromkeys(users))
        self.passwords = dict(passwords or {})
        self.password = password
        self.master_user = master_user
        self.master_separator = master_separator
        self.store_id = f"imap:{host}:{port}"
        self._client = None
        self._account: str | None = None
        self._selected: tuple[str, bool] | None = None
        self._uidvalidity: int | None = None
        self._names: dict[str, str] = {}   # canonical -> server name, for the current account
        self._delimiter = "/"

    # -- connection ---------------------------------------------------------------------------
    def _connect(self, account: str):
        if self._account == account and self._client is not None:
            return self._client
        self._disconnect()
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        if self.master_user:
            login = f"{account}{self.master_separator}{self.master_user}"
            password = self.password
        else:
            login = account
            password = self.passwords.get(account, self.password)
        if password is None:
            raise ConfigError(f"no IMAP password for {account} (URL, --user-list, --password-file or "
                              "$MAILWARDEN_IMAP_PASSWORD)")
        try:
            client = IMAPClient(self.host, port=self.port, ssl=self.ssl, timeout=_TIMEOUT,
                                ssl_context=ssl_mod.create_default_context() if self.ssl else None)
            client.normalise_times = False  # keep INTERNALDATE's zone: we compare epochs
            client.login(login, password)
        except LoginError:
            raise ServerError(f"IMAP login failed for {account} on {self.host}:{self.port}") from None
        except (OSError, IMAPClientError) as exc:
            raise ServerUnreachable(f"cannot reach IMAP server {self.host}:{self.port}: {exc}") from None
        self._client, self._account = client, account
        self._selected = None
        self._names = {}
        return client

    def _disconnect(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.logout()
        self._client = self._account = None
        self._selected = None

    def _call(self, what: str, fn, *args, **kwargs):
        from imapclient.exceptions import IMAPClientError

        try:
            return fn(*args, **kwargs)
        except (IMAPClientError, OSError) as exc:
            self._disconnect()
            raise ServerError(f"IMAP {what} failed: {exc}") from None

    # -- folders ------------------------------------------------------------------------------
    def accounts(self) -> Iterator[str]:
        yield from self.users

    def ensure_account(self, account: str) -> None:
        if account not in self.users:
            self.users.append(account)

    def folders(self, account: str) -> Iterator[str]:
        client = self._connect(account)
        names = {}
        for flags, delimiter, name in self._call("LIST", client.list_folders):
            flags = {f.lower() if isinstance(f, bytes) else str(f).lower().encode() for f in flags}
            if b"\\noselect" in flags or b"\\nonexistent" in flags:
                continue
            if isinstance(delimiter, bytes):
                delimiter = delimiter.decode()
            self._delimiter = delimiter or "/"
            canon = INBOX if name.upper() == INBOX else (name.replace(delimiter, SEP) if delimiter else name)
            names[canon] = name
        self._names = names
        yield from sorted(names, key=lambda n: (n != INBOX, n))

    def _server_name(self, account: str, folder: str) -> str:
        self._connect(account)
        if folder in self._names:
            return self._names[folder]
        return folder if folder == INBOX else folder.replace(SEP, self._delimiter)

    def _select(self, account: str, folder: str, write: bool = False) -> int:
        client = self._connect(account)
        if self._selected != (folder, write):
            info = self._call("SELECT", client.select_folder, self._server_name(account, folder), readonly=not write)
            self._uidvalidity = int(info.get(b"UIDVALIDITY", 0))
            self._selected = (folder, write)
        assert self._uidvalidity is not None
        return self._uidvalidity

    # -- listing ------------------------------------------------------------------------------
    def messages(self, account: str, folder: str) -> Iterator[StoredMessage]:
        validity = self._select(account, folder)
        client = self._client
        uids = sorted(self._call("UID SEARCH", client.search, ["ALL"]))
        for chunk in _uid_chunks(uids):
            data = self._call("FETCH", client.fetch, chunk, ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
            for uid in chunk:
                item = data.get(uid)
                if item is None:
                    continue  # expunged by another client meanwhile
                yield self._message(account, folder, validity, uid, item)
            # another generator may have selected another folder between chunks
            validity_now = self._select(account, folder)
            if validity_now != validity:
                raise StoreError(f"{account}/{folder}: UIDVALIDITY changed during the scan; folder left alone")

    @staticmethod
    def _message(account: str, folder: str, validity: int, uid: int, item: dict) -> StoredMessage:
        internal = item.get(b"INTERNALDATE")
        if isinstance(internal, dt.datetime) and internal.tzinfo is None:
            internal = internal.replace(tzinfo=dt.UTC)
        arrival = internal.timestamp() if isinstance(internal, dt.datetime) else None
        size = int(item.get(b"RFC822.SIZE", 0))
        return StoredMessage(account=account, folder=folder, key=f"{validity}:{uid}", size=size,
                             arrival=arrival, mtime=None, flags=_flag_names(item.get(b"FLAGS", ())),
                             identity=f"{validity}:{uid}:{size}")

    @staticmethod
    def _uid(message: StoredMessage) -> tuple[int, int]:
        validity, _, uid = message.key.partition(":")
        return int(validity), int(uid)

    def _fetch_one(self, message: StoredMessage, what: str, key: bytes) -> bytes:
        validity, uid = self._uid(message)
        if self._select(message.account, message.folder) != validity:
            raise StoreError("UIDVALIDITY changed; message not read")
        data = self._call("FETCH", self._client.fetch, [uid], [what]).get(uid)
        if not data or key not in data:
            raise StoreError("message is gone")
        return bytes(data[key])

    def read(self, message: StoredMessage) -> bytes:
        return self._fetch_one(message, "BODY.PEEK[]", b"BODY[]")

    def read_head(self, message: StoredMessage, limit: int = 65536) -> bytes:
        return self._fetch_one(message, "BODY.PEEK[HEADER]", b"BODY[HEADER]")[:limit]

    def recheck(self, message: StoredMessage) -> StoredMessage | None:
        validity, uid = self._uid(message)
        try:
            if self._select(message.account, message.folder) != validity:
                return None
            item = self._call("FETCH", self._client.fetch, [uid],
                              ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]).get(uid)
        except (ServerError, StoreError):
            return None
        if item is None:
            return None
        current = self._message(message.account, message.folder, validity, uid, item)
        if message.identity and current.identity != message.identity:
            return None
        return current

    # -- changes ------------------------------------------------------------------------------
    def _scoped_remove(self, uids: list[int]) -> None:
        client = self._client
        if not client.has_capability("UIDPLUS"):
            raise StoreError("the server lacks UIDPLUS (UID EXPUNGE); refusing, because a plain "
                             "EXPUNGE would also remove other clients' \\Deleted messages")
        self._call("UID STORE", client.add_flags, uids, [DELETED], silent=True)
        self._call("UID EXPUNGE", client.uid_expunge, uids)

    def _group(self, messages: list[StoredMessage]) -> dict[tuple[str, str], list[StoredMessage]]:
        groups: dict[tuple[str, str], list[StoredMessage]] = {}
        for m in messages:
            groups.setdefault((m.account, m.folder), []).append(m)
        return groups

    def _still_there(self, uids: list[int]) -> set[int]:
        found = set()
        for chunk in _uid_chunks(uids):
            found |= set(self._call("UID SEARCH", self._client.search, ["UID", ",".join(map(str, chunk))]))
        return found

    def delete(self, messages: list[StoredMessage]) -> list[ActionResult]:
        results = []
        for (account, folder), group in self._group(messages).items():
            try:
                validity = self._select(account, folder, write=True)
                ours = [m for m in group if self._uid(m)[0] == validity]
                results += [ActionResult(m, False, "UIDVALIDITY changed") for m in group if m not in ours]
                uids = [self._uid(m)[1] for m in ours]
                for chunk in _uid_chunks(uids, 500):
                    self._scoped_remove(chunk)
                left = self._still_there(uids)
                results += [ActionResult(m, self._uid(m)[1] not in left,
                                         "still present after UID EXPUNGE" if self._uid(m)[1] in left else "")
                            for m in ours]
            except (StoreError, ServerError) as exc:
                results += [ActionResult(m, False, str(exc)) for m in group if not any(r.message is m for r in results)]
        return results

    def move(self, messages: list[StoredMessage], dest_folder: str) -> list[ActionResult]:
        results = []
        for (account, folder), group in self._group(messages).items():
            try:
                dest = self._ensure_folder(account, dest_folder)
                validity = self._select(account, folder, write=True)
                ours = [m for m in group if self._uid(m)[0] == validity]
                results += [ActionResult(m, False, "UIDVALIDITY changed") for m in group if m not in ours]
                uids = [self._uid(m)[1] for m in ours]
                client = self._client
                for chunk in _uid_chunks(uids, 500):
                    if client.has_capability("MOVE"):
                        self._call("UID MOVE", client.move, chunk, dest)
                    else:
                        # COPY must succeed before anything is flagged: a failed COPY raises here
                        self._call("UID COPY", client.copy, chunk, dest)
                        self._scoped_remove(chunk)
                left = self._still_there(uids)
                results += [ActionResult(m, self._uid(m)[1] not in left,
                                         "still in the source folder" if self._uid(m)[1] in left else "")
                            for m in ours]
            except (StoreError, ServerError) as exc:
                results += [ActionResult(m, False, str(exc)) for m in group if not any(r.message is m for r in results)]
        return results

    def _ensure_folder(self, account: str, folder: str) -> str:
        client = self._connect(account)
        if not self._names:
            list(self.folders(account))
        name = self._server_name(account, folder)
        if folder not in self._names:
            if not self._call("LIST", client.folder_exists, name):
                self._call("CREATE", client.create_folder, name)
            self._names[folder] = name
        return name

    def add(self, account: str, folder: str, data: bytes, flags: frozenset[str], arrival: float | None) -> str:
        name = self._ensure_folder(account, folder)
        when = dt.datetime.fromtimestamp(arrival, dt.UTC) if arrival is not None else None
        keep = [f for f in flags if f != RECENT]
        self._selected = None
        result = self._call("APPEND", self._client.append, name, data, flags=keep, msg_time=when)
        return result.decode("ascii", "replace") if isinstance(result, bytes) else str(result)

    def contains_copy(self, account: str, folder: str, sha256: str) -> bool:
        return any(hashlib.sha256(self.read(m)).hexdigest() == sha256 for m in self.messages(account, folder))

    def last_activity(self, account: str) -> float | None:
        return None  # IMAP does not say when a user last logged in

    def lock(self):
        return contextlib.nullcontext()

    def close(self) -> None:
        self._disconnect()
