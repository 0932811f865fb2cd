"""The raw text of every loaded log line, stored as zstd blocks (table ``line_blocks``).

One row per block: ``n_lines`` consecutive physical lines of one source, from ``first_lineno``
on, as one zstd frame of their raw bytes (each with its '\\n'; the last line of a file may
lack it). Blocks are about `BLOCK_SIZE` bytes of raw text, cut at line ends; a line longer
than that is a block of its own.

Why blocks and not one DuckDB row per line: the per-line table cost 5.6-7 s of the 40 s it
took to index a 1 GiB Postfix log. ``zstandard`` compresses 256 KiB blocks in worker threads
that release the GIL, beside the DuckDB work of the main thread (docs/log-index.md).

* `BlockWriter` / `write_file` store a file's lines;
* `line_texts` fetches the text of given (source_id, lineno) pairs (transcripts, `find --db`);
* `register_lines_view` gives a connection the old ``lines(source_id, lineno, text)`` table as
  a TEMP VIEW (``logs sql``).
"""

from __future__ import annotations

import array
import bisect
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue

import duckdb
import zstandard

BLOCK_SIZE = 256 * 1024
# read_slices reads the file in slices this large (cut at a line end): under glibc's 32 MiB
# mmap threshold, so a freed slice's memory is reused, not mapped and zeroed again (on the
# 1 GiB bench log 32 MiB slices cost 5 s more of page clearing than 16 MiB ones).
SLICE_SIZE = 16 << 20
GZIP_READ_SIZE = 1 << 20
# BlockWriter.add waits for the oldest compressions once this many raw bytes are queued, so a
# fast reader cannot pile a whole file up in memory in front of the workers.
MAX_QUEUED_BYTES = 64 << 20
ZSTD_LEVEL = 1  # measured on the 1 GiB bench log: ratio 7.28 (level 3: 7.20), 655 vs 510 MiB/s per core
# line_texts: blocks fetched per query (one UNION ALL branch each)
MAX_BLOCKS_PER_QUERY = 256
VIEW_FUNCTION = "mw_block_lines"

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # one compressor per worker thread: a ZstdCompressor must not be used by two threads at once
    comp = getattr(_local, "compressor", None)
    if comp is None:
        comp = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return comp


def _decompress(frame: bytes) -> bytes:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec.decompress(frame)


def _compress_block(block: memoryview | bytes) -> bytes:
    return _compressor().compress(block)


try:  # the compiled count (memchr) when the extension is built; bytes.count took 3x as long
    from mailwarden.logs._pfscan import count_lines as _count_newlines
except ImportError:  # pragma: no cover - exercised without the C extension
    def _count_newlines(data, start: int, end: int) -> int:
        return data.count(b"\n", start, end)


def _lines_in(data: bytes, start: int, end: int) -> int:
    """Physical lines in data[start:end]: its '\\n's, plus one for a last line without one."""
    n = _count_newlines(data, start, end)
    return n + 1 if end > start and data[end - 1] != 0x0A else n


def block_text(raw: bytes) -> str:
    """A decompressed block as one string of lines joined by '\\n', without the last line's
    '\\n': UTF-8 with U+FFFD for bad bytes, one trailing '\\r' cut from every line."""
    text = raw.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if "\r" in text:
        # non-overlapping, left to right: "a\r\r\n" -> "a\r\n", one '\r' less per line
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    return text


def split_block(raw: bytes) -> list[str]:
    """The lines of one decompressed block (see `block_text`)."""
    return block_text(raw).split("\n")


def _joined(frames: list[bytes]) -> tuple[array.array, bytes]:
    """Frames as one chunk of a binary column: its offsets and its bytes."""
    return array.array("i", itertools.accumulate(map(len, frames), initial=0)), b"".join(frames)


# BlockWriter joins the frames of this many consecutive blocks into one chunk of the Arrow
# column it inserts, as soon as they are compressed (during the scan, when this thread has
# little else to do), and lets go of the frames: their memory is used again for the next ones.
# pa.array(frames) at the end took 0.3-0.6 s of the 1 GiB bench log's load holding the GIL (the
# halves' merge waited for it) and copied the 140 MiB into fresh pages; one chunk per frame, no
# copy at all, cost DuckDB more per row than the copy.
FRAMES_PER_CHUNK = 64


class BlockWriter:
    """Cut slices of whole lines into blocks, compress them in threads, insert them at `close`.

    ``add`` may be called with slices of any size (each ending with '\\n', or the end of the
    file); a tail shorter than the block size is carried into the next slice, so blocks are
    about ``block_size`` bytes however the caller slices. The DuckDB connection is used only
    by ``close`` in the calling thread, never by a worker.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, source_id: int, *, first_lineno: int = 1,
                 block_size: int = BLOCK_SIZE, threads: int = 2) -> None:
        if not 1 <= block_size <= BLOCK_SIZE:
            # line_texts relies on a block holding at most BLOCK_SIZE lines
            raise ValueError(f"block_size must be between 1 and {BLOCK_SIZE}")
        self.con = con
        self.source_id = int(source_id)
        self.first_lineno = int(first_lineno)
        self.block_size = block_size
        self.lines = 0
        self._pending = b""            # a tail shorter than block_size, not yet submitted
        self._pending_lines = 0
        self._ended = False            # a slice without a final '\n' was seen: the file's end
        self._blocks: list[tuple[int, Future]] = []   # (lines, future of the compression), in file order
        self._frames: list[bytes | None] = []         # each block's frame, until joined into a chunk
        self._chunks: list[tuple[array.array, bytes]] = []   # the frames joined (see _join_done)
        self._n_joined = 0
        self._queued: deque[tuple[Future, int]] = deque()
        self._queued_bytes = 0
        # slices given with a release function: (slice, futures of its blocks, release), in order
        self._held: deque[tuple[object, list[Future], Callable]] = deque()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(max_workers=max(1, threads),
                                                                   thread_name_prefix="mw-zstd")
        self._closed = False

    # -- context manager: close on success, abort on an exception
    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._closed:
                self.close()
        else:
            self.abort()

    def add(self, data: bytes, release: Callable[[object], None] | None = None) -> int:
        """Queue a slice of whole lines; returns how many lines it holds.

        ``release(data)`` is called once no block of ``data`` is waiting to be compressed (from
        this or a later ``add``, in the caller's thread), so that the caller can read into it
        again; slices still held at ``close`` are not released (the reading is over by then).
        Without it, the blocks keep views of ``data`` until they are compressed."""
        first_block = len(self._blocks)
        try:
            return self._add(data)
        finally:
            if release is not None:
                self._held.append((data, [f for _n, f in self._blocks[first_block:]], release))
            self._release_done()
            self._join_done()

    def _release_done(self) -> None:
        while self._held and all(f.done() for f in self._held[0][1]):
            data, _futures, release = self._held.popleft()
            release(data)

    def _add(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("BlockWriter is closed")
        if not data:
            return 0
        if self._ended:
            raise ValueError("BlockWriter.add: the previous slice did not end with a newline")
        if not data.endswith(b"\n"):
            self._ended = True
        view = memoryview(data)
        size, bs = len(data), self.block_size
        total = pos = 0
        if self._pending:
            room = bs - len(self._pending)
            if size <= room:
                n = _lines_in(data, 0, size)
                self._pending += data
                self._pending_lines += n
                self.lines += n
                return n
            nl = data.rfind(b"\n", 0, room)
            if nl >= 0:
                n = _lines_in(data, 0, nl + 1)
                self._pending += data[: nl + 1]
                self._pending_lines += n
                total += n
                pos = nl + 1
            self._submit(self._pending, self._pending_lines)
            self._pending, self._pending_lines = b"", 0
        while pos < size:
            if size - pos < bs:          # the tail: wait for more lines to fill the block
                self._pending = bytes(view[pos:])
                self._pending_lines = _lines_in(data, pos, size)
                total += self._pending_lines
                break
            nl = data.rfind(b"\n", pos, pos + bs)
            if nl < 0:                   # one line longer than a block: a block of its own
                nl = data.find(b"\n", pos + bs)
                end = size if nl < 0 else nl + 1
            else:
                end = nl + 1
            n = _lines_in(data, pos, end)
            self._submit(view[pos:end], n)
            total += n
            pos = end
        self.lines += total
        return total

    def _join_done(self, final: bool = False) -> None:
        """Join the frames of each FRAMES_PER_CHUNK blocks whose compressions are done into one
        chunk, in file order; ``final``: all of them, waiting for the compressions (a failed
        one raises here)."""
        while self._n_joined < len(self._blocks):
            end = self._n_joined + FRAMES_PER_CHUNK
            if end > len(self._blocks):
                if not final:
                    return
                end = len(self._blocks)
            futures = [future for _n, future in self._blocks[self._n_joined:end]]
            if not final and not all(future.done() for future in futures):
                return
            for future in futures:
                future.result()
            self._chunks.append(_joined(self._frames[self._n_joined:end]))
            self._frames[self._n_joined:end] = [None] * (end - self._n_joined)
            self._n_joined = end

    def _compress_into(self, index: int, block: bytes | memoryview) -> None:
        self._frames[index] = _compress_block(block)

    def _submit(self, block: bytes | memoryview, n_lines: int) -> None:
        assert self._pool is not None
        self._frames.append(None)
        future = self._pool.submit(self._compress_into, len(self._frames) - 1, block)
        self._blocks.append((n_lines, future))
        self._queued.append((future, len(block)))
        self._queued_bytes += len(block)
        while self._queued_bytes > MAX_QUEUED_BYTES or (self._queued and self._queued[0][0].done()):
            done, size = self._queued.popleft()
            done.result()
            self._queued_bytes -= size

    def close(self) -> int:
        """Wait for the compressions, insert every block in one INSERT; returns the line count."""
        if self._closed:
            raise ValueError("BlockWriter is closed")
        try:
            if self._pending:
                self._submit(self._pending, self._pending_lines)
                self._pending, self._pending_lines = b"", 0
            self._join_done(final=True)
        except BaseException:
            self.abort()
            raise
        self._shutdown()
        self._closed = True
        if self._blocks:
            import pyarrow as pa

            firsts, counts = [], []
            lineno = self.first_lineno
            for n, _future in self._blocks:
                firsts.append(lineno)
                counts.append(n)
                lineno += n
            self._blocks.clear()
            binary = pa.binary()
            data = pa.chunked_array([pa.Array.from_buffers(binary, len(offsets) - 1, [None, pa.py_buffer(offsets),
                                                                                       pa.py_buffer(joined)])
                                     for offsets, joined in self._chunks], binary)
            self._chunks.clear()
            table = pa.table({
                "source_id": pa.array([self.source_id] * len(firsts), pa.int32()),
                "first_lineno": pa.array(firsts, pa.int64()),
                "n_lines": pa.array(counts, pa.int32()),
                "data": data,
            })
            name = f"mw_line_blocks_{id(self):x}"
            self.con.register(name, table)
            try:
                # Stored in file order, so that the min/max of first_lineno per row group stay
                # tight: the rows are, and DuckDB keeps them so unless preserve_insertion_order
                # is off (the SQL loader's parse), when ORDER BY has to say it. It copies the
                # blocks twice: 0.47 s for the 140 MiB of the 1 GiB bench log without, 0.72-0.93 s with.
                (keep_order,) = self.con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
                self.con.execute(f"""
                    INSERT INTO line_blocks (source_id, first_lineno, n_lines, data)
                    SELECT source_id, first_lineno, n_lines, data FROM {name}
                    {"" if keep_order else "ORDER BY first_lineno"}
                """)
            finally:
                self.con.unregister(name)
        return self.lines

    def abort(self) -> None:
        """Drop everything queued; nothing is inserted."""
        for _n, future in self._blocks:
            future.cancel()
        self._shutdown()
        self._blocks.clear()
        self._frames.clear()
        self._chunks.clear()
        self._queued.clear()
        self._queued_bytes = 0
        self._pending, self._pending_lines = b"", 0
        self._closed = True

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class LineTooLong(ValueError):
    """A line longer than ``read_slices``' ``max_line`` (no line end within that many bytes)."""


def _slice_buffer(spare: SimpleQueue | None, length: int) -> bytearray:
    """A bytearray of ``length`` bytes: a spare one when there is one (its old text is overwritten)."""
    try:
        buf = spare.get_nowait() if spare is not None else None
    except Empty:
        buf = None
    if buf is None:
        return bytearray(length)
    try:
        if len(buf) > length:
            del buf[length:]
        elif len(buf) < length:
            buf.extend(bytes(length - len(buf)))
    except BufferError:  # a view of it is still alive somewhere (a compression worker's last moment)
        return bytearray(length)
    return buf


def read_slices(path: str, compression: str = "none", size: int = SLICE_SIZE, *,
                on_damage: Callable[[], None] | None = None, max_line: int | None = None,
                start: int = 0, stop: int | None = None, spare: SimpleQueue | None = None) -> Iterator[bytearray]:
    """The file (plain, or ``compression='gzip'``) in slices of about ``size`` bytes of text,
    each ending at a line end (the last one at the file's end); what a Postfix load feeds its
    scanner and this module's ``write_file`` stores.

    Each slice is a bytearray of its own, read in place (``readinto``), so the text is copied
    once. A damaged gzip stream raises, unless ``on_damage`` is given: then the file ends where
    the stream breaks (what was read is kept, to within one 1 MiB read step) and ``on_damage``
    is called. ``max_line``: raise LineTooLong rather than hold a longer line in memory.
    ``start``/``stop``: only these bytes of a plain file (``start`` at a line's first byte).
    ``spare``: slices the caller is done with (put there by it) are read into again rather than
    new ones allocated: fresh memory costs a page fault per 4 KiB, dear on this project's VMs.
    """
    if compression == "gzip":
        import gzip

        stream = gzip.open(path, "rb")
        step = GZIP_READ_SIZE  # small steps: a step that hits the damage loses only its own bytes
    elif compression in ("none", "", None):
        stream = open(path, "rb")
        step = size
    else:
        raise ValueError(f"read_slices: unsupported compression {compression!r}")
    if start or stop is not None:
        if compression == "gzip":
            stream.close()
            raise ValueError("read_slices: start/stop need a plain file")
        stream.seek(start)
    left = None if stop is None else max(0, stop - start)
    with stream:
        carry = b""
        ended = False
        while not ended:
            buf = _slice_buffer(spare, len(carry) + size)
            buf[:len(carry)] = carry
            view = memoryview(buf)
            filled = len(carry)
            while filled < len(buf):
                want = step if left is None else min(step, left)
                try:
                    got = stream.readinto(view[filled:filled + want]) if want else 0
                except (OSError, EOFError, ValueError):
                    if compression != "gzip" or on_damage is None:
                        raise
                    on_damage()
                    got = 0
                if not got:
                    ended = True
                    break
                filled += got
                if left is not None:
                    left -= got
            view.release()
            del buf[filled:]
            if ended:
                if buf:
                    yield buf
                return
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if max_line is not None and filled > max_line:
                    raise LineTooLong(f"{path}: a line of over {max_line} bytes")
                carry = bytes(buf)
                continue
            carry = bytes(buf[cut:])
            del buf[cut:]
            yield buf


def write_file(con: duckdb.DuckDBPyConnection, source_id: int, path: str, *,
               compression: str = "none", block_size: int = BLOCK_SIZE,
               on_damage: Callable[[], None] | None = None) -> int:
    """Store every line of the file at ``path`` (plain, or ``compression='gzip'``); returns the count.

    A damaged gzip stream ends the file where it breaks (as the clean copy does): what was read
    is kept, and ``on_damage`` is called so that the caller can say so.
    """
    with BlockWriter(con, source_id, block_size=block_size) as writer:
        for data in read_slices(path, compression, on_damage=on_damage or (lambda: None)):
            writer.add(data)
    return writer.lines


# -- reading ------------------------------------------------------------------------------------

def line_texts(cursor: duckdb.DuckDBPyConnection,
               wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """The text of each (source_id, lineno) asked for (lines not stored are left out).

    Two small queries, whatever the number of lines (up to MAX_BLOCKS_PER_QUERY blocks): the
    block boundaries near the wanted lines (no ``data`` read), then exactly the blocks holding
    a wanted line, each decompressed once. One query with the exact test in SQL was slower
    (24 ms vs 3 ms on the 1 GiB bench log): DuckDB reads ``data`` for every row of the range
    before it evaluates a filter it cannot push into the scan.
    """
    by_source: dict[int, set[int]] = {}
    for source_id, lineno in wanted:
        by_source.setdefault(int(source_id), set()).add(int(lineno))
    if not by_source:
        return {}
    # A block holds at most BLOCK_SIZE lines (each has at least its '\n'), so the block of line
    # L starts in (L - BLOCK_SIZE, L]: literal bounds, checked against each row group's min/max.
    conds = []
    for source_id, numbers in sorted(by_source.items()):
        conds.append(f"(source_id = {source_id} AND first_lineno BETWEEN "
                     f"{max(1, min(numbers) - BLOCK_SIZE + 1)} AND {max(numbers)})")
    bounds: dict[int, list[tuple[int, int]]] = {}
    for source_id, first, n in cursor.execute(
            f"SELECT source_id, first_lineno, n_lines FROM line_blocks WHERE {' OR '.join(conds)}").fetchall():
        bounds.setdefault(source_id, []).append((first, n))
    needed: set[tuple[int, int]] = set()
    for source_id, numbers in by_source.items():
        spans = sorted(bounds.get(source_id, ()))
        starts = [first for first, _n in spans]
        for lineno in numbers:
            i = bisect.bisect_right(starts, lineno) - 1
            if i >= 0 and lineno < spans[i][0] + spans[i][1]:
                needed.add((source_id, spans[i][0]))
    if not needed:
        return {}
    out: dict[tuple[int, int], str] = {}
    ordered = sorted(needed)
    for start in range(0, len(ordered), MAX_BLOCKS_PER_QUERY):
        # One equality per block, UNION ALL: DuckDB pushes `first_lineno = N` into the scan and
        # reads `data` for that row only; an IN list or a range would make it read the data of
        # every row it spans (180 ms for two adjacent blocks on the 1 GiB bench log, vs 2 ms).
        sql = " UNION ALL ".join(
            f"SELECT source_id, first_lineno, data FROM line_blocks "
            f"WHERE source_id = {source_id} AND first_lineno = {first}"
            for source_id, first in ordered[start:start + MAX_BLOCKS_PER_QUERY])
        for source_id, first, data in cursor.execute(sql).fetchall():
            numbers = by_source[source_id]
            for i, text in enumerate(split_block(_decompress(data))):
                if first + i in numbers:
                    out[(source_id, first + i)] = text
    return out


def register_lines_view(con: duckdb.DuckDBPyConnection) -> None:
    """TEMP VIEW ``lines(source_id, lineno, text)`` over ``line_blocks``, for ad-hoc SQL.

    Every query on the view decompresses the blocks it reads (the whole table unless the
    query's source_id filter is on ``line_blocks`` itself): fine for ``logs sql``, not a
    look-up path.
    """
    import pyarrow as pa

    def block_lines(frames):  # a pyarrow BinaryArray in, a list<string> array out
        import pyarrow.compute as pc

        # one Python string per block, split by Arrow: no Python object per line
        # (a DuckDB vector is at most 2048 blocks of ~256 KiB: far below pa.string()'s 2 GiB)
        texts = pa.array([None if f is None else block_text(_decompress(f)) for f in frames.to_pylist()],
                         pa.string())
        return pc.split_pattern(texts, "\n")

    con.create_function(VIEW_FUNCTION, block_lines, ["BLOB"], "VARCHAR[]", type="arrow",
                        null_handling="special", side_effects=False)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW lines AS
        SELECT source_id, first_lineno + generate_subscripts(t, 1) - 1 AS lineno, unnest(t) AS text
        FROM (SELECT source_id, first_lineno, {VIEW_FUNCTION}(data) AS t FROM line_blocks)
    """)
