"""Logged in as account A, the client must not use account B's address as the envelope sender."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity
from mailwarden.audit.probe import CONV_AUTH_SENDER_MISMATCH
from mailwarden.audit.rules._probe import must_be_refused


class AuthSenderMismatchRule:
    """See `AuditRule`."""

    name = "smtp-auth-sender-mismatch"
    title = "An authenticated account cannot send as another local address (MAIL FROM)"
    kind = "smtp"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Credentials used must "
                "match those of the return-path address\" (older versions: \"Authentication "
                "credentials must match those of the email sender\").",
        postfix="smtpd_sender_login_maps = (a map from each address to its login) and "
                "reject_sender_login_mismatch (or reject_authenticated_sender_login_mismatch) in "
                "smtpd_sender_restrictions, before permit_sasl_authenticated; also in the submission "
                "service's -o smtpd_sender_restrictions if master.cf overrides it.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        return must_be_refused(self, ctx, CONV_AUTH_SENDER_MISMATCH,
                               what="authenticated MAIL FROM another account's address",
                               control_must_pass="MAIL FROM our own address after the same login")
