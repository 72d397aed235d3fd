"""A state's visit so far + the outcome of its last attempt → what happens next (pure).

    decide(router, spec, retried, outcome, scope, attempt=N, timeout_seconds=T)
        → Retry(feedback, backoff_seconds)       make another attempt
        → Route(event, target, guard, ...)       take a transition (to a state or a final)

No I/O and no clock: the same arguments always give the same answer, which is
what lets a resumed run take exactly the decisions the killed one took. Retries
come first (`retry N on EVENT [with feedback] [backoff D]`, each clause counted
per visit); an outcome with no retry left goes to the state chart, whose guarded
transitions, tried in declared order, pick the target. A guard that cannot be
evaluated turns the outcome into `error` (routed again); if routing `error`
itself fails, the run goes to the implicit fail final.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mgt.compile.model import IMPLICIT_FAIL, RetrySpec, StateSpec
from mgt.errors import ExprError
from mgt.runtime.events import AttemptFinished
from mgt.runtime.outcome import Outcome, feedback_text

if TYPE_CHECKING:
    from mgt.compile.chart import GuardScope, MachineChart

__all__ = ["Action", "Retry", "Route", "Router", "decide", "outcome_of", "retries_used"]


class Router:
    """A machine's chart, built once and positioned at the given state for each routing.

    Building a python-statemachine instance costs about as much as the rest of a step,
    so one instance is kept; each `route` sets the state and what guards read first,
    which makes its answer depend on its arguments alone, as `decide` needs.
    """

    def __init__(self, chart: type[MachineChart]) -> None:
        from mgt.compile.chart import GuardScope

        self.chart = chart
        self._scope = GuardScope()
        self._instance: MachineChart | None = None

    def route(self, state: str, event: str, scope: GuardScope) -> str:
        """The target of `event` from `state`; raises ExprError for a guard it cannot evaluate."""
        own = self._scope
        own.inputs, own.outputs, own.attempts = scope.inputs, scope.outputs, scope.attempts
        own.output = scope.output
        if self._instance is None:
            self._instance = self.chart.starting_at(state, own)
        else:
            if state not in self.chart.state_ids:
                raise ValueError(f"machine {self.chart.machine.name} has no state {state!r}")
            own.state = state
        try:
            target = self._instance.route(event)
        except BaseException:
            self._instance = None  # a send cut short: start from a fresh chart next time
            raise
        if target not in self.chart.machine.states:
            self._instance = None  # a chart that reached a final takes no more events
        return target


@dataclass(frozen=True)
class Retry:
    """Make another attempt of the same state."""

    clause: int  # index of the `retry` clause it uses
    feedback: str | None = None  # for the next attempt's prompt (`with feedback`)
    backoff_seconds: float | None = None  # wait this long first


@dataclass(frozen=True)
class Route:
    """Leave the state on `event` for `target` (a state, a final, or the implicit fail)."""

    event: str
    target: str
    guard: str | None = None  # the guard that held, as written
    #: (event, problem) of each guard that could not be evaluated; each turned it into `error`
    guard_errors: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # the outcome's error after that


Action = Retry | Route


def outcome_of(event: AttemptFinished) -> Outcome:
    """The `Outcome` a journaled attempt ended with."""
    return Outcome(event.outcome, output=event.output, problems=list(event.problems),
                   error=event.error, retryable=event.retryable)


def _clause_for(retries: Sequence[RetrySpec], event: str, used: Mapping[int, int]) -> int | None:
    for index, retry in enumerate(retries):
        if event in retry.events:
            return index if used.get(index, 0) < retry.count else None
    return None


def retries_used(spec: StateSpec, retried: Sequence[str]) -> dict[int, int]:
    """How many retries each clause of `spec` has used, after these retried outcome events."""
    used: dict[int, int] = {}
    for event in retried:
        index = _clause_for(spec.retries, event, used)
        if index is not None:
            used[index] = used.get(index, 0) + 1
    return used


def decide(
    chart: Router | type[MachineChart],
    spec: StateSpec,
    retried: Sequence[str],
    outcome: Outcome,
    scope: GuardScope,
    *,
    attempt: int,
    timeout_seconds: float,
) -> Action:
    """What follows `outcome`, the result of attempt number `attempt` of state `spec`.

    `retried` are the outcome events of this visit's earlier attempts that were
    retried; `scope` is what guards read (left as given: guards see the outcome's
    output through a copy).
    """
    if outcome.event != "done" and outcome.retryable:
        index = _clause_for(spec.retries, outcome.event, retries_used(spec, retried))
        if index is not None:
            clause = spec.retries[index]
            feedback = feedback_text(outcome, attempt, timeout_seconds=timeout_seconds,
                                     schema=spec.output_schema) if clause.feedback else None
            return Retry(index, feedback, clause.backoff_seconds or None)
    router = chart if isinstance(chart, Router) else Router(chart)
    return _route(router, spec, outcome.event, outcome.output, scope, outcome.error)


def _route(router: Router, spec: StateSpec, event: str, output: object,
           scope: GuardScope, error: str | None) -> Route:
    from mgt.expr.evaluate import evaluate_guard

    scope = replace(scope, output=output, state=None)
    try:
        target = router.route(spec.name, event, scope)
    except ExprError as err:
        problem = f"a guard of state '{spec.name}' could not be evaluated: {err}"
        if event == "error":  # routing the error itself failed: nowhere else to go
            return Route("error", IMPLICIT_FAIL, guard_errors=((event, problem),), error=error)
        routed = _route(router, spec, "error", output, scope, problem)
        return Route("error", routed.target, routed.guard,
                     guard_errors=((event, problem), *routed.guard_errors), error=routed.error)
    guard = None
    for transition in spec.transitions_for(event):  # the first that held is the one taken
        if transition.target != target:
            continue
        if transition.guard is None:
            break
        if evaluate_guard(transition.guard, scope.names()) is True:
            guard = transition.guard_source
            break
    return Route(event, target, guard, error=error)
