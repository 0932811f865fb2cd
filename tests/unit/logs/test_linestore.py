"""linestore: raw log lines stored as zstd blocks, read back line by line and through the view."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import duckdb
import pytest
import zstandard

from mailwarden.logs import linestore
from mailwarden.logs.index import ensure_schema
from tests.conftest import corpus_path


@pytest.fixture
def con():
    con = duckdb.connect()
    ensure_schema(con)
    try:
        yield con
    finally:
        con.close()


def file_lines(path: Path) -> list[str]:
    """The file's lines as line_texts promises them: split on '\\n', UTF-8 with U+FFFD, one '\\r' cut."""
    data = path.read_bytes()
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    out = []
    for part in parts:
        text = part.decode("utf-8", "replace")
        out.append(text[:-1] if text.endswith("\r") else text)
    return out


def stored(con, source_id: int = 1) -> list[str]:
    n = con.execute("SELECT coalesce(sum(n_lines), 0) FROM line_blocks WHERE source_id = ?", [source_id]).fetchone()[0]
    texts = linestore.line_texts(con, [(source_id, i) for i in range(1, n + 1)])
    return [texts[(source_id, i)] for i in range(1, n + 1)]


def blocks(con, source_id: int = 1) -> list[tuple[int, int, bytes]]:
    rows = con.execute("SELECT first_lineno, n_lines, data FROM line_blocks WHERE source_id = ? "
                       "ORDER BY first_lineno", [source_id]).fetchall()
    return [(first, n, zstandard.ZstdDecompressor().decompress(data)) for first, n, data in rows]


def test_round_trip_real_corpus_log(con):
    log = corpus_path("fail2ban", "postfix.log")
    expected = file_lines(log)
    assert linestore.write_file(con, 1, str(log)) == len(expected) > 100
    assert stored(con) == expected
    # small blocks: many of them, still the same lines, and numbered without a gap
    assert linestore.write_file(con, 2, str(log), block_size=512) == len(expected)
    got = blocks(con, 2)
    assert len(got) > 10
    assert b"".join(raw for _f, _n, raw in got) == log.read_bytes()
    assert [f for f, _n, _r in got] == [1] + [sum(n for _f, n, _r in got[:i]) + 1 for i in range(1, len(got))]
    assert stored(con, 2) == expected


def test_gzip_input_and_a_truncated_gzip(con, tmp_path):
    log = corpus_path("fail2ban", "postfix.log")
    gz = tmp_path / "mail.log.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    assert linestore.write_file(con, 1, str(gz), compression="gzip") == len(file_lines(log))
    assert stored(con) == file_lines(log)
    big = tmp_path / "big.log"
    big.write_text("".join(f"line {i} {i * 7919 % 10007}\n" for i in range(200_000)))
    cut = tmp_path / "cut.log.gz"
    whole = gzip.compress(big.read_bytes())
    cut.write_bytes(whole[: len(whole) // 2])
    n = linestore.write_file(con, 2, str(cut), compression="gzip")  # keeps what could be read
    assert 50_000 < n < 150_000
    got = stored(con, 2)
    assert got[:-1] == file_lines(big)[: n - 1]
    assert file_lines(big)[n - 1].startswith(got[-1])      # the line the damage cut, as far as it went


def test_no_final_newline_and_empty_lines(con, tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"\n\nfirst\n\n\nlast without newline")
    assert linestore.write_file(con, 1, str(log)) == 6
    assert stored(con) == ["", "", "first", "", "", "last without newline"]
    only_newlines = tmp_path / "b.log"
    only_newlines.write_bytes(b"\n" * 1000)
    assert linestore.write_file(con, 2, str(only_newlines), block_size=64) == 1000
    assert stored(con, 2) == [""] * 1000
    assert all(n <= 64 for _f, n, _r in blocks(con, 2))
    empty = tmp_path / "c.log"
    empty.write_bytes(b"")
    assert linestore.write_file(con, 3, str(empty)) == 0
    assert blocks(con, 3) == []


def test_one_mebibyte_line_is_a_block_of_its_own(con, tmp_path):
    big = "x" * (1 << 20)
    log = tmp_path / "big.log"
    log.write_bytes(b"before\n" + big.encode() + b"\nafter\n")
    assert linestore.write_file(con, 1, str(log)) == 3
    got = blocks(con)
    assert [(f, n) for f, n, _r in got] == [(1, 1), (2, 1), (3, 1)]
    assert got[1][2] == big.encode() + b"\n"
    assert stored(con) == ["before", big, "after"]


def test_invalid_utf8_and_crlf(con, tmp_path):
    log = tmp_path / "bad.log"
    log.write_bytes(b"ok\r\n\xff\xfe broken \xc3\n\xe2\x82\xac euro\r\r\n")
    assert linestore.write_file(con, 1, str(log)) == 3
    assert stored(con) == ["ok", "\ufffd\ufffd broken \ufffd", "\u20ac euro\r"]   # one '\r' is cut


def test_blocks_are_cut_at_line_ends(con, tmp_path):
    lines = [f"line {i} " + "y" * (i * 37 % 300) for i in range(5000)]
    log = tmp_path / "many.log"
    log.write_text("".join(line + "\n" for line in lines))
    assert linestore.write_file(con, 1, str(log), block_size=4096) == 5000
    got = blocks(con)
    assert len(got) > 100
    for first, n, raw in got:
        assert raw.endswith(b"\n") and raw.count(b"\n") == n
        assert len(raw) <= 4096                              # no line here is longer than a block
        assert raw.split(b"\n")[0].decode() == lines[first - 1]
    assert sum(len(raw) for _f, _n, raw in got) == log.stat().st_size


def test_writer_slices_of_any_size_give_the_same_blocks(con):
    data = b"".join(b"%d %s\n" % (i, b"z" * (i % 50)) for i in range(3000))
    with linestore.BlockWriter(con, 1, block_size=1000) as writer:
        assert writer.add(data) == 3000
    one_slice = blocks(con, 1)
    cuts = [i + 1 for i, byte in enumerate(data) if byte == 0x0A]
    with linestore.BlockWriter(con, 2, block_size=1000, first_lineno=1) as writer:
        start = 0
        for end in cuts[::7] + [len(data)]:               # slices of 7 lines, ending at line ends
            if end > start:
                assert writer.add(data[start:end]) == data[start:end].count(b"\n")
                start = end
    assert blocks(con, 2) == one_slice
    assert all(len(raw) <= 1000 for _f, _n, raw in one_slice)


def test_first_lineno_and_close_count(con):
    writer = linestore.BlockWriter(con, 7, first_lineno=101)
    assert writer.add(b"a\nb\n") == 2
    assert writer.add(b"c") == 1
    with pytest.raises(ValueError):
        writer.add(b"d\n")                                  # after a slice without its newline
    assert writer.close() == 3
    assert linestore.line_texts(con, [(7, 101), (7, 103), (7, 104), (8, 101)]) == {(7, 101): "a", (7, 103): "c"}


def test_abort_inserts_nothing(con):
    writer = linestore.BlockWriter(con, 1, block_size=16)
    writer.add(b"some line\n" * 100)
    writer.abort()
    assert con.execute("SELECT count(*) FROM line_blocks").fetchone()[0] == 0
    with pytest.raises(RuntimeError), linestore.BlockWriter(con, 2) as writer:
        writer.add(b"lost\n")
        raise RuntimeError("the load failed")
    assert con.execute("SELECT count(*) FROM line_blocks").fetchone()[0] == 0


def test_line_texts_fetches_only_the_blocks_it_needs(con, tmp_path):
    log = tmp_path / "n.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 20001)))
    linestore.write_file(con, 1, str(log), block_size=1024)
    linestore.write_file(con, 2, str(log), block_size=1024)
    wanted = [(1, 5), (1, 19999), (2, 10000), (1, 5)]
    assert linestore.line_texts(con, wanted) == {(1, 5): "line 5", (1, 19999): "line 19999",
                                                 (2, 10000): "line 10000"}
    assert linestore.line_texts(con, []) == {}
    fetched = []
    real = linestore._decompress
    try:
        linestore._decompress = lambda frame: fetched.append(frame) or real(frame)
        linestore.line_texts(con, [(1, 5), (1, 6), (1, 19999), (2, 10000)])
    finally:
        linestore._decompress = real
    assert len(fetched) == 3                                # one block per distinct block, not per line


def test_view_gives_the_same_text(con, tmp_path):
    log = tmp_path / "v.log"
    log.write_bytes(b"one\n\ntwo\r\n\xff three\n" + b"w" * 5000 + b"\nlast")
    linestore.write_file(con, 1, str(log), block_size=64)
    linestore.write_file(con, 2, str(corpus_path("fail2ban", "postfix.log")))
    linestore.register_lines_view(con)
    for source_id in (1, 2):
        via_view = [t for (t,) in con.execute(
            "SELECT text FROM lines WHERE source_id = ? ORDER BY lineno", [source_id]).fetchall()]
        assert via_view == stored(con, source_id)
    assert con.execute("SELECT lineno FROM lines WHERE source_id = 1 ORDER BY lineno").fetchall() == [
        (i,) for i in range(1, 7)]
    assert con.execute("SELECT text FROM lines WHERE source_id = 1 AND lineno = 4").fetchone() == ("\ufffd three",)


def test_view_on_a_read_only_connection_without_external_access(tmp_path):
    db = tmp_path / "i.duckdb"
    con = duckdb.connect(str(db))
    ensure_schema(con)
    log = tmp_path / "r.log"
    log.write_text("alpha\nbeta\n")
    linestore.write_file(con, 1, str(log))
    con.close()
    ro = duckdb.connect(str(db), read_only=True)
    try:
        ro.execute("SET enable_external_access = false")
        ro.execute("SET lock_configuration = true")
        linestore.register_lines_view(ro)
        assert ro.execute("SELECT lineno, text FROM lines ORDER BY lineno").fetchall() == [(1, "alpha"), (2, "beta")]
    finally:
        ro.close()


def test_write_file_slices_cut_inside_long_lines(con, tmp_path, monkeypatch):
    """Reads that end inside a line (here: 1000-byte slices, lines up to 5000 bytes) lose nothing."""
    monkeypatch.setattr(linestore, "SLICE_SIZE", 1000)
    lines = [("q" * (i * 613 % 5000)) + f" {i}" for i in range(300)]
    log = tmp_path / "long.log"
    log.write_text("\n".join(lines))                     # no final newline either
    assert linestore.write_file(con, 1, str(log), block_size=4096) == 300
    assert stored(con) == lines
    assert b"".join(raw for _f, _n, raw in blocks(con)) == log.read_bytes()


def test_block_size_is_capped(con):
    with pytest.raises(ValueError):
        linestore.BlockWriter(con, 1, block_size=linestore.BLOCK_SIZE + 1)


@pytest.mark.parametrize("keep_order", [True, False])
def test_blocks_are_stored_in_file_order(con, keep_order):
    # a look-up reads the blocks of a few line numbers: row groups must hold ranges of them,
    # with and without preserve_insertion_order (the SQL loader turns it off for its parse)
    # (with it off, DuckDB stored 300 k rows on 4 threads out of order without ORDER BY; a
    # test that size takes 30 s of zstd calls, so this one only checks both settings work)
    con.execute(f"SET preserve_insertion_order = {str(keep_order).lower()}")
    data = b"".join(b"%d\n" % i for i in range(20_000))
    with linestore.BlockWriter(con, 1, block_size=64) as writer:
        writer.add(data)
    firsts = [f for (f,) in con.execute("SELECT first_lineno FROM line_blocks").fetchall()]  # storage order
    assert len(firsts) > 1000
    assert firsts == sorted(firsts)
    assert b"".join(raw for _f, _n, raw in blocks(con)) == data


def test_read_slices_reads_into_spare_buffers(tmp_path):
    # hunt's load hands each slice back once scanned: the same buffers are read into again
    from queue import SimpleQueue

    lines = [f"Mar  1 06:00:{i % 60:02d} mx1 postfix/smtpd[{i}]: connect from x{i}[10.0.0.{i % 250}]\n"
             for i in range(3000)]
    path = tmp_path / "mail.log"
    path.write_text("".join(lines))
    spare: SimpleQueue = SimpleQueue()
    seen, ids = [], set()
    for data in linestore.read_slices(str(path), size=4096, spare=spare):
        assert data.endswith(b"\n")
        seen.append(bytes(data))
        ids.add(id(data))
        spare.put(data)
    assert b"".join(seen) == path.read_bytes()
    assert len(seen) > 20 and len(ids) <= 2   # (one buffer in use and one being refilled at most)


def test_writer_releases_a_slice_only_once_its_blocks_are_compressed(con, tmp_path, monkeypatch):
    # logs index reads into released slices again: a slice handed back while one of its blocks
    # still waits for zstd would have that block's text overwritten by the next read. Here the
    # release overwrites the slice at once, and compression is slow, so any early release shows.
    slow = linestore._compress_block

    def compress_late(block):
        time.sleep(0.002)
        return slow(block)

    monkeypatch.setattr(linestore, "_compress_block", compress_late)
    lines = [f"Mar  1 06:00:{i % 60:02d} mx1 postfix/smtpd[{i}]: connect from x{i}[10.0.0.{i % 250}]\n"
             for i in range(4000)]
    path = tmp_path / "mail.log"
    path.write_text("".join(lines))
    released = []

    def release(data):
        data[:] = b"#" * len(data)   # what the next read into it would do
        released.append(len(data))

    with linestore.BlockWriter(con, 1, block_size=2048) as writer:
        for data in linestore.read_slices(str(path), size=16384):
            writer.add(data, release)
            time.sleep(0.005)   # the scan of a slice: compressing one takes longer (8 blocks)
    assert b"".join(raw for _f, _n, raw in blocks(con)) == path.read_bytes()
    assert len(released) > 3   # slices are released while the writer goes on, not only at the end
