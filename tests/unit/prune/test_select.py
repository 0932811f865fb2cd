"""Selection predicates, folder names and the age sources."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.errors import ConfigError
from mailwarden.prune.select import (
    Criteria,
    canonical_folder,
    cutoff_from,
    folder_matcher,
    header_date,
    parse_size,
)
from mailwarden.prune.stores.base import DELETED, FLAGGED, SEEN, StoredMessage

NOW = 1_700_000_000.0


def msg(age_days: float, flags=(), size=1000) -> StoredMessage:
    t = NOW - age_days * 86400
    return StoredMessage("a@x.org", "INBOX", "k", size, t, t, frozenset(flags), "id")


@pytest.mark.parametrize(("given", "canon"), [
    ("Inbox.IMAP", "INBOX"), ("inbox", "INBOX"), ("INBOX", "INBOX"),
    ("Sent.IMAP\\Old.IMAP", "Sent/Old"), ("Sent/Old", "Sent/Old"), ("Trash.IMAP", "Trash"),
])
def test_canonical_folder(given, canon):
    assert canonical_folder(given) == canon


def test_folder_globs_accept_imap_mdaemon_and_dot_names():
    match = folder_matcher(["Archive.*"])
    assert match("Archive/2020") and not match("INBOX")
    assert folder_matcher(["Archive.IMAP\\*"])("Archive/2021")
    assert folder_matcher(["Inbox.IMAP"])("INBOX")
    assert not folder_matcher(["Inbox.IMAP"])("Sent")
    assert folder_matcher([])("anything")


def test_sizes_and_dates():
    assert parse_size("500k") == 512000 and parse_size("2M") == 2 * 1024**2 and parse_size("17") == 17
    with pytest.raises(ConfigError):
        parse_size("lots")
    assert cutoff_from(2, None, now=NOW) == NOW - 2 * 86400
    assert cutoff_from(None, "2024-01-02") == 1704153600.0
    with pytest.raises(ConfigError):
        cutoff_from(1, "2024-01-01")


def test_decide_skips_flagged_unless_asked_and_young_mail():
    c = Criteria(cutoff=NOW - 5 * 86400)
    assert c.decide(msg(10))[:2] == (True, "selected")
    assert c.decide(msg(1))[:2] == (False, "young")
    assert c.decide(msg(10, [FLAGGED]))[:2] == (False, "flagged")
    assert Criteria(cutoff=NOW - 5 * 86400, include_flagged=True).decide(msg(10, [FLAGGED]))[0]


def test_seen_unseen_deleted_only_and_size():
    cut = NOW - 86400
    assert not Criteria(cutoff=cut, seen=True).decide(msg(3))[0]
    assert Criteria(cutoff=cut, seen=True).decide(msg(3, [SEEN]))[0]
    assert not Criteria(cutoff=cut, seen=False).decide(msg(3, [SEEN]))[0]
    assert Criteria(cutoff=cut, deleted_only=True).decide(msg(3, [DELETED]))[0]
    assert Criteria(cutoff=cut, deleted_only=True).decide(msg(3))[1] == "not-deleted"
    assert Criteria(cutoff=cut, larger_than=2000).decide(msg(3, size=1000))[1] == "small"


def test_date_header_source_and_missing_date_is_never_old():
    c = Criteria(cutoff=NOW - 86400, age_source="date-header")
    old = b"Subject: x\r\nDate: Tue, 01 Jan 2019 10:00:00 +0000\r\n\r\nbody"
    ok, reason, date = c.decide(msg(0), old)
    assert ok and date == 1546336800.0
    assert c.decide(msg(100), b"Subject: no date\r\n\r\n")[1] == "no-date"
    # the Date: of a quoted message in the body is not the header
    assert header_date(b"Subject: x\n\nDate: Tue, 01 Jan 2019 10:00:00 +0000\n") is None


def test_unknown_age_source_is_a_usage_error():
    with pytest.raises(ConfigError):
        Criteria(age_source="received")


def test_account_and_domain_filters():
    c = Criteria(domains=["example.com"], accounts=["b*"])
    assert c.account_ok("bob@example.com") and not c.account_ok("alice@example.com")
    assert not c.account_ok("bob@other.org")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_header_date_never_raises_on_hostile_bytes(data):
    start = time.monotonic()
    header_date(b"Date: " + data)
    header_date(data)
    assert time.monotonic() - start < 2
