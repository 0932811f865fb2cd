"""The DuckDB log index: open or create it, load logs incrementally, answer `find --db`.

Tables (schema.sql, docs/log-index.md) mirror ``logs/model.py``. Postfix syslog files go
through the columnar SQL path (``columnar_postfix.py``); Exim and MDaemon logs through the
Python readers and ``SessionAssembler`` (``find.read_sessions``), inserted in Arrow batches.

Incremental rule, per input file:

* same size and fingerprint (sha256 of size + first 64 KiB + last 64 KiB) as a loaded
  source -> skipped; when the path differs (logrotate renamed ``mail.log`` to
  ``mail.log.1``) the stored path is updated ("renamed");
* same first bytes as a loaded source (hash of its first min(size, 64 KiB) bytes) but
  larger -> the file grew: its old rows are deleted and the whole file is loaded again, so
  that a session cut by the old end of file comes back whole ("reloaded");
* anything else -> a new source ("loaded").

A file that fails to load leaves nothing behind (its rows are deleted again). Input DuckDB
cannot read as is (invalid UTF-8, CR line ends, a line over 1 MiB, bzip2/xz,
stdin) is first copied to a clean temporary file (bad bytes replaced, long lines cut).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb

from mailwarden.errors import FormatNotRecognised, InputError, MailwardenError
from mailwarden.logs import columnar_postfix, linestore
from mailwarden.logs.columnar_postfix import ID_BASE, MAX_LINE_BYTES
from mailwarden.logs.model import LogLine, Recipient, Session, Transaction

# 2: raw lines in zstd blocks (line_blocks), not one row per line; 3: transactions in session
# order and the look-up tables message_ids / queue_ids, instead of two ART indexes
SCHEMA_VERSION = "3"
HEAD_BYTES = 64 * 1024
SANITIZE_CHUNK = 4 << 20
# find_sessions without a message id / queue id returns at most this many sessions.
DEFAULT_FIND_LIMIT = 1000
# DuckDB's memory cap while loading (see _limit_memory); the environment variable overrides it.
LOAD_MEMORY_LIMIT = os.environ.get("MAILWARDEN_INDEX_MEMORY", "3GB")

ProgressFn = Callable[[str, int], None]   # (what is happening, bytes of input finished)


class IndexUnavailable(InputError):
    """Raised when the index database cannot be opened (locked, not a DuckDB file, newer schema)."""


@dataclass(slots=True)
class SourceResult:
    """What happened to one input of `index_logs`."""

    path: str
    status: str                 # loaded, reloaded, skipped, renamed, failed
    dialect: str | None = None
    source_id: int | None = None
    size: int = 0
    lines: int = 0
    unparsed: int = 0
    other: int = 0
    sessions: int = 0
    seconds: float = 0.0
    cleaned: bool = False       # went through the clean temporary copy
    message: str | None = None


@dataclass(slots=True)
class IndexSummary:
    """The result of one `index_logs` run (``logs index --json``)."""

    db: str
    sources: list[SourceResult] = field(default_factory=list)
    seconds: float = 0.0
    # rows of an earlier, interrupted load (no sources row) deleted before loading (_drop_unrecorded)
    dropped_rows: int = 0

    @property
    def failed(self) -> list[SourceResult]:
        return [s for s in self.sources if s.status == "failed"]

    def totals(self) -> dict[str, int]:
        loaded = [s for s in self.sources if s.status in ("loaded", "reloaded")]
        return {
            "files": len(self.sources),
            "loaded": len(loaded),
            "skipped": sum(1 for s in self.sources if s.status in ("skipped", "renamed")),
            "failed": len(self.failed),
            "lines": sum(s.lines for s in loaded),
            "unparsed": sum(s.unparsed for s in loaded),
            "sessions": sum(s.sessions for s in loaded),
        }

    def to_json(self) -> dict:
        return {"db": self.db, "seconds": round(self.seconds, 3), "totals": self.totals(),
                "dropped_rows": self.dropped_rows, "sources": self.sources}


# -- opening ------------------------------------------------------------------------------------

def schema_sql() -> str:
    return resources.files("mailwarden.logs").joinpath("schema.sql").read_text(encoding="utf-8")


# The settings of find_sessions' connection (a few point look-ups, then closed):
# * one worker thread: each query touches one or two row groups per table, and the hand-off to
#   a second thread costs more than it saves; the queries run side by side on two cursors instead;
# * no asynchronous I/O threads: DuckDB 2.0 starts 8 of them with every database instance (and
#   joins them at close) for Parquet/CSV reads; its own file format is read synchronously, so for
#   a look-up they were only ~3 ms of thread start-up and shut-down;
# * session ids handed from a join to the scan of transactions as a list of up to
#   DEFAULT_FIND_LIMIT of them, which the row groups' min/max are checked against (DuckDB's
#   default, 50, would make a look-up matching more sessions read all of transactions).
# Settings a DuckDB does not know (async_threads is new in 2.0) are left out.
LOOKUP_CONFIG = {"threads": 1, "async_threads": 0, "dynamic_or_filter_threshold": DEFAULT_FIND_LIMIT}


def connect(db_path: str | os.PathLike, *, read_only: bool = False,
            threads: int | None = None, lookup: bool = False, bulk: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and for writing, create) the index; raises IndexUnavailable with a one-line reason.

    ``threads`` caps DuckDB's worker threads when this call creates the database instance (a
    file already open in this process keeps its instance and its settings).

    ``lookup=True`` (find_sessions): read-only with `LOOKUP_CONFIG`, and neither the progress
    bar setting nor the schema check here: the caller's first query does both (`_lookup`), in
    the same round trip.

    ``bulk=True`` (index_logs): the index is attached without write-ahead log (`_attach_bulk`);
    what is committed is on disk at the next CHECKPOINT, which the caller runs after each file.
    Cursors of such a connection must come from `columnar_postfix.cursor`."""
    path = str(db_path)
    read_only = read_only or lookup
    if read_only and not Path(path).exists():
        raise IndexUnavailable(f"{path}: no such index (create it with `mailwarden logs index LOG --db {path}`)")
    config = dict(LOOKUP_CONFIG) if lookup else ({"threads": threads} if threads else {})
    try:
        try:
            con = (bulk and not read_only and _attach_bulk(path, config)) or _duckdb_connect(path, read_only, config)
        except duckdb.ConnectionException:
            if not config:
                raise
            # open elsewhere in this process with other settings: share that instance as it is
            con = duckdb.connect(path, read_only=read_only)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IndexUnavailable(f"{path}: cannot open the index: {first}") from None
    if lookup:
        return con
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    try:
        if not read_only:
            tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                                 "WHERE database_name = current_database()").fetchall()}
            if tables and "meta" not in tables:  # someone else's database: leave it alone
                raise IndexUnavailable(f"{path}: a DuckDB database, but not a mailwarden log index")
            if tables:  # an index of another schema version: refuse before changing anything
                check_schema(con, path)
            ensure_schema(con)
        check_schema(con, path)
    except BaseException:
        con.close()
        raise
    return con


# The name the index gets in a bulk-load connection (see _attach_bulk).
BULK_ALIAS = "mw_index"


def _attach_bulk(path: str, config: dict) -> duckdb.DuckDBPyConnection | None:
    """The index attached to an in-memory instance with ``RECOVERY_MODE no_wal_writes``, or None
    where that cannot be done (a DuckDB without the option, or the file already open in this
    process: DuckDB refuses a second instance on it, and connect() then shares that one).

    Committed rows then go to the file once, at a checkpoint, instead of first into the
    write-ahead log: the raw-line blocks of the 1 GiB bench log (142 MiB, fewer rows than one
    row group, so never written optimistically) were serialised into the log, written, and
    written again at the checkpoint (0.5-0.6 s of CPU). A run killed before its checkpoint
    leaves the file as the last checkpoint left it: at most rows of a file whose `sources` row
    is missing, which index_logs deletes (`_drop_unrecorded`)."""
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error:
        return None
    try:
        quoted = "'" + path.replace("'", "''") + "'"
        con.execute(f"ATTACH {quoted} AS {BULK_ALIAS} (RECOVERY_MODE no_wal_writes)")
        con.execute(f"USE {BULK_ALIAS}")
    except duckdb.Error:
        con.close()
        return None
    return con


def _duckdb_connect(path: str, read_only: bool, config: dict) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path, read_only=read_only, config=config)
    except duckdb.InvalidInputException as exc:
        optional = {key for key in config if key != "threads"}
        if not optional or "recogni" not in str(exc).lower():
            raise
        # an older DuckDB that lacks one of the optional settings
        return duckdb.connect(path, read_only=read_only,
                              config={key: value for key, value in config.items() if key not in optional})


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in schema_sql().split(";\n"):
        if statement.strip() and not all(line.strip().startswith("--") or not line.strip()
                                         for line in statement.splitlines()):
            con.execute(statement)
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])


def check_schema(con: duckdb.DuckDBPyConnection, path: str) -> None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.Error:
        raise IndexUnavailable(f"{path}: not a mailwarden log index") from None
    if row is None or row[0] != SCHEMA_VERSION:
        raise IndexUnavailable(
            f"{path}: index schema version {row[0] if row else '?'} is not {SCHEMA_VERSION}; re-create it "
            f"(delete the file and run `mailwarden logs index LOG... --db {path}` again)")


# -- fingerprints ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Fingerprint:
    size: int
    fingerprint: str
    head_hash: str
    head_len: int


def fingerprint_file(path: str) -> Fingerprint:
    """size, sha256(size + first 64 KiB + last 64 KiB), sha256(first min(size, 64 KiB))."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(HEAD_BYTES)
        if size > HEAD_BYTES:
            fh.seek(max(HEAD_BYTES, size - HEAD_BYTES))
            tail = fh.read(HEAD_BYTES)
        else:
            tail = b""
    whole = hashlib.sha256(str(size).encode() + b"\0" + head + b"\0" + tail).hexdigest()
    return Fingerprint(size, whole, hashlib.sha256(head).hexdigest(), len(head))


def _head_hash(path: str, length: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(length)).hexdigest()


# -- input preparation -------------------------------------------------------------------------

def _compression(path: str) -> str | None:
    from mailwarden.logs.sources import sniff_compression

    with open(path, "rb") as fh:
        return sniff_compression(fh.read(8))


def _head_text(path: str, compression: str | None, count: int = 50) -> list[str]:
    from mailwarden.logs.sources import LogSource, head_lines

    return head_lines(LogSource(path, compression=compression), count)


def clean_copy(path: str, out_dir: str, compression: str | None) -> tuple[str, int, bool]:
    """Stream ``path`` (decompressed) into a clean UTF-8 file; returns (its path, lines cut, damaged).

    ``damaged``: the compressed stream broke off (truncated or corrupt); what came before the
    damage was kept.

    Invalid UTF-8 becomes U+FFFD, CR LF becomes LF and a lone CR a space (DuckDB's reader
    would split lines there and shift every line number), lines longer than MAX_LINE_BYTES are
    cut. Line numbers stay those of the original.
    """
    from mailwarden.logs.sources import LogSource, open_binary

    target = os.path.join(out_dir, "clean.log")
    cut = 0
    damaged = False
    stream = open_binary(LogSource(path, compression=compression))
    with stream, open(target, "wb") as out:
        carry = b""
        while True:
            try:
                chunk = stream.read(SANITIZE_CHUNK)
            except (OSError, EOFError, ValueError):  # corrupt archive: keep what was read
                chunk = b""
                damaged = True
            data = carry + chunk
            if not chunk:
                carry = b""
            else:
                last = data.rfind(b"\n")
                if last < 0 and len(data) <= 4 * MAX_LINE_BYTES:
                    carry = data
                    continue
                if last < 0:  # one enormous line: keep its head, drop the rest as it streams
                    data, carry = data[:MAX_LINE_BYTES], b""
                    cut += 1
                    out.write(_clean(data) + b"\n")
                    # skip to the end of this line
                    while True:
                        more = stream.read(SANITIZE_CHUNK)
                        if not more:
                            break
                        nl = more.find(b"\n")
                        if nl >= 0:
                            carry = more[nl + 1:]
                            break
                    continue
                data, carry = data[: last + 1], data[last + 1:]
            if data:
                parts = data.split(b"\n")
                if max(map(len, parts)) > MAX_LINE_BYTES:
                    cut += sum(1 for p in parts if len(p) > MAX_LINE_BYTES)
                    parts = [p[:MAX_LINE_BYTES] for p in parts]
                    data = b"\n".join(parts)
                out.write(_clean(data))
            if not chunk:
                break
    return target, cut, damaged


def _clean(data: bytes) -> bytes:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b" ")
    return data.decode("utf-8", "replace").encode("utf-8")


# -- loading ----------------------------------------------------------------------------------------

def _syslog_year(path: str, year: int | None) -> tuple[int | None, dt.date | None]:
    """(year of the first line if given, the file's mtime) for year-less syslog stamps."""
    if year:
        return year, None
    try:
        return None, dt.datetime.fromtimestamp(os.stat(path).st_mtime).date()
    except OSError:
        return None, dt.date.today()


def _detect_dialect(path: str, compression: str | None, fmt: str) -> str:
    if fmt and fmt != "auto":
        return fmt
    from mailwarden.logs.readers import detect

    reader = detect(_head_text(path, compression))
    if reader is None:
        raise FormatNotRecognised(f"{path}: log format not recognised (use --format)")
    return reader.dialect


def _next_source_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(source_id), 0) + 1 FROM sources").fetchall()[0][0])


def _delete_source(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    for table in SOURCE_TABLES:
        con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])


def _match_loaded(con: duckdb.DuckDBPyConnection, path: str, fp: Fingerprint) -> tuple[str, int | None, str | None]:
    """('skip'|'grew'|'new', source_id, stored path) for one input."""
    row = con.execute("SELECT source_id, path FROM sources WHERE size = ? AND fingerprint = ? LIMIT 1",
                      [fp.size, fp.fingerprint]).fetchone()
    if row:
        return "skip", row[0], row[1]
    candidates = con.execute(
        "SELECT source_id, path, size, head_hash FROM sources WHERE size < ? ORDER BY source_id DESC",
        [fp.size]).fetchall()
    hashes: dict[int, str] = {}
    for source_id, stored_path, size, head_hash in candidates:
        length = min(size, HEAD_BYTES)
        if length == 0:
            continue
        if length not in hashes:
            hashes[length] = _head_hash(path, length)
        if hashes[length] == head_hash:
            return "grew", source_id, stored_path
    return "new", None, None


def index_logs(db_path: str | os.PathLike, paths: Iterable[str], *, year: int | None = None,
               fmt: str = "auto", progress: ProgressFn | None = None, transcripts: bool = True,
               lookup_tables: bool = True, columns: Mapping[str, Collection[str]] | None = None) -> IndexSummary:
    """Load logs into the index at ``db_path`` (created if needed). Never raises for one bad file:
    its result says ``failed`` and why; raises IndexUnavailable when the database itself is unusable.

    ``transcripts=False`` (a hunt's throw-away index): Postfix logs keep no raw lines and no
    ``session_lines``, so sessions have no transcript; every other table is the same.
    ``lookup_tables=False`` (the same): the look-up tables by Message-ID and queue id
    (message_ids, queue_ids), which only point look-ups use, stay empty; nor are the AUTH rows
    sorted for look-ups (columnar_postfix.store_statements).
    ``columns`` (the same, for a new index only): {table: names} of the columns to keep; the
    tables named lose every other column but source_id, so nothing is built or stored for them
    (a query of a dropped column fails to bind, never reads NULLs that were not logged)."""
    from mailwarden.logs.sources import STDIN, order_rotated

    if columns and lookup_tables:
        raise ValueError("a narrowed index (columns=...) has no look-up tables: pass lookup_tables=False")
    started = time.perf_counter()
    summary = IndexSummary(db=str(db_path))
    con = connect(db_path, bulk=True)
    spill_dir = tempfile.mkdtemp(prefix="mailwarden-spill-")
    done_bytes = 0
    write_back = _WriteBack(db_path)
    try:
        if columns:
            _narrow(con, str(db_path), columns)
        summary.dropped_rows = _drop_unrecorded(con)
        _limit_memory(con, spill_dir)
        for path in order_rotated([str(p) for p in paths]):
            result = SourceResult(path=path, status="failed")
            summary.sources.append(result)
            t0 = time.perf_counter()
            tmpdir = tempfile.mkdtemp(prefix="mailwarden-index-")
            try:
                if path == STDIN:
                    path_for_read = os.path.join(tmpdir, "stdin.log")
                    _copy_stdin(path_for_read)
                    result.path = "<stdin>"
                else:
                    path_for_read = path
                if not Path(path_for_read).is_file():
                    raise InputError(f"{path}: not a readable file")
                if progress:
                    progress(f"{os.path.basename(result.path)}: fingerprint", done_bytes)
                fp = fingerprint_file(path_for_read)
                result.size = fp.size
                verdict, old_id, old_path = _match_loaded(con, path_for_read, fp)
                if verdict == "skip":
                    result.source_id = old_id
                    stored = os.path.abspath(path) if path != STDIN else result.path
                    if old_path != stored and path != STDIN and not Path(old_path or "").exists():
                        con.execute("UPDATE sources SET path = ? WHERE source_id = ?", [stored, old_id])
                        result.status, result.message = "renamed", f"already loaded as {old_path}"
                    else:
                        result.status, result.message = "skipped", f"already loaded as {old_path}"
                    continue
                result.status = _load_one(con, path_for_read, result, fp, year=year, fmt=fmt, transcripts=transcripts,
                                          lookups=lookup_tables, tmpdir=tmpdir,
                                          replace_id=old_id if verdict == "grew" else None,
                                          progress=progress, done_bytes=done_bytes)
            except MailwardenError as exc:
                result.status, result.message = "failed", str(exc)
            except (OSError, UnicodeError, duckdb.Error) as exc:
                result.status, result.message = "failed", f"{path}: {_one_line(exc)}"
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
                if result.status in ("loaded", "reloaded", "renamed"):
                    _checkpoint(con, db_path)  # on disk now, whatever happens to the next file
                result.seconds = round(time.perf_counter() - t0, 3)
                done_bytes += result.size
                if progress:
                    progress(f"{os.path.basename(result.path)}: {result.status}", done_bytes)
        _checkpoint(con, db_path)
    finally:
        write_back.stop()
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


class _WriteBack:
    """Has the kernel write the index file's new pages to disk every WRITE_BACK_EVERY seconds
    while a load runs (fdatasync in a thread of its own), rather than all of them in the
    checkpoint at its end, when nothing else runs: Linux keeps them in memory until the sync
    otherwise (0.19 s of waiting at the end of the 1 GiB bench log's load). A failure is left
    to that checkpoint to report."""

    def __init__(self, db_path) -> None:
        self._stopping = threading.Event()
        try:
            self._fd: int | None = os.open(db_path, os.O_RDONLY)
        except OSError:
            self._fd, self._thread = None, None
            return
        self._thread = threading.Thread(target=self._run, name="mw-writeback", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)   # not every platform has fdatasync
        while not self._stopping.wait(WRITE_BACK_EVERY):
            with contextlib.suppress(OSError):
                sync(self._fd)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


WRITE_BACK_EVERY = 0.5


def _checkpoint(con: duckdb.DuckDBPyConnection, db_path) -> None:
    """Write what is committed to the file (a bulk connection has no write-ahead log)."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:  # a full disk, say: the loads since the last checkpoint are not kept
        raise IndexUnavailable(f"{db_path}: cannot write the index: {_one_line(exc)}") from None


# Every table with rows per loaded file (sources last: its row says the file is loaded).
SOURCE_TABLES = ("sessions", "transactions", "message_ids", "queue_ids", "recipients", "auth_events", "rejects",
                 "line_blocks", "session_lines", "sources")


def _drop_unrecorded(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the rows of files that have no `sources` row: what a load killed half-way left
    (a file's rows go in before its sources row, and a checkpoint may have written some of them
    to disk). The file is loaded again, under a new or the same source id; without this its
    rows would be there twice. Returns the number of rows deleted."""
    dropped = 0
    for table in SOURCE_TABLES[:-1]:
        ((n,),) = con.execute(f"DELETE FROM {table} WHERE source_id NOT IN (SELECT source_id FROM sources)").fetchall()
        dropped += int(n)
    return dropped


def _narrow(con: duckdb.DuckDBPyConnection, path: str, columns: Mapping[str, Collection[str]]) -> None:
    """Drop every column of the named tables but ``columns[table]`` and source_id (which
    loading and reloading need). Only a new, empty index: the columns' data would be lost."""
    (loaded,) = con.execute("SELECT count(*) FROM sources").fetchone()
    if loaded:
        raise ValueError(f"{path}: index_logs(columns=...) narrows only a new index")
    have = columnar_postfix.index_columns(con)
    for table, keep in columns.items():
        for column in sorted(have.get(table, ())):
            if column not in keep and column != "source_id":
                con.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')


def _limit_memory(con: duckdb.DuckDBPyConnection, spill_dir: str) -> None:
    """Cap DuckDB's memory during a load and let it spill to ``spill_dir`` beyond the cap.

    Without a cap DuckDB keeps every temp table of the parse in RAM (3.7 GiB peak RSS for the
    1 GiB bench log); at 3 GB it loaded as fast with a 3.1 GiB peak, while 2 GB (107 s) and
    1 GB (95 s) made the big aggregates spill and cost about 2x (docs/log-index.md).
    """
    with contextlib.suppress(duckdb.Error):
        con.execute(f"SET temp_directory = '{spill_dir.replace(chr(39), chr(39) * 2)}'")
        con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _copy_stdin(target: str) -> None:
    import sys

    with open(target, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)


def _load_one(con: duckdb.DuckDBPyConnection, path: str, result: SourceResult, fp: Fingerprint, *,
              transcripts: bool = True, lookups: bool = True,
              year: int | None, fmt: str, tmpdir: str, replace_id: int | None,
              progress: ProgressFn | None, done_bytes: int) -> str:
    compression = _compression(path)
    dialect = _detect_dialect(path, compression, fmt)
    result.dialect = dialect
    first_year, anchor = _syslog_year(path, year)
    stored_path = os.path.abspath(path) if result.path != "<stdin>" else "<stdin>"
    # DuckDB reads plain and gzip files itself; anything else goes through the clean copy.
    direct = compression in (None, "gzip") and "\r" not in "".join(_head_text(path, compression, 20))
    attempts = ["direct", "clean"] if direct else ["clean"]
    last_error: Exception | None = None
    for attempt in attempts:
        # No explicit transaction: DuckDB bulk-loads much faster in autocommit, so a failed
        # attempt is undone by deleting its source_id's rows instead of a rollback.
        if replace_id is not None:
            _delete_source(con, replace_id)
        source_id = replace_id if replace_id is not None else _next_source_id(con)
        try:
            if attempt == "direct":
                read_path, comp, cut, damaged = path, ("gzip" if compression == "gzip" else "none"), 0, False
            else:
                if progress:
                    progress(f"{os.path.basename(result.path)}: cleaning", done_bytes)
                read_path, cut, damaged = clean_copy(path, tmpdir, compression)
                comp = "none"
                result.cleaned = True
            label = f"{os.path.basename(result.path)}: parsing ({dialect})"
            if progress:
                progress(label, done_bytes)
            if dialect == "postfix":
                # the bar moves with the slices read (plain files: their bytes are the file's)
                advance = ((lambda n, label=label, start=done_bytes: progress(label, start + min(n, fp.size)))
                           if progress and comp == "none" and not result.cleaned else None)
                counts = columnar_postfix.load_file(con, read_path, source_id=source_id, source=stored_path,
                                                    transcripts=transcripts, lookups=lookups,
                                                    first_year=first_year, anchor=anchor,
                                                    compression=comp, progress=advance)
            else:
                counts = _load_with_readers(con, read_path, comp, source_id=source_id, source=stored_path,
                                            dialect=dialect, year=first_year, mtime_path=path)
                if lookups:
                    con.execute(columnar_postfix.lookup_statement(source_id))
            sessions = con.execute("SELECT count(*) FROM sessions WHERE source_id = ?", [source_id]).fetchall()[0][0]
            con.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [source_id, stored_path, fp.size, fp.fingerprint, fp.head_hash, dialect,
                 dt.datetime.now(dt.UTC).replace(tzinfo=None), counts["lines"], counts["unparsed"] + cut,
                 counts.get("other", 0), counts.get("first_year", first_year), sessions])
        except (duckdb.Error, columnar_postfix.NeedsCleanCopy) as exc:  # -> the clean copy, if not tried yet
            _delete_source(con, source_id)
            last_error = exc
            continue
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                _delete_source(con, source_id)
            raise
        if counts["lines"] == 0 and compression and fp.size > 0:
            # DuckDB's gzip reader stops quietly at a truncated stream: a non-empty compressed
            # file that yields no line is damaged, not an empty log.
            _delete_source(con, source_id)
            raise InputError(f"{result.path}: no log line could be read from this {compression} file "
                             "(truncated or corrupt?)")
        result.source_id = source_id
        result.lines, result.unparsed = counts["lines"], counts["unparsed"] + cut
        result.other, result.sessions = counts.get("other", 0), sessions
        notes = []
        if damaged or counts.get("damaged"):
            notes.append(f"the {compression} stream is damaged (truncated or corrupt): only the "
                         f"{counts['lines']} line(s) before the damage were loaded")
        if cut:
            notes.append(f"{cut} over-long line(s) cut to {MAX_LINE_BYTES} bytes")
        if notes:
            result.message = "; ".join(notes)
        return "reloaded" if replace_id is not None else "loaded"
    raise InputError(f"{result.path}: {_one_line(last_error) if last_error else 'cannot be loaded'}")


# -- the Python-reader path (Exim, MDaemon) ------------------------------------------------------

def _load_with_readers(con: duckdb.DuckDBPyConnection, read_path: str, compression: str, *,
                       source_id: int, source: str, dialect: str, year: int | None,
                       mtime_path: str) -> dict[str, int]:
    """Raw lines into zstd blocks (linestore), sessions by the Python readers + SessionAssembler
    (Arrow batches)."""
    import pyarrow as pa

    from mailwarden.logs.find import read_sessions

    damage: list[bool] = []
    total = linestore.write_file(con, source_id, read_path, compression=compression,
                                 on_damage=lambda: damage.append(True))
    unparsed = 0

    def count_unparsed(_line: LogLine) -> None:
        nonlocal unparsed
        unparsed += 1

    batch: list[Session] = []
    have = columnar_postfix.index_columns(con)  # fewer in a narrowed index (index_logs' columns)
    if year is None and read_path != mtime_path:  # the clean copy is new: anchor on the original's mtime
        with contextlib.suppress(OSError):
            st = os.stat(mtime_path)
            os.utime(read_path, (st.st_atime, st.st_mtime))
    for session in read_sessions([read_path], fmt=dialect, year=year, unparsed_sink=count_unparsed):
        batch.append(session)
        if len(batch) >= 5000:
            _insert_sessions(con, pa, batch, source_id, source, have)
            batch = []
    if batch:
        _insert_sessions(con, pa, batch, source_id, source, have)
    return {"lines": total, "unparsed": unparsed, "other": 0, "damaged": bool(damage)}


def _utc_naive(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None or ts.tzinfo is None:
        return ts
    return ts.astimezone(dt.UTC).replace(tzinfo=None)


def _insert_sessions(con, pa, sessions: list[Session], source_id: int, source: str,
                     have: Mapping[str, Collection[str]]) -> None:
    """The rows of ``sessions`` into the index, only the columns each table ``have``s."""
    base = source_id * ID_BASE
    cols: dict[str, dict[str, list]] = {t: {} for t in ("sessions", "transactions", "recipients",
                                                          "auth_events", "rejects", "session_lines")}

    def add(table: str, **values) -> None:
        for key, value in values.items():
            cols[table].setdefault(key, []).append(value)

    for session in sessions:
        first = session.lines[0].lineno if session.lines else 0
        sid = base + first
        add("sessions", session_id=sid, source_id=source_id, dialect=session.dialect, source=source,
            kind=session.kind, start_ts=_utc_naive(session.start), end_ts=_utc_naive(session.end),
            ts_is_local=session.ts_is_local, host=session.host, service=session.service, pid=None,
            client_ip=session.client_ip, client_port=session.client_port, client_name=session.client_name,
            helo=session.helo, server_ip=session.server_ip, server_port=session.server_port,
            tls=session.tls, tls_info=session.tls_info, auth_user=session.auth_user,
            auth_method=session.auth_method, auth_failures=session.auth_failures,
            local_user=session.local_user, trusted=session.trusted, outcome=session.outcome,
            commands=session.commands, first_lineno=first,
            last_lineno=session.lines[-1].lineno if session.lines else 0,
            n_lines=len(session.lines), defects=list(session.defects) or None)
        for line in session.lines:
            add("session_lines", session_id=sid, source_id=source_id, lineno=line.lineno)
        for user in session.auth_failure_users or ([None] * session.auth_failures):
            add("auth_events", session_id=sid, source_id=source_id, ts=_utc_naive(session.start),
                client_ip=session.client_ip, user=user, method=session.auth_method, ok=False,
                reason=None, lineno=first)
        if session.auth_user:
            add("auth_events", session_id=sid, source_id=source_id, ts=_utc_naive(session.start),
                client_ip=session.client_ip, user=session.auth_user, method=session.auth_method,
                ok=True, reason=None, lineno=first)
        for n, txn in enumerate(session.transactions):
            tid = base + (txn.lines[0].lineno if txn.lines else first) * 1 + (0 if txn.lines else n)
            add("transactions", session_id=sid, source_id=source_id, txn_id=tid, queue_id=txn.queue_id,
                message_id=txn.message_id, sender=txn.sender, size=txn.size, accepted=txn.accepted,
                reject_reason=txn.reject_reason, subject=txn.subject, start_ts=_utc_naive(txn.start),
                end_ts=_utc_naive(txn.end), spam_score=txn.spam_score, spam_threshold=txn.spam_threshold,
                nrcpt=len(txn.recipients) or None, removed=False)
            for rcpt in txn.recipients:
                add("recipients", session_id=sid, source_id=source_id, txn_id=tid, queue_id=txn.queue_id,
                    address=rcpt.address, orig_address=rcpt.orig_address, status=rcpt.status,
                    relay=rcpt.relay, dsn=rcpt.dsn, detail=rcpt.detail, ts=_utc_naive(rcpt.ts),
                    lineno=txn.lines[-1].lineno if txn.lines else first)
            if txn.reject_reason and not txn.accepted:
                add("rejects", session_id=sid, source_id=source_id, ts=_utc_naive(txn.start),
                    client_ip=session.client_ip, client_name=session.client_name, stage=None,
                    action="reject", queue_id=txn.queue_id, code=txn.reject_reason[:3] if txn.reject_reason[:3].isdigit() else None,
                    dsn=None, reason=txn.reject_reason, sender=txn.sender,
                    recipient=txn.recipients[0].address if txn.recipients else None, helo=session.helo,
                    proto=None, lineno=txn.lines[0].lineno if txn.lines else first)
    for table, columns in cols.items():
        if not columns:
            continue
        arrow = pa.table({name: values for name, values in columns.items() if name in have[table]})
        con.register("mw_batch", arrow)
        try:
            names = ", ".join(arrow.column_names)
            con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM mw_batch").fetchall()
        finally:
            con.unregister("mw_batch")


# -- queries --------------------------------------------------------------------------------------

def session_key(dialect: str, source: str, first_lineno: int) -> str:
    """The model's string id for an indexed session."""
    return f"{dialect}:{source}:{first_lineno}"


def _aware(ts: dt.datetime | None, is_local: bool) -> dt.datetime | None:
    if ts is None or is_local:
        return ts
    return ts.replace(tzinfo=dt.UTC)


def find_sessions(db_path: str | os.PathLike, message_id: str | None = None, queue_id: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None, *,
                  limit: int = DEFAULT_FIND_LIMIT,
                  con: duckdb.DuckDBPyConnection | None = None) -> list[Session]:
    """Sessions holding the message (by Message-ID and/or queue id), within [since, until].

    Returns `Session` objects with their transactions, recipients and raw lines, oldest first.
    ``since``/``until`` compare with the stored timestamps (server-local or UTC, see
    ts_is_local); aware datetimes are converted to UTC first.
    """
    own = con is None
    if con is None:
        con = connect(db_path, lookup=True)
    try:
        return _find(con, str(db_path), message_id, queue_id, since, until, limit, checked=not own)
    finally:
        if own:
            con.close()


SESSION_COLUMNS = """session_id, source_id, dialect, source, kind, start_ts, end_ts, ts_is_local, host, service,
               client_ip, client_port, client_name, helo, server_ip, server_port, tls, tls_info,
               auth_user, auth_method, auth_failures, local_user, trusted, outcome, commands,
               first_lineno, defects"""
_AUTH_FAILURES = [c.strip() for c in SESSION_COLUMNS.split(",")].index("auth_failures")
TRANSACTION_COLUMNS = """session_id, txn_id, queue_id, message_id, sender, size, accepted, reject_reason, subject,
                   start_ts, end_ts, spam_score, spam_threshold"""


def _find(con, path, message_id, queue_id, since, until, limit, *, checked=True) -> list[Session]:
    """``checked``: the connection's schema version was checked already (else the first query does it)."""
    message_id = message_id.strip().strip("<>").strip() if message_id else None
    queue_id = queue_id.strip() if queue_id else None
    time_sql, time_params = "", []
    if since is not None:
        time_sql += " AND s.end_ts >= ?"
        time_params.append(_utc_naive(since) if since.tzinfo else since)
    if until is not None:
        time_sql += " AND s.start_ts <= ?"
        time_params.append(_utc_naive(until) if until.tzinfo else until)
    if message_id or queue_id:
        # Round 1, one query: the transactions of every session holding a matching one.
        if message_id:
            txns = _holding(_lookup(con, path, "message_ids", "message_id = ?", [message_id], check=not checked),
                            message_id, queue_id)
            if not txns:  # Message-IDs are compared exactly first; then without case
                txns = _holding(_lookup(con, path, "message_ids", "lower(message_id) = lower(?)", [message_id]),
                                message_id.lower(), queue_id, fold=True)
        else:
            txns = _lookup(con, path, "queue_ids", "queue_id = ?", [queue_id], check=not checked)
        if not txns:
            return []
        # Round 2: the sessions and the rest, the ids as literals: DuckDB then skips every row
        # group whose min/max excludes them (these tables are stored in session order).
        ids = _in_list(sorted({r[0] for r in txns}))
        sessions_sql = (f"SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.session_id IN {ids}{time_sql}",
                        time_params)
        rows, parts = _details(con, ids, sessions_sql=sessions_sql, limit=limit)
        parts["transactions"] = sorted(txns, key=lambda r: r[1])   # ORDER BY txn_id
    else:
        if not checked:
            _check_first(con, path)
        rows = con.execute(_sessions_sql("true" + time_sql, limit), time_params).fetchall()
        if not rows:
            return []
        rows, parts = _details(con, _in_list([r[0] for r in rows]), rows=rows)
    if not rows:
        return []
    return _build_sessions(rows, parts)


def _lookup(con, path: str, keys: str, where: str, params: list, *, check: bool = False) -> list[tuple]:
    """TRANSACTION_COLUMNS rows of the transactions of every session that ``where`` finds in the
    look-up table ``keys`` (message_ids or queue_ids), in one query. The look-up table is sorted
    by its key within each loaded file, and transactions are stored in session order, so DuckDB
    reads one row group of each for each file: it hands the session ids of the inner look-up to
    the scan of transactions, whose min/max per row group skip the others. ``check``: the same
    round trip turns the progress bar off and reads the schema version (IndexUnavailable as
    `check_schema` says, when it is not ours)."""
    sql = (f"SELECT {TRANSACTION_COLUMNS} FROM transactions "
           f"WHERE session_id IN (SELECT session_id FROM {keys} WHERE {where})")
    if not check:
        return con.execute(sql, params).fetchall()
    try:
        found = con.execute(
            "SET enable_progress_bar = false; "
            "SELECT v.value, t.* FROM (SELECT value FROM meta WHERE key = 'schema_version') v "
            f"LEFT JOIN ({sql}) t ON true", params).fetchall()
    except duckdb.Error:
        _check_first(con, path)   # raises when it is not an index of this version
        return con.execute(sql, params).fetchall()
    if not found or found[0][0] != SCHEMA_VERSION:
        check_schema(con, path)
    return [r[1:] for r in found if r[1] is not None]   # the row of an empty LEFT JOIN is all NULL


def _holding(txns: list[tuple], message_id: str, queue_id: str | None, *, fold: bool = False) -> list[tuple]:
    """The transactions of the sessions among ``txns``' that hold one transaction with both the
    Message-ID (``fold``: compared in lower case) and, when given, the queue id: the look-up
    table found them by Message-ID alone."""
    if queue_id is None:
        return txns
    held = {r[0] for r in txns if r[2] == queue_id and ((r[3] or "").lower() if fold else r[3]) == message_id}
    return [r for r in txns if r[0] in held]


def _check_first(con, path: str) -> None:
    """The first statement of a `connect(lookup=True)` connection that does not start with `_lookup`."""
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    check_schema(con, path)


def _session_order(row: tuple) -> tuple:
    """ORDER BY start_ts, session_id (NULLS LAST, DuckDB's default) in Python."""
    return (row[5] is None, row[5] or dt.datetime.min, row[0])


def _sessions_sql(where: str, limit: int) -> str:
    return f"""
        SELECT {SESSION_COLUMNS}
        FROM sessions s WHERE {where} ORDER BY start_ts, session_id LIMIT {int(limit)}
    """


def _detail_queries(ids: str, params: list) -> dict[str, tuple[str, list]]:
    """The per-session queries; ``ids`` is a literal list or a subquery taking ``params``."""
    return {
        "transactions": (f"""
            SELECT {TRANSACTION_COLUMNS}
            FROM transactions WHERE session_id IN {ids} ORDER BY txn_id""", params),
        "recipients": (f"""
            SELECT txn_id, address, status, relay, dsn, detail, ts, orig_address, session_id
            FROM recipients WHERE session_id IN {ids} ORDER BY lineno""", params),
        "auth": (f"""
            SELECT session_id, list(user ORDER BY lineno) FILTER (WHERE user IS NOT NULL)
            FROM auth_events WHERE session_id IN {ids} AND NOT ok GROUP BY session_id""", params),
        "noqueue": (f"""
            SELECT session_id, ts, sender, recipient, code, dsn, reason, lineno
            FROM rejects WHERE session_id IN {ids} AND queue_id IS NULL ORDER BY lineno""", params),
        "lines": (f"""
            SELECT session_id, source_id, lineno FROM session_lines WHERE session_id IN {ids}""", params),
    }


def _details(con, ids: str, *, rows: list[tuple] | None = None, sessions_sql: tuple[str, list] | None = None,
             limit: int = DEFAULT_FIND_LIMIT) -> tuple[list[tuple], dict[str, list]]:
    """(session rows, the other parts) for the sessions ``ids``, on two cursors side by side (two
    cores): this thread the sessions (``sessions_sql``, sorted and cut to ``limit`` here: an
    ORDER BY cost DuckDB 0.3-0.6 ms) or the transactions, then recipients and AUTH failures; a
    worker the transcript lines and the NOQUEUE rejects. AUTH failures are read only when a
    session counts some (sessions.auth_failures is the number of its failed auth_events)."""
    from concurrent.futures import ThreadPoolExecutor

    queries = _detail_queries(ids, [])

    def worker() -> dict[str, list]:
        cursor = con.cursor()
        try:
            lines = cursor.execute(*queries["lines"]).fetchall()
            return {"lines": (lines, _line_texts(cursor, lines)),
                    "noqueue": cursor.execute(*queries["noqueue"]).fetchall()}
        finally:
            cursor.close()

    parts: dict[str, list] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(worker)
        cursor = con.cursor()
        try:
            if sessions_sql is not None:
                rows = sorted(cursor.execute(*sessions_sql).fetchall(), key=_session_order)[:limit]
            else:
                parts["transactions"] = cursor.execute(*queries["transactions"]).fetchall()
            parts["recipients"] = cursor.execute(*queries["recipients"]).fetchall()
            wanted = any(r[_AUTH_FAILURES] for r in rows)
            parts["auth"] = cursor.execute(*queries["auth"]).fetchall() if wanted else []
        finally:
            cursor.close()
        parts.update(other.result())
    return rows, parts


def _line_texts(cursor, wanted: list[tuple]) -> dict[tuple[int, int], str]:
    """(source_id, lineno) -> text for the (session_id, source_id, lineno) rows of session_lines."""
    return linestore.line_texts(cursor, ((source_id, lineno) for _sid, source_id, lineno in wanted))


def _build_sessions(rows: list[tuple], parts: dict[str, list]) -> list[Session]:
    sessions: dict[int, Session] = {}
    local_of: dict[int, bool] = {}
    for r in rows:
        local = bool(r[7])
        local_of[r[0]] = local
        sessions[r[0]] = Session(
            dialect=r[2], session_id=session_key(r[2], r[3], r[25]), source=r[3], kind=r[4],
            start=_aware(r[5], local), end=_aware(r[6], local), ts_is_local=local, host=r[8], service=r[9],
            client_ip=r[10], client_port=r[11], client_name=r[12], helo=r[13], server_ip=r[14],
            server_port=r[15], tls=bool(r[16]), tls_info=r[17], auth_user=r[18], auth_method=r[19],
            auth_failures=r[20] or 0, local_user=r[21], trusted=r[22], outcome=r[23], commands=r[24],
            defects=list(r[26] or []))
    txns: dict[int, Transaction] = {}
    for r in parts["transactions"]:
        if r[0] not in sessions:
            continue
        local = local_of[r[0]]
        txn = Transaction(queue_id=r[2], message_id=r[3], sender=r[4], size=r[5], accepted=bool(r[6]),
                          reject_reason=r[7], subject=r[8], start=_aware(r[9], local), end=_aware(r[10], local),
                          spam_score=r[11], spam_threshold=r[12])
        txns[r[1]] = txn
        sessions[r[0]].transactions.append(txn)
    for r in parts["recipients"]:
        txn = txns.get(r[0])
        if txn is not None:
            txn.recipients.append(Recipient(address=r[1], status=r[2], relay=r[3], dsn=r[4], detail=r[5],
                                            ts=_aware(r[6], local_of[r[8]]), orig_address=r[7]))
    for r in parts["auth"]:
        if r[0] in sessions:
            sessions[r[0]].auth_failure_users = list(r[1] or [])
    # NOQUEUE rejects: refused attempts, one transaction per envelope sender in a row (as the
    # Python readers build them), in log order after the queued messages.
    for sid, ts, sender, rcpt, _code, dsn, reason, _lineno in parts["noqueue"]:
        session = sessions.get(sid)
        if session is None:
            continue
        last = session.transactions[-1] if session.transactions else None
        if last is None or last.queue_id is not None or last.accepted or last.sender != sender:
            last = Transaction(sender=sender, start=_aware(ts, local_of[sid]), reject_reason=reason)
            session.transactions.append(last)
        last.end = _aware(ts, local_of[sid])
        if rcpt is not None:
            last.recipients.append(Recipient(address=rcpt, status="rejected", dsn=dsn, detail=reason,
                                             ts=_aware(ts, local_of[sid])))
    wanted, texts = parts["lines"]
    for sid, source_id, lineno in sorted(wanted, key=lambda r: (r[0], r[2])):
        session = sessions.get(sid)
        if session is not None:
            session.lines.append(LogLine(session.source, lineno, texts.get((source_id, lineno), "")))
    for session in sessions.values():
        for txn in session.transactions:
            if txn.queue_id:
                tag = f" {txn.queue_id}: "
                txn.lines = [line for line in session.lines if tag in line.text]
    return [sessions[r[0]] for r in rows]


def _in_list(values: Iterable[int]) -> str:
    """A literal SQL list of integers (literals let DuckDB prune row groups by min/max)."""
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


def iter_sources(con: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    yield from con.execute("SELECT * FROM sources ORDER BY source_id").fetchall()
