"""The audit rules, registered explicitly: adding a rule is one new module plus one line here.

Order matters only for display: probe rules first (what a spambot sees), then static rules.
"""

from __future__ import annotations

from mailwarden.audit.model import AuditRule
from mailwarden.audit.rules.auth_from_header import AuthFromHeaderRule
from mailwarden.audit.rules.auth_requires_tls import AuthRequiresTlsRule
from mailwarden.audit.rules.auth_sender_mismatch import AuthSenderMismatchRule
from mailwarden.audit.rules.open_relay import OpenRelayRule
from mailwarden.audit.rules.plaintext_auth_unencrypted import PlaintextAuthUnencryptedRule
from mailwarden.audit.rules.postfix_mynetworks_scope import MynetworksScopeRule
from mailwarden.audit.rules.postfix_own_domain_trusted import OwnDomainTrustedRule
from mailwarden.audit.rules.postfix_permit_mynetworks_order import PermitMynetworksOrderRule
from mailwarden.audit.rules.postfix_relay_restrictions import RelayRestrictionsRule
from mailwarden.audit.rules.postfix_sasl_auth_tls_only import SaslAuthTlsOnlyRule
from mailwarden.audit.rules.postfix_sender_login_authenticated import SenderLoginAuthenticatedRule
from mailwarden.audit.rules.postfix_sender_login_unauthenticated import (
    SenderLoginUnauthenticatedRule,
)
from mailwarden.audit.rules.postfix_submission_service import SubmissionServiceRule
from mailwarden.audit.rules.unauth_local_sender_local import UnauthLocalSenderLocalRule
from mailwarden.audit.rules.unauth_local_sender_outside import UnauthLocalSenderOutsideRule
from mailwarden.registry import Registry

RULES: Registry[AuditRule] = Registry("audit rule", [
    # live SMTP probe
    UnauthLocalSenderOutsideRule(),
    UnauthLocalSenderLocalRule(),
    AuthSenderMismatchRule(),
    AuthFromHeaderRule(),
    OpenRelayRule(),
    AuthRequiresTlsRule(),
    PlaintextAuthUnencryptedRule(),
    # static Postfix configuration
    SenderLoginAuthenticatedRule(),
    SenderLoginUnauthenticatedRule(),
    MynetworksScopeRule(),
    PermitMynetworksOrderRule(),
    OwnDomainTrustedRule(),
    RelayRestrictionsRule(),
    SubmissionServiceRule(),
    SaslAuthTlsOnlyRule(),
])


def rules_for(kind: str) -> list[AuditRule]:
    """The registered rules that read `kind` facts ("smtp" or "postfix")."""
    return [rule for rule in RULES if rule.kind == kind]
