"""`mailwarden logs index` and `mailwarden logs sql`: the DuckDB log index."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mailwarden.commands.common import JsonOpt
from mailwarden.errors import ExitCode, InputError
from mailwarden.output import console, emit_json, err_console, progress

DbOpt = Annotated[Path, typer.Option("--db", help="The DuckDB index file (created by `logs index`).")]
# Rows `logs sql` prints in the Rich view before it stops (JSON has its own --limit).
DEFAULT_SQL_LIMIT = 1000


def index_command(
    logs: Annotated[list[str], typer.Argument(help="Log files (plain, rotated, .gz/.bz2/.xz) or - for stdin.")],
    db: DbOpt,
    year: Annotated[int | None, typer.Option("--year", min=1970, max=2200, help="Year of the first line of year-less syslog files (default: from the file's mtime).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, postfix, exim or mdaemon.")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Load logs into a DuckDB index (incremental: a file already loaded is skipped)."""
    import os

    from mailwarden.logs.index import index_logs

    total = 0
    for path in logs:
        try:
            total += os.stat(path).st_size if path != "-" else 0
        except OSError:
            pass
    with progress(bytes_mode=True) as bar:
        task = bar.add_task("indexing", total=total or None)

        def report(what: str, done: int) -> None:
            bar.update(task, completed=done, description=escape(what))

        summary = index_logs(db, logs, year=year, fmt=fmt, progress=report)
    if json_out:
        emit_json(summary)
    else:
        _print_summary(summary)
    if summary.failed:
        raise typer.Exit(int(ExitCode.INPUT))


def _print_summary(summary) -> None:
    table = Table(title=f"log index {escape(summary.db)}", title_justify="left")
    for name, justify in (("file", "left"), ("status", "left"), ("dialect", "left"), ("lines", "right"),
                          ("unparsed", "right"), ("sessions", "right"), ("seconds", "right")):
        table.add_column(name, justify=justify)
    for s in summary.sources:
        status = {"failed": "[red]failed[/]", "skipped": "[dim]skipped[/]"}.get(s.status, s.status)
        table.add_row(escape(s.path), status, s.dialect or "", f"{s.lines:,}", f"{s.unparsed:,}",
                      f"{s.sessions:,}", f"{s.seconds:.2f}")
    console.print(table)
    for s in summary.sources:
        if s.message:
            # Loader messages about one file usually name it already.
            text = s.message if s.message.startswith(s.path) else f"{s.path}: {s.message}"
            (err_console if s.status == "failed" else console).print(escape(text))
    if summary.dropped_rows:
        console.print(f"{summary.dropped_rows:,} rows left by an interrupted earlier load were deleted first")
    totals = summary.totals()
    rate = totals["lines"] / summary.seconds if summary.seconds else 0
    console.print(f"{totals['loaded']} loaded, {totals['skipped']} skipped, {totals['failed']} failed; "
                  f"{totals['lines']:,} lines, {totals['sessions']:,} sessions in {summary.seconds:.2f} s "
                  f"({rate:,.0f} lines/s)")


def _cell(value) -> object:
    """A JSON-friendly value for one SQL result cell."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID | bytes | bytearray):
        return value.hex() if isinstance(value, bytes | bytearray) else str(value)
    if isinstance(value, list | tuple):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return value


def sql_command(
    query: Annotated[str, typer.Argument(help='SQL, e.g. "SELECT auth_user, count(*) FROM sessions GROUP BY 1".')],
    db: DbOpt,
    limit: Annotated[int, typer.Option("--limit", help="Stop after this many rows (0: no limit).")] = DEFAULT_SQL_LIMIT,
    json_out: JsonOpt = False,
) -> None:
    """Run a read-only SQL query on the index (tables: docs/log-index.md)."""
    import duckdb

    from mailwarden.logs.index import connect
    from mailwarden.logs.linestore import register_lines_view

    con = connect(db, read_only=True)
    try:
        # Read-only means the index and the files around it: no COPY TO, no reading other files.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        # the raw lines are zstd blocks (line_blocks); `lines` is a TEMP VIEW over them
        register_lines_view(con)
        try:
            cursor = con.execute(query)
        except duckdb.Error as exc:
            text = str(exc).strip().splitlines()
            raise InputError(f"SQL: {text[0] if text else type(exc).__name__}") from None
        if cursor.description is None:
            columns, rows, truncated = [], [], False
        else:
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchmany(limit + 1) if limit > 0 else cursor.fetchall()
            truncated = limit > 0 and len(rows) > limit
            rows = rows[:limit] if truncated else rows
    finally:
        con.close()
    if json_out:
        emit_json({"columns": columns, "rows": [[_cell(v) for v in row] for row in rows],
                   "row_count": len(rows), "truncated": truncated})
        return
    table = Table(show_lines=False)
    for name in columns:
        table.add_column(escape(name))
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s){' (truncated: --limit)' if truncated else ''}")


def register(logs_app: typer.Typer) -> None:
    """Add `index` and `sql` to the `logs` group."""
    logs_app.command("index")(index_command)
    logs_app.command("sql")(sql_command)
