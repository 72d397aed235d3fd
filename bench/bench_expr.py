"""Guard evaluation, guard type-checking, definition loading and lowering → figures printed per op.

Run: python bench/bench_expr.py   (prints figures; asserts nothing)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mgt.compile.lower import lower
from mgt.defs import SchemaRegistry, load_formulas, load_polecats
from mgt.expr import Scope, evaluate_guard, schema_type, typecheck_guard
from mgt.syntax import parse_source

ROOT = Path(__file__).resolve().parents[1]
GUARD = 'count(output.patterns, it.severity != "info") == 0 and output.summary.total_patterns < 5'


def per_op(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def chain(states: int) -> str:
    lines = ["machine big"] + [
        f'import {kind} from "{ROOT / kind}"' for kind in ("formulas", "polecats", "schemas")
    ]
    for i in range(states):
        nxt = f"s{i + 1}" if i + 1 < states else "done_ok"
        lines += [f"state s{i}:", "    run formula analyze",
                  f"    on done when {GUARD} -> {nxt}", f"    on done -> {nxt}"]
    lines.append("final done_ok: succeed")
    return "\n".join(lines) + "\n"


def show(label: str, seconds: float, unit: str) -> None:
    scale = {"µs": 1e6, "ms": 1e3}[unit]
    print(f"{label:<32}{seconds * scale:9.1f} {unit}")


def main() -> None:
    schemas = SchemaRegistry.load_dir(ROOT / "schemas")
    polecats, formulas = load_polecats(ROOT / "polecats"), load_formulas(ROOT / "formulas")
    guard = parse_source(chain(1), "b.mgt").states[0].transitions[0].guard
    assert guard is not None
    output = {
        "patterns": [{"severity": s} for s in ("info", "warning", "critical") * 10],
        "summary": {"total_patterns": 30, "critical": 10, "warning": 10, "info": 10},
    }
    env = {"output": output, "input": {}}
    scope = Scope(output=schema_type(schemas, "PatternReport"))
    show("evaluate guard (30 patterns)", per_op(lambda: evaluate_guard(guard, env), 20000), "µs")
    show("typecheck guard", per_op(lambda: typecheck_guard(guard, scope), 5000), "µs")

    def load_all() -> object:
        return (load_polecats(ROOT / "polecats"), load_formulas(ROOT / "formulas"),
                SchemaRegistry.load_dir(ROOT / "schemas"))

    show("load bundled definitions", per_op(load_all, 50), "ms")
    big = chain(500)
    decl = parse_source(big, "big.mgt")

    def lower_big() -> object:
        return lower(decl, source=big, polecats=polecats, formulas=formulas, schemas=schemas)

    show("lower a 500-state machine", per_op(lower_big, 10), "ms")


if __name__ == "__main__":
    main()
