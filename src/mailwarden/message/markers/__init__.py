"""Authenticated-submission markers, one module per MTA family, registered here explicitly."""

from __future__ import annotations

from mailwarden.message.markers.authresults import AuthResultsSmtpAuth
from mailwarden.message.markers.base import AuthEvidence, AuthMarker, EvidenceKind, HeaderView
from mailwarden.message.markers.exchange import ExchangeAuthAs, ExchangeMapi
from mailwarden.message.markers.exim import CpanelAuthenticatedSender, EximLocalSubmission
from mailwarden.message.markers.generic import NamedUserHeaders
from mailwarden.message.markers.mdaemon import MdaemonBlock
from mailwarden.message.markers.php import PhpOriginatingScript
from mailwarden.message.markers.postfix import PostfixAuthenticatedSender, PostfixLocalPickup
from mailwarden.message.markers.qmail import QmailInvokedByUid, QmailSmtpAuth
from mailwarden.message.markers.rfc3848 import ProtocolTokenMarker
from mailwarden.message.markers.sendmail import SendmailAuthenticated, SendmailLocalSubmission
from mailwarden.registry import Registry

MARKERS: Registry[AuthMarker] = Registry("auth marker", [
    ProtocolTokenMarker(),
    PostfixAuthenticatedSender(),
    PostfixLocalPickup(),
    SendmailAuthenticated(),
    SendmailLocalSubmission(),
    CpanelAuthenticatedSender(),
    EximLocalSubmission(),
    MdaemonBlock(),
    ExchangeAuthAs(),
    ExchangeMapi(),
    AuthResultsSmtpAuth(),
    NamedUserHeaders(),
    QmailInvokedByUid(),
    QmailSmtpAuth(),
    PhpOriginatingScript(),
])

__all__ = ["MARKERS", "AuthEvidence", "AuthMarker", "EvidenceKind", "HeaderView"]
