"""`mailwarden logs index` and `mailwarden logs sql`: the DuckDB log index."""

from __future__ import annotations

import typer


def register(logs_app: typer.Typer) -> None:
    """Add the index commands to the `logs` group (placeholder until the index lands)."""
