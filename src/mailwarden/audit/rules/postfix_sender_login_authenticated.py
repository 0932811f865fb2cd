"""Postfix: an authenticated client may use only the sender addresses its login owns."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._postfix import (
    LOGIN_CHECKS_AUTHENTICATED,
    checked_lists,
    find,
    list_evidence,
)


class SenderLoginAuthenticatedRule:
    """See `AuditRule`."""

    name = "postfix-sender-login-authenticated"
    title = "Authenticated senders are held to their own addresses (smtpd_sender_login_maps)"
    kind = "postfix"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Credentials used must "
                "match those of the return-path address\".",
        postfix="smtpd_sender_login_maps = (address -> login map) and reject_sender_login_mismatch "
                "(or reject_authenticated_sender_login_mismatch) in smtpd_sender_restrictions, before "
                "permit_sasl_authenticated, on every service with smtpd_sasl_auth_enable = yes "
                "(including the submission service's -o smtpd_sender_restrictions).",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        services = [s for s in cfg.smtpd_services() if cfg.is_yes("smtpd_sasl_auth_enable", s)]
        if not services:
            return finding(self, Status.SKIPPED,
                           "no smtpd service enables SASL AUTH (smtpd_sasl_auth_enable = no everywhere)",
                           [cfg.setting("smtpd_sasl_auth_enable").evidence()])
        problems: list[str] = []
        evidence: list[str] = []
        for service in services:
            evidence.append(service.evidence())
            evidence.append("  " + cfg.setting("smtpd_sasl_auth_enable", service).evidence())
            maps = cfg.setting("smtpd_sender_login_maps", service)
            evidence.append("  " + maps.evidence())
            lists = checked_lists(cfg, service)
            placements = find(cfg, service, LOGIN_CHECKS_AUTHENTICATED, lists)
            evidence += ["  " + line for line in list_evidence(
                cfg, service, sorted({p.list_name for p in placements}) or ["smtpd_sender_restrictions"])]
            if not cfg.get("smtpd_sender_login_maps", service).strip():
                problems.append(f"{service.label}: smtpd_sender_login_maps is empty")
                continue
            if not placements:
                problems.append(f"{service.label}: no reject_sender_login_mismatch (or "
                                "reject_authenticated_/reject_known_sender_login_mismatch) in any restriction list")
                continue
            effective = [p for p in placements
                         if p.preceded_by({"permit_sasl_authenticated", "permit"}) is None]
            if not effective:
                p = placements[0]
                bypass = p.preceded_by({"permit_sasl_authenticated", "permit"})
                problems.append(f"{service.label}: {p.restriction} in {p.list_name} comes after {bypass}, "
                                "so authenticated clients never reach it")
        if problems:
            return finding(self, Status.FAIL, "; ".join(problems), evidence)
        return finding(self, Status.PASS,
                       "every service that accepts AUTH checks the sender against smtpd_sender_login_maps",
                       evidence)
