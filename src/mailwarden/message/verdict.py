"""The decision table: what a traced message's facts mean, and what the admin should do next.

Read ``RULES`` top to bottom: the first row whose test holds gives the verdict, the reason
and the next action. Rows see only ``Facts`` (what trace established: our accepting hop,
the client, the *bound* evidence); markers never decide anything themselves.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind
from mailwarden.message.received import Hop


class Verdict(StrEnum):
    """Stable values: they appear in --json and in summaries."""

    AUTHENTICATED_ACCOUNT = "authenticated-account"
    INTERNAL_HOST = "internal-host"
    LOCAL_SUBMISSION = "local-submission"
    EXTERNAL = "external"
    UNKNOWN = "unknown"


@dataclass
class Facts:
    """What trace established about one message, as the table's rows read it."""

    our_hop: Hop | None
    bound: list[AuthEvidence]
    client_ip: str | None
    client_is_trusted: bool          # in the configured trusted networks
    boundary_inferred: bool
    message_id: str | None
    received_at: str | None          # ISO 8601, for the next command
    server_family: str | None        # "mdaemon", "postfix", "exim" ... of our accepting server
    no_hop_reason: str | None = None
    smtp_logs: list[str] = field(default_factory=list)  # our SMTP-IN log(s) when the site names them
    extra: dict = field(default_factory=dict)

    def first(self, kind: EvidenceKind) -> AuthEvidence | None:
        with_account = [e for e in self.bound if e.kind == kind and (e.account or e.uid or e.script)]
        plain = [e for e in self.bound if e.kind == kind]
        return (with_account or plain or [None])[0]

    @property
    def client_addr(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.client_ip) if self.client_ip else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    reason: str
    next_action: str
    account: str | None = None


# Where each server keeps the log that records the SMTP session (the next command's input).
SMTP_IN_LOG = {
    "mdaemon": r"C:\MDaemon\Logs\MDaemon-<date>-SMTP-(in).log",
    "postfix": "/var/log/mail.log",
    "exim": "/var/log/exim4/mainlog",
    "sendmail": "/var/log/mail.log",
    "qmail": "/var/log/qmail/smtpd/current",
    "exchange": "<Exchange message tracking log>",
}


def logs_find_command(facts: Facts) -> str:
    """The exact next command: find the SMTP session of this message in our log."""
    # shlex.quote: a spammer writes the Message-ID, and admins paste this into a shell.
    if facts.smtp_logs:
        logs = [shlex.quote(log) for log in facts.smtp_logs]
    else:  # the usual place for this kind of server; "<...>" placeholders stay unquoted
        log = SMTP_IN_LOG.get(facts.server_family or "", "<SMTP-IN log>")
        logs = [log if log.startswith("<") else shlex.quote(log)]
    parts = ["mailwarden", "logs", "find", *logs]
    if facts.message_id:
        parts += ["--message-id", shlex.quote(facts.message_id)]
    elif facts.our_hop is not None and facts.our_hop.id:
        # No Message-ID: our hop's queue id (Postfix queue id, Exim id, md*.msg) is the join key.
        parts += ["--queue-id", shlex.quote(facts.our_hop.id)]
    if facts.received_at:
        parts += ["--around", facts.received_at]
    return " ".join(parts)


def _auth(f: Facts) -> Decision | None:
    ev = f.first(EvidenceKind.AUTHENTICATED)
    if ev is None:
        return None
    where = f.client_ip or "an unknown IP"
    if ev.account:
        action = (f"Change the password of {ev.account} (and end its sessions); the machine at "
                  f"{where} may be infected too. Session: {logs_find_command(f)}")
    else:
        action = (f"The headers do not name the account: find the SASL login in our log with "
                  f"`{logs_find_command(f)}`, then change that password; check {where} too.")
    return Decision(Verdict.AUTHENTICATED_ACCOUNT, "bound-auth",
                    f"authenticated submission at our server ({ev.marker}: {ev.binding})",
                    action, ev.account)


def _local_decision(f: Facts, rule: str, local: list[AuthEvidence]) -> Decision:
    scripts = sorted({e.script for e in local if e.script})
    uids = sorted({e.uid for e in local if e.uid})
    users = sorted({e.account for e in local if e.account})
    web_clients = sorted({e.client_ip for e in local if e.client_ip})
    who = ([f"web script {s}" for s in scripts] + [f"uid {u}" for u in uids]
           + [f"local user {u}" for u in users])
    named = ", ".join(who) or "a local process"
    action = (f"Find {named} on the server (web scripts, cron jobs, a compromised CMS); "
              "lock that user or remove the script.")
    if web_clients:
        action += f" The script was run for web client(s) {', '.join(web_clients)}: check the web server's access log."
    first = local[0]
    return Decision(Verdict.LOCAL_SUBMISSION, rule,
                    f"handed to our server on the server itself ({first.marker}: {first.value[:80]})",
                    action, (users or uids or [None])[0])


def _hop_local(f: Facts) -> Decision | None:
    # Our own hop says "local" (Exim with local, Postfix pickup, sendmail Submit): a
    # header-borne AUTH claim (cPanel sets X-Authenticated-Sender for PHP mail too) is moot.
    if f.our_hop is None:
        return None
    in_hop = [e for e in f.bound if e.kind == EvidenceKind.LOCAL and e.hop_index is not None]
    if not in_hop:
        return None
    return _local_decision(f, "hop-local", [e for e in f.bound if e.kind == EvidenceKind.LOCAL])


def _local(f: Facts) -> Decision | None:
    local = [e for e in f.bound if e.kind == EvidenceKind.LOCAL]
    return _local_decision(f, "bound-local", local) if local else None


# The addresses local processes (webmail, content filters, scripts) use to reach the MTA on
# the same machine. Only these two: the rest of 127.0.0.0/8 is loopback too, but is used
# for deliberately separate listeners (and by our tests to play outside hosts), so such a
# client is judged like any other address: trusted networks first, else external.
SERVER_SELF = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _loopback(f: Facts) -> Decision | None:
    hop = f.our_hop
    if hop is None:
        return None
    addr = f.client_addr
    if addr is not None and getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    fromless = hop.from_name is None and hop.from_ip is None
    if (addr is not None and addr in SERVER_SELF) or (fromless and addr is None):
        how = f"loopback {addr}" if addr is not None else "a stamp with no sending host"
        return Decision(Verdict.LOCAL_SUBMISSION, "loopback",
                        f"our accepting hop shows {how}: the message was submitted on the server itself",
                        "Look for webmail sessions or local scripts at that time: "
                        f"{logs_find_command(f)}")
    return None


def _trusted(f: Facts) -> Decision | None:
    addr = f.client_addr
    if addr is None:
        return None
    if f.client_is_trusted:
        why = "in our trusted networks"
    elif f.boundary_inferred and addr.is_private:
        why = "a private address (trusted networks inferred: none configured)"
    else:
        return None
    return Decision(Verdict.INTERNAL_HOST, "trusted-network",
                    f"no authentication, and the client {addr} is {why}",
                    f"Clean the machine at {addr} (malware scan), and ask why it is trusted to relay "
                    f"without AUTH. Session: {logs_find_command(f)}")


def _external(f: Facts) -> Decision | None:
    if f.our_hop is None or f.client_addr is None:
        return None
    return Decision(Verdict.EXTERNAL, "external",
                    f"our server accepted it from {f.client_ip} without authentication; "
                    "nothing it recorded points inside",
                    logs_find_command(f))


def _no_hop(f: Facts) -> Decision | None:
    if f.our_hop is None and not f.bound:
        return Decision(Verdict.UNKNOWN, "no-our-hop", f.no_hop_reason or "no hop stamped by our servers",
                        "Name our servers: --server-name HOST (or mailwarden.toml [site] server_names).")
    return None


def _fallback(f: Facts) -> Decision:
    return Decision(Verdict.UNKNOWN, "no-client",
                    "our accepting hop names no client IP and no bound marker says more",
                    f"Look the message up in our log: {logs_find_command(f)}")


# (rule name, test) in order; each test returns a Decision or None.
RULES: tuple[tuple[str, Callable[[Facts], Decision | None]], ...] = (
    ("no-our-hop", _no_hop),         # nothing of ours in the headers: cannot place the boundary
    ("hop-local", _hop_local),       # our hop's own line says local hand-over (Exim local, pickup)
    ("bound-auth", _auth),           # AUTH at our hop -> the account's password is known
    ("bound-local", _local),         # uid / local user / PHP script at our hop
    ("loopback", _loopback),         # 127.0.0.1/::1 or a from-less stamp: webmail or a local process
    ("trusted-network", _trusted),   # relayed for a trusted (or inferred private) client
    ("external", _external),         # a client outside: look at the SMTP-IN session
)


def decide(facts: Facts) -> Decision:
    """The first row of ``RULES`` that applies."""
    for _name, test in RULES:
        decision = test(facts)
        if decision is not None:
            return decision
    return _fallback(facts)
