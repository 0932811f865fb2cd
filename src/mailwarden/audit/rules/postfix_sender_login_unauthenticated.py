"""Postfix: an unauthenticated client may not use a local account's address as the sender.

Postfix ignores every *_sender_login_mismatch restriction in an smtpd whose SASL is off, with the
warning "restriction `reject_unauthenticated_sender_login_mismatch' ignored: no SASL support"; so
on a port-25 service without smtpd_sasl_auth_enable = yes the check is there on paper only.
"""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._postfix import (
    LOGIN_CHECKS_UNAUTHENTICATED,
    auth_only,
    checked_lists,
    find,
    list_evidence,
)


class SenderLoginUnauthenticatedRule:
    """See `AuditRule`."""

    name = "postfix-sender-login-unauthenticated"
    title = "Mail from a local account's address needs authentication"
    kind = "postfix"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > SMTP Authentication: enable \"Authentication is always "
                "required when mail is from local accounts\" and clear \"...unless message is to a "
                "local account\".",
        postfix="smtpd_sender_login_maps listing every local address, smtpd_sasl_auth_enable = yes "
                "(with smtpd_tls_auth_only = yes if port 25 should not offer AUTH in clear) and "
                "reject_unauthenticated_sender_login_mismatch (or reject_sender_login_mismatch) in "
                "smtpd_sender_restrictions; or permit_sasl_authenticated, reject on services meant for "
                "logins only.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        problems: list[str] = []
        evidence: list[str] = []
        for service in cfg.smtpd_services():
            evidence.append(service.evidence())
            refuse_all = auth_only(cfg, service)
            if refuse_all is not None:
                evidence += ["  " + line for line in list_evidence(cfg, service, [refuse_all.list_name])]
                continue  # unauthenticated clients are refused outright
            lists = checked_lists(cfg, service)
            placements = find(cfg, service, LOGIN_CHECKS_UNAUTHENTICATED, lists)
            evidence.append("  " + cfg.setting("smtpd_sender_login_maps", service).evidence())
            evidence += ["  " + line for line in list_evidence(
                cfg, service, sorted({p.list_name for p in placements}) or ["smtpd_sender_restrictions"])]
            if not placements:
                problems.append(f"{service.label}: unauthenticated clients may use any local sender "
                                "address (no reject_unauthenticated_sender_login_mismatch or "
                                "reject_sender_login_mismatch)")
                continue
            if not cfg.get("smtpd_sender_login_maps", service).strip():
                problems.append(f"{service.label}: {placements[0].restriction} has no "
                                "smtpd_sender_login_maps to look owners up in")
                continue
            if not cfg.is_yes("smtpd_sasl_auth_enable", service):
                evidence.append("  " + cfg.setting("smtpd_sasl_auth_enable", service).evidence())
                problems.append(f"{service.label}: {placements[0].restriction} is ignored because SASL is "
                                "off for this service (Postfix: \"ignored: no SASL support\")")
                continue
            if all(p.preceded_by({"permit"}) is not None for p in placements):
                problems.append(f"{service.label}: {placements[0].restriction} comes after a bare permit")
        if problems:
            return finding(self, Status.FAIL, "; ".join(problems), evidence)
        return finding(self, Status.PASS,
                       "every SMTP service refuses a local sender address from an unauthenticated client "
                       "(exemptions for mynetworks: see postfix-permit-mynetworks-order)", evidence)
