#!/usr/bin/env python3
"""Bench: ``mailwarden prune`` select+delete and select+archive next to ``doveadm expunge``.

Generates a Dovecot-style Maildir (200k messages; 1M with --million) with a fixed seed, makes
identical copies (cp -a keeps mtimes), then in one run times on its own copy each:

  doveadm -c CONF expunge -u bench mailbox INBOX before Nd      (Debian dovecot-core)
  mailwarden prune COPY --days N --delete  --journal ... --log ...
  mailwarden prune COPY --days N --archive DIR --journal ... --log ...

and mailwarden's test mode on the full store and on a quarter-size store, to show that peak
memory does not grow with the store. Peak memory is each child's ru_maxrss (wait4).

Why ``before`` and not ``savedbefore``: on a freshly generated (or restored, or rsynced) store
Dovecot's save date falls back to the file ctime, which is "now" for every file, so
``savedbefore Nd`` selects nothing. ``before`` uses INTERNALDATE = file mtime, the same clock
as mailwarden's default ``--age-source arrival``. Dovecot's index is built (untimed) first, as
on a live server.

Run as root (a throw-away Dovecot is started for doveadm; its copy is chowned to ``nobody``):
    python bench/prune_vs_doveadm.py [--messages 200000 | --million] [--days 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(root: Path, count: int, seed: int, max_age_days: int) -> int:
    rng = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    total = 0
    for n in range(count):
        age_days = rng.uniform(0, max_age_days)
        if abs(age_days - max_age_days / 2) < 1.5:
            # keep clear of the cutoff (max_age_days/2), so day-granular and exact clocks agree
            age_days += 3 if age_days > max_age_days / 2 else -3
        age = age_days * 86400
        body = "x" * rng.randint(200, 3000)
        data = (f"From: sender{n % 977}@example.org\nTo: bench@example.com\nSubject: bench {n}\n"
                f"Message-ID: <{n}.{seed}@bench.mailwarden>\n\n{body}\n").encode()
        t = now - int(age)
        vsize = len(data) + data.count(b"\n")  # Dovecot's ,W= is the size with CRLF line ends
        name = f"{t}.M{n}P{seed}.bench,S={len(data)},W={vsize}:2,S"
        path = root / "cur" / name
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (t, t))
        total += len(data)
    return total


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS KiB, stdout tail) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode(errors="replace")
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode not in (0,):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return elapsed, usage.ru_maxrss, out[-400:]


def count_files(root: Path) -> int:
    return sum(len(os.listdir(root / sub)) for sub in ("cur", "new"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--million", action="store_true", help="1,000,000 messages")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    count = 1_000_000 if args.million else args.messages
    if os.geteuid() != 0 or not shutil.which("doveadm"):
        raise SystemExit("run as root with dovecot-core installed (doveadm)")
    work = Path(tempfile.mkdtemp(prefix="mw-prune-bench-", dir=args.workdir))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        run(args, count, work, stack)


def run(args, count: int, work: Path, stack) -> None:
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"{platform.system()} {platform.release()}; Python {platform.python_version()}")
    t0 = time.perf_counter()
    base = work / "base" / "Maildir"
    nbytes = generate(base, count, args.seed, max_age_days=2 * args.days)
    print(f"input: {count} messages, {nbytes / 2**20:.0f} MiB, mtimes uniform over {2 * args.days} days, "
          f"seed {args.seed} (generated in {time.perf_counter() - t0:.0f} s)")
    # doveadm needs a running Dovecot for its userdb lookup: the test harness starts one
    # on 127.0.0.1 with its own throw-away config (tests/server/harness.py).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.server.harness import Dovecot

    dovecot = Dovecot(work / "dovecot", {"bench": "bench-pw-1"}).start()
    stack.callback(dovecot.remove_files)
    stack.callback(dovecot.stop)
    copies = {"doveadm": dovecot.maildir("bench")}
    shutil.rmtree(copies["doveadm"])
    subprocess.run(["cp", "-a", str(base), str(copies["doveadm"])], check=True)
    for name in ("delete", "archive"):
        copies[name] = work / name / "Maildir"
        copies[name].parent.mkdir()
        subprocess.run(["cp", "-a", str(base), str(copies[name])], check=True)
    quarter = work / "quarter" / "Maildir"
    generate(quarter, count // 4, args.seed, max_age_days=2 * args.days)
    shutil.rmtree(base)
    dovecot.chown_mail()
    doveadm = ["doveadm", "-c", str(dovecot.config_path)]
    # Untimed: build Dovecot's index and uidlist, as a live server would have them.
    dovecot.doveadm("mailbox", "status", "-u", "bench", "messages", "INBOX")
    mw = [sys.executable, "-m", "mailwarden", "prune"]
    state = work / "state-mw"
    cmds = {
        "mailwarden test (select only), full store":
            [*mw, str(copies["delete"]), "--days", str(args.days), "--log", str(state / "t.jsonl")],
        "mailwarden test (select only), quarter store":
            [*mw, str(quarter), "--days", str(args.days), "--log", str(state / "q.jsonl")],
        "doveadm expunge":
            [*doveadm, "expunge", "-u", "bench", "mailbox", "INBOX", "before", f"{args.days}d"],
        "mailwarden select+delete":
            [*mw, str(copies["delete"]), "--days", str(args.days), "--delete",
             "--journal", str(state / "d.sqlite"), "--log", str(state / "d.jsonl")],
        "mailwarden select+archive":
            [*mw, str(copies["archive"]), "--days", str(args.days), "--archive", str(work / "zips"),
             "--journal", str(state / "a.sqlite"), "--log", str(state / "a.jsonl")],
    }
    results = {}
    for label, cmd in cmds.items():
        os.sync()  # untimed: no one pays for the copies' dirty pages
        seconds, rss, _ = timed(cmd)
        results[label] = (seconds, rss)
        print(f"\n{label}\n  $ {' '.join(cmd)}\n  {seconds:.2f} s, peak RSS {rss / 1024:.1f} MiB")
    left = {name: count_files(copies[name]) for name in ("doveadm", "delete", "archive")}
    print(f"\nmessages left: {left} (must be equal)")
    d, m = results["doveadm expunge"][0], results["mailwarden select+delete"][0]
    a = results["mailwarden select+archive"][0]
    print(f"ratio delete  mailwarden/doveadm = {m / d:.2f}  (< 1 is faster than doveadm)")
    print(f"ratio archive mailwarden/doveadm = {a / d:.2f}")
    full, quart = (results["mailwarden test (select only), full store"][1],
                   results["mailwarden test (select only), quarter store"][1])
    print(f"peak RSS select-only: full {full / 1024:.1f} MiB vs quarter {quart / 1024:.1f} MiB")
    if len(set(left.values())) != 1:
        raise SystemExit("the tools left different message counts")


if __name__ == "__main__":
    main()
