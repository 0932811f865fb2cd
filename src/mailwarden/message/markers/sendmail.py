"""sendmail: ``(authenticated bits=N)`` (the protocol may still say ESMTP) and ``(from user@localhost)`` submission."""

from __future__ import annotations

from mailwarden.message.markers.base import (
    AuthEvidence,
    EvidenceKind,
    HeaderView,
    from_received_comments,
)
from mailwarden.message.received import Hop


class SendmailAuthenticated:
    """See `AuthMarker`."""

    name = "sendmail-authenticated"
    description = "Received comment `(authenticated bits=N)` or `(authenticated as user)` (sendmail 8.x)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        def read(comment: str, hop: Hop) -> dict | None:
            low = comment.lower()
            if not low.startswith(("authenticated bits=", "authenticated as ")):
                return None
            words = comment.split()
            account = words[2] if low.startswith("authenticated as ") and len(words) > 2 else None
            return {"account": account, "client_ip": hop.from_ip, "helo": hop.helo}

        return from_received_comments(self.name, hops, EvidenceKind.AUTHENTICATED, "sendmail", read)


class SendmailLocalSubmission:
    """See `AuthMarker`."""

    name = "sendmail-local-submission"
    description = "Received `(from user@localhost) by host (8.x/Submit)`: mail handed to sendmail on the server"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for hop in hops:
            if hop.from_name is not None or not hop.comments:
                continue
            # sendmail's submission stamp has no "from" clause, only a "(from user@host)" comment
            # before "by" (mail-parser mail_test_17: "(from www-data@localhost) by vps... (8.15.2/Submit)").
            first = hop.comments[0]
            if first.lower().startswith("from ") and len(first.split()) == 2:
                user = first.split()[1]
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.LOCAL, header="Received",
                    value=f"({first})", hop_index=hop.index, account=user.split("@")[0],
                    server_family="sendmail",
                ))
        return found
