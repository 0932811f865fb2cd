"""Helpers shared by the static Postfix rules: where a restriction sits, and what comes before it."""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.audit.config.postfix import PostfixConfig, Restriction, Service

# reject_sender_login_mismatch is itself a restriction class that Postfix defines as
# "reject_authenticated_sender_login_mismatch reject_unauthenticated_sender_login_mismatch".
LOGIN_CHECKS_AUTHENTICATED = frozenset({
    "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
})
LOGIN_CHECKS_UNAUTHENTICATED = frozenset({
    "reject_sender_login_mismatch",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
})
LOGIN_CHECKS = LOGIN_CHECKS_AUTHENTICATED | LOGIN_CHECKS_UNAUTHENTICATED

# Lists evaluated once MAIL FROM is known. With smtpd_delay_reject = yes (the default) the client
# and HELO lists are also evaluated at RCPT time, so a sender check there works too.
SENDER_AWARE_LISTS = (
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
)
EARLY_LISTS = ("smtpd_client_restrictions", "smtpd_helo_restrictions")

RELAY_STOPPERS = frozenset({"reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                            "defer_if_permit", "check_relay_domains"})


@dataclass
class Placement:
    """Where a restriction sits: list name, position, the restriction, and what precedes it."""

    list_name: str
    index: int
    restriction: Restriction
    before: list[Restriction]

    def preceded_by(self, names: set[str] | frozenset[str]) -> Restriction | None:
        """The first restriction before this one whose name is in `names`, if any."""
        return next((r for r in self.before if r.name in names), None)


def checked_lists(cfg: PostfixConfig, service: Service) -> tuple[str, ...]:
    """The restriction lists in which a sender check takes effect for `service`."""
    if cfg.is_yes("smtpd_delay_reject", service):
        return EARLY_LISTS + SENDER_AWARE_LISTS
    return SENDER_AWARE_LISTS


def find(cfg: PostfixConfig, service: Service, names: frozenset[str] | set[str],
         lists: tuple[str, ...] | None = None) -> list[Placement]:
    """Every occurrence of a restriction named in `names` in the lists of `service`."""
    found: list[Placement] = []
    for list_name in lists or checked_lists(cfg, service):
        restrictions = cfg.restrictions(list_name, service)
        for index, restriction in enumerate(restrictions):
            if restriction.name in names:
                found.append(Placement(list_name, index, restriction, restrictions[:index]))
    return found


def list_evidence(cfg: PostfixConfig, service: Service, list_names: tuple[str, ...] | list[str]) -> list[str]:
    """One evidence line per list: where it was set, its raw value, and its expansion if different."""
    lines = []
    for name in list_names:
        setting = cfg.setting(name, service)
        line = setting.evidence()
        expanded = cfg.get(name, service)
        if expanded != setting.value:
            line += f"   (expands to: {expanded})"
        lines.append(line)
    return lines


def auth_only(cfg: PostfixConfig, service: Service) -> Placement | None:
    """The `reject` that refuses every unauthenticated client, if the service has one.

    True shape: in the relay or recipient list, a plain `reject` (or `defer`) preceded only by
    permit_sasl_authenticated and restrictions that cannot permit (the submission idiom
    ``permit_sasl_authenticated, reject``).
    """
    for list_name in ("smtpd_client_restrictions", "smtpd_sender_restrictions",
                      "smtpd_relay_restrictions", "smtpd_recipient_restrictions"):
        restrictions = cfg.restrictions(list_name, service)
        for index, restriction in enumerate(restrictions):
            if restriction.name in ("reject", "defer"):
                before = restrictions[:index]
                if all(r.name == "permit_sasl_authenticated" or not _may_permit(r) for r in before):
                    return Placement(list_name, index, restriction, before)
                break
            if _may_permit(restriction) and restriction.name != "permit_sasl_authenticated":
                break
    return None


def _may_permit(r: Restriction) -> bool:
    """Restrictions that can end a list with PERMIT (tables and policy services may, too)."""
    return r.name.startswith("permit") or r.name.startswith("check_")

