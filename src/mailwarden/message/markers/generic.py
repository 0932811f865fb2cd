"""Headers that name an authenticated user but no server: they are shown, never decide on their own."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop

# X-Authenticated-User (Zimbra and others), X-AuthUser (25 phishing_pot samples),
# cPanel's X-Authenticated-Id / X-Source-Auth, qmail-toaster's X-Authenticated-UID, MailChannels' X-Sender-Id "acct|x-authuser|user".
HEADERS = ("X-Authenticated-User", "X-AuthUser", "X-Authenticated-Id", "X-Authenticated-UID", "X-Source-Auth")


class NamedUserHeaders:
    """See `AuthMarker`."""

    name = "authenticated-user-header"
    description = "X-Authenticated-User / X-AuthUser / X-Authenticated-Id / X-Source-Auth / X-Sender-Id (no server named)"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for name in HEADERS:
            for index, value in headers.all(name):
                if value.strip():
                    found.append(AuthEvidence(
                        marker=self.name, kind=EvidenceKind.AUTHENTICATED, header=name, value=value,
                        header_index=index, account=value.split()[0],
                    ))
        for index, value in headers.all("X-Sender-Id"):
            parts = value.split("|")
            if len(parts) == 3 and parts[1].strip() == "x-authuser":
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="X-Sender-Id",
                    value=value, header_index=index, account=parts[2].strip() or None,
                ))
        return found
