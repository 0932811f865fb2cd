"""`mailwarden logs ...`: find a message's SMTP session and say why it was accepted; index; sql."""

from __future__ import annotations

import typer

logs_app = typer.Typer(
    help="Read SMTP logs (MDaemon, Postfix, Exim): find a message's session, explain why it was accepted, index logs in DuckDB.",
    no_args_is_help=True,
)

# `logs find` is defined in this module (owned by the log-reading work);
# `logs index` and `logs sql` live in commands/logs_index.py (owned by the index work).


def register(app: typer.Typer) -> None:
    from mailwarden.commands import logs_index

    logs_index.register(logs_app)
    app.add_typer(logs_app, name="logs")
