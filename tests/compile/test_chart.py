"""build_chart: a Machine → a python-statemachine chart that routes outcomes like the .mgt says."""

from __future__ import annotations

import pytest
from statemachine.exceptions import TransitionNotAllowed

from mgt.compile.chart import (
    _RESERVED,
    GuardScope,
    MachineChart,
    _chart_ids,
    build_chart,
)
from mgt.compile.model import EVENTS, IMPLICIT_FAIL
from mgt.errors import ExprError, MgtError
from mgt.expr import nodes as ex

from .builders import binary, lit, machine, on, path, state

# ---------------------------------------------------------------- a stand-in guard evaluator


def flag(name: str) -> ex.Expr:
    """A guard `output.NAME`: true when this state's output has NAME set to true."""
    return path(f"output.{name}")


def read_flag(expr: ex.Expr, scope: GuardScope) -> object:
    assert isinstance(expr, ex.Attr)
    return (scope.output or {}).get(expr.name)


def run(chart: type[MachineChart], event: str, output: object = None,
        at: str | None = None) -> str:
    scope = GuardScope(output=output)
    instance = chart.starting_at(at, scope) if at else chart(scope)
    return instance.route(event)


# ---------------------------------------------------------------- routing


ROUTER = machine(
    state(
        "analyze",
        on("done", "first", flag("a"), "output.a"),
        on("done", "second", flag("b"), "output.b"),
        on("done", "fallback"),
        on("timeout", "late"),
    ),
    finals={"first": "succeed", "second": "succeed", "fallback": "succeed", "late": "fail"},
)


@pytest.fixture(scope="module")
def router() -> type[MachineChart]:
    return build_chart(ROUTER, evaluate=read_flag)


def test_the_first_guard_that_holds_wins_in_declared_order(router: type[MachineChart]) -> None:
    assert run(router, "done", {"a": True, "b": True}) == "first"
    assert run(router, "done", {"a": False, "b": True}) == "second"


def test_the_unguarded_transition_is_the_fallback_after_guarded_ones(
    router: type[MachineChart],
) -> None:
    assert run(router, "done", {"a": False, "b": False}) == "fallback"
    assert run(router, "done", {}) == "fallback"


def test_only_a_true_guard_fires_not_a_truthy_value(router: type[MachineChart]) -> None:
    assert run(router, "done", {"a": 1, "b": "yes"}) == "fallback"


def test_other_events_take_their_own_transition(router: type[MachineChart]) -> None:
    assert run(router, "timeout") == "late"


@pytest.mark.parametrize("event", ["schema_invalid", "guardrail", "error"])
def test_an_unhandled_event_goes_to_the_implicit_fail_final(
    router: type[MachineChart], event: str
) -> None:
    assert run(router, event) == IMPLICIT_FAIL


def test_guarded_only_event_falls_back_to_implicit_fail_when_no_guard_holds() -> None:
    m = machine(state("a", on("done", "ok", flag("ready"))))
    chart = build_chart(m, evaluate=read_flag)
    assert run(chart, "done", {"ready": True}) == "ok"
    assert run(chart, "done", {"ready": False}) == IMPLICIT_FAIL


def test_routing_walks_a_chain_to_its_final() -> None:
    m = machine(
        state("a", on("done", "b")),
        state("b", on("done", "c"), on("error", "a")),
        state("c", on("done", "ok")),
    )
    instance = build_chart(m)(GuardScope())
    assert instance.state_name == "a"
    assert [instance.route(e) for e in ("done", "error", "done", "done", "done")] == [
        "b", "a", "b", "c", "ok",
    ]
    assert instance.is_terminated
    assert instance.model.state == "ok"


# ---------------------------------------------------------------- structure


def test_one_state_per_mgt_state_finals_are_final_and_start_is_initial(
    router: type[MachineChart],
) -> None:
    by_name = {s.value: s for s in router.states}
    assert set(by_name) == {"analyze", "first", "second", "fallback", "late", IMPLICIT_FAIL}
    assert {n for n, s in by_name.items() if s.final} == {
        "first", "second", "fallback", "late", IMPLICIT_FAIL,
    }
    assert router.initial_state.value == "analyze"
    assert router.machine is ROUTER


def test_one_event_per_outcome(router: type[MachineChart]) -> None:
    instance = router(GuardScope())
    assert sorted(e.id for e in instance.events) == sorted(EVENTS)


def test_no_implicit_fail_when_every_outcome_is_handled() -> None:
    m = machine(state("a", *(on(e, "ok") for e in EVENTS)))
    chart = build_chart(m)
    assert IMPLICIT_FAIL not in {s.value for s in chart.states}


def test_transitions_the_compiler_already_made_implicit_are_not_doubled() -> None:
    lowered = machine(
        state("a", on("done", "ok"), *(on(e, IMPLICIT_FAIL, implicit=True) for e in EVENTS[1:])),
        finals={"ok": "succeed", IMPLICIT_FAIL: "fail"},
    )
    chart = build_chart(lowered)
    source = next(s for s in chart.states if s.value == "a")
    handled = [str(e) for t in source.transitions for e in t.events]
    assert sorted(handled) == sorted(EVENTS)
    assert run(chart, "error") == IMPLICIT_FAIL


def test_a_final_state_takes_no_more_events() -> None:
    instance = build_chart(machine(state("a", on("done", "ok"))))(GuardScope())
    instance.route("done")
    with pytest.raises(TransitionNotAllowed):
        instance.send("done")


def test_state_names_that_clash_with_the_chart_api_or_events_still_route() -> None:
    m = machine(
        state("send", on("done", "model")),
        state("model", on("done", "error"), on("error", "done"), on("timeout", "configuration")),
        state("configuration", on("done", "done")),
        finals={"error": "fail", "done": "succeed"},
    )
    chart = build_chart(m)
    assert run(chart, "done", at="send") == "model"
    assert run(chart, "timeout", at="model") == "configuration"
    assert run(chart, "done", at="configuration") == "done"
    assert run(chart, "done", at="model") == "error"
    assert run(chart, "error", at="model") == "done"
    assert callable(chart.send)  # the API was not overwritten by a state
    instance = chart(GuardScope())
    assert instance.state_name == "send"
    assert isinstance(instance.model, GuardScope)
    # the model's `state` field holds the .mgt name, whatever the name
    for name in ("send", "model", "done", "error"):
        scope = GuardScope(state=name)
        assert chart(scope).state_name == name
        assert scope.state == name
    scope = GuardScope()
    chart(scope).route("done")
    assert scope.state == "model"


def test_no_chart_attribute_can_be_taken_by_a_state_name() -> None:
    # A state id becomes a class attribute and python-statemachine refuses instance
    # attributes named like a state: every public name a chart instance holds must be
    # one that .mgt names are steered away from.
    m = machine(state("a", on("done", "ok")))
    instance = build_chart(m)(GuardScope())
    public = {n for n in [*vars(instance), *dir(instance)] if not n.startswith("_")}
    names = sorted(public - {"a", "ok"})
    ids = _chart_ids(names)
    assert [n for n in names if ids[n] == n] == []
    own = {n for n in vars(instance) if not n.startswith("_")} - {"a", "ok"}
    assert own <= _RESERVED  # the names MachineChart.__setattr__ lets through


def test_a_chart_resumes_in_the_state_its_model_names() -> None:
    m = machine(state("a", on("done", "b")), state("b", on("done", "ok")))
    instance = build_chart(m).starting_at("b", GuardScope())
    assert instance.state_name == "b"
    assert instance.route("done") == "ok"
    with pytest.raises(MgtError, match="has no state 'c'"):
        build_chart(m).starting_at("c", GuardScope())


def test_states_unreachable_or_without_a_way_out_still_build() -> None:
    # mgt check warns about these with positions; the chart must not refuse them.
    m = machine(state("a", on("done", "ok")), state("island", on("done", "island")))
    chart = build_chart(m)
    assert run(chart, "done", at="island") == "island"


def test_a_200_state_chain_builds_and_runs_to_its_end() -> None:
    n = 200
    m = machine(*(state(f"s{i}", on("done", f"s{i + 1}" if i + 1 < n else "ok"))
                  for i in range(n)))
    instance = build_chart(m)(GuardScope())
    for _ in range(n):
        instance.send("done")
    assert instance.state_name == "ok"


# ---------------------------------------------------------------- what guards see and bad models


def test_the_evaluator_sees_the_scope_the_chart_was_given() -> None:
    seen: list[GuardScope] = []

    def spy(expr: ex.Expr, scope: GuardScope) -> bool:
        seen.append(scope)
        return True

    m = machine(state("a", on("done", "ok", flag("x"))))
    scope = GuardScope(inputs={"n": 1}, outputs={"prev": {"k": 2}}, attempts={"prev": 3},
                       output={"x": True})
    build_chart(m, evaluate=spy)(scope).route("done")
    assert seen == [scope]
    assert scope.names() == {
        "input": {"n": 1},
        "output": {"x": True},
        "prev": {"output": {"k": 2}, "attempts": 3},
    }
    names = scope.names()
    scope.outputs["later"] = {"k": 4}  # type: ignore[index]
    assert names["later"] == {"output": {"k": 4}, "attempts": 0}  # a view, not a copy
    assert names.get("never_ran") is None
    names["output"] = None  # the interpreter evaluates bindings with no current output
    del names["prev"]
    assert names["output"] is None and "prev" not in names and scope.output == {"x": True}
    assert set(names) == {"input", "output", "later"} and len(names) == 3
    assert scope.names()["prev"]["attempts"] == 3  # other views are untouched


def test_an_evaluator_error_reaches_the_caller() -> None:
    def broken(expr: ex.Expr, scope: GuardScope) -> object:
        raise MgtError("guard read null")

    instance = build_chart(machine(state("a", on("done", "ok", flag("x")))), evaluate=broken)(
        GuardScope()
    )
    with pytest.raises(MgtError, match="guard read null"):
        instance.send("done")
    assert instance.state_name == "a"


def test_a_start_that_is_not_a_state_is_an_mgt_error() -> None:
    with pytest.raises(MgtError, match="start state 'nowhere'"):
        build_chart(machine(state("a", on("done", "ok")), start="nowhere"))


def test_a_transition_to_an_unknown_state_is_an_mgt_error() -> None:
    with pytest.raises(MgtError, match="state a goes to unknown state 'nowhere' on done"):
        build_chart(machine(state("a", on("done", "nowhere"))))


# ---------------------------------------------------------------- with mgt's own evaluator


def test_guards_are_decided_by_mgt_expressions_by_default() -> None:
    m = machine(
        state(
            "analyze",
            on("done", "none", binary("==", path("output.summary.total_patterns"), lit(0))),
            on("done", "retry_heavy", binary(">", path("prep.attempts"), lit(2))),
            on("done", "big", binary(">=", path("input.limit"), path("prep.output.size"))),
            on("done", "other"),
        ),
        finals={"none": "succeed", "retry_heavy": "fail", "big": "succeed", "other": "succeed"},
    )
    chart = build_chart(m)

    def route(output: object, attempts: int = 1, limit: int = 0) -> str:
        scope = GuardScope(inputs={"limit": limit}, outputs={"prep": {"size": 10}},
                           attempts={"prep": attempts}, output=output)
        return chart(scope).route("done")

    assert route({"summary": {"total_patterns": 0}}) == "none"
    assert route({"summary": {"total_patterns": 3}}, attempts=3) == "retry_heavy"
    assert route({"summary": {"total_patterns": 3}}, limit=10) == "big"
    assert route({"summary": {"total_patterns": 3}}) == "other"


def test_a_guard_that_cannot_be_computed_raises_expr_error_and_stays_put() -> None:
    m = machine(state("a", on("done", "ok", binary(">", path("output.n"), lit(1)))))
    instance = build_chart(m)(GuardScope(output={}))
    with pytest.raises(ExprError):
        instance.send("done")
    assert instance.state_name == "a"
