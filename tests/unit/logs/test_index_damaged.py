"""A damaged compressed log is reported as failed, not indexed as an empty log."""

from __future__ import annotations

import gzip

from mailwarden.errors import ExitCode
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
