"""Postfix: relaying is limited (reject_unauth_destination reached by unauthenticated outsiders)."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._postfix import RELAY_STOPPERS, list_evidence

_RELAY_LISTS = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")


class RelayRestrictionsRule:
    """See `AuditRule`."""

    name = "postfix-relay-restrictions"
    title = "Relay restrictions end in reject_unauth_destination (not an open relay)"
    kind = "postfix"
    severity = Severity.CRITICAL
    remediation = Remediation(
        mdaemon="Security > Security Settings > Relay Control: enable \"Do not allow message relaying\".",
        postfix="smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                "reject_unauth_destination (no bare permit before it, in main.cf and in master.cf -o).",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        evidence: list[str] = []
        open_services: list[str] = []
        for service in cfg.smtpd_services():
            evidence.append(service.evidence())
            evidence += ["  " + line for line in list_evidence(cfg, service, _RELAY_LISTS)]
            protected = False
            for list_name in _RELAY_LISTS:
                for restriction in cfg.restrictions(list_name, service):
                    if restriction.name == "permit":
                        break  # everything after a bare permit is dead for everyone
                    if restriction.name in RELAY_STOPPERS:
                        protected = True
                        break
                if protected:
                    break
            if not protected:
                open_services.append(service.label)
        if open_services:
            return finding(self, Status.FAIL,
                           "no reachable reject_unauth_destination (or reject/defer) in smtpd_relay_restrictions "
                           "or smtpd_recipient_restrictions: open relay on " + ", ".join(open_services)
                           + " (Postfix itself refuses to start when neither list has one)", evidence)
        return finding(self, Status.PASS, "every SMTP service stops unauthorised relaying", evidence)
