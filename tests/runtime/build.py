"""Compact constructors for `Machine` models and runs, so interpreter tests read like .mgt."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mgt.compile.model import (
    FinalSpec,
    InputSpec,
    Machine,
    RetrySpec,
    RunSpec,
    StateSpec,
    TransitionSpec,
)
from mgt.defs import SchemaRegistry, load_formulas, load_polecats
from mgt.executors import make_executor
from mgt.executors.base import Executor
from mgt.runtime.interpreter import Interpreter, RunResult
from mgt.runtime.journal import RunJournal
from tests.expr.helpers import parse_expr

ROOT = Path(__file__).resolve().parents[2]

REPORT = {
    "type": "object",
    "required": ["summary", "items"],
    "properties": {
        "summary": {
            "type": "object",
            "required": ["total"],
            "properties": {"total": {"type": "integer", "minimum": 0}},
        },
        "items": {"type": "array", "items": {"type": "object"}},
    },
}


def on(event: str, target: str, guard: str | None = None) -> TransitionSpec:
    return TransitionSpec(event, target, parse_expr(guard) if guard else None, guard)


def retry(count: int, *events: str, feedback: bool = False, backoff: float | None = None
          ) -> RetrySpec:
    return RetrySpec(count, frozenset(events), feedback, backoff)


def builtin(name: str, *transitions: TransitionSpec, step: str = "noop",
            retries: Iterable[RetrySpec] = (), output: str | None = None,
            **bindings: str) -> StateSpec:
    return StateSpec(
        name, RunSpec("builtin", step),
        bindings=tuple((k, parse_expr(v)) for k, v in bindings.items()),
        output_schema=output, retries=tuple(retries), transitions=transitions,
    )


def command(name: str, cmd: str, *transitions: TransitionSpec, timeout: float | None = None,
            retries: Iterable[RetrySpec] = (), **bindings: str) -> StateSpec:
    return StateSpec(name, RunSpec("command", command=cmd), timeout_seconds=timeout,
                     bindings=tuple((k, parse_expr(v)) for k, v in bindings.items()),
                     retries=tuple(retries), transitions=transitions)


def formula(name: str, target: str, *transitions: TransitionSpec, output: str | None = None,
            retries: Iterable[RetrySpec] = (), **bindings: str) -> StateSpec:
    return StateSpec(
        name, RunSpec("formula", target),
        bindings=tuple((k, parse_expr(v)) for k, v in bindings.items()),
        output_schema=output, retries=tuple(retries), transitions=transitions,
    )


def machine(*states: StateSpec, finals: Mapping[str, str] | None = None,
            inputs: Iterable[InputSpec] = (), definitions: bool = False,
            schemas: Mapping[str, Any] | None = None, name: str = "demo") -> Machine:
    """A machine; `definitions` loads the bundled polecats, formulas and schemas."""
    finals = finals if finals is not None else {"ok": "succeed", "bad": "fail"}
    registry = None
    polecats: dict[str, Any] = {}
    formulas: dict[str, Any] = {}
    if definitions:
        polecats = dict(load_polecats(ROOT / "polecats"))
        formulas = dict(load_formulas(ROOT / "formulas"))
        loaded = SchemaRegistry.load_dir(ROOT / "schemas")
        extra = {n: loaded.get(n) for n in loaded.names()}
        registry = SchemaRegistry({**extra, "Report": REPORT, **(schemas or {})})
    else:
        registry = SchemaRegistry({"Report": REPORT, **(schemas or {})})
    return Machine(
        name=name, description=None, source_path=str(ROOT / "demo.mgt"), source_hash="0" * 64,
        inputs=tuple(inputs), start=states[0].name, states={s.name: s for s in states},
        finals={n: FinalSpec(n, s) for n, s in finals.items()},  # type: ignore[arg-type]
        polecats=polecats, formulas=formulas, schemas=registry,
    )


def executors(replay_dir: Path | None = None) -> Callable[[str], Executor]:
    def make(kind: str) -> Executor:
        if kind == "command":
            return make_executor("command")
        assert replay_dir is not None, "this test has no model executor"
        return make_executor("replay", replay_dir=replay_dir)

    return make


def run(m: Machine, runs_dir: Path, *, inputs: Mapping[str, Any] | None = None,
        replay_dir: Path | None = None, run_id: str = "run-1", **options: Any) -> RunResult:
    with RunJournal.create(runs_dir, run_id) as journal:
        return Interpreter(m, journal, dict(inputs or {}), executors=executors(replay_dir),
                           cwd=runs_dir, **options).start()


def resume(m: Machine, runs_dir: Path, *, run_id: str = "run-1",
           replay_dir: Path | None = None, **options: Any) -> RunResult:
    with RunJournal.open(runs_dir, run_id) as journal:
        inputs = journal.info.get("inputs") or {}
        return Interpreter(m, journal, inputs, executors=executors(replay_dir),
                           cwd=runs_dir, **options).resume()
