"""A chain of N `builtin noop` states → per-transition overhead: mgt vs raw chart vs LangGraph.

    python bench/bench_transitions.py [--states 200] [--repeat 3] [--dir DIR]

Three runs of the same graph (s0 → s1 → ... → s{N-1} → end), each step doing nothing:

    mgt               the interpreter with its durable journal (fsync'd events.jsonl,
                      atomic run.json and output files, a lock), as `mgt exec` runs it
    python-statemachine  the raw chart: N `send("done")` calls on a StateMachine of the
                      same shape, nothing persisted (the floor mgt builds on)
    langgraph+sqlite  a LangGraph StateGraph of N no-op nodes compiled with its SQLite
                      checkpointer, durability "sync" (each step's checkpoint committed
                      before the next step, like mgt's journal): the durable comparison;
                      its default "async" mode is printed too

Each is timed end to end (setup excluded: building the chart or graph, creating
the database), best of `--repeat`, and printed as µs/transition with ratios to
the raw chart. The journal lives in `--dir` (default: a temporary directory), so
the fsync cost is that of the file system it is on; the figure says which.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def chain_machine(n: int) -> Any:
    from mgt.compile.model import FinalSpec, Machine, RunSpec, StateSpec, TransitionSpec

    names = [f"s{i}" for i in range(n)]
    states = {
        name: StateSpec(
            name,
            RunSpec("builtin", "noop"),
            transitions=(TransitionSpec("done", names[i + 1] if i + 1 < n else "end"),),
        )
        for i, name in enumerate(names)
    }
    return Machine(
        name="chain",
        description=None,
        source_path="chain.mgt",
        source_hash="0" * 64,
        inputs=(),
        start=names[0],
        states=states,
        finals={"end": FinalSpec("end", "succeed")},
    )


def bench_mgt(n: int, runs_dir: Path) -> float:
    from mgt.runtime.interpreter import Interpreter
    from mgt.runtime.journal import RunJournal, new_run_id

    machine = chain_machine(n)
    journal = RunJournal.create(runs_dir, new_run_id("chain"))
    interp = Interpreter(machine, journal, {})
    start = time.perf_counter()
    result = interp.start()
    elapsed = time.perf_counter() - start
    journal.close()
    assert result.status == "succeeded" and len(result.path) == n + 1, result.summary()
    return elapsed


def bench_statemachine(n: int) -> float:
    from statemachine import State, StateMachine

    states = {f"s{i}": State(name=f"s{i}", value=f"s{i}", initial=i == 0) for i in range(n)}
    end = State(name="end", value="end", final=True)
    chain = [*states.values(), end]
    for a, b in itertools.pairwise(chain):
        a.to(b, event="done")
    attrs: dict[str, Any] = {**states, "end": end, "__module__": __name__}
    metaclass: Any = type(StateMachine)  # python-statemachine builds charts in its metaclass
    chart_cls: Any = metaclass("Chain", (StateMachine,), attrs)
    chart = chart_cls()
    start = time.perf_counter()
    for _ in range(n):
        chart.send("done")
    elapsed = time.perf_counter() - start
    assert chart.current_state_value == "end"
    return elapsed


def bench_langgraph(n: int, db: Path, durability: str = "sync") -> float:
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    class Step(TypedDict, total=False):
        last: str

    def noop(name: str) -> Callable[[Step], Step]:
        def node(state: Step) -> Step:
            return {"last": name}

        return node

    graph: Any = StateGraph(Step)
    names = [f"s{i}" for i in range(n)]
    for name in names:
        graph.add_node(name, noop(name))
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    conn = sqlite3.connect(db, check_same_thread=False)
    app: Any = graph.compile(checkpointer=SqliteSaver(conn))
    config = {"configurable": {"thread_id": "bench"}, "recursion_limit": n + 10}
    start = time.perf_counter()
    # "sync": each step's checkpoint is committed before the next step starts, as mgt's
    # journal is (LangGraph's default, "async", writes it while the next step runs).
    out = app.invoke({}, config, durability=durability)
    elapsed: float = time.perf_counter() - start
    conn.close()
    assert out.get("last") == names[-1], out
    return elapsed


def _filesystem(path: Path) -> str:
    try:
        best = ""
        fstype = "?"
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                mount = parts[1]
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, fstype = mount, parts[2]
        return fstype
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where the journal and the database go")
    args = parser.parse_args(argv)
    n = args.states
    try:
        import langgraph.checkpoint.sqlite  # noqa: F401
        have_langgraph = True
    except ImportError as err:
        print(f"langgraph not installed ({err}); pip install -e '.[bench]'", file=sys.stderr)
        have_langgraph = False

    base = Path(tempfile.mkdtemp(prefix="mgt-bench-", dir=args.dir))
    contenders: dict[str, Callable[[int], float]] = {
        "python-statemachine (raw chart)": lambda i: bench_statemachine(n),
        "mgt (durable journal)": lambda i: bench_mgt(n, base / f"runs{i}"),
    }
    if have_langgraph:
        contenders["langgraph + SqliteSaver (sync)"] = (
            lambda i: bench_langgraph(n, base / f"lg{i}.sqlite", "sync"))
        contenders["langgraph + SqliteSaver (async)"] = (
            lambda i: bench_langgraph(n, base / f"lga{i}.sqlite", "async"))
    best: dict[str, float] = {}
    try:
        # Round robin, so a busy moment of the machine or its disk hits every contender alike.
        for i in range(args.repeat):
            for name, bench in contenders.items():
                seconds = bench(i)
                best[name] = min(best.get(name, seconds), seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    raw_s = best["python-statemachine (raw chart)"]
    print(f"{n}-state chain of no-op steps, best of {args.repeat} (round robin); "
          f"journal and database on {_filesystem(base)} ({os.cpu_count()} CPUs)")
    width = max(len(name) for name in best)
    for name, seconds in best.items():
        print(f"  {name:<{width}}  {seconds / n * 1e6:10.1f} µs/transition  "
              f"{seconds / raw_s:8.1f}× raw chart")
    if have_langgraph:
        ratio = best["mgt (durable journal)"] / best["langgraph + SqliteSaver (sync)"]
        print(f"  mgt / langgraph+sqlite (sync) = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
