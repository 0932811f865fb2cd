"""Hops + markers + site config -> ``Trace``: our accepting hop, the client, the account, the verdict.

The trust boundary follows SpamAssassin's trusted/internal networks: walking down from
the top, skip hops not stamped by us, then follow our own relays (from-less stamps,
loopback content filters, hops from our own hosts) down to the first hop whose sending
side is not ours - where the message entered our servers. Everything below it was
written by others and may be forged, so a marker decides only when it is *bound* to
that hop: it is in its Received line, it names our server (cPanel ``HOST: user``,
MDaemon's ``X-Spam-Processed: HOST``, Exchange AuthSource, Authentication-Results'
authserv-id), or it is a header our kind of server writes and the hop agrees (MDaemon's
plain X-Authenticated-Sender below an MDaemon ``ESMTPA`` hop). Without configured server
names the boundary is inferred from the top of the chain, and the Trace says so.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from functools import lru_cache

from mailwarden.config import SiteConfig
from mailwarden.errors import InputError
from mailwarden.message.markers import MARKERS, AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.markers.exim import LOCAL_PROTOCOLS
from mailwarden.message.markers.mdaemon import is_mdaemon_hop, processed_by
from mailwarden.message.markers.rfc3848 import AUTHENTICATED_PROTOCOLS
from mailwarden.message.parse import RawHeaders, ReadFailure, read_path, read_stream, split_fields
from mailwarden.message.received import Hop, ip_object, parse_chain, parse_date
from mailwarden.message.verdict import Facts, Verdict, decide

MAX_DECODED_HEADER = 4000  # Subject/From longer than this are cut before decoding (hang guard)
_SHORT_SLD = {"co", "com", "net", "org", "gov", "edu", "ac", "ne", "or", "go", "gob", "nic"}


@lru_cache(maxsize=4096)
def registered_domain(host: str | None) -> str | None:
    """``mx.mail.example.co.uk`` -> ``example.co.uk`` (a cheap stand-in for the public suffix list)."""
    if not host:
        return None
    host = host.lower().rstrip(".")
    labels = host.split(".")
    if len(labels) < 2 or _is_ip(host):
        return host
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SHORT_SLD:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


@lru_cache(maxsize=4096)
def _is_ip(text: str | None) -> bool:
    if not text:
        return False
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False


def server_family(hop: Hop | None) -> str | None:
    """Which MTA wrote this hop, from its by-comment and with clause."""
    if hop is None:
        return None
    software = (hop.software or "").lower()
    if is_mdaemon_hop(hop):
        return "mdaemon"
    if "postfix" in software:
        return "postfix"
    if "exim" in software:
        return "exim"
    if "microsoft" in (hop.protocol_text or "").lower() or (hop.protocol or "").lower() == "mapi":
        return "exchange"
    if software[:1].isdigit() and "/" in software:  # "(8.15.2/8.15.2/Debian-10)"
        return "sendmail"
    return None


@dataclass
class Boundary:
    """Who "we" are for this trace, and whether that was configured or inferred."""

    inferred: bool
    servers: list[str]
    description: str

    def to_json(self) -> dict:
        return {"inferred": self.inferred, "servers": self.servers, "description": self.description}


@dataclass
class Trace:
    """Everything ``mailwarden trace`` says about one message."""

    source: str
    message_id: str | None = None
    subject: str | None = None
    from_: str | None = None
    date: str | None = None
    verdict: Verdict = Verdict.UNKNOWN
    rule: str | None = None
    account: str | None = None
    client_ip: str | None = None
    client_helo: str | None = None
    received_at: dt.datetime | None = None
    our_hop: Hop | None = None
    hops: list[Hop] = field(default_factory=list)
    auth_markers: list[AuthEvidence] = field(default_factory=list)
    next_action: str | None = None
    reason: str | None = None
    boundary: Boundary | None = None
    defects: list[str] = field(default_factory=list)

    @property
    def uncorroborated(self) -> list[AuthEvidence]:
        """Markers found but not bound to our accepting hop: shown, never decisive."""
        return [e for e in self.auth_markers if not e.bound]

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "message_id": self.message_id,
            "subject": self.subject,
            "from": self.from_,
            "date": self.date,
            "verdict": str(self.verdict),
            "rule": self.rule,
            "account": self.account,
            "client_ip": self.client_ip,
            "client_helo": self.client_helo,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "our_hop": self.our_hop.to_json() if self.our_hop else None,
            "hops": [h.to_json() for h in self.hops],
            "auth_markers": [e.to_json() for e in self.auth_markers],
            "next_action": self.next_action,
            "reason": self.reason,
            "boundary": self.boundary.to_json() if self.boundary else None,
            "defects": self.defects,
        }


class _Ours:
    """Decides which hosts are ours: configured names, or names learned walking the chain."""

    def __init__(self, site: SiteConfig, hops: list[Hop], headers: HeaderView) -> None:
        self.site = site
        self.configured = bool(site.server_names or site.local_domains)
        self.learned: set[str] = set()
        self.learned_domains: set[str] = set()
        self.ips: set[str] = set()
        if not self.configured:
            top = next((h for h in hops if h.parsed and h.by), None)
            if top is not None:
                self.learn(top.by)
            elif not hops or not any(h.parsed for h in hops):
                # No usable Received at all (MDaemon can write none): the block names the server.
                host = processed_by(headers)
                if host:
                    self.learn(host)

    def learn(self, host: str | None) -> None:
        if host:
            host = host.lower().rstrip(".")
            self.learned.add(host)
            if not _is_ip(host) and "." in host:
                self.learned_domains.add(registered_domain(host) or host)

    def host(self, name: str | None) -> bool:
        if not name:
            return False
        name = name.lower().rstrip(".")
        if name in self.learned:
            return True
        if self.configured:
            return self.site.is_server_name(name) or self.site.is_local_domain(name)
        return registered_domain(name) in self.learned_domains

    def by(self, hop: Hop) -> bool:
        return self.host(hop.by) or (hop.by_ip is not None and hop.by_ip in self.ips)

    def servers(self) -> list[str]:
        if self.configured:
            return list(self.site.server_names) + [f"*.{d}" for d in self.site.local_domains]
        return sorted(self.learned)


def _first_label(host: str | None) -> str:
    return (host or "").lower().split(".", 1)[0]


def _same_machine(name: str | None, other: str) -> bool:
    """Two names of one machine: same host label in the same domain, or a long machine-like
    label (Exchange Online's BL6PEPF0001641C) seen under outlook.com and office365.com."""
    first, second = _first_label(name), _first_label(other)
    if not first or first != second:
        return False
    if registered_domain(name) == registered_domain(other):
        return True
    return len(first) >= 8 and any(c.isdigit() for c in first)


def _from_side_ours(hop: Hop, below: Hop | None, ours: _Ours) -> bool:
    """Is the sending side of ``hop`` one of our own hosts (so the message was already inside)?

    Names a client gives (HELO) are forgeable, and so is every hop below ours; only what our
    own server recorded counts: the client IP, the reverse name it looked up, and whether the
    hop below was stamped by that very host.
    """
    if hop.from_name is None and hop.from_ip is None:
        return True  # a stamp with no sender: a hand-over inside one host (Gmail, pickup)
    addr = ip_object(hop.from_ip) if hop.from_ip else None
    if addr is not None and addr.is_loopback:
        return True  # content filter loop (amavis 10024/10025) or a local relay
    if hop.from_ip and hop.from_ip in ours.ips:
        return True
    if below is None:
        return False
    # Verified names only: the rDNS our server looked up, or the from-name when no IP was
    # recorded at all (MDaemon writes just "from HOST by ...").
    names = {n.lower().rstrip(".") for n in (hop.from_rdns, hop.from_name if addr is None else None) if n}
    below_by = (below.by or "").lower()
    continuous = bool(below_by) and (
        below_by in names
        or (below.by_ip is not None and below.by_ip == hop.from_ip)
        or _same_machine(hop.from_name, below_by))
    if ours.configured:
        if not ours.by(below):
            return False
        return any(ours.host(n) for n in names) or ours.site.is_trusted_ip(hop.from_ip) or (
            continuous and addr is not None and addr.is_private)
    # Inferred (SpamAssassin's default): private addresses are inside; a public one only
    # when the hop below was stamped by that host and its name is in our domain.
    if addr is not None and addr.is_private:
        return True
    named_ours = any(ours.host(n) for n in names) or (
        addr is not None and ours.host(hop.from_name) and continuous)
    return continuous and named_ours


def find_our_hop(hops: list[Hop], ours: _Ours) -> tuple[Hop | None, bool, str | None]:
    """Our accepting hop, whether the walk went on past the lowest parsed hop, and why none."""
    parsed = [h for h in hops if h.parsed]
    if not parsed:
        return None, False, "no Received header could be understood" if hops else "no Received headers"
    start = next((i for i, h in enumerate(parsed) if ours.by(h)), None)
    if start is None:
        seen = ", ".join(sorted({h.by for h in parsed if h.by})[:5]) or "none"
        return None, False, f"no Received stamped by our servers (by-hosts seen: {seen})"
    i = start
    while True:
        hop = parsed[i]
        if hop.by_ip:
            ours.ips.add(hop.by_ip)
        below = parsed[i + 1] if i + 1 < len(parsed) else None
        if not _from_side_ours(hop, below, ours):
            return hop, False, None
        if below is None:
            return hop, True, None
        ours.learn(below.by)
        i += 1


def hop_is_local(hop: Hop) -> bool:
    """The hop says the message was handed over on the host itself."""
    if (hop.protocol or "").lower() in LOCAL_PROTOCOLS:
        return True
    if hop.from_name is None and hop.from_ip is None:
        return True
    return hop.is_loopback_client


def _effective_hop(index: int, hops: list[Hop], our_hop: Hop | None, past_bottom: bool) -> int:
    """The hop a Received-borne marker belongs to: a comment-only qmail stamp belongs to the
    parsed hop below it (qmail writes it above its own line), or, at the bottom, to our hop
    when the walk went on past it."""
    hop = hops[index]
    if hop.parsed:
        return index
    for lower in hops[index + 1:]:
        if lower.parsed:
            return lower.index
    if our_hop is not None and past_bottom and index > our_hop.index:
        return our_hop.index
    return index


def bind(evidence: AuthEvidence, hops: list[Hop], our_hop: Hop | None, ours: _Ours,
         past_bottom: bool) -> None:
    """Set ``evidence.bound`` and say why (or why not)."""
    if evidence.hop_index is not None:
        at = _effective_hop(evidence.hop_index, hops, our_hop, past_bottom)
        if our_hop is not None and at == our_hop.index:
            evidence.bound = True
            evidence.binding = f"in our accepting hop's Received line (hop {our_hop.index}, by {our_hop.by})"
        else:
            stamped = hops[at].by if hops[at].by else "unknown host"
            evidence.binding = f"in hop {at} (by {stamped}), not our accepting hop"
        return
    if evidence.names_host:
        if ours.host(evidence.names_host) or (our_hop is not None and our_hop.by
                                              and evidence.names_host == our_hop.by.lower()):
            evidence.bound = True
            evidence.binding = f"names our server {evidence.names_host}"
        else:
            evidence.binding = f"names {evidence.names_host}, not one of our servers"
        return
    if evidence.server_family == "php" and our_hop is not None:
        # PHP adds these on the host where mail() ran; they count when our hop says the
        # message was handed over on that host (Exim "with local", a from-less or loopback stamp).
        if hop_is_local(our_hop):
            evidence.bound = True
            evidence.binding = f"PHP header, and our hop (by {our_hop.by}) is a local hand-over"
        else:
            evidence.binding = "PHP header, but our hop received the message over the network"
        return
    if evidence.server_family == "mdaemon" and our_hop is not None and is_mdaemon_hop(our_hop):
        agrees = evidence.kind != EvidenceKind.AUTHENTICATED or (
            (our_hop.protocol or "").lower() in AUTHENTICATED_PROTOCOLS)
        if agrees:
            evidence.bound = True
            evidence.binding = (f"MDaemon header below our MDaemon hop (by {our_hop.by}, "
                                f"with {our_hop.protocol})")
            return
        evidence.binding = f"MDaemon header, but our MDaemon hop says with {our_hop.protocol}"
        return
    evidence.binding = "names no server: anyone on the way could have written it"


def _decode(name: str, value: str | None, defects: list[str]) -> str | None:
    """RFC 2047 decoding through the policy's header factory, never raising."""
    if value is None:
        return None
    if len(value) > MAX_DECODED_HEADER:
        defects.append(f"{name} header of {len(value)} characters cut to {MAX_DECODED_HEADER}")
        value = value[:MAX_DECODED_HEADER]
    if "=?" not in value and value.isascii():
        return value  # nothing to decode; the header parser is the slowest step of a trace
    try:
        decoded = " ".join(str(policy.default.header_factory(name, value)).split())
    except Exception as exc:  # the header parser has had IndexError/ValueError bugs on junk
        defects.append(f"{name} header could not be decoded ({type(exc).__name__})")
        return value
    if "@" in value and "@" not in decoded:
        # The address parser gave up on a broken display name; keep what was written.
        defects.append(f"{name} header could not be parsed as an address list")
        return value
    return decoded


def trace_headers(raw: RawHeaders, site: SiteConfig) -> Trace:
    """Trace one message whose header block has been read."""
    headers = HeaderView(split_fields(raw))
    defects = list(raw.defects)
    trace = Trace(source=raw.source, defects=defects)

    mid = headers.first("Message-ID")
    if mid:
        trace.message_id = mid[1].strip().strip("<>").strip()[:998] or None
    subject = headers.first("Subject")
    trace.subject = _decode("subject", subject[1] if subject else None, defects)
    sender = headers.first("From")
    trace.from_ = _decode("from", sender[1] if sender else None, defects)
    date = headers.first("Date")
    trace.date = date[1][:200] if date else None

    hops = parse_chain([value for _index, value in headers.all("Received")])
    trace.hops = hops
    for hop in hops:
        defects.extend(f"hop {hop.index}: {d}" for d in hop.defects)

    ours = _Ours(site, hops, headers)
    our_hop, past_bottom, no_hop_reason = find_our_hop(hops, ours)
    trace.our_hop = our_hop
    servers = ours.servers()
    if ours.configured:
        trace.boundary = Boundary(False, servers, "our servers from config/flags: " + ", ".join(servers))
    else:
        trace.boundary = Boundary(True, servers, "inferred from the top of the chain (no server names "
                                  "configured): our servers = " + (", ".join(servers) or "none found"))

    evidence: list[AuthEvidence] = []
    for marker in MARKERS:
        try:
            evidence.extend(marker.find(headers, hops))
        except Exception as exc:  # a marker bug must not lose the whole message
            defects.append(f"marker {marker.name} failed: {type(exc).__name__}")
    for ev in evidence:
        bind(ev, hops, our_hop, ours, past_bottom)
    trace.auth_markers = evidence
    bound = [e for e in evidence if e.bound]

    trace.client_ip = our_hop.from_ip if our_hop else None
    trace.client_helo = our_hop.helo if our_hop else None
    for ev in bound:  # MDaemon: X-MDRemoteIP when its Received is missing or anonymised ([x.x.x.x])
        if ev.kind == EvidenceKind.LOCAL:
            continue  # X-PHP-Script's IP is a web client, not an SMTP client (named in next_action)
        if trace.client_ip is None and ev.client_ip:
            trace.client_ip = ev.client_ip
        if trace.client_helo is None and ev.helo:
            trace.client_helo = ev.helo

    trace.received_at = our_hop.date if our_hop else None
    if trace.received_at is None:
        for name in ("X-MDArrival-Date",):
            found = headers.first(name)
            if found and any(e.server_family == "mdaemon" for e in bound):
                trace.received_at = parse_date(found[1])

    family = server_family(our_hop) or next((e.server_family for e in bound if e.server_family
                                             and e.server_family != "php"), None)
    facts = Facts(
        our_hop=our_hop, bound=bound, client_ip=trace.client_ip,
        client_is_trusted=site.is_trusted_ip(trace.client_ip),
        boundary_inferred=not ours.configured, message_id=trace.message_id,
        received_at=trace.received_at.isoformat() if trace.received_at else None,
        server_family=family, no_hop_reason=no_hop_reason, smtp_logs=site.smtp_logs,
    )
    decision = decide(facts)
    trace.verdict = decision.verdict
    trace.rule = decision.rule
    trace.reason = decision.reason
    trace.next_action = decision.next_action
    if decision.verdict in (Verdict.AUTHENTICATED_ACCOUNT, Verdict.LOCAL_SUBMISSION):
        trace.account = decision.account
    return trace


def trace_bytes(data: bytes, site: SiteConfig, *, source: str = "-") -> Trace:
    """Trace one message given as bytes; raises ``InputError`` (one line) when it cannot be read."""
    for item in read_stream(io.BytesIO(data), source):
        if isinstance(item, ReadFailure):
            raise InputError(f"{item.source}: {item.reason}")
        return trace_headers(item, site)
    raise InputError(f"{source}: empty input")  # pragma: no cover - read_stream always yields


def trace_results(path: str | os.PathLike[str], site: SiteConfig) -> Iterator[Trace | ReadFailure]:
    """Every message at ``path`` traced, with the ones that could not be read as ``ReadFailure``."""
    for item in read_path(path):
        if isinstance(item, ReadFailure):
            yield item
            continue
        try:
            yield trace_headers(item, site)
        except Exception as exc:  # last line of defence: one bad message never stops a batch
            yield ReadFailure(item.source, f"could not be traced: {type(exc).__name__}: {exc}"[:300])


def trace_path(path: str | os.PathLike[str], site: SiteConfig, *,
               errors: list[ReadFailure] | None = None) -> Iterator[Trace]:
    """Every message in a file, mbox, Maildir/MDaemon folder or ``-``.

    Messages that cannot be read are appended to ``errors`` when it is given (the batch goes
    on); without it the first one raises ``InputError``.
    """
    for item in trace_results(path, site):
        if isinstance(item, ReadFailure):
            if errors is None:
                raise InputError(f"{item.source}: {item.reason}")
            errors.append(item)
            continue
        yield item
