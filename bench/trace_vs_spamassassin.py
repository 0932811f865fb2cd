#!/usr/bin/env python3
"""Messages/s of `mailwarden trace --json`'s work vs bare email parsing vs SpamAssassin's relay extraction.

Same files, same run, back to back:
  (a) bare parsing: email.message_from_bytes(data, policy=compat32) on each file;
  (m) mailwarden: trace_results() on each file + Trace.to_json() + json.dumps (what
      `trace --json` does, minus process start-up);
  (s) SpamAssassin: bench/sa_relays.pl in ONE perl process (parse -> PerMsgStatus ->
      extract_message_metadata; rule loading excluded from its time).
Then compares our client IP at the accepting hop with SpamAssassin's first untrusted
relay, both with inferred trust (no configuration), and prints a sample of disagreements.

Input: the corpus's single-message files (phishing_pot *.eml and mail-parser mail_*,
without the Outlook OLE file), repeated --repeat times to reach a few thousand messages
(the file cache is warm for all three). Usage:
  python bench/trace_vs_spamassassin.py [--repeat 10] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import email
import json
import os
import platform
import subprocess
import sys
import time
from email import policy
from pathlib import Path

from benchlib import cpu_model

from mailwarden.config import SiteConfig
from mailwarden.message.trace import trace_results

HERE = Path(__file__).resolve().parent


def corpus_files(corpus: Path) -> list[Path]:
    files = sorted((corpus / "phishing_pot" / "email").glob("*.eml"))
    files += sorted(p for p in (corpus / "mail-parser").glob("mail_*") if p.name != "mail_outlook_1")
    return files


def machine() -> str:
    cpu = cpu_model()
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cpus | Python {platform.python_version()} | {platform.platform()}"


def run_bare(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        email.message_from_bytes(path.read_bytes(), policy=policy.compat32)
    return time.perf_counter() - start


def run_mailwarden(paths: list[Path]) -> tuple[float, dict[str, dict]]:
    site = SiteConfig()
    results: dict[str, dict] = {}
    start = time.perf_counter()
    for path in paths:
        for item in trace_results(path, site):
            doc = item.to_json() if hasattr(item, "to_json") else {"error": item.reason}
            json.dumps(doc)
            results[str(path)] = doc
    return time.perf_counter() - start, results


def run_spamassassin(paths: list[Path]) -> tuple[float, dict[str, list[str]], float]:
    cmd = ["perl", str(HERE / "sa_relays.pl")]
    wall = time.perf_counter()
    proc = subprocess.run(cmd, input="\n".join(map(str, paths)) + "\n", capture_output=True, text=True, check=True)
    wall = time.perf_counter() - wall
    loop = None
    for line in proc.stderr.splitlines():
        if line.startswith("SA_LOOP_SECONDS"):
            loop = float(line.split()[1])
    if loop is None:
        sys.exit("sa_relays.pl printed no timing:\n" + proc.stderr[-2000:])
    relays = {}
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        relays[fields[0]] = fields[1:]
    return loop, relays, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus")
    parser.add_argument("--show", type=int, default=8, help="disagreements to print")
    args = parser.parse_args()

    files = corpus_files(args.corpus)
    if not files:
        sys.exit(f"no corpus files under {args.corpus}")
    paths = files * args.repeat
    size = sum(p.stat().st_size for p in files) * args.repeat
    print(f"machine: {machine()}")
    print(f"input: {len(files)} distinct files x {args.repeat} = {len(paths)} messages, {size / 1e6:.1f} MB "
          f"(phishing_pot *.eml + mail-parser mail_*, from {args.corpus})")
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print("  (a) bare: email.message_from_bytes(data, policy=email.policy.compat32) per file")
    print("  (m) mailwarden: trace_results(path, SiteConfig()) + Trace.to_json() + json.dumps per file")
    print(f"  (s) SpamAssassin: perl {HERE / 'sa_relays.pl'} < paths  (one process; loop time, init excluded)")

    run_bare(files)  # warm the file cache and imports for everyone
    bare = run_bare(paths)
    ours, results = run_mailwarden(paths)
    sa, relays, sa_wall = run_spamassassin(paths)

    n = len(paths)
    print(f"\n{'':14}{'seconds':>10}{'msgs/s':>12}")
    for name, secs in (("bare parse", bare), ("mailwarden", ours), ("spamassassin", sa)):
        print(f"{name:14}{secs:10.3f}{n / secs:12.0f}")
    print(f"(spamassassin wall time incl. perl start-up and rule loading: {sa_wall:.3f} s)")
    print(f"\nmailwarden / bare parse time: {ours / bare:.2f}x   (target <= 3x)")
    print(f"mailwarden msgs/s / spamassassin msgs/s: {sa / ours:.1f}x   (target >= 5x)")

    agree = disagree = 0
    samples = []
    for path in files:
        doc = results.get(str(path), {})
        sa_fields = relays.get(str(path), [""])
        ours_ip = doc.get("client_ip") or ""
        sa_ip = sa_fields[0] if sa_fields else ""
        if ours_ip == sa_ip:
            agree += 1
        else:
            disagree += 1
            if len(samples) < args.show:
                samples.append((path.name, doc.get("verdict"), ours_ip, (doc.get("our_hop") or {}).get("by"),
                                sa_ip, sa_fields[2] if len(sa_fields) > 2 else ""))
    print(f"\nclient IP at the trust boundary (inferred trust both): agree {agree}, disagree {disagree} "
          f"of {len(files)} distinct messages")
    for name, verdict, ours_ip, ours_by, sa_ip, sa_by in samples:
        print(f"  {name}: mailwarden {verdict} client={ours_ip or '-'} (by {ours_by}) | "
              f"SpamAssassin first untrusted ip={sa_ip or '-'} (by {sa_by})")


if __name__ == "__main__":
    main()
