"""Opening logs: plain, rotated sets, ``.gz`` / ``.bz2`` / ``.xz``, and stdin. Streams; never slurps.

Compression is told by the file's first bytes (magic), not its name, so a ``mail.log.1`` that
logrotate compressed without renaming still opens. Rotated sets are put in time order: for one
base name, the highest rotation number is oldest (``mail.log.3.gz``, ``mail.log.2.gz``,
``mail.log.1``, ``mail.log``); date-suffixed files (``mail.log-20240101``) sort by date.
Lines longer than `MAX_LINE` bytes are cut (the rest of the line is skipped and counted), and
bytes are decoded as UTF-8 with ``replace`` so that binary junk never stops a run.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailwarden.errors import InputError
from mailwarden.logs.model import LogLine
from mailwarden.logs.readers.base import MAX_LINE

STDIN = "-"
READ_CHUNK = 1 << 20

# What a damaged or truncated archive raises while streaming (reported, never raised further).
STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


@dataclass(slots=True)
class LogSource:
    """One input: a path (or ``-`` for stdin), its mtime and its compression."""

    path: str
    mtime: float | None = None
    size: int | None = None
    compression: str | None = None   # None, "gzip", "bzip2", "xz"

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == STDIN else self.path

    @property
    def seekable_plain(self) -> bool:
        return self.path != STDIN and self.compression is None


@dataclass
class ReadStats:
    """What reading cost and what went wrong, per run (reported, never raised)."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    truncated_lines: int = 0
    unreadable: list[str] = field(default_factory=list)


def _rotation_key(path: str) -> tuple[str, int, str]:
    """(base, order, date) so that sorting gives oldest first within one base name."""
    name = os.path.basename(path)
    for suffix in (".gz", ".bz2", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    head, dot, tail = name.rpartition(".")
    if dot and tail.isdigit() and len(tail) <= 4:
        return os.path.join(os.path.dirname(path), head), -int(tail), ""
    head, dash, tail = name.rpartition("-")
    if dash and tail.isdigit() and len(tail) in (8, 10):
        return os.path.join(os.path.dirname(path), head), -1, tail
    return os.path.join(os.path.dirname(path), name), 0, ""


def order_rotated(paths: list[str]) -> list[str]:
    """Put each rotated set in time order; different base names keep the order given."""
    groups: dict[str, list[str]] = {}
    order: list[str] = []
    for path in paths:
        base = _rotation_key(path)[0]
        if base not in groups:
            groups[base] = []
            order.append(base)
        groups[base].append(path)
    result: list[str] = []
    for base in order:
        members = groups[base]
        # -N (older first), then date-suffixed by date, then the live file (0).
        members.sort(key=lambda p: (_rotation_key(p)[1] if _rotation_key(p)[1] != -1 else -0.5,
                                    _rotation_key(p)[2]))
        result.extend(members)
    return result


def sniff_compression(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def describe(paths: list[str]) -> tuple[list[LogSource], list[str]]:
    """Sources in time order, plus one message per path that cannot be read."""
    sources: list[LogSource] = []
    problems: list[str] = []
    for path in order_rotated([str(p) for p in paths]):
        if path == STDIN:
            sources.append(LogSource(STDIN))
            continue
        try:
            st = os.stat(path)
            if not Path(path).is_file():
                problems.append(f"{path}: not a regular file")
                continue
            with open(path, "rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
            continue
        sources.append(LogSource(path, st.st_mtime, st.st_size, sniff_compression(head)))
    return sources, problems


_stdin_cache: dict[int, io.BufferedReader] = {}


def stdin_stream() -> io.BufferedReader:
    """stdin as one buffered stream that can be peeked (format detection) and then read."""
    raw = sys.stdin.buffer
    wrapped = _stdin_cache.get(id(raw))
    if wrapped is None:
        _stdin_cache.clear()
        wrapped = io.BufferedReader(raw, 1 << 16)  # type: ignore[arg-type]
        _stdin_cache[id(raw)] = wrapped
    return wrapped


def open_binary(source: LogSource) -> BinaryIO:
    """A binary stream of the (decompressed) bytes; raises InputError when it cannot open."""
    try:
        if source.path == STDIN:
            raw = stdin_stream()
            peek = raw.peek(8)[:8]
            kind = sniff_compression(peek)
            if kind == "gzip":
                return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
            if kind == "bzip2":
                return bz2.BZ2File(raw)  # type: ignore[return-value]
            if kind == "xz":
                return lzma.LZMAFile(raw)  # type: ignore[return-value]
            return raw
        if source.compression == "gzip":
            return gzip.open(source.path, "rb")  # type: ignore[return-value]
        if source.compression == "bzip2":
            return bz2.open(source.path, "rb")  # type: ignore[return-value]
        if source.compression == "xz":
            return lzma.open(source.path, "rb")  # type: ignore[return-value]
        return open(source.path, "rb", buffering=READ_CHUNK)
    except OSError as exc:
        raise InputError(f"{source.name}: {exc.strerror or exc}") from None


def decode_line(raw: bytes) -> str:
    """Bytes -> text that any later step can print or serialise (no NUL, no surrogates)."""
    text = raw.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text.rstrip("\r\n")


def iter_raw_lines(stream: BinaryIO, stats: ReadStats | None = None,
                   max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Raw lines (without cutting memory use on huge lines: the excess is read and dropped)."""
    readline = stream.readline
    while True:
        try:
            raw = readline(max_line + 1)
        except STREAM_ERRORS as exc:
            if stats is not None:
                stats.unreadable.append(f"{getattr(stream, 'name', '?')}: {exc}")
            return
        if not raw:
            return
        if stats is not None:
            stats.bytes += len(raw)
        if len(raw) > max_line and not raw.endswith(b"\n"):
            # Skip the rest of an over-long line in bounded pieces.
            if stats is not None:
                stats.truncated_lines += 1
            while True:
                try:
                    more = readline(READ_CHUNK)
                except STREAM_ERRORS:
                    return
                if stats is not None:
                    stats.bytes += len(more)
                if not more or more.endswith(b"\n"):
                    break
            raw = raw[:max_line]
        yield raw


def iter_lines(source: LogSource, stats: ReadStats | None = None) -> Iterator[LogLine]:
    """Numbered, decoded lines of one source, streamed."""
    stream = open_binary(source)
    if stats is not None:
        stats.files += 1
    try:
        lineno = 0
        for raw in iter_raw_lines(stream, stats):
            lineno += 1
            if stats is not None:
                stats.lines += 1
            yield LogLine(source.name, lineno, decode_line(raw))
    finally:
        if source.path != STDIN:
            stream.close()


def head_lines(source: LogSource, count: int = 50) -> list[str]:
    """The first lines of a source, for dialect detection (stdin: peeked, not consumed)."""
    if source.path == STDIN:
        data = stdin_stream().peek(64 * 1024)
        return [decode_line(x) for x in data.splitlines()[:count]]
    lines: list[str] = []
    try:
        stream = open_binary(source)
    except InputError:
        return lines
    with stream:
        try:
            for raw in iter_raw_lines(stream, None, 8192):
                lines.append(decode_line(raw))
                if len(lines) >= count:
                    break
        except Exception:  # a corrupt archive: detection just sees fewer lines
            pass
    return lines


def text_lines(data: str | bytes, source: str = "<text>") -> Iterator[LogLine]:
    """Lines of an in-memory log (tests, the index engineer's fragments)."""
    stream = io.BytesIO(data.encode("utf-8") if isinstance(data, str) else data)
    for lineno, raw in enumerate(iter_raw_lines(stream), start=1):
        yield LogLine(source, lineno, decode_line(raw))
