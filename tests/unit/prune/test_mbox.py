"""The mbox store: record splitting, flags, locking, and byte-exact safe rewrites."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.prune.stores import mbox as mbox_mod
from mailwarden.prune.stores.base import DELETED, FLAGGED, SEEN
from mailwarden.prune.stores.mbox import MboxStore

PSEUDO = (b"From MAILER_DAEMON Mon Jan  1 00:00:00 2018\n"
          b"Date: 01 Jan 2018 00:00:00 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@x>\n"
          b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
          b"X-IMAP: 1514764800 0000000004\nStatus: RO\n\nThis text is part of the internal format.\n\n")


def rec(n: int, from_date: str, headers: str = "", body: str = "hello\n") -> bytes:
    return (f"From sender{n}@example.org {from_date}\n"
            f"From: sender{n}@example.org\nSubject: m{n}\nMessage-ID: <m{n}@x>\n{headers}\n{body}\n").encode()


@pytest.fixture
def mbox(tmp_path):
    records = [
        PSEUDO,
        rec(1, "Tue Jan  1 10:00:00 2019", "Status: RO\n"),
        rec(2, "Wed Jan  2 10:00:00 2019", "Status: RO\nX-Status: F\n"),
        # a body line "From " after a non-blank line is not a separator; ">From " stays as is
        rec(3, "Thu Jan  3 10:00:00 2019", "Status: O\n", "line\nFrom the body, not a separator\n>From quoted\n"),
        rec(4, "Fri Jan  4 10:00:00 2019", "Status: RO\nX-Status: D\n"),
        rec(5, "Sun Nov 22 10:00:00 2099", "Status: RO\n"),
    ]
    path = tmp_path / "mail" / "alice"
    path.parent.mkdir()
    path.write_bytes(b"".join(records))
    return path, records


def test_records_flags_dates_and_pseudo_message(mbox):
    path, records = mbox
    store = MboxStore(path.parent)
    assert list(store.accounts()) == ["alice"]
    msgs = list(store.messages("alice", "INBOX"))
    assert len(msgs) == 5  # the X-IMAP folder data is never a message
    assert msgs[0].flags == {SEEN} and msgs[1].flags == {SEEN, FLAGGED} and not msgs[2].flags
    assert DELETED in msgs[3].flags
    assert msgs[0].arrival == 1546336800.0
    assert store.read(msgs[2]) == records[3][records[3].index(b"\n") + 1:]


def test_delete_rewrites_byte_exact_and_keeps_the_rest(mbox, run_cli, tmp_path):
    path, records = mbox
    res = run_cli("prune", str(path), "--before", "2019-01-05", "--delete", "--json",
                  "--journal", str(tmp_path / "j.sqlite"))
    assert res.exit_code == 0, res.output
    # 1, 3, 4 go; 2 is flagged, 5 is young, the pseudo message stays first
    assert res.json()["totals"]["deleted"] == 3
    assert path.read_bytes() == PSEUDO + records[2] + records[5]
    assert not path.with_name("alice.lock").exists()


def test_archive_and_restore_give_back_the_same_bytes(mbox, run_cli, tmp_path):
    path, records = mbox
    original = path.read_bytes()
    res = run_cli("prune", str(path), "--before", "2019-01-05", "--archive", str(tmp_path / "a"),
                  "--include-flagged", "--json", "--journal", str(tmp_path / "j.sqlite"))
    assert res.exit_code == 0 and res.json()["totals"]["archived"] == 4, res.output
    assert path.read_bytes() == PSEUDO + records[5]
    back = run_cli("prune", "restore", str(tmp_path / "a"), "--json")
    assert back.json()["restored"] == 4, back.output
    assert sorted(_records(path.read_bytes())) == sorted(_records(original))


def _records(data: bytes) -> list[bytes]:
    import io

    return [data[r.offset:r.offset + r.length] for r in mbox_mod.scan(io.BytesIO(data))]


def test_held_dotlock_makes_us_wait_then_fail_clearly(mbox, run_cli, tmp_path):
    path, _ = mbox
    before = path.read_bytes()
    holder = f"{os.getpid()}\n"  # a live process holds it (a dead pid's lock is stale and broken)
    path.with_name("alice.lock").write_text(holder)
    res = run_cli("prune", str(path), "--days", "30", "--delete", "--mbox-lock-timeout", "0.5",
                  "--journal", str(tmp_path / "j.sqlite"), "--json")
    assert res.exit_code == 6
    assert "locked by another program" in res.json()["errors"][0]["reason"]
    assert path.read_bytes() == before
    assert path.with_name("alice.lock").read_text() == holder  # never broken by us


def test_stale_dotlock_of_a_dead_process_is_broken(mbox, run_cli, tmp_path):
    path, records = mbox
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.with_name("alice.lock").write_text(f"{dead.pid}\n")
    res = run_cli("prune", str(path), "--before", "2019-01-05", "--delete", "--json",
                  "--journal", str(tmp_path / "j.sqlite"))
    assert res.exit_code == 0 and res.json()["totals"]["deleted"] == 3, res.output
    assert not path.with_name("alice.lock").exists()


def test_rewrite_aborts_when_the_mbox_changes_underneath(mbox, monkeypatch):
    path, _ = mbox
    before = path.read_bytes()
    store = MboxStore(path)
    victim = list(store.messages("alice", "INBOX"))[0]
    real_copy = mbox_mod._copy

    def copy_while_someone_appends(src, out, start, length):
        real_copy(src, out, start, length)
        with open(path, "ab") as fh:  # a writer that ignores locks
            fh.write(rec(9, "Mon Jan  7 10:00:00 2019"))

    monkeypatch.setattr(mbox_mod, "_copy", copy_while_someone_appends)
    [result] = store.delete([victim])
    assert not result.ok and "changed while we rewrote it" in result.reason
    assert path.read_bytes().startswith(before)
    assert not list(path.parent.glob(".*mailwarden-tmp"))


def test_hostile_long_lines_do_not_break_splitting(tmp_path):
    path = tmp_path / "box"
    path.write_bytes(rec(1, "Tue Jan  1 10:00:00 2019", "X-Long: " + "a" * 300000 + "\n") +
                     rec(2, "Tue Jan  1 10:00:00 2019", body="b" * 200000 + "From x\n"))
    msgs = list(MboxStore(path).messages("box", "INBOX"))
    assert len(msgs) == 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_hostile_mbox_bytes_split_without_error(data):
    import io

    head = b"From x Tue Jan  1 10:00:00 2019\n"
    total = sum(r.length for r in mbox_mod.scan(io.BytesIO(head + data)))
    assert total == len(head) + len(data)  # every byte belongs to exactly one record
