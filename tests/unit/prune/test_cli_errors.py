"""Bugs a new user hit with ``mailwarden prune`` from a fresh clone: clear errors, right exit codes."""

from __future__ import annotations

import pytest

from mailwarden.prune.journal import Journal
from tests.unit.prune.builders import MaildirBuilder, maildir_files


@pytest.fixture
def md(tmp_path):
    b = MaildirBuilder(tmp_path / "Maildir")
    for age in (1, 40, 50):
        b.add(age_days=age)
    return b


# -- 1. --archive into a file or an impossible path ----------------------------------------------
def test_archive_into_a_regular_file_is_a_usage_error_and_journals_nothing(md, tmp_path, run_cli):
    not_a_dir = tmp_path / "archive.txt"
    not_a_dir.write_text("x")
    journal = tmp_path / "j.sqlite"
    res = run_cli("prune", md.root, "--days", "30", "--archive", not_a_dir, "--journal", journal)
    assert res.exit_code == 2, res.stderr
    assert "not a directory" in res.stderr
    assert len(maildir_files(md.root)) == 3
    if journal.exists():
        jr = Journal(journal)
        try:
            assert jr.parts() == [] and jr.unfinished_runs() == []
        finally:
            jr.close()
    # and a later real run works
    ok = run_cli("prune", md.root, "--days", "30", "--archive", tmp_path / "arch", "--journal", journal, "--json")
    assert ok.exit_code == 0, ok.stderr
    assert ok.json()["totals"]["archived"] == 2


def test_archive_under_an_uncreatable_path_is_a_usage_error(md, tmp_path, run_cli):
    res = run_cli("prune", md.root, "--days", "30", "--archive", "/proc/forbidden/arch")
    assert res.exit_code == 2, res.stderr
    assert "--archive" in res.stderr
    assert len(maildir_files(md.root)) == 3


def test_resume_clears_a_planned_part_whose_path_cannot_exist(md, tmp_path, run_cli):
    # What the bug left behind: a 'writing' part under a regular file, in an unfinished run.
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    journal = tmp_path / "j.sqlite"
    jr = Journal(journal)
    run_id = jr.start_run(str(md.root), "archive", {})
    jr.start_part(run_id, "Maildir", "INBOX", blocker / "Maildir" / "INBOX" / f"{run_id}-001.zip")
    jr.close()
    res = run_cli("prune", md.root, "--days", "30", "--archive", tmp_path / "arch", "--journal", journal, "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["resumed"]["parts_discarded"] == 1
    assert doc["totals"]["archived"] == 2
    assert len(maildir_files(md.root)) == 1


# -- 2. nonsense ages and sizes --------------------------------------------------------------------
@pytest.mark.parametrize("days", ["nan", "inf", "-inf", "-5", "1e308"])
def test_days_must_be_finite_and_not_negative(md, run_cli, days):
    res = run_cli("prune", md.root, f"--days={days}", "--json")
    assert res.exit_code == 2, res.stderr
    assert "--days" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_accountprune_days_switch_nan_is_a_usage_error(md, run_cli):
    res = run_cli("prune", md.root, "/d=nan")
    assert res.exit_code == 2, res.stderr
    assert "finite" in res.stderr


@pytest.mark.parametrize("before", ["99999-01-01", "yesterday", "0001-01-01T00:00+23:59"])
def test_nonsense_before_is_a_usage_error(md, run_cli, before):
    res = run_cli("prune", md.root, "--before", before, "--json")
    assert res.exit_code == 2, res.stderr
    assert "--before" in res.stderr or "not a date" in res.stderr


@pytest.mark.parametrize("size", ["-5", "abc", "1.5M", "nan"])
def test_nonsense_larger_than_is_a_usage_error(md, run_cli, size):
    res = run_cli("prune", md.root, "--days", "1", f"--larger-than={size}")
    assert res.exit_code == 2, res.stderr
    assert "not a size" in res.stderr


# -- 3. exit codes per docs/cli.md (1 is a bug) ------------------------------------------------------
def test_missing_store_is_an_input_error_with_a_hint_and_json(tmp_path, run_cli):
    res = run_cli("prune", tmp_path / "nowhere", "--days", "5", "--json")
    assert res.exit_code == 4, res.stderr
    assert "does not exist" in res.stderr and "hint:" in res.stderr
    doc = res.json()
    assert doc["schema"] == 1 and "does not exist" in doc["error"]


def test_unknown_kind_of_store_is_an_input_error(tmp_path, run_cli):
    (tmp_path / "odd").mkdir()
    res = run_cli("prune", tmp_path / "odd")
    assert res.exit_code == 4, res.stderr
    assert "--store-type" in res.stderr


def test_unreadable_journal_is_an_input_error(md, tmp_path, run_cli):
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"this is not sqlite" * 100)
    res = run_cli("prune", md.root, "--days", "30", "--delete", "--journal", journal, "--json")
    assert res.exit_code == 4, res.stderr
    assert "journal" in res.json()["error"]
    assert len(maildir_files(md.root)) == 3


def test_accountprune_without_config_names_the_settings(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)           # no ./mailwarden.toml
    res = run_cli("prune", "/d=5", "/p=Inbox.IMAP", "/n", "/z=c:\\backup\\archive")
    assert res.exit_code == 2, res.stderr
    assert "does not exist" in res.stderr
    assert "[prune] store" in res.stderr and "[prune.drives]" in res.stderr


# -- 4. an unreachable IMAP server is SERVER (5), not PARTIAL ----------------------------------------
def test_unreachable_imap_server_exits_5_with_null_folder_and_key(run_cli, monkeypatch):
    import socket

    with socket.socket() as s:            # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MAILWARDEN_IMAP_PASSWORD", "secret")
    res = run_cli("prune", f"imap://admin@127.0.0.1:{port}", "--json")
    assert res.exit_code == 5, res.stderr
    err = res.json()["errors"][0]
    assert err["account"] == "admin" and err["folder"] is None and err["key"] is None
    assert "cannot reach" in err["reason"]


# -- 5. files that are not an mbox, folders that do not exist ---------------------------------------
def test_binary_file_is_not_an_mbox(tmp_path, run_cli):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    res = run_cli("prune", junk, "--days", "1", "--delete")
    assert res.exit_code == 4, res.stderr
    assert "not an mbox" in res.stderr
    assert junk.read_bytes() == bytes(range(256)) * 4


def test_empty_file_warns_empty_mbox(tmp_path, run_cli):
    empty = tmp_path / "empty"
    empty.touch()
    res = run_cli("prune", empty, "--days", "1", "--json")
    assert res.exit_code == 0, res.stderr
    assert "empty mbox" in res.stderr


def test_device_is_not_a_regular_file(run_cli):
    res = run_cli("prune", "/dev/zero", "--days", "1")
    assert res.exit_code == 4, res.stderr
    assert "not a regular file" in res.stderr


def test_folder_pattern_matching_nothing_names_the_folders(md, run_cli):
    md.add("Lists/Dovecot", age_days=40)
    res = run_cli("prune", md.root, "--days", "30", "--folder", "Trsh", "--json")
    assert res.exit_code == 0, res.stderr
    assert "--folder 'Trsh' matches no folder" in res.stderr
    assert "INBOX" in res.stderr and "Lists/Dovecot" in res.stderr
    assert res.json()["totals"]["selected"] == 0


# -- 6. restore: bad manifests, empty dirs, devices ---------------------------------------------------
def _zip(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("members, word", [
    ({"0000001-a.eml": b"Subject: x\r\n\r\nhi\r\n"}, "missing"),
    ({"mailwarden-manifest.jsonl": b"not json\n"}, "invalid"),
    ({"mailwarden-manifest.jsonl": b'{"mailwarden_manifest": 1}\n'}, "invalid"),
    ({"mailwarden-manifest.jsonl": b'[1, 2]\n'}, "invalid"),
])
def test_restore_of_a_zip_with_a_bad_manifest_says_so(tmp_path, run_cli, members, word):
    z = _zip(tmp_path / "a.zip", members)
    res = run_cli("prune", "restore", z, "--json")
    assert res.exit_code == 4, res.stderr
    assert f"manifest ({'mailwarden-manifest.jsonl'}) is {word}" in res.stderr or \
        f"manifest is {word}" in res.stderr
    assert "unknown store type" not in res.stderr
    assert res.json()["error"]


def test_restore_of_a_dir_without_zips(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    res = run_cli("prune", "restore", tmp_path / "empty")
    assert res.exit_code == 4, res.stderr
    assert "no archives found in" in res.stderr


def test_restore_of_a_device_is_not_a_regular_file(run_cli):
    res = run_cli("prune", "restore", "/dev/zero")
    assert res.exit_code == 4, res.stderr
    assert "not a regular file" in res.stderr


def test_unwritable_log_or_journal_location_is_a_clean_error(md, run_cli):
    res = run_cli("prune", md.root, "--days", "1", "--log", "/proc/nowhere/log.jsonl")
    assert res.exit_code == 2, res.stderr
    assert "cannot write the prune log" in res.stderr
    res = run_cli("prune", md.root, "--days", "1", "--delete", "--journal", "/proc/nowhere/j.sqlite")
    assert res.exit_code in (2, 4), res.stderr
    assert len(maildir_files(md.root)) == 3
