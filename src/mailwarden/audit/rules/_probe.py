"""Helpers shared by the SMTP-probe rules: turning a recorded conversation into a `Finding`."""

from __future__ import annotations

from mailwarden.audit.model import AuditContext, AuditRule, Finding, Status, finding
from mailwarden.audit.probe import CONV_CAPABILITIES, Capabilities, Conversation, Outcome


def conversation(ctx: AuditContext, name: str) -> Conversation | None:
    """The probe's conversation `name`, or None when no probe ran."""
    if ctx.probe is None:
        return None
    return ctx.probe.conversations.get(name)


def capabilities(rule: AuditRule, ctx: AuditContext) -> tuple[Capabilities, Conversation] | Finding:
    """The EHLO/STARTTLS capabilities the probe saw, or the finding that says why there are none.

    TLS on connect passes both TLS rules outright: the whole session is encrypted.
    """
    conv = conversation(ctx, CONV_CAPABILITIES)
    if conv is None or ctx.probe is None:
        return finding(rule, Status.SKIPPED, "no SMTP probe was run")
    caps = ctx.probe.capabilities
    if not caps.banner:
        return finding(rule, Status.ERROR, f"the check did not finish: {conv.error}", conv.transcript)
    if caps.implicit_tls:
        return finding(rule, Status.PASS, "the whole session is TLS (TLS on connect)", conv.transcript)
    return caps, conv


def not_finished(rule: AuditRule, conv: Conversation | None) -> Finding | None:
    """A skipped/error finding when the conversation did not produce a verdict; else None."""
    if conv is None:
        return finding(rule, Status.SKIPPED, "no SMTP probe was run")
    if conv.skipped:
        return finding(rule, Status.SKIPPED, conv.skipped, conv.transcript)
    probe = conv.attempts.get("probe")
    if conv.error or probe is None:
        # A timeout or a dropped connection says nothing about the setting: never a pass.
        return finding(rule, Status.ERROR, f"the check did not finish: {conv.error or 'no verdict'}",
                       conv.transcript)
    return None


def must_be_refused(rule: AuditRule, ctx: AuditContext, name: str, *, what: str,
                    control_must_pass: str | None = None, policy_refusal_passes: bool = False) -> Finding:
    """The common shape: the probe envelope must be refused (and the control, if any, accepted)."""
    conv = conversation(ctx, name)
    early = not_finished(rule, conv)
    if early is not None:
        return early
    assert conv is not None
    probe = conv.attempts["probe"]
    control = conv.attempts.get("control")
    if control is not None and control_must_pass and control.outcome is not Outcome.ACCEPTED:
        if policy_refusal_passes and probe.outcome is Outcome.REFUSED and _is_policy_refusal(control.reply):
            # A 5.7.x "security or policy" refusal of the control too: this port takes no
            # unauthenticated mail at all (a submission port), which is what the check asks for.
            return finding(rule, Status.PASS,
                           f"{what}: refused at {probe.stage}: {probe.reply}; this port refuses all "
                           f"unauthenticated mail (control refused too: {control.reply})", conv.transcript)
        return finding(
            rule, Status.ERROR,
            f"inconclusive: the server also refused the control envelope ({control_must_pass}) "
            f"at {control.stage}: {control.reply}; the refusal cannot be attributed to this check",
            conv.transcript)
    if probe.outcome is Outcome.ACCEPTED:
        return finding(rule, Status.FAIL,
                       f"{what}: the server accepted it ({probe.stage}: {probe.reply})", conv.transcript)
    note = " (temporary 4xx refusal: a patient spambot retries; a 5xx is better)" if probe.temporary else ""
    return finding(rule, Status.PASS,
                   f"{what}: refused at {probe.stage}: {probe.reply}{note}", conv.transcript)


def _is_policy_refusal(reply: str) -> bool:
    """A reply with RFC 3463 enhanced status X.7.X (security or policy), e.g. "554 5.7.1 ..."."""
    words = reply.split()
    return len(words) > 1 and words[1][:1] in ("4", "5") and words[1][1:3] == ".7"
