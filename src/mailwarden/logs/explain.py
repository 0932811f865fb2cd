"""Why a message was accepted, and which setting would have stopped it.

The checks read only the assembled `Session` (and the site configuration); each says whether it
is *logged* (the server wrote it) or *inferred* (mailwarden concluded it). The decision of what
counts as a gap is a small table (`GAPS`), kept apart from the checks, as the style guide asks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mailwarden.config import SiteConfig
from mailwarden.logs.model import Session, Transaction

# Delivery relays that mean "delivered here" (so the recipient domain is one of ours).
LOCAL_RELAYS = ("local", "virtual", "dovecot", "lmtp", "private/", "maildrop", "cyrus",
                "appendfile", "local_delivery", "localuser", "mailbox")


@dataclass
class Reason:
    """One reason the server took the message."""

    code: str                 # stable: authenticated, trusted-network, trusted-ip-logged,
    #                           relay-inferred, inbound-local, local-injection, spam-score,
    #                           dnsbl, auth-results, postscreen
    text: str
    inferred: bool = False
    evidence: list[str] = field(default_factory=list)   # "source:lineno"


@dataclass
class Gap:
    """A setting that, had it been on, would have refused this message."""

    setting: str              # stable: sender-login-match, auth-required-for-local-senders,
    #                           no-relay-without-auth
    text: str
    postfix: str
    mdaemon: str
    exim: str


@dataclass
class Explanation:
    accepted: bool
    summary: str
    reasons: list[Reason] = field(default_factory=list)
    would_have_stopped: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


GAPS = {
    "sender-login-match": (
        "credentials must match the sender",
        "smtpd_sender_login_maps + reject_sender_login_mismatch (or reject_authenticated_sender_login_mismatch)",
        "Security > SMTP Authentication: 'Credentials used must match those of the return-path address'",
        "an ACL: deny !condition = ${if eq{$authenticated_id}{$sender_address}}",
    ),
    "auth-required-for-local-senders": (
        "authentication required for local senders",
        "smtpd_sender_login_maps + reject_unauthenticated_sender_login_mismatch",
        "Security > SMTP Authentication: 'Authentication is always required when mail is from local accounts'",
        "an ACL: deny senders = *@+local_domains, !authenticated = *",
    ),
    "no-relay-without-auth": (
        "no relaying for unauthenticated clients",
        "take the client out of mynetworks (permit_mynetworks) and require permit_sasl_authenticated",
        "remove the address from Trusted Hosts / Trusted IPs; 'Authentication is always required when mail is sent from local IPs'",
        "take the host out of relay_from_hosts; require authentication for relaying",
    ),
}


def _ref(session: Session, predicate) -> list[str]:
    return [f"{line.source}:{line.lineno}" for line in session.lines if predicate(line.text)][:5]


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].lower().rstrip(".>")


def _is_local_relay(relay: str | None) -> bool:
    if not relay:
        return False
    lowered = relay.lower()
    return any(lowered.startswith(r) or r in lowered for r in LOCAL_RELAYS)


def _is_loopback(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def pick_transaction(session: Session, message_id: str | None = None,
                     queue_id: str | None = None) -> Transaction | None:
    """The transaction the user asked about (else the first accepted one)."""
    if message_id:
        txn = session.transaction_for(message_id)
        if txn is not None:
            return txn
    if queue_id:
        for txn in session.transactions:
            if txn.queue_id and txn.queue_id.lower() == queue_id.lower():
                return txn
    for txn in session.transactions:
        if txn.accepted:
            return txn
    return session.transactions[0] if session.transactions else None


def local_domains(site: SiteConfig, txn: Transaction | None) -> tuple[list[str], bool]:
    """Our domains: from the configuration, else inferred from locally delivered recipients."""
    if site.local_domains:
        return list(site.local_domains), False
    inferred = []
    if txn is not None:
        for rcpt in txn.recipients:
            domain = _domain(rcpt.address)
            if domain and _is_local_relay(rcpt.relay) and domain not in inferred:
                inferred.append(domain)
    return inferred, True


def _matches_login(auth_user: str, sender: str) -> bool:
    auth_user, sender = auth_user.lower(), sender.lower()
    if "@" in auth_user:
        return auth_user == sender
    return sender.split("@", 1)[0] == auth_user


def explain(session: Session, txn: Transaction | None = None,
            site: SiteConfig | None = None) -> Explanation:
    """See the module docstring."""
    site = site or SiteConfig()
    txn = txn if txn is not None else pick_transaction(session)
    accepted = bool(txn and txn.accepted)
    out = Explanation(accepted=accepted, summary="")
    domains, domains_inferred = local_domains(site, txn)
    sender = txn.sender if txn else None
    sender_domain = _domain(sender)
    sender_is_local = bool(sender_domain and any(
        sender_domain == d or sender_domain.endswith("." + d) for d in domains))
    rcpt_domains = [_domain(r.address) for r in (txn.recipients if txn else [])]
    remote_rcpts = [r.address for r in (txn.recipients if txn else [])
                    if r.status in ("sent", "deferred", "bounced") and not _is_local_relay(r.relay)
                    and _domain(r.address) not in domains and r.relay not in (None, "none")]
    authenticated = bool(session.auth_user or (session.auth_method and session.dialect == "exim"
                                                and txn and txn.accepted))

    if session.kind == "local":
        who = session.local_user or "a local user"
        out.reasons.append(Reason("local-injection", f"submitted locally by {who} (no SMTP client)",
                                  evidence=_ref(session, lambda t: "pickup[" in t or " <= " in t)))
    if session.auth_user or session.auth_method and authenticated:
        user = session.auth_user or "(user not logged)"
        method = f" ({session.auth_method})" if session.auth_method else ""
        out.reasons.append(Reason(
            "authenticated", f"authenticated as {user}{method}",
            evidence=_ref(session, lambda t: "sasl_username=" in t or " A=" in t
                          or "authenticated" in t.lower() or " 235 " in t)))
        if session.auth_failures:
            users = ", ".join(dict.fromkeys(session.auth_failure_users)) or "users not logged"
            out.notes.append(f"{session.auth_failures} failed AUTH attempt(s) in this session "
                             f"before it succeeded ({users})")
    if session.trusted:
        out.reasons.append(Reason("trusted-ip-logged", "the server logged the client as trusted",
                                  evidence=_ref(session, lambda t: "trusted" in t.lower())))
    if session.client_ip and site.is_trusted_ip(session.client_ip):
        out.reasons.append(Reason(
            "trusted-network", f"client {session.client_ip} is in a trusted network "
            "(--trusted-net / config)", inferred=True))
    if not authenticated and session.kind != "local" and accepted and not session.trusted \
            and not site.is_trusted_ip(session.client_ip):
        if remote_rcpts:
            where = {"postfix": "mynetworks (Postfix does not log mynetworks membership)",
                     "mdaemon": "the Trusted Hosts / Trusted IPs list",
                     "exim": "relay_from_hosts"}.get(session.dialect, "a trusted network")
            out.reasons.append(Reason(
                "relay-inferred",
                f"no AUTH, yet relayed to {', '.join(remote_rcpts[:3])}: client "
                f"{session.client_ip or '?'} must be in {where} (inferred)", inferred=True))
        elif rcpt_domains and domains and all(d in domains for d in rcpt_domains if d):
            out.reasons.append(Reason(
                "inbound-local", "no AUTH: accepted as inbound mail for our own domain(s) "
                f"{', '.join(sorted({d for d in rcpt_domains if d}))}", inferred=domains_inferred))
        elif _is_loopback(session.client_ip):
            out.reasons.append(Reason("relay-inferred", f"client {session.client_ip} is loopback "
                                      "(a content filter re-injection or a local program)",
                                      inferred=True))
    if txn is not None:
        if txn.spam_score is not None:
            if txn.spam_threshold is not None:
                below = txn.spam_score < txn.spam_threshold
                text = (f"spam score {txn.spam_score:g} below the threshold {txn.spam_threshold:g}"
                        if below else f"spam score {txn.spam_score:g} at or above the threshold "
                        f"{txn.spam_threshold:g}, yet accepted (tagged, not refused)")
            else:
                text = f"spam score {txn.spam_score:g} (no threshold logged)"
            out.reasons.append(Reason("spam-score", text, evidence=[]))
        elif txn.spam:
            out.reasons.append(Reason("spam-score", "spam filter: " + txn.spam[-1][-160:]))
        else:
            out.notes.append("no spam-filter verdict was logged for this message")
        if txn.dnsbl:
            out.reasons.append(Reason("dnsbl", f"{len(txn.dnsbl)} DNSBL line(s) logged; answers: "
                                      + " | ".join(_tail(x) for x in txn.dnsbl[:3])))
        else:
            out.notes.append("no DNSBL lookups were logged for this client (not configured, or "
                             "every list answered 'not listed', which is not logged)")
        if txn.auth_results:
            out.reasons.append(Reason("auth-results", " | ".join(_tail(x) for x in txn.auth_results[:4])))
    postscreen = [line for line in session.lines if "postscreen[" in line.text and
                  ("PASS" in line.text or "WHITELISTED" in line.text or "ALLOWLISTED" in line.text)]
    if postscreen:
        out.reasons.append(Reason("postscreen", _tail(postscreen[-1].text),
                                  evidence=[f"{postscreen[-1].source}:{postscreen[-1].lineno}"]))

    # What would have stopped it.
    if authenticated and session.auth_user and sender and not _matches_login(session.auth_user, sender):
        _gap(out, "sender-login-match",
             f"AUTH user {session.auth_user} differs from the envelope sender {sender}")
    if not authenticated and session.kind != "local" and sender_is_local and accepted:
        _gap(out, "auth-required-for-local-senders",
             f"unauthenticated sender {sender} in our domain {sender_domain}"
             + (" (our domains inferred from local deliveries)" if domains_inferred else ""))
    if any(r.code == "relay-inferred" and "must be in" in r.text for r in out.reasons):
        _gap(out, "no-relay-without-auth",
             f"client {session.client_ip} relayed without AUTH")
    if domains_inferred and not domains:
        out.notes.append("local domains unknown: pass --local-domain or set [site] local_domains")

    if not accepted:
        reason = txn.reject_reason if txn else None
        out.summary = f"refused: {reason}" if reason else "not accepted (no queued message in this session)"
    else:
        main = [r.text for r in out.reasons if r.code in ("authenticated", "trusted-network",
                                                          "trusted-ip-logged", "relay-inferred",
                                                          "inbound-local", "local-injection")]
        out.summary = "accepted: " + ("; ".join(main) if main else "no reason found in the log")
    return out


def _tail(text: str, width: int = 160) -> str:
    """The message part of a raw log line (after the program tag), shortened."""
    at = text.find("]: ")
    body = text[at + 3:] if 0 <= at < 120 else text
    return body if len(body) <= width else body[: width - 1] + "…"


def _gap(out: Explanation, setting: str, because: str) -> None:
    title, postfix, mdaemon, exim = GAPS[setting]
    out.would_have_stopped.append(Gap(setting, f"{because}: '{title}' is off", postfix, mdaemon, exim))
