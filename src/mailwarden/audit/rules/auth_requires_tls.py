"""AUTH should be offered only once the connection is encrypted (after STARTTLS, or on port 465)."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._probe import capabilities


class AuthRequiresTlsRule:
    """See `AuditRule`."""

    name = "smtp-auth-requires-tls"
    title = "AUTH is offered only under TLS"
    kind = "smtp"
    severity = Severity.MEDIUM
    remediation = Remediation(
        mdaemon="Security > Security Settings > SSL & TLS > MDaemon: enable SSL/STARTTLS and require it "
                "for authenticated sessions (option names differ between versions; see docs/audit.md).",
        postfix="smtpd_tls_auth_only = yes (with smtpd_tls_cert_file/smtpd_tls_key_file set), or "
                "-o smtpd_tls_security_level=encrypt on the submission service; "
                "smtpd_sasl_auth_enable = no on port 25.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        seen = capabilities(self, ctx)
        if isinstance(seen, Finding):
            return seen
        caps, conv = seen
        if caps.auth_before_tls:
            why = "" if caps.starttls_offered else "; the server offers no STARTTLS at all"
            if caps.tls_error:
                why = f"; STARTTLS is offered but failed: {caps.tls_error}"
            return finding(self, Status.FAIL,
                           f"AUTH offered on an unencrypted connection ({' '.join(caps.auth_before_tls)}){why}",
                           conv.transcript)
        if conv.error:
            return finding(self, Status.ERROR, f"the check did not finish: {conv.error}", conv.transcript)
        if caps.auth_after_tls:
            return finding(self, Status.PASS,
                           f"AUTH offered only after STARTTLS ({' '.join(caps.auth_after_tls)})", conv.transcript)
        return finding(self, Status.PASS, "no AUTH offered on this port, in clear or after STARTTLS",
                       conv.transcript)
