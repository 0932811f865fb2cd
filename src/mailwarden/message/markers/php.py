"""PHP ``mail()``: ``X-PHP-Originating-Script: UID:script.php`` (and ``X-PHP-Script``) name the web script."""

from __future__ import annotations

from mailwarden.message.markers.base import AuthEvidence, EvidenceKind, HeaderView
from mailwarden.message.received import Hop, clean_ip


class PhpOriginatingScript:
    """See `AuthMarker`."""

    name = "php-originating-script"
    description = "X-PHP-Originating-Script: UID:script.php (mail.add_x_header) - a web script on the server"

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        found = []
        for name in ("X-PHP-Originating-Script", "X-PHP-Script"):
            for index, value in headers.all(name):
                uid, sep, script = value.strip().partition(":")
                if not sep or not uid.isdigit():
                    uid, script = None, value.strip()
                # X-PHP-Script: "host/path.php for 1.2.3.4" - the web client that ran the script.
                script, _for, web_client = script.partition(" for ")
                found.append(AuthEvidence(
                    marker=self.name, kind=EvidenceKind.LOCAL, header=name, value=value,
                    header_index=index, uid=uid, script=script.strip() or None,
                    client_ip=clean_ip(web_client.split()[0]) if web_client.split() else None,
                    server_family="php",
                ))
        return found
