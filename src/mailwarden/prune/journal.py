"""The SQLite write-ahead journal of a prune run: planned and done steps, fsynced.

Order of events for every destructive step (see docs/prune.md, "Never lose mail"):

1. the step is written as ``planned`` and committed (fsynced, ``synchronous=FULL``);
2. for an archive, the zip part is written, fsynced, renamed, re-read and hash-checked, and the
   part and its steps become ``archived`` in one commit;
3. only then is the original removed, and the step becomes ``done``.

A run killed anywhere leaves steps that ``resume`` rolls forward (archived -> remove original)
or back (planned with no verified archive -> nothing was removed, forget the step).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailwarden.errors import ExitCode, JournalError
from mailwarden.prune.stores.base import StoredMessage

SCHEMA_VERSION = 2

class JournalUnreadable(JournalError):
    """The journal file cannot be opened or read: an input problem, not a bug."""

    exit_code = ExitCode.INPUT


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL, finished REAL, store TEXT, action TEXT,
    args TEXT, state TEXT          -- running | done
);
CREATE TABLE IF NOT EXISTS parts (
    part_id INTEGER PRIMARY KEY, run_id TEXT, account TEXT, folder TEXT, path TEXT,
    state TEXT                     -- writing | verified | aborted
);
CREATE TABLE IF NOT EXISTS steps (
    step_id INTEGER PRIMARY KEY, run_id TEXT, part_id INTEGER, action TEXT,
    account TEXT, folder TEXT, key TEXT, identity TEXT, size INTEGER, arrival REAL,
    mtime REAL, flags TEXT, dest TEXT, entry TEXT, sha256 TEXT,
    ord INTEGER,                   -- the order to act in (inode number: faster unlinks and reads)
    state TEXT,                    -- planned | archived | done | failed | kept | aborted
    note TEXT
);
CREATE INDEX IF NOT EXISTS steps_run_state ON steps(run_id, state);
CREATE INDEX IF NOT EXISTS steps_part ON steps(part_id);
CREATE INDEX IF NOT EXISTS steps_order ON steps(run_id, account, folder, state, ord, step_id);
"""


@dataclass(slots=True)
class Step:
    """One journalled action on one message."""

    step_id: int
    run_id: str
    part_id: int | None
    action: str
    message: StoredMessage
    dest: str | None
    entry: str | None
    sha256: str | None
    state: str


class Journal:
    """One SQLite file per store; every commit is durable before we touch the store."""

    def __init__(self, path: Path, durable: bool = True):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we touch the store. An archive needs that (a lost
            # "verified" commit would make a resume discard a zip whose originals are gone); a
            # delete or move does not (a lost commit only makes a resume look again), so those
            # runs use NORMAL and skip one fsync per commit.
            self.db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise JournalUnreadable(f"prune journal {path} is unreadable: {exc}; hint: give another "
                                    "--journal FILE, or move this one aside (a journal of a killed "
                                    "archive run may still list archived originals to remove)") from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise JournalUnreadable(f"prune journal {path} has schema {row[0]}, this mailwarden writes {SCHEMA_VERSION}")
        self._fault_steps = _fault_budget()

    # -- runs ---------------------------------------------------------------------------------
    def unfinished_runs(self) -> list[tuple[str, str, str]]:
        return list(self.db.execute(
            "SELECT run_id, action, args FROM runs WHERE state='running' ORDER BY started"))

    def start_run(self, store_id: str, action: str, args: dict) -> str:
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
                        (run_id, time.time(), None, store_id, action, json.dumps(args), "running"))
        return run_id

    def finish_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET state='done', finished=? WHERE run_id=?", (time.time(), run_id))
        self.fault_point()

    # -- steps --------------------------------------------------------------------------------
    def plan(self, run_id: str, action: str, messages: Iterable[StoredMessage],
             dest: str | None = None, part_id: int | None = None, order_key=None) -> list[int]:
        """Record planned steps in one transaction; returns their ids in order."""
        rows = [(run_id, part_id, action, m.account, m.folder, m.key, m.identity, m.size, m.arrival, m.mtime,
                 " ".join(sorted(m.flags)), dest, order_key(m) if order_key is not None else 0)
                for m in messages]
        with self.transaction():
            first = (self.db.execute("SELECT COALESCE(MAX(step_id), 0) FROM steps").fetchone()[0]) + 1
            # explicit ids: one executemany, and the caller still learns each step's id
            self.db.executemany(
                "INSERT INTO steps (step_id, run_id, part_id, action, account, folder, key, identity, size,"
                " arrival, mtime, flags, dest, ord, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?, 'planned')",
                [(first + i, *row) for i, row in enumerate(rows)])
        self.fault_point()
        return list(range(first, first + len(rows)))

    def planned_in_order(self, run_id: str, account: str, folder: str, batch: int) -> Iterator[list[Step]]:
        """The planned steps of one folder in action order, a batch at a time (keyset paging: flat memory)."""
        last = (-1, -1)
        while True:
            rows = self.db.execute(
                "SELECT step_id, run_id, part_id, action, account, folder, key, identity, size, arrival,"
                " mtime, flags, dest, entry, sha256, state, ord FROM steps WHERE run_id=? AND account=?"
                " AND folder=? AND state='planned' AND part_id IS NULL AND (ord, step_id) > (?, ?)"
                " ORDER BY ord, step_id LIMIT ?", (run_id, account, folder, *last, batch)).fetchall()
            if not rows:
                return
            last = (rows[-1][16], rows[-1][0])
            yield [self._step(row) for row in rows]

    def pending_archived(self) -> Iterator[Step]:
        """Steps of any run whose message is in a verified archive but whose original is still to remove."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT step_id, run_id, part_id, action, account, folder, key, identity, size, arrival,"
                " mtime, flags, dest, entry, sha256, state FROM steps WHERE state='archived' AND step_id > ?"
                " ORDER BY step_id LIMIT 1000", (last,)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield from (self._step(row) for row in rows)

    def assign_part(self, part_id: int, step_ids: list[int]) -> None:
        with self.transaction():
            self.db.executemany("UPDATE steps SET part_id=? WHERE step_id=?", [(part_id, s) for s in step_ids])
        self.fault_point()

    @staticmethod
    def _step(row) -> Step:
        msg = StoredMessage(account=row[4], folder=row[5], key=row[6], identity=row[7] or "",
                            size=row[8] or 0, arrival=row[9], mtime=row[10],
                            flags=frozenset((row[11] or "").split()))
        return Step(row[0], row[1], row[2], row[3], msg, row[12], row[13], row[14], row[15])

    def mark(self, updates: Iterable[tuple[int, str, str | None]]) -> None:
        """Set (step_id, state, note) for many steps in one commit."""
        with self.transaction():
            self.db.executemany("UPDATE steps SET state=?, note=? WHERE step_id=?",
                                [(state, note, sid) for sid, state, note in updates])
        self.fault_point()

    def steps(self, run_id: str, states: tuple[str, ...], part_id: int | None = None) -> Iterator[Step]:
        marks = ",".join("?" * len(states))
        sql = (f"SELECT step_id, run_id, part_id, action, account, folder, key, identity, size, arrival,"
               f" mtime, flags, dest, entry, sha256, state FROM steps WHERE run_id=? AND state IN ({marks})")
        params: list = [run_id, *states]
        if part_id is not None:
            sql += " AND part_id=?"
            params.append(part_id)
        last = -1
        while True:
            # paged, so a resume of a huge run does not load every step at once
            rows = self.db.execute(sql + " AND step_id > ? ORDER BY step_id LIMIT 1000", [*params, last]).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield from (self._step(row) for row in rows)

    # -- archive parts ------------------------------------------------------------------------
    def start_part(self, run_id: str, account: str, folder: str, path: Path) -> int:
        cur = self.db.execute("INSERT INTO parts (run_id, account, folder, path, state) VALUES (?,?,?,?, 'writing')",
                              (run_id, account, folder, str(path)))
        self.fault_point()
        return cur.lastrowid

    def part_verified(self, part_id: int, entries: dict[int, tuple[str, str]], failed: dict[int, str]) -> None:
        """The zip is on disk and checked: its steps become ``archived`` in the same commit."""
        with self.transaction():
            self.db.executemany("UPDATE steps SET state='archived', entry=?, sha256=? WHERE step_id=?",
                                [(e, h, sid) for sid, (e, h) in entries.items()])
            self.db.executemany("UPDATE steps SET state='failed', note=? WHERE step_id=?",
                                [(why, sid) for sid, why in failed.items()])
            self.db.execute("UPDATE parts SET state='verified' WHERE part_id=?", (part_id,))
        self.fault_point()

    def abort_part(self, part_id: int, note: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE steps SET state='aborted', note=? WHERE part_id=? AND state='planned'",
                            (note, part_id))
            self.db.execute("UPDATE parts SET state='aborted' WHERE part_id=?", (part_id,))

    def parts(self, run_id: str | None = None, state: str | None = None) -> list[tuple[int, str, str, str, str]]:
        sql = "SELECT part_id, account, folder, path, state FROM parts WHERE 1=1"
        params: list = []
        if run_id is not None:
            sql += " AND run_id=?"
            params.append(run_id)
        if state is not None:
            sql += " AND state=?"
            params.append(state)
        return list(self.db.execute(sql + " ORDER BY part_id", params))

    def transaction(self):
        return _Transaction(self.db)

    def close(self) -> None:
        self.db.close()

    # -- fault injection (tests only) ---------------------------------------------------------
    def fault_point(self) -> None:
        """SIGKILL ourselves after N journal commits when MAILWARDEN_PRUNE_KILL_AFTER=N (crash tests)."""
        if self._fault_steps is None:
            return
        self._fault_steps -= 1
        if self._fault_steps <= 0:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def _fault_budget() -> int | None:
    value = os.environ.get("MAILWARDEN_PRUNE_KILL_AFTER")
    return int(value) if value and value.isdigit() else None


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
