"""qmail: ``(qmail N invoked by uid U)`` local injection, and SMTP-AUTH patches' ``(user@dom@[ip])``."""

from __future__ import annotations

from mailwarden.message.markers.base import (
    AuthEvidence,
    EvidenceKind,
    HeaderView,
    from_received_comments,
)
from mailwarden.message.received import Hop, clean_ip


class QmailInvokedByUid:
    """See `AuthMarker`."""

    name = "qmail-invoked-by-uid"
    description = "comment-only Received `(qmail N invoked by uid U)` at the bottom of the chain: local injection"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            if hop.parsed or not hop.comments:
                continue
            words = hop.comments[0].split()
            if len(words) >= 6 and words[0] == "qmail" and words[2:5] == ["invoked", "by", "uid"]:
                # Only the bottom stamp is an origin; a uid stamp above a network hop is a
                # re-injection on the same host (qmail-scanner, mail-parser mail_test_9).
                if any(h.parsed for h in hops[hop.index + 1:]):
                    continue
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.LOCAL, header="Received",
                    value=f"({hop.comments[0]})", hop_index=hop.index, uid=words[5],
                    server_family="qmail",
                ))
        return found


class QmailSmtpAuth:
    """See `AuthMarker`."""

    name = "qmail-smtp-auth"
    description = "Received from-comment `(user@domain@[ip])` / `(user@domain@ip)` written by qmail SMTP-AUTH patches"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        def read(comment: str, hop: Hop) -> dict | None:
            if comment.count("@") < 2 or " " in comment:
                return None
            user, _, literal = comment.rpartition("@")
            ip = clean_ip(literal)
            return None if ip is None else {"account": user, "client_ip": ip, "helo": hop.helo}

        return from_received_comments(self.name, hops, EvidenceKind.AUTHENTICATED, "qmail", read)
