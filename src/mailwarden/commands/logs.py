"""`mailwarden logs ...`: find a message's SMTP session and say why it was accepted; index; sql."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mailwarden.commands.common import (
    ConfigOpt,
    JsonOpt,
    LocalDomainOpt,
    ServerNameOpt,
    TrustedNetOpt,
    site_config,
)
from mailwarden.config import SiteConfig
from mailwarden.errors import ConfigError, ExitCode, InputError, MailwardenError
from mailwarden.logs.model import LogLine, Session
from mailwarden.output import JSON_SCHEMA_VERSION, console, emit_json, err_console, progress

logs_app = typer.Typer(
    help="Read SMTP logs (MDaemon, Postfix, Exim): find a message's session, explain why it was accepted, index logs in DuckDB.",
    no_args_is_help=True,
)

# `logs find` is defined in this module (owned by the log-reading work);
# `logs index` and `logs sql` live in commands/logs_index.py (owned by the index work).

MAX_MESSAGE_BYTES = 64 << 20
FORMAT_HELP = "Log dialect: auto (detect per file), postfix, exim, mdaemon."


def parse_when(text: str, option: str) -> dt.datetime:
    """``2024-08-29``, ``2024-08-29 14:02``, ``2024-08-29T14:02:01+02:00`` -> datetime.

    Without an offset the time is taken as server-local, like the log's own naive times.
    """
    value = text.strip()
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ConfigError(f"{option}: not a date/time: {text!r} (use e.g. 2024-08-29T14:02:00)") from None


def _trace_message(path: Path, site: SiteConfig):
    """Message-ID, our hop's queue id and received time, as `trace` finds them."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MESSAGE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise InputError(f"{path}: larger than {MAX_MESSAGE_BYTES >> 20} MB; not a single message?")
    from mailwarden.message.trace import trace_bytes

    return trace_bytes(data, site, source=str(path))


def find_command(
    logs: Annotated[list[str] | None, typer.Argument(
        help="Log files (rotated sets and .gz/.bz2/.xz welcome; - for stdin).", show_default=False)] = None,
    message_id: Annotated[str | None, typer.Option("--message-id", "-m", help="The Message-ID to look for.")] = None,
    queue_id: Annotated[str | None, typer.Option(
        "--queue-id", "-q", help="A Postfix queue id, Exim message id or MDaemon md*.msg name.")] = None,
    from_message: Annotated[Path | None, typer.Option(
        "--from-message", help="Take the Message-ID, our hop's queue id and the received time from this message.")] = None,
    around: Annotated[str | None, typer.Option(
        "--around", help="Look ±1 day around this time (default: the message's received time).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Sessions starting at or after this time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Sessions starting at or before this time.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "auto",
    year: Annotated[int | None, typer.Option(
        "--year", min=1970, max=2200, help="Year of the first line of classic syslog logs (default: from the time searched around, else the file's mtime).")] = None,
    unparsed: Annotated[Path | None, typer.Option(
        "--unparsed", help="Write lines that fit nowhere to this file (reads every line: slower).")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Answer from a `logs index` DuckDB file instead of the logs.")] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    server_name: ServerNameOpt = None,
    local_domain: LocalDomainOpt = None,
    trusted_net: TrustedNetOpt = None,
) -> None:
    """Find a message's SMTP session (whole transcript) and say why the server accepted it.

    Exit status: 0 found; 4 not found, or a log could not be read.
    """
    from mailwarden.logs.find import FindQuery, TimeWindow, normalise_message_id
    from mailwarden.logs.readers import FORMAT_NAMES

    if fmt not in FORMAT_NAMES:
        raise ConfigError(f"--format must be one of: {', '.join(FORMAT_NAMES)}")
    site = site_config(config, server_name, local_domain, trusted_net)
    traced = None
    received_at: dt.datetime | None = None
    if from_message is not None:
        traced = _trace_message(from_message, site)
        message_id = message_id or traced.message_id
        hop_id = traced.our_hop.id if traced.our_hop is not None else None
        queue_id = queue_id or _usable_queue_id(hop_id)
        received_at = traced.received_at
        if not message_id and not queue_id:
            raise InputError(f"{from_message}: no Message-ID and no queue id at our hop to look for")
    query = FindQuery(message_id=normalise_message_id(message_id) if message_id else None,
                      queue_id=queue_id.strip() if queue_id else None)
    center = parse_when(around, "--around") if around else received_at
    window = TimeWindow.around(center) if center is not None else TimeWindow()
    if since:
        window.since = parse_when(since, "--since")
    if until:
        window.until = parse_when(until, "--until")
    if window.since is not None and window.until is not None:
        try:
            backwards = window.since > window.until
        except TypeError:  # one aware, one naive: compare as written
            backwards = window.since.replace(tzinfo=None) > window.until.replace(tzinfo=None)
        if backwards:
            raise ConfigError("--since is later than --until")
    query.window = window
    if not query.message_id and not query.queue_id and window.empty:
        raise ConfigError("say what to find: --message-id, --queue-id, --from-message, or a time "
                          "window (--around/--since/--until)")

    if db is not None:
        result = _find_in_index(db, query)
    else:
        if not logs:
            raise ConfigError("no log files given (or use --db)")
        result = _find_in_files(logs, query, fmt, year, unparsed, anchor=center)

    if json_out:
        from mailwarden.logs.find import session_to_json

        emit_json({
            "schema": JSON_SCHEMA_VERSION,
            "query": {
                "message_id": query.message_id, "queue_id": query.queue_id,
                "since": window.since, "until": window.until,
                "from_message": str(from_message) if from_message else None,
                "received_at": received_at,
                "naive_slack_hours": 14,
            },
            "found": bool(result.sessions),
            "sessions": [session_to_json(s, message_id=query.message_id, queue_id=query.queue_id,
                                         site=site) for s in result.sessions],
            "outside_window": result.outside_window,
            "search": {
                "method": result.method, "sources": result.sources, "formats": result.formats,
                "bytes_searched": result.bytes_searched, "unparsed_lines": result.unparsed,
                "truncated_lines": result.truncated_lines,
            },
            "problems": result.problems,
        })
    else:
        for problem in result.problems:
            err_console.print(f"[yellow]warning:[/] {escape(problem)}")
        for session in result.sessions:
            render_session(session, message_id=query.message_id, queue_id=query.queue_id, site=site)
        if result.unparsed:
            err_console.print(f"{result.unparsed} line(s) fit nowhere"
                              + (f" (written to {escape(str(unparsed))})" if unparsed else
                                 " (--unparsed FILE writes them out)"))
        if not result.sessions:
            what = query.message_id or query.queue_id or "a session"
            extra = (f"; {result.outside_window} matching session(s) lie outside the time window"
                     if result.outside_window else "")
            err_console.print(f"[bold red]not found:[/] {escape(what)} in "
                              f"{len(result.sources)} log(s){extra}")
    if not result.sessions or result.problems:
        raise typer.Exit(int(ExitCode.INPUT))


def _usable_queue_id(hop_id: str | None) -> str | None:
    """A Received ``id`` worth searching for (not an SMTP id like Gmail's long tokens)."""
    if not hop_id or len(hop_id) > 40 or " " in hop_id:
        return None
    return hop_id


def _find_in_files(logs: list[str], query, fmt: str, year: int | None, unparsed: Path | None,
                   anchor: dt.datetime | None = None):
    from mailwarden.logs.find import find_in_logs
    from mailwarden.logs.sources import describe

    sink_file = None
    sink = None
    if unparsed is not None:
        try:
            sink_file = open(unparsed, "w", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{unparsed}: {exc.strerror or exc}") from None

        def sink(line: LogLine) -> None:
            sink_file.write(f"{line.source}:{line.lineno}: {line.text}\n")

    sources, _ = describe(logs)
    total = sum(s.size or 0 for s in sources) or None
    try:
        with progress(bytes_mode=True) as bar:
            task = bar.add_task("searching", total=total)
            result = find_in_logs(logs, query, fmt=fmt, year=year, unparsed_sink=sink,
                                  progress=lambda n: bar.advance(task, n), year_anchor=anchor)
    finally:
        if sink_file is not None:
            sink_file.close()
    return result


def _find_in_index(db: Path, query):
    """``--db``: ask the DuckDB index (built by `logs index`)."""
    from mailwarden.logs.find import FindResult

    try:
        from mailwarden.logs.index import find_sessions
    except (ImportError, AttributeError):
        raise ConfigError("this build has no log index back-end (mailwarden.logs.index.find_sessions)") from None
    if not db.exists():
        raise InputError(f"{db}: no such index (build it with `mailwarden logs index LOG... --db {db}`)")
    try:
        sessions = find_sessions(db, message_id=query.message_id, queue_id=query.queue_id,
                                 since=query.window.since, until=query.window.until)
    except MailwardenError:
        raise
    except Exception as exc:  # a corrupt or foreign file: one clear line, not a traceback
        raise InputError(f"{db}: cannot read the index: {exc}") from None
    result = FindResult(method="index", sources=[str(db)])
    result.sessions = [s for s in sessions if query.matches(s)] or list(sessions)
    return result


# -- Rich view (also used by `trace --logs`) ------------------------------------------------------

def render_session(session: Session, *, message_id: str | None = None, queue_id: str | None = None,
                   site: SiteConfig | None = None, max_lines: int = 400) -> None:
    """Header, transcript (source:lineno + raw text) and the explanation."""
    from rich.panel import Panel
    from rich.table import Table

    from mailwarden.logs.explain import explain, pick_transaction

    txn = pick_transaction(session, message_id, queue_id)
    why = explain(session, txn, site)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    client = session.client_ip or "-"
    if session.client_name:
        client += f" ({session.client_name})"
    if session.client_port:
        client += f" port {session.client_port}"
    rows = [
        ("dialect", f"{session.dialect} ({session.kind})"),
        ("when", f"{session.start or '?'} → {session.end or '?'}"
         + (" (server-local time)" if session.ts_is_local else "")),
        ("client", client),
        ("helo", session.helo or "-"),
        ("tls", session.tls_info or ("yes" if session.tls else "no")),
        ("auth", f"{session.auth_user or '-'}" + (f" ({session.auth_method})" if session.auth_method else "")
         + (f"; {session.auth_failures} failure(s)" if session.auth_failures else "")),
        ("outcome", session.outcome or "-"),
    ]
    if txn is not None:
        rows += [
            ("queue id", txn.queue_id or "-"),
            ("message-id", txn.message_id or "-"),
            ("sender", "<>" if txn.sender == "" else (txn.sender or "-")),
            ("recipients", (", ".join(f"{r.address} [{r.status or '?'}]" for r in txn.recipients[:10])
                            + (f" … {len(txn.recipients) - 10} more (--json lists all)" if len(txn.recipients) > 10
                               else "")) or "-"),
        ]
    for key, value in rows:
        facts.add_row(key, escape(str(value)))
    verdict_style = "green" if why.accepted else "red"
    console.print(Panel(facts, title=f"[{verdict_style}]{escape(why.summary)}[/]", title_align="left"))
    shown = session.lines[:max_lines]
    for line in shown:
        # soft_wrap: a log line stays one line (copy-paste, grep), the terminal wraps it
        console.print(f"[dim]{escape(line.source)}:{line.lineno}[/] {escape(line.text)}", soft_wrap=True)
    if len(session.lines) > max_lines:
        console.print(f"[dim]… {len(session.lines) - max_lines} more line(s) (use --json for all)[/]")
    for reason in why.reasons:
        mark = " [yellow](inferred)[/]" if reason.inferred else ""
        console.print(f"  [green]✓[/] {escape(reason.text)}{mark}")
    for gap in why.would_have_stopped:
        console.print(f"  [red]✗[/] {escape(gap.text)}")
        console.print(f"      [dim]Postfix: {escape(gap.postfix)}[/]")
        console.print(f"      [dim]MDaemon: {escape(gap.mdaemon)}[/]")
        console.print(f"      [dim]Exim: {escape(gap.exim)}[/]")
    for note in why.notes:
        console.print(f"  [dim]· {escape(note)}[/]")
    for defect in session.defects:
        console.print(f"  [yellow]! {escape(defect)}[/]")
    console.print()


# -- `trace --logs` (the trace command calls this; kept here beside the find logic) ---------------

class TracedSession:
    """The log sessions found for one traced message: JSON to merge, and a Rich view."""

    def __init__(self, trace, result, query, site: SiteConfig) -> None:
        self.trace, self.result, self.query, self.site = trace, result, query, site

    @property
    def json(self) -> dict:
        from mailwarden.logs.find import session_to_json

        if self.result is None:
            return {"session": None, "log_search": {"searched": False,
                                                    "reason": "no Message-ID or queue id to look for"}}
        sessions = [session_to_json(s, message_id=self.query.message_id, queue_id=self.query.queue_id,
                                    site=self.site) for s in self.result.sessions]
        return {
            "session": sessions[0] if sessions else None,   # the first (earliest) match
            "sessions": sessions,                           # all, e.g. content-filter re-injections
            "log_search": {"searched": True, "message_id": self.query.message_id,
                           "queue_id": self.query.queue_id, "method": self.result.method,
                           "outside_window": self.result.outside_window,
                           "problems": self.result.problems},
        }

    def render(self) -> None:
        if self.result is None:
            console.print("  [dim]logs: nothing to look for (no Message-ID, no queue id)[/]")
            return
        for problem in self.result.problems:
            err_console.print(f"[yellow]warning:[/] logs: {escape(str(problem))}")
        if not self.result.sessions:
            what = self.query.message_id or self.query.queue_id
            console.print(f"  [yellow]logs: no session found for {escape(what or '?')}[/]")
            return
        console.print(f"[bold]SMTP session in the logs[/] ({len(self.result.sessions)} found)")
        for session in self.result.sessions:
            render_session(session, message_id=self.query.message_id, queue_id=self.query.queue_id,
                           site=self.site)


def trace_log_sessions(traces: list, logs: list[str], fmt: str, site: SiteConfig,
                       year: int | None = None) -> list[TracedSession]:
    """For each traced message, its session(s) in ``logs`` (Message-ID, our hop's id, ±1 day)."""
    from mailwarden.logs.find import FindQuery, TimeWindow, find_in_logs, normalise_message_id
    from mailwarden.logs.readers import FORMAT_NAMES

    if fmt not in FORMAT_NAMES:
        raise ConfigError(f"--format must be one of: {', '.join(FORMAT_NAMES)}")
    # A mistyped log path must not look like "no session found".
    missing = [log for log in logs if log != "-" and not os.path.exists(log)]
    if missing:
        raise InputError(f"--logs: no such file: {', '.join(missing)}")
    found: list[TracedSession] = []
    for trace in traces:
        hop_id = _usable_queue_id(trace.our_hop.id if trace.our_hop is not None else None)
        message_id = normalise_message_id(trace.message_id) if trace.message_id else None
        query = FindQuery(message_id=message_id, queue_id=None if message_id else hop_id)
        if trace.received_at is not None:
            query.window = TimeWindow.around(trace.received_at)
        result = (find_in_logs(logs, query, fmt=fmt, year=year, year_anchor=trace.received_at)
                  if query.needles() else None)
        found.append(TracedSession(trace, result, query, site))
    return found


def register(app: typer.Typer) -> None:
    from mailwarden.commands import logs_index

    logs_app.command("find")(find_command)
    logs_index.register(logs_app)
    app.add_typer(logs_app, name="logs")
