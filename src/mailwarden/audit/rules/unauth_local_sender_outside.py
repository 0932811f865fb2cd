"""An unauthenticated client claiming a local sender must not send to an outside recipient."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity
from mailwarden.audit.probe import CONV_UNAUTH_LOCAL_TO_OUTSIDE
from mailwarden.audit.rules._probe import must_be_refused


class UnauthLocalSenderOutsideRule:
    """See `AuditRule`."""

    name = "smtp-unauth-local-sender-outside"
    title = "Unauthenticated mail from a local address to an outside address is refused"
    kind = "smtp"
    severity = Severity.CRITICAL
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Authentication is always "
                "required when mail is from local accounts\"; check that the probing host is not a "
                "Trusted Host / Trusted IP (Security > Security Settings > Trusted Hosts).",
        postfix="smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                "reject_unauth_destination with a mynetworks that holds only your own hosts; and "
                "smtpd_sender_login_maps + reject_unauthenticated_sender_login_mismatch in "
                "smtpd_sender_restrictions.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        return must_be_refused(self, ctx, CONV_UNAUTH_LOCAL_TO_OUTSIDE,
                               what="unauthenticated MAIL FROM a local address to an outside recipient")
