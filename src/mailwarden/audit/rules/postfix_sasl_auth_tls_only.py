"""Postfix: no smtpd service offers AUTH on an unencrypted connection."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules.postfix_submission_service import auth_only_under_tls


class SaslAuthTlsOnlyRule:
    """See `AuditRule`."""

    name = "postfix-sasl-auth-tls-only"
    title = "No SMTP service offers AUTH without TLS"
    kind = "postfix"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SSL & TLS > MDaemon: enable STARTTLS and require it "
                "before AUTH where your version offers it.",
        postfix="smtpd_tls_auth_only = yes in main.cf (with a certificate), or "
                "smtpd_sasl_auth_enable = no on port 25 and AUTH only on the submission service.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        services = [s for s in cfg.smtpd_services() if cfg.is_yes("smtpd_sasl_auth_enable", s)]
        if not services:
            return finding(self, Status.PASS, "no smtpd service enables SASL AUTH",
                           [cfg.setting("smtpd_sasl_auth_enable").evidence()])
        evidence: list[str] = []
        clear: list[str] = []
        for service in services:
            evidence.append(service.evidence())
            evidence.append("  " + cfg.setting("smtpd_sasl_auth_enable", service).evidence())
            tls_only, tls_evidence = auth_only_under_tls(cfg, service)
            evidence += ["  " + line for line in tls_evidence]
            if not tls_only:
                clear.append(service.label)
        if clear:
            return finding(self, Status.FAIL, "AUTH offered on an unencrypted connection by: " + ", ".join(clear),
                           evidence)
        return finding(self, Status.PASS, "every service with AUTH requires TLS first", evidence)
