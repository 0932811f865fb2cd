"""Postfix: ``(Authenticated sender: x)`` in Received, and ``(Postfix, from userid N)`` local pickup."""

from __future__ import annotations

from mailwarden.message.markers.base import (
    AuthEvidence,
    EvidenceKind,
    HeaderView,
    from_received_comments,
)
from mailwarden.message.received import Hop

_AUTH_PREFIX = "authenticated sender:"
_USERID = "from userid "


class PostfixAuthenticatedSender:
    """See `AuthMarker`."""

    name = "postfix-authenticated-sender"
    description = "Received comment `(Authenticated sender: user)` (smtpd_sasl_authenticated_header = yes)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        def read(comment: str, hop: Hop) -> dict | None:
            if not comment.lower().startswith(_AUTH_PREFIX):
                return None
            return {"account": comment[len(_AUTH_PREFIX):].strip() or None,
                    "client_ip": hop.from_ip, "helo": hop.helo}

        return from_received_comments(self.name, hops, EvidenceKind.AUTHENTICATED, "postfix", read)


class PostfixLocalPickup:
    """See `AuthMarker`."""

    name = "postfix-local-userid"
    description = "Received `by host (Postfix, from userid N)`: sendmail(1)/PHP mail() on the server"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        def read(comment: str, hop: Hop) -> dict | None:
            at = comment.lower().find(_USERID)
            if at < 0:
                return None
            words = comment[at + len(_USERID):].split()
            return {"uid": words[0] if words else None}

        return from_received_comments(self.name, hops, EvidenceKind.LOCAL, "postfix", read)
