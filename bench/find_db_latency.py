"""find_sessions latency on an index: median and p95 over random Message-IDs.

Each query opens a fresh connection, as a new `mailwarden logs find --db` process does.

    python bench/find_db_latency.py --db bench/out/bench-index.duckdb [--n 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time

import duckdb

from mailwarden.logs.index import find_sessions


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, default=30, help="queries (random Message-IDs)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--by", choices=["message_id", "queue_id"], default="message_id")
    args = parser.parse_args()

    con = duckdb.connect(args.db, read_only=True)
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    keys = [r[0] for r in con.execute(
        f"SELECT {args.by} FROM transactions WHERE {args.by} IS NOT NULL AND {args.by} <> '' "
        f"USING SAMPLE reservoir({args.n * 2} ROWS) REPEATABLE ({args.seed})").fetchall()]
    con.close()
    random.Random(args.seed).shuffle(keys)
    keys = keys[:args.n]

    find_sessions(args.db, **{args.by: keys[0]})  # warm the OS page cache once
    opens, totals, found = [], [], 0
    for key in keys:
        t0 = time.perf_counter()
        duckdb.connect(args.db, read_only=True).close()
        opens.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = find_sessions(args.db, **{args.by: key})
        totals.append(time.perf_counter() - t0)
        found += bool(result)

    ms = [t * 1000 for t in totals]
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, duckdb {duckdb.__version__}")
    print(f"index: {args.db} ({os.path.getsize(args.db) / 2**20:.0f} MiB, {sessions} sessions)")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"find_sessions({args.by}=...) x{len(keys)}, fresh connection each, {found} found: "
          f"median {statistics.median(ms):.1f} ms, p95 {_pct(ms, 0.95):.1f} ms, "
          f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")
    print(f"  of which opening the file alone: median {statistics.median(opens) * 1000:.1f} ms")
    return 0 if found == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
