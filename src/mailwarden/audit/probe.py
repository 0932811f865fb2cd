"""The live SMTP probe: talk to a server the way a spambot would, record every line, deliver nothing.

Each check runs in its own connection and is recorded as a `Conversation` (the exact exchange, what
the server decided at which command, or why the check could not finish). Nothing here judges a
setting: the rules in `mailwarden.audit.rules` read the finished `ProbeReport`.

Safety: a probe never completes a message. Envelopes are abandoned with RSET; when a server accepts
a recipient, the probe sends DATA only to see whether the server refuses there, and on ``354`` it
drops the connection before any content, so the server discards the transaction. Outside addresses
are on reserved domains (RFC 2606) that belong to nobody. Passwords never reach the transcript.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

# RFC 2606 reserved domains: mail to them can never reach a real person.
OUTSIDE_RECIPIENT = "mailwarden-probe@example.net"
OUTSIDE_SENDER = "mailwarden-probe@example.org"

# RFC 5321 4.5.3.1.5 caps a reply line at 512 octets; allow slack for chatty servers,
# but never read an unbounded line or an endless multi-line reply from a hostile peer.
MAX_REPLY_LINE = 2048
MAX_REPLY_LINES = 200

REPLY_READY = 220
REPLY_OK = 250
REPLY_AUTH_OK = 235
REPLY_AUTH_CHALLENGE = 334
REPLY_START_DATA = 354

# Mechanisms that send the password itself (base64 is not encryption).
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


class ProbeFailure(Exception):
    """Internal: the conversation could not go on (timeout, dropped connection, garbage reply)."""


class Outcome(StrEnum):
    """What the server did with one envelope."""

    ACCEPTED = "accepted"  # RCPT accepted and DATA answered 354 (connection then dropped)
    REFUSED = "refused"    # a 4xx/5xx reply to MAIL, RCPT or DATA
    ERROR = "error"        # the exchange broke off before the server decided


@dataclass
class Reply:
    """One (possibly multi-line) SMTP reply."""

    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def refused(self) -> bool:
        return self.code >= 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


@dataclass
class Attempt:
    """One envelope tried: MAIL FROM, RCPT TO, and (if the recipient was accepted) DATA."""

    mail_from: str
    rcpt_to: str
    outcome: Outcome
    stage: str           # the command the server decided at: "MAIL", "RCPT", "DATA" (or where it broke)
    reply: str           # the deciding reply, e.g. "554 5.7.1 <x@example.net>: Relay access denied"
    temporary: bool = False


@dataclass
class Conversation:
    """One connection: its exact exchange and the facts it established."""

    name: str
    transcript: list[str] = field(default_factory=list)
    error: str | None = None      # why it broke off; the checks that needed it are errors, not passes
    skipped: str | None = None    # why it was not run at all
    tls: bool = False
    authenticated: bool = False
    attempts: dict[str, Attempt] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.transcript.append(f"-- {text}")


@dataclass
class Capabilities:
    """What the server offers before and after STARTTLS."""

    banner: str = ""
    implicit_tls: bool = False
    starttls_offered: bool = False
    tls_established: bool = False
    tls_error: str | None = None
    auth_before_tls: list[str] = field(default_factory=list)   # AUTH mechanisms on the clear connection
    auth_after_tls: list[str] = field(default_factory=list)
    # The reply to a bare "AUTH PLAIN" on the unencrypted connection (334 = it would take a password).
    plain_auth_reply_in_clear: str | None = None
    plain_auth_accepted_in_clear: bool | None = None


@dataclass
class ProbeSettings:
    """Everything the probe needs; addresses are full addresses."""

    host: str
    port: int
    local_user: str | None = None          # A: the account we log in as / claim to be
    other_local_user: str | None = None    # B: another local account
    login: str | None = None
    password: str | None = None
    timeout: float = 10.0
    helo: str = field(default_factory=socket.getfqdn)
    implicit_tls: bool = False
    allow_cleartext_auth: bool = False     # send the password without TLS (always allowed on loopback)
    source_address: str | None = None


@dataclass
class ProbeReport:
    """All conversations of one probe run, keyed by check."""

    host: str
    port: int
    settings: ProbeSettings
    capabilities: Capabilities
    conversations: dict[str, Conversation] = field(default_factory=dict)
    started_at: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "local_user": self.settings.local_user,
            "other_local_user": self.settings.other_local_user,
            "login": self.settings.login,
            "capabilities": self.capabilities,
            "conversations": self.conversations,
        }


class SmtpSession:
    """A minimal SMTP client over one socket that writes every line to a transcript."""

    def __init__(self, conv: Conversation, settings: ProbeSettings) -> None:
        self.conv = conv
        self.settings = settings
        self.sock: socket.socket | None = None
        self._buffer = b""

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> Reply:
        s = self.settings
        self.conv.note(f"connect {s.host}:{s.port}" + (" (TLS on connect)" if s.implicit_tls else ""))
        try:
            source = (s.source_address, 0) if s.source_address else None
            self.sock = socket.create_connection((s.host, s.port), timeout=s.timeout,
                                                 source_address=source)
        except TimeoutError:
            raise self._fail(f"timed out connecting to {s.host}:{s.port} after {s.timeout:g} s") from None
        except OSError as exc:
            raise self._fail(f"cannot connect to {s.host}:{s.port}: {exc.strerror or exc}") from None
        if s.implicit_tls:
            self._wrap_tls()
        return self.read_reply("the greeting")

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def quit(self) -> None:
        """Say QUIT politely; a server that already hung up is not an error at this point."""
        if self.sock is None:
            return  # already dropped on purpose (DATA abort)
        try:
            self.command("QUIT")
        except ProbeFailure:
            pass
        self.close()

    def abort_data(self) -> None:
        """Drop the connection in the DATA phase: without the final '.', no message exists."""
        self.conv.note("connection closed before any message content: nothing is delivered")
        self.close()

    def starttls(self) -> None:
        reply = self.command("STARTTLS")
        if reply.code != REPLY_READY:
            raise self._fail(f"STARTTLS refused: {reply.code} {reply.text}")
        self._wrap_tls()

    def _wrap_tls(self) -> None:
        # We audit the server, we do not trust it: no certificate verification, so a test
        # server with a self-signed certificate is probed the same way as a real one.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        assert self.sock is not None
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=self.settings.host)
        except (ssl.SSLError, OSError) as exc:
            raise self._fail(f"TLS handshake failed: {exc}") from None
        self._buffer = b""
        self.conv.tls = True
        self.conv.note(f"TLS established ({self.sock.version()}, {self.sock.cipher()[0]}); certificate not verified")

    # -- commands ---------------------------------------------------------------------------
    def command(self, line: str, *, shown: str | None = None) -> Reply:
        """Send one command line; `shown` replaces it in the transcript (secrets)."""
        self.conv.transcript.append(f"C: {shown if shown is not None else line}")
        if self.sock is None:
            raise self._fail("connection already closed")
        try:
            self.sock.sendall(line.encode("utf-8", "replace") + b"\r\n")
        except TimeoutError:
            raise self._fail(f"timed out sending {_verb(line)}") from None
        except OSError as exc:
            raise self._fail(f"connection dropped while sending {_verb(line)}: {exc}") from None
        return self.read_reply(_verb(shown or line))

    def ehlo(self) -> tuple[Reply, dict[str, str]]:
        reply = self.command(f"EHLO {self.settings.helo}")
        if reply.code != REPLY_OK:
            raise self._fail(f"EHLO refused: {reply.code} {reply.text}")
        keywords: dict[str, str] = {}
        for line in reply.lines[1:]:
            word, _, rest = line.partition(" ")
            keywords[word.upper()] = rest
        return reply, keywords

    def read_reply(self, waiting_for: str) -> Reply:
        """Read one reply within the timeout; a silent, closed or garbled peer is a ProbeFailure."""
        deadline = time.monotonic() + self.settings.timeout
        lines: list[str] = []
        code = 0
        while True:
            raw = self._read_line(deadline, waiting_for)
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.conv.transcript.append(f"S: {text}")
            if len(text) < 3 or not text[:3].isdigit() or (len(text) > 3 and text[3] not in " -"):
                raise self._fail(f"not an SMTP reply to {waiting_for}: {text[:80]!r}")
            code = int(text[:3])
            lines.append(text[4:])
            if len(text) == 3 or text[3] == " ":
                return Reply(code, lines)
            if len(lines) >= MAX_REPLY_LINES:
                raise self._fail(f"reply to {waiting_for} has more than {MAX_REPLY_LINES} lines")

    def _read_line(self, deadline: float, waiting_for: str) -> bytes:
        assert self.sock is not None
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_REPLY_LINE:
                raise self._fail(f"reply line to {waiting_for} longer than {MAX_REPLY_LINE} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(f"timed out after {self.settings.timeout:g} s waiting for {waiting_for}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise self._fail(f"timed out after {self.settings.timeout:g} s waiting for {waiting_for}") from None
            except OSError as exc:
                raise self._fail(f"connection dropped waiting for {waiting_for}: {exc}") from None
            if not chunk:
                raise self._fail(f"server closed the connection waiting for {waiting_for}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line[:MAX_REPLY_LINE]

    def _fail(self, reason: str) -> ProbeFailure:
        self.conv.note(reason)
        self.close()
        return ProbeFailure(reason)

    # -- SMTP AUTH -------------------------------------------------------------------------
    def login(self, mechanisms: list[str], login: str, password: str) -> Reply:
        """AUTH PLAIN (or LOGIN); the transcript shows the user name but never the password."""
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
            return self.command(f"AUTH PLAIN {token}", shown=f"AUTH PLAIN <base64 of user {login!r} and password, hidden>")
        if "LOGIN" in mechanisms:
            reply = self.command("AUTH LOGIN")
            if reply.code != REPLY_AUTH_CHALLENGE:
                return reply
            reply = self.command(base64.b64encode(login.encode()).decode(), shown=f"<base64 of user {login!r}>")
            if reply.code != REPLY_AUTH_CHALLENGE:
                return reply
            return self.command(base64.b64encode(password.encode()).decode(), shown="<base64 of password, hidden>")
        raise self._fail(f"no supported AUTH mechanism offered (offered: {' '.join(mechanisms) or 'none'}; "
                         "the probe speaks PLAIN and LOGIN)")

    # -- envelopes ---------------------------------------------------------------------------
    def try_envelope(self, mail_from: str, rcpt_to: str, *, go_to_data: bool) -> Attempt:
        """MAIL FROM + RCPT TO (+ DATA to see whether it is refused there); always abandoned."""
        reply = self.command(f"MAIL FROM:<{mail_from}>")
        if reply.refused:
            self._rset()
            return Attempt(mail_from, rcpt_to, Outcome.REFUSED, "MAIL", f"{reply.code} {reply.text}", reply.temporary)
        reply = self.command(f"RCPT TO:<{rcpt_to}>")
        if reply.refused:
            self._rset()
            return Attempt(mail_from, rcpt_to, Outcome.REFUSED, "RCPT", f"{reply.code} {reply.text}", reply.temporary)
        if not go_to_data:
            self._rset()
            return Attempt(mail_from, rcpt_to, Outcome.ACCEPTED, "RCPT", f"{reply.code} {reply.text}")
        # Some servers (MDaemon's "authentication is required for all SMTP sessions") refuse at DATA.
        reply = self.command("DATA")
        if reply.code == REPLY_START_DATA:
            self.abort_data()
            return Attempt(mail_from, rcpt_to, Outcome.ACCEPTED, "DATA", f"{reply.code} {reply.text}")
        if reply.refused:
            self._rset()
            return Attempt(mail_from, rcpt_to, Outcome.REFUSED, "DATA", f"{reply.code} {reply.text}", reply.temporary)
        raise self._fail(f"unexpected reply to DATA: {reply.code} {reply.text}")

    def _rset(self) -> None:
        self.command("RSET")


def _verb(line: str) -> str:
    """The command word(s) of a line, for error messages ("MAIL FROM", "AUTH PLAIN")."""
    words = line.split(" ", 2)
    if words and words[0].upper() in ("MAIL", "RCPT"):
        return words[0].upper() + " " + words[1].split(":", 1)[0].upper() if len(words) > 1 else words[0]
    if words and words[0].upper() == "AUTH" and len(words) > 1:
        return "AUTH " + words[1].upper()
    return words[0] if words else line


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost": a password sent there never crosses a wire."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the checks ------------------------------------------------------------------------------

CONV_CAPABILITIES = "capabilities"
CONV_UNAUTH_LOCAL_TO_OUTSIDE = "unauth-local-to-outside"
CONV_UNAUTH_LOCAL_TO_LOCAL = "unauth-local-to-local"
CONV_OPEN_RELAY = "open-relay"
CONV_AUTH_SENDER_MISMATCH = "auth-sender-mismatch"
CONV_AUTH_FROM_HEADER = "auth-from-header"

FROM_HEADER_SKIP_REASON = (
    "not probed: a server judges the From: header only after the message's final '.', and the probe "
    "never completes a message (it would be delivered if the server accepted it). Check this setting "
    "in the server's configuration instead."
)


def _run(conv: Conversation, settings: ProbeSettings,
         body: Callable[[SmtpSession], None]) -> Conversation:
    session = SmtpSession(conv, settings)
    try:
        greeting = session.connect()
        if greeting.code != REPLY_READY:
            raise session._fail(f"server refused the session: {greeting.code} {greeting.text}")
        body(session)
        session.quit()
    except ProbeFailure as exc:
        conv.error = str(exc)
    finally:
        session.close()
    return conv


def probe_capabilities(settings: ProbeSettings) -> tuple[Capabilities, Conversation]:
    """EHLO in clear, a bare AUTH PLAIN in clear, then STARTTLS and EHLO again."""
    caps = Capabilities(implicit_tls=settings.implicit_tls)
    conv = Conversation(CONV_CAPABILITIES)

    def body(session: SmtpSession) -> None:
        caps.banner = next((line[3:] for line in conv.transcript if line.startswith("S: ")), "")
        _, keywords = session.ehlo()
        mechanisms = keywords.get("AUTH", "").upper().split()
        if settings.implicit_tls:
            caps.tls_established = True
            caps.auth_after_tls = mechanisms
            return
        caps.auth_before_tls = mechanisms
        caps.starttls_offered = "STARTTLS" in keywords
        # Does the server take a plain-text password in clear, advertised or not? A bare
        # "AUTH PLAIN" asks for the credentials without sending any; "*" cancels (RFC 4954 4).
        reply = session.command("AUTH PLAIN")
        caps.plain_auth_reply_in_clear = f"{reply.code} {reply.text}"
        caps.plain_auth_accepted_in_clear = reply.code == REPLY_AUTH_CHALLENGE
        if reply.code == REPLY_AUTH_CHALLENGE:
            session.command("*")
        if not caps.starttls_offered:
            conv.note("no STARTTLS offered")
            return
        try:
            session.starttls()
        except ProbeFailure as exc:
            caps.tls_error = str(exc)
            raise
        caps.tls_established = True
        _, keywords = session.ehlo()
        caps.auth_after_tls = keywords.get("AUTH", "").upper().split()

    _run(conv, settings, body)
    if caps.tls_error and conv.error == caps.tls_error:
        conv.error = None  # a failed STARTTLS is a fact about TLS, not a broken probe
    return caps, conv


def probe_envelope(name: str, settings: ProbeSettings, mail_from: str, rcpt_to: str,
                   *, control: tuple[str, str] | None = None) -> Conversation:
    """Unauthenticated: optionally a control envelope that must be accepted, then the probe envelope."""
    conv = Conversation(name)

    def body(session: SmtpSession) -> None:
        session.ehlo()
        if control is not None:
            conv.note("control: an envelope the server should accept, so a refusal below means something")
            conv.attempts["control"] = session.try_envelope(*control, go_to_data=False)
        conv.note("probe")
        conv.attempts["probe"] = session.try_envelope(mail_from, rcpt_to, go_to_data=True)

    return _run(conv, settings, body)


def probe_auth_sender_mismatch(settings: ProbeSettings, caps: Capabilities) -> Conversation:
    """Log in as A; MAIL FROM:<A> (control, must pass) then MAIL FROM:<B> (must be refused)."""
    conv = Conversation(CONV_AUTH_SENDER_MISMATCH)
    if not (settings.login and settings.password):
        conv.skipped = ("no credentials: give --credentials FILE or set MAILWARDEN_SMTP_USER and "
                        "MAILWARDEN_SMTP_PASSWORD")
        return conv
    if not (settings.local_user and settings.other_local_user):
        conv.skipped = "no local addresses: give --local-domain (and --local-user/--other-local-user)"
        return conv
    offered = (caps.auth_after_tls if caps.tls_established else []) or caps.auth_before_tls
    if not (caps.auth_before_tls or caps.auth_after_tls):
        conv.skipped = "the server offers no AUTH on this port (try its submission port)"
        return conv
    will_use_tls = settings.implicit_tls or (caps.starttls_offered and caps.tls_established)
    if not will_use_tls and not (settings.allow_cleartext_auth or is_loopback(settings.host)):
        conv.skipped = ("AUTH is offered only on an unencrypted connection; the probe will not send a "
                        "password in clear to a remote host without --allow-cleartext-auth")
        return conv

    def body(session: SmtpSession) -> None:
        _, keywords = session.ehlo()
        if caps.starttls_offered and not settings.implicit_tls and caps.tls_established:
            session.starttls()
            _, keywords = session.ehlo()
        mechanisms = keywords.get("AUTH", "").upper().split() or offered
        reply = session.login(mechanisms, settings.login or "", settings.password or "")
        if reply.code != REPLY_AUTH_OK:
            raise session._fail(f"login as {settings.login!r} failed: {reply.code} {reply.text}")
        conv.authenticated = True
        conv.note(f"control: our own address {settings.local_user}, which the server must accept")
        conv.attempts["control"] = session.try_envelope(settings.local_user or "", OUTSIDE_RECIPIENT, go_to_data=False)
        conv.note(f"probe: another account's address {settings.other_local_user}")
        conv.attempts["probe"] = session.try_envelope(settings.other_local_user or "", OUTSIDE_RECIPIENT, go_to_data=True)

    return _run(conv, settings, body)


def run_probe(settings: ProbeSettings, *, on_step: Callable[[str], None] | None = None) -> ProbeReport:
    """Run every check against one server; never raises for server behaviour (it is recorded)."""
    started = time.time()
    clock = time.monotonic()

    def step(name: str) -> None:
        if on_step is not None:
            on_step(name)

    step(CONV_CAPABILITIES)
    caps, caps_conv = probe_capabilities(settings)
    report = ProbeReport(settings.host, settings.port, settings, caps, started_at=started)
    report.conversations[CONV_CAPABILITIES] = caps_conv
    unreachable = caps_conv.error if not caps.banner else None

    def add(conv: Conversation) -> None:
        report.conversations[conv.name] = conv

    def not_run(name: str) -> Conversation:
        conv = Conversation(name, error=f"not run: the server did not answer the first connection ({unreachable})")
        return conv

    local, other = settings.local_user, settings.other_local_user
    checks: list[tuple[str, Callable[[], Conversation]]] = [
        (CONV_UNAUTH_LOCAL_TO_OUTSIDE, lambda: probe_envelope(
            CONV_UNAUTH_LOCAL_TO_OUTSIDE, settings, local or "", OUTSIDE_RECIPIENT)),
        (CONV_UNAUTH_LOCAL_TO_LOCAL, lambda: probe_envelope(
            CONV_UNAUTH_LOCAL_TO_LOCAL, settings, local or "", other or "",
            control=(OUTSIDE_SENDER, other or ""))),
        (CONV_OPEN_RELAY, lambda: probe_envelope(
            CONV_OPEN_RELAY, settings, OUTSIDE_SENDER, OUTSIDE_RECIPIENT)),
        (CONV_AUTH_SENDER_MISMATCH, lambda: probe_auth_sender_mismatch(settings, caps)),
    ]
    for name, run in checks:
        step(name)
        if unreachable:
            add(not_run(name))
        elif name in (CONV_UNAUTH_LOCAL_TO_OUTSIDE, CONV_UNAUTH_LOCAL_TO_LOCAL) and not (local and other):
            add(Conversation(name, skipped="no local addresses: give --local-domain (and --local-user)"))
        else:
            add(run())
    add(Conversation(CONV_AUTH_FROM_HEADER, skipped=FROM_HEADER_SKIP_REASON))
    report.seconds = time.monotonic() - clock
    return report
