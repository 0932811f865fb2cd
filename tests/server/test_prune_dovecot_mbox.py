"""``mailwarden prune`` on an mbox that a real Dovecot 2.3 wrote and keeps serving (mbox_write_locks = dotlock fcntl)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
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
NOW = time.time()
DAY = 86400


def msg(n: int, sent: float) -> bytes:
    when = format_datetime(dt.datetime.fromtimestamp(sent, dt.UTC))
    return (f"From: s{n}@example.org\r\nSubject: m{n}\r\nDate: {when}\r\nMessage-ID: <m{n}@mbox.test>\r\n\r\n"
            f"body {n}\r\nFrom here on, a body line that starts with From\r\n").encode()


def test_dovecot_mbox_delete_and_dovecot_still_serves_the_rest(tmp_path):
    require_dovecot()
    with Dovecot(tmp_path / "dv", {"alice": "alice-pw-1"}, mail_format="mbox") as dovecot:
        dovecot.start()
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as c:
            c.login("alice", "alice-pw-1")
            for n, age in enumerate((40, 1, 30, 2, 50)):
                t = dt.datetime.fromtimestamp(NOW - age * DAY, dt.UTC)
                c.append("INBOX", msg(n, NOW - age * DAY), flags=(b"\\Seen",), msg_time=t)
            c.select_folder("INBOX")
            c.search(["ALL"])  # let Dovecot write its X-UID/Status headers
        inbox = dovecot.mail_home("alice") / "mail" / "inbox"
        assert inbox.read_bytes().startswith(b"From ")
        proc = subprocess.run([sys.executable, "-m", "mailwarden", "prune", str(inbox), "--days", "5",
                               "--delete", "--journal", str(tmp_path / "j.sqlite"), "--json"],
                              capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert proc.returncode == 0, proc.stderr
        assert '"deleted": 3' in proc.stdout
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as c:
            c.normalise_times = False
            c.login("alice", "alice-pw-1")
            c.select_folder("INBOX", readonly=True)
            data = c.fetch(c.search(["ALL"]), ["ENVELOPE", "BODY[TEXT]"])
            got = {d[b"ENVELOPE"].message_id.decode(): d[b"BODY[TEXT]"] for d in data.values()}
        assert set(got) == {"<m1@mbox.test>", "<m3@mbox.test>"}
        assert all(b"From here on" in body for body in got.values())
        assert not inbox.with_name("inbox.lock").exists()
