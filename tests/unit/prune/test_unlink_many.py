"""unlink_many (the threaded unlink behind Maildir and MDaemon deletes) and Maildir's checked open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailwarden.prune.stores.base import unlink_many
from mailwarden.prune.stores.maildir import MaildirStore


def test_unlink_many_removes_in_threads_and_reports_each_failure(tmp_path: Path):
    paths = []
    for n in range(300):  # above the parallel threshold: the thread pool is used
        p = tmp_path / f"m{n}"
        p.write_bytes(b"x")
        paths.append(str(p))
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious"
    target.write_bytes(b"keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    paths[10] = str(tmp_path / "never-existed")
    paths.append(str(link))
    errors = unlink_many(paths)
    assert len(errors) == len(paths)
    assert isinstance(errors[10], FileNotFoundError)
    assert [i for i, e in enumerate(errors) if e is not None] == [10]
    assert sorted(os.listdir(tmp_path)) == ["m10", "outside"]  # m10 was not in the list
    # the symlink itself went, never what it pointed to
    assert target.read_bytes() == b"keep me"


def test_maildir_read_refuses_a_file_replaced_since_listing(tmp_path: Path):
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "1.M1P1.host:2,S").write_bytes(b"Subject: a\n\nold\n")
    store = MaildirStore(root)
    [message] = list(store.messages(next(store.accounts()), "INBOX"))
    assert store.read(message) == b"Subject: a\n\nold\n"
    # another process replaces the file under the same name (new inode, same size)
    replacement = root / "tmp" / "r"
    replacement.write_bytes(b"Subject: b\n\nnew\n")
    os.replace(replacement, root / "cur" / "1.M1P1.host:2,S")
    with pytest.raises(FileNotFoundError):
        store.read(message)
