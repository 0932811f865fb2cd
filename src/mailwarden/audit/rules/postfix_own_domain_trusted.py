"""Postfix: our own domain is not whitelisted by sender address (check_sender_access ... OK).

Postfix's form of MDaemon's "own domain in Trusted Domains": anyone can write our domain in MAIL
FROM, so an OK for it lets a spambot skip every later restriction in that list; before
reject_unauth_destination it opens the relay to anyone who forges our domain.
"""

from __future__ import annotations

from mailwarden.audit.config.postfix import PostfixConfig, split_list
from mailwarden.audit.config.tables import SENDER_TABLE_RESTRICTIONS, AccessTable, TableEntry
from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding
from mailwarden.audit.rules._postfix import RELAY_STOPPERS, auth_only, find, list_evidence

# access(5): OK, a numeric 2xx-style result, PERMIT and RELAY all accept.
_ACCEPTING_ACTIONS = ("OK", "PERMIT", "RELAY")
_DOMAIN_PARAMETERS = ("mydestination", "virtual_mailbox_domains", "virtual_alias_domains")


def local_domains(cfg: PostfixConfig, extra: list[str]) -> list[str]:
    """Domains this server hosts, from its own parameters (tables skipped) plus the site's."""
    domains: list[str] = []
    for name in _DOMAIN_PARAMETERS:
        for token in split_list(cfg.get(name)):
            token = token.lower().rstrip(".")
            if token and ":" not in token and "/" not in token and token not in domains:
                domains.append(token)
    for domain in extra:
        if domain not in domains:
            domains.append(domain)
    return [d for d in domains if d not in ("localhost", "localhost.localdomain")]


def _accepts(entry: TableEntry) -> bool:
    word = entry.action.split(None, 1)[0].upper() if entry.action else ""
    return word in _ACCEPTING_ACTIONS or word.isdigit()


def _names_domain(entry: TableEntry, domain: str) -> bool:
    if entry.pattern:
        return domain in entry.key.replace("\\", "").lower()
    key = entry.key.lower()
    return key in (domain, "@" + domain, "." + domain) or key.endswith("@" + domain)


class OwnDomainTrustedRule:
    """See `AuditRule`."""

    name = "postfix-own-domain-trusted"
    title = "Our own domain is not trusted by sender address (check_sender_access)"
    kind = "postfix"
    severity = Severity.CRITICAL
    remediation = Remediation(
        mdaemon="Security > Security Settings > Trusted Hosts: remove your own domain from Trusted "
                "Domains / Trusted Hosts.",
        postfix="remove the OK/PERMIT/RELAY entry for your domain from the check_sender_access table "
                "(or REJECT it there for unauthenticated clients and put permit_sasl_authenticated first).",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        domains = local_domains(cfg, list(ctx.site.local_domains) if ctx.site else [])
        evidence: list[str] = [f"local domains: {', '.join(domains) or 'none found'}"]
        trusted: list[str] = []
        unread: list[str] = []
        worst = Severity.HIGH
        any_table = False
        for service in cfg.smtpd_services():
            if auth_only(cfg, service) is not None:
                continue  # only logged-in clients get this far
            for placement in find(cfg, service, SENDER_TABLE_RESTRICTIONS):
                any_table = True
                ref = placement.restriction.argument or ""
                table: AccessTable | None = cfg.tables.get(ref)
                evidence += list_evidence(cfg, service, [placement.list_name])
                if table is None or table.error:
                    unread.append(f"{ref} ({table.error if table else 'not read'})")
                    continue
                for entry in table.entries:
                    hit = next((d for d in domains if _names_domain(entry, d)), None)
                    if hit is None or not _accepts(entry):
                        continue
                    evidence.append(entry.evidence(table.source or ref))
                    trusted.append(f"{service.label}: {entry.key} {entry.action} in {ref} "
                                   f"({placement.list_name})")
                    later = cfg.restrictions(placement.list_name, service)[placement.index + 1:]
                    if placement.list_name in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions") \
                            and any(r.name in RELAY_STOPPERS for r in later):
                        worst = Severity.CRITICAL
        if trusted:
            why = ("anyone who writes your domain in MAIL FROM skips the restrictions after it"
                   + (", including reject_unauth_destination: an open relay for forged senders"
                      if worst is Severity.CRITICAL else ""))
            return finding(self, Status.FAIL, f"{why}: " + "; ".join(trusted), evidence, severity=worst)
        if unread:
            return finding(self, Status.WARN, "sender access table(s) not readable here, check them for your "
                           "domain by hand: " + ", ".join(unread), evidence, severity=Severity.LOW)
        if not any_table:
            return finding(self, Status.PASS, "no check_sender_access table for unauthenticated clients", evidence)
        return finding(self, Status.PASS, "no sender access table accepts your own domain", evidence)
