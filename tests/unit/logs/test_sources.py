"""Opening logs: compression by magic, rotated sets in time order, stdin, over-long lines, junk."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os

from mailwarden.logs.sources import ReadStats, describe, iter_lines, order_rotated, text_lines
from tests.conftest import DATA

REAL = DATA / "logs" / "postfix" / "postfix-3.7-maillog.log"


def test_rotated_sets_oldest_first():
    given = ["/v/mail.log", "/v/mail.log.1", "/v/mail.log.3.gz", "/v/mail.log.2.gz", "/v/other.log",
             "/v/maillog-20240102.gz", "/v/maillog-20240101", "/v/maillog"]
    assert order_rotated(given) == [
        "/v/mail.log.3.gz", "/v/mail.log.2.gz", "/v/mail.log.1", "/v/mail.log", "/v/other.log",
        "/v/maillog-20240101", "/v/maillog-20240102.gz", "/v/maillog"]


def test_compressed_files_stream_the_same_lines(tmp_path):
    data = REAL.read_bytes()
    paths = {}
    for name, opener in (("a.gz", gzip.open), ("b.bz2", bz2.open), ("c.xz", lzma.open)):
        path = tmp_path / name
        with opener(path, "wb") as fh:
            fh.write(data)
        paths[name] = path
    # compressed without the suffix (logrotate "compress" with a custom name): magic decides
    plain_named = tmp_path / "mail.log.1"
    plain_named.write_bytes(gzip.compress(data))
    sources, problems = describe([str(p) for p in paths.values()] + [str(plain_named)])
    assert not problems
    assert [s.compression for s in sources] == ["gzip", "bzip2", "xz", "gzip"]
    want = [line.text for line in text_lines(data)]
    for source in sources:
        assert [line.text for line in iter_lines(source)] == want


def test_unreadable_inputs_are_reported(tmp_path):
    sources, problems = describe([str(tmp_path / "missing.log"), str(tmp_path)])
    assert sources == []
    assert "missing.log" in problems[0] and "not a regular file" in problems[1]


def test_long_lines_nul_and_binary_junk(tmp_path):
    path = tmp_path / "junk.log"
    with open(path, "wb") as fh:
        fh.write(b"first\n")
        fh.write(b"x" * (1 << 20) + b"\n")          # a 1 MB line
        fh.write(b"nul\x00byte \xff\xfe invalid utf-8\n")
        fh.write(b"last without newline")
    stats = ReadStats()
    (source,), _ = describe([str(path)])
    lines = list(iter_lines(source, stats))
    assert [line.lineno for line in lines] == [1, 2, 3, 4]
    assert len(lines[1].text) == 64 * 1024 and stats.truncated_lines == 1
    assert "\x00" not in lines[2].text and "\ufffd" in lines[2].text
    assert lines[3].text == "last without newline"
    assert stats.bytes == os.path.getsize(path)


def test_truncated_gzip_is_reported_not_raised(tmp_path):
    path = tmp_path / "cut.log.gz"
    blob = gzip.compress(REAL.read_bytes() * 20)
    path.write_bytes(blob[: len(blob) // 2])
    stats = ReadStats()
    (source,), _ = describe([str(path)])
    lines = list(iter_lines(source, stats))
    assert lines and stats.unreadable
