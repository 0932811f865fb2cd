"""`mailwarden trace PATH...`: who sent this spam - an account, a machine inside, a local script, or outside."""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mailwarden.errors import ExitCode
from mailwarden.output import JSON_SCHEMA_VERSION, console, emit_json, err_console, progress

from .common import ConfigOpt, JsonOpt, LocalDomainOpt, ServerNameOpt, TrustedNetOpt, site_config

if TYPE_CHECKING:  # the message modules load when a trace runs, not with every command (40-60 ms)
    from mailwarden.message.parse import ReadFailure
    from mailwarden.message.trace import Trace

TOP_N = 10


@functools.cache
def verdict_styles() -> dict:
    """Rich style per Verdict (a StrEnum: its value looks up the same); built on first use."""
    from mailwarden.message.verdict import Verdict

    return {Verdict.AUTHENTICATED_ACCOUNT: "bold red", Verdict.INTERNAL_HOST: "bold magenta",
            Verdict.LOCAL_SUBMISSION: "bold yellow", Verdict.EXTERNAL: "cyan", Verdict.UNKNOWN: "dim"}


def summarize(traces: list[Trace], failures: list[ReadFailure]) -> dict:
    """Counts by verdict, and accounts and client IPs ranked (most messages first)."""
    from mailwarden.message.verdict import Verdict

    verdicts = Counter(str(t.verdict) for t in traces)
    accounts = Counter(t.account for t in traces
                       if t.account and t.verdict == Verdict.AUTHENTICATED_ACCOUNT)
    ips = Counter(t.client_ip for t in traces if t.client_ip)
    return {
        "messages": len(traces),
        "failed": len(failures),
        "by_verdict": {str(v): verdicts.get(str(v), 0) for v in Verdict},
        "accounts": [{"account": a, "messages": n} for a, n in accounts.most_common()],
        "client_ips": [{"client_ip": ip, "messages": n} for ip, n in ips.most_common()],
    }


def _render_one(trace: Trace, *, show_hops: bool) -> None:
    style = verdict_styles().get(trace.verdict, "")
    console.rule(f"[bold]{escape(trace.source)}[/]", align="left")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("verdict", f"[{style}]{trace.verdict}[/]  [dim]{escape(trace.reason or '')}[/]")
    for label, value in (("message-id", trace.message_id), ("subject", trace.subject),
                         ("from", trace.from_), ("account", trace.account),
                         ("client", " ".join(x for x in (trace.client_ip,
                                             f"helo={trace.client_helo}" if trace.client_helo else None) if x))):
        if value:
            grid.add_row(label, escape(value))
    if trace.our_hop is not None:
        hop = trace.our_hop
        parts = [f"#{hop.index}", f"by {hop.by}" if hop.by else None,
                 f"with {hop.protocol}" if hop.protocol else None, f"id {hop.id}" if hop.id else None,
                 f"at {trace.received_at.isoformat()}" if trace.received_at else None]
        grid.add_row("our hop", escape(" ".join(p for p in parts if p)))
    if trace.boundary is not None:
        grid.add_row("boundary", f"[dim]{escape(trace.boundary.description)}[/]")
    for ev in trace.auth_markers:
        mark = "[green]bound[/]" if ev.bound else "[yellow]uncorroborated[/]"
        grid.add_row("marker", f"{mark} {escape(ev.marker)}: {escape(ev.value[:120])} "
                               f"[dim]({escape(ev.binding or '')})[/]")
    grid.add_row("next", escape(trace.next_action or ""))
    if trace.defects:
        grid.add_row("defects", f"[dim]{escape('; '.join(trace.defects[:5]))}[/]")
    console.print(grid)
    if show_hops:
        hops = Table("#", "from", "client ip", "by", "with", "id", "date", "note", box=None, pad_edge=False)
        for hop in trace.hops:
            hops.add_row(str(hop.index), escape(hop.helo or hop.from_name or ""), hop.from_ip or "",
                         escape(hop.by or ""), escape(hop.protocol or ""), escape(hop.id or ""),
                         hop.date.isoformat() if hop.date else "", escape(hop.reason or ""))
        console.print(hops)


def _render_summary_table(traces: list[Trace]) -> None:
    table = Table(title="messages")
    table.add_column("source", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("account", overflow="fold")
    table.add_column("client ip", no_wrap=True)
    table.add_column("our hop", overflow="fold")
    for t in traces:
        style = verdict_styles().get(t.verdict, "")
        table.add_row(escape(t.source), f"[{style}]{t.verdict}[/]", escape(t.account or ""),
                      t.client_ip or "", escape(t.our_hop.by or "") if t.our_hop else "")
    console.print(table)


def _render_summary(summary: dict) -> None:
    counts = Table("verdict", "messages", title="by verdict")
    for verdict, n in summary["by_verdict"].items():
        if n:
            counts.add_row(f"[{verdict_styles().get(verdict, '')}]{verdict}[/]", str(n))
    console.print(counts)
    if summary["accounts"]:
        accounts = Table("account", "messages", title="authenticated accounts (change these passwords)")
        for row in summary["accounts"][:TOP_N]:
            accounts.add_row(escape(row["account"]), str(row["messages"]))
        console.print(accounts)
    if summary["client_ips"]:
        ips = Table("client ip", "messages", title="client IPs at our accepting hop")
        for row in summary["client_ips"][:TOP_N]:
            ips.add_row(row["client_ip"], str(row["messages"]))
        console.print(ips)
    if summary["failed"]:
        console.print(f"[red]{summary['failed']} message(s) could not be read[/] (listed on stderr)")


def trace_command(
    paths: Annotated[list[str], typer.Argument(
        help="Messages: .eml, MDaemon/Outlook .msg, mbox files, Maildir or MDaemon folders, - for stdin.")],
    json_out: JsonOpt = False,
    summary: Annotated[bool, typer.Option(
        "--summary", help="One line per message, then counts by verdict and ranked accounts/IPs.")] = False,
    hops: Annotated[bool, typer.Option("--hops", help="Also print every Received hop.")] = False,
    config: ConfigOpt = None,
    server_name: ServerNameOpt = None,
    local_domain: LocalDomainOpt = None,
    trusted_net: TrustedNetOpt = None,
    logs: Annotated[list[str] | None, typer.Option(
        "--logs", help="SMTP log to find each message's session in (repeatable; see `logs find`).")] = None,
    log_format: Annotated[str, typer.Option(
        "--format", help="Dialect of the --logs files: auto, postfix, exim, mdaemon.")] = "auto",
) -> None:
    """Say for each message whether an authenticated account, a machine inside, a local script, or
    an outside host sent it, with the evidence and the next command to run."""
    from mailwarden.message.parse import ReadFailure
    from mailwarden.message.trace import trace_results

    # With --logs the log is known: the suggested `logs find` command names it.
    site = site_config(config, server_name, local_domain, trusted_net).with_overrides(smtp_logs=logs or ())
    traces: list[Trace] = []
    failures: list[ReadFailure] = []
    with progress() as bar:
        task = bar.add_task("tracing", total=None)
        for path in paths:
            for result in trace_results(path, site):
                if isinstance(result, ReadFailure):
                    failures.append(result)
                    # One line per failed message; the batch goes on.
                    err_console.print(f"[bold red]error:[/] {escape(result.source)}: {escape(result.reason)}")
                else:
                    traces.append(result)
                bar.advance(task)
    overview = summarize(traces, failures)
    found_sessions = None
    if logs:  # `trace --logs`: the SMTP session of each message (mailwarden.commands.logs)
        from mailwarden.commands.logs import trace_log_sessions

        found_sessions = trace_log_sessions(traces, logs, log_format, site)

    if json_out:
        emit_json({
            "schema": JSON_SCHEMA_VERSION,
            "messages": [t.to_json() | (found_sessions[i].json if found_sessions else {})
                         for i, t in enumerate(traces)],
            "errors": [{"source": f.source, "error": f.reason} for f in failures],
            "summary": overview,
        })
    elif summary:
        _render_summary_table(traces)
        _render_summary(overview)
    else:
        for i, trace in enumerate(traces):
            _render_one(trace, show_hops=hops)
            if found_sessions:
                found_sessions[i].render()
        if len(traces) > 1:
            _render_summary(overview)
    if failures:
        raise typer.Exit(int(ExitCode.INPUT))


def register(app: typer.Typer) -> None:
    app.command("trace")(trace_command)
