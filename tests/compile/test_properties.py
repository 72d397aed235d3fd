"""Property tests: on random machines the chart routes as DESIGN §3 says; every graph draws."""

from __future__ import annotations

import re

import pydot
from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.compile.chart import GuardScope, build_chart
from mgt.compile.graph import graph_of, render_dot, render_mermaid, render_text
from mgt.compile.model import EVENTS, IMPLICIT_FAIL, Machine, StateSpec, TransitionSpec
from mgt.expr import nodes as ex

from .builders import machine, on, path, state

# Names chosen to collide with python-statemachine's API, the event names, DOT and
# Mermaid keywords, plus ordinary ones.
NAMES = ["send", "model", "done", "error", "state", "graph", "node", "edge", "machine",
         "configuration", "states", "end", "note", "fetch", "check", "publish", "s1", "s2",
         "file-pr", "start_value", "current_state", "final_states", "history_values"]
FLAGS = ["g0", "g1", "g2"]


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=8, unique=True))
    split = draw(st.integers(min_value=1, max_value=len(names) - 1))
    state_names, final_names = names[:split], names[split:]
    targets = st.sampled_from(names)
    transition = st.tuples(st.sampled_from(EVENTS), targets, st.sampled_from([None, *FLAGS]))
    states = []
    for name in state_names:
        routes = draw(st.lists(transition, max_size=7))
        states.append(state(name, *(
            on(event, target, path(f"output.{flag}") if flag else None, flag)
            for event, target, flag in routes
        )))
    finals = {n: draw(st.sampled_from(["succeed", "fail"])) for n in final_names}
    return machine(*states, finals=finals)


def expected_target(spec: StateSpec, event: str, truth: dict[str, bool]) -> str:
    """DESIGN §3: transitions tried in order, first match wins; none → the implicit fail."""
    for t in spec.transitions:
        if t.event == event and (t.guard_source is None or truth[t.guard_source]):
            return t.target
    return IMPLICIT_FAIL


def read_flag(expr: ex.Expr, scope: GuardScope) -> object:
    assert isinstance(expr, ex.Attr)
    return scope.output[expr.name]


@settings(max_examples=60, deadline=None)
@given(machines(), st.lists(st.fixed_dictionaries({f: st.booleans() for f in FLAGS}),
                            min_size=1, max_size=3))
def test_the_chart_routes_every_outcome_as_the_language_says(
    m: Machine, truths: list[dict[str, bool]]
) -> None:
    chart = build_chart(m, evaluate=read_flag)
    for name, spec in m.states.items():
        for event in EVENTS:
            for truth in truths:
                scope = GuardScope(output=truth)
                assert chart.starting_at(name, scope).route(event) == \
                    expected_target(spec, event, truth)
                assert scope.state == expected_target(spec, event, truth)


@settings(max_examples=60, deadline=None)
@given(machines())
def test_every_machine_draws_in_every_text_format(m: Machine) -> None:
    graph = graph_of(m)
    text = render_text(graph).splitlines()
    for name, spec in m.states.items():
        for t in spec.transitions:
            label = f"{t.event} [{t.guard_source}]" if t.guard_source else t.event
            target = "fail (implicit)" if t.target == IMPLICIT_FAIL else t.target
            assert f"{name} --{label}--> {target}" in text

    parsed = pydot.graph_from_dot_data(render_dot(graph))
    assert parsed is not None
    drawn = {n.get_name().strip('"') for n in parsed[0].get_nodes()}
    assert set(m.states) | set(m.finals) <= drawn

    mermaid = render_mermaid(graph)
    aliases = dict(re.findall(r'^    state "([^"]*)" as (\S+)$', mermaid, re.M))
    ids = [aliases.get(n, n) for n in [*m.states, *m.finals]]
    assert len(ids) == len(set(ids))  # no alias lands on another node's id


def test_the_reference_itself_sees_guards_in_order() -> None:
    spec = StateSpec("a", machine(state("a", on("done", "x"))).states["a"].run, transitions=(
        TransitionSpec("done", "x", path("output.g0"), "g0"),
        TransitionSpec("done", "y"),
    ))
    assert expected_target(spec, "done", {"g0": True}) == "x"
    assert expected_target(spec, "done", {"g0": False}) == "y"
    assert expected_target(spec, "error", {"g0": True}) == IMPLICIT_FAIL
