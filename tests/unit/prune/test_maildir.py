"""The Maildir++ store and the executor on it: delete, move, archive, restore, safety rules."""

from __future__ import annotations

import os
import threading
import zipfile

import pytest

from mailwarden.prune.actions import PrunePlan, Pruner, PruneSummary, RunLog, StoreLock
from mailwarden.prune.journal import Journal
from mailwarden.prune.select import Criteria
from mailwarden.prune.stores.maildir import MaildirStore
from tests.unit.prune.builders import DAY, NOW, MaildirBuilder, maildir_files, message_bytes


@pytest.fixture
def md(tmp_path):
    b = MaildirBuilder(tmp_path / "vmail" / "example.com" / "alice" / "Maildir")
    for age in (1, 3, 8, 12):
        b.add(age_days=age)
    b.add(age_days=20, flags=None)           # in new/, never seen by a client
    b.add(age_days=25, flags="FS")           # flagged
    b.add("Lists/Dovecot", age_days=40, flags="RS")
    (b.root / "maildirsize").write_text("0S,0C\n2100 7\n")
    return b


def test_accounts_folders_and_flags(md):
    store = MaildirStore(md.root.parents[2])
    assert list(store.accounts()) == ["alice@example.com"]
    assert list(store.folders("alice@example.com")) == ["INBOX", "Lists/Dovecot"]
    [m] = store.messages("alice@example.com", "Lists/Dovecot")
    assert m.seen and "\\Answered" in m.flags and abs(m.arrival - (NOW - 40 * DAY)) < 2


def test_cli_delete_updates_maildirsize_and_keeps_young_mail(md, run_cli):
    res = run_cli("prune", str(md.root), "--days", "5", "--delete", "--json")
    assert res.exit_code == 0, res.output
    doc = res.json()
    assert doc["totals"]["deleted"] == 4 and doc["totals"]["selected"] == 4
    left = maildir_files(md.root)
    assert len(left) == 3  # 1 and 3 days old, and the flagged one
    lines = (md.root / "maildirsize").read_text().splitlines()
    assert lines[:2] == ["0S,0C", "2100 7"]
    added = [tuple(map(int, line.split())) for line in lines[2:]]  # one line per folder batch
    assert (sum(a for a, _ in added), sum(c for _, c in added)) == (-doc["totals"]["deleted_bytes"], -4)


def test_move_keeps_mtime_and_flags(md, run_cli):
    res = run_cli("prune", str(md.root), "--days", "30", "--move-to", "Old", "--json")
    assert res.exit_code == 0, res.output
    [moved] = maildir_files(md.root / ".Old")
    assert moved.name.endswith(":2,RS") and abs(moved.stat().st_mtime - (NOW - 40 * DAY)) < 2
    assert (md.root / ".Old" / "maildirfolder").exists()


def test_archive_then_restore_round_trip(md, tmp_path, run_cli):
    before = {p.read_bytes(): (p.stat().st_mtime, p.name.partition(":2,")[2]) for p in maildir_files(md.root)}
    res = run_cli("prune", str(md.root), "--days", "5", "--archive", str(tmp_path / "arch"), "--json")
    assert res.exit_code == 0, res.output
    assert res.json()["totals"]["archived"] == 4
    zips = sorted((tmp_path / "arch").rglob("*.zip"))
    assert len(zips) == 2  # one per folder
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            assert zf.testzip() is None
            for name in zf.namelist():
                assert "/" not in name and ".." not in name
    assert len(maildir_files(md.root)) == 3
    back = run_cli("prune", "restore", str(tmp_path / "arch"), "--json")
    assert back.json()["restored"] == 4, back.output
    after = {p.read_bytes(): (p.stat().st_mtime, p.name.partition(":2,")[2]) for p in maildir_files(md.root)}
    assert set(after) == set(before)
    for data, (mtime, flags) in before.items():
        assert abs(after[data][0] - mtime) < 1 and after[data][1] == flags


def test_symlinks_out_of_the_store_are_never_followed(md, tmp_path, run_cli):
    outside = tmp_path / "precious.txt"
    outside.write_bytes(message_bytes(99))
    os.utime(outside, (NOW - 90 * DAY, NOW - 90 * DAY))
    (md.root / "cur" / "evil:2,S").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "elsewhere" / sub).mkdir()
    (md.root / ".Linked").symlink_to(tmp_path / "elsewhere")
    res = run_cli("prune", str(md.root), "--days", "0", "--delete", "--include-flagged", "--json")
    assert res.exit_code == 0, res.output
    assert outside.exists() and (md.root / "cur" / "evil:2,S").is_symlink()
    assert "Linked" not in {f["folder"] for f in res.json()["folders"]}


def test_test_mode_changes_nothing_and_logs(md, tmp_path, run_cli):
    before = maildir_files(md.root)
    res = run_cli("prune", str(md.root), "--days", "5", "--json", "--log", str(tmp_path / "l.jsonl"))
    assert res.exit_code == 0 and res.json()["action"] == "test"
    assert maildir_files(md.root) == before
    events = [__import__("json").loads(line)["event"] for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert events.count("selected") == 4 and events.count("would-delete") == 4


def test_destructive_run_needs_an_age(md, run_cli):
    res = run_cli("prune", str(md.root), "--delete")
    assert res.exit_code == 2 and "needs --days" in res.output


def test_unknown_switch_is_a_usage_error(md, run_cli):
    res = run_cli("prune", str(md.root), "/q=1")
    assert res.exit_code == 2 and "unknown AccountPrune-style switch" in res.output


def test_one_prune_at_a_time(md, tmp_path, run_cli):
    journal = tmp_path / "j.sqlite"
    with StoreLock(journal.with_suffix(".lock")):
        res = run_cli("prune", str(md.root), "--days", "5", "--delete", "--journal", str(journal))
    assert res.exit_code != 0 and "another prune is running" in res.output
    assert len(maildir_files(md.root)) == 7


def test_message_replaced_between_listing_and_action_is_kept(md, tmp_path):
    store = MaildirStore(md.root)
    journal = Journal(tmp_path / "j.sqlite")
    summary = PruneSummary("s", "maildir", "delete", "arrival", NOW - 5 * DAY)
    pruner = Pruner(store, Criteria(cutoff=NOW - 5 * DAY), PrunePlan("delete"), summary, journal, RunLog(None))
    listed = list(store.messages("alice", "INBOX"))
    victim = next(m for m in listed if m.arrival < NOW - 10 * DAY)
    path = md.root / victim.key
    # a client rewrote the message (new inode, same name) after we listed it
    path.unlink()
    path.write_bytes(b"Subject: new content\r\n\r\nhello\r\n")
    os.utime(path, (NOW - 30 * DAY, NOW - 30 * DAY))
    pruner.run_id = journal.start_run("s", "delete", {})
    journal.plan(pruner.run_id, "delete", [m for m in listed if m.arrival < NOW - 5 * DAY and not m.flagged])
    [steps] = list(journal.planned_in_order(pruner.run_id, "alice", "INBOX", 100))
    pruner._act_batch(steps, summary.tally("a", "f"))
    assert path.exists()
    assert summary.tally("a", "f").kept == 1 and summary.tally("a", "f").deleted == 2


def test_concurrent_delivery_during_a_prune_is_untouched(tmp_path):
    """A thread keeps delivering (old-dated by Date:, fresh by arrival) while we archive old mail."""
    b = MaildirBuilder(tmp_path / "Maildir")
    for i in range(1500):
        b.add(age_days=10 + (i % 5))
    delivered: list[bytes] = []
    stop = threading.Event()

    def deliver():
        n = 0
        while not stop.is_set() and n < 400:
            data = message_bytes(100000 + n, date=NOW - 400 * DAY)
            b.add(age_days=0, data=data)
            delivered.append(data)
            n += 1

    store = MaildirStore(b.root)
    summary = PruneSummary("s", "maildir", "archive", "arrival", NOW - 5 * DAY)
    plan = PrunePlan("archive", archive_dir=tmp_path / "arch", batch_size=50, part_max_messages=300)
    pruner = Pruner(store, Criteria(cutoff=NOW - 5 * DAY), plan, summary, Journal(tmp_path / "j.sqlite"),
                    RunLog(None))
    t = threading.Thread(target=deliver)
    t.start()
    try:
        pruner.run()
    finally:
        stop.set()
        t.join()
    left = {p.read_bytes() for p in maildir_files(b.root)}
    assert delivered and all(d in left for d in delivered)
    assert summary.totals()["archived"] == 1500
    assert len(left) == len(delivered)


def test_inactive_accounts_report_only(tmp_path, run_cli):
    root = tmp_path / "vmail"
    for user, idle in (("busy", 1), ("idle", 200)):
        b = MaildirBuilder(root / "example.com" / user / "Maildir")
        b.add(age_days=idle)
        t = NOW - idle * DAY
        for d in (b.root / "cur", b.root / "new"):
            os.utime(d, (t, t))
    res = run_cli("prune", str(root), "--inactive-days", "90", "--json")
    assert res.exit_code == 0, res.output
    doc = res.json()
    assert [r["account"] for r in doc["inactive"]] == ["idle@example.com"]
    assert doc["inactive"][0]["idle_days"] in (199, 200)
    assert doc["totals"]["selected"] == 0
    assert len(maildir_files(root)) == 2


def test_store_lock_holds_across_different_journals(md, tmp_path, run_cli):
    import hashlib

    from mailwarden.commands.prune import _state_dir

    key = hashlib.sha1(MaildirStore(md.root).store_id.encode()).hexdigest()[:16]
    with StoreLock(_state_dir() / f"maildir-{key}.lock"):
        res = run_cli("prune", str(md.root), "--days", "5", "--delete", "--journal", str(tmp_path / "other.sqlite"))
    assert res.exit_code != 0 and "another prune is running" in res.output
    assert len(maildir_files(md.root)) == 7


def test_date_header_age_source_is_used_and_logged(tmp_path, run_cli):
    b = MaildirBuilder(tmp_path / "Maildir")
    # arrived today, but its Date: says a year ago (a restored or re-delivered message)
    b.add(age_days=0, data=message_bytes(1, date=NOW - 365 * DAY))
    b.add(age_days=0, data=message_bytes(2, date=NOW - 1 * DAY))
    log = tmp_path / "l.jsonl"
    arrival = run_cli("prune", str(b.root), "--days", "30", "--json")
    assert arrival.json()["totals"]["selected"] == 0
    res = run_cli("prune", str(b.root), "--days", "30", "--age-source", "date-header", "--json", "--log", str(log))
    assert res.json()["totals"]["selected"] == 1 and res.json()["age_source"] == "date-header"
    import json

    events = [json.loads(x) for x in log.read_text().splitlines()]
    [selected] = [e for e in events if e["event"] == "selected"]
    assert selected["age_source"] == "date-header" and abs(selected["date"] - (NOW - 365 * DAY)) < 2


@pytest.mark.slow
def test_archive_part_beyond_65535_entries_is_zip64_and_verifies(tmp_path):
    from mailwarden.prune.archive import PartWriter, read_manifest
    from mailwarden.prune.stores.base import StoredMessage

    writer = PartWriter(tmp_path / "big.zip", "maildir", "maildir:/x")
    for n in range(65600):
        m = StoredMessage("a", "INBOX", f"cur/{n}.host:2,S", 10, NOW - 40 * DAY)
        writer.add(m, b"Subject: %d\r\n\r\n" % n, m.arrival, n)
    hashes = writer.finish()  # re-reads and hash-checks every entry
    assert len(hashes) == 65600
    data = (tmp_path / "big.zip").read_bytes()
    assert b"PK\x06\x06" in data[-200:]  # ZIP64 end of central directory record
    assert sum(1 for _ in read_manifest(tmp_path / "big.zip")) == 65600
