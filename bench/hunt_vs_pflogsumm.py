#!/usr/bin/env python3
"""`mailwarden hunt` (from scratch and from the index) next to `pflogsumm`, on one Postfix log.

All runs read the same file in the same process run, one after the other:

1. ``pflogsumm LOG``                       (Debian package; the reference)
2. ``mailwarden hunt LOG --json``          (from scratch: load into a temporary index, rank)
   (1 and 2 alternate for ``--rounds`` rounds: this VM's speed drifts by 20-30% within
   minutes, so the ratio is taken of the medians; each round's own ratio is printed too)
3. ``mailwarden logs index LOG --db DB``   (build the index once; not part of the comparison)
4. ``mailwarden hunt --db DB --json``      (from the index: rank only)

Prints the machine, the input size, the exact commands, each time, lines/s and the ratios,
and the top suspects hunt found (the generator plants three; it prints their names).

Usage::

    python bench/hunt_vs_pflogsumm.py                      # bench/out/postfix-1g.log (made if absent)
    python bench/hunt_vs_pflogsumm.py --log other.log --skip-pflogsumm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import count_lines, cpu_model, mailwarden_command

HERE = Path(__file__).resolve().parent
DEFAULT_LOG = HERE / "out" / "postfix-1g.log"


def run(cmd: list[str], stdout_path: Path | None = None) -> tuple[float, int, str]:
    """Wall time, exit code and (when captured) stdout of one command."""
    print(f"$ {shlex.join(cmd)}" + (f" > {stdout_path}" if stdout_path else " > /dev/null"), flush=True)
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, check=False)
    finally:
        if stdout_path:
            out.close()
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 3):
        sys.stderr.write(done.stderr.decode("utf-8", "replace")[-2000:])
    return seconds, done.returncode, stdout_path.read_text() if stdout_path else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--db", type=Path, default=HERE / "out" / "hunt-bench.duckdb")
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--skip-pflogsumm", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="pflogsumm / hunt pairs to run (median)")
    args = ap.parse_args()

    if not args.log.exists():
        gen = [sys.executable, str(HERE / "gen_postfix_log.py"), "--seed", "1", "--size", "1G",
               "--out", str(args.log)]
        print(f"generating: {shlex.join(gen)}", flush=True)
        subprocess.run(gen, check=True)
    mailwarden = mailwarden_command()
    size = args.log.stat().st_size
    lines = count_lines(args.log)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"python {platform.python_version()}, input {args.log}: {size / 2**20:.0f} MiB, {lines:,} lines")

    results: dict[str, float] = {}
    pflogsumm = None if args.skip_pflogsumm else shutil.which("pflogsumm")
    if pflogsumm is None and not args.skip_pflogsumm:
        print("pflogsumm not installed: skipped")
    scratch_out = args.db.with_suffix(".scratch.json")
    runs: dict[str, list[float]] = {"pflogsumm": [], "hunt from scratch": []}
    for round_no in range(1, max(1, args.rounds) + 1):
        print(f"round {round_no} of {max(1, args.rounds)}, load {os.getloadavg()[0]:.2f}", flush=True)
        if pflogsumm:
            seconds, rc, _ = run([pflogsumm, str(args.log)])
            runs["pflogsumm"].append(seconds)
            print(f"  pflogsumm: {seconds:.1f} s, exit {rc}")
        seconds, rc, text = run([mailwarden, "hunt", str(args.log), "--year", str(args.year), "--json"],
                                scratch_out)
        runs["hunt from scratch"].append(seconds)
        print(f"  hunt from scratch: {seconds:.1f} s, exit {rc}"
              + (f"; this round's ratio {runs['pflogsumm'][-1] / seconds:.2f}x" if pflogsumm else ""))
    for name, seconds in runs.items():
        if seconds:
            results[name] = statistics.median(seconds)

    for stale in (args.db, args.db.with_suffix(args.db.suffix + ".wal")):
        stale.unlink(missing_ok=True)
    index_s, rc, _ = run([mailwarden, "logs", "index", str(args.log), "--year", str(args.year),
                          "--db", str(args.db)])
    print(f"  logs index (once, not compared): {index_s:.1f} s, exit {rc}")
    db_out = args.db.with_suffix(".db.json")
    results["hunt --db"], rc, db_text = run([mailwarden, "hunt", "--db", str(args.db), "--json"], db_out)
    print(f"  hunt --db: {results['hunt --db']:.2f} s, exit {rc}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the largest child process: {peak:.0f} MiB")

    print()
    print(f"{'run':<22}{'seconds':>10}{'lines/s':>14}   (pflogsumm and hunt from scratch: medians of "
          f"{len(runs['hunt from scratch'])} rounds)")
    for name, seconds in results.items():
        print(f"{name:<22}{seconds:>10.2f}{lines / seconds:>14,.0f}")
    if "pflogsumm" in results:
        base = results["pflogsumm"]
        for name in ("hunt from scratch", "hunt --db"):
            print(f"{name} vs pflogsumm: {base / results[name]:.2f}x faster")
        print("rounds (pflogsumm / hunt from scratch): " + ", ".join(
            f"{p / h:.2f}x" for p, h in zip(runs["pflogsumm"], runs["hunt from scratch"], strict=True)))
    for label, body in (("from scratch", text), ("from the index", db_text)):
        try:
            suspects = json.loads(body)["suspects"][:3]
        except (ValueError, KeyError):
            print(f"top suspects {label}: (no JSON)")
            continue
        print(f"top suspects {label}: "
              + "; ".join(f"{s['kind']} {s['name']} {s['score']}" for s in suspects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
