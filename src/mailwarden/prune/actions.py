"""The prune executor: test, delete, move and archive, each journalled and re-checked at action time.

Every destructive step follows the journal's order (planned -> [archived] -> done); the store is
asked again for each message right before it is changed (``recheck``: same identity, still old
enough), so mail that arrived or changed during the run is never touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailwarden.errors import ConfigError, ExitCode, ServerError, StoreError
from mailwarden.prune.archive import PartWriter, safe_component
from mailwarden.prune.journal import Journal, Step
from mailwarden.prune.select import Criteria
from mailwarden.prune.stores.base import MailStore, ServerUnreachable, StoredMessage

ACTIONS = ("test", "delete", "move", "archive")
_MAX_ERRORS_KEPT = 200
# one encoder for the whole run (json.dumps builds a new one per call with non-default options)
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


@dataclass
class FolderTally:
    """Counts and bytes for one account and folder."""

    account: str
    folder: str
    scanned: int = 0
    selected: int = 0
    selected_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    moved: int = 0
    moved_bytes: int = 0
    archived: int = 0
    archived_bytes: int = 0
    failed: int = 0
    kept: int = 0          # selected, then changed or arrived during the run: left alone
    refused: str | None = None  # the store refused the whole folder (e.g. an IMAP.MRK we cannot parse)
    skipped: Counter = field(default_factory=Counter)  # reason -> count (young, flagged, ...)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        out["skipped"] = dict(self.skipped)
        return out


@dataclass
class PruneSummary:
    """What a run selected and did (the ``--json`` document; schema in docs/json.md)."""

    store: str
    store_type: str
    action: str
    age_source: str
    cutoff: float | None
    run_id: str | None = None
    journal: str | None = None
    log: str | None = None
    folders: dict[tuple[str, str], FolderTally] = field(default_factory=dict)
    archives: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    resumed: dict = field(default_factory=dict)
    inactive: list[dict] | None = None
    # Accounts refused because the server could not be reached: when that is every account,
    # nothing ran and the run exits SERVER (5); a refused login stays PARTIAL (6).
    unreachable_accounts: int = 0
    warnings: list[str] = field(default_factory=list)   # printed on stderr, and in the log

    def exit_code(self) -> int:
        """0; SERVER when the server could not be reached for any account; else PARTIAL on failures."""
        if not self.failed:
            return int(ExitCode.OK)
        accounts = {t.account for t in self.folders.values()}
        if self.unreachable_accounts and self.unreachable_accounts == len(accounts):
            return int(ExitCode.SERVER)
        return int(ExitCode.PARTIAL)

    def tally(self, account: str, folder: str) -> FolderTally:
        key = (account, folder)
        if key not in self.folders:
            self.folders[key] = FolderTally(account, folder)
        return self.folders[key]

    @property
    def failed(self) -> int:
        return sum(t.failed + (1 if t.refused else 0) for t in self.folders.values())

    def totals(self) -> dict:
        keys = ("scanned", "selected", "selected_bytes", "deleted", "deleted_bytes", "moved", "moved_bytes",
                "archived", "archived_bytes", "failed", "kept")
        return {k: sum(getattr(t, k) for t in self.folders.values()) for k in keys}

    def to_json(self) -> dict:
        return {
            "schema": 1,
            "store": self.store, "store_type": self.store_type, "action": self.action,
            "age_source": self.age_source,
            "cutoff": None if self.cutoff is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.cutoff)),
            "run_id": self.run_id, "journal": self.journal, "log": self.log,
            "totals": self.totals(),
            "folders": [t.to_json() for t in self.folders.values()],
            "archives": self.archives, "errors": self.errors, "resumed": self.resumed,
            "inactive": self.inactive,
        }


@dataclass
class PrunePlan:
    """What to do with the selected messages."""

    action: str = "test"
    move_to: str | None = None
    archive_dir: Path | None = None
    batch_size: int = 1000
    part_max_messages: int = 10000
    part_max_bytes: int = 1 << 30


class RunLog:
    """The JSONL log of every decision that selected a message and everything done to it."""

    def __init__(self, path: Path | None):
        self.path = path
        self._fh = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(path, "a", encoding="utf-8")  # closed in close()
            except OSError as exc:
                raise ConfigError(f"cannot write the prune log {path}: {exc.strerror or exc}; "
                                  "hint: give --log FILE (or --journal FILE) in a writable directory") from None

    def write(self, event: str, message: StoredMessage | None = None, **fields) -> None:
        if self._fh is None:
            return
        record = {"time": round(time.time(), 3), "event": event}
        if message is not None:
            record.update(account=message.account, folder=message.folder, key=message.key, size=message.size,
                          arrival=message.arrival)
        record.update(fields)
        self._fh.write(_ENCODE(record) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


class StoreBusy(StoreError):
    """Another prune holds the store (or its lock cannot be made): the store could not be used."""

    exit_code = ExitCode.INPUT


class StoreLock:
    """One prune at a time per store: an fcntl lock on a file beside the journal (freed when we die)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreBusy(f"cannot create the prune lock {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusy(f"another prune is running on this store (lock {self.path}); "
                            "hint: wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False


class Pruner:
    """Runs one prune over a store: resume what a killed run left, then select and act."""

    def __init__(self, store: MailStore, criteria: Criteria, plan: PrunePlan, summary: PruneSummary,
                 journal: Journal | None, log: RunLog, on_progress=None):
        if plan.action not in ACTIONS:
            raise StoreError(f"unknown action {plan.action!r}")
        self.store = store
        self.criteria = criteria
        self.plan = plan
        self.summary = summary
        self.journal = journal
        self.log = log
        self.on_progress = on_progress or (lambda summary, tally: None)
        self.run_id: str | None = None
        self._pending_archived: set[tuple[str, str, str]] = set()

    # -- entry points -------------------------------------------------------------------------
    def resume(self) -> None:
        """Finish what killed runs left: verified archives lose their originals, the rest is rolled back."""
        if self.journal is None:
            return
        resumed = Counter()
        unfinished = self.journal.unfinished_runs()
        for run_id, action, _args in unfinished:
            self.log.write("resume", run=run_id, action=action)
            for part_id, _account, _folder, path, _state in self.journal.parts(run_id, "writing"):
                # Killed (or failed) before the part was verified: nothing was removed for it, so
                # drop the file. A path that cannot exist (a parent is a file, unreadable dir)
                # means it was never written: clear it, never crash on it.
                for leftover in (Path(path).with_name(Path(path).name + ".partial"), Path(path)):
                    try:
                        leftover.unlink(missing_ok=True)
                    except OSError as exc:
                        self.log.write("resume-part-unremovable", path=str(leftover), reason=str(exc))
                self.journal.abort_part(part_id, "run killed before the archive was verified")
                resumed["parts_discarded"] += 1
            for steps in _chunks(self.journal.steps(run_id, ("planned",)), self.plan.batch_size):
                # A planned delete or move that did not happen is forgotten (the next selection
                # sees the message again); one that happened is done.
                marks = []
                for step in steps:
                    state = "aborted" if self._recheck(step.message) is not None else "done"
                    marks.append((step.step_id, state, "resolved on resume"))
                    resumed[f"planned_{state}"] += 1
                    self.log.write(f"resume-{state}", step.message, run=run_id, action=step.action)
                self.journal.mark(marks)
        # Originals in verified archives still to remove: a killed run's, or ones an earlier run
        # could not remove (folder locked, I/O error). Try now; while they wait they are never
        # selected for a second archive.
        for batch in _chunks(self.journal.pending_archived(), self.plan.batch_size):
            resumed["archived_originals_removed"] += self._remove_originals(batch, resumed_from="earlier run")
        self._pending_archived = {(s.message.account, s.message.folder, s.message.identity)
                                  for s in self.journal.pending_archived()}
        if self._pending_archived:
            resumed["archived_originals_still_pending"] = len(self._pending_archived)
        reconcile = getattr(self.store, "reconcile", None)
        for run_id, _action, _args in unfinished:
            if reconcile is not None:
                touched = {(s.message.account, s.message.folder) for s in
                           self.journal.steps(run_id, ("done", "aborted", "kept", "failed", "archived"))}
                for account, folder in sorted(touched):
                    reconcile(account, folder)
            self.journal.finish_run(run_id)
            resumed["runs"] += 1
        self.summary.resumed = {k: v for k, v in resumed.items() if v}

    def run(self) -> PruneSummary:
        if self.journal is not None and self.plan.action != "test":
            self.run_id = self.journal.start_run(self.summary.store, self.plan.action,
                                                 {"age_source": self.criteria.age_source,
                                                  "cutoff": self.criteria.cutoff})
            self.summary.run_id = self.run_id
        self.log.write("start", action=self.plan.action, age_source=self.criteria.age_source,
                       cutoff=self.criteria.cutoff, store=self.summary.store, run=self.run_id)
        move_dest = None
        if self.plan.action == "move":
            from mailwarden.prune.select import canonical_folder

            move_dest = canonical_folder(self.plan.move_to or "")
        seen_folders: set[str] = set()
        for account in list(self.store.accounts()):
            if not self.criteria.account_ok(account):
                continue
            try:
                folders = list(self.store.folders(account))
            except (StoreError, ServerError, ConfigError) as exc:
                # One account we cannot open (login refused, unreadable dir): say so, go on.
                self.summary.tally(account, "*").refused = str(exc)
                self.summary.errors.append({"account": account, "folder": None, "key": None, "reason": str(exc)})
                self.summary.unreachable_accounts += isinstance(exc, ServerUnreachable)
                self.log.write("account-refused", account=account, reason=str(exc))
                continue
            seen_folders.update(folders)
            for folder in folders:
                if not self.criteria.folder_ok(folder) or folder == move_dest:
                    continue
                try:
                    self._prune_folder(account, folder)
                except (StoreError, ServerError) as exc:
                    # One folder the store cannot change safely: say why, go on with the others.
                    self.summary.tally(account, folder).refused = str(exc)
                    self.summary.errors.append({"account": account, "folder": folder, "key": None,
                                                "reason": str(exc)})
                    self.log.write("folder-refused", account=account, folder=folder, reason=str(exc))
        self._warn_unmatched_folders(seen_folders)
        if self.journal is not None and self.run_id is not None:
            self.journal.finish_run(self.run_id)
        totals = self.summary.totals()
        self.log.write("finish", **totals)
        return self.summary

    def _warn_unmatched_folders(self, seen_folders: set[str]) -> None:
        """A --folder pattern that matched nothing is most likely a typo: say which folders exist."""
        from mailwarden.prune.select import folder_matcher

        if not seen_folders:
            return
        names = sorted(seen_folders)
        for pattern in self.criteria.folders:
            matches = folder_matcher([pattern])
            if not any(matches(name) for name in names):
                shown = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
                text = f"--folder {pattern!r} matches no folder; folders here: {shown}"
                self.summary.warnings.append(text)
                self.log.write("warning", reason=text)

    # -- one folder ---------------------------------------------------------------------------
    def _selected(self, account: str, folder: str, tally: FolderTally) -> Iterator[tuple[StoredMessage, float | None]]:
        for message in self.store.messages(account, folder):
            tally.scanned += 1
            head = None
            if self.criteria.needs_head():
                try:
                    head = self.store.read_head(message)
                except (OSError, StoreError):
                    tally.skipped["unreadable"] += 1
                    continue
            ok, reason, date = self.criteria.decide(message, head)
            if ok and self._pending_archived and \
                    (message.account, message.folder, message.identity) in self._pending_archived:
                ok, reason = False, "archived-pending-removal"
            if not ok:
                tally.skipped[reason] += 1
                continue
            tally.selected += 1
            tally.selected_bytes += message.size
            self.log.write("selected", message, age_source=self.criteria.age_source, date=date,
                           flags=sorted(message.flags))
            yield message, date

    def _prune_folder(self, account: str, folder: str) -> None:
        tally = self.summary.tally(account, folder)
        selected = self._selected(account, folder, tally)
        if self.plan.action == "test":
            for message, date in selected:
                self.log.write("would-" + ("delete" if self.plan.action == "test" else self.plan.action),
                               message, date=date)
            self.on_progress(self.summary, tally)
            return
        # Phase 1: journal every selected message of the folder as planned (streaming).
        # Phase 2: act in the store's preferred order (inode order: unlinks and reads are ~3x
        # faster on ext4 than in readdir order), paging the plan back out of SQLite so memory
        # stays flat whatever the folder size. Each message is re-checked right before it is changed.
        assert self.journal is not None and self.run_id is not None
        order_key = getattr(self.store, "order_key", None)
        for batch in _chunks(selected, self.plan.batch_size):
            self.journal.plan(self.run_id, self.plan.action, [m for m, _ in batch],
                              dest=self.plan.move_to, order_key=order_key)
        planned = self.journal.planned_in_order(self.run_id, account, folder, self.plan.batch_size)
        if self.plan.action == "archive":
            self._archive_folder(account, folder, planned, tally)
            return
        for steps in planned:
            self._act_batch(steps, tally)
            self.on_progress(self.summary, tally)

    def _sync_deletes(self, on: bool) -> None:
        if hasattr(self.store, "sync_deletes"):
            self.store.sync_deletes = on

    def _recheck(self, message: StoredMessage) -> StoredMessage | None:
        begin = getattr(self.store, "begin_batch", None)
        current = self.store.recheck(message)
        if current is None and begin is not None:
            begin()  # the folder listing we kept may be stale; look once more
            current = self.store.recheck(message)
        return current

    def _still_selected(self, message: StoredMessage) -> tuple[StoredMessage | None, str]:
        """The message as it is now, if it is the same one and still matches; else (None, why)."""
        current = self._recheck(message)
        if current is None:
            return None, "gone or replaced since it was listed"
        head = None
        if self.criteria.needs_head():
            try:
                head = self.store.read_head(current)
            except (OSError, StoreError) as exc:
                return None, f"unreadable: {exc}"
        ok, reason, _ = self.criteria.decide(current, head)
        if not ok:
            return None, f"no longer selected ({reason})"
        return current, ""

    def _fail(self, tally: FolderTally, message: StoredMessage, why: str, kept: bool = False) -> None:
        if kept:
            tally.kept += 1
        else:
            tally.failed += 1
            if len(self.summary.errors) < _MAX_ERRORS_KEPT:
                self.summary.errors.append({"account": message.account, "folder": message.folder,
                                            "key": message.key, "reason": why})
        self.log.write("kept" if kept else "failed", message, reason=why)

    def _act_batch(self, steps: list[Step], tally: FolderTally) -> None:
        action = self.plan.action
        assert self.journal is not None and self.run_id is not None
        begin = getattr(self.store, "begin_batch", None)
        if begin is not None:
            begin()
        ready: list[StoredMessage] = []
        ids_for: dict[str, int] = {}
        marks: list[tuple[int, str, str | None]] = []
        for step in steps:
            current, why = self._still_selected(step.message)
            if current is None:
                marks.append((step.step_id, "kept", why))
                self._fail(tally, step.message, why, kept=True)
                continue
            ready.append(current)
            ids_for[current.key] = step.step_id
        if ready:
            if action == "delete":
                self._sync_deletes(False)
                results = self.store.delete(ready)
            else:
                from mailwarden.prune.select import canonical_folder

                results = self.store.move(ready, canonical_folder(self.plan.move_to or ""))
            for result in results:
                step_id = ids_for[result.message.key]
                if result.ok:
                    marks.append((step_id, "done", result.new_key))
                    if action == "delete":
                        tally.deleted += 1
                        tally.deleted_bytes += result.message.size
                    else:
                        tally.moved += 1
                        tally.moved_bytes += result.message.size
                    self.log.write("deleted" if action == "delete" else "moved", result.message,
                                   dest=self.plan.move_to, new_key=result.new_key)
                elif result.reason == "gone":
                    # removed by someone else after our re-check: nothing to do, nothing lost by us
                    marks.append((step_id, "kept", "gone before we acted"))
                    self._fail(tally, result.message, "gone before we acted", kept=True)
                else:
                    marks.append((step_id, "failed", result.reason))
                    self._fail(tally, result.message, result.reason)
        self.journal.mark(marks)

    # -- archive ------------------------------------------------------------------------------
    def _part_path(self, account: str, folder: str, number: int) -> Path:
        assert self.plan.archive_dir is not None
        folder_parts = [safe_component(p) for p in folder.split("/")]
        return (self.plan.archive_dir / safe_component(account)).joinpath(*folder_parts) / \
            f"{self.run_id}-{number:03d}.zip"

    def _archive_folder(self, account: str, folder: str, planned, tally: FolderTally) -> None:
        assert self.journal is not None and self.run_id is not None
        number = 0
        writer: PartWriter | None = None
        part_id = 0
        entries: dict[int, tuple[str, str]] = {}
        failed: dict[int, str] = {}
        for steps in planned:
            if writer is None:
                number += 1
                path = self._part_path(account, folder, number)
                part_id = self.journal.start_part(self.run_id, account, folder, path)
                try:
                    writer = PartWriter(path, self.store.name, self.store.store_id)
                except OSError as exc:
                    # Nothing written, nothing removed: drop the part and refuse this folder.
                    self.journal.abort_part(part_id, f"cannot create archive: {exc}")
                    raise StoreError(f"cannot create archive {path}: {exc.strerror or exc}") from None
                entries, failed = {}, {}
            self.journal.assign_part(part_id, [step.step_id for step in steps])
            for step in steps:
                message = step.message
                current, why = self._still_selected(message)
                data = None
                if current is not None:
                    try:
                        data = self.store.read(current)
                    except (OSError, StoreError) as exc:
                        why = f"unreadable: {exc}"
                if current is None or data is None:
                    failed[step.step_id] = why
                    self._fail(tally, message, why, kept=current is None)
                    continue
                date = self.criteria.decide(current, data[:65536])[2]
                entries[step.step_id] = writer.add(current, data, date if date is not None else current.arrival,
                                                   step.step_id)
                self.journal.fault_point()
            if len(writer) >= self.plan.part_max_messages or writer.bytes >= self.plan.part_max_bytes:
                self._finish_part(writer, part_id, entries, failed, tally)
                writer = None
            self.on_progress(self.summary, tally)
        if writer is not None:
            self._finish_part(writer, part_id, entries, failed, tally)

    def _finish_part(self, writer: PartWriter, part_id: int, entries, failed, tally: FolderTally) -> None:
        assert self.journal is not None
        if not entries:
            writer.abort()
            self.journal.part_verified(part_id, {}, failed)
            return
        try:
            writer.finish()
        except (OSError, StoreError) as exc:
            # The archive is not trustworthy: keep every original, drop the part.
            writer.abort()
            writer.path.unlink(missing_ok=True)
            self.journal.abort_part(part_id, f"archive failed: {exc}")
            tally.failed += len(entries)
            self.summary.errors.append({"archive": str(writer.path), "reason": str(exc)})
            self.log.write("archive-failed", path=str(writer.path), reason=str(exc))
            return
        self.journal.part_verified(part_id, entries, failed)
        self.summary.archives.append(str(writer.path))
        self.log.write("archive-verified", path=str(writer.path), messages=len(entries))
        steps = [s for s in self.journal.steps(self.run_id, ("archived",), part_id=part_id)]
        for batch in _chunks(steps, self.plan.batch_size):
            self._remove_originals(batch, tally=tally)

    def _remove_originals(self, steps: list[Step], tally: FolderTally | None = None,
                          resumed_from: str | None = None) -> int:
        """Delete the originals of verified archive entries (same identity only)."""
        assert self.journal is not None
        begin = getattr(self.store, "begin_batch", None)
        if begin is not None:
            begin()
        marks: list[tuple[int, str, str | None]] = []
        ready: list[StoredMessage] = []
        ids_for: dict[str, Step] = {}
        for step in steps:
            current = self._recheck(step.message)
            if current is None:
                # Gone: either we removed it before a kill, or a client did; the archive has it.
                marks.append((step.step_id, "done", "original already gone"))
                continue
            ready.append(current)
            ids_for[current.key] = step
        done = 0
        # a removal undone by a power cut would leave a message both here and in its archive
        self._sync_deletes(True)
        for result in self.store.delete(ready) if ready else []:
            step = ids_for[result.message.key]
            t = tally or self.summary.tally(step.message.account, step.message.folder)
            if result.ok or result.reason == "gone":
                marks.append((step.step_id, "done", None))
                t.archived += 1
                t.archived_bytes += result.message.size
                done += 1
                self.log.write("archived", result.message, archive_entry=step.entry, sha256=step.sha256,
                               resumed_from=resumed_from)
            else:
                # Stays "archived": the next run retries the removal (and will not archive it twice).
                marks.append((step.step_id, "archived", f"original not removed yet: {result.reason}"))
                self._fail(t, result.message, f"archived, original not removed yet: {result.reason}")
        self.journal.mark(marks)
        return done


def _chunks(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
