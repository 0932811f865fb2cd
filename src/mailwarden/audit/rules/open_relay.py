"""Outside sender to outside recipient, unauthenticated: an open relay must refuse it."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity
from mailwarden.audit.probe import CONV_OPEN_RELAY
from mailwarden.audit.rules._probe import must_be_refused


class OpenRelayRule:
    """See `AuditRule`."""

    name = "smtp-open-relay"
    title = "The server is not an open relay"
    kind = "smtp"
    severity = Severity.CRITICAL
    remediation = Remediation(
        mdaemon="Security > Security Settings > Relay Control: enable \"Do not allow message relaying\" "
                "and keep \"...unless sent from a trusted host or IP\" limited to your own hosts.",
        postfix="smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                "reject_unauth_destination; mynetworks only your own hosts (mynetworks_style = host).",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        return must_be_refused(self, ctx, CONV_OPEN_RELAY,
                               what="unauthenticated mail from an outside sender to an outside recipient")
