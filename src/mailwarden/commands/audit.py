"""`mailwarden audit smtp|config`: check that a server stops spambots, live or from its configuration."""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mailwarden.audit.model import AuditContext, Finding, Severity, Status, exceeds_threshold
from mailwarden.commands.common import (
    ConfigOpt,
    JsonOpt,
    LocalDomainOpt,
    TrustedNetOpt,
    site_config,
)
from mailwarden.errors import ConfigError, ExitCode, InputError
from mailwarden.output import JSON_SCHEMA_VERSION, console, emit_json, err_console, progress

audit_app = typer.Typer(
    help="Check that the server stops spambots: a live SMTP probe (any server) or static rules (Postfix config).",
    no_args_is_help=True,
)

USER_ENV = "MAILWARDEN_SMTP_USER"
PASSWORD_ENV = "MAILWARDEN_SMTP_PASSWORD"
FAIL_ON_CHOICES = [s.value for s in Severity] + ["never"]

FailOnOpt = Annotated[
    str,
    typer.Option("--fail-on", help="Exit with status 3 when a failing (or warning) finding has this severity "
                 "or worse: info, low, medium, high, critical, never.", metavar="SEVERITY"),
]
RuleOpt = Annotated[
    list[str] | None,
    typer.Option("--rule", help="Run only this rule (repeatable); names: docs/audit.md."),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show the evidence of passing findings too."),
]

_STATUS_STYLE = {
    Status.PASS: "green", Status.FAIL: "bold red", Status.WARN: "yellow",
    Status.ERROR: "magenta", Status.SKIPPED: "dim",
}


def parse_target(target: str, default_port: int = 25) -> tuple[str, int]:
    """"host", "host:587", "[2001:db8::1]:25", "2001:db8::1" -> (host, port)."""
    target = target.strip()
    if not target:
        raise ConfigError("empty target: give HOST or HOST:PORT")
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, ""  # a bare name or a bare IPv6 address
    if not host:
        raise ConfigError(f"no host in {target!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"not a port number: {port_text!r}")
        return host, int(port_text)
    return host, default_port


def read_credentials(path: Path | None) -> tuple[str | None, str | None]:
    """(login, password) from a `user = ...` / `password = ...` file, else from the environment."""
    if path is None:
        return os.environ.get(USER_ENV) or None, os.environ.get(PASSWORD_ENV) or None
    try:
        mode = path.stat().st_mode
        with path.open(encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
    except OSError as exc:
        raise InputError(f"cannot read credentials file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"credentials file {path} is not UTF-8 text") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        err_console.print(f"[yellow]warning:[/] {escape(str(path))} is readable by other users (chmod 600 it)")
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InputError(f"{path}:{number}: expected 'user = ...' or 'password = ...'")
        values[key.strip().lower()] = value.strip()
    login = values.get("user") or values.get("login") or values.get("username")
    password = values.get("password")
    if not login or not password:
        raise InputError(f"{path}: needs both 'user = ...' and 'password = ...'")
    return login, password


def _address(user: str | None, domain: str | None) -> str | None:
    if not user:
        return None
    if "@" in user:
        return user
    return f"{user}@{domain}" if domain else None


def _fail_on(value: str) -> Severity | None:
    value = value.strip().lower()
    if value == "never":
        return None
    try:
        return Severity(value)
    except ValueError:
        raise ConfigError(f"--fail-on must be one of {', '.join(FAIL_ON_CHOICES)} (got {value!r})") from None


def _selected(kind: str, names: list[str] | None):
    from mailwarden.audit.rules import RULES, rules_for  # (with the probe: loaded by audit only)

    rules = rules_for(kind)
    if not names:
        return rules
    for name in names:
        if name not in RULES:
            raise ConfigError(f"unknown rule {name!r} (known: {', '.join(r.name for r in rules)})")
        if RULES.get(name).kind != kind:
            raise ConfigError(f"rule {name!r} belongs to `audit {'smtp' if RULES.get(name).kind == 'smtp' else 'config'}`")
    return [rule for rule in rules if rule.name in names]


def _finish(findings: list[Finding], fail_on: Severity | None, json_out: bool, header: str,
            extra: dict, verbose: bool) -> None:
    """Render, then pick the exit status in one place: 3 for findings, 5 for checks that broke off."""
    counts = Counter(f.status.value for f in findings)
    if exceeds_threshold(findings, fail_on):
        code = ExitCode.FINDINGS
    elif counts.get(Status.ERROR.value) and extra.get("command") == "audit smtp":
        code = ExitCode.SERVER
    else:
        code = ExitCode.OK
    if json_out:
        emit_json({
            "schema_version": JSON_SCHEMA_VERSION,
            **extra,
            "fail_on": fail_on.value if fail_on else "never",
            "exit_code": int(code),
            "summary": {s.value: counts.get(s.value, 0) for s in Status},
            "findings": findings,
        })
    else:
        _render(findings, header, counts, verbose)
        if code == ExitCode.FINDINGS:
            err_console.print(f"[red]findings at or above --fail-on {fail_on.value if fail_on else ''}: exit status 3[/]")
        elif code == ExitCode.SERVER:
            err_console.print("[magenta]some checks could not finish (see the errors above): exit status 5[/]")
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _render(findings: list[Finding], header: str, counts: Counter, verbose: bool) -> None:
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in Status if counts.get(s.value))
    console.print(Text(f"{header}: {summary}", style="bold"))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("status")
    table.add_column("severity")
    table.add_column("rule", no_wrap=True)
    table.add_column("finding", overflow="fold", ratio=1)
    for f in findings:
        table.add_row(Text(f.status.value, style=_STATUS_STYLE[f.status]), f.severity.value,
                      f.rule, Text(f.summary))
    console.print(table)
    for f in findings:
        if not (verbose or f.status in (Status.FAIL, Status.WARN, Status.ERROR)):
            continue
        console.print()
        console.print(Text(f"{f.status.value.upper()} {f.rule}", style=_STATUS_STYLE[f.status]),
                      Text(f"({f.severity.value}) {f.title}"))
        if f.evidence:
            console.print(Text("  evidence:", style="bold"))
            for line in f.evidence:
                console.print(Text("    " + line), soft_wrap=True)
        if f.remediation and f.status in (Status.FAIL, Status.WARN):
            console.print(Text("  fix (MDaemon): ", style="bold") + Text(f.remediation.mdaemon), soft_wrap=True)
            console.print(Text("  fix (Postfix): ", style="bold") + Text(f.remediation.postfix), soft_wrap=True)


@audit_app.command("smtp")
def audit_smtp(
    target: Annotated[str, typer.Argument(help="HOST or HOST:PORT (default port 25; 465 means TLS on connect).")],
    local_domains: LocalDomainOpt = None,
    local_user: Annotated[str | None, typer.Option(
        "--local-user", help="Account A: the local address the probe claims (default: the login, else postmaster).")] = None,
    other_local_user: Annotated[str | None, typer.Option(
        "--other-local-user", help="Account B: another local address (default: postmaster, or abuse if A is postmaster).")] = None,
    credentials: Annotated[Path | None, typer.Option(
        "--credentials", help=f"File with 'user = ...' and 'password = ...' lines (else ${USER_ENV} / ${PASSWORD_ENV}).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each reply.")] = 10.0,
    helo: Annotated[str | None, typer.Option("--helo", help="EHLO name (default: this machine's FQDN).")] = None,
    source_address: Annotated[str | None, typer.Option(
        "--source-address", help="Local IP to connect from (multi-homed hosts, tests).")] = None,
    implicit_tls: Annotated[bool, typer.Option("--implicit-tls", help="TLS on connect (implied for port 465).")] = False,
    allow_cleartext_auth: Annotated[bool, typer.Option(
        "--allow-cleartext-auth", help="Send the password without TLS when the server offers no STARTTLS "
        "(always allowed on loopback).")] = False,
    fail_on: FailOnOpt = "low",
    rules: RuleOpt = None,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Probe a live SMTP server the way a spambot would; never delivers a message."""
    threshold = _fail_on(fail_on)
    selected = _selected("smtp", rules)
    host, port = parse_target(target)
    if timeout <= 0 or timeout > 600:
        raise ConfigError("--timeout must be between 0 and 600 seconds")
    if source_address:
        try:
            ipaddress.ip_address(source_address)
        except ValueError:
            raise ConfigError(f"--source-address is not an IP address: {source_address!r}") from None
    site = site_config(config, local_domains=local_domains)
    domain = site.local_domains[0] if site.local_domains else None
    login, password = read_credentials(credentials)
    if local_user is None and login:
        local_user = login
    a = _address(local_user or "postmaster", domain)
    b = _address(other_local_user or ("abuse" if (a or "").startswith("postmaster@") else "postmaster"), domain)
    if a and b and a.lower() == b.lower():
        raise ConfigError(f"--local-user and --other-local-user are the same address ({a})")
    from mailwarden.audit.probe import ProbeSettings, run_probe

    settings = ProbeSettings(
        host=host, port=port, local_user=a, other_local_user=b, login=login, password=password,
        timeout=timeout, implicit_tls=implicit_tls or port == 465,
        allow_cleartext_auth=allow_cleartext_auth, source_address=source_address,
    )
    if helo:
        settings.helo = helo
    with progress(transient=True) as bar:
        task = bar.add_task(f"probing {host}:{port}", total=5)

        def on_step(name: str) -> None:
            bar.update(task, description=f"probing {host}:{port}: {name}")
            bar.advance(task)

        report = run_probe(settings, on_step=on_step)
    ctx = AuditContext(site=site, probe=report)
    findings = [rule.check(ctx) for rule in selected]
    _finish(findings, threshold, json_out,
            f"audit smtp {host}:{port} ({report.seconds:.2f} s)",
            {"command": "audit smtp", "target": f"{host}:{port}", "probe": report}, verbose)


@audit_app.command("config")
def audit_config(
    path: Annotated[str, typer.Argument(
        help="Postfix config directory (main.cf + master.cf), one of those files, saved `postconf -n` "
             "output, or - for stdin.")],
    trusted_nets: TrustedNetOpt = None,
    local_domains: LocalDomainOpt = None,
    fail_on: FailOnOpt = "low",
    rules: RuleOpt = None,
    verbose: VerboseOpt = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check a Postfix configuration against the anti-spambot rules (MDaemon: use `audit smtp`)."""
    from mailwarden.audit.config.postfix import load_postfix, load_postfix_text

    threshold = _fail_on(fail_on)
    selected = _selected("postfix", rules)
    site = site_config(config, local_domains=local_domains, trusted_nets=trusted_nets)
    if path == "-":
        cfg = load_postfix_text(sys.stdin.read(16 * 1024 * 1024), "stdin")
    else:
        cfg = load_postfix(path)
    for defect in cfg.defects:
        err_console.print(f"[yellow]warning:[/] {escape(defect)}")
    ctx = AuditContext(site=site, postfix=cfg)
    findings = [rule.check(ctx) for rule in selected]
    _finish(findings, threshold, json_out, f"audit config {cfg.source}",
            {"command": "audit config", "target": cfg.source,
             "config": {"files": cfg.files, "defects": cfg.defects,
                        "services": [s.name for s in cfg.smtpd_services()]}}, verbose)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
