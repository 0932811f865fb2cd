"""Site configuration: which domains, host names and networks are *ours*.

Read from ``mailwarden.toml`` (``--config FILE``, ``$MAILWARDEN_CONFIG``, or
``./mailwarden.toml``) and overridden by command-line flags. Sections other
than ``[site]`` (``[hunt]``, ``[prune]`` ...) are kept raw in ``sections`` for
the module that owns them.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailwarden.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONFIG_ENV = "MAILWARDEN_CONFIG"
DEFAULT_CONFIG_NAME = "mailwarden.toml"
SITE_KEYS = frozenset({"local_domains", "server_names", "trusted_networks", "smtp_logs"})
KNOWN_SECTIONS = frozenset({"site", "hunt", "prune"})  # each command owns its table


@dataclass
class SiteConfig:
    """Our side of the trust boundary. Empty lists mean "not configured": callers infer and say so."""

    local_domains: list[str] = field(default_factory=list)
    server_names: list[str] = field(default_factory=list)
    trusted_networks: list[IPNetwork] = field(default_factory=list)
    smtp_logs: list[str] = field(default_factory=list)  # our SMTP-IN log(s), named in next commands
    source: str | None = None  # the file the settings came from, if any
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """True when anything names our servers (otherwise trace infers them)."""
        return bool(self.server_names or self.trusted_networks or self.local_domains)

    def is_local_domain(self, domain: str | None) -> bool:
        if not domain:
            return False
        domain = domain.lower().rstrip(".")
        return any(domain == d or domain.endswith("." + d) for d in self.local_domains)

    def is_server_name(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower().rstrip(".")
        return host in self.server_names

    def is_trusted_ip(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        if ip is None:
            return False
        try:
            addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr.version == net.version and addr in net for net in self.trusted_networks)

    def with_overrides(
        self,
        *,
        server_names: Iterable[str] = (),
        local_domains: Iterable[str] = (),
        trusted_networks: Iterable[str] = (),
        smtp_logs: Iterable[str] = (),
    ) -> SiteConfig:
        """A copy with command-line values added to the file's values."""
        return SiteConfig(
            local_domains=_unique(self.local_domains + [_norm_name(d) for d in local_domains]),
            server_names=_unique(self.server_names + [_norm_name(h) for h in server_names]),
            trusted_networks=_unique(
                self.trusted_networks + [parse_network(n) for n in trusted_networks]
            ),
            smtp_logs=_unique(self.smtp_logs + list(smtp_logs)),
            source=self.source,
            sections=self.sections,
        )


def parse_network(text: str) -> IPNetwork:
    """``192.168.0.0/16``, ``10.1.2.3`` or ``2001:db8::/32`` -> network; clear error otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise ConfigError(f"not an IP network: {text!r} ({exc})") from None


def _norm_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _unique(items: list) -> list:
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def load_config(path: str | os.PathLike[str] | None = None) -> SiteConfig:
    """Load the site configuration; no file at all gives an empty (unconfigured) SiteConfig."""
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    candidate = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file not found: {candidate}")
        return SiteConfig()
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {candidate}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{candidate}: invalid TOML: {exc}") from None
    site = data.get("site", {})
    if not isinstance(site, dict):
        raise ConfigError(f"{candidate}: [site] must be a table")
    # A typo must not silently leave the site unconfigured.
    unknown_tables = sorted(set(data) - KNOWN_SECTIONS)
    if unknown_tables:
        raise ConfigError(f"{candidate}: unknown table(s) {', '.join(unknown_tables)} "
                          f"(known: {', '.join(sorted(KNOWN_SECTIONS))})")
    unknown_keys = sorted(set(site) - SITE_KEYS)
    if unknown_keys:
        raise ConfigError(f"{candidate}: unknown setting(s) in [site]: {', '.join(unknown_keys)} "
                          f"(known: {', '.join(sorted(SITE_KEYS))})")

    def str_list(key: str) -> list[str]:
        value = site.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{candidate}: site.{key} must be a list of strings")
        return value

    cfg = SiteConfig(source=str(candidate))
    cfg = cfg.with_overrides(
        server_names=str_list("server_names"),
        local_domains=str_list("local_domains"),
        trusted_networks=str_list("trusted_networks"),
        smtp_logs=str_list("smtp_logs"),
    )
    cfg.sections = {k: v for k, v in data.items() if k != "site" and isinstance(v, dict)}
    return cfg
