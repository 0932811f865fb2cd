"""Postfix: a submission service (587 or 465) exists, takes logins, and takes them only under TLS."""

from __future__ import annotations

from mailwarden.audit.config.postfix import PostfixConfig, Service
from mailwarden.audit.model import AuditContext, Finding, Remediation, Severity, Status, finding

SUBMISSION_NAMES = frozenset({"submission", "587", "submissions", "smtps", "465"})


def is_submission(service: Service) -> bool:
    """A submission service by name/port, or by its syslog_name (services written as HOST:PORT)."""
    if service.port_name in SUBMISSION_NAMES:
        return True
    syslog_name = service.overrides.get("syslog_name")
    return syslog_name is not None and "submission" in syslog_name.value


def auth_only_under_tls(cfg: PostfixConfig, service: Service) -> tuple[bool, list[str]]:
    """Whether `service` offers AUTH only once TLS is on, and the settings that say so."""
    settings = [cfg.setting(name, service) for name in
                ("smtpd_tls_auth_only", "smtpd_tls_security_level", "smtpd_tls_wrappermode")]
    auth_only = cfg.is_yes("smtpd_tls_auth_only", service)
    encrypt = cfg.get("smtpd_tls_security_level", service).strip().lower() == "encrypt" or \
        cfg.is_yes("smtpd_enforce_tls", service)
    wrapper = cfg.is_yes("smtpd_tls_wrappermode", service)
    return auth_only or encrypt or wrapper, [s.evidence() for s in settings]


class SubmissionServiceRule:
    """See `AuditRule`."""

    name = "postfix-submission-service"
    title = "A submission service requires AUTH over TLS (master.cf -o smtpd_sasl_auth_enable, smtpd_tls_auth_only)"
    kind = "postfix"
    severity = Severity.MEDIUM
    remediation = Remediation(
        mdaemon="Setup > Default Domain / Servers > Ports: set the MSA (submission, 587) port so that "
                "users submit there rather than on port 25 (menu path from the MDaemon 17 manual).",
        postfix="uncomment the submission entry in master.cf with -o smtpd_sasl_auth_enable=yes "
                "-o smtpd_tls_auth_only=yes (or -o smtpd_tls_security_level=encrypt) "
                "-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject.",
    )

    def check(self, ctx: AuditContext) -> Finding:
        """See `AuditRule`."""
        cfg = ctx.postfix
        if cfg is None:
            return finding(self, Status.SKIPPED, "no Postfix configuration was read")
        if cfg.services is None:
            return finding(self, Status.SKIPPED, "no master.cf was read (give the config directory)")
        submissions = [s for s in cfg.smtpd_services() if is_submission(s)]
        if not submissions:
            return finding(self, Status.FAIL,
                           "no submission service in master.cf (Debian ships it commented out): users "
                           "must authenticate on port 25 or send without AUTH",
                           [f"master.cf: smtpd services: {', '.join(s.name for s in cfg.smtpd_services()) or 'none'}"])
        problems: list[str] = []
        evidence: list[str] = []
        for service in submissions:
            evidence.append(service.evidence())
            sasl = cfg.setting("smtpd_sasl_auth_enable", service)
            evidence.append("  " + sasl.evidence())
            tls_only, tls_evidence = auth_only_under_tls(cfg, service)
            evidence += ["  " + line for line in tls_evidence]
            if not cfg.is_yes("smtpd_sasl_auth_enable", service):
                problems.append(f"{service.label}: smtpd_sasl_auth_enable is not yes")
            if not tls_only:
                problems.append(f"{service.label}: AUTH is not limited to TLS "
                                "(smtpd_tls_auth_only = no, smtpd_tls_security_level != encrypt)")
        if problems:
            return finding(self, Status.FAIL, "; ".join(problems), evidence)
        return finding(self, Status.PASS,
                       "submission service(s) " + ", ".join(s.name for s in submissions)
                       + " take logins, only under TLS", evidence)
