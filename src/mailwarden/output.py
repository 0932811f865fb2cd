"""Rendering only: Rich consoles, ``--json`` serialisation, progress bars, HTML escaping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import html
import ipaddress
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# stdout carries results (tables or JSON); stderr carries errors and progress, so
# `mailwarden trace --json x | jq` never sees a progress bar.
class _Console(Console):
    """Rich's console, but a closed stdout (``| head``) exits 141 like SIGPIPE, not 1 ("a bug")."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141)  # ExitCode.BROKEN_PIPE (errors.py imports nothing from here)


console = _Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line

JSON_SCHEMA_VERSION = 1


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, enums, datetimes, IPs and paths -> plain JSON values (recursively)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_json"):
            return to_jsonable(obj.to_json())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.name.startswith("_")}
    if hasattr(obj, "to_json"):
        return to_jsonable(obj.to_json())
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, ipaddress.IPv4Address | ipaddress.IPv6Address
                  | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    return json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False)


def emit_json(obj: Any, *, indent: int | None = 2) -> None:
    """Write one JSON document to stdout (not through Rich: no markup, no wrapping).

    Indented on a terminal; on one line when piped or redirected (a script reads it): the
    stdlib's C encoder works only without indent, and the pure-Python one took 0.55 s of a
    hunt's 2.6 MB document (`jq .` indents it again)."""
    if not sys.stdout.isatty():
        indent = None
    sys.stdout.write(dumps(obj, indent=indent))
    sys.stdout.write("\n")
    sys.stdout.flush()


def escape_html(text: object) -> str:
    """Everything that came from mail or logs goes through here before it reaches HTML."""
    return html.escape("" if text is None else str(text), quote=True)


def progress(*, bytes_mode: bool = False, transient: bool = True, disable: bool | None = None) -> Progress:
    """A Rich progress bar on stderr; hidden when stderr is not a terminal."""
    columns: list = [TextColumn("[progress.description]{task.description}"), BarColumn()]
    columns.append(DownloadColumn() if bytes_mode else MofNCompleteColumn())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    if disable is None:
        disable = not err_console.is_terminal
    return Progress(*columns, console=err_console, transient=transient, disable=disable)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (on a terminal only)."""
    with progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
