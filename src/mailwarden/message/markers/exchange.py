"""Microsoft Exchange: ``X-MS-Exchange-Organization-AuthAs`` / ``AuthSource``, and ``with mapi`` hops.

These headers describe the *receiving* organisation's view and are stripped at the org
boundary (reference forensics-and-log-tools.md 4), so they bind only when AuthSource
names one of our servers.
"""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop


class ExchangeAuthAs:
    """See `AuthMarker`."""

    name = "exchange-authas"
    description = "X-MS-Exchange-Organization-AuthAs: Internal|Anonymous|Partner, bound by AuthSource: HOST"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        authas = headers.first("X-MS-Exchange-Organization-AuthAs")
        if not authas:
            return []
        source = headers.first("X-MS-Exchange-Organization-AuthSource")
        host = source[1].strip().lower().rstrip(".") if source and source[1].strip() else None
        value = authas[1].strip()
        kind = EvidenceKind.AUTHENTICATED if value.lower() == "internal" else EvidenceKind.ANONYMOUS
        return [AuthEvidence(
            marker=self.name, kind=kind, header="X-MS-Exchange-Organization-AuthAs", value=value,
            header_index=authas[0], names_host=host, server_family="exchange",
        )]


class ExchangeMapi:
    """See `AuthMarker`."""

    name = "exchange-mapi"
    description = "Received `with mapi`: submitted by a logged-in Outlook/OWA mailbox"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        return [AuthEvidence(
            marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="Received",
            value=f"with {hop.protocol}", hop_index=hop.index, client_ip=hop.from_ip,
            server_family="exchange",
        ) for hop in hops if hop.protocol and hop.protocol.lower() == "mapi"]
