"""A project whose model states call a slow Claude Code stand-in, and how many calls overlapped.

The stand-in (tests/fakes/slow-claude) is a real program run by the real `claude`
executor; each call writes its start and stop times into a log directory, so a
test counts the most calls that were under way at once without timing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

SLOW_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "slow-claude"

POLECAT = """\
[polecat]
name = "worker"
description = "answers"
role = "worker"

[model]
provider = "anthropic"
name = "claude-haiku-4-20250514"

[prompt.system]
content = "You work."
"""


def model_machine(states: int, *, item_input: bool = True) -> str:
    """A machine of `states` model states in a row (and an `item` input when asked)."""
    lines = ['machine chain "model states in a row"', "", 'import polecats from "polecats"', ""]
    if item_input:
        lines += ["input item: str", ""]
    for n in range(1, states + 1):
        target = f"s{n + 1}" if n < states else "ok"
        lines += [f"state s{n}:", f'    run polecat worker prompt "step {n}"',
                  f"    on done -> {target}", "    on error -> failed", ""]
    lines += ["final ok: succeed", "final failed: fail", ""]
    return "\n".join(lines)


def make_project(root: Path, states: int = 2) -> Path:
    """root/chain.mgt (+ its polecat); the machine file's path."""
    (root / "polecats").mkdir(parents=True, exist_ok=True)
    (root / "polecats" / "worker.toml").write_text(POLECAT)
    machine = root / "chain.mgt"
    machine.write_text(model_machine(states))
    return machine


def slow_env(log: Path, seconds: float) -> dict[str, str]:
    """The environment that makes `--executor claude` run the stand-in, logging into `log`."""
    log.mkdir(parents=True, exist_ok=True)
    return {"MGT_CLAUDE": str(SLOW_CLAUDE), "SLOW_CLAUDE_LOG": str(log),
            "SLOW_CLAUDE_SECONDS": str(seconds), "MGT_MAX_MODEL_CALLS": ""}


def intervals(log: Path) -> list[tuple[float, float]]:
    """(start, stop) of every call that finished (one still running has no stop)."""
    spans = []
    for start in log.glob("*.start"):
        stop = start.with_suffix(".stop")
        if stop.is_file():
            spans.append((float(start.read_text()), float(stop.read_text())))
    return spans


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals under way at one instant (an end before a start at a tie)."""
    points = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                    key=lambda p: (p[0], p[1]))
    most = now = 0
    for _, step in points:
        now += step
        most = max(most, now)
    return most


def kill_standins(log: Path) -> None:
    """End stand-ins a killed test left sleeping (each leads a process group of its own)."""
    import contextlib
    import signal

    for start in log.glob("*.start"):
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(start.stem), signal.SIGKILL)
