"""A fan-out of N items, M at a time, over a command sleeping T seconds → wall time; LangGraph too.

    python bench/bench_fanout.py [--items 200] [--max 50] [--seconds 1] [--dir DIR]

Two runs of the same work, each item one `sleep T` process:

    mgt         `mgt exec` of a machine whose one state maps `run command "sleep T"`
                over its `items` input with `max M` (the fan-out syntax of the
                language reference), journaled as any run (every item's outcome
                fsync'd), in a runs directory under `--dir` (default: a temp dir)
    langgraph   a StateGraph whose START fans out one `Send("work", item)` per
                item to a node that runs the same `sleep T` process, invoked with
                `max_concurrency` M and no checkpointer

Printed: each wall time against the critical path (ceil(N/M) * T: 4 s for 200
items of 1 s, 50 at a time; goal ≤ 1.3x), and mgt's time as a ratio to
LangGraph's. mgt's figure includes the `mgt` process's start-up and the check
of the machine; LangGraph's does not include its import. Nothing is asserted.
When the machine does not check (a version of mgt without the fan-out
construct), the mgt half is skipped with the checker's first message, and
LangGraph's figure is still printed; without LangGraph (`pip install -e
'.[bench]'`) that half is skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]


def machine_text(limit: int, seconds: float) -> str:
    return f'''\
machine fanout "sleep once per item, {limit} at a time"

input items: json

state each:
    for item in input.items max {limit}
    run command "sleep {seconds:g}"
    on done -> ok
    on error -> failed

final ok: succeed
final failed: fail
'''


def _mgt(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mgt", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def bench_mgt(items: int, limit: int, seconds: float, root: Path) -> float | str:
    """Wall seconds of the run, or why it was skipped."""
    machine = root / "fanout.mgt"
    machine.write_text(machine_text(limit, seconds))
    checked = _mgt("check", machine, cwd=root)
    if checked.returncode != 0:
        first = next((line for line in checked.stdout.splitlines() + checked.stderr.splitlines()
                      if line.strip()), "no message")
        return f"the fan-out machine does not check with this mgt: {first}"
    (root / "items.json").write_text(json.dumps({"items": list(range(items))}))
    started = time.monotonic()
    done = _mgt("exec", machine, "--inputs", root / "items.json", "--runs-dir", root / "runs",
                "--json", cwd=root)
    wall = time.monotonic() - started
    if done.returncode != 0:
        return f"the run did not succeed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return wall


class _State(TypedDict):
    items: list[int]
    done: Annotated[list[int], operator.add]


def bench_langgraph(items: int, limit: int, seconds: float) -> float | str:
    try:
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Send
    except ImportError:
        return "langgraph is not installed (pip install -e '.[bench]')"

    def fan(state: _State) -> list[Any]:  # (Send: LangGraph reads these hints at run time)
        return [Send("work", {"items": [item], "done": []}) for item in state["items"]]

    def work(state: _State) -> dict[str, Any]:
        subprocess.run(["sleep", f"{seconds:g}"], check=True)
        return {"done": state["items"]}

    graph: Any = StateGraph(_State)
    graph.add_node("work", work)
    graph.add_conditional_edges(START, fan, ["work"])
    graph.add_edge("work", END)
    app = graph.compile()
    started = time.monotonic()
    result = app.invoke({"items": list(range(items)), "done": []},
                        config={"max_concurrency": limit})
    wall = time.monotonic() - started
    if sorted(result["done"]) != list(range(items)):
        return "LangGraph did not run every item"
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--max", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--dir", type=Path, help="where to make the run (default: a temp dir)")
    args = parser.parse_args()
    critical = math.ceil(args.items / args.max) * args.seconds
    print(f"fan-out of {args.items} items, {args.max} at a time, each `sleep "
          f"{args.seconds:g}`: critical path {critical:.2f}s (goal <= 1.3x)")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-", dir=args.dir) as tmp:
        ours = bench_mgt(args.items, args.max, args.seconds, Path(tmp))
    theirs = bench_langgraph(args.items, args.max, args.seconds)
    for name, figure in (("mgt", ours), ("langgraph", theirs)):
        if isinstance(figure, str):
            print(f"  {name:<10} skipped: {figure}")
        else:
            print(f"  {name:<10} {figure:6.2f}s  {figure / critical:.2f}x the critical path")
    if isinstance(ours, float) and isinstance(theirs, float):
        print(f"  mgt / langgraph  {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
