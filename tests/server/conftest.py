"""Fixtures that start real Dovecot and Postfix instances on 127.0.0.1 (see harness.py).

Every test here is a real-server test: mark it ``@pytest.mark.server``. The
fixtures skip (with the reason) when the servers are not installed or we are
not root, and stop what they started even when the test fails.
"""

from __future__ import annotations

import pytest

from tests.server.harness import (
    DEFAULT_USERS,
    Dovecot,
    Postfix,
    have_dovecot,
    have_postfix,
    why_not_dovecot,
    why_not_postfix,
)
from tests.server.scenarios import MailSite, start_mail_site


def require_dovecot() -> None:
    """Skip the calling test when a real Dovecot cannot be started here."""
    if not have_dovecot():
        pytest.skip(why_not_dovecot())


def require_postfix() -> None:
    """Skip the calling test when a real Postfix cannot be started here."""
    if not have_postfix():
        pytest.skip(why_not_postfix())


@pytest.fixture
def dovecot(tmp_path) -> Dovecot:
    """A running Dovecot IMAP server with users alice and bob (passwords in DEFAULT_USERS).

    ``dovecot.users`` maps user → password; ``dovecot.maildir("alice")`` is her
    Maildir++ root; ``dovecot.imap_port`` the IMAP port on 127.0.0.1.
    """
    require_dovecot()
    server = Dovecot(tmp_path / "dovecot", dict(DEFAULT_USERS))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove_files()


@pytest.fixture(scope="module")
def mail_site(tmp_path_factory) -> MailSite:
    """Dovecot (SASL + IMAP) and Postfix (port 25-style smtpd + submission) with the standard
    scenario configuration; shared by the tests of one module.

    mynetworks = 127.0.0.10/32 (the "office PC"); 127.0.0.20 is a roaming user who
    authenticates; 127.0.0.77 is an outside host. See scenarios.start_mail_site.
    """
    require_dovecot()
    require_postfix()
    site = start_mail_site(tmp_path_factory.mktemp("mail_site"))
    try:
        yield site
    finally:
        site.stop()


__all__ = ["Dovecot", "Postfix", "require_dovecot", "require_postfix"]
