"""Logged in as account A, a From: header naming another address should be refused where checked.

The probe cannot see this without completing a message, so the finding is always "skipped" with
the reason and the settings to check by hand.
"""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.probe import CONV_AUTH_FROM_HEADER
from mailwarden.audit.rules._probe import conversation


class AuthFromHeaderRule:
    """See `AuditRule`."""

    name = "smtp-auth-from-header-mismatch"
    title = "An authenticated account cannot send with another address in the From: header"
    kind = "smtp"
    severity = Severity.MEDIUM
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Credentials used must "
                "match those of the 'From:' header address\".",
        postfix="Postfix has no built-in From: header check; use a milter or policy service that "
                "compares the From: header with the SASL login.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        conv = conversation(ctx, CONV_AUTH_FROM_HEADER)
        if conv is None:
            return finding(self, Status.SKIPPED, "no SMTP probe was run")
        return finding(self, Status.SKIPPED, conv.skipped or "not probed", conv.transcript)
