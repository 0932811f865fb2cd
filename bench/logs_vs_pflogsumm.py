#!/usr/bin/env python3
"""Full parse/index throughput: ``mailwarden logs index`` next to ``pflogsumm`` on one Postfix log.

Both run on the same file in the same run, under ``/usr/bin/time -v`` (wall time and peak
memory), alternately for ``--rounds`` rounds (pflogsumm, then a fresh index): this VM's speed
drifts by 20-30% within minutes, so the ratio is taken of the medians (each round's own ratio
is printed too). Then ``find --db`` latency: the in-process ``find_sessions`` call (fresh
connection each time, as a new ``logs find --db`` process makes) for random Message-IDs, and
one whole ``mailwarden logs find --db`` command (Python start-up included).

Usage::

    python bench/logs_vs_pflogsumm.py                     # generates bench/out/postfix-1g.log if missing
    python bench/logs_vs_pflogsumm.py --log some.log --finds 50

Numbers on a shared 2-core machine are noisy: the load average is printed before each run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from benchlib import count_lines, cpu_model, mailwarden_command

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def machine() -> str:
    cpu = cpu_model()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import duckdb

    return (f"{platform.node()} {platform.system()} {platform.release()}; {os.cpu_count()} CPUs ({cpu}); "
            f"{mem:.1f} GiB RAM; Python {platform.python_version()}; DuckDB {duckdb.__version__}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


class Run(NamedTuple):
    wall: float    # seconds
    user: float    # CPU seconds, all threads
    system: float  # kernel CPU seconds: on this project's VMs mostly page faults, see docs/log-index.md
    rss: int       # peak, KiB
    stdout: str

    def cpu(self) -> str:
        return f"user {self.user:.2f} s, sys {self.system:.2f} s"


def timed(cmd: list[str], stdout=subprocess.DEVNULL) -> Run:
    """Wall, user and system seconds, peak RSS and stdout of one command under /usr/bin/time -v."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    proc = subprocess.run([time_bin, "-v", *cmd], stdout=stdout, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    user, system = (float(re.search(rf"{what} time \(seconds\): (\S+)", proc.stderr).group(1))
                    for what in ("User", "System"))
    return Run(seconds, user, system, rss, proc.stdout if isinstance(proc.stdout, str) else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, default=OUT / "postfix-1g.log")
    ap.add_argument("--size", default="1G", help="size to generate when --log does not exist")
    ap.add_argument("--db", type=Path, default=OUT / "bench-index.duckdb")
    ap.add_argument("--finds", type=int, default=30, help="random Message-IDs to look up")
    ap.add_argument("--rounds", type=int, default=3, help="pflogsumm / logs index pairs to run (median)")
    args = ap.parse_args()
    if shutil.which("pflogsumm") is None:
        sys.exit("pflogsumm is not installed (apt-get install pflogsumm)")
    if not args.log.exists():
        gen = [sys.executable, str(HERE / "gen_postfix_log.py"), "--seed", "1", "--size", args.size,
               "--out", str(args.log)]
        print("generating:", shlex.join(gen), flush=True)
        subprocess.run(gen, check=True)

    size = args.log.stat().st_size
    lines = count_lines(args.log)
    print(f"machine: {machine()}")
    print(f"input:   {args.log} ({size / 2**20:.0f} MiB, {lines:,} lines)")

    pflog_cmd = ["pflogsumm", str(args.log)]
    mw = mailwarden_command()
    index_cmd = [mw, "logs", "index", str(args.log), "--db", str(args.db), "--json"]
    p_walls, m_walls = [], []
    for round_no in range(1, args.rounds + 1):
        print(f"\nround {round_no} of {args.rounds}")
        print(f"[{load()}]\n$ {shlex.join(pflog_cmd)} > /dev/null", flush=True)
        p_run = timed(pflog_cmd)
        p_wall = p_run.wall
        print(f"  {p_wall:.2f} s, {lines / p_wall:,.0f} lines/s, peak RSS {p_run.rss / 1024:.0f} MiB, {p_run.cpu()}")
        for suffix in ("", ".wal"):
            Path(str(args.db) + suffix).unlink(missing_ok=True)
        print(f"[{load()}]\n$ {shlex.join(index_cmd)}   (fresh database)", flush=True)
        m_run = timed(index_cmd)
        m_wall = m_run.wall
        print(f"  {m_wall:.2f} s, {lines / m_wall:,.0f} lines/s, peak RSS {m_run.rss / 1024:.0f} MiB, {m_run.cpu()}, "
              f"index {args.db.stat().st_size / 2**20:.0f} MiB; this round's ratio {p_wall / m_wall:.2f}x")
        p_walls.append(p_wall)
        m_walls.append(m_wall)
    p_med, m_med = statistics.median(p_walls), statistics.median(m_walls)
    print(f"\nmedians of {args.rounds}: pflogsumm {p_med:.2f} s ({lines / p_med:,.0f} lines/s), "
          f"logs index {m_med:.2f} s ({lines / m_med:,.0f} lines/s)")
    print(f"ratio (pflogsumm median / mailwarden index median): {p_med / m_med:.2f}x  (target: >= 5x); "
          f"rounds: {', '.join(f'{p / m:.2f}x' for p, m in zip(p_walls, m_walls, strict=True))}")

    import duckdb

    # The raw lines are stored as zstd blocks (logs/linestore.py): check that the stored line
    # numbers still name the right lines of the file.
    from mailwarden.logs.linestore import line_texts

    rng = random.Random(2)
    wanted = sorted(rng.sample(range(1, lines + 1), min(lines, 5000)))
    con = duckdb.connect(str(args.db), read_only=True)
    stored = {lineno: text for (_sid, lineno), text in line_texts(con, [(1, n) for n in wanted]).items()}
    con.close()
    bad, pos = 0, 0
    with open(args.log, encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, 1):
            if pos < len(wanted) and number == wanted[pos]:
                bad += stored.get(number) != text.rstrip("\n")
                pos += 1
    print(f"line-number check: {len(wanted) - bad} of {len(wanted)} random stored lines equal the file's line")

    # find --db latency

    from mailwarden.logs.index import find_sessions

    con = duckdb.connect(str(args.db), read_only=True)
    total = con.execute("SELECT count(*) FROM transactions WHERE message_id <> ''").fetchall()[0][0]
    rng = random.Random(1)
    picks = [con.execute("SELECT message_id FROM transactions WHERE message_id <> '' LIMIT 1 OFFSET ?",
                         [rng.randrange(total)]).fetchall()[0][0] for _ in range(args.finds)]
    con.close()
    times = []
    for mid in picks:
        t0 = time.perf_counter()
        found = find_sessions(args.db, message_id=mid)
        times.append((time.perf_counter() - t0) * 1000)
        assert found, mid
    times.sort()
    print(f"\nfind_sessions(db, message_id=...) over {len(times)} random Message-IDs of {total:,} "
          f"(fresh connection each): median {statistics.median(times):.1f} ms, "
          f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms, max {times[-1]:.1f} ms  (target: < 50 ms)")
    find_cmd = [mw, "logs", "find", "--db", str(args.db), "--message-id", picks[0], "--json"]
    f_wall = timed(find_cmd).wall
    print(f"$ {shlex.join(find_cmd)}\n  {f_wall * 1000:.0f} ms for the whole command (Python start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
