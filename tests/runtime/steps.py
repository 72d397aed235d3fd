"""Built-in steps for the interpreter tests, registered in mgt.extensions.BUILTINS by the tests.

Each one records its call in `RUN_DIR/calls.log` (`state attempt` per line), so a
test can tell exactly which attempts really ran, across a resume.
"""

from __future__ import annotations

import os
from typing import Any

from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure


def _log(ctx: StepContext) -> int:
    path = ctx.run_dir / "calls.log"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{ctx.state} {ctx.attempt}\n")
    return sum(1 for line in path.read_text().splitlines() if line.split()[0] == ctx.state)


def calls(run_dir: os.PathLike[str] | str) -> list[tuple[str, int]]:
    path = os.path.join(run_dir, "calls.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [(s, int(n)) for s, n in (line.split() for line in fh if line.strip())]


def count(ctx: StepContext) -> dict[str, Any]:
    """Succeed with the state's call count and its bindings."""
    n = _log(ctx)
    return {"calls": n, "attempt": ctx.attempt, **ctx.bindings}


def flaky(ctx: StepContext) -> dict[str, Any]:
    """Fail (StepFailure) until the attempt given by the `succeed_on` binding."""
    _log(ctx)
    if ctx.attempt < int(ctx.bindings.get("succeed_on", 2)):
        raise StepFailure(f"not yet (attempt {ctx.attempt})")
    return {"attempt": ctx.attempt}


def reject(ctx: StepContext) -> dict[str, Any]:
    _log(ctx)
    raise GuardrailFailure(["change 1 cites no pattern id", "flake.nix is a forbidden path"])


def crash(ctx: StepContext) -> dict[str, Any]:
    _log(ctx)
    raise ValueError("boom")


def interrupt_once(ctx: StepContext) -> dict[str, Any]:
    """Act like Ctrl-C during the first call in a run, succeed afterwards."""
    n = _log(ctx)
    if n == 1:
        raise KeyboardInterrupt
    return {"calls": n}


def report(ctx: StepContext) -> dict[str, Any]:
    """A small Report (see tests/runtime/schemas), from the `total` binding."""
    _log(ctx)
    return {"summary": {"total": ctx.bindings.get("total", 0)}, "items": []}


def check_items(ctx: StepContext, output: Any) -> list[str]:
    """An output check: every item must have a cited id."""
    return [f"item {i} cites no id" for i, it in enumerate(output["items"]) if not it.get("id")]


def rounds(ctx: StepContext) -> dict[str, Any]:
    """Count finished visits: one more than this state's previous output said."""
    _log(ctx)
    previous = ctx.outputs.get(ctx.state) or {}
    return {"round": int(previous.get("round", 0)) + 1}
