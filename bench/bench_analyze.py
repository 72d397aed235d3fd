#!/usr/bin/env python3
"""Event files of 1M events in six shapes → `mgt analyze`'s events per CPU second, beside DuckDB.

    python3 bench/bench_analyze.py                       # generate into a temp dir, measure
    python3 bench/bench_analyze.py --keep /tmp/mgt-bench --baseline 30992bf
    python3 bench/bench_analyze.py --keep /tmp/mgt-bench --baseline 30992bf \
        --no-duckdb --instructions 100000           # plus instructions per event

Events come from `examples/logs/generate.py` (the dungeon-master day, scaled
up), written in six shapes: time-ordered or shuffled, with `"timestamp"` the
first key of each line or the last; time-ordered wide lines (about 370
bytes: trace and span ids, service, host, an attributes object, as
production lines carry); and time-ordered lines with a member beyond ASCII.
Each measurement runs in a fresh child process (its peak RSS, `ru_maxrss`, is
its own) and does what `mgt analyze --source FILE` does (`analyze_source`):

- `--since 24h` — the default: the newest time of the file, then the analysis;
- `--since all` — the analysis alone;
- `source only` — reading and parsing, no analysis (ordered files, timestamp
  first and wide).

Rates are events per second of CPU time (user + system of the child, all its
threads), so that other processes on a shared machine skew them less; wall
seconds are printed too. `--baseline REV` measures the analyzer of a git
revision the same way (its `mgt/` from `git archive`), its runs alternating
with the current code's, and prints the speed-up. `--instructions LINES`
also counts instructions per event under valgrind's callgrind on each file's
first LINES lines: slow, but a figure the machine's load does not move.
`duckdb` (the `bench` extra) runs the same aggregation — slow calls, token
bloat and latency p95 per node, failed transitions and their rates, errors
per template — on the same file, for scale. A benchmark, not a test: it
prints figures and asserts nothing.

Measured on a shared 2-core x86-64 machine (Python 3.11, orjson 3.13, which
still reads integers beyond 64 bits as floats, msgspec 0.23; best of 3):
before (30992bf), ordered, timestamp first, `--since all` 3.3-3.7 CPU s; the
issue's report: 4.3 s with the timestamp first, 7.0 s last. Now 1.6-2.0 s
(2x or more on every shape in quiet runs, 1.9-2.2x for ordered `all` from
run to run) and 2.27x fewer instructions per event or better on every row;
the tables are in docs/loop.md. The run ends with a summary: one line per
shape and `--since`, events per CPU second before and now, their ratio,
DuckDB's, peak RSS (and the instruction counts, when asked for).
`--only ordered-first:all` (repeatable) measures one shape and mode.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
from mgt.analyze.analyzer import analyze_source
from mgt.logs.sources import open_source

path, mode = sys.argv[2], sys.argv[3]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu_started = time.perf_counter(), time.process_time()
if mode == "source":
    with open_source(path, since="all") as source:
        events = sum(1 for _ in source.iter_events())
else:
    report = analyze_source(path, since=mode).report
    events = report["summary"]["events_analyzed"]
cpu = time.process_time() - cpu_started
print(json.dumps({"events": events, "seconds": time.perf_counter() - started, "cpu": cpu,
                  "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

DUCKDB = r"""
import json, resource, sys, time
import duckdb
path = sys.argv[1]
started, cpu_started = time.perf_counter(), time.process_time()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(f'''
CREATE VIEW ev AS SELECT * FROM read_json('{path}', format='newline_delimited',
  ignore_errors=true, columns={{"timestamp": 'VARCHAR', "type": 'VARCHAR',
  "node": 'VARCHAR', "model": 'VARCHAR', "latency_ms": 'DOUBLE', "prompt_tokens": 'DOUBLE',
  "completion_tokens": 'DOUBLE', "from": 'VARCHAR', "to": 'VARCHAR', "message": 'VARCHAR'}})
''')
con.execute("CREATE TEMP TABLE e AS SELECT * FROM ev")
rows = 0
for query in [
    '''SELECT coalesce(node, model), count(*) FILTER (WHERE latency_ms >= 2000),
              avg(latency_ms) FILTER (WHERE latency_ms >= 2000), quantile_disc(latency_ms, 0.95),
              count(*) FILTER (WHERE prompt_tokens >= 3000
                               AND prompt_tokens >= 10 * completion_tokens)
       FROM e WHERE type = 'llm_call' GROUP BY 1''',
    '''SELECT "from", "to", n, n / sum(n) OVER (PARTITION BY "from") FROM
       (SELECT "from", "to", count(*) AS n FROM e WHERE type = 'graph_transition'
        GROUP BY 1, 2)''',
    '''SELECT regexp_replace(message, '[0-9]+', '<n>', 'g') AS t, count(*) FROM e
       WHERE type = 'error' GROUP BY 1''',
]:
    rows += len(con.execute(query).fetchall())
events = con.execute("SELECT count(*) FROM e").fetchone()[0]
print(json.dumps({"events": events, "seconds": time.perf_counter() - started,
                  "cpu": time.process_time() - cpu_started,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

SHAPES = [
    ("ordered", "first"),
    ("ordered", "last"),
    ("shuffled", "first"),
    ("shuffled", "last"),
    ("ordered", "wide"),
    ("ordered", "unicode"),
]
# Members a production line often carries beside the event's own: wide lines (about 370
# bytes, twice the generator's) with a nested object, "timestamp" first.
WIDE_MEMBERS = {
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
    "service": "dm-agent-graph", "env": "production", "host": "worker-7.eu-west-1.internal",
    "attributes": {"graph_version": "2026.11.3", "region": "eu-west-1", "retry": 0},
}


# A member beyond ASCII on every line (names and messages in other languages are common).
UNICODE_MEMBERS = {"note": "résumé → prêt, 東京"}


def label_of(order: str, key: str) -> str:
    if key in ("wide", "unicode"):
        return f"{order}, {'wide' if key == 'wide' else 'non-ASCII'} lines"
    return f"{order}, timestamp {key}"


def generate(directory: Path, events: int) -> Path:
    big = directory / f"events-{events}.jsonl"
    if not big.exists():
        sessions = events // EVENTS_PER_SESSION + 1000
        print(f"generating {events:,} events …", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, str(GENERATOR), "--out", str(directory), "--name", big.name,
             "--sessions", str(sessions), "--events", str(events)],
            check=True,
        )
    return big


def shaped(base: Path, order: str, key: str) -> Path:
    """`base` rewritten with "timestamp" first or last, its lines in order or shuffled."""
    if (order, key) == ("ordered", "first"):
        return base
    out = base.with_name(f"{base.stem}-{order}-{key}.jsonl")
    if out.exists():
        return out
    print(f"writing {out.name} …", file=sys.stderr, flush=True)
    # In a child process: the measuring children would inherit this one's peak RSS.
    subprocess.run([sys.executable, __file__, "--shape", order, key, str(base), str(out)],
                   check=True)
    return out


def write_shape(base: Path, order: str, key: str, out: Path) -> None:
    lines = base.read_bytes().splitlines(keepends=True)
    if key in ("last", "wide", "unicode"):
        moved = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                moved.append(line)  # the planted malformed lines stay as they are
                continue
            if isinstance(value, dict) and "timestamp" in value:
                if key == "last":
                    value["timestamp"] = value.pop("timestamp")
                else:
                    value.update(WIDE_MEMBERS if key == "wide" else UNICODE_MEMBERS)
                line = (json.dumps(value, ensure_ascii=False) + "\n").encode()
            moved.append(line)
        lines = moved
    if order == "shuffled":
        random.Random(1).shuffle(lines)
    out.write_bytes(b"".join(lines))


def measure(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args],
                         check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


INSTRUCTIONS = r"""
import sys
sys.path.insert(0, sys.argv[1])
from mgt.analyze.analyzer import analyze_source
analyze_source(sys.argv[2], since=sys.argv[3]).report
"""


def head_of(path: Path, lines: int) -> Path:
    """The first `lines` lines of `path`, in a file beside it (kept)."""
    out = path.with_name(f"head-{lines}-{path.name}")
    if not out.exists():
        with path.open("rb") as src, out.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= lines:
                    break
                dst.write(line)
    return out


def instructions(tree: Path, path: Path, mode: str) -> int:
    """Instructions executed by a child analyzing `path` under valgrind's callgrind."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-c", INSTRUCTIONS, str(tree), str(path), mode],
        check=True, capture_output=True, text=True,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split("Collected :")[1].split()[0])
    raise RuntimeError(f"no instruction count from callgrind: {out.stderr[-300:]}")


def per_event(tree: Path, path: Path, lines: int, mode: str) -> float:
    """Instructions per event: the first `lines` lines less the first ten (start-up)."""
    many = instructions(tree, head_of(path, lines), mode)
    few = instructions(tree, head_of(path, 10), mode)
    return (many - few) / (lines - 10)


def best(repeat: int, code: str, *args: str) -> dict[str, float]:
    runs = [measure(code, *args) for _ in range(repeat)]
    return min(runs, key=lambda r: r["cpu"])


def baseline_tree(rev: str, into: Path) -> Path:
    tree = into / f"baseline-{rev}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "mgt"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def print_summary(
    rows: list[tuple[str, str, dict[str, float], float, float | None]], baseline: str | None
) -> None:
    """One line per file shape and `--since`: events per CPU second, before, now, DuckDB."""
    print(f"\n{'file':<26} {'--since':<8} {'before':>10} {'now':>10} {'ratio':>6} "
          f"{'duckdb':>10} {'peak RSS':>9}")
    for label, mode, rates, peak, duck in rows:
        before = rates.get(baseline, 0.0) if baseline else 0.0
        shown_before = f"{before:,.0f}" if before else "-"
        ratio = f"{rates['now'] / before:.2f}x" if before else "-"
        shown_duck = f"{duck:,.0f}" if duck else "-"
        print(f"{label:<26} {mode:<8} {shown_before:>10} {rates['now']:>10,.0f} {ratio:>6} "
              f"{shown_duck:>10} {peak:>7.1f}MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="generate into (and reuse) this directory")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best kept)")
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision")
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument(
        "--instructions", type=int, metavar="LINES",
        help="also count instructions per event under valgrind's callgrind on each file's "
             "first LINES lines (100000 takes about a minute a row): a figure the load "
             "of a shared machine does not move")
    parser.add_argument(
        "--only", action="append", metavar="SHAPE[:MODE]",
        help="measure only this file shape (ordered-first, ordered-last, shuffled-first, "
             "shuffled-last, ordered-wide, ordered-unicode), optionally one mode (24h, all, "
             "source); "
             "repeatable")
    parser.add_argument("--shape", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.shape:
        order, key, base, out = args.shape
        write_shape(Path(base), order, key, Path(out))
        return 0

    with tempfile.TemporaryDirectory(prefix="mgt-bench-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        base = generate(directory, args.events)
        files = [(order, key, shaped(base, order, key)) for order, key in SHAPES]
        trees = [("now", REPO)]
        if args.baseline:
            trees.insert(0, (args.baseline, baseline_tree(args.baseline, directory)))
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
              f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
        header = (f"{'file':<24} {'mode':<12} {'code':<9} {'CPU s':>6} {'wall s':>7} "
                  f"{'events/s':>10} {'peak RSS':>9} {'speed-up':>8}")
        print(header)
        print("-" * len(header))
        summary: list[tuple[str, str, dict[str, float], float, float | None]] = []
        work: dict[tuple[str, str], dict[str, float]] = {}
        only = [tuple(o.split(":", 1)) if ":" in o else (o, None) for o in args.only or []]
        for order, key, path in files:
            label = label_of(order, key)
            modes = ["24h", "all"] + (["source"] if key in ("first", "wide") and
                                      order == "ordered" else [])
            if only:
                modes = [m for m in modes if (f"{order}-{key}", m) in only
                         or (f"{order}-{key}", None) in only]
                if not modes:
                    continue
            rows: list[tuple[str, dict[str, float], float]] = []
            for mode in modes:
                rates: dict[str, float] = {}
                peak = 0.0
                # Runs of the two trees alternate, so that a slower spell of a shared
                # machine weighs on both (the best run of each is kept).
                runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
                for _ in range(args.repeat):
                    for name, tree in trees:
                        runs[name].append(measure(CHILD, str(tree), str(path), mode))
                for name, _ in trees:
                    r = min(runs[name], key=lambda run: run["cpu"])
                    rates[name] = r["events"] / r["cpu"]
                    peak = r["peak_kb"] / 1024
                    up = (f"{rates['now'] / rates[args.baseline]:>7.2f}x"
                          if name == "now" and args.baseline else "")
                    shown = "source only" if mode == "source" else f"--since {mode}"
                    print(f"{label:<24} {shown:<12} {name:<9} {r['cpu']:>6.2f} "
                          f"{r['seconds']:>7.2f} {rates[name]:>10,.0f} "
                          f"{r['peak_kb'] / 1024:>7.1f}MB {up:>8}", flush=True)
                if args.instructions and mode != "source":
                    counts = {name: per_event(tree, path, args.instructions, mode)
                              for name, tree in trees}
                    ratio = (f"  {counts[args.baseline] / counts['now']:.2f}x fewer"
                             if args.baseline else "")
                    shown = ", ".join(f"{name} {n:,.0f}" for name, n in counts.items())
                    print(f"{label:<24} --since {mode:<4} instructions/event: {shown}{ratio}",
                          flush=True)
                    work[(label, mode)] = counts
                if mode != "source":
                    rows.append((mode, rates, peak))
            duck: float | None = None
            if not args.no_duckdb:
                try:
                    r = best(args.repeat, DUCKDB, str(path))
                except subprocess.CalledProcessError as err:
                    print(f"{label:<24} duckdb: failed: {err.stderr.strip()[-200:]}")
                    r = {}
                if r:
                    duck = r["events"] / r["cpu"]
                    print(f"{label:<24} {'same aggr.':<12} {'duckdb':<9} {r['cpu']:>6.2f} "
                          f"{r['seconds']:>7.2f} {r['events'] / r['cpu']:>10,.0f} "
                          f"{r['peak_kb'] / 1024:>7.1f}MB", flush=True)
            summary += [(label, mode, rates, peak, duck) for mode, rates, peak in rows]
        print_summary(summary, args.baseline)
        if work and args.baseline:
            print(f"\ninstructions per event (first {args.instructions:,} lines, callgrind): "
                  "before / now")
            for (label, mode), counts in work.items():
                print(f"{label:<26} {mode:<8} {counts[args.baseline]:>10,.0f} "
                      f"{counts['now']:>10,.0f} {counts[args.baseline] / counts['now']:>5.2f}x")
        print("\nevents/s: events analyzed per second of CPU time (best of "
              f"{args.repeat}); duckdb: rows loaded and aggregated, all its threads' CPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
