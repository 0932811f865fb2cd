"""RFC 8601 ``Authentication-Results: AUTHSERV; auth=pass smtp.auth=user`` (MailChannels, Stalwart, Haraka)."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop

_KEY = "smtp.auth="


class AuthResultsSmtpAuth:
    """See `AuthMarker`."""

    name = "auth-results-smtp-auth"
    description = "Authentication-Results `smtp.auth=user`, bound by its authserv-id naming our server"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for index, value in headers.all("Authentication-Results"):
            at = value.lower().find(_KEY)
            if at < 0:
                continue
            words = value[at + len(_KEY):].split()
            account = words[0].rstrip(";") if words else None
            authserv = value.split(";", 1)[0].split()
            found.append(AuthEvidence(
                marker=self.name, kind=EvidenceKind.AUTHENTICATED, header="Authentication-Results",
                value=value, header_index=index, account=account or None,
                names_host=authserv[0].lower().rstrip(".") if authserv else None,
            ))
        return found
