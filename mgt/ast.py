"""The .mgt language as frozen dataclasses with spans: built by `mgt.syntax`, read by `mgt.check`.

Nothing here depends on lark: `mgt.syntax` builds these nodes while it parses and
no lark object leaves that package. Names keep their own span so diagnostics can
point at exactly the word that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as TypingLiteral

from mgt.expr.nodes import DurationLit, Expr
from mgt.span import Span

__all__ = [
    "Binding",
    "Branch",
    "FanOut",
    "Final",
    "Ident",
    "Import",
    "InputDecl",
    "MachineDecl",
    "On",
    "Retry",
    "Run",
    "State",
    "TypeRef",
    "branch_state",
]

RunKind = TypingLiteral["formula", "polecat", "command", "builtin", "machine"]
ImportKind = TypingLiteral["polecats", "formulas", "schemas"]
InputType = TypingLiteral["str", "int", "float", "bool", "duration", "path", "json", "enum"]
FinalStatus = TypingLiteral["succeed", "fail"]


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written, with its span (state, input, formula, schema, event, ...)."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Import:
    kind: Ident  # checked: one of polecats | formulas | schemas
    path: str  # as written, relative to the .mgt file's directory
    path_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class TypeRef:
    name: Ident  # checked: one of InputType
    enum_values: tuple[str, ...]  # only for enum(...)
    span: Span


@dataclass(frozen=True, slots=True)
class InputDecl:
    name: Ident
    type: TypeRef
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Run:
    kind: RunKind
    target: Ident | None  # formula / polecat / builtin name; None for command
    prompt: str | None  # `run polecat NAME prompt "..."`
    command: str | None  # `run command "..."`
    span: Span
    machine: str | None = None  # `run machine "path.mgt"`, relative to this file
    machine_span: Span | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Retry:
    count: int
    count_span: Span
    events: tuple[Ident, ...]
    feedback: bool
    backoff: DurationLit | None
    span: Span


@dataclass(frozen=True, slots=True)
class On:
    event: Ident
    guard: Expr | None
    target: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class FanOut:
    """`for ITEM in LIST [max N]` with the state's failure policy: the step runs per item."""

    item: Ident
    items: Expr
    max: int | None  # None: no cap written (all items at once)
    max_span: Span | None
    tolerate: int = 0  # `tolerate N failures`
    tolerate_span: Span | None = None
    cancel_on_failure: bool = False  # `cancel on first failure`
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Branch:
    """`branch NAME:` and its block: one step of a state that runs its branches at once."""

    name: Ident
    run: Run | None
    bindings: tuple[Binding, ...]
    output: Ident | None
    timeout: DurationLit | None
    span: Span


@dataclass(frozen=True, slots=True)
class State:
    name: Ident
    run: Run | None  # None only when the source omitted `run` (a check error)
    bindings: tuple[Binding, ...]
    output: Ident | None
    timeout: DurationLit | None
    retries: tuple[Retry, ...]
    transitions: tuple[On, ...]
    span: Span
    fan_out: FanOut | None = None  # `for ... in ...`: the step runs once per item
    branches: tuple[Branch, ...] = ()  # `branch NAME:` blocks, run at once and joined
    tolerate: int = 0  # a branch state's `tolerate N failures` (a fan-out keeps its own)
    cancel_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class Final:
    name: Ident
    status: FinalStatus
    message: str | None
    span: Span
    returns: Expr | None = None  # `returns EXPR`: what the machine returns, run as a step


@dataclass(frozen=True, slots=True)
class MachineDecl:
    """A whole .mgt file."""

    name: Ident
    description: str | None
    imports: tuple[Import, ...]
    inputs: tuple[InputDecl, ...]
    start: Ident | None
    states: tuple[State, ...]
    finals: tuple[Final, ...]
    source_path: str
    span: Span


def branch_state(state: State, branch: Branch) -> State:
    """A branch as a state of its own (its state's name and retries): what the checks and
    lowering treat it as."""
    return State(name=state.name, run=branch.run, bindings=branch.bindings,
                 output=branch.output, timeout=branch.timeout, retries=state.retries,
                 transitions=(), span=branch.span)
