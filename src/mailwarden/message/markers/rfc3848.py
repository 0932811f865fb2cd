"""RFC 3848 protocol tokens: ``with ESMTPA`` / ``ESMTPSA`` / ``LMTPA`` / ``UTF8SMTPSA`` / Exim ``esmtpa``."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop

# RFC 3848 and RFC 6531 registrations whose "A" means SMTP AUTH succeeded; Exim writes
# them in lower case and adds local-esmtpa for authenticated local SMTP (-bs).
AUTHENTICATED_PROTOCOLS = frozenset({
    "esmtpa", "esmtpsa", "lmtpa", "lmtpsa", "utf8smtpa", "utf8smtpsa", "utf8lmtpa",
    "utf8lmtpsa", "local-esmtpa", "local-esmtpsa",
})


class ProtocolTokenMarker:
    """See `AuthMarker`."""

    name = "rfc3848-protocol"
    description = "Received `with ESMTPA/ESMTPSA/LMTPA/UTF8SMTPSA...` (RFC 3848, RFC 6531; Exim esmtpa)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            if hop.protocol and hop.protocol.lower() in AUTHENTICATED_PROTOCOLS:
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="Received",
                    value=f"with {hop.protocol}", hop_index=hop.index,
                    client_ip=hop.from_ip, helo=hop.helo,
                ))
        return found
