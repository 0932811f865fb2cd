"""The MDaemon store on test stores built from the documented layout (IMAP.MRK, .IMAP folders)."""

from __future__ import annotations

import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.errors import StoreError
from mailwarden.prune.stores.mdaemon import MDaemonStore, Mrk
from tests.unit.prune.builders import DAY, NOW, MDaemonBuilder, read_mrk


@pytest.fixture
def users(tmp_path):
    b = MDaemonBuilder(tmp_path / "MDaemon" / "Users")
    for age in (1, 2, 10, 20):
        b.add("bob@example.com", age_days=age, flags="S")
    b.add("bob@example.com", age_days=30, flags="SF")          # flagged: kept by default
    b.add("bob@example.com", "Archive/2020", age_days=400)
    b.add("carol@example.net", age_days=50, flags="ST")        # \Deleted
    return b


def test_lists_accounts_folders_flags_and_mrk_dates(users):
    store = MDaemonStore(users.root)
    assert list(store.accounts()) == ["bob@example.com", "carol@example.net"]
    assert list(store.folders("bob@example.com")) == ["INBOX", "Archive", "Archive/2020"]
    msgs = list(store.messages("bob@example.com", "INBOX"))
    assert len(msgs) == 5
    assert msgs[4].flagged and msgs[4].seen
    assert abs(msgs[2].arrival - (NOW - 10 * DAY)) < 2


def test_delete_drops_records_and_bumps_write_counter(users):
    store = MDaemonStore(users.root)
    inbox = users.folder_dir("bob@example.com")
    (before_hdr, before) = read_mrk(inbox / "IMAP.MRK")
    old = [m for m in store.messages("bob@example.com", "INBOX") if m.arrival < NOW - 5 * DAY][:2]
    results = store.delete(old)
    assert all(r.ok for r in results)
    hdr, recs = read_mrk(inbox / "IMAP.MRK")
    assert hdr[3] == before_hdr[3] + 1                       # LastWriteCounter
    assert hdr[1:3] == before_hdr[1:3]                        # UIDValidity, UIDNext untouched
    assert [r[0] for r in recs] == [r[0] for r in before if r[0] not in {m.key for m in old}]
    assert not any((inbox / m.key).exists() for m in old)
    assert not (inbox / "IMAP.LCK").exists()


def test_move_keeps_flags_and_date_and_gives_a_new_uid(users):
    store = MDaemonStore(users.root)
    flagged = [m for m in store.messages("bob@example.com", "INBOX") if m.flagged]
    [res] = store.move(flagged, "Public")
    assert res.ok
    dest = users.folder_dir("bob@example.com", "Public")
    hdr, recs = read_mrk(dest / "IMAP.MRK")
    assert len(recs) == 1 and recs[0][1] == 40 and recs[0][2] == 1 and hdr[2] == 2  # flags S|F, UID 1
    assert abs(recs[0][4] - (NOW - 30 * DAY)) < 2
    assert (dest / res.new_key).exists()


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda data: b"\x02" + data[1:], "header version 2"),
    (lambda data: data + b"xx", "partial record"),
    (lambda data: data[:36] + b"\xff" * 23 + data[59:], "does not parse"),
    (lambda data: data[:20], "shorter than its 36-byte header"),
])
def test_unparsable_index_refuses_the_folder(users, mutate, why):
    inbox = users.folder_dir("bob@example.com")
    mrk = inbox / "IMAP.MRK"
    mrk.write_bytes(mutate(mrk.read_bytes()))
    store = MDaemonStore(users.root)
    with pytest.raises(StoreError, match=why):
        list(store.messages("bob@example.com", "INBOX"))


def test_msg_without_record_is_unseen_and_dated_by_file_time(users):
    users.add("bob@example.com", age_days=9, record=False)
    store = MDaemonStore(users.root)
    last = list(store.messages("bob@example.com", "INBOX"))[-1]
    assert not last.seen and abs(last.arrival - (NOW - 9 * DAY)) < 2


def test_mrk_roundtrip_is_byte_exact(users):
    data = (users.folder_dir("bob@example.com") / "IMAP.MRK").read_bytes()
    assert Mrk.parse(data, "x").to_bytes() == data


def test_seed_command_as_written(users, tmp_path, monkeypatch, run_cli):
    """`mailwarden prune /d=5 /p="Inbox.IMAP" /n /z="c:\\backup\\archive"` on a real archive dir."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mailwarden.toml").write_text(
        f'[prune]\nstore = "{users.root}"\n[prune.drives]\nc = "{tmp_path / "c"}"\n')
    res = run_cli("prune", "/d=5", "/p=Inbox.IMAP", "/n", "/z=c:\\backup\\archive", "--json")
    assert res.exit_code == 0, res.output
    doc = res.json()
    assert doc["action"] == "archive" and doc["store_type"] == "mdaemon"
    assert doc["totals"]["archived"] == 3  # bob's 10 and 20 day old mail, carol's 50 day old one
    folders = {(f["account"], f["folder"]): f for f in doc["folders"]}
    assert set(folders) == {("bob@example.com", "INBOX"), ("carol@example.net", "INBOX")}
    assert folders[("bob@example.com", "INBOX")]["skipped"] == {"young": 2, "flagged": 1}
    [bob_zip] = (tmp_path / "c" / "backup" / "archive" / "bob_example.com" / "INBOX").glob("*.zip")
    with zipfile.ZipFile(bob_zip) as zf:
        assert zf.testzip() is None
        names = [n for n in zf.namelist() if n.endswith(".eml")]
        assert len(names) == 2
        # entry time is the message date
        assert zf.getinfo(names[0]).date_time[:3] in {
            tuple(__import__("time").localtime(NOW - d * DAY)[:3]) for d in (10, 20)}
    inbox = users.folder_dir("bob@example.com")
    _, recs = read_mrk(inbox / "IMAP.MRK")
    assert len(recs) == 3 == len(list(inbox.glob("*.msg")))
    # the Archive/2020 folder was not named by /p=, so it is untouched
    assert len(list(users.folder_dir("bob@example.com", "Archive/2020").glob("*.msg"))) == 1

    restored = run_cli("prune", "restore", str(tmp_path / "c" / "backup" / "archive"), "--json")
    assert restored.exit_code == 0, restored.output
    assert restored.json()["restored"] == 3
    _, recs = read_mrk(inbox / "IMAP.MRK")
    assert len(recs) == 5 == len(list(inbox.glob("*.msg")))
    again = run_cli("prune", "restore", str(tmp_path / "c" / "backup" / "archive"), "--json")
    assert again.json()["restored"] == 0 and again.json()["already_present"] == 3


def test_refused_folder_gives_partial_exit_and_others_still_pruned(users, tmp_path, run_cli):
    mrk = users.folder_dir("carol@example.net") / "IMAP.MRK"
    mrk.write_bytes(b"\x07" + mrk.read_bytes()[1:])
    res = run_cli("prune", str(users.root), "--days", "5", "--delete", "--json")
    assert res.exit_code == 6
    doc = res.json()
    assert doc["totals"]["deleted"] == 3  # bob: 10, 20 days in INBOX, 400 days in Archive/2020
    assert any("header version 7" in e["reason"] for e in doc["errors"])
    assert len(list(users.folder_dir("carol@example.net").glob("*.msg"))) == 1


def test_deleted_only_purges_flagged_deleted(users, run_cli):
    res = run_cli("prune", str(users.root), "--deleted-only", "--days", "7", "--delete", "--json")
    assert res.exit_code == 0, res.output
    assert res.json()["totals"]["deleted"] == 1
    assert not list(users.folder_dir("carol@example.net").glob("*.msg"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_hostile_imap_mrk_is_parsed_or_refused_never_crashes(data):
    try:
        Mrk.parse(data, "fuzz")
    except StoreError:
        pass


def test_original_that_cannot_be_removed_is_retried_and_never_archived_twice(users, tmp_path, monkeypatch):
    from mailwarden.prune.actions import PrunePlan, Pruner, PruneSummary, RunLog
    from mailwarden.prune.journal import Journal
    from mailwarden.prune.select import Criteria

    def run():
        store = MDaemonStore(users.root, lock_wait=0.2)
        summary = PruneSummary("s", "mdaemon", "archive", "arrival", NOW - 5 * DAY)
        pruner = Pruner(store, Criteria(cutoff=NOW - 5 * DAY, accounts=["carol@*"]),
                        PrunePlan("archive", archive_dir=tmp_path / "arch"), summary,
                        Journal(tmp_path / "j.sqlite"), RunLog(None))
        pruner.resume()
        pruner.run()
        return summary

    inbox = users.folder_dir("carol@example.net")
    # MDaemon itself (not a dead mailwarden) takes the folder lock while the zip is written
    import mailwarden.prune.archive as archive_mod

    real_add = archive_mod.PartWriter.add

    def add_then_lock(self, *args):
        (inbox / "IMAP.LCK").write_text("MDaemon\r\n")
        return real_add(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(archive_mod.PartWriter, "add", add_then_lock)
        first = run()
    assert first.failed == 1 and len(list(inbox.glob("*.msg"))) == 1
    second = run()  # still locked: not archived a second time
    assert second.totals()["archived"] == 0
    assert second.folders[("carol@example.net", "INBOX")].skipped == {"archived-pending-removal": 1}
    (inbox / "IMAP.LCK").unlink()
    third = run()  # the lock is gone: the original goes, from the first archive
    assert third.resumed["archived_originals_removed"] == 1
    assert not list(inbox.glob("*.msg"))
    assert len(list((tmp_path / "arch").rglob("*.zip"))) == 1
