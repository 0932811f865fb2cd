"""Reading messages: input-format detection and the header block of each message, within limits.

Tracing needs only the header block, so readers stream a file line by line, keep the
headers of each message and skip bodies: a 50 MB attachment costs a read, not memory.
Formats: RFC 5322 files (.eml, MDaemon .msg text, Maildir entries), mbox files
(``From `` separator lines), Outlook OLE .msg (through ``extract_msg``), directories
(Maildir, MDaemon mailbox folders, any tree of message files) and ``-`` for stdin.

A message that cannot be read becomes a ``ReadFailure`` with a one-line reason; the
batch goes on. Nothing here raises on hostile bytes.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import BinaryIO

# A header block bigger than this is refused (real ones are a few KB; the 10 MB-header
# attack must not cost 10 MB per message). One header line longer than MAX_LINE is
# truncated and recorded as a defect.
MAX_HEADER_BYTES = 1024 * 1024
MAX_LINE = 64 * 1024
MAX_HEADER_LINES = 20_000

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Files in mail stores that are not messages (MDaemon .mrk indexes, Dovecot indexes,
# Maildir bookkeeping) and our own demo/config files.
_SKIP_NAMES = {"maildirfolder", "subscriptions", "dovecot-uidlist", "dovecot-keywords",
               "dovecot.index", "dovecot.index.log", "dovecot.index.cache", "courierimapuiddb",
               "courierimapkeywords", "mailwarden.toml"}
_SKIP_SUFFIXES = (".mrk", ".md", ".toml", ".txt", ".dat", ".lck", ".sem", ".log", ".json")


@dataclass(slots=True)
class RawHeaders:
    """The header block of one message and where it came from."""

    source: str                        # path, path:N for the Nth message of an mbox, or "-"
    data: bytes                        # header block, CRLF/LF kept, without the blank line
    defects: list[str] = field(default_factory=list)
    container: str = "file"            # file | mbox | outlook-msg | stdin


@dataclass(slots=True)
class ReadFailure:
    """One message (or file) that could not be read; ``reason`` is one line."""

    source: str
    reason: str


# RFC 5322 field names: printable ASCII except colon and space (one character class, no backtracking).
_FIELD_NAME = re.compile(rb"[!-9;-~]{1,200}")


def _header_line_ok(line: bytes) -> bool:
    """A header field line ``Name: value`` or a continuation line (starts with space/tab)."""
    if line[:1] in (b" ", b"\t"):
        return True
    colon = line.find(b":", 0, 201)
    return colon > 0 and _FIELD_NAME.fullmatch(line, 0, colon) is not None


class _HeaderCollector:
    """Accumulates header lines of one message, enforcing the limits."""

    def __init__(self, source: str, container: str) -> None:
        self.source = source
        self.container = container
        self.lines: list[bytes] = []
        self.size = 0
        self.defects: list[str] = []
        self.failure: str | None = None
        self.done = False  # blank line seen

    def add(self, line: bytes) -> None:
        if self.done or self.failure:
            return
        stripped = line.rstrip(b"\r\n")
        if not stripped:
            self.done = True
            return
        if not self.lines and stripped[:1] in (b" ", b"\t"):
            self.failure = "not a mail message: starts with a continuation line"
            return
        if not _header_line_ok(stripped):
            if not self.lines:
                self.failure = "not a mail message: no RFC 5322 header at the start"
            else:
                # RFC 5322: the header ends at the first line that is not a field; mail
                # without a blank line before the body exists (mail-parser's malformed set).
                self.defects.append(f"header block ended by a non-header line {stripped[:40]!r}")
                self.done = True
            return
        if b"\x00" in stripped:
            self.failure = "binary data (NUL bytes) in the header block"
            return
        if len(stripped) > MAX_LINE:
            self.defects.append(f"header line of {len(stripped)} bytes truncated to {MAX_LINE}")
            stripped = stripped[:MAX_LINE]
        self.size += len(stripped) + 1
        if self.size > MAX_HEADER_BYTES:
            self.failure = f"header block larger than {MAX_HEADER_BYTES // 1024} KiB (refused)"
            return
        if len(self.lines) >= MAX_HEADER_LINES:
            self.failure = f"more than {MAX_HEADER_LINES} header lines (refused)"
            return
        self.lines.append(stripped)

    def result(self) -> RawHeaders | ReadFailure:
        if self.failure:
            return ReadFailure(self.source, self.failure)
        if not self.lines:
            return ReadFailure(self.source, "empty message")
        return RawHeaders(self.source, b"\n".join(self.lines) + b"\n", self.defects, self.container)


MAX_DRAIN = 64 * 1024 * 1024  # how much of one over-long line is skipped before giving up


def _read_line(stream: BinaryIO) -> bytes:
    # readline with a cap: a 10 MB line without a newline is read in MAX_LINE pieces,
    # and the rest of the over-long line is drained so it cannot pose as a new header.
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE and not line.endswith(b"\n"):
        # Bounded: an endless stream with no newline (a device, /dev/zero) must not spin forever.
        for _ in range(MAX_DRAIN // MAX_LINE):
            more = stream.readline(MAX_LINE)
            if not more or more.endswith(b"\n"):
                break
    return line


# A run of header lines: each is a continuation (starts with space/tab) or "Name:" with a
# valid field name. Every branch starts with a different character class and each line ends
# at the first newline, so matching is one linear pass with no backtracking.
_HEADER_LINES = re.compile(rb"(?:(?:[ \t][^\n]*|[!-9;-~]{1,200}:[^\n]*)\n)*")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_CHUNK = 64 * 1024
_LONG_LINE = f"a header line longer than {MAX_LINE // 1024} KiB (refused)"


def _read_header_block(stream: BinaryIO, first: bytes, source: str, container: str
                       ) -> RawHeaders | ReadFailure:
    """One message's header block, read in chunks up to the first blank line (body never read)."""
    buf = first
    while True:
        end = _BLANK_LINE.search(buf)
        if end is not None or len(buf) > MAX_HEADER_BYTES:
            break
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        buf += chunk
    if end is not None:
        block = buf[: end.start() + 1]
    elif len(buf) > MAX_HEADER_BYTES:
        return ReadFailure(source, f"header block larger than {MAX_HEADER_BYTES // 1024} KiB (refused)")
    else:
        block = buf if buf.endswith(b"\n") else buf + b"\n"
    if len(block) > MAX_HEADER_BYTES:
        return ReadFailure(source, f"header block larger than {MAX_HEADER_BYTES // 1024} KiB (refused)")
    if not block.strip(b"\r\n"):
        return ReadFailure(source, "empty message")
    defects: list[str] = []
    valid = _HEADER_LINES.match(block).end()
    if valid < len(block):
        if valid == 0:
            if block[:1] in (b" ", b"\t"):
                return ReadFailure(source, "not a mail message: starts with a continuation line")
            return ReadFailure(source, "not a mail message: no RFC 5322 header at the start")
        # RFC 5322: the header ends at the first line that is not a field; mail without a
        # blank line before the body exists (mail-parser's malformed set).
        bad = block[valid: valid + 40].split(b"\n", 1)[0]
        defects.append(f"header block ended by a non-header line {bad!r}")
        block = block[:valid]
    if b"\x00" in block:
        return ReadFailure(source, "binary data (NUL bytes) in the header block")
    lines = block.split(b"\n")
    if len(lines) > MAX_HEADER_LINES:
        return ReadFailure(source, f"more than {MAX_HEADER_LINES} header lines (refused)")
    if max(map(len, lines)) > MAX_LINE:
        return ReadFailure(source, _LONG_LINE)
    return RawHeaders(source, block.replace(b"\r\n", b"\n"), defects, container)


def read_stream(stream: BinaryIO, source: str, container: str = "file"
                ) -> Iterator[RawHeaders | ReadFailure]:
    """Messages in a byte stream: one RFC 5322 message, or an mbox of many."""
    first = _read_line(stream)
    if not first:
        yield ReadFailure(source, "empty input")
        return
    if first.startswith(OLE_MAGIC):
        yield ReadFailure(source, "Outlook .msg (OLE compound file) cannot be read from a stream; pass the file path")
        return
    if first.startswith(b"From ") and not _header_line_ok(first.rstrip(b"\r\n")):
        yield from _read_mbox(stream, source)
        return
    if len(first) > MAX_LINE:
        yield ReadFailure(source, _LONG_LINE)
        return
    yield _read_header_block(stream, first, source, container)


def _read_mbox(stream: BinaryIO, source: str) -> Iterator[RawHeaders | ReadFailure]:
    """mbox: each message starts at a ``From `` line; bodies are skipped, not kept."""
    number = 1
    collector = _HeaderCollector(f"{source}:{number}", "mbox")
    previous_blank = True
    while True:
        line = _read_line(stream)
        if not line:
            break
        # mboxrd/mboxo: a separator is a "From " line after a blank line (or at the start).
        if line.startswith(b"From ") and previous_blank:
            yield collector.result()
            number += 1
            collector = _HeaderCollector(f"{source}:{number}", "mbox")
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if not collector.done and not collector.failure:
            collector.add(line)
    yield collector.result()


def read_outlook_msg(path: Path) -> RawHeaders | ReadFailure:
    """The transport headers of an Outlook .msg (OLE) file, through extract_msg."""
    try:
        import extract_msg  # imported lazily: it is slow to import and rarely needed
    except ImportError:  # pragma: no cover - it is a declared dependency
        return ReadFailure(str(path), "Outlook .msg (OLE) file: the extract_msg package is not installed")
    try:
        with extract_msg.openMsg(str(path)) as msg:
            header = getattr(msg, "header", None)
            text = str(header) if header is not None else ""
    except Exception as exc:  # extract_msg raises many kinds on corrupt OLE files
        return ReadFailure(str(path), f"Outlook .msg (OLE) file could not be read: {type(exc).__name__}: {exc}"[:300])
    if not text.strip():
        return ReadFailure(str(path), "Outlook .msg (OLE) file has no transport headers (never sent?)")
    collector = _HeaderCollector(str(path), "outlook-msg")
    for line in io.BytesIO(text.encode("utf-8", "surrogateescape")):
        collector.add(line)
        if collector.done or collector.failure:
            break
    return collector.result()


def _is_message_file(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith(".") or name in _SKIP_NAMES or name.startswith("dovecot"):
        return False
    if name.startswith("readme") or name.endswith(_SKIP_SUFFIXES):
        return False
    return True


def iter_dir(root: Path) -> Iterator[Path]:
    """Message files under a directory, sorted: Maildir cur/ and new/ (not tmp/), MDaemon
    mailbox folders with their ``*.IMAP`` sub-folders, or any tree of message files."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # Maildir tmp/ holds messages still being written: never read them.
        if {"cur", "new", "tmp"} <= set(dirnames):
            dirnames.remove("tmp")
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = here / name
            # Only regular files: opening a FIFO blocks, a device never ends.
            if _is_message_file(path) and path.is_file():
                yield path


def read_path(path: str | os.PathLike[str]) -> Iterator[RawHeaders | ReadFailure]:
    """Every message at ``path``: a file, an mbox, a directory, or ``-`` (stdin)."""
    text = os.fspath(path)
    if text == "-":
        yield from read_stream(sys.stdin.buffer, "-", "stdin")
        return
    p = Path(text)
    if p.is_dir():
        for child in iter_dir(p):
            yield from read_file(child)
        return
    yield from read_file(p)


def read_file(path: Path) -> Iterator[RawHeaders | ReadFailure]:
    """The messages in one file (one, or many for an mbox)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        yield ReadFailure(str(path), "no such file or directory")
        return
    except OSError as exc:
        yield ReadFailure(str(path), f"cannot open: {exc.strerror or exc}")
        return
    if not stat.S_ISREG(mode):
        # A FIFO would block the whole batch and a device (/dev/zero) never ends; pipes go through "-".
        yield ReadFailure(str(path), "not a regular file (a FIFO, socket or device); use - to read a pipe")
        return
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        yield ReadFailure(str(path), "no such file or directory")
        return
    except OSError as exc:
        yield ReadFailure(str(path), f"cannot open: {exc.strerror or exc}")
        return
    with stream:
        try:
            magic = stream.read(8)
            if magic == OLE_MAGIC:
                stream.close()
                yield read_outlook_msg(path)
                return
            stream.seek(0)
            yield from read_stream(stream, str(path))
        except OSError as exc:
            yield ReadFailure(str(path), f"read error: {exc.strerror or exc}")


_HEADER_PARSER = BytesHeaderParser(policy=policy.default)


def _decode_block(data: bytes) -> str:
    """Header bytes -> text that is always valid Unicode (it ends up in JSON and terminals).

    RFC 6532 headers are UTF-8; raw 8-bit headers from older software are usually Latin-1
    or cp1252, so a line that is not valid UTF-8 is read as cp1252 (Latin-1 for its holes).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = []
    for line in data.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                lines.append(line.decode("cp1252"))
            except UnicodeDecodeError:
                lines.append(line.decode("latin-1"))
    return "\n".join(lines)


def split_fields(raw: RawHeaders) -> list[tuple[str, str]]:
    """The header block as (name, unfolded value) pairs, in order, without the email package.

    Tracing reads a handful of fields; building an ``EmailMessage`` costs more than the
    whole trace. Encoded words are decoded later, field by field.
    """
    fields: list[tuple[str, str]] = []
    name = None
    parts: list[str] = []
    for line in _decode_block(raw.data).split("\n"):
        if line[:1] in (" ", "\t"):
            if name is not None:
                parts.append(line.strip())
            continue
        if name is not None:
            fields.append((name, " ".join(p for p in parts if p)))
        head, sep, value = line.partition(":")
        if sep:
            name, parts = head.strip(), [value.strip()]
        else:
            name, parts = None, []
    if name is not None:
        fields.append((name, " ".join(p for p in parts if p)))
    return fields


def parse_headers(raw: RawHeaders) -> EmailMessage:
    """The header block as an ``EmailMessage`` (policy.default: decoded, lazily parsed headers).

    The parser itself never raises; it records defects on the message.
    """
    return _HEADER_PARSER.parsebytes(raw.data)  # type: ignore[return-value]
