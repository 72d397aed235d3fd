"""Benchmark: `mgt check` of a generated 500-state machine, and `mgt --help` start-up.

Goals: checking 500 states in under 0.5 s (as a subprocess, start-up included),
`mgt --help` in under 150 ms. Prints figures; it is not a test and asserts nothing.

    python bench/bench_check.py [--states N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(states: int) -> str:
    """A machine of `states` formula/command/builtin states, each with bindings, guards,
    retries and transitions for every outcome, reading earlier states' outputs."""
    lines = [
        'machine big "generated for the check benchmark"',
        f'import polecats from "{ROOT / "polecats"}"',
        f'import formulas from "{ROOT / "formulas"}"',
        f'import schemas from "{ROOT / "schemas"}"',
        "input since: duration = 24h",
        "input limit: int = 3",
        'input mode: enum("all", "errors") = "all"',
        "",
    ]
    for i in range(states):
        nxt = f"s{i + 1}" if i + 1 < states else "finished"
        kind = i % 3
        if kind == 0:
            lines += [
                f"state s{i}:",
                "    run formula analyze",
                "    with since = input.since, min_occurrences = input.limit + 1,",
                "         query_type = input.mode",
                "    timeout 60s",
                "    retry 2 on schema_invalid with feedback backoff 5s",
                "    on done when output.summary.total_patterns == 0 -> finished",
                f'    on done when count(output.patterns, it.severity == "critical") > {i % 5} '
                f"-> {nxt}",
                f"    on done -> {nxt}",
                "    on schema_invalid -> failed",
                "    on guardrail -> failed",
                "    on timeout -> failed",
                "    on error -> failed",
            ]
        elif kind == 1:
            lines += [
                f"state s{i}:",
                f'    run command "echo step {i}"',
                f"    with total = s{i - 1}.output.summary.total_patterns",
                f"    on done when output.exit_code == 0 and s{i - 1}.attempts < 3 -> {nxt}",
                f"    on done -> {nxt}",
                "    on timeout -> failed",
                "    on error -> failed",
            ]
        else:
            lines += [
                f"state s{i}:",
                "    run builtin noop",
                "    output PatternReport",
                "    retry 1 on error",
                f"    on done when len(output.patterns) > 0 or s{i - 2}.attempts > 1 -> {nxt}",
                f"    on done -> {nxt}",
                "    on schema_invalid -> failed",
                "    on guardrail -> failed",
                "    on error -> failed",
            ]
        lines.append("")
    lines += ['final finished: succeed "done"', "final failed: fail"]
    return "\n".join(lines) + "\n"


def _cpu() -> float:
    """CPU seconds of this process and its finished children (steadier than wall time
    on a busy machine)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = _cpu(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return walls, cpus


def show(label: str, times: tuple[list[float], list[float]], goal: float | None = None) -> None:
    walls, cpus = times
    best, median, cpu = min(walls), statistics.median(walls), min(cpus)
    verdict = ""
    if goal is not None:
        verdict = f"  goal < {goal * 1000:.0f} ms: {'met' if best < goal else 'MISSED'}"
    print(
        f"{label:<44} wall best {best * 1000:6.1f} ms  median {median * 1000:6.1f} ms  "
        f"cpu {cpu * 1000:6.1f} ms{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.mgt"
        path.write_text(generate(args.states), encoding="utf-8")
        lines = path.read_text(encoding="utf-8").count("\n")
        print(f"machine: {args.states} states, {lines} lines, {path.stat().st_size} bytes")

        # As installed: byte-code cached (kept out of the tree, in the temp dir).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")

        def cli(*argv: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "mgt", *argv], capture_output=True, check=False, env=env
            )

        cli("--help")
        cli("check", str(path))  # warm the byte-code and lark's grammar cache

        # In-process: the first call pays for imports and the parser; later ones do not.
        t0 = time.perf_counter()
        from mgt.check import check_file

        result = check_file(path)
        first = time.perf_counter() - t0
        errors = [d for d in result.diagnostics if d.is_error]
        print(f"diagnostics: {len(result.diagnostics)} ({len(errors)} errors)")
        for d in errors[:3]:
            print("  ", d.headline())
        print(f"{'in-process, first call (imports included)':<44} wall {first * 1000:6.1f} ms")
        show("in-process, warm", timed(lambda: check_file(path), args.repeat))

        from mgt.syntax import parse_file

        show("  of which parsing", timed(lambda: parse_file(path), args.repeat))
        show(f"mgt check (subprocess, {args.states} states)",
             timed(lambda: cli("check", str(path)), args.repeat), goal=0.5)
        show("mgt --help (subprocess)", timed(lambda: cli("--help"), args.repeat), goal=0.15)
        show("python -c pass (interpreter floor)",
             timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=False),
                   args.repeat))
        show("python -c 'import mgt.defs' (pydantic models)",
             timed(lambda: subprocess.run([sys.executable, "-c", "import mgt.defs"],
                                          check=False, env=env), args.repeat))


if __name__ == "__main__":
    main()
