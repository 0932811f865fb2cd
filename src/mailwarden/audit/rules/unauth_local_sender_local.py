"""An unauthenticated client claiming a local sender must not send even to a local recipient.

This is MDaemon's "...unless message is to a local account" exemption and the Trusted Hosts /
Trusted Domains hole: a spambot forging our own domain to our own users.
"""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity
from mailwarden.audit.probe import CONV_UNAUTH_LOCAL_TO_LOCAL
from mailwarden.audit.rules._probe import must_be_refused


class UnauthLocalSenderLocalRule:
    """See `AuditRule`."""

    name = "smtp-unauth-local-sender-local"
    title = "Unauthenticated mail from a local address to a local address is refused"
    kind = "smtp"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Authentication is always "
                "required when mail is from local accounts\" and clear \"...unless message is to a local "
                "account\"; remove your own domain from Trusted Hosts / Trusted Domains "
                "(Security > Security Settings > Trusted Hosts).",
        postfix="smtpd_sender_login_maps listing every local address, and "
                "reject_unauthenticated_sender_login_mismatch (or reject_sender_login_mismatch) in "
                "smtpd_sender_restrictions, with no permit_mynetworks or check_sender_access OK for "
                "your domain before it.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        return must_be_refused(
            self, ctx, CONV_UNAUTH_LOCAL_TO_LOCAL,
            what="unauthenticated MAIL FROM a local address to a local recipient",
            control_must_pass="plain inbound mail from an outside sender to the same local recipient",
            policy_refusal_passes=True)
