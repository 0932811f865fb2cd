"""``mailwarden prune`` against a real Dovecot 2.3 on 127.0.0.1: Maildir on disk and live IMAP.

Mailboxes are filled through IMAP APPEND with explicit INTERNALDATEs, so the Maildirs are
Dovecot's own writing (names with ,S=/,W=, mtimes = INTERNALDATE). After each prune we ask
Dovecot itself (IMAP and doveadm) what is left.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import subprocess
import sys
import threading
import time
import zipfile
from email.utils import format_datetime

import pytest
from imapclient import IMAPClient

from tests.server.conftest import require_dovecot
from tests.server.harness import Dovecot

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def _state_home(tmp_path, monkeypatch):
    """Prune's default journal and store locks go to the test's tmp dir, not ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

USERS = {u: f"{u}-pw-1" for u in ("alice", "bob", "carol", "dave", "erin", "frank", "gina")}
MASTER, MASTER_PW = "admin", "master-pw-9"
NOW = time.time()
DAY = 86400


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    require_dovecot()
    server = Dovecot(tmp_path_factory.mktemp("prune-dovecot"), USERS)
    master_file = server.runtime / "master-passwd"
    master_file.write_text(f"{MASTER}:{{PLAIN}}{MASTER_PW}\n")
    master_file.chmod(0o600)
    account = pwd.getpwnam("dovecot")
    os.chown(master_file, account.pw_uid, account.pw_gid)
    server.extra_conf = (
        "auth_master_user_separator = *\n"
        f"passdb {{\n  driver = passwd-file\n  master = yes\n  args = scheme=PLAIN {master_file}\n}}\n"
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove_files()


def imap(dovecot, user) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=30)
    client.normalise_times = False
    client.login(user, USERS[user])
    return client


def message(n: int, sent: float) -> bytes:
    when = format_datetime(dt.datetime.fromtimestamp(sent, dt.UTC))
    return (f"From: s{n}@example.org\r\nTo: u@example.com\r\nSubject: m{n}\r\nDate: {when}\r\n"
            f"Message-ID: <m{n}@prune.test>\r\n\r\nbody {n}\r\n").encode()


def fill(dovecot, user, spec) -> None:
    """spec: (folder, n, age_days, flags)"""
    with imap(dovecot, user) as c:
        for folder, n, age, flags in spec:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            when = dt.datetime.fromtimestamp(NOW - age * DAY, dt.UTC)
            c.append(folder, message(n, NOW - age * DAY), flags=flags, msg_time=when)


def ids(dovecot, user, folder="INBOX") -> dict[str, tuple]:
    """Message-ID -> (flags, internaldate epoch) as Dovecot reports them."""
    with imap(dovecot, user) as c:
        if not c.folder_exists(folder):
            return {}
        c.select_folder(folder, readonly=True)
        uids = c.search(["ALL"])
        if not uids:
            return {}
        out = {}
        for data in c.fetch(uids, ["ENVELOPE", "FLAGS", "INTERNALDATE"]).values():
            mid = data[b"ENVELOPE"].message_id.decode()
            out[mid] = (set(data[b"FLAGS"]) - {b"\\Recent"}, data[b"INTERNALDATE"].timestamp())
        return out


def cli(*args, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mailwarden", "prune", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


STANDARD = [("INBOX", 1, 1, ()), ("INBOX", 2, 10, (b"\\Seen",)), ("INBOX", 3, 20, (b"\\Seen", b"\\Answered")),
            ("INBOX", 4, 30, (b"\\Flagged",)), ("Lists", 5, 40, (b"\\Seen",)), ("Lists", 6, 2, ())]


def test_maildir_on_disk_delete_then_dovecot_agrees(dovecot, tmp_path):
    fill(dovecot, "alice", STANDARD)
    store = dovecot.maildir("alice")
    assert any(",S=" in p.name for p in (store / "cur").iterdir()) or any((store / "new").iterdir())
    proc = cli(store, "--days", "5", "--delete", "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(ids(dovecot, "alice")) == {"<m1@prune.test>", "<m4@prune.test>"}  # young + flagged
    assert set(ids(dovecot, "alice", "Lists")) == {"<m6@prune.test>"}
    out = dovecot.doveadm("search", "-u", "alice", "mailbox", "*", "all").stdout.splitlines()
    assert len(out) == 3


def test_maildir_archive_and_restore_keep_internaldate_and_flags(dovecot, tmp_path):
    fill(dovecot, "bob", STANDARD)
    before = {**ids(dovecot, "bob"), **ids(dovecot, "bob", "Lists")}
    store = dovecot.maildir("bob")
    proc = cli(store, "--days", "5", "--archive", tmp_path / "arch", "--journal", tmp_path / "j.sqlite")
    assert proc.returncode == 0, proc.stderr
    zips = sorted((tmp_path / "arch").rglob("*.zip"))
    assert len(zips) == 2
    with zipfile.ZipFile(zips[0]) as zf:
        assert zf.testzip() is None
    assert set(ids(dovecot, "bob")) == {"<m1@prune.test>", "<m4@prune.test>"}
    proc = cli("restore", tmp_path / "arch", "--json")
    assert proc.returncode == 0, proc.stderr
    dovecot.chown_mail()  # we ran as root; Dovecot writes as the mail account
    after = {**ids(dovecot, "bob"), **ids(dovecot, "bob", "Lists")}
    assert set(after) == set(before)
    for mid, (flags, internal) in before.items():
        assert after[mid][0] == flags, mid
        assert abs(after[mid][1] - internal) < 1, mid


def test_imap_delete_is_scoped_to_our_uids(dovecot, tmp_path):
    fill(dovecot, "carol", STANDARD)
    # another client marked a young message \Deleted and has not expunged it yet
    with imap(dovecot, "carol") as c:
        c.select_folder("INBOX")
        young = c.search(["SUBJECT", "m1"])
        c.add_flags(young, [b"\\Deleted"])
    pw = tmp_path / "pw"
    pw.write_text(USERS["carol"])
    proc = cli(f"imap://carol@127.0.0.1:{dovecot.imap_port}", "--password-file", pw, "--days", "5",
               "--delete", "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 0, proc.stderr
    left = ids(dovecot, "carol")
    assert set(left) == {"<m1@prune.test>", "<m4@prune.test>"}
    assert b"\\Deleted" in left["<m1@prune.test>"][0]  # still there: we never ran a plain EXPUNGE
    assert set(ids(dovecot, "carol", "Lists")) == {"<m6@prune.test>"}


def test_imap_move_keeps_flags_and_internaldate(dovecot, tmp_path):
    fill(dovecot, "dave", STANDARD)
    before = ids(dovecot, "dave")
    pw = tmp_path / "pw"
    pw.write_text(USERS["dave"])
    proc = cli(f"imap://dave@127.0.0.1:{dovecot.imap_port}", "--password-file", pw, "--days", "5",
               "--folder", "INBOX", "--move-to", "Old/Mail", "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 0, proc.stderr
    moved = ids(dovecot, "dave", "Old/Mail") or ids(dovecot, "dave", "Old.Mail")
    assert set(moved) == {"<m2@prune.test>", "<m3@prune.test>"}
    for mid, (flags, internal) in moved.items():
        assert flags == before[mid][0] and abs(internal - before[mid][1]) < 1


def test_imap_archive_restore_round_trip(dovecot, tmp_path):
    fill(dovecot, "erin", STANDARD)
    before = ids(dovecot, "erin")
    pw = tmp_path / "pw"
    pw.write_text(USERS["erin"])
    url = f"imap://erin@127.0.0.1:{dovecot.imap_port}"
    proc = cli(url, "--password-file", pw, "--days", "5", "--archive", tmp_path / "a",
               "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(ids(dovecot, "erin")) == {"<m1@prune.test>", "<m4@prune.test>"}
    proc = cli("restore", tmp_path / "a", "--to", url, "--password-file", pw, "--json")
    assert proc.returncode == 0, proc.stderr
    after = ids(dovecot, "erin")
    for mid, (flags, internal) in before.items():
        assert after[mid][0] == flags and abs(after[mid][1] - internal) < 1
    assert set(ids(dovecot, "erin", "Lists")) == {"<m5@prune.test>", "<m6@prune.test>"}


def test_master_user_prunes_many_accounts(dovecot, tmp_path):
    for user in ("frank", "gina"):
        fill(dovecot, user, STANDARD)
    users = tmp_path / "users"
    users.write_text("# accounts to prune\nfrank\ngina\n")
    pw = tmp_path / "pw"
    pw.write_text(MASTER_PW)
    proc = cli(f"imap://127.0.0.1:{dovecot.imap_port}", "--user-list", users, "--master-user", MASTER,
               "--password-file", pw, "--days", "5", "--delete", "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 0, proc.stderr
    for user in ("frank", "gina"):
        assert set(ids(dovecot, user)) == {"<m1@prune.test>", "<m4@prune.test>"}


def test_wrong_password_is_a_clear_partial_failure(dovecot, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("not-the-password")
    proc = cli(f"imap://alice@127.0.0.1:{dovecot.imap_port}", "--password-file", pw, "--days", "5",
               "--delete", "--journal", tmp_path / "j.sqlite", "--json")
    assert proc.returncode == 6
    assert "IMAP login failed for alice" in proc.stdout


def test_imap_delivery_during_a_prune_is_untouched(dovecot, tmp_path):
    user = "gina"
    with imap(dovecot, user) as c:
        c.create_folder("Bulk")
        for n in range(300):
            c.append("Bulk", message(1000 + n, NOW - 30 * DAY), flags=(b"\\Seen",),
                     msg_time=dt.datetime.fromtimestamp(NOW - 30 * DAY, dt.UTC))
    delivered = []

    def deliver():
        with imap(dovecot, user) as c:
            for n in range(60):
                c.append("Bulk", message(5000 + n, NOW - 400 * DAY))  # old Date:, arriving now
                delivered.append(f"<m{5000 + n}@prune.test>")

    pw = tmp_path / "pw"
    pw.write_text(USERS[user])
    t = threading.Thread(target=deliver)
    t.start()
    proc = cli(f"imap://{user}@127.0.0.1:{dovecot.imap_port}", "--password-file", pw, "--days", "5",
               "--folder", "Bulk", "--archive", tmp_path / "a", "--journal", tmp_path / "j.sqlite",
               "--batch-size", "25")
    t.join()
    assert proc.returncode == 0, proc.stderr
    assert set(ids(dovecot, user, "Bulk")) == set(delivered)
