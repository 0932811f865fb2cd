"""The ``mailwarden`` command line: wiring only; every command lives in ``mailwarden.commands``.

Exceptions become exit codes in exactly one place, ``_ErrorHandlingGroup.invoke``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

# pyarrow imports numpy when it is installed, and numpy's OpenBLAS starts a spinning worker
# per core; mailwarden does no linear algebra, and on a 2-core machine those threads took CPU
# from the log index (0.5-2 s of 14 s on the 1 GiB bench log).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from mailwarden import __version__
from mailwarden.errors import ExitCode, MailwardenError
from mailwarden.output import err_console

_state = {"debug": False}


class _ErrorHandlingGroup(TyperGroup):
    """Turns MailwardenError into a one-line message and its exit code (traceback with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MailwardenError as exc:
            if _state["debug"]:
                err_console.print_exception()
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(int(exc.exit_code)) from None
        except BrokenPipeError:
            # `mailwarden ... | head`: the reader left. Point stdout at /dev/null so the exit
            # flush cannot fail again, and exit like a process killed by SIGPIPE would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(int(ExitCode.BROKEN_PIPE)) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


app = typer.Typer(
    cls=_ErrorHandlingGroup,
    name="mailwarden",
    help="Trace spam to the account or machine that sent it; read SMTP logs; hunt spambots; audit and prune mail servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"mailwarden {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    # Imported here so that `mailwarden --help` lists every command and a broken
    # command module fails loudly at start-up rather than at first use.
    import importlib

    for name in ("trace", "logs", "hunt", "audit", "prune"):  # hunt also registers `report`
        try:
            module = importlib.import_module(f"mailwarden.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mailwarden.commands.{name}":
                continue  # command not built yet
            raise
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="mailwarden")
    except SystemExit as exc:  # click's standalone mode always exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
