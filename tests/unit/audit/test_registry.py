"""Every rule module is registered once, with a kebab-case name, a remediation for both servers."""

from __future__ import annotations

import importlib
import pkgutil
import re

import mailwarden.audit.rules as rules_package
from mailwarden.audit.model import Severity
from mailwarden.audit.rules import RULES
from mailwarden.commands.audit import parse_target


def test_every_rule_module_is_registered():
    registered = {type(rule).__module__ for rule in RULES}
    modules = {f"{rules_package.__name__}.{m.name}" for m in pkgutil.iter_modules(rules_package.__path__)
               if not m.name.startswith("_")}
    assert modules == registered
    for module in modules:
        assert importlib.import_module(module).__doc__, module


def test_rule_contract():
    for rule in RULES:
        assert re.fullmatch(r"(smtp|postfix)-[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name
        assert rule.kind in ("smtp", "postfix")
        assert rule.name.startswith(rule.kind + "-")
        assert isinstance(rule.severity, Severity)
        assert rule.remediation.mdaemon and rule.remediation.postfix
        assert rule.title


def test_parse_target():
    assert parse_target("mx.example.com") == ("mx.example.com", 25)
    assert parse_target("mx.example.com:587") == ("mx.example.com", 587)
    assert parse_target("[2001:db8::1]:465") == ("2001:db8::1", 465)
    assert parse_target("2001:db8::1") == ("2001:db8::1", 25)


def test_severity_orders_by_rank_not_alphabet():
    assert Severity.HIGH > Severity.LOW > Severity.INFO
    assert Severity.CRITICAL >= Severity.HIGH and Severity.MEDIUM <= Severity.HIGH
    assert sorted([Severity.LOW, Severity.CRITICAL, Severity.INFO]) == [Severity.INFO, Severity.LOW, Severity.CRITICAL]
