#!/usr/bin/env python3
"""`mailwarden logs find --message-id` (no index) against `grep -F -c ID` on the same Postfix log.

Both run back to back in this one process run, on the same file, after one untimed warm-up read
(page cache), three alternating rounds, median reported. Two Message-IDs are searched: one in the
middle of the file and one near its end (the worst case for line numbering, which counts
newlines up to the hit). Three mailwarden figures:

* ``library``: ``find_in_logs()`` in this process (the search itself);
* ``cli``: ``mailwarden logs find FILE -m ID --json`` as a subprocess (adds interpreter start-up
  and the import of every command module);
* for a ``.gz`` copy (``--gzip``): both tools through the decompressor (``zcat | grep`` vs ours).

Usage::

    python bench/logs_find_vs_grep.py                       # bench/out/postfix-1g.log, made if absent
    python bench/logs_find_vs_grep.py --log /tmp/big.log --gzip
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import cpu_model

HERE = Path(__file__).resolve().parent
DEFAULT_LOG = HERE / "out" / "postfix-1g.log"


def machine() -> str:
    cpu = cpu_model()
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu(s) {cpu}; Python {platform.python_version()}"


def message_id_at(path: Path, fraction: float) -> str:
    """The first Message-ID logged after ``fraction`` of the file."""
    with open(path, "rb") as fh:
        fh.seek(int(path.stat().st_size * fraction))
        for raw in fh:
            at = raw.find(b"message-id=<")
            if at >= 0:
                value = raw[at + 12:].split(b">", 1)[0].decode()
                if value:
                    return value
    raise SystemExit(f"no message-id= line after {fraction:.0%} of {path}")


def timed(command: list[str] | str, shell: bool = False) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, shell=shell, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout.strip()


def library_find(path: Path, message_id: str) -> tuple[float, int]:
    from mailwarden.logs.find import FindQuery, find_in_logs

    start = time.perf_counter()
    result = find_in_logs([str(path)], FindQuery(message_id=message_id))
    return time.perf_counter() - start, len(result.sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--size", default="1G", help="size for bench/gen_postfix_log.py when --log is absent")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gzip", action="store_true", help="also compare on a gzip copy (zcat | grep)")
    args = parser.parse_args()

    log: Path = args.log
    if not log.exists():
        gen = [sys.executable, str(HERE / "gen_postfix_log.py"), "--seed", "1", "--size", args.size,
               "--out", str(log)]
        print("generating:", shlex.join(gen), flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(gen, check=True)

    size = log.stat().st_size
    with open(log, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    print(f"machine: {machine()}")
    print(f"input:   {log} ({size / 1e9:.2f} GB, {lines:,} lines)")
    subprocess.run(["grep", "-F", "-c", "warm-up-no-such-string", str(log)], capture_output=True)

    mailwarden = [sys.executable, "-m", "mailwarden"]
    for label, fraction in (("middle", 0.5), ("end", 0.995)):
        mid = message_id_at(log, fraction)
        grep_cmd = ["grep", "-F", "-c", mid, str(log)]
        cli_cmd = mailwarden + ["logs", "find", str(log), "-m", mid, "--json"]
        grep_t, lib_t, cli_t = [], [], []
        for _ in range(args.rounds):
            t, out = timed(grep_cmd)
            grep_t.append(t)
            t, found = library_find(log, mid)
            lib_t.append(t)
            assert found >= 1, f"mailwarden did not find {mid}"
            t, _ = timed(cli_cmd)
            cli_t.append(t)
        g, lib, cli = (statistics.median(x) for x in (grep_t, lib_t, cli_t))
        print(f"\n[{label}] Message-ID {mid} (grep count: {out})")
        print(f"  grep:               {g:7.3f} s   $ {shlex.join(grep_cmd)}")
        print(f"  mailwarden library: {lib:7.3f} s   find_in_logs([{str(log)!r}], FindQuery(message_id={mid!r}))"
              f"   ratio {lib / g:.2f}x")
        print(f"  mailwarden CLI:     {cli:7.3f} s   $ {shlex.join(cli_cmd)}   ratio {cli / g:.2f}x")

    if args.gzip:
        gz = log.with_suffix(log.suffix + ".gz")
        if not gz.exists():
            print(f"\ncompressing {gz} ...", flush=True)
            subprocess.run(f"gzip -1 -c {shlex.quote(str(log))} > {shlex.quote(str(gz))}", shell=True, check=True)
        mid = message_id_at(log, 0.5)
        zgrep = f"zcat {shlex.quote(str(gz))} | grep -F -c {shlex.quote(mid)}"
        g, _ = timed(zgrep, shell=True)
        lib, found = library_find(gz, mid)
        print(f"\n[gzip, middle] {gz} ({gz.stat().st_size / 1e9:.2f} GB)")
        print(f"  zcat | grep:        {g:7.3f} s   $ {zgrep}")
        print(f"  mailwarden library: {lib:7.3f} s   ratio {lib / g:.2f}x (found {found})")


if __name__ == "__main__":
    main()
