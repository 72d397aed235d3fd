"""N concurrent runs of a machine of S model states, each call taking T seconds → wall time.

    python bench/bench_runs.py [--runs 100] [--states 5] [--seconds 1] [--cap 100]
                               [--executor replay|standin] [--dir DIR]

`mgt exec --each` over N input lines, all N at once (`--parallel N`), with the
model call cap at `--cap` (default N, so the cap never makes a run wait; a
smaller cap shows the waiting: the floor becomes N*S*T/cap). Each model call
takes T seconds, scripted one of two ways:

    replay    (default) the replay executor answering recorded results after
              MGT_REPLAY_DELAY=T: what is measured is mgt's own cost (forking the
              runs, journaling every event, fsync'd, taking a model slot per call)
    standin   the real `claude` executor running a stand-in program
              (tests/fakes/slow-claude, a shell script that sleeps T seconds):
              adds what a real model call costs mgt, a process tree per call

The runs directory is made in `--dir` (default: a temporary directory), so the
fsync cost is that of the file system it is on.

Printed: the wall time against the critical path (S*T, or N*S*T/cap when the cap
binds; goal ≤ 1.3x), the most model calls that ran at once (from the journals'
attempt start and end times), and peak memory: the launcher's and its children's summed PSS
(proportional set size: pages shared after the fork counted once), sampled from
/proc every 0.1 s, beside the summed RSS (which counts shared pages per process).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.runtime.slowmodel import POLECAT  # noqa: E402  (the stand-in's polecat)
from tests.runtime.slowmodel import SLOW_CLAUDE as STANDIN  # noqa: E402

ANSWER = {"type": "result", "subtype": "success", "is_error": False, "result": "{}",
          "structured_output": {"ok": True}, "total_cost_usd": 0.001,
          "usage": {"input_tokens": 10, "output_tokens": 2}}


def machine_text(states: int) -> str:
    lines = ['machine chain "model states in a row"', "", 'import polecats from "polecats"', "",
             "input item: str", ""]
    for n in range(1, states + 1):
        target = f"s{n + 1}" if n < states else "ok"
        lines += [f"state s{n}:", f'    run polecat worker prompt "step {n}"',
                  f"    on done -> {target}", ""]
    lines += ["final ok: succeed", ""]
    return "\n".join(lines)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB of `pid` (0, 0 if it is gone)."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class Sampler(threading.Thread):
    """Peak summed PSS and RSS of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_pss = self.peak_rss = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            tree = _children()
            todo, seen = [self.pid], []
            while todo:
                pid = todo.pop()
                seen.append(pid)
                todo.extend(tree.get(pid, []))
            pss = rss = 0
            for pid in seen:
                p, r = _memory_kib(pid)
                pss, rss = pss + p, rss + r
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_procs = max(self.peak_procs, len(seen))
            self.stop.wait(0.1)


def max_overlap(runs: Path) -> int:
    """The most model attempts under way at once, from every run's journal (an attempt
    waiting for a model slot counts: with a cap below --runs this is not the calls)."""
    from datetime import datetime

    points = []
    for events in runs.glob("*/events.jsonl"):
        for line in events.read_text().splitlines():
            event = json.loads(line)
            step = {"attempt_started": 1, "attempt_finished": -1}.get(event["type"])
            if step:
                points.append((datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
                               .timestamp(), step))
    most = now = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        now += step
        most = max(most, now)
    return most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--states", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--cap", type=int, help="model calls at once (default: --runs)")
    parser.add_argument("--executor", choices=["replay", "standin"], default="replay")
    parser.add_argument("--dir", type=Path, help="where to make the runs (default: a temp dir)")
    args = parser.parse_args()
    cap = args.cap or args.runs
    with tempfile.TemporaryDirectory(prefix="bench-runs-", dir=args.dir) as tmp:
        root = Path(tmp)
        (root / "polecats").mkdir()
        (root / "polecats" / "worker.toml").write_text(POLECAT)
        (root / "chain.mgt").write_text(machine_text(args.states))
        (root / "in.jsonl").write_text(
            "".join(json.dumps({"item": f"i{n}"}) + "\n" for n in range(args.runs)))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("MGT_MAX_MODEL_CALLS", None)
        if args.executor == "standin":
            env.update(MGT_CLAUDE=str(STANDIN), SLOW_CLAUDE_SECONDS=str(args.seconds))
            executor = "claude"
        else:
            (root / "answers").mkdir()
            for n in range(1, args.states + 1):
                (root / "answers" / f"s{n}.json").write_text(json.dumps(ANSWER))
            env.update(MGT_REPLAY_DELAY=str(args.seconds))
            executor = f"replay:{root / 'answers'}"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mgt", "exec", "chain.mgt", "--each", "in.jsonl",
             "--executor", executor, "--runs-dir", "runs", "--parallel", str(args.runs),
             "--max-model-calls", str(cap), "--json"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        out, err = proc.communicate()
        wall = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        if proc.returncode != 0:
            print(err[-2000:], file=sys.stderr)
            print(f"mgt exec --each exited {proc.returncode}", file=sys.stderr)
            return 1
        summary = json.loads(out)
        critical = args.states * args.seconds * max(1.0, args.runs / cap)
        print(f"{args.runs} runs x {args.states} model states of {args.seconds:g}s "
              f"({args.executor}), all at once, cap {cap} model calls, runs in {root}")
        print(f"  succeeded        {summary['succeeded']}/{summary['total']}")
        print(f"  wall time        {wall:.2f}s (mgt's own count: {summary['seconds']:.2f}s; "
              f"includes start-up)")
        print(f"  critical path    {critical:.2f}s")
        print(f"  ratio            {wall / critical:.2f}x (goal <= 1.3x)")
        print(f"  attempts at once {max_overlap(root / 'runs')} at most (cap {cap})")
        print(f"  peak memory      {sampler.peak_pss / 1024:.0f} MiB PSS summed over "
              f"{sampler.peak_procs} processes at most "
              f"(RSS summed: {sampler.peak_rss / 1024:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
