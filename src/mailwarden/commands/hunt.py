"""`mailwarden hunt` (rank likely spambots from SMTP logs) and `mailwarden report` (the HTML view)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mailwarden.commands.common import (
    ConfigOpt,
    JsonOpt,
    LocalDomainOpt,
    TrustedNetOpt,
    site_config,
)
from mailwarden.errors import ConfigError, ExitCode, InputError
from mailwarden.output import console, emit_json, err_console

LogsArg = Annotated[list[str] | None, typer.Argument(help="SMTP log files (Postfix, Exim, MDaemon; rotated, .gz).",
                                                     show_default=False)]
DbOpt = Annotated[Path | None, typer.Option("--db", help="Read a `logs index` database instead of LOG files.")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="Log dialect: postfix, exim, mdaemon (default: detect).")]
YearOpt = Annotated[int | None, typer.Option("--year", min=1970, max=2200, help="Year of classic syslog lines (default: from the file).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only activity from this server-local time on (ISO).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only activity before this server-local time (ISO).")]
LastOpt = Annotated[str | None, typer.Option("--last", help="Only the final part of the logs, e.g. 24h, 7d.")]
GeoipOpt = Annotated[Path | None, typer.Option("--geoip", help="MaxMind-format .mmdb file to count countries.")]


def _settings(config, local_domains, trusted_nets, geoip):
    from mailwarden.hunt.settings import settings_from_section

    site = site_config(config, None, local_domains, trusted_nets)
    settings = settings_from_section(site.sections.get("hunt"))
    if geoip is not None:
        settings.geoip = str(geoip)
    return site, settings


def _warn_problems(problems: list[str]) -> None:
    for problem in problems:
        err_console.print(f"[yellow]warning:[/] not loaded: {escape(problem)}")


def _window(con, since, until, last):
    from mailwarden.hunt.engine import window_for_last
    from mailwarden.hunt.source import parse_duration, parse_time
    from mailwarden.hunt.tables import Window

    start = parse_time(since) if since else None
    end = parse_time(until) if until else None
    if last:
        if start is not None:
            raise ConfigError("--last and --since do not go together")
        return window_for_last(con, parse_duration(last), end)
    return Window(start, end)


def _show(result, top: int | None) -> None:
    over = len(result.over_alarm)
    console.print(f"[bold]{result.sessions}[/] sessions, [bold]{result.messages}[/] accepted messages"
                  + (f", {escape(str(result.first_ts))} .. {escape(str(result.last_ts))}" if result.first_ts else ""))
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if not result.suspects:
        console.print("[green]No account, client or local user shows any spambot signal.[/]")
        return
    # One block per suspect rather than a table: evidence sentences stay readable in 80 columns.
    for i, s in enumerate(result.suspects[:top] if top else result.suspects, 1):
        mark = "[bold red]ALARM[/]" if s.alarm else "[yellow]watch[/]"
        console.print(f"\n[bold]{i:>2}. {s.kind} {escape(s.name)}[/]  score {s.score:.1f}  {mark}")
        console.print(f"    seen {escape(str(s.first_seen or '?'))} .. {escape(str(s.last_seen or '?'))}",
                      style="dim")
        for e in s.evidence:
            console.print(f"    +{e.points:4.1f} [bold]{escape(e.signal)}[/]: {escape(e.text)}")
        console.print(f"    -> {escape(s.next_action)}", style="cyan")
    console.print()
    style = "bold red" if over else "green"
    console.print(f"[{style}]{over} suspect(s) over the alarm line ({result.alarm:g})[/]")


def hunt(
    logs: LogsArg = None,
    db: DbOpt = None,
    fmt: FormatOpt = None,
    year: YearOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show only the N highest suspects.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; exit 3 when a suspect is over the alarm line, else 0 (for cron).")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Tail one live LOG (survives rotation) and alert as soon as a suspect crosses the alarm line.")] = False,
    exec_cmd: Annotated[str | None, typer.Option("--exec", help="With --follow: run this shell command on each alert (suspect in MW_* variables and as JSON on stdin).")] = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="With --follow: read the file from its beginning, not from its end.")] = False,
    window_hours: Annotated[float, typer.Option("--window", help="With --follow: hours of activity the counters keep.")] = 24.0,
    max_alerts: Annotated[int | None, typer.Option("--max-alerts", help="With --follow: stop after N alerts.")] = None,
    idle_exit: Annotated[float | None, typer.Option("--idle-exit", hidden=True, help="With --follow: stop after this many seconds without new lines (tests).")] = None,
    geoip: GeoipOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    local_domains: LocalDomainOpt = None,
    trusted_nets: TrustedNetOpt = None,
) -> None:
    """Rank the accounts, client IPs and local users that behave like spambots, with the evidence."""
    if follow:
        from mailwarden.hunt.follow import follow_log

        if db is not None or len(logs or []) != 1:
            raise ConfigError("--follow takes exactly one LOG file (and no --db)")
        site, settings = _settings(config, local_domains, trusted_nets, geoip)
        alerts = follow_log(logs[0], site=site, settings=settings, fmt=fmt, year=year,
                            exec_cmd=exec_cmd, from_start=from_start, window_hours=window_hours,
                            max_alerts=max_alerts, idle_exit=idle_exit, json_lines=json_out,
                            quiet=quiet)
        if quiet and alerts:
            raise typer.Exit(int(ExitCode.FINDINGS))
        return
    if exec_cmd or from_start or max_alerts is not None:
        raise ConfigError("--exec, --from-start and --max-alerts go with --follow")
    from mailwarden.hunt.engine import run_hunt
    from mailwarden.hunt.source import hunt_source
    from mailwarden.hunt.tables import COLUMNS_READ

    site, settings = _settings(config, local_domains, trusted_nets, geoip)
    # a hunt shows no transcripts and reads few columns: a temporary index holds no more
    with hunt_source(logs, db, fmt=fmt, year=year, show_progress=not quiet, transcripts=False,
                     columns=COLUMNS_READ) as src:
        result, _ = run_hunt(src.con, site=site, settings=settings,
                             window=_window(src.con, since, until, last), inputs=src.inputs, db=src.db)
        result.notes += [f"not loaded: {p}" for p in src.problems]
    if quiet:
        raise typer.Exit(int(ExitCode.FINDINGS) if result.over_alarm else int(ExitCode.OK))
    if json_out:
        if top:
            result.suspects = result.suspects[:top]
        emit_json(result)
    else:
        _warn_problems(src.problems)
        _show(result, top)
    if src.problems:
        raise typer.Exit(int(ExitCode.INPUT))


def report(
    logs: LogsArg = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
    fmt: FormatOpt = None,
    year: YearOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    top_sessions: Annotated[int, typer.Option("--top-sessions", help="Sessions shown per suspect.")] = 5,
    geoip: GeoipOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    local_domains: LocalDomainOpt = None,
    trusted_nets: TrustedNetOpt = None,
) -> None:
    """Write one self-contained HTML report: suspects, a timeline per suspect, their top sessions."""
    from mailwarden.hunt.engine import run_hunt
    from mailwarden.hunt.report import collect, render
    from mailwarden.hunt.source import hunt_source

    site, settings = _settings(config, local_domains, trusted_nets, geoip)
    with hunt_source(logs, db, fmt=fmt, year=year) as src:
        result, _ = run_hunt(src.con, site=site, settings=settings,
                             window=_window(src.con, since, until, last), inputs=src.inputs, db=src.db)
        result.notes += [f"not loaded: {p}" for p in src.problems]
        page = render(collect(src.con, result, top_sessions=max(0, top_sessions)))
    _write_atomically(output, page)
    if json_out:
        emit_json({"schema": 1, "output": str(output), "bytes": len(page.encode()),
                   "suspects": len(result.suspects), "over_alarm": len(result.over_alarm),
                   "not_loaded": src.problems})
    else:
        _warn_problems(src.problems)
        err_console.print(f"wrote {escape(str(output))}: {len(result.suspects)} suspect(s), "
                          f"{len(result.over_alarm)} over the alarm line")
    if src.problems:
        raise typer.Exit(int(ExitCode.INPUT))


def _write_atomically(path: Path, text: str) -> None:
    # A half-written report must never replace a good one (cron overwrites it daily).
    directory = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc}") from None


def register(app: typer.Typer) -> None:
    """Add `hunt` and `report` as top-level commands."""
    app.command("hunt")(hunt)
    app.command("report")(report)
