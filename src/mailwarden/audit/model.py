"""The audit model: `Finding` (what one rule concluded, with evidence) and `AuditContext` (facts gathered once).

Rules are pure: they read facts from an `AuditContext` (a finished SMTP probe, a parsed Postfix
configuration) and return one `Finding`. They never probe, open files or set the exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailwarden.audit.config.postfix import PostfixConfig
    from mailwarden.audit.probe import ProbeReport
    from mailwarden.config import SiteConfig


class Status(StrEnum):
    """What a rule concluded."""

    PASS = "pass"        # the setting is right (or the server refused, as it should)
    FAIL = "fail"        # the setting is wrong (or the server accepted what it must refuse)
    WARN = "warn"        # probably wrong, or right only under conditions the rule cannot see
    ERROR = "error"      # the check could not finish (timeout, dropped connection): never a pass
    SKIPPED = "skipped"  # the check does not apply, or lacks an input; the reason says which


class Severity(StrEnum):
    """How bad a failing finding is; ordered, so `--fail-on` can compare."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    # StrEnum would compare alphabetically ("high" < "low"); compare by rank instead.
    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        return self.rank >= other.rank if isinstance(other, Severity) else NotImplemented

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        return self.rank > other.rank if isinstance(other, Severity) else NotImplemented

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        return self.rank <= other.rank if isinstance(other, Severity) else NotImplemented

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        return self.rank < other.rank if isinstance(other, Severity) else NotImplemented


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass(frozen=True)
class Remediation:
    """What to change, for each server product: the MDaemon menu path and the Postfix parameter."""

    mdaemon: str
    postfix: str


@dataclass
class Finding:
    """One rule's conclusion. `evidence` is the exact SMTP exchange or the configuration lines read."""

    rule: str
    title: str
    status: Status
    severity: Severity
    summary: str
    evidence: list[str] = field(default_factory=list)
    remediation: Remediation | None = None

    @property
    def is_problem(self) -> bool:
        """True for findings that count towards `--fail-on` (fail and warn)."""
        return self.status in (Status.FAIL, Status.WARN)


@dataclass
class AuditContext:
    """Facts gathered once, before any rule runs; a rule reads only the part it needs."""

    site: SiteConfig | None = None
    probe: ProbeReport | None = None
    postfix: PostfixConfig | None = None


class AuditRule(Protocol):
    """One check. `kind` says which facts it needs: "smtp" (a probe) or "postfix" (a config)."""

    name: str           # stable kebab-case id, shown in --json and accepted by --rule
    title: str          # one line, what a pass means
    kind: str           # "smtp" or "postfix"
    severity: Severity  # the severity of a failure
    remediation: Remediation

    def check(self, ctx: AuditContext) -> Finding: ...


def finding(rule: AuditRule, status: Status, summary: str, evidence: list[str] | None = None,
            *, severity: Severity | None = None) -> Finding:
    """A `Finding` for `rule`, carrying the rule's title, severity and remediation."""
    return Finding(
        rule=rule.name,
        title=rule.title,
        status=status,
        severity=severity or rule.severity,
        summary=summary,
        evidence=list(evidence or []),
        remediation=rule.remediation,
    )


def exceeds_threshold(findings: list[Finding], fail_on: Severity | None) -> bool:
    """True when a problem finding at or above `fail_on` exists (None: never)."""
    if fail_on is None:
        return False
    return any(f.is_problem and f.severity >= fail_on for f in findings)
