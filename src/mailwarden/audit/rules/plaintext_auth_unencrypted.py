"""A password-revealing AUTH (PLAIN, LOGIN) must not be accepted on an unencrypted connection."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.probe import PLAINTEXT_MECHANISMS
from mailwarden.audit.rules._probe import capabilities


class PlaintextAuthUnencryptedRule:
    """See `AuditRule`."""

    name = "smtp-plaintext-auth-unencrypted"
    title = "No plain-text AUTH (PLAIN/LOGIN) over an unencrypted connection"
    kind = "smtp"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SSL & TLS > MDaemon: enable STARTTLS; Setup > Default "
                "Domain / Servers > Servers: keep \"Enable APOP & CRAM-MD5\" on; require TLS before "
                "AUTH where your version offers it.",
        postfix="smtpd_tls_auth_only = yes; or smtpd_sasl_security_options = noanonymous, noplaintext "
                "with smtpd_sasl_tls_security_options = noanonymous.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        seen = capabilities(self, ctx)
        if isinstance(seen, Finding):
            return seen
        caps, conv = seen
        advertised = sorted(PLAINTEXT_MECHANISMS.intersection(caps.auth_before_tls))
        if advertised:
            return finding(self, Status.FAIL,
                           f"plain-text AUTH ({' '.join(advertised)}) offered on an unencrypted connection",
                           conv.transcript)
        if caps.plain_auth_accepted_in_clear:
            return finding(self, Status.FAIL,
                           "AUTH PLAIN is not advertised but the server asked for the password on an "
                           f"unencrypted connection ({caps.plain_auth_reply_in_clear})", conv.transcript)
        if caps.plain_auth_accepted_in_clear is None:
            return finding(self, Status.ERROR, f"the check did not finish: {conv.error or 'no verdict'}",
                           conv.transcript)
        return finding(self, Status.PASS,
                       f"no plain-text AUTH in clear (AUTH PLAIN answered: {caps.plain_auth_reply_in_clear})",
                       conv.transcript)
