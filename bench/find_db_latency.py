"""find_sessions latency on an index: median and p95 over random Message-IDs.

Each query opens a fresh connection, as a new `mailwarden logs find --db` process does.

    python bench/find_db_latency.py --db bench/out/bench-index.duckdb [--n 30] [--seed 1] [--by queue_id]

A/B against another version of logs/index.py, interleaved in one process (A B, B A, A B ...: the
machine is shared, so only runs side by side compare), the answers checked to be identical:

    git show HEAD:src/mailwarden/logs/index.py > /tmp/index_head.py
    python bench/find_db_latency.py --db bench/out/bench-index.duckdb --n 100 --against /tmp/index_head.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time

import duckdb

from mailwarden.logs import index


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load_module(path: str):
    """Another index.py, as a module of its own (it imports the rest of mailwarden as installed)."""
    spec = importlib.util.spec_from_file_location("mw_index_against", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _answer(sessions) -> str:
    from mailwarden.output import to_jsonable

    return json.dumps(to_jsonable(sessions), sort_keys=True, default=str)


def _summary(ms: list[float]) -> str:
    return (f"median {statistics.median(ms):.1f} ms, p95 {_pct(ms, 0.95):.1f} ms, "
            f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, default=30, help="queries (random Message-IDs)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--by", choices=["message_id", "queue_id"], default="message_id")
    parser.add_argument("--against", metavar="INDEX_PY",
                        help="another logs/index.py: run both, interleaved, on the same keys")
    args = parser.parse_args()

    con = duckdb.connect(args.db, read_only=True)
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    keys = [r[0] for r in con.execute(
        f"SELECT {args.by} FROM transactions WHERE {args.by} IS NOT NULL AND {args.by} <> '' "
        f"USING SAMPLE reservoir({args.n * 2} ROWS) REPEATABLE ({args.seed})").fetchall()]
    con.close()
    random.Random(args.seed).shuffle(keys)
    keys = keys[:args.n]

    impls = {"installed": index.find_sessions}
    if args.against:
        impls[os.path.basename(args.against)] = _load_module(args.against).find_sessions
    names = list(impls)
    for find in impls.values():
        find(args.db, **{args.by: keys[0]})  # warm the OS page cache and the imports once
    # what opening costs find_sessions: its own settings when the index module names them
    open_config = getattr(index, "LOOKUP_CONFIG", {"threads": 1})
    load_before = os.getloadavg()
    opens: list[float] = []
    totals: dict[str, list[float]] = {name: [] for name in names}
    found = {name: 0 for name in names}
    differ = 0
    for i, key in enumerate(keys):
        t0 = time.perf_counter()
        duckdb.connect(args.db, read_only=True, config=open_config).close()
        opens.append(time.perf_counter() - t0)
        answers = set()
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            result = impls[name](args.db, **{args.by: key})
            totals[name].append((time.perf_counter() - t0) * 1000)
            found[name] += bool(result)
            if len(names) > 1:
                answers.add(_answer(result))
        differ += len(answers) > 1

    load_after = os.getloadavg()
    print(f"machine: {platform.node()} {os.cpu_count()} cpus, load {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} (after: {load_after[0]:.2f}), duckdb {duckdb.__version__}")
    print(f"index: {args.db} ({os.path.getsize(args.db) / 2**20:.0f} MiB, {sessions} sessions)")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    for name in names:
        label = "find_sessions" if len(names) == 1 else f"{name}: find_sessions"
        print(f"{label}({args.by}=...) x{len(keys)}, fresh connection each, {found[name]} found: "
              f"{_summary(totals[name])}")
    print(f"  of which opening the file alone ({json.dumps(open_config)}): "
          f"median {statistics.median(opens) * 1000:.1f} ms")
    if len(names) > 1:
        print(f"  answers that differ between the two: {differ}")
    return 0 if all(n == len(keys) for n in found.values()) and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
