"""Mail traffic for the real-server tests: who sends what, from which loopback address.

All of 127.0.0.0/8 is loopback on Linux, so one machine can play several
clients: ``smtplib.SMTP(..., source_address=("127.0.0.77", 0))`` connects from
127.0.0.77. The standard site (``start_mail_site``) trusts only the office PC::

    127.0.0.10  OFFICE_PC   in mynetworks: relays without AUTH
    127.0.0.20  ROAMING     a user on the road: authenticates on the submission port
    127.0.0.77  OUTSIDE     any other host on the Internet

``send_message`` is the one reusable primitive; ``standard_scenario`` uses it
to send the five cases issue 3's real-server test names and returns what was
sent (``SentMessage``) with the outcome the server gave and the verdict that
``trace``/``logs find`` should reach.
"""

from __future__ import annotations

import email.utils
import os
import shutil
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from tests.server.harness import DEFAULT_USERS, Dovecot, Postfix

OFFICE_PC = "127.0.0.10"
ROAMING = "127.0.0.20"
OUTSIDE = "127.0.0.77"
TRUSTED_NETWORKS = (f"{OFFICE_PC}/32",)
OUTSIDE_DOMAIN = "outside.test"  # never resolved: the site's relayhost is a local smtp-sink

# Outcomes recorded on SentMessage.outcome.
ACCEPTED = "accepted"          # DATA got 250 (queued as ...)
REJECTED = "rejected"          # every recipient (or MAIL FROM) refused
AUTH_FAILED = "auth-failed"    # AUTH refused; nothing sent

SMTP_TIMEOUT = 60  # seconds; generous for two loaded cores


@dataclass
class SentMessage:
    """One SMTP attempt and what the server answered."""

    label: str
    message_id: str                       # without angle brackets
    mail_from: str
    rcpt_to: list[str]
    port: int
    source_ip: str
    auth_user: str | None = None
    helo: str | None = None
    outcome: str = ""
    queue_id: str | None = None          # from "250 2.0.0 Ok: queued as ID"
    replies: list[tuple[str, int, str]] = field(default_factory=list)  # (command, code, text)
    accepted_rcpts: list[str] = field(default_factory=list)
    # What the tools should conclude for a delivered message (trace verdict names).
    expected_verdict: str | None = None
    expected_account: str | None = None
    raw: bytes = b""

    def reply_to(self, command: str) -> tuple[int, str] | None:
        """The (code, text) the server gave to the first ``command`` (e.g. "RCPT", "AUTH")."""
        for cmd, code, text in self.replies:
            if cmd == command:
                return code, text
        return None


@dataclass
class MailSite:
    """A running Dovecot + Postfix pair configured as the standard scenario site."""

    workdir: Path
    dovecot: Dovecot
    postfix: Postfix

    @property
    def domain(self) -> str:
        return self.postfix.domain

    @property
    def users(self) -> dict[str, str]:
        return self.dovecot.users

    @property
    def maillog(self) -> Path:
        return self.postfix.log_path

    def address(self, user: str) -> str:
        return self.postfix.address(user)

    def stop(self) -> None:
        try:
            self.postfix.stop()
        finally:
            self.dovecot.stop()
            self.postfix.remove_files()
            self.dovecot.remove_files()


def start_mail_site(
    workdir: Path,
    *,
    users: dict[str, str] | None = None,
    mynetworks: tuple[str, ...] = TRUSTED_NETWORKS,
    main_cf: dict[str, str] | None = None,
    auth_failure_delay: str = "0",
) -> MailSite:
    """Start Dovecot (IMAP + SASL) and Postfix (smtpd + submission) for the scenarios.

    Postfix authenticates through Dovecot (socket in its queue's private/auth),
    stamps ``(Authenticated sender: user)`` into Received, trusts only
    ``mynetworks`` and relays everything for other domains to a local smtp-sink.
    """
    workdir = Path(workdir)
    dovecot = Dovecot(
        workdir, dict(users or DEFAULT_USERS), auth_failure_delay=auth_failure_delay
    )
    postfix = Postfix(workdir, mynetworks=mynetworks, dovecot=dovecot, main_cf=main_cf)
    try:
        dovecot.start()
        postfix.start()
    except BaseException:
        postfix.stop()
        dovecot.stop()
        raise
    return MailSite(workdir=workdir, dovecot=dovecot, postfix=postfix)


def make_message_id(label: str, domain: str) -> str:
    """A unique Message-ID (without brackets) that names the scenario step."""
    return f"{label}.{uuid.uuid4().hex}@{domain}"


def build_message(
    *,
    mail_from: str,
    rcpt_to: list[str],
    message_id: str,
    subject: str,
    body: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    """An RFC 5322 message with the given Message-ID; ``headers`` add or replace fields."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = ", ".join(rcpt_to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in (headers or {}).items():
        del msg[name]
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def send_message(
    site: MailSite | Postfix,
    *,
    port: int,
    source_ip: str,
    mail_from: str,
    rcpt_to: list[str] | str,
    auth: tuple[str, str] | None = None,
    auth_mechanism: str = "PLAIN",
    starttls: bool = False,
    label: str = "msg",
    helo: str | None = None,
    subject: str | None = None,
    body: str = "Test message from the mailwarden real-server scenarios.\n",
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
    expected_verdict: str | None = None,
    expected_account: str | None = None,
) -> SentMessage:
    """Connect from ``source_ip`` to ``port``, optionally AUTH (``auth`` = (user, password),
    one attempt with ``auth_mechanism``), and try to send one message to ``rcpt_to``.
    ``starttls`` encrypts first (for a ``Postfix(tls=True)``).

    Never raises for an SMTP refusal: the refusal is the result (``outcome``,
    ``replies``). Raises only when the server cannot be reached at all.
    """
    postfix = site.postfix if isinstance(site, MailSite) else site
    rcpts = [rcpt_to] if isinstance(rcpt_to, str) else list(rcpt_to)
    sender_domain = mail_from.rpartition("@")[2] or postfix.domain
    message_id = message_id or make_message_id(label, sender_domain)
    sent = SentMessage(
        label=label,
        message_id=message_id,
        mail_from=mail_from,
        rcpt_to=rcpts,
        port=port,
        source_ip=source_ip,
        auth_user=auth[0] if auth else None,
        helo=helo,
        expected_verdict=expected_verdict,
        expected_account=expected_account,
    )
    sent.raw = build_message(
        mail_from=mail_from,
        rcpt_to=rcpts,
        message_id=message_id,
        subject=subject or f"mailwarden scenario: {label}",
        body=body,
        headers=headers,
    )
    with smtplib.SMTP(
        postfix.host,
        port,
        local_hostname=helo or f"client-{source_ip.replace('.', '-')}.test",
        timeout=SMTP_TIMEOUT,
        source_address=(source_ip, 0),
    ) as smtp:
        code, text = smtp.ehlo()
        sent.replies.append(("EHLO", code, text.decode(errors="replace")))
        if starttls:
            # The harness's certificate is self-signed: encrypt, don't verify.
            code, text = smtp.starttls(context=ssl._create_unverified_context())
            sent.replies.append(("STARTTLS", code, _text(text)))
            code, text = smtp.ehlo()
            sent.replies.append(("EHLO", code, _text(text)))
        if auth is not None:
            # One AUTH command per attempt (smtplib's login() would retry with every
            # mechanism, and the log would show two failures for one wrong password).
            smtp.user, smtp.password = auth
            authobject = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}[auth_mechanism]
            try:
                code, text = smtp.auth(auth_mechanism, authobject)
            except smtplib.SMTPAuthenticationError as refused:
                sent.replies.append(("AUTH", refused.smtp_code, _text(refused.smtp_error)))
                sent.outcome = AUTH_FAILED
                return sent
            sent.replies.append(("AUTH", code, _text(text)))
        code, text = smtp.mail(mail_from)
        sent.replies.append(("MAIL", code, _text(text)))
        if code != 250:
            sent.outcome = REJECTED
            return sent
        for rcpt in rcpts:
            code, text = smtp.rcpt(rcpt)
            sent.replies.append(("RCPT", code, _text(text)))
            if code in (250, 251):
                sent.accepted_rcpts.append(rcpt)
        if not sent.accepted_rcpts:
            smtp.rset()
            sent.outcome = REJECTED
            return sent
        code, text = smtp.data(sent.raw)
        reply = _text(text)
        sent.replies.append(("DATA", code, reply))
        if code == 250:
            sent.outcome = ACCEPTED
            if "queued as " in reply:
                sent.queue_id = reply.rsplit("queued as ", 1)[1].split()[0]
        else:
            sent.outcome = REJECTED
    return sent


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def delivered_file(site: MailSite | Postfix, user: str, message_id: str) -> Path | None:
    """The file in ``user``'s Maildir (INBOX new/ or cur/) holding ``message_id``, if delivered."""
    postfix = site.postfix if isinstance(site, MailSite) else site
    needle = f"<{message_id}>".encode().lower()
    maildir = postfix.mailbox(user)
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            with open(path, "rb") as handle:
                head = handle.read(64 * 1024)
            header_block = head.split(b"\n\n", 1)[0].lower()
            if b"message-id: " + needle in header_block:
                return path
    return None


def standard_scenario(site: MailSite) -> list[SentMessage]:
    """Issue 3's traffic: what a small office's server sees in a few minutes.

    1. ``auth-submission``: alice on the road (127.0.0.20) authenticates on the
       submission port and writes to bob (local) — verdict authenticated-account/alice.
    2. ``auth-outside``: the same, to an outside address (relayed to the sink).
    3. ``trusted-pc``: the office PC (127.0.0.10, mynetworks) sends to alice on
       the smtpd port without AUTH — verdict internal-host.
    4. ``inbound``: an outside host (127.0.0.77) sends to alice without AUTH —
       plain inbound mail, verdict external.
    5. ``bad-password``: 127.0.0.77 tries AUTH as bob with a wrong password.
    6. ``relay-denied``: 127.0.0.77 tries to relay to another outside address.

    Waits until Postfix has delivered everything before returning.
    """
    postfix = site.postfix
    alice, bob = site.address("alice"), site.address("bob")
    assert postfix.submission_port is not None, "the standard site has a submission service"
    sent = [
        send_message(
            site,
            label="auth-submission",
            port=postfix.submission_port,
            source_ip=ROAMING,
            auth=("alice", site.users["alice"]),
            mail_from=alice,
            rcpt_to=[bob],
            helo="alice-laptop",
            expected_verdict="authenticated-account",
            expected_account="alice",
        ),
        send_message(
            site,
            label="auth-outside",
            port=postfix.submission_port,
            source_ip=ROAMING,
            auth=("alice", site.users["alice"]),
            mail_from=alice,
            rcpt_to=[f"friend@{OUTSIDE_DOMAIN}"],
            helo="alice-laptop",
            expected_verdict="authenticated-account",
            expected_account="alice",
        ),
        send_message(
            site,
            label="trusted-pc",
            port=postfix.smtp_port,
            source_ip=OFFICE_PC,
            mail_from=bob,
            rcpt_to=[alice],
            helo="office-pc",
            expected_verdict="internal-host",
        ),
        send_message(
            site,
            label="inbound",
            port=postfix.smtp_port,
            source_ip=OUTSIDE,
            mail_from=f"newsletter@{OUTSIDE_DOMAIN}",
            rcpt_to=[alice],
            helo=f"mx.{OUTSIDE_DOMAIN}",
            expected_verdict="external",
        ),
        send_message(
            site,
            label="bad-password",
            port=postfix.submission_port,
            source_ip=OUTSIDE,
            auth=("bob", "not-" + site.users["bob"]),
            mail_from=bob,
            rcpt_to=[f"victim@{OUTSIDE_DOMAIN}"],
            helo="guesser",
        ),
        send_message(
            site,
            label="relay-denied",
            port=postfix.smtp_port,
            source_ip=OUTSIDE,
            mail_from=f"spammer@{OUTSIDE_DOMAIN}",
            rcpt_to=[f"victim@elsewhere.{OUTSIDE_DOMAIN}"],
            helo="spambot",
        ),
    ]
    postfix.wait_for_queue_empty()
    return sent


def measure(rounds: int = 5) -> None:
    """Print start-up, scenario and stop wall times of the harness (median of ``rounds``)."""
    import platform
    import statistics
    import tempfile
    import time

    from tests.server.harness import Dovecot, Postfix

    names = ("dovecot start", "postfix start", "standard scenario", "postfix stop", "dovecot stop")
    rows = []
    for _ in range(rounds):
        work = Path(tempfile.mkdtemp(prefix="mw-measure-"))
        t0 = time.perf_counter()
        dovecot = Dovecot(work).start()
        t1 = time.perf_counter()
        postfix = Postfix(work, dovecot=dovecot, mynetworks=TRUSTED_NETWORKS).start()
        t2 = time.perf_counter()
        standard_scenario(MailSite(work, dovecot, postfix))
        t3 = time.perf_counter()
        postfix.stop()
        t4 = time.perf_counter()
        dovecot.stop()
        t5 = time.perf_counter()
        postfix.remove_files()
        dovecot.remove_files()
        shutil.rmtree(work, ignore_errors=True)
        rows.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4))
    print(f"{platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; {rounds} rounds")
    for name, times in zip(names, zip(*rows, strict=True), strict=True):
        print(f"{name:18} median {statistics.median(times):.2f}s  min {min(times):.2f}s  max {max(times):.2f}s")


if __name__ == "__main__":
    # python -m tests.server.scenarios   (as root, from the repository root)
    measure()
