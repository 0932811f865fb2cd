"""MDaemon: the block of headers it stamps on acceptance (X-Spam-Processed, X-Authenticated-Sender, X-MDRemoteIP ...).

Real samples (reference mdaemon-formats.md 2.5; phishing_pot sample-1972): the block names
the accepting server in ``X-Spam-Processed: HOST, date`` (or ``X-MDAV-Processed``), so it can
be bound even when MDaemon's Received says ``with ESMTP`` (10.1.1) or is missing; the client
IP is then ``X-MDRemoteIP``. ``X-Authenticated-Sender`` here is the plain ``user@domain``
form (cPanel's ``host: user`` form is read by markers/exim.py).
"""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView, host_prefix
from mailwarden.message.received import Hop, clean_ip

BLOCK_HEADERS = ("X-MDRemoteIP", "X-MDHelo", "X-MDArrival-Date", "X-MDHeloLookup-Result",
                 "X-MDaemon-Deliver-To", "X-MDAV-Processed", "X-MDOrigin-Country")


def processed_by(headers: HeaderView) -> str | None:
    """The host named by ``X-Spam-Processed: HOST, date`` (or X-MDAV-Processed), lower-cased."""
    for name in ("X-Spam-Processed", "X-MDAV-Processed"):
        first = headers.first(name)
        if first:
            host = first[1].split(",", 1)[0].strip().lower().rstrip(".")
            if host and " " not in host:
                return host
    return None


def is_mdaemon_hop(hop: Hop) -> bool:
    """MDaemon writes its name in the by-comment and ``id md5....msg`` (queue file name)."""
    if hop.software and "mdaemon" in hop.software.lower():
        return True
    ident = (hop.id or "").lower()
    return ident.endswith(".msg") and ident[:2] in ("md", "pd", "pp")


class MdaemonBlock:
    """See `AuthMarker`."""

    name = "mdaemon-block"
    description = "MDaemon's X-Authenticated-Sender + X-MDRemoteIP/X-MDHelo, bound by X-Spam-Processed: HOST"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        host = processed_by(headers)
        has_block = host is not None or any(headers.first(n) for n in BLOCK_HEADERS)
        has_hop = any(is_mdaemon_hop(h) for h in hops)
        remote = headers.first("X-MDRemoteIP")
        helo = headers.first("X-MDHelo")
        client_ip = clean_ip(remote[1]) if remote else None
        helo_text = helo[1].strip() if helo else None
        found = []
        for index, value in headers.all("X-Authenticated-Sender"):
            prefix, account = host_prefix(value)
            if prefix is not None or not (has_block or has_hop):
                continue
            found.append(AuthEvidence(
                marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="X-Authenticated-Sender",
                value=value, header_index=index, account=account or None, client_ip=client_ip,
                helo=helo_text, names_host=host, server_family="mdaemon",
            ))
        if not found and remote:
            found.append(AuthEvidence(
                marker=self.name, kind=EvidenceKind.CLIENT_INFO, header="X-MDRemoteIP",
                value=remote[1], header_index=remote[0], client_ip=client_ip, helo=helo_text,
                names_host=host, server_family="mdaemon",
            ))
        return found
