#!/usr/bin/env python3
"""Generated logs around a merge + a repository with many PR records → what a ledger step costs.

    python3 bench/bench_ledger.py [--step-seconds 2] [--records 200]

- `verdict windows`: `mgt.evolve.impact.window_figures` over two 24h windows
  of a JSONL file (today: two passes of the analyzer over the time-filtered
  file), in events per CPU second of the whole file read twice;
- `read local ledger`: `read_local` on a real git repository with N PR
  records (one git process or more per record, for its state and merge time).

A benchmark, not a test: it prints figures and asserts nothing.

Measured (Python 3.11, shared 2-core x86-64 machine, load average ~6):

    verdict windows      177,120 events   1.51 CPU s   ~235,000 events/CPU s (file read twice)
    read local ledger        200 PRs      0.66 CPU s   ~25 ms/PR wall (git processes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mgt.analyze.thresholds import DEFAULTS  # noqa: E402
from mgt.evolve.impact import window_figures  # noqa: E402
from mgt.evolve.ledger import read_local  # noqa: E402
from tests.evolve.loggen import Phase, write_events  # noqa: E402


def _cpu() -> float:
    return time.process_time()


def bench_windows(work: Path, step: float) -> None:
    split = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    path = write_events(work / "events.jsonl", split=split, before=Phase(slow_share=0.5,
                        failure_rate=0.2, error_share=0.1), after=Phase(slow_share=0.1),
                        step=timedelta(seconds=step))
    with path.open("rb") as f:
        events = sum(1 for _ in f)
    cpu, wall = _cpu(), time.perf_counter()
    window_figures(str(path), split, timedelta(hours=24), DEFAULTS)
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    print(f"verdict windows     {events:>9,} events  {cpu:6.2f} CPU s  {wall:6.2f} s wall  "
          f"{2 * events / cpu:>9,.0f} events/CPU s (file read twice)")


def bench_records(work: Path, count: int) -> None:
    repo = work / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    (repo / "f").write_text("0\n")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    records = repo / ".git" / "mgt" / "prs"
    records.mkdir(parents=True)
    for n in range(1, count + 1):
        branch = f"sleeptime/bench-{n}"
        subprocess.run([*git, "branch", branch, "main"], check=True)
        sha = subprocess.run([*git, "rev-parse", "main"], check=True, capture_output=True,
                             text=True).stdout.strip()
        (records / f"{n}.json").write_text(json.dumps({
            "number": n, "title": f"bench {n}", "head": branch, "base": "main",
            "state": "open", "commit_sha": sha if n % 2 else "0" * 40, "body": ""}))
    cpu, wall = _cpu(), time.perf_counter()
    prs = read_local(repo)
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    print(f"read local ledger   {len(prs):>9,} PRs     {cpu:6.2f} CPU s  {wall:6.2f} s wall  "
          f"{wall / max(1, len(prs)) * 1000:6.1f} ms/PR (git processes included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-seconds", type=float, default=2.0)
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mgt-bench-ledger-") as tmp:
        bench_windows(Path(tmp), args.step_seconds)
        bench_records(Path(tmp), args.records)


if __name__ == "__main__":
    main()
