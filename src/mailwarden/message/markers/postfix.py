"""Postfix: ``(Authenticated sender: x)`` in Received, and ``(Postfix, from userid N)`` local pickup."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop

_AUTH_PREFIX = "authenticated sender:"
_USERID = "from userid "


class PostfixAuthenticatedSender:
    """See `AuthMarker`."""

    name = "postfix-authenticated-sender"
    description = "Received comment `(Authenticated sender: user)` (smtpd_sasl_authenticated_header = yes)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            for comment in hop.comments:
                if comment.lower().startswith(_AUTH_PREFIX):
                    account = comment[len(_AUTH_PREFIX):].strip() or None
                    found.append(AuthEvidence(
                        marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="Received",
                        value=f"({comment})", hop_index=hop.index, account=account,
                        client_ip=hop.from_ip, helo=hop.helo, server_family="postfix",
                    ))
        return found


class PostfixLocalPickup:
    """See `AuthMarker`."""

    name = "postfix-local-userid"
    description = "Received `by host (Postfix, from userid N)`: sendmail(1)/PHP mail() on the server"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            for comment in hop.comments:
                at = comment.lower().find(_USERID)
                if at >= 0:
                    words = comment[at + len(_USERID):].split()
                    uid = words[0] if words else None
                    found.append(AuthEvidence(
                        marker=self.name, kind=EvidenceKind.LOCAL, header="Received",
                        value=f"({comment})", hop_index=hop.index, uid=uid, server_family="postfix",
                    ))
        return found
