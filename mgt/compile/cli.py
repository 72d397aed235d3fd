"""`mgt graph FILE [--format F] [-o OUT] [--run RUN_ID]` → the machine drawn on stdout or OUT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mgt.compile.model import IMPLICIT_FAIL
from mgt.errors import MgtError, UsageError

if TYPE_CHECKING:
    from mgt.compile.graph import TakenPath
    from mgt.compile.model import Machine

__all__ = ["graph_main"]


def graph_main(args: argparse.Namespace) -> int:
    from mgt.compile import load_machine
    from mgt.compile.graph import graph_of, render

    fmt: str = args.format
    output: str | None = args.output
    if fmt == "png" and output is None and sys.stdout.isatty():
        raise UsageError("a PNG is binary: write it to a file with -o FILE.png")
    machine = load_machine(args.file)  # a CheckError is rendered by mgt.cli
    taken = _taken_path(machine, args.runs_dir, args.run) if args.run is not None else None
    drawing = render(graph_of(machine, taken), fmt)
    data = drawing.encode("utf-8") if isinstance(drawing, str) else drawing
    if output is not None:
        _write(Path(output), data)
    elif isinstance(drawing, str):
        sys.stdout.write(drawing)
        sys.stdout.flush()
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _taken_path(machine: Machine, runs_dir: str, run_id: str) -> TakenPath:
    """The path run `run_id` took, read through the runtime's journal reader."""
    from mgt.compile.graph import TakenPath
    from mgt.runtime.journal import load_run

    record = load_run(runs_dir, run_id)
    retried: set[tuple[str, str]] = set()
    for name, state in record.states.items():
        attempts = sorted(state.attempts, key=lambda a: a.attempt)
        retried.update((name, a.outcome) for a in attempts[:-1] if a.outcome)
    known = set(machine.states) | set(machine.finals) | {IMPLICIT_FAIL}
    strangers = sorted(
        {name for step in record.transitions for name in (step[0], step[2])} - known
    )
    run_machine = record.info.get("machine")
    run_hash = run_machine.get("sha256") if isinstance(run_machine, dict) else None
    if strangers:
        print(
            f"mgt: warning: run {run_id} went through states that {machine.source_path} "
            f"does not have ({', '.join(strangers)}): was the machine changed since?",
            file=sys.stderr,
        )
    elif isinstance(run_hash, str) and run_hash != machine.source_hash:
        print(
            f"mgt: warning: run {run_id} ran another version of {machine.source_path}; "
            "its path is drawn on this one",
            file=sys.stderr,
        )
    guards: dict[tuple[str, str, str], set[str | None]] = {}
    for took in record.run.transitions:  # the fold's typed transitions
        if took.guard_given:
            guards.setdefault((took.source, took.event, took.target), set()).add(took.guard)
    return TakenPath(
        run_id=run_id,
        steps=tuple(record.transitions),
        entered=tuple(record.path),
        retried=frozenset(retried),
        guards={step: frozenset(texts) for step, texts in guards.items()},
    )


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise MgtError(f"cannot write {path}: {err.strerror or err}") from err
