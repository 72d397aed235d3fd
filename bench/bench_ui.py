#!/usr/bin/env python3
"""A runs directory of N runs → how long `mgt ui` takes to build its pages (ms per request).

    python3 bench/bench_ui.py                  # 10, 100 and 1000 runs
    python3 bench/bench_ui.py --runs 300

One real run of the evolve cycle on the sample (recorded answers, a retry
with feedback, about 1 MB on disk without its scratch copy of the target) is
made with `mgt exec`, then copied N times. Each page is requested through the
app in-process (Starlette's test client, no network), so what is measured is
the reading and rendering the server does:

- `/runs`          — the runs list: every run read back from its journal;
- `/runs/ID`       — one run: states, attempts and their files;
- `/runs/ID/graph.svg` — the machine checked and drawn by graphviz `dot`;
- `live snapshot`  — what the event stream computes each time events.jsonl grows.

Medians of 5 requests, CPU and wall time of this process (the graph's `dot`
child is wall time only). The runs list keeps the rows of finished runs, so
these are its figures once warm; its first request reads every run (about
1.4 s of CPU for 1000 runs). A benchmark, not a test: it prints figures and
asserts nothing.

Measured (Python 3.11, a shared 2-core x86-64 machine at load 8, medians):

    runs   page                 cpu ms   wall ms
      10   /runs                   3.5      10
    1000   /runs                  37       191   (1404 ms CPU before the row cache)
    1000   /runs/ID               15        37
    1000   /runs/ID/graph.svg     12        84   (mostly graphviz `dot`)
    1000   live snapshot           0.7       0.7
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(work: Path) -> tuple[Path, str]:
    runs = work / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", str(ROOT / "machines/evolve.mgt"),
         "--runs-dir", str(runs), "--executor", "replay",
         "--replay-dir", str(ROOT / "examples/responses/retry"), "--json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    run_id = json.loads(done.stdout)["run_id"]
    shutil.rmtree(runs / run_id / "target")  # the scratch repository is not what the UI reads
    return runs, run_id


def copies(runs: Path, run_id: str, n: int) -> None:
    have = sum(1 for p in runs.iterdir() if p.is_dir())
    for i in range(have, n):
        shutil.copytree(runs / run_id, runs / f"{run_id}-copy{i:05d}")


def timed(call: Callable[[], object], repeat: int = 5) -> tuple[float, float]:
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, action="append", help="runs in the directory")
    args = parser.parse_args()
    sizes = sorted(args.runs or [10, 100, 1000])

    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with")  # starlette's note
    from starlette.testclient import TestClient

    from mgt.ui import views
    from mgt.ui.app import UIConfig, create_app

    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, load average {load:.2f}")
    print(f"{'runs':>6}  {'page':<20} {'cpu ms':>8} {'wall ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        runs, run_id = make_run(Path(tmp))
        client = TestClient(create_app(UIConfig(runs_dir=runs)),
                            base_url="http://127.0.0.1")
        for n in sizes:
            copies(runs, run_id, n)
            pages: dict[str, Callable[[], object]] = {
                "/runs": lambda: client.get("/runs").raise_for_status(),
                "/runs/ID": lambda: client.get(f"/runs/{run_id}").raise_for_status(),
                "/runs/ID/graph.svg":
                    lambda: client.get(f"/runs/{run_id}/graph.svg").raise_for_status(),
                "live snapshot": lambda: views.run_snapshot(runs, run_id),
            }
            for name, call in pages.items():
                cpu, wall = timed(call)
                print(f"{n:>6}  {name:<20} {cpu:>8.1f} {wall:>8.1f}")


if __name__ == "__main__":
    main()
