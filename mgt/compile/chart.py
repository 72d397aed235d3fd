"""A `Machine` → a python-statemachine chart class that routes outcomes through guards.

One chart state per `.mgt` state (the initial one is `machine.start`), one
final chart state per final (plus the implicit `_fail` final when a route
reaches it), one event per outcome (`done`, `schema_invalid`, `guardrail`,
`timeout`, `error`). Each state's transitions for an event are added in
declared order, guarded ones carrying their guard as a `cond`, so the chart
takes the first whose guard holds; an outcome no transition takes falls back
to `_fail`.

The chart instance's model is a `GuardScope`: what guards read (this state's
output, the inputs, earlier states' outputs and attempt counts) plus the
`state` field python-statemachine keeps the current state's `.mgt` name in.
Retries are not in the chart: the interpreter consumes retried outcomes and
sends an event only once its retries are spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from statemachine import State, StateMachine
from statemachine.exceptions import InvalidDefinition
from statemachine.factory import StateMachineMetaclass

from mgt.compile.model import EVENTS, IMPLICIT_FAIL, FinalSpec, Machine, TransitionSpec
from mgt.compile.routes import needs_implicit_fail, routes
from mgt.errors import MgtError
from mgt.expr.nodes import Expr

__all__ = ["GuardEvaluator", "GuardScope", "MachineChart", "build_chart"]

#: Evaluates a guard against the chart's model; only `True` lets the transition fire.
GuardEvaluator = Callable[[Expr, "GuardScope"], object]


@dataclass
class GuardScope:
    """The chart's model: what a guard can read, and the current state (kept by the chart)."""

    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)  # finished states, by name
    attempts: Mapping[str, int] = field(default_factory=dict)  # attempts made, by state
    output: Any = None  # the current state's output: what `output.X` reads
    state: str | None = None  # python-statemachine's state field: the current `.mgt` name

    def names(self) -> MutableMapping[str, Any]:
        """Root names of guard paths: `input`, `output`, and each state as `{output, attempts}`.

        A view, not a copy: a guard reads two or three names, and copying every
        finished state's output for each guard would make a long run quadratic.
        Assigning to it (say `output` while evaluating bindings) changes only the view.
        """
        return _GuardNames(self)


_HIDDEN = object()


class _GuardNames(MutableMapping[str, Any]):
    __slots__ = ("_own", "_scope")

    def __init__(self, scope: GuardScope) -> None:
        self._scope = scope
        self._own: dict[str, Any] = {}  # names set or deleted on this view only

    def __getitem__(self, name: str) -> Any:
        if name in self._own:
            value = self._own[name]
            if value is _HIDDEN:
                raise KeyError(name)
            return value
        scope = self._scope
        if name == "input":
            return scope.inputs
        if name == "output":
            return scope.output
        if name in scope.outputs or name in scope.attempts:
            return {"output": scope.outputs.get(name), "attempts": scope.attempts.get(name, 0)}
        raise KeyError(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._own[name] = value

    def __delitem__(self, name: str) -> None:
        self[name]  # KeyError if it is not there
        self._own[name] = _HIDDEN

    def _names(self) -> list[str]:
        scope = self._scope
        base = dict.fromkeys(["input", "output", *scope.outputs, *scope.attempts])
        base.update(dict.fromkeys(self._own))
        return [n for n in base if self._own.get(n) is not _HIDDEN]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class MachineChart(StateMachine):
    """Base of every compiled chart: flat, and strict (an event it cannot take raises).

    A chart state's name and value (what the model's `state` field holds) are its
    `.mgt` name; its id (a class attribute) differs where the chart API or an event
    already has the name (`send`, `model`, `done`...). Read the current state with
    `state_name`; start elsewhere by setting the model's `state` or with `starting_at`.
    """

    # mgt check reports unreachable states and dead ends with positions; the chart
    # must still build for a machine that only has warnings.
    validate_disconnected_states = False
    validate_trap_states = False
    validate_final_reachability = False

    machine: ClassVar[Machine]
    state_ids: ClassVar[Mapping[str, str]]  # `.mgt` name → chart state id

    @classmethod
    def starting_at(cls, name: str, scope: GuardScope) -> MachineChart:
        """A chart whose current state is `name` (to resume a run), reading `scope`."""
        if name not in cls.state_ids:
            raise MgtError(f"machine {cls.machine.name} has no state {name!r}")
        scope.state = name
        return cls(scope)

    def __setattr__(self, name: str, value: Any) -> None:
        # python-statemachine refuses an instance attribute named like a state *value*
        # (meant to protect state ids), which would stop it setting its own attributes
        # (`model`, `configuration`...) in a machine with a state of that name. State
        # ids never take these names, so the chart's own attributes need no check.
        if name in _RESERVED:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)  # type: ignore[no-untyped-call]

    @property
    def state_name(self) -> str:
        """The `.mgt` name of the current state."""
        name: str = self.states_map[self.current_state_value].name
        return name

    def route(self, event: str, **kwargs: Any) -> str:
        """Send an outcome event and return the `.mgt` name of the state it led to."""
        self.send(event, **kwargs)
        return self.state_name


# Names a chart state id must not take, since a state id becomes a class attribute:
# the chart's class and instance attributes and the event names. Some are only set
# on a chart with states, so dir(MachineChart) does not list them.
_INSTANCE_ATTRIBUTES = frozenset({
    "model", "state_field", "history_values", "start_configuration_values",
})
_RESERVED = (
    frozenset(dir(MachineChart)) | _INSTANCE_ATTRIBUTES | frozenset(EVENTS)
    | {"start_value", "initial_state", "final_states", "machine", "state_ids",
       "state"}
)


def _chart_ids(names: list[str]) -> dict[str, str]:
    """`.mgt` name → chart state id: the name itself unless the chart API already uses it."""
    ids: dict[str, str] = {}
    taken = set(_RESERVED) | set(names)
    for name in names:
        if name not in _RESERVED:
            ids[name] = name
            continue
        candidate, n = f"{name}_state", 2
        while candidate in taken:
            candidate, n = f"{name}_state{n}", n + 1
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _default_evaluate(expr: Expr, scope: GuardScope) -> object:
    from mgt.expr.evaluate import evaluate_guard

    return evaluate_guard(expr, scope.names())


def _guard_condition(transition: TransitionSpec, evaluate: GuardEvaluator) -> Callable[..., bool]:
    guard = transition.guard
    assert guard is not None

    def condition(model: GuardScope) -> bool:
        return evaluate(guard, model) is True

    condition.__name__ = f"[{transition.guard_source or 'guard'}]"
    return condition


def build_chart(
    machine: Machine, *, evaluate: GuardEvaluator | None = None
) -> type[MachineChart]:
    """Compile `machine` into a `MachineChart` subclass (instantiate it with a `GuardScope`).

    `evaluate` decides guards; the default is mgt's expression evaluator, whose
    `ExprError` (a guard reading null, or not yielding a boolean) propagates out of
    `send` to the interpreter.
    """
    if machine.start not in machine.states:
        raise MgtError(f"machine {machine.name}: start state {machine.start!r} is not a state")
    finals: dict[str, FinalSpec] = {
        name: spec for name, spec in machine.finals.items() if name != IMPLICIT_FAIL
    }
    if needs_implicit_fail(machine):
        finals[IMPLICIT_FAIL] = machine.finals.get(IMPLICIT_FAIL) or FinalSpec(
            IMPLICIT_FAIL, "fail", implicit=True
        )
    ids = _chart_ids([*machine.states, *finals])
    states: dict[str, State] = {
        name: State(name=name, value=name, initial=name == machine.start)
        for name in machine.states
    }
    states.update((name, State(name=name, value=name, final=True)) for name in finals)
    decide = evaluate or _default_evaluate

    for name, spec in machine.states.items():
        source = states[name]
        fallbacks: list[str] = []
        for transition in routes(spec):
            if transition.implicit and transition.target == IMPLICIT_FAIL:
                fallbacks.append(transition.event)
                continue
            target = states.get(transition.target)
            if target is None:
                raise MgtError(
                    f"machine {machine.name}: state {name} goes to unknown state "
                    f"{transition.target!r} on {transition.event}"
                )
            cond = _guard_condition(transition, decide) if transition.guard is not None else None
            source.to(target, event=transition.event, cond=cond)
        if fallbacks:
            # One transition for all of them: each comes after every declared transition
            # of its event, and a chart with fewer transitions builds faster.
            source.to(states[IMPLICIT_FAIL], event=" ".join(fallbacks))

    attrs: dict[str, Any] = {ids[name]: state for name, state in states.items()}
    attrs["machine"] = machine
    attrs["state_ids"] = ids
    attrs["__module__"] = __name__
    try:
        chart = StateMachineMetaclass(_class_name(machine.name), (MachineChart,), attrs)
    except InvalidDefinition as err:
        raise MgtError(f"machine {machine.name}: cannot build its chart: {err}") from err
    return cast(type[MachineChart], chart)


def _class_name(machine_name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in machine_name).split()
    return "".join(w[:1].upper() + w[1:] for w in words) + "Chart"
