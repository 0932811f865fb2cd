"""Postfix: mynetworks (clients that relay without AUTH) holds only our own hosts."""

from __future__ import annotations

from mailwarden.audit.config.networks import MynetworksScope, mynetworks_scope
from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding


class MynetworksScopeRule:
    """See `AuditRule`."""

    name = "postfix-mynetworks-scope"
    title = "mynetworks is no wider than our own hosts (no public ranges, no whole /8s)"
    kind = "postfix"
    severity = Severity.HIGH
    remediation = Remediation(
        mdaemon="Security > Security Settings > Trusted Hosts: list only your own servers' addresses; "
                "IP Shield (Security > Security Settings > IP Shield) for each domain's address ranges.",
        postfix="mynetworks = 127.0.0.0/8 [::1]/128 plus the exact addresses of hosts that must relay "
                "without AUTH (or mynetworks_style = host); let users authenticate instead.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        trusted = list(ctx.site.trusted_networks) if ctx.site else []
        scopes: list[tuple[str, MynetworksScope]] = [("main.cf", mynetworks_scope(cfg, None, trusted))]
        for service in cfg.smtpd_services():
            if "mynetworks" in service.overrides or "mynetworks_style" in service.overrides:
                scopes.append((service.label, mynetworks_scope(cfg, service, trusted)))
        evidence: list[str] = []
        wide: list[str] = []
        doubtful: list[str] = []
        for label, scope in scopes:
            evidence.append((scope.style or scope.setting).evidence()
                            + (f"   (expands to: {cfg.get('mynetworks')})"
                               if scope.style is None and cfg.get("mynetworks") != scope.setting.value
                               and label == "main.cf" else ""))
            for entry in scope.entries:
                evidence.append(f"  {entry.text}: {entry.kind}" + (f" ({entry.note})" if entry.note else ""))
            wide += [f"{entry.text} ({label})" for entry in scope.too_wide]
            doubtful += [f"{entry.text} ({label})" for entry in scope.doubtful]
        if wide:
            return finding(self, Status.FAIL,
                           "mynetworks lets outside hosts send and relay without authentication: "
                           + ", ".join(wide), evidence)
        if doubtful:
            return finding(self, Status.WARN,
                           "mynetworks may be wider than your own hosts: " + ", ".join(doubtful),
                           evidence, severity=Severity.MEDIUM)
        return finding(self, Status.PASS, "mynetworks holds only loopback, private or site networks", evidence)
