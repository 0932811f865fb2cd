"""Find a message's SMTP session in logs: by Message-ID, queue id, or time window.

Two paths:

- **Byte search** (a Message-ID or queue id is known, no ``--unparsed``): plain files are
  mapped (``mmap``) and searched with ``find``; compressed files and stdin are streamed through
  the decompressor in large chunks with a bounded look-behind buffer. Only the neighbourhood of a
  hit (`BACK` bytes before, `FORWARD` after) is split into lines, and of those only the lines
  that share the hit's queue id, smtpd ``service[pid]`` (between its ``connect`` and
  ``disconnect``), Exim id or client ``ip:port``, or MDaemon session block are parsed and fed to
  the `SessionAssembler`. Memory stays bounded whatever the file size. Line numbers are counted
  only up to each hit.
- **Full parse** (time window only, or ``--unparsed FILE``): every line goes through the reader
  and the assembler, streamed.

Time windows: a log with naive server-local times compared with an aware time (a message's
received time) cannot be lined up exactly without the server's zone, so the aware bound is
taken in UTC and the window is widened by `NAIVE_SLACK` (14 h, the widest UTC offset) on each side.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import mmap
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mailwarden.errors import InputError
from mailwarden.logs.model import LogEvent, LogLine, Session
from mailwarden.logs.readers import detect, get_reader
from mailwarden.logs.readers.base import MAX_LINE, LogReader
from mailwarden.logs.sessions import SessionAssembler
from mailwarden.logs.sources import (
    LogSource,
    ReadStats,
    decode_line,
    describe,
    head_lines,
    iter_lines,
    open_binary,
)
from mailwarden.logs.timestamps import SyslogYear

BACK = 4 << 20        # bytes of log kept before a hit (a slow SMTP session's start)
FORWARD = 4 << 20     # bytes read after a hit (queue manager and deliveries)
STREAM_CHUNK = 8 << 20
COUNT_SLICE = 16 << 20
NUMPY_WORTH_IT = 256 << 20   # importing numpy (~0.25 s) pays off from about this many bytes
NAIVE_SLACK = dt.timedelta(hours=14)
DEFAULT_AROUND = dt.timedelta(days=1)
POSTSCREEN_LOOKBACK = 2000
MAX_REGIONS = 200            # separate hits per file before giving up (an id that is too short)   # lines searched before an smtpd connect for its postscreen/dnsblog lines


@dataclass
class TimeWindow:
    """[since, until]; either end may be open. Bounds may be naive (server-local) or aware."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @classmethod
    def around(cls, moment: dt.datetime, width: dt.timedelta = DEFAULT_AROUND) -> TimeWindow:
        return cls(moment - width, moment + width)

    def contains(self, ts: dt.datetime | None) -> bool:
        if ts is None:
            return True
        for bound, is_lower in ((self.since, True), (self.until, False)):
            if bound is None:
                continue
            left, right, slack = ts, bound, dt.timedelta(0)
            if (ts.tzinfo is None) != (bound.tzinfo is None):
                left = _wall_utc(ts)
                right = _wall_utc(bound)
                slack = NAIVE_SLACK
            if is_lower and left < right - slack:
                return False
            if not is_lower and left > right + slack:
                return False
        return True

    @property
    def empty(self) -> bool:
        return self.since is None and self.until is None


def _wall_utc(ts: dt.datetime) -> dt.datetime:
    if ts.tzinfo is None:
        return ts
    return ts.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class YearHint:
    """How to date classic syslog lines: ``--year``, else an anchor moment, else the file's mtime."""

    year: int | None = None
    anchor: dt.datetime | None = None

    def clock(self, source: LogSource) -> SyslogYear:
        return SyslogYear(self.year, mtime=source.mtime, anchor=self.anchor)


@dataclass
class FindQuery:
    message_id: str | None = None     # without angle brackets
    queue_id: str | None = None
    window: TimeWindow = field(default_factory=TimeWindow)

    def needles(self) -> list[bytes]:
        out = []
        if self.message_id:
            out.append(self.message_id.encode("utf-8", "replace"))
        if self.queue_id:
            out.append(self.queue_id.encode("utf-8", "replace"))
        return out

    def matches(self, session: Session) -> bool:
        if not self.window.contains(session.start):
            return False
        if not self.message_id and not self.queue_id:
            return True
        wanted_mid = self.message_id.strip().strip("<>").lower() if self.message_id else None
        for txn in session.transactions:
            if wanted_mid and txn.message_id and txn.message_id.strip("<>").lower() == wanted_mid:
                return True
            if self.queue_id and txn.queue_id and txn.queue_id.lower() == self.queue_id.lower():
                return True
        return False


@dataclass
class FindResult:
    sessions: list[Session] = field(default_factory=list)
    outside_window: int = 0
    sources: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)   # source -> dialect
    problems: list[str] = field(default_factory=list)       # unreadable inputs, unknown formats
    unparsed: int = 0
    truncated_lines: int = 0
    bytes_searched: int = 0
    method: str = "byte-search"


def normalise_message_id(text: str) -> str:
    text = text.strip()
    if text.lower().startswith("message-id:"):
        text = text[11:].strip()
    return text.strip().strip("<>").strip()


def choose_reader(source: LogSource, fmt: str) -> LogReader | None:
    if fmt and fmt != "auto":
        return get_reader(fmt)
    return detect(head_lines(source))


def _clock_for(source: LogSource, year: int | None, anchor: dt.datetime | None = None) -> SyslogYear:
    return SyslogYear(year, mtime=source.mtime, anchor=anchor)


def find_in_logs(paths: Iterable[str], query: FindQuery, *, fmt: str = "auto",
                 year: int | None = None, unparsed_sink: Callable[[LogLine], None] | None = None,
                 progress: Callable[[int], None] | None = None,
                 year_anchor: dt.datetime | None = None) -> FindResult:
    """Search every log for the query's sessions; problems are collected, never raised.

    ``year_anchor`` (e.g. the message's received time) dates classic syslog lines instead of the
    file's mtime; ``year`` beats both.
    """
    sources, problems = describe(list(paths))
    result = FindResult(problems=list(problems), sources=[s.name for s in sources])
    full_parse = unparsed_sink is not None or not query.needles()
    result.method = "full-parse" if full_parse else "byte-search"
    year_clock: SyslogYear | None = None
    # one assembler for a whole rotated set: a session can start in mail.log.1 and end in mail.log
    assembler = SessionAssembler(on_unparsed=unparsed_sink) if full_parse else None
    found: list[Session] = []
    for source in sources:
        reader = choose_reader(source, fmt)
        if reader is None:
            result.problems.append(f"{source.name}: log format not recognised (use --format)")
            continue
        result.formats[source.name] = reader.dialect
        try:
            if full_parse:
                # one clock across a rotated set read in time order: New Year can fall between files
                if year_clock is None:
                    year_clock = _clock_for(source, year, year_anchor)
                else:
                    year_clock.reanchor(source.mtime)
                found.extend(_full_parse(source, reader, query, year_clock, result, assembler, progress))
            elif source.seekable_plain:
                found.extend(_search_mapped(source, reader, query, YearHint(year, year_anchor), result,
                                            progress))
            else:
                found.extend(_search_stream(source, reader, query, YearHint(year, year_anchor), result,
                                            progress))
        except InputError as exc:
            result.problems.append(str(exc))
            continue
        except OSError as exc:
            result.problems.append(f"{source.name}: {exc}")
            continue
    if assembler is not None:
        found.extend(s for s in assembler.flush() if _wanted(query, s))
        result.unparsed += assembler.unparsed
    has_id = bool(query.needles())
    for session in found:
        if query.matches(session):
            result.sessions.append(session)
        elif has_id and FindQuery(query.message_id, query.queue_id).matches(session):
            result.outside_window += 1   # the id matched; the time window did not
    result.sessions.sort(key=lambda s: (_wall_utc(s.start) if s.start else dt.datetime.min))
    return result


# -- full parse -------------------------------------------------------------------------------

def iter_events(source: LogSource, reader: LogReader, clock: SyslogYear,
                stats: ReadStats | None = None) -> Iterator[LogEvent]:
    """Every event of one source (streamed)."""
    yield from reader.events(iter_lines(source, stats), source.name, clock=clock)


def _wanted(query: FindQuery, session: Session) -> bool:
    """Kept from a full parse: matches, or (with an id) matches the id outside the window."""
    if query.matches(session):
        return True
    if not query.needles():
        return False
    return FindQuery(query.message_id, query.queue_id).matches(session)


def _full_parse(source: LogSource, reader: LogReader, query: FindQuery, clock: SyslogYear,
                result: FindResult, assembler: SessionAssembler, progress) -> list[Session]:
    stats = ReadStats()
    found: list[Session] = []
    last_bytes = 0
    for event in iter_events(source, reader, clock, stats):
        for session in assembler.feed(event):
            if _wanted(query, session):
                found.append(session)
        if progress is not None and stats.bytes - last_bytes > (1 << 22):
            progress(stats.bytes - last_bytes)
            last_bytes = stats.bytes
    result.truncated_lines += stats.truncated_lines
    result.bytes_searched += stats.bytes
    result.problems.extend(stats.unreadable)
    return found


# -- byte search --------------------------------------------------------------------------------

class _NewlineCounter:
    """Line numbers for byte offsets of a mapped file, counted on demand and only once.

    (A counting thread beside the search was tried: on two busy cores it was slower.)
    """

    def __init__(self, buf) -> None:
        self.buf = buf
        self.counted_to = 0
        self.lines = 0

    def lines_before(self, offset: int) -> int:
        """Newlines in ``buf[:offset]`` (offsets must not go backwards)."""
        if offset > self.counted_to:
            self.lines += count_newlines(self.buf, self.counted_to, offset)
            self.counted_to = offset
        return self.lines


SEARCH_SLICE = 32 << 20


def _search_mapped(source: LogSource, reader: LogReader, query: FindQuery, year: YearHint,
                   result: FindResult, progress) -> list[Session]:
    needles = query.needles()
    longest = max(len(n) for n in needles)
    sessions: list[Session] = []
    with open(source.path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return sessions
        with mm:
            size = len(mm)
            result.bytes_searched += size
            counter = _NewlineCounter(mm)
            regions = 0
            pos = 0
            while pos < size:
                # search in slices: the progress bar moves, and a hit stops the scan early
                hit = -1
                while pos < size:
                    stop = min(size, pos + SEARCH_SLICE + longest)
                    hit = _first_hit(mm, needles, pos, stop)
                    if hit >= 0:
                        break
                    if progress is not None:
                        progress(min(size, pos + SEARCH_SLICE) - pos)
                    pos = min(size, pos + SEARCH_SLICE)
                if hit < 0:
                    break
                regions += 1
                if regions > MAX_REGIONS:
                    result.problems.append(f"{source.name}: more than {MAX_REGIONS} separate matches; "
                                           "stopped (use a longer, more specific id)")
                    break
                start = max(0, hit - BACK)
                if start > 0:
                    newline = mm.find(b"\n", start, hit)
                    start = newline + 1 if newline >= 0 else _line_start(mm, hit)
                end = min(size, hit + FORWARD)
                newline = mm.find(b"\n", end)
                end = size if newline < 0 else newline + 1
                first_lineno = counter.lines_before(start) + 1
                region = mm[start:end]
                sessions.extend(_process_region(region, first_lineno, source, reader, needles,
                                                year, result))
                if progress is not None:
                    progress(max(0, end - pos))
                pos = end
    return sessions


def count_newlines(buf, start: int, end: int) -> int:
    """Newlines in ``buf[start:end]``: numpy when present (SIMD, ~4x faster), else bytes.count."""
    if end <= start:
        return 0
    numpy = sys.modules.get("numpy")
    if numpy is None and end - start >= NUMPY_WORTH_IT:
        try:
            import numpy
        except ImportError:
            numpy = None
    total = 0
    if numpy is not None:
        view = numpy.frombuffer(buf, dtype=numpy.uint8)
        try:
            scratch = numpy.empty(min(COUNT_SLICE, end - start), dtype=bool)
            for at in range(start, end, COUNT_SLICE):
                segment = view[at:min(end, at + COUNT_SLICE)]
                out = scratch[:len(segment)]
                numpy.equal(segment, 10, out=out)
                total += int(numpy.count_nonzero(out))
        finally:
            del view  # release the buffer export before the mmap is closed
        return total
    for at in range(start, end, 1 << 20):
        total += buf[at:min(end, at + (1 << 20))].count(b"\n")
    return total


def _line_start(buf, offset: int) -> int:
    return buf.rfind(b"\n", 0, offset) + 1


def _first_hit(buf, needles: list[bytes], pos: int, end: int | None = None) -> int:
    best = -1
    for needle in needles:
        at = buf.find(needle, pos) if end is None else buf.find(needle, pos, end)
        if at >= 0 and (best < 0 or at < best):
            best = at
    return best


def _search_stream(source: LogSource, reader: LogReader, query: FindQuery, year: YearHint,
                   result: FindResult, progress) -> list[Session]:
    """Compressed files and stdin: chunks through the decompressor, bounded look-behind."""
    needles = query.needles()
    longest = max(len(n) for n in needles)
    sessions: list[Session] = []
    stream = open_binary(source)
    try:
        regions = 0
        tail = b""            # look-behind: whole lines only
        tail_first_line = 1   # line number of tail's first line
        while True:
            try:
                chunk = stream.read(STREAM_CHUNK)
            except (OSError, EOFError) as exc:
                result.problems.append(f"{source.name}: {exc}")
                chunk = b""
            except Exception as exc:  # lzma/zlib errors on a corrupt archive
                result.problems.append(f"{source.name}: {exc}")
                chunk = b""
            if not chunk:
                break
            result.bytes_searched += len(chunk)
            if progress is not None:
                progress(len(chunk))
            buf = tail + chunk
            scan_from = max(0, len(tail) - longest)
            hit = _first_hit(buf, needles, scan_from)
            while hit >= 0:
                regions += 1
                if regions > MAX_REGIONS:
                    result.problems.append(f"{source.name}: more than {MAX_REGIONS} separate matches; "
                                           "stopped (use a longer, more specific id)")
                    return sessions
                # read ahead FORWARD bytes past the hit
                while len(buf) - hit < FORWARD:
                    more = stream.read(STREAM_CHUNK)
                    if not more:
                        break
                    result.bytes_searched += len(more)
                    if progress is not None:
                        progress(len(more))
                    buf += more
                end = buf.find(b"\n", hit + FORWARD) if len(buf) - hit >= FORWARD else -1
                end = len(buf) if end < 0 else end + 1
                sessions.extend(_process_region(buf[:end], tail_first_line, source, reader, needles,
                                                year, result))
                # continue after the region; keep its last BACK bytes as look-behind
                consumed = buf[:end]
                keep_from = max(0, len(consumed) - BACK)
                keep_from = _line_start(consumed, keep_from) if keep_from else 0
                tail_first_line += consumed.count(b"\n", 0, keep_from)
                tail = consumed[keep_from:]
                buf = tail + buf[end:]
                # hits inside the processed region were handled with it
                hit = _first_hit(buf, needles, len(tail)) if len(buf) > len(tail) else -1
                if hit < 0:
                    break
            cut = max(0, len(buf) - BACK)
            if cut:
                cut = _line_start(buf, cut)
                tail_first_line += buf.count(b"\n", 0, cut)
            tail = buf[cut:]
    finally:
        if source.path != "-":
            stream.close()
    return sessions


def _process_region(region: bytes, first_lineno: int, source: LogSource, reader: LogReader,
                    needles: list[bytes], year: YearHint, result: FindResult) -> list[Session]:
    """Parse the part of a region that belongs to the hit's sessions; assemble them."""
    raw_lines = _RegionLines(region)
    selected = _select_lines(raw_lines, reader, needles, source, first_lineno, year)
    clock = year.clock(source)
    lines = []
    for index in sorted(selected):
        raw = raw_lines[index]
        if len(raw) > MAX_LINE:
            raw = raw[:MAX_LINE]
            result.truncated_lines += 1
        lines.append(LogLine(source.name, first_lineno + index, decode_line(raw)))
    assembler = SessionAssembler()
    sessions: list[Session] = []
    for event in reader.events(lines, source.name, clock=clock):
        sessions.extend(assembler.feed(event))
    sessions.extend(assembler.flush())
    result.unparsed += assembler.unparsed
    return sessions


class _RegionLines(list):
    """The lines of a region, plus a cached byte search that answers "which lines hold X"."""

    def __init__(self, blob: bytes) -> None:
        lines = blob.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        super().__init__(lines)
        self.blob = blob
        self.starts = list(itertools.accumulate((len(x) + 1 for x in lines), initial=0))
        self._cache: dict[bytes, list[int]] = {}

    def having(self, token: bytes) -> list[int]:
        found = self._cache.get(token)
        if found is None:
            found = []
            at = self.blob.find(token)
            while at >= 0:
                index = bisect.bisect_right(self.starts, at) - 1
                if not found or found[-1] != index:
                    found.append(index)
                at = self.blob.find(token, at + 1)
            self._cache[token] = found
        return found


def _indices_with(raw_lines: list[bytes], token: bytes) -> list[int]:
    if isinstance(raw_lines, _RegionLines) and b"\n" not in token:
        return raw_lines.having(token)
    return [i for i, raw in enumerate(raw_lines) if token in raw]


def _parse_one(raw: bytes, reader: LogReader, source: LogSource, lineno: int,
               year: YearHint) -> LogEvent:
    line = LogLine(source.name, lineno, decode_line(raw[:MAX_LINE]))
    return next(iter(reader.events([line], source.name, clock=year.clock(source))))


def _select_lines(raw_lines: list[bytes], reader: LogReader, needles: list[bytes],
                  source: LogSource, first_lineno: int, year: YearHint) -> set[int]:
    seeds: set[int] = set()
    for needle in needles:
        seeds.update(_indices_with(raw_lines, needle))
    if reader.dialect == "postfix":
        return _select_postfix(raw_lines, seeds, reader, source, first_lineno, year)
    if reader.dialect == "exim":
        return _select_exim(raw_lines, seeds, reader, source, first_lineno, year)
    if reader.dialect == "mdaemon":
        return _select_mdaemon(raw_lines, seeds)
    return set(range(len(raw_lines)))


def _select_postfix(raw_lines, seeds, reader, source, first_lineno, year) -> set[int]:
    selected = set(seeds)
    queue_ids: set[str] = set()
    tags: set[bytes] = set()
    for index in seeds:
        event = _parse_one(raw_lines[index], reader, source, first_lineno + index, year)
        if event.queue_id:
            queue_ids.add(event.queue_id)
        if event.session_key and event.service and event.pid is not None:
            tags.add(f"{event.service}[{event.pid}]: ".encode())
    seen_qids: set[str] = set()
    for _round in range(3):   # qid -> smtpd session -> the session's other qids
        new_qids = queue_ids - seen_qids
        if not new_qids:
            break
        seen_qids |= new_qids
        for qid in new_qids:
            token = f" {qid}: ".encode()
            for index in _indices_with(raw_lines, token):
                selected.add(index)
                raw = raw_lines[index]
                if b"smtpd[" in raw and b": client=" in raw or b"smtpd[" in raw and b"reject: " in raw:
                    event = _parse_one(raw, reader, source, first_lineno + index, year)
                    if event.session_key and event.service and event.pid is not None:
                        tags.add(f"{event.service}[{event.pid}]: ".encode())
        for tag in list(tags):
            span = _tag_span(raw_lines, tag, selected)
            for index in span:
                selected.add(index)
                for qid in _queue_ids_in(raw_lines[index], tag):
                    queue_ids.add(qid)
    # postscreen / dnsblog lines for the client, just before the smtpd connect
    for tag in tags:
        for index in _indices_with(raw_lines, tag + b"connect from "):
            if index not in selected:
                continue
            raw = raw_lines[index]
            ip_start = raw.rfind(b"[")
            ip_end = raw.find(b"]", ip_start)
            if ip_start < 0 or ip_end < 0:
                continue
            ip = raw[ip_start + 1:ip_end]
            for back in range(index - 1, max(-1, index - POSTSCREEN_LOOKBACK), -1):
                other = raw_lines[back]
                if (b"postscreen[" in other and b"[" + ip + b"]" in other) or \
                        (b"dnsblog[" in other and b"addr " + ip + b" " in other):
                    selected.add(back)
    return selected


def _tag_span(raw_lines: list[bytes], tag: bytes, anchors: set[int]) -> list[int]:
    """Lines with this smtpd tag, from the connect before the first anchor to the disconnect after."""
    tagged = _indices_with(raw_lines, tag)
    if not tagged:
        return []
    anchor_positions = [i for i in tagged if i in anchors]
    if not anchor_positions:
        return []
    first, last = min(anchor_positions), max(anchor_positions)
    start = first
    for i in reversed([t for t in tagged if t <= first]):
        start = i
        if tag + b"connect from " in raw_lines[i]:
            break
    end = last
    for i in [t for t in tagged if t >= last]:
        end = i
        if tag + b"disconnect from " in raw_lines[i]:
            break
        if i != last and tag + b"connect from " in raw_lines[i]:
            end = i - 1  # the pid was reused: stop before the next connection
            break
    return [t for t in tagged if start <= t <= end]


def _queue_ids_in(raw: bytes, tag: bytes) -> list[str]:
    at = raw.find(tag)
    if at < 0:
        return []
    rest = raw[at + len(tag):]
    colon = rest.find(b": ")
    if 0 < colon <= 24:
        token = rest[:colon].decode("ascii", "replace")
        from mailwarden.logs.readers.postfix import is_queue_id

        if is_queue_id(token):
            return [token]
    return []


def _select_exim(raw_lines, seeds, reader, source, first_lineno, year) -> set[int]:
    selected = set(seeds)
    ids: set[str] = set()
    endpoints: set[bytes] = set()
    for index in seeds:
        event = _parse_one(raw_lines[index], reader, source, first_lineno + index, year)
        if event.queue_id:
            ids.add(event.queue_id)
        ip, port = event.fields.get("client_ip"), event.fields.get("client_port")
        if ip and port:
            endpoints.add(f"[{ip}]:{port}".encode())
    for exim_id in ids:
        selected.update(_indices_with(raw_lines, exim_id.encode() + b" "))
    for endpoint in endpoints:
        selected.update(_indices_with(raw_lines, endpoint))
    return selected


def _select_mdaemon(raw_lines, seeds) -> set[int]:
    selected: set[int] = set()
    for index in seeds:
        ident = _mdaemon_ident(raw_lines[index])
        start = index
        while start > 0:
            raw = raw_lines[start]
            if _mdaemon_ident(raw) == ident and (b": Session " in raw or
                                                 b"Accepting SMTP connection" in raw):
                if b": Session " in raw or b": Session " not in raw_lines[start - 1]:
                    break
            start -= 1
        end = index
        while end < len(raw_lines) - 1:
            raw = raw_lines[end]
            if _mdaemon_ident(raw) == ident and b"SMTP session " in raw:
                break
            end += 1
        for i in range(start, end + 1):
            if ident is None or _mdaemon_ident(raw_lines[i]) == ident:
                selected.add(i)
    return selected


def _mdaemon_ident(raw: bytes) -> bytes | None:
    """The optional ``NN: `` session id after an MDaemon timestamp."""
    colon = raw.find(b": ", 15, 40)
    if colon < 0:
        return None
    rest = raw[colon + 2:colon + 10]
    head, sep, _ = rest.partition(b": ")
    return head if sep and head.isdigit() else None


# -- reading everything (shared with the index / hunt) ---------------------------------------

def read_sessions(paths: Iterable[str], *, fmt: str = "auto", year: int | None = None,
                  unparsed_sink: Callable[[LogLine], None] | None = None) -> Iterator[Session]:
    """Every session of every log (rotated sets in time order), streamed."""
    sources, problems = describe(list(paths))
    if problems and not sources:
        raise InputError("; ".join(problems))
    clock: SyslogYear | None = None
    assembler = SessionAssembler(on_unparsed=unparsed_sink)
    for source in sources:
        reader = choose_reader(source, fmt)
        if reader is None:
            continue
        if clock is None:
            clock = _clock_for(source, year)
        else:
            clock.reanchor(source.mtime)
        for event in iter_events(source, reader, clock):
            yield from assembler.feed(event)
    yield from assembler.flush()


# -- JSON shape (docs/json.md, "logs find") ------------------------------------------------------

def session_to_json(session: Session, *, message_id: str | None = None,
                    queue_id: str | None = None, site=None) -> dict:
    """One found session: the model, the transcript once, and the explanation."""
    from mailwarden.logs.explain import explain, pick_transaction
    from mailwarden.output import to_jsonable

    txn = pick_transaction(session, message_id, queue_id)
    data = to_jsonable(session)
    # Transaction lines repeat the session transcript: give their references instead.
    for txn_json, model_txn in zip(data["transactions"], session.transactions, strict=True):
        txn_json["lines"] = [f"{line.source}:{line.lineno}" for line in model_txn.lines]
    data["matched_transaction"] = session.transactions.index(txn) if txn is not None else None
    data["explanation"] = to_jsonable(explain(session, txn, site))
    return data
