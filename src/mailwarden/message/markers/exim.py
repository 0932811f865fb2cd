"""Exim and cPanel: ``X-Authenticated-Sender: host: user``, ``X-Get-Message-Sender-Via``, ``with local``."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView, host_prefix
from mailwarden.message.received import Hop

# Exim's protocol names for messages handed over on the host itself (not esmtpa: that one
# authenticated and is read by the RFC 3848 marker).
LOCAL_PROTOCOLS = frozenset({"local", "local-smtp", "local-esmtp", "local-bsmtp", "local-esmtps",
                             "utf8local", "utf8local-esmtp"})


class CpanelAuthenticatedSender:
    """See `AuthMarker`."""

    name = "cpanel-authenticated-sender"
    description = "`X-Authenticated-Sender: HOST: user` and `X-Get-Message-Sender-Via: HOST: authenticated_id: user` (cPanel Exim)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for index, value in headers.all("X-Authenticated-Sender"):
            host, account = host_prefix(value)
            if host:  # the plain "user@domain" form is MDaemon's; see markers/mdaemon.py
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="X-Authenticated-Sender",
                    value=value, header_index=index, account=account or None, names_host=host,
                    server_family="exim",
                ))
        for index, value in headers.all("X-Get-Message-Sender-Via"):
            host, rest = host_prefix(value)
            if host and rest.lower().startswith("authenticated_id:"):
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="X-Get-Message-Sender-Via",
                    value=value, header_index=index, account=rest.split(":", 1)[1].strip() or None,
                    names_host=host, server_family="exim",
                ))
        return found


class EximLocalSubmission:
    """See `AuthMarker`."""

    name = "exim-local"
    description = "Received `from USER by host with local (Exim ...)`: submitted by a local user"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            if hop.protocol and hop.protocol.lower() in LOCAL_PROTOCOLS:
                user = hop.from_name if hop.from_ip is None else None
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.LOCAL, header="Received",
                    value=f"with {hop.protocol}", hop_index=hop.index, account=user,
                    server_family="exim",
                ))
        return found
