"""The checked, compiled machine as plain frozen data → read by the runtime (never the AST).

The compiler fills every default here (timeouts and retries from the formula,
the output schema from the formula's `[output].type`, the implicit fail final),
so the runtime has no decisions left to make about the definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mgt.expr.nodes import Expr

if TYPE_CHECKING:
    from mgt.defs import Formula, Polecat, SchemaRegistry

__all__ = [
    "EVENTS",
    "IMPLICIT_FAIL",
    "BuiltinStep",
    "CommandStep",
    "FanOutSpec",
    "FinalSpec",
    "FormulaStep",
    "InputSpec",
    "Machine",
    "MachineStep",
    "PolecatStep",
    "RetrySpec",
    "RunSpec",
    "StateSpec",
    "Step",
    "TransitionSpec",
    "step_of",
]

#: Every outcome a state attempt can end with, in the order the docs list them.
EVENTS: tuple[str, ...] = ("done", "schema_invalid", "guardrail", "timeout", "error")

#: Name of the implicit final that unhandled events go to. Not a legal .mgt identifier.
IMPLICIT_FAIL = "_fail"

RunKind = Literal["formula", "polecat", "command", "builtin", "machine"]


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str  # str int float bool duration path json enum
    enum_values: tuple[str, ...] = ()
    default: Any = None  # already a runtime value (see mgt.expr for durations)
    required: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    kind: RunKind
    target: str | None = None  # formula, polecat or builtin name
    prompt: str | None = None  # `run polecat NAME prompt "..."`
    command: str | None = None  # `run command "..."`
    machine: str | None = None  # `run machine "path.mgt"`, as written


@dataclass(frozen=True)
class FormulaStep:
    """`run formula NAME`: the formula and the polecat that runs it, looked up."""

    kind: ClassVar[RunKind] = "formula"
    formula: Formula
    polecat: Polecat | None


@dataclass(frozen=True)
class PolecatStep:
    """`run polecat NAME prompt "..."`: the polecat (None for an unknown one) and the prompt."""

    kind: ClassVar[RunKind] = "polecat"
    name: str
    polecat: Polecat | None
    prompt: str


@dataclass(frozen=True)
class CommandStep:
    """`run command "..."`."""

    kind: ClassVar[RunKind] = "command"
    command: str


@dataclass(frozen=True)
class BuiltinStep:
    """`run builtin NAME` (looked up in the run's builtin table when it runs)."""

    kind: ClassVar[RunKind] = "builtin"
    name: str


@dataclass(frozen=True)
class MachineStep:
    """`run machine "x.mgt"`: the child machine, compiled (its path resolved)."""

    kind: ClassVar[RunKind] = "machine"
    path: str
    machine: Machine


#: What a state runs, with what it needs already looked up (one runner per kind).
Step = FormulaStep | PolecatStep | CommandStep | BuiltinStep | MachineStep


@dataclass(frozen=True, slots=True)
class RetrySpec:
    count: int
    events: frozenset[str]
    feedback: bool = False
    backoff_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    event: str
    target: str
    guard: Expr | None = None
    guard_source: str | None = None  # the guard as written, for graphs and logs
    implicit: bool = False  # added by the compiler: an unhandled event → IMPLICIT_FAIL


@dataclass(frozen=True, slots=True)
class FanOutSpec:
    """`for ITEM in LIST max N`: the state's step runs once per item, `max` at a time.

    The state is `done` when at most `tolerate` items fail; with `cancel_on_failure`
    the first failure beyond that stops the items still running and skips the rest.
    """

    item: str
    items: Expr
    max: int | None = None  # None: every item at once
    tolerate: int = 0
    cancel_on_failure: bool = False
    items_source: str = ""  # the list expression as written, for graphs


@dataclass(frozen=True, slots=True)
class StateSpec:
    name: str
    run: RunSpec
    bindings: tuple[tuple[str, Expr], ...] = ()
    output_schema: str | None = None  # schema registry key
    timeout_seconds: float | None = None
    retries: tuple[RetrySpec, ...] = ()
    transitions: tuple[TransitionSpec, ...] = ()
    step: Step | None = None  # set by lowering; `step_of` resolves it for hand-built specs
    fan_out: FanOutSpec | None = None  # the step runs once per item of a list
    #: parallel branches (name, the branch as a state of its own), run at once and joined
    branches: tuple[tuple[str, StateSpec], ...] = ()
    tolerate: int = 0  # branches that may fail while the state is still done
    cancel_on_failure: bool = False  # a failure past the tolerance stops the other branches

    def retry_for(self, event: str) -> RetrySpec | None:
        """The retry policy that consumes `event`, if any."""
        for retry in self.retries:
            if event in retry.events:
                return retry
        return None

    def transitions_for(self, event: str) -> tuple[TransitionSpec, ...]:
        """Transitions for `event` in declared order (guarded ones first as written)."""
        return tuple(t for t in self.transitions if t.event == event)


@dataclass(frozen=True, slots=True)
class FinalSpec:
    name: str
    status: Literal["succeed", "fail"]
    message: str | None = None
    implicit: bool = False
    returns: Expr | None = None  # `returns EXPR`: what the machine returns, run as a step


@dataclass(frozen=True)
class Machine:
    name: str
    description: str | None
    source_path: str
    source_hash: str  # sha256 hex of the .mgt source text
    inputs: tuple[InputSpec, ...]
    start: str
    states: Mapping[str, StateSpec]
    finals: Mapping[str, FinalSpec]
    polecats: Mapping[str, Polecat] = field(default_factory=dict)
    formulas: Mapping[str, Formula] = field(default_factory=dict)
    schemas: SchemaRegistry | None = None
    #: absolute path → sha256 of each definition file loaded (polecat, formula, schema)
    definitions: Mapping[str, str] = field(default_factory=dict)

    def input(self, name: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.name == name), None)

    def is_final(self, name: str) -> bool:
        return name in self.finals


def step_of(spec: StateSpec, polecats: Mapping[str, Polecat],
            formulas: Mapping[str, Formula]) -> Step:
    """The resolved step of a state: the one lowering set, else looked up from `spec.run`.

    An unknown formula is an `InputProblem`-like ValueError: lowering refuses it before.
    """
    if spec.step is not None:
        return spec.step
    run = spec.run
    if run.kind == "formula":
        formula = formulas.get(run.target or "")
        if formula is None:
            raise ValueError(f"unknown formula '{run.target}'")
        return FormulaStep(formula, polecats.get(formula.polecat))
    if run.kind == "polecat":
        return PolecatStep(run.target or "", polecats.get(run.target or ""), run.prompt or "")
    if run.kind == "command":
        return CommandStep(run.command or "")
    if run.kind == "machine":
        raise ValueError("a machine step is resolved by lowering")
    return BuiltinStep(run.target or "")
