"""kill -9 a real ``python -m mailwarden prune`` at seeded random moments; nothing is lost or doubled.

Kills come two ways: the fault-injection hook (``MAILWARDEN_PRUNE_KILL_AFTER=N`` makes the run
SIGKILL itself after N journal steps or archive entries) and plain SIGKILL after a random delay.
After every kill each message must be in the store or in a *verified* archive (the journal says
which parts are verified), never in two store places; after the run that finishes, every
message is in exactly one place and MDaemon's IMAP.MRK matches the .msg files.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.unit.prune.builders import MaildirBuilder, MDaemonBuilder, maildir_files, read_mrk

pytestmark = pytest.mark.slow


def _prune(args: list[str], env_extra: dict, delay: float | None) -> int:
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "mailwarden", "prune", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    return proc.returncode


def _verified_archive_hashes(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    db = sqlite3.connect(journal)
    paths = [r[0] for r in db.execute("SELECT path FROM parts WHERE state='verified'")]
    db.close()
    out = []
    for p in paths:
        if not Path(p).exists():
            continue  # a verified part with no entries is never written
        with zipfile.ZipFile(p) as zf:
            out += [hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist() if n.endswith(".eml")]
    return out


def _check(originals: dict[str, bool], in_store: list[str], archived: list[str], final: bool) -> None:
    for digest, old in originals.items():
        s, a = in_store.count(digest), archived.count(digest)
        assert s <= 1 and a <= 1, f"duplicated: store {s}, archives {a}"
        assert s + a >= 1, "a message was lost"
        if final:
            assert s + a == 1, "a message is in two places after the run finished"
            assert (a == 1) == old, "an old message was not archived, or a young one was"
    assert len(in_store) + len(archived) >= len(originals)


def _kill_loop(build, rng, kills_needed: int, elsewhere=None) -> int:
    """Rounds on fresh stores: kill runs of a round until one finishes, until enough kills were made."""
    elsewhere = elsewhere or _verified_archive_hashes  # where a message may be besides the store
    kills = rounds = 0
    while kills < kills_needed:
        rounds += 1
        assert rounds <= 12, "too few kills landed"
        args, journal, snapshot, originals = build(rounds)
        for attempt in range(30):
            if attempt % 4 == 3:
                rc = _prune(args, {}, rng.uniform(0.5, 1.5))
            else:
                rc = _prune(args, {"MAILWARDEN_PRUNE_KILL_AFTER": str(rng.randint(1, 30))}, None)
            if rc == -signal.SIGKILL:
                kills += 1
                _check(originals, snapshot(), elsewhere(journal), final=False)
                continue
            assert rc == 0
            _check(originals, snapshot(), elsewhere(journal), final=True)
            break
        else:
            raise AssertionError("the prune never finished")
    return kills


def test_kill9_archive_mdaemon(tmp_path):
    rng = random.Random(4)

    def build(n):
        root = tmp_path / f"r{n}"
        b = MDaemonBuilder(root / "Users")
        originals = {}
        for i in range(48):
            acct = "bob@example.com" if i % 2 else "eve@example.org"
            folder = "INBOX" if i % 3 else "Old/Deep"
            age = 2 if i % 4 == 0 else 30
            name = b.add(acct, folder, age_days=age, flags="S")
            originals[hashlib.sha256((b.folder_dir(acct, folder) / name).read_bytes()).hexdigest()] = age > 5
        journal = root / "j.sqlite"
        args = [str(b.root), "--days", "5", "--archive", str(root / "arch"), "--journal", str(journal),
                "--batch-size", "4", "--part-max-messages", "7"]

        def snapshot():
            return [hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "Users").rglob("*.msg")]

        return args, journal, snapshot, originals

    assert _kill_loop(build, rng, kills_needed=11) >= 11
    for mrk in tmp_path.rglob("IMAP.MRK"):
        _, recs = read_mrk(mrk)
        assert sorted(r[0] for r in recs) == sorted(p.name for p in mrk.parent.glob("*.msg"))
    assert not list(tmp_path.rglob("*.partial"))


def test_kill9_archive_maildir(tmp_path):
    rng = random.Random(11)

    def build(n):
        root = tmp_path / f"r{n}"
        b = MaildirBuilder(root / "Maildir")
        originals = {}
        for i in range(45):
            age = 1 if i % 5 == 0 else 40
            path = b.add("INBOX" if i % 2 else "Lists/Old", age_days=age, flags="S" if i % 3 else None)
            originals[hashlib.sha256(path.read_bytes()).hexdigest()] = age > 5
        journal = root / "j.sqlite"
        args = [str(b.root), "--days", "5", "--archive", str(root / "arch"), "--journal", str(journal),
                "--batch-size", "5", "--part-max-messages", "9"]

        def snapshot():
            return [hashlib.sha256(p.read_bytes()).hexdigest() for p in maildir_files(b.root)]

        return args, journal, snapshot, originals

    assert _kill_loop(build, rng, kills_needed=10) >= 10
    assert not list(tmp_path.rglob("*.partial"))


def test_kill9_move_maildir(tmp_path):
    """A move is one rename: after any kill every message is in exactly one folder."""
    rng = random.Random(23)

    def build(n):
        root = tmp_path / f"r{n}"
        b = MaildirBuilder(root / "Maildir")
        originals = {}
        for i in range(40):
            age = 1 if i % 4 == 0 else 40
            path = b.add("INBOX", age_days=age, flags="S")
            originals[hashlib.sha256(path.read_bytes()).hexdigest()] = age > 5
        journal = root / "j.sqlite"
        args = [str(b.root), "--days", "5", "--move-to", "Old", "--journal", str(journal), "--batch-size", "3"]

        def snapshot():
            # "archive" here means the Old folder: _check's rules hold for it unchanged
            return [hashlib.sha256(p.read_bytes()).hexdigest() for p in maildir_files(b.root)
                    if ".Old" not in p.parts]

        return args, journal, snapshot, originals

    def moved_hashes(journal):
        old = journal.parent / "Maildir" / ".Old"
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in maildir_files(old)] if old.exists() else []

    assert _kill_loop(build, rng, kills_needed=5, elsewhere=moved_hashes) >= 5
