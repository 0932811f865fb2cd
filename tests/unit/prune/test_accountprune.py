"""The AccountPrune-inspired switch mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.errors import ConfigError
from mailwarden.prune.accountprune import is_switch, map_windows_path, parse


def test_seed_example_maps_to_our_options():
    sw, rest = parse(["/d=5", "/p=Inbox.IMAP", "/n", "/z=c:\\backup\\archive"], {"c": "/srv/c"})
    assert rest == []
    assert sw.days == 5 and sw.folders == ["Inbox.IMAP"] and sw.move
    assert sw.archive == Path("/srv/c/backup/archive")


def test_quotes_kept_by_a_windows_shell_are_stripped():
    sw, _ = parse(['/p="Inbox.IMAP"', '/z="c:\\x"', "/n", "/d=1"])
    assert sw.folders == ["Inbox.IMAP"] and sw.archive == Path("/mnt/c/x")


@pytest.mark.parametrize(("args", "message"), [
    (["/q"], "unknown AccountPrune-style switch"),
    (["/x=3"], "unknown"),
    (["/d"], "needs a value"),
    (["/n=1"], "takes no value"),
    (["/d=five"], "number of days"),
    (["/n"], r"/n \(move\) needs /z="),
    (["/z=c:\\a"], "needs /n"),
    (["/n", "/z=\\\\server\\share"], "UNC"),
    (["/n", "/z=c:\\..\\etc"], "climbs out"),
])
def test_bad_switches_are_clear_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        parse(args)


def test_store_paths_are_not_switches():
    sw, rest = parse(["/var/mail/alice", "/t"])
    assert rest == ["/var/mail/alice"] and sw.test
    assert not is_switch("/var") and is_switch("/d=5")


def test_windows_paths():
    assert map_windows_path("D:/mail/Users") == Path("/mnt/d/mail/Users")
    assert map_windows_path("/plain/posix") == Path("/plain/posix")
