"""Postfix: permit_mynetworks placed before the sender-login check exempts those hosts from it.

That is Postfix's form of MDaemon's "Trusted IPs are exempt": harmless when mynetworks is only this
machine, a spambot's open door when it holds an office network.
"""

from __future__ import annotations

from mailwarden.audit.config.networks import mynetworks_scope
from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._postfix import LOGIN_CHECKS, find, list_evidence


class PermitMynetworksOrderRule:
    """See `AuditRule`."""

    name = "postfix-permit-mynetworks-order"
    title = "permit_mynetworks does not exempt networks beyond this host from the sender-login check"
    kind = "postfix"
    severity = Severity.MEDIUM
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Authentication is always "
                "required when mail is sent from local IPs\" (Trusted IPs stay exempt: keep that list short).",
        postfix="put reject_sender_login_mismatch (or the unauthenticated variant) before "
                "permit_mynetworks in smtpd_sender_restrictions, or narrow mynetworks to this host.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        trusted = list(ctx.site.trusted_networks) if ctx.site else []
        evidence: list[str] = []
        bypasses: list[str] = []
        harmless: list[str] = []
        any_check = False
        for service in cfg.smtpd_services():
            placements = find(cfg, service, LOGIN_CHECKS)
            if not placements:
                continue
            any_check = True
            evidence.append(service.evidence())
            evidence += ["  " + line for line in list_evidence(cfg, service, sorted({p.list_name for p in placements}))]
            for p in placements:
                before = p.preceded_by({"permit_mynetworks"})
                if before is None:
                    continue
                scope = mynetworks_scope(cfg, service, trusted)
                evidence.append("  " + (scope.style or scope.setting).evidence())
                where = f"{service.label}: permit_mynetworks before {p.restriction} in {p.list_name}"
                (harmless if scope.loopback_only else bypasses).append(where)
        if not any_check:
            return finding(self, Status.SKIPPED,
                           "no sender-login check to be exempted from (see postfix-sender-login-*)")
        if bypasses:
            return finding(self, Status.FAIL,
                           "hosts in mynetworks skip the sender-login check, and mynetworks is more than "
                           "this machine: " + "; ".join(bypasses), evidence)
        if harmless:
            return finding(self, Status.PASS,
                           "permit_mynetworks comes first but mynetworks is only this machine: "
                           + "; ".join(harmless), evidence)
        return finding(self, Status.PASS, "the sender-login check comes before permit_mynetworks", evidence)
