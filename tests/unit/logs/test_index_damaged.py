"""A damaged compressed log is reported as failed, not indexed as an empty log."""

from __future__ import annotations

import gzip

from mailwarden.errors import ExitCode
from mailwarden.logs.index import index_logs
from tests.conftest import DATA

REAL_LOG = DATA / "logs" / "postfix" / "postfix-3.7-maillog.log"  # written by a real Postfix 3.7


def test_truncated_gzip_fails_and_the_good_file_still_loads(tmp_path, run_cli):
    good = tmp_path / "mail.log.1.gz"
    good.write_bytes(gzip.compress(REAL_LOG.read_bytes()))
    truncated = tmp_path / "mail.log.2.gz"
    truncated.write_bytes(good.read_bytes()[:300])
    db = tmp_path / "index.duckdb"
    result = run_cli("logs", "index", str(truncated), str(good), "--db", str(db), "--json")
    assert result.exit_code == ExitCode.INPUT
    doc = result.json()
    status = {s["path"].rsplit("/", 1)[-1]: s for s in doc["sources"]}
    assert status["mail.log.2.gz"]["status"] == "failed"
    assert "truncated or corrupt" in status["mail.log.2.gz"]["message"]
    assert status["mail.log.1.gz"]["status"] == "loaded"
    assert status["mail.log.1.gz"]["lines"] == len(REAL_LOG.read_text().splitlines())


def test_gzip_cut_in_the_middle_is_reported_not_silent(tmp_path):
    # the compressed stream breaks off after many lines: they are loaded, and the result says
    # the file is damaged (DuckDB's own gzip reader used to stop there without a word)
    lines = [f"Mar  1 10:{i // 60 % 60:02d}:{i % 60:02d} mx postfix/smtpd[{100 + i % 7}]: connect from "
             f"host{i}.example[192.0.2.{i % 250}]" for i in range(200_000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    log = tmp_path / "mail.log.2.gz"
    log.write_bytes(whole[: len(whole) * 3 // 4])
    summary = index_logs(tmp_path / "i.duckdb", [str(log)], year=2026)
    (src,) = summary.sources
    assert src.status == "loaded", src
    assert 0 < src.lines < len(lines)
    assert "damaged" in (src.message or "")


def test_exim_gzip_cut_in_the_middle_is_reported(tmp_path):
    # the Exim/MDaemon path reads a .gz itself (raw lines and Python readers): a broken-off
    # stream keeps what was read and says so, as the Postfix path does
    from tests.conftest import corpus_path

    source = corpus_path("crowdsec-hub", "exim-logs.log")
    text = source.read_bytes() if source.exists() else b""
    if not text:
        import pytest

        pytest.skip(f"{source} not present")
    whole = gzip.compress(text * max(1, (4 << 20) // len(text)))
    log = tmp_path / "mainlog.1.gz"
    log.write_bytes(whole[: len(whole) * 3 // 4])
    summary = index_logs(tmp_path / "i.duckdb", [str(log)])
    (src,) = summary.sources
    assert src.status == "loaded" and src.dialect == "exim", src
    assert "damaged" in (src.message or "")
