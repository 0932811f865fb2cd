"""`mailwarden prune STORE ...` and `mailwarden prune restore ARCHIVE`: prune mail stores safely."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from mailwarden.errors import ConfigError, ExitCode, InputError, MailwardenError
from mailwarden.output import console, emit_json, err_console, progress

from .common import ConfigOpt, JsonOpt

_SUBCOMMANDS = ("run", "restore")


class _PruneGroup(TyperGroup):
    """``prune ARGS`` runs the pruner; ``prune restore ...`` restores. Anything else goes to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


prune_app = typer.Typer(
    cls=_PruneGroup,
    help="Prune old mail from MDaemon, Maildir, mbox or IMAP stores; never loses a message (docs/prune.md).\n\n"
         "Usage: mailwarden prune STORE [--days N] [--delete | --move-to F | --archive DIR] ... "
         "(all options: mailwarden prune run --help), or AccountPrune-style: "
         "mailwarden prune /d=5 /p=Inbox.IMAP /n /z=c:\\backup\\archive",
    no_args_is_help=False,
    rich_markup_mode=None,
)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mailwarden" / "prune"


def _json_errors(command):
    """With --json a failed command still prints one JSON document (the CLI prints the stderr line)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MailwardenError as exc:
            if kwargs.get("json_out"):
                emit_json({"schema": 1, "error": str(exc), "exit_code": int(exc.exit_code)})
            raise

    return wrapper


def _prune_section(config: Path | None) -> dict:
    from mailwarden.config import load_config

    return dict(load_config(config).sections.get("prune", {}))


@prune_app.command("run", hidden=True, context_settings={"allow_interspersed_args": True})
@_json_errors
def run_command(
    args: Annotated[list[str] | None, typer.Argument(
        help="STORE (Maildir, MDaemon Users dir, mbox file or dir, imap[s]://user@host) and/or "
             "AccountPrune-style switches /d=N /p=FOLDER /u=ACCOUNT /n /z=DIR /t.")] = None,
    store_type: Annotated[str, typer.Option("--store-type", help="auto, maildir, mbox, mdaemon, imap.")] = "auto",
    days: Annotated[float | None, typer.Option("--days", help="Select messages older than N days.")] = None,
    before: Annotated[str | None, typer.Option("--before", help="Select messages older than DATE (YYYY-MM-DD, UTC).")] = None,
    age_source: Annotated[str, typer.Option("--age-source", help="arrival (store's own date, default), date-header, mtime.")] = "arrival",
    folder: Annotated[list[str] | None, typer.Option("--folder", help="Folder glob; IMAP or MDaemon .IMAP names (repeatable).")] = None,
    account: Annotated[list[str] | None, typer.Option("--account", help="Account glob, e.g. alice@example.com (repeatable).")] = None,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Only accounts of this domain (repeatable).")] = None,
    larger_than: Annotated[str | None, typer.Option("--larger-than", help="Only messages larger than SIZE (500k, 2M).")] = None,
    seen: Annotated[bool, typer.Option("--seen", help="Only messages marked seen.")] = False,
    unseen: Annotated[bool, typer.Option("--unseen", help="Only messages not marked seen.")] = False,
    deleted_only: Annotated[bool, typer.Option("--deleted-only", help="Only messages flagged \\Deleted (purge).")] = False,
    include_flagged: Annotated[bool, typer.Option("--include-flagged", help="Also prune \\Flagged messages (skipped by default).")] = False,
    inactive_days: Annotated[int | None, typer.Option("--inactive-days", help="Report accounts unused for N days (report only).")] = None,
    test: Annotated[bool, typer.Option("--test", help="Log what would happen, change nothing (the default).")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the selected messages.")] = False,
    move_to: Annotated[str | None, typer.Option("--move-to", help="Move the selected messages to FOLDER of the same account.")] = None,
    archive: Annotated[Path | None, typer.Option("--archive", help="Move the selected messages into verified zip archives in DIR.")] = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="SQLite journal (default: one per store in ~/.local/state/mailwarden/prune).")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="JSONL log of every selection and action (default: beside the journal).")] = None,
    user: Annotated[list[str] | None, typer.Option("--user", help="IMAP account to prune (repeatable).")] = None,
    user_list: Annotated[Path | None, typer.Option("--user-list", help="File of IMAP accounts: USER or USER<TAB>PASSWORD per line.")] = None,
    password_file: Annotated[Path | None, typer.Option("--password-file", help="File holding the IMAP (or master) password.")] = None,
    master_user: Annotated[str | None, typer.Option("--master-user", help="Dovecot master user: log in as USER*MASTER.")] = None,
    mdaemon_lock_name: Annotated[str | None, typer.Option("--mdaemon-lock-name", help="Folder lock file name to create in MDaemon folders (unverified default IMAP.LCK).")] = None,
    mbox_lock_timeout: Annotated[float, typer.Option("--mbox-lock-timeout", help="Seconds to wait for another program's mbox lock.")] = 30.0,
    batch_size: Annotated[int, typer.Option("--batch-size", hidden=True)] = 1000,
    part_max_messages: Annotated[int, typer.Option("--part-max-messages", hidden=True)] = 10000,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Select old messages and test, delete, move or archive them."""
    from mailwarden.prune import accountprune
    from mailwarden.prune.actions import PrunePlan, Pruner, PruneSummary, RunLog, StoreLock
    from mailwarden.prune.journal import Journal
    from mailwarden.prune.locate import ImapLogin, open_store, read_user_list
    from mailwarden.prune.select import Criteria, cutoff_from, parse_size

    section = _prune_section(config)
    drives = {str(k).lower(): str(v) for k, v in (section.get("drives") or {}).items()}
    switches, rest = accountprune.parse(list(args or []), drives)
    if len(rest) > 1:
        raise ConfigError(f"one store at a time, got {len(rest)}: {' '.join(rest)}")
    if rest:
        spec = rest[0]
    elif section.get("store"):
        spec = str(section["store"])
    elif switches.any:
        spec = str(accountprune.map_windows_path(section.get("mdaemon_users")
                                                 or accountprune.DEFAULT_MDAEMON_STORE, drives))
    else:
        raise ConfigError("no store given: mailwarden prune STORE ... (or [prune] store = in mailwarden.toml)")
    if switches.any and spec and not spec.startswith(("imap://", "imaps://")) and "\\" in spec:
        spec = str(accountprune.map_windows_path(spec, drives))

    if switches.days is not None:
        if days is not None:
            raise ConfigError("give /d= or --days, not both")
        days = switches.days
    if switches.archive is not None and not switches.test:
        if archive is not None:
            raise ConfigError("give /z= or --archive, not both")
        archive = switches.archive
    test = test or switches.test
    if seen and unseen:
        raise ConfigError("--seen and --unseen exclude each other")
    chosen = [name for name, on in (("delete", delete), ("move", move_to is not None),
                                    ("archive", archive is not None)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"choose one action, not {' and '.join(chosen)}")
    action = "test" if test or not chosen else chosen[0]
    cutoff = cutoff_from(days, before)
    if action != "test" and cutoff is None and not deleted_only:
        # A destructive run with no age limit would take everything: make the admin say so.
        raise ConfigError(f"--{action if action != 'move' else 'move-to'} needs --days N or --before DATE "
                          "(--days 0 selects every matching message)")
    criteria = Criteria(cutoff=cutoff, age_source=age_source, folders=[*(folder or []), *switches.folders],
                        accounts=[*(account or []), *switches.accounts], domains=list(domain or []),
                        larger_than=parse_size(larger_than) if larger_than else None,
                        seen=True if seen else (False if unseen else None), deleted_only=deleted_only,
                        include_flagged=include_flagged)

    login = ImapLogin(master_user=master_user)
    if user:
        login.users.extend(user)
    if user_list:
        users, passwords = read_user_list(user_list)
        login.users.extend(users)
        login.passwords.update(passwords)
    if password_file:
        try:
            login.password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read password file: {exc}") from None
    try:
        store = open_store(spec, store_type, imap=login,
                           mdaemon_lock_name=mdaemon_lock_name or section.get("mdaemon_lock_name"),
                           mbox_lock_timeout=mbox_lock_timeout)
    except InputError as exc:
        if switches.any and not rest:
            # The store came from [prune] store or MDaemon's default: say where to set it.
            raise ConfigError(f"{str(exc).split('; hint:')[0]}; hint: set [prune] store = \"/path/to/MDaemon/Users\" "
                              "and, for Windows paths like c:\\..., [prune.drives] c = \"/mnt/c\" in "
                              "mailwarden.toml (or give the store path first)") from None
        raise
    for warning in getattr(store, "warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if action == "archive":
        # Checked before the journal records anything, so a bad DIR never leaves a planned part.
        try:
            _check_archive_dir(archive)
        except ConfigError:
            store.close()
            raise
    try:
        key = hashlib.sha1(store.store_id.encode()).hexdigest()[:16]
        journal_path = journal or _state_dir() / f"{store.name}-{key}.sqlite"
        log_path = log or journal_path.with_name(
            f"{journal_path.stem}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{action}.jsonl")
        summary = PruneSummary(store=spec, store_type=store.name, action=action, age_source=age_source,
                               cutoff=cutoff, journal=str(journal_path) if action != "test" else None,
                               log=str(log_path))
        plan = PrunePlan(action=action, move_to=move_to, archive_dir=archive, batch_size=max(1, batch_size),
                         part_max_messages=max(1, part_max_messages))
        run_log = RunLog(log_path)
        if switches.any:
            run_log.write("accountprune-switches", switches=switches.seen, mapped_store=spec,
                          archive=str(archive) if archive else None)
        with progress(bytes_mode=True) as bar:
            task = bar.add_task("scanning", total=None)

            def on_progress(summ, tally):
                t = summ.totals()
                bar.update(task, completed=t["selected_bytes"],
                           description=f"{escape(tally.account)}/{escape(tally.folder)}: {t['selected']} selected, "
                                       f"{t['deleted'] + t['moved'] + t['archived']} done")

            if action == "test":
                jr = None
                lock = None
            else:
                jr = Journal(journal_path, durable=action == "archive")
                lock = StoreLock(journal_path.with_suffix(".lock"))
            # Also one lock per store in the state dir, so two runs given different --journal
            # files still cannot prune the same store at once.
            store_lock = StoreLock(_state_dir() / f"{store.name}-{key}.lock") if action != "test" else None
            try:
                if store_lock is not None and store_lock.path != (lock.path if lock else None):
                    store_lock.__enter__()
                else:
                    store_lock = None
                if lock is not None:
                    lock.__enter__()
                with store.lock():
                    pruner = Pruner(store, criteria, plan, summary, jr, run_log, on_progress)
                    pruner.resume()
                    if cutoff is not None or deleted_only or inactive_days is None or criteria.larger_than:
                        pruner.run()
                    if inactive_days is not None:
                        summary.inactive = _inactive(store, criteria, inactive_days)
            finally:
                if lock is not None:
                    lock.__exit__(None, None, None)
                if store_lock is not None:
                    store_lock.__exit__(None, None, None)
                if jr is not None:
                    jr.close()
                run_log.close()
    finally:
        store.close()
    for warning in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    if json_out:
        emit_json(summary)
    else:
        _render(summary)
    code = summary.exit_code()
    if code:
        if code != ExitCode.PARTIAL:
            for err in summary.errors[:5]:
                err_console.print(f"[bold red]error:[/] {escape(str(err['reason']))}")
        raise typer.Exit(code)


def _check_archive_dir(archive: Path) -> None:
    """The archive DIR must be (or become) a writable directory; else a usage error."""
    if archive.exists() and not archive.is_dir():
        raise ConfigError(f"--archive {archive}: exists and is not a directory")
    try:
        archive.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--archive {archive}: cannot create the directory ({exc.strerror or exc})") from None
    if not os.access(archive, os.W_OK | os.X_OK):
        raise ConfigError(f"--archive {archive}: directory is not writable")


def _inactive(store, criteria, days: int) -> list[dict]:
    limit = time.time() - days * 86400
    out = []
    for acct in store.accounts():
        if not criteria.account_ok(acct):
            continue
        last = store.last_activity(acct)
        if last is None or last < limit:
            out.append({"account": acct,
                        "last_activity": None if last is None else
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)),
                        "idle_days": None if last is None else int((time.time() - last) // 86400)})
    return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _render(summary) -> None:
    doc = summary.to_json()
    verb = {"test": "would prune (test mode, nothing changed)", "delete": "deleted", "move": "moved",
            "archive": "archived"}[summary.action]
    console.print(f"[bold]prune[/] {escape(summary.store)} ({summary.store_type}): {verb}; "
                  f"age source [bold]{summary.age_source}[/], older than {doc['cutoff'] or '-'}")
    if summary.resumed:
        console.print(f"resumed an interrupted run first: {escape(str(summary.resumed))}")
    table = Table(show_edge=False, pad_edge=False, padding=(0, 1), box=None)
    done_col = {"delete": "deleted", "move": "moved", "archive": "archived"}.get(summary.action)
    cols = ["account", "folder", "scanned", "selected", "bytes", *([done_col] if done_col else []), "failed", "kept"]
    for col in cols:
        if col in ("account", "folder"):
            table.add_column(col, min_width=8, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)

    def row(account: str, folder: str, counts: dict) -> list[str]:
        cells = [account, folder, str(counts["scanned"]), str(counts["selected"]), _size(counts["selected_bytes"])]
        if done_col:
            cells.append(str(counts[done_col]))
        return cells + [str(counts["failed"]), str(counts["kept"])]

    for t in summary.folders.values():
        if not (t.selected or t.failed or t.refused):
            continue
        table.add_row(*row(escape(t.account), escape(t.folder) + (" [red](refused)[/]" if t.refused else ""),
                           t.to_json()))
    table.add_row(*row("[bold]total[/]", "", doc["totals"]))
    console.print(table)
    for path in summary.archives[:20]:
        console.print(f"archive: {escape(path)}")
    if len(summary.archives) > 20:
        console.print(f"... and {len(summary.archives) - 20} more archives")
    for err in summary.errors[:20]:
        console.print(f"[red]failed[/] {escape(str(err))}")
    if summary.inactive is not None:
        console.print(f"[bold]inactive accounts[/]: {len(summary.inactive)}")
        for row in summary.inactive:
            console.print(f"  {escape(row['account'])}  last activity {row['last_activity'] or 'unknown'}")
    if summary.journal:
        console.print(f"journal: {escape(summary.journal)}")
    console.print(f"log: {escape(summary.log or '-')}")


@prune_app.command("restore")
@_json_errors
def restore_command(
    archives: Annotated[list[Path], typer.Argument(help="Archive zip(s) or directories of them.")],
    to: Annotated[str | None, typer.Option("--to", help="Store to restore into (default: the store recorded in the archive).")] = None,
    store_type: Annotated[str, typer.Option("--store-type")] = "auto",
    user: Annotated[list[str] | None, typer.Option("--user", help="IMAP account (repeatable).")] = None,
    password_file: Annotated[Path | None, typer.Option("--password-file")] = None,
    master_user: Annotated[str | None, typer.Option("--master-user")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Put archived messages back where they were (flags and dates kept; no duplicates on a rerun)."""
    from mailwarden.prune.locate import ImapLogin
    from mailwarden.prune.restore import restore

    login = ImapLogin(users=list(user or []), master_user=master_user)
    if password_file:
        try:
            login.password = password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read password file: {exc}") from None
    result = restore(archives, to=to, store_type=store_type, imap=login)
    if json_out:
        emit_json(result)
    else:
        console.print(f"restored {result['restored']} messages, {result['already_present']} already present, "
                      f"{result['failed']} failed, from {len(result['archives'])} archives")
        for err in result["errors"][:20]:
            err_console.print(f"[red]failed[/] {escape(str(err))}")
    if result["failed"]:
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(app: typer.Typer) -> None:
    app.add_typer(prune_app, name="prune")
