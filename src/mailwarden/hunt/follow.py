"""``hunt --follow``: tail a live log, keep rolling counters, alert when a suspect crosses the line.

Design:

- ``Tailer`` yields complete lines appended to a file. It survives rotation:
  when the path names a new file (inode changed) it first drains the old one,
  then reads the new one from its start; when the file shrinks (copytruncate)
  it starts again from 0. Lines are capped at ``MAX_LINE`` bytes. It yields
  ``None`` when there is nothing new, so the caller can run its timers.
- Each line goes through the dialect's reader and the shared
  ``SessionAssembler``; finished sessions, and AUTH/reject events as they
  happen, go into an in-memory index (``ingest.IndexWriter``).
- The "rolling counters" are the index tables trimmed to the last
  ``window_hours`` of log time; every ``interval`` seconds (and when the file
  goes idle) the batch hunt's SQL re-ranks them, so follow and batch agree.
- A suspect alerts once when it first reaches the alarm line, and again only
  if its score doubles. ``--exec CMD`` runs the command through the shell with
  ``MW_KIND``, ``MW_NAME``, ``MW_SCORE``, ``MW_SIGNALS``, ``MW_ACTION`` in the
  environment and the suspect's JSON on stdin; a failing command is reported,
  never fatal.
- Bounded for tests and scripts: ``max_alerts``, ``idle_exit`` (seconds without
  a new line), ``max_seconds`` and a ``stop`` event.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from rich.markup import escape

from mailwarden.config import SiteConfig
from mailwarden.errors import ConfigError, FormatNotRecognised, InputError
from mailwarden.hunt.engine import run_hunt
from mailwarden.hunt.ingest import IndexWriter
from mailwarden.hunt.model import Suspect
from mailwarden.hunt.settings import HuntSettings
from mailwarden.hunt.tables import Window
from mailwarden.logs.model import EventKind, LogLine
from mailwarden.output import console, dumps, err_console

MAX_LINE = 64 * 1024
READ_CHUNK = 1 << 16
EXEC_TIMEOUT = 60.0


class Tailer:
    """Complete lines appended to ``path``, across rotation and truncation."""

    def __init__(self, path: str | os.PathLike[str], *, from_start: bool = False) -> None:
        self.path = Path(path)
        self._fh = None
        self._inode: tuple[int, int] | None = None
        self._buf = b""
        self._skipping = False
        self._open(at_end=not from_start)
        self.rotations = 0
        self.truncations = 0

    def _open(self, *, at_end: bool) -> bool:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return False  # between rename and re-create during rotation
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc}") from None
        st = os.fstat(fh.fileno())
        self._fh, self._inode = fh, (st.st_dev, st.st_ino)
        if at_end:
            fh.seek(0, os.SEEK_END)
        self._buf, self._skipping = b"", False
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _drain(self) -> list[bytes]:
        out = []
        while self._fh is not None:
            chunk = self._fh.read(READ_CHUNK)
            if not chunk:
                break
            out.extend(self._split(chunk))
        return out

    def _split(self, chunk: bytes) -> list[bytes]:
        if self._skipping:  # the tail of a runaway line, already cut: drop up to its end
            end = chunk.find(b"\n")
            if end < 0:
                return []
            chunk, self._skipping = chunk[end + 1:], False
        parts = (self._buf + chunk).split(b"\n")
        self._buf = parts.pop()
        if len(self._buf) > MAX_LINE:  # a runaway line: keep its head, skip the rest
            parts.append(self._buf)
            self._buf, self._skipping = b"", True
        return [p[:MAX_LINE] for p in parts]

    def poll(self) -> list[str]:
        """Whatever complete lines arrived since the last call (may be empty)."""
        if self._fh is None:
            if not self._open(at_end=False):
                return []
        lines = self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) != self._inode:
            # Rotated: the old file is complete now (writers reopen the path), finish it first.
            lines += self._drain()
            if self._buf:
                lines.append(self._buf)
            self.close()
            self.rotations += 1
            if self._open(at_end=False):
                lines += self._drain()
        elif st is not None and self._fh is not None and st.st_size < self._fh.tell():
            self.truncations += 1
            self._fh.seek(0)
            self._buf, self._skipping = b"", False
            lines += self._drain()
        return [raw.decode("utf-8", "replace").rstrip("\r") for raw in lines]


def _pick_reader(path: Path, fmt: str | None):
    """The reader for ``path``; None when the file is still empty (decided on its first lines)."""
    from mailwarden.logs.readers import get_reader

    if fmt and fmt != "auto":
        return get_reader(fmt)
    try:
        with open(path, "rb") as fh:
            head = fh.read(READ_CHUNK).decode("utf-8", "replace").splitlines()[:50]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    return _detect(path, head) if head else None


def _detect(path, head: list[str]):
    from mailwarden.logs.readers import detect

    reader = detect(head[:50])
    if reader is None:
        raise FormatNotRecognised(f"{path}: log dialect not recognised (use --format)")
    return reader


def _make_clock(year: int | None, path: Path):
    from mailwarden.logs.timestamps import SyslogYear

    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = None
    return SyslogYear(year, mtime=mtime)


def _make_assembler():
    from mailwarden.logs.sessions import SessionAssembler

    return SessionAssembler()


class Follower:
    """The state of one follow run; ``feed_lines`` and ``evaluate`` are usable without a file."""

    def __init__(self, path: str, *, site: SiteConfig, settings: HuntSettings, reader,
                 window_hours: float = 24.0, year: int | None = None) -> None:
        if window_hours <= 0:
            raise ConfigError("--window must be a positive number of hours")
        self.path = path
        self.site, self.settings, self.reader = site, settings, reader
        self.window = dt.timedelta(hours=window_hours)
        self.con = duckdb.connect(":memory:")
        self.writer = IndexWriter(self.con, path)
        self.assembler = _make_assembler()
        self.clock = _make_clock(year, Path(path))
        self.lineno = 0
        self.latest: dt.datetime | None = None
        self.alerted: dict[tuple[str, str], float] = {}
        self._client_of_session: dict[str, str] = {}

    def feed_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.reader is None:
            self.reader = _detect(self.path, lines)
        numbered = []
        for text in lines:
            self.lineno += 1
            numbered.append(LogLine(self.path, self.lineno, text))
        kwargs = {"clock": self.clock} if self.clock is not None else {}
        for event in self.reader.events(numbered, self.path, **kwargs):
            if event.ts is not None:
                ts = event.ts.replace(tzinfo=None) if event.ts.tzinfo is None else \
                    event.ts.astimezone(dt.UTC).replace(tzinfo=None)
                if self.latest is None or ts > self.latest:
                    self.latest = ts
            ip = event.fields.get("client_ip")
            if event.session_key and ip:
                self._client_of_session[event.session_key] = ip
            if event.kind in (EventKind.AUTH_OK, EventKind.AUTH_FAIL, EventKind.REJECT):
                self.writer.add_event(event, self._client_of_session.get(event.session_key or ""))
            if event.kind is EventKind.DISCONNECT and event.session_key:
                self._client_of_session.pop(event.session_key, None)
            for session in self.assembler.feed(event) or ():
                self.writer.add_session(session)

    def finish(self) -> None:
        """The file ended for good (tests, --idle-exit): hand over the sessions still open."""
        for session in self.assembler.flush() or ():
            self.writer.add_session(session)

    def evaluate(self) -> list[Suspect]:
        """Re-rank the window; return suspects that newly crossed the line (or doubled)."""
        self.writer.flush()
        if self.latest is not None:
            self.writer.forget_before(self.latest - self.window)
        result, _ = run_hunt(self.con, site=self.site, settings=self.settings, window=Window(),
                             inputs=[self.path])
        fresh = []
        for suspect in result.over_alarm:
            before = self.alerted.get(suspect.key)
            if before is None or suspect.score >= 2 * before:
                self.alerted[suspect.key] = suspect.score
                fresh.append(suspect)
        return fresh


def run_exec(cmd: str, suspect: Suspect) -> int | None:
    """Run the user's alert command; its failure is reported, never raised."""
    env = dict(os.environ)
    env.update({
        "MW_KIND": suspect.kind, "MW_NAME": suspect.name, "MW_SCORE": f"{suspect.score:.1f}",
        "MW_SIGNALS": ",".join(e.signal for e in suspect.evidence),
        "MW_ACTION": suspect.next_action,
        "MW_FIRST_SEEN": str(suspect.first_seen or ""), "MW_LAST_SEEN": str(suspect.last_seen or ""),
    })
    try:
        done = subprocess.run(cmd, shell=True, input=dumps(suspect, indent=None), text=True,
                              env=env, timeout=EXEC_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        err_console.print(f"[yellow]--exec command timed out after {EXEC_TIMEOUT:g}s[/]")
        return None
    except OSError as exc:
        err_console.print(f"[yellow]--exec command could not run: {escape(str(exc))}[/]")
        return None
    if done.returncode != 0:
        err_console.print(f"[yellow]--exec command exited {done.returncode}[/]")
    return done.returncode


def _announce(suspect: Suspect, *, json_lines: bool) -> None:
    if json_lines:
        print(json.dumps({"alert": json.loads(dumps(suspect, indent=None))}, ensure_ascii=False),
              flush=True)
        return
    signals = "; ".join(f"{e.signal}: {e.text}" for e in suspect.evidence)
    console.print(f"[bold red]ALERT[/] {suspect.kind} [bold]{escape(suspect.name)}[/] "
                  f"score {suspect.score:.1f}: {escape(signals)} -> {escape(suspect.next_action)}")


def follow_log(path: str, *, site: SiteConfig, settings: HuntSettings, fmt: str | None = None,
               year: int | None = None, exec_cmd: str | None = None, from_start: bool = False,
               window_hours: float = 24.0, max_alerts: int | None = None,
               idle_exit: float | None = None, max_seconds: float | None = None,
               interval: float = 1.0, poll: float = 0.2, json_lines: bool = False,
               quiet: bool = False, stop: threading.Event | None = None,
               on_alert: Callable[[Suspect], None] | None = None) -> int:
    """Follow ``path`` until stopped; returns the number of alerts raised."""
    if not Path(path).exists():
        raise InputError(f"no such log file: {path}")
    follower = Follower(path, site=site, settings=settings, reader=_pick_reader(Path(path), fmt),
                        window_hours=window_hours, year=year)
    tailer = Tailer(path, from_start=from_start)
    if not quiet and not json_lines:
        dialect = follower.reader.name if follower.reader else "dialect from its first lines"
        err_console.print(f"following {escape(path)} ({dialect}); alarm line "
                          f"{settings.alarm:g}, window {window_hours:g} h. Ctrl-C to stop.")
    alerts = 0
    started = last_line = last_eval = next_eval = time.monotonic()
    dirty = False
    try:
        while stop is None or not stop.is_set():
            lines = tailer.poll()
            now = time.monotonic()
            if lines:
                follower.feed_lines(lines)
                last_line, dirty = now, True
            idle = not lines
            timed_out = (idle_exit is not None and now - last_line >= idle_exit) or \
                (max_seconds is not None and now - started >= max_seconds)
            if timed_out:
                follower.finish()
                dirty = True
            if dirty and (timed_out or (idle or now - last_eval >= interval) and now >= next_eval):
                eval_started = time.monotonic()
                for suspect in follower.evaluate():
                    alerts += 1
                    if not quiet:
                        _announce(suspect, json_lines=json_lines)
                    if on_alert is not None:
                        on_alert(suspect)
                    if exec_cmd:
                        run_exec(exec_cmd, suspect)
                    if max_alerts is not None and alerts >= max_alerts:
                        return alerts
                last_eval, dirty = time.monotonic(), False
                # A busy server's window is big: never spend more than a fifth of the time ranking.
                next_eval = last_eval + 4 * (last_eval - eval_started)
            if timed_out:
                return alerts
            if idle:
                time.sleep(poll)
    finally:
        tailer.close()
        follower.con.close()
    return alerts

