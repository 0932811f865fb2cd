"""The ``AuthMarker`` contract, the evidence it yields, and the header view it reads.

A marker only *finds* evidence and says where it came from (which header, which hop,
which server it names). Whether the evidence may decide the verdict - whether it is
bound to our accepting hop - is decided in ``message/trace.py``, and what it means in
``message/verdict.py``; markers stay unaware of one another and of the site config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mailwarden.message.received import Hop

MAX_VALUE = 300  # evidence values are cut to this many characters for display/JSON


class EvidenceKind(StrEnum):
    """What a marker says happened. Stable values: they appear in --json."""

    AUTHENTICATED = "authenticated"  # SMTP AUTH succeeded (account when the header names it)
    LOCAL = "local"                  # handed over on the server itself (uid, local user, web script)
    CLIENT_INFO = "client-info"      # only says who connected (MDaemon X-MDRemoteIP without AUTH)
    ANONYMOUS = "anonymous"          # the server says the session was NOT authenticated


@dataclass
class AuthEvidence:
    """One marker found in one header, with its provenance."""

    marker: str                      # the AuthMarker's name
    kind: EvidenceKind
    header: str                      # header field it came from ("Received", "X-Authenticated-Sender")
    value: str                       # the header value (or the Received comment) as found
    header_index: int | None = None  # position in the header block, 0 = top
    hop_index: int | None = None     # the Received hop, when it came from one
    account: str | None = None
    client_ip: str | None = None
    helo: str | None = None
    uid: str | None = None
    script: str | None = None
    names_host: str | None = None    # the server the marker itself names (cPanel host, X-Spam-Processed)
    server_family: str | None = None # "mdaemon", "exchange" ... for "a header our kind of server writes"
    bound: bool = False              # set by trace: may this evidence decide the verdict?
    binding: str | None = None       # why it is bound, or why not

    def to_json(self) -> dict:
        return {
            "marker": self.marker, "kind": str(self.kind), "header": self.header,
            "value": self.value[:MAX_VALUE], "header_index": self.header_index,
            "hop_index": self.hop_index, "account": self.account, "client_ip": self.client_ip,
            "helo": self.helo, "uid": self.uid, "script": self.script,
            "names_host": self.names_host, "server_family": self.server_family,
            "bound": self.bound, "binding": self.binding,
        }


class HeaderView:
    """The message's header fields in order (values already unfolded), case-insensitive lookup."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self._by_name: dict[str, list[tuple[int, str]]] = {}
        for index, (name, value) in enumerate(self.items):
            self._by_name.setdefault(name.lower(), []).append((index, value))

    def all(self, name: str) -> list[tuple[int, str]]:
        """(position, value) of every field called ``name``, top first."""
        return self._by_name.get(name.lower(), [])

    def first(self, name: str) -> tuple[int, str] | None:
        found = self._by_name.get(name.lower())
        return found[0] if found else None


class AuthMarker(Protocol):
    """One MTA family's way of recording authenticated or local submission."""

    name: str         # stable kebab-case id (appears in --json)
    description: str  # one line: which header or Received comment it reads

    def find(self, headers: HeaderView, hops: list[Hop]) -> list[AuthEvidence]:
        """Every piece of evidence of this kind in the message (never raises)."""
        ...


def host_prefix(value: str) -> tuple[str | None, str]:
    """cPanel/Exim ``host.name: rest`` -> (host, rest); (None, value) when there is no such prefix."""
    head, sep, rest = value.partition(": ")
    if sep and head and " " not in head and "@" not in head and "." in head:
        return head.lower().rstrip("."), rest.strip()
    return None, value.strip()


def from_received_comments(marker: str, hops: list[Hop], kind: EvidenceKind, server_family: str,
                           read: Callable[[str, Hop], dict | None]) -> list[AuthEvidence]:
    """Evidence from the comments of Received lines (Postfix, sendmail, qmail write theirs there).

    ``read(comment, hop)`` returns the fields the comment gives (``account``, ``uid``,
    ``client_ip``, ``helo``) or None when the comment is not this marker's.
    """
    found = []
    for hop in hops:
        for comment in hop.comments:
            fields = read(comment, hop)
            if fields is not None:
                found.append(AuthEvidence(marker=marker, kind=kind, header="Received",
                                          value=f"({comment})", hop_index=hop.index,
                                          server_family=server_family, **fields))
    return found
