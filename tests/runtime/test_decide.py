"""decide(): a state's visit + an outcome → retry or route, called directly (no run, no I/O)."""

from __future__ import annotations

import copy

from mgt.compile.chart import GuardScope, build_chart
from mgt.compile.model import IMPLICIT_FAIL
from mgt.runtime.decide import Retry, Route, Router, decide, retries_used
from mgt.runtime.outcome import Outcome
from tests.runtime.build import builtin, machine, on, retry

M = machine(
    builtin("a",
            on("done", "big", "output.total > 10"),
            on("done", "ok"),
            on("error", "bad"),
            retries=[retry(2, "schema_invalid", feedback=True),
                     retry(1, "guardrail", "timeout", backoff=30)]),
    builtin("big", on("done", "ok")),
    builtin("b", on("done", "ok", "output.flag"), on("done", "bad"), on("error", "bad", "x.y")),
)
CHART = build_chart(M)
A = M.states["a"]


def scope() -> GuardScope:
    return GuardScope(inputs={}, outputs={}, attempts=dict.fromkeys(M.states, 0))


def test_done_takes_the_first_transition_whose_guard_holds() -> None:
    assert decide(CHART, A, [], Outcome("done", output={"total": 11}), scope(),
                  attempt=1, timeout_seconds=60) == Route("done", "big", "output.total > 10")
    assert decide(CHART, A, [], Outcome("done", output={"total": 3}), scope(),
                  attempt=1, timeout_seconds=60) == Route("done", "ok", None)


def test_a_retried_event_retries_with_feedback_until_its_clause_is_spent() -> None:
    bad = Outcome("schema_invalid", problems=["$.total: 'x' is not of type 'integer'"])
    first = decide(CHART, A, [], bad, scope(), attempt=1, timeout_seconds=60)
    assert isinstance(first, Retry) and first.clause == 0 and first.backoff_seconds is None
    assert first.feedback is not None and "'x' is not of type 'integer'" in first.feedback
    second = decide(CHART, A, ["schema_invalid"], bad, scope(), attempt=2, timeout_seconds=60)
    assert isinstance(second, Retry)
    spent = decide(CHART, A, ["schema_invalid"] * 2, bad, scope(), attempt=3,
                   timeout_seconds=60)
    assert spent == Route("schema_invalid", IMPLICIT_FAIL)


def test_clauses_are_counted_apart_and_carry_their_backoff() -> None:
    action = decide(CHART, A, ["schema_invalid", "schema_invalid"], Outcome("timeout"),
                    scope(), attempt=3, timeout_seconds=60)
    assert action == Retry(1, None, 30)
    assert retries_used(A, ["schema_invalid", "timeout", "schema_invalid"]) == {0: 2, 1: 1}
    assert decide(CHART, A, ["guardrail"], Outcome("timeout"), scope(), attempt=2,
                  timeout_seconds=60) == Route("timeout", IMPLICIT_FAIL)


def test_an_outcome_that_cannot_help_is_not_retried() -> None:
    budget = Outcome("schema_invalid", error="budget exhausted", retryable=False)
    assert decide(CHART, A, [], budget, scope(), attempt=1, timeout_seconds=60) == Route(
        "schema_invalid", IMPLICIT_FAIL, error="budget exhausted")
    assert decide(CHART, A, [], Outcome("error", error="boom"), scope(), attempt=1,
                  timeout_seconds=60) == Route("error", "bad", error="boom")


def test_a_guard_that_cannot_be_evaluated_routes_as_an_error() -> None:
    b = M.states["b"]
    action = decide(CHART, b, [], Outcome("done", output={"flag": None}), scope(), attempt=1,
                    timeout_seconds=60)
    assert isinstance(action, Route) and action.event == "error"
    # the guard of the error transition reads a missing state too: nowhere left to go
    assert action.target == IMPLICIT_FAIL
    assert [event for event, _ in action.guard_errors] == ["done", "error"]
    assert all("could not be evaluated" in problem for _, problem in action.guard_errors)


def test_decide_is_pure() -> None:
    s = scope()
    before = copy.deepcopy(s)
    outcome = Outcome("done", output={"total": 11})
    answers = {decide(CHART, A, [], outcome, s, attempt=1, timeout_seconds=60) for _ in range(3)}
    assert len(answers) == 1
    assert s == before and outcome == Outcome("done", output={"total": 11})


def test_one_router_answers_every_state_as_a_fresh_chart_would() -> None:
    router = Router(CHART)  # kept by a run: built once, positioned for each routing
    cases = [
        (A, Outcome("done", output={"total": 11})),
        (A, Outcome("done", output={"total": 13})),  # moved back from big to a
        (M.states["b"], Outcome("done", output={"flag": None})),  # a guard error
        (A, Outcome("done", output={"total": 14})),
        (M.states["big"], Outcome("done")),  # to a final: the router must not stay there
        (A, Outcome("done", output={"total": 1})),
        (M.states["b"], Outcome("done", output={"flag": True})),
        (A, Outcome("error", error="x")),
        (M.states["b"], Outcome("done", output={"flag": None})),
        (A, Outcome("done", output={"total": 12})),
    ]
    for spec, outcome in cases * 2:
        kept = decide(router, spec, [], outcome, scope(), attempt=1, timeout_seconds=60)
        fresh = decide(CHART, spec, [], outcome, scope(), attempt=1, timeout_seconds=60)
        assert kept == fresh, (spec.name, outcome)
