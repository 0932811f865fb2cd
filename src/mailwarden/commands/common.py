"""Options shared by several commands, and the site-config loader they all use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailwarden.config import SiteConfig, load_config

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout (schema: docs/json.md).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="mailwarden.toml to read (default: $MAILWARDEN_CONFIG or ./mailwarden.toml)."),
]
ServerNameOpt = Annotated[
    list[str] | None,
    typer.Option("--server-name", help="A host name of one of OUR mail servers (repeatable)."),
]
LocalDomainOpt = Annotated[
    list[str] | None,
    typer.Option("--local-domain", help="A mail domain we host (repeatable)."),
]
TrustedNetOpt = Annotated[
    list[str] | None,
    typer.Option("--trusted-net", help="A network we trust, e.g. 192.168.0.0/16 (repeatable)."),
]


def site_config(
    config: Path | None,
    server_names: list[str] | None = None,
    local_domains: list[str] | None = None,
    trusted_nets: list[str] | None = None,
) -> SiteConfig:
    """The file's settings plus the command-line flags."""
    return load_config(config).with_overrides(
        server_names=server_names or (),
        local_domains=local_domains or (),
        trusted_networks=trusted_nets or (),
    )
