"""What Postfix's ``mynetworks`` covers: each entry classified as loopback, private, public or unknown."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mailwarden.audit.config.postfix import PostfixConfig, Service, Setting, split_list
from mailwarden.config import IPNetwork

# Entries that are (part of) the machine itself.
_LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
             ipaddress.ip_network("::ffff:127.0.0.0/104")]
# RFC 6598 shared address space is "private" to an ISP, not to us; Python counts it as neither.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


@dataclass
class NetworkEntry:
    """One mynetworks entry and what it covers."""

    text: str
    network: IPNetwork | None
    kind: str      # loopback, private, private-wide, public, everything, table, negated, invalid
    note: str = ""


@dataclass
class MynetworksScope:
    """The effective mynetworks of one service, and why it is (not) limited to our own hosts."""

    setting: Setting
    style: Setting | None                    # set when mynetworks comes from mynetworks_style
    entries: list[NetworkEntry] = field(default_factory=list)

    @property
    def loopback_only(self) -> bool:
        return self.style is None and all(e.kind in ("loopback", "negated") for e in self.entries)

    @property
    def too_wide(self) -> list[NetworkEntry]:
        return [e for e in self.entries if e.kind in ("public", "everything", "outside-site")]

    @property
    def doubtful(self) -> list[NetworkEntry]:
        return [e for e in self.entries if e.kind in ("private-wide", "table", "invalid")]


def _parse_entry(text: str) -> IPNetwork | None:
    # Postfix writes IPv6 as [addr]/len; a bare address is a /32 or /128.
    cleaned = text.replace("[", "").replace("]", "")
    try:
        return ipaddress.ip_network(cleaned, strict=False)
    except ValueError:
        return None


def classify(text: str, trusted: list[IPNetwork]) -> NetworkEntry:
    """Classify one mynetworks entry; `trusted` are the site's own networks (may be empty)."""
    if text.startswith("!"):
        return NetworkEntry(text, None, "negated", "an exclusion")
    net = _parse_entry(text)
    if net is None:
        kind_prefix, sep, _ = text.partition(":")
        if text.startswith("/") or (sep and kind_prefix.isalpha()):
            return NetworkEntry(text, None, "table", "a file or lookup table: its contents were not read")
        return NetworkEntry(text, None, "invalid", "not an address or network")
    if net.prefixlen == 0 or net.prefixlen < (8 if net.version == 4 else 16):
        return NetworkEntry(text, net, "everything", f"/{net.prefixlen}: a large part of the Internet")
    if any(net.version == lo.version and net.subnet_of(lo) for lo in _LOOPBACK):  # type: ignore[arg-type]
        return NetworkEntry(text, net, "loopback", "this machine")
    if trusted:
        inside = any(net.version == t.version and net.subnet_of(t) for t in trusted)  # type: ignore[arg-type]
        if not inside:
            return NetworkEntry(text, net, "outside-site",
                                "not inside the site's trusted networks (--trusted-net / mailwarden.toml)")
    private = net.is_private and not (net.version == 4 and net.subnet_of(_SHARED))  # type: ignore[arg-type]
    if not private:
        return NetworkEntry(text, net, "public", "public addresses: anyone there can relay without AUTH")
    wide = (net.version == 4 and net.prefixlen <= 8) or (net.version == 6 and net.prefixlen < 48)
    if wide and not trusted:
        return NetworkEntry(text, net, "private-wide",
                            f"a whole /{net.prefixlen}: every machine in it can send without AUTH")
    return NetworkEntry(text, net, "private", "private addresses")


def mynetworks_scope(cfg: PostfixConfig, service: Service | None, trusted: list[IPNetwork]) -> MynetworksScope:
    """The effective mynetworks for `service` (explicit, or derived from mynetworks_style)."""
    setting = cfg.setting("mynetworks", service)
    if setting.source == "default":
        style = cfg.setting("mynetworks_style", service)
        value = cfg.get("mynetworks_style", service).strip().lower()
        scope = MynetworksScope(setting, style)
        if value == "host":
            scope.entries.append(NetworkEntry("mynetworks_style = host", None, "loopback",
                                              "this machine's own addresses only"))
        elif value == "class":
            scope.entries.append(NetworkEntry(
                "mynetworks_style = class", None, "public",
                "the whole class A/B/C network of every interface: with a public address that is a "
                "whole /8, /16 or /24 of other people's machines"))
        else:
            scope.entries.append(NetworkEntry(
                f"mynetworks_style = {value or 'subnet'}", None, "table",
                "every subnet this machine's interfaces are on (cannot be seen from the file: "
                "run `postconf mynetworks` on the server)"))
        return scope
    scope = MynetworksScope(setting, None)
    for token in split_list(cfg.get("mynetworks", service)):
        scope.entries.append(classify(token, trusted))
    return scope
