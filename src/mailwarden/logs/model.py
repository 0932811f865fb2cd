"""The one event/session model every log dialect is read into.

A *session* is one SMTP connection (client IP/port, HELO, TLS, AUTH, start,
end, outcome). It holds *transactions* (one per message attempt: queue id,
Message-ID, envelope sender, recipients with their delivery status, size,
spam/DNSBL/SPF/DKIM lines, reject reasons). Lines that belong to a session
are kept raw, in order, so a transcript can always be printed exactly as the
server wrote it. Local injections (Postfix pickup, Exim from a local user)
are sessions with ``kind == "local"`` and no client IP.

Timestamps: ``datetime`` values are timezone-aware when the log says the
offset (RFC 3339 syslog, Exim with ``log_timezone``) and naive *server local
time* otherwise (classic syslog, MDaemon). ``ts_is_local`` tells which.

Readers in ``logs/readers/`` yield ``LogEvent``; ``logs/sessions.py`` groups
them into ``Session`` objects. The DuckDB index (``logs/index.py``) stores the
same fields, one table per dataclass; see docs/log-index.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class EventKind(StrEnum):
    """What one log line says. Stable values: they appear in --json and in the index."""

    BANNER = "banner"              # file header, separators (MDaemon "START Event Log ...")
    CONNECT = "connect"            # a client connected
    DISCONNECT = "disconnect"      # the connection ended (with command counts, outcome)
    HELO = "helo"
    TLS = "tls"                    # STARTTLS / TLS established
    AUTH_OK = "auth-ok"            # SASL / SMTP AUTH succeeded (user, method)
    AUTH_FAIL = "auth-fail"        # SASL / SMTP AUTH failed (user when logged)
    MAIL_FROM = "mail-from"
    RCPT_TO = "rcpt-to"
    QUEUED = "queued"              # a queue id was assigned (Postfix "client=", Exim "<=")
    MESSAGE_ID = "message-id"      # the Message-ID became known (Postfix cleanup, Exim id=)
    ACCEPTED = "accepted"          # the server took the message (MDaemon "250 ... message saved")
    DELIVERY = "delivery"          # delivery attempt for one recipient (status=)
    REJECT = "reject"              # a command or message was refused (NOQUEUE reject, Exim rejected)
    SPAM_SCORE = "spam-score"
    DNSBL = "dnsbl"
    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    REMOVED = "removed"            # the message left the queue (Postfix qmgr removed, Exim Completed)
    PROTOCOL = "protocol"          # other client/server protocol lines (MDaemon --> / <--)
    OTHER = "other"                # understood as belonging somewhere, no field extracted
    UNPARSED = "unparsed"          # not understood at all (counted; --unparsed FILE)


@dataclass(slots=True)
class LogLine:
    """Where a line came from, and its exact text (without the line ending)."""

    source: str
    lineno: int
    text: str


@dataclass(slots=True)
class LogEvent:
    """One parsed line.

    ``session_key`` ties the line to its connection (Postfix ``host/service[pid]``,
    MDaemon session number, Exim connection); ``queue_id`` ties it to a message
    (Postfix queue id, Exim message id, MDaemon message file). A reader fills
    what the line gives; ``logs/sessions.py`` does the grouping for every dialect.
    """

    ts: dt.datetime | None
    dialect: str
    kind: EventKind
    line: LogLine
    session_key: str | None = None
    queue_id: str | None = None
    host: str | None = None        # the logging host (syslog hostname)
    service: str | None = None     # e.g. "postfix/submission/smtpd", "exim", "mdaemon-smtp-in"
    pid: int | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Recipient:
    address: str
    status: str | None = None      # sent, deferred, bounced, rejected, expired, ...
    relay: str | None = None
    dsn: str | None = None
    detail: str | None = None      # the server's words (reject reason, remote reply)
    ts: dt.datetime | None = None
    orig_address: str | None = None


@dataclass(slots=True)
class Transaction:
    """One message (or one refused attempt) inside a session."""

    queue_id: str | None = None    # Postfix queue id, Exim message id, MDaemon md*.msg
    message_id: str | None = None  # without the angle brackets
    sender: str | None = None      # envelope MAIL FROM ("" for the null sender)
    recipients: list[Recipient] = field(default_factory=list)
    size: int | None = None
    accepted: bool = False         # the server took responsibility for the message
    reject_reason: str | None = None
    subject: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    spam: list[str] = field(default_factory=list)      # spam-score lines / verdicts, as logged
    spam_score: float | None = None
    spam_threshold: float | None = None
    dnsbl: list[str] = field(default_factory=list)     # DNSBL checks and answers, as logged
    auth_results: list[str] = field(default_factory=list)  # SPF / DKIM / DMARC lines, as logged
    lines: list[LogLine] = field(default_factory=list)


@dataclass(slots=True)
class Session:
    """One SMTP connection (or one local injection) and what happened in it."""

    dialect: str
    session_id: str                # unique within an index: "<dialect>:<source>:<first line no>"
    source: str
    kind: str = "smtp"             # "smtp" or "local" (pickup / sendmail -t / Exim local user)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    ts_is_local: bool = True       # naive server-local timestamps (see module docstring)
    host: str | None = None        # logging host
    service: str | None = None
    client_ip: str | None = None
    client_port: int | None = None
    client_name: str | None = None  # reverse DNS as logged ("unknown" kept as None)
    helo: str | None = None
    server_ip: str | None = None
    server_port: int | None = None
    tls: bool = False
    tls_info: str | None = None
    auth_user: str | None = None
    auth_method: str | None = None
    auth_failures: int = 0
    auth_failure_users: list[str] = field(default_factory=list)
    local_user: str | None = None  # uid / user for local injection
    trusted: bool | None = None    # the log says the client was trusted (mynetworks, trusted IP)
    outcome: str | None = None     # e.g. "successful", "terminated", "lost connection", "disconnect"
    commands: str | None = None    # Postfix disconnect counters "ehlo=1 auth=1 mail=1 ..."
    transactions: list[Transaction] = field(default_factory=list)
    lines: list[LogLine] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def transaction_for(self, message_id: str) -> Transaction | None:
        wanted = message_id.strip().strip("<>").lower()
        for txn in self.transactions:
            if txn.message_id and txn.message_id.strip("<>").lower() == wanted:
                return txn
        return None
