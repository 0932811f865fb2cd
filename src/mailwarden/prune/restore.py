"""``mailwarden prune restore ARCHIVE``: put archived messages back where they came from.

Each part is verified again before anything is restored. A message whose exact bytes are already
in the target folder is not added twice, so a restore can be rerun after an interruption.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from mailwarden.errors import InputError, MailwardenError, StoreError
from mailwarden.prune.archive import MANIFEST, MANIFEST_VERSION, read_entry, read_manifest, verify
from mailwarden.prune.locate import STORE_TYPES, ImapLogin, open_store
from mailwarden.prune.stores.base import MailStore


def _archive_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.zip") if p.is_file() and not p.is_symlink())
            if not found:
                raise InputError(f"no archives found in {path} (no *.zip below it)")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif path.exists():
            raise InputError(f"{path} is not a regular file (give a zip archive or a directory of them)")
        else:
            raise InputError(f"no such archive: {path}")
    return out


def _header(path: Path) -> dict:
    """The manifest's first line: which store the archive came from (InputError when unusable)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(MANIFEST) as fh:
            line = fh.readline(1 << 20)
    except KeyError:
        raise InputError(f"{path}: the archive's manifest ({MANIFEST}) is missing; "
                         "not a mailwarden prune archive") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path} is not a mailwarden prune archive: {exc}") from None
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("mailwarden_manifest") != MANIFEST_VERSION:
        raise InputError(f"{path}: the archive's manifest ({MANIFEST}) is invalid; "
                         "not a mailwarden prune archive of a version this mailwarden reads")
    return header


def restore(paths: list[Path], *, to: str | None = None, store_type: str = "auto",
            imap: ImapLogin | None = None) -> dict:
    files = _archive_files(paths)
    stores: dict[str, MailStore] = {}
    hashes: dict[tuple[str, str, str], set[str]] = {}
    result = {"schema": 1, "archives": [str(p) for p in files], "restored": 0, "already_present": 0, "failed": 0,
              "errors": [], "folders": {}}
    try:
        for path in files:
            header = _header(path)
            target = to
            kind = store_type
            if target is None:
                store_id = str(header.get("store_id") or "")
                kind_recorded, _, location = store_id.partition(":")
                if kind_recorded not in STORE_TYPES or kind_recorded == "auto" or not location:
                    raise InputError(f"{path}: the archive's manifest is invalid (no usable store_id "
                                     f"{store_id!r}); give --to STORE to restore it")
                if kind_recorded == "imap":
                    raise InputError(f"{path}: came from IMAP; give --to imap://... to restore it")
                target, kind = location, kind_recorded
            if target not in stores:
                stores[target] = open_store(target, kind, imap=imap)
            store = stores[target]
            entries = list(read_manifest(path))
            try:
                verify(path, {e.entry: e.sha256 for e in entries})
            except StoreError as exc:
                result["failed"] += len(entries)
                result["errors"].append({"archive": str(path), "reason": str(exc)})
                continue
            ensure_account = getattr(store, "ensure_account", None)
            for entry in entries:
                if ensure_account is not None:
                    ensure_account(entry.account)
                key = (target, entry.account, entry.folder)
                if key not in hashes:
                    hashes[key] = _folder_hashes(store, entry.account, entry.folder)
                folder_key = f"{entry.account}/{entry.folder}"
                counts = result["folders"].setdefault(folder_key, {"restored": 0, "already_present": 0})
                if entry.sha256 in hashes[key]:
                    result["already_present"] += 1
                    counts["already_present"] += 1
                    continue
                try:
                    data = read_entry(path, entry.entry)
                    if hashlib.sha256(data).hexdigest() != entry.sha256:
                        raise StoreError("entry does not match its manifest hash")
                    if entry.envelope and store.name == "mbox":
                        store.add(entry.account, entry.folder, data, entry.flags, entry.arrival,
                                  envelope=entry.envelope)
                    else:
                        store.add(entry.account, entry.folder, data, entry.flags, entry.arrival)
                except (MailwardenError, OSError, zipfile.BadZipFile) as exc:
                    result["failed"] += 1
                    result["errors"].append({"archive": str(path), "entry": entry.entry, "reason": str(exc)})
                    continue
                hashes[key].add(entry.sha256)
                result["restored"] += 1
                counts["restored"] += 1
    finally:
        for store in stores.values():
            store.close()
    return result


def _folder_hashes(store: MailStore, account: str, folder: str) -> set[str]:
    """SHA-256 of every message now in the folder (empty when the folder or account is new)."""
    out: set[str] = set()
    try:
        if account not in set(store.accounts()) or folder not in set(store.folders(account)):
            return out
        for message in store.messages(account, folder):
            try:
                out.add(hashlib.sha256(store.read(message)).hexdigest())
            except (OSError, StoreError):
                continue
    except StoreError:
        return out
    return out
