#!/usr/bin/env python3
"""Event files of 100k and 1M events → the analyzer's throughput (events/s) and peak RSS.

    python3 bench/bench_analyze.py                 # generate into a temp dir, measure, print
    python3 bench/bench_analyze.py --events 300000 --keep /tmp/mgt-bench

Events come from `examples/logs/generate.py` (the dungeon-master day, scaled
up). Each measurement runs in a fresh child process so its peak RSS
(`ru_maxrss`) is its own:

- `source only`     — read and parse the file through `mgt.logs.sources` (no analysis);
- `analyze --since all` — the same pass with the analyzer consuming every event;
- `analyze --since 24h` — what `mgt analyze` does by default on a file: one quick
                      pass to find the newest timestamp, then the analyzing pass.

`analyzer` is the analyzer's own cost per event: (analyze − source only). The
goals are ≥ 200k events/s and < 150 MB peak RSS, and the same RSS at 100k as at
1M (memory does not grow with the number of events). A benchmark, not a test:
it prints figures and asserts nothing. The machine's load average is printed
too, since other processes skew the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "examples" / "logs" / "generate.py"
EVENTS_PER_SESSION = 33  # about, for the generator's sessions

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from mgt.analyze.analyzer import run_analysis
from mgt.analyze.thresholds import load_thresholds
from mgt.logs.sources import open_source

path, mode = sys.argv[2], sys.argv[3]
thresholds = load_thresholds()
clock = time.perf_counter
in_source = 0.0

def timed(events):
    # Time spent producing events (reading, parsing), apart from the analyzer's.
    global in_source
    it = iter(events)
    while True:
        t = clock()
        try:
            event = next(it)
        except StopIteration:
            in_source += clock() - t
            return
        in_source += clock() - t
        yield event

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = clock()
patterns = None
with open_source(path, since="24h" if mode == "24h" else "all") as source:
    if mode == "source":
        events = sum(1 for _ in source.iter_events())
    else:
        report = run_analysis(timed(source.iter_events()), thresholds=thresholds,
                              skipped=lambda: source.skipped).report
        events = report["summary"]["events_analyzed"]
        patterns = report["summary"]["total_patterns"]
seconds = clock() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"events": events, "seconds": seconds, "source_seconds": in_source,
                  "base_kb": base, "peak_kb": peak, "patterns": patterns}))
"""

MODES = [("source", "source only"), ("all", "analyze --since all"), ("24h", "analyze --since 24h")]


def generate(directory: Path, events: int) -> tuple[Path, Path]:
    """The big file (`events` events) and a 100k-event prefix of it."""
    big = directory / f"events-{events}.jsonl"
    if not big.exists():
        sessions = events // EVENTS_PER_SESSION + 1000
        print(f"generating {events:,} events …", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, str(GENERATOR), "--out", str(directory), "--name", big.name,
             "--sessions", str(sessions), "--events", str(events)],
            check=True,
        )
    small = directory / "events-100000.jsonl"
    if not small.exists():
        with big.open("rb") as src, small.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= 100_003:  # 100k events plus the 3 planted malformed lines
                    break
                dst.write(line)
    return small, big


def measure(path: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(path), mode],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="generate into (and reuse) this directory")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best kept)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mgt-bench-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        files = generate(directory, args.events)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
              f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
        header = (f"{'events':>10}  {'mode':<20} {'seconds':>8} {'events/s':>10} "
                  f"{'peak RSS':>9} {'over base':>9} {'analyzer alone':>15}")
        print(header)
        print("-" * len(header))
        for path in files:
            for mode, label in MODES:
                best: dict[str, float] | None = None
                for _ in range(args.repeat):
                    result = measure(path, mode)
                    if best is None or result["seconds"] < best["seconds"]:
                        best = result
                assert best is not None
                n = int(best["events"])
                rate = n / best["seconds"]
                own = ""
                if mode != "source":
                    alone = best["seconds"] - best["source_seconds"]
                    own = f"{n / alone:>10,.0f} ev/s" if alone > 0 else ""
                print(f"{n:>10,}  {label:<20} {best['seconds']:>8.2f} {rate:>10,.0f} "
                      f"{best['peak_kb'] / 1024:>7.1f}MB "
                      f"{(best['peak_kb'] - best['base_kb']) / 1024:>7.1f}MB {own:>15}")
        print("\nevents/s: end to end (file → report); analyzer alone: the same run minus the "
              "time spent reading and parsing events (mgt.logs).\ngoals: ≥ 200,000 events/s, "
              "< 150 MB peak RSS, the same RSS at 100k and 1M events.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
