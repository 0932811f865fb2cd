"""`mailwarden logs index` and `mailwarden logs sql` through the real CLI (in-process)."""

from __future__ import annotations

from tests.conftest import corpus_path


def test_index_then_sql_json(run_cli, tmp_path):
    db = tmp_path / "i.duckdb"
    log = corpus_path("fail2ban", "postfix.log")
    first = run_cli("logs", "index", str(log), "--db", str(db), "--year", "2005", "--json")
    assert first.exit_code == 0, first.stderr
    data = first.json()
    assert data["totals"]["loaded"] == 1 and data["totals"]["lines"] == 203
    assert data["sources"][0]["status"] == "loaded" and data["sources"][0]["dialect"] == "postfix"

    again = run_cli("logs", "index", str(log), "--db", str(db), "--json")
    assert again.json()["sources"][0]["status"] == "skipped"

    result = run_cli("logs", "sql", "--db", str(db), "--json",
                     "SELECT client_ip, count(*) AS n FROM rejects WHERE reason = 'Relay access denied' "
                     "GROUP BY 1 ORDER BY 1")
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert out["columns"] == ["client_ip", "n"]
    assert ["1.2.3.4", 1] in out["rows"]
    assert out["truncated"] is False

    limited = run_cli("logs", "sql", "--db", str(db), "--json", "--limit", "2", "SELECT lineno FROM lines ORDER BY 1")
    assert limited.json() == {"columns": ["lineno"], "rows": [[1], [2]], "row_count": 2, "truncated": True}

    rich = run_cli("logs", "sql", "--db", str(db), "SELECT ts AS relay_denied_at FROM rejects WHERE client_ip = '1.2.3.4' "
                   "AND reason = 'Relay access denied'")
    assert rich.exit_code == 0 and "relay_denied_at" in rich.stdout and "2005-07-12 07:47:48" in rich.stdout


def test_sql_errors_are_one_line(run_cli, tmp_path):
    db = tmp_path / "i.duckdb"
    run_cli("logs", "index", str(corpus_path("crowdsec-hub", "postfix-relay.log")), "--db", str(db))
    bad = run_cli("logs", "sql", "--db", str(db), "SELEC 1")
    assert bad.exit_code == 4 and "SQL:" in bad.stderr and "Traceback" not in bad.stderr
    # read-only: no writes to the index, no files written or read around it
    write = run_cli("logs", "sql", "--db", str(db), "DELETE FROM sessions")
    assert write.exit_code == 4
    outside = run_cli("logs", "sql", "--db", str(db), f"COPY sessions TO '{tmp_path / 'x.csv'}'")
    assert outside.exit_code == 4 and not (tmp_path / "x.csv").exists()
    missing = run_cli("logs", "sql", "--db", str(tmp_path / "nope.duckdb"), "SELECT 1")
    assert missing.exit_code == 4 and "no such index" in missing.stderr


def test_index_failed_input_exit_code(run_cli, tmp_path):
    db = tmp_path / "i.duckdb"
    result = run_cli("logs", "index", str(tmp_path / "absent.log"), "--db", str(db), "--json")
    assert result.exit_code == 4
    assert result.json()["sources"][0]["status"] == "failed"


def test_foreign_or_locked_database_is_one_line(run_cli, tmp_path):
    import duckdb

    foreign = tmp_path / "other.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE invoices (n INTEGER)")
    con.close()
    result = run_cli("logs", "index", str(corpus_path("crowdsec-hub", "postfix-spam.log")), "--db", str(foreign))
    assert result.exit_code == 4 and "not a mailwarden log index" in result.stderr
    assert duckdb.connect(str(foreign), read_only=True).execute(
        "SELECT count(*) FROM duckdb_tables()").fetchall() == [(1,)]       # left alone
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    bad = run_cli("logs", "sql", "--db", str(junk), "SELECT 1")
    assert bad.exit_code == 4 and "cannot open the index" in bad.stderr and "Traceback" not in bad.stderr
