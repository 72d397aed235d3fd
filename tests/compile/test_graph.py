"""mgt graph's renderers: text, Mermaid, DOT and SVG/PNG drawn from a Machine (and a run's path)."""

from __future__ import annotations

import shutil
import sys
from typing import Any

import pydot
import pytest

from mgt.compile.graph import (
    DOT_NOT_FOUND,
    TakenPath,
    graph_of,
    render,
    render_dot,
    render_image,
    render_mermaid,
    render_text,
)
from mgt.compile.model import EVENTS, IMPLICIT_FAIL, RunSpec
from mgt.errors import MgtError
from mgt.expr import nodes as ex

from .builders import HERE, binary, lit, machine, on, path, retry, state

needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz 'dot' is not installed"
)

COUNT_GUARD = binary(
    "==",
    ex.Call("count", (path("output.patterns"),
                      binary("!=", path("it.severity"), lit("info"))), HERE, HERE),
    lit(0),
)

EVOLVE = machine(
    state(
        "analyze",
        on("done", "no_patterns", binary("==", path("output.summary.total_patterns"), lit(0)),
           "output.summary.total_patterns == 0"),
        on("done", "no_patterns", COUNT_GUARD),  # no source text kept: written back from nodes
        on("done", "refine"),
        on("timeout", "failed"),
        retries=[retry(2, "schema_invalid", feedback=True)],
        run=RunSpec(kind="formula", target="analyze"),
    ),
    state(
        "refine",
        on("done", "file_pr"),
        retries=[retry(1, "schema_invalid", "guardrail", feedback=True, backoff=5)],
        run=RunSpec(kind="formula", target="refine"),
    ),
    state("file_pr", on("done", "filed"), run=RunSpec(kind="formula", target="file-pr")),
    finals={"filed": "succeed", "no_patterns": "succeed", "failed": "fail"},
    messages={"no_patterns": 'no "actionable" patterns'},
    name="evolve",
    description="Analyze production logs, refine the DSL, file a PR",
)

RUN = TakenPath(
    "r-1",
    steps=(("analyze", "done", "refine"), ("refine", "done", "file_pr"),
           ("file_pr", "error", IMPLICIT_FAIL)),
    entered=("analyze", "refine", "file_pr", IMPLICIT_FAIL),
    retried=frozenset({("refine", "schema_invalid")}),
)


# ---------------------------------------------------------------- text


def test_text_lists_every_route_with_event_and_guard() -> None:
    lines = render_text(graph_of(EVOLVE)).splitlines()
    assert lines[0] == "machine evolve — Analyze production logs, refine the DSL, file a PR"
    assert "[*] --> analyze" in lines
    assert "analyze --done [output.summary.total_patterns == 0]--> no_patterns" in lines
    assert 'analyze --done [count(output.patterns, it.severity != "info") == 0]--> no_patterns' \
        in lines
    assert "analyze --done--> refine" in lines
    assert "analyze --timeout--> failed" in lines
    assert "refine --done--> file_pr" in lines


def test_text_shows_retries_with_count_events_feedback_and_backoff() -> None:
    lines = render_text(graph_of(EVOLVE)).splitlines()
    assert "analyze ↻ retry 2 on schema_invalid (feedback)" in lines
    assert "refine ↻ retry 1 on schema_invalid, guardrail (feedback, backoff 5s)" in lines


def test_text_groups_implicit_fail_routes_into_one_dashed_line_per_state() -> None:
    lines = render_text(graph_of(EVOLVE)).splitlines()
    assert "analyze -.schema_invalid, guardrail, error.-> fail (implicit)" in lines
    assert "refine -.schema_invalid, guardrail, timeout, error.-> fail (implicit)" in lines
    assert sum("fail (implicit)" in line and "-." in line for line in lines) == 3


def test_text_lists_finals_with_status_and_message() -> None:
    lines = render_text(graph_of(EVOLVE)).splitlines()
    assert "final filed: succeed" in lines
    assert 'final no_patterns: succeed "no \\"actionable\\" patterns"' in lines
    assert "final failed: fail" in lines
    assert "final fail (implicit): fail" in lines


def test_a_machine_that_handles_every_outcome_has_no_implicit_fail() -> None:
    m = machine(state("a", *(on(e, "ok") for e in EVENTS)))
    text = render_text(graph_of(m))
    assert "implicit" not in text
    assert IMPLICIT_FAIL not in render_dot(graph_of(m))


def test_implicit_fail_edges_are_drawn_only_for_outcomes_the_state_can_end_with() -> None:
    # as `mgt check` warns: a command cannot be schema_invalid without an output schema,
    # a builtin cannot time out
    m = machine(
        state("cmd", on("done", "b"), on("error", "ok"), on("timeout", "ok"),
              run=RunSpec(kind="command", command="true")),
        state("b", on("done", "c"), on("error", "ok"), on("guardrail", "ok")),
        state("c", on("done", "ok"), run=RunSpec(kind="command", command="true")),
    )
    lines = render_text(graph_of(m)).splitlines()
    assert [line for line in lines if "fail (implicit)" in line] == [
        "c -.timeout, error.-> fail (implicit)", "final fail (implicit): fail"]
    handled = machine(state("b", on("done", "ok"), on("error", "ok"), on("guardrail", "ok")))
    assert IMPLICIT_FAIL not in render_dot(graph_of(handled))


def test_guarded_only_outcome_still_gets_an_implicit_fallback() -> None:
    m = machine(state("a", on("done", "ok", path("output.ready"), "output.ready")))
    lines = render_text(graph_of(m)).splitlines()
    assert "a --done [output.ready]--> ok" in lines
    assert "a -.done, guardrail, error.-> fail (implicit)" in lines  # a builtin's outcomes


def test_run_marks_taken_routes_and_visited_finals_with_a_star() -> None:
    lines = render_text(graph_of(EVOLVE, RUN)).splitlines()
    assert "(* = taken by run r-1)" in lines
    assert "* [*] --> analyze" in lines
    assert "* analyze --done--> refine" in lines
    assert "  analyze --timeout--> failed" in lines
    assert "* refine ↻ retry 1 on schema_invalid, guardrail (feedback, backoff 5s)" in lines
    assert "  analyze ↻ retry 2 on schema_invalid (feedback)" in lines
    assert "* file_pr -.schema_invalid, guardrail, timeout, error.-> fail (implicit)" in lines
    assert "* final fail (implicit): fail" in lines
    assert "  final filed: succeed" in lines
    starred = [line for line in lines if line.startswith("* ")]
    assert len(starred) == 6


# ---------------------------------------------------------------- mermaid


def test_mermaid_is_a_state_diagram_with_labelled_transitions() -> None:
    text = render_mermaid(graph_of(EVOLVE))
    lines = [line.strip() for line in text.splitlines()]
    assert "stateDiagram-v2" in lines
    assert "[*] --> analyze" in lines
    assert "analyze --> refine : done" in lines
    assert "analyze --> no_patterns : done [output.summary.total_patterns == 0]" in lines
    assert "analyze --> analyze : ↻ retry 2 on schema_invalid (feedback)" in lines
    assert "filed --> [*]" in lines
    # quotes would end Mermaid's string: they are entity codes
    assert ("analyze --> no_patterns : done [count(output.patterns, it.severity != "
            "#34;info#34;) == 0]") in lines


def test_mermaid_names_the_implicit_fail_and_dashes_it() -> None:
    lines = [line.strip() for line in render_mermaid(graph_of(EVOLVE)).splitlines()]
    assert 'state "fail (implicit)" as implicit_fail' in lines
    assert "analyze --> implicit_fail : schema_invalid, guardrail, error (implicit)" in lines
    assert "class implicit_fail implicit" in lines
    assert any(line.startswith("classDef implicit stroke-dasharray") for line in lines)


def test_mermaid_aliases_names_it_cannot_read_as_ids() -> None:
    m = machine(state("state", on("done", "file-pr")), state("file-pr", on("done", "ok")))
    lines = [line.strip() for line in render_mermaid(graph_of(m)).splitlines()]
    assert 'state "state" as state_state' in lines
    assert 'state "file-pr" as state_file_pr' in lines
    assert "state_state --> state_file_pr : done" in lines


def test_mermaid_highlights_the_states_a_run_visited() -> None:
    lines = [line.strip() for line in render_mermaid(graph_of(EVOLVE, RUN)).splitlines()]
    assert "class analyze,refine,file_pr,implicit_fail taken" in lines
    assert "analyze --> refine : * done" in lines
    assert "analyze --> failed : timeout" in lines


# ---------------------------------------------------------------- dot


def _unquote(value: str) -> str:
    if not (value.startswith('"') and value.endswith('"')):
        return value
    out, chars = [], iter(value[1:-1])
    for c in chars:
        if c == "\\":
            nxt = next(chars)
            out.append("\n" if nxt == "n" else nxt)
        else:
            out.append(c)
    return "".join(out)


Attrs = dict[str, str]


def parse_dot(source: str) -> tuple[dict[str, Attrs], list[tuple[str, str, Attrs]]]:
    parsed = pydot.graph_from_dot_data(source)
    assert parsed is not None, source
    (graph,) = parsed
    nodes = {
        _unquote(n.get_name()): {k: _unquote(str(v)) for k, v in n.get_attributes().items()}
        for n in graph.get_nodes()
        if n.get_name() not in ("node", "edge", "graph")  # unquoted: attribute defaults
    }
    edges = [
        (_unquote(str(e.get_source())), _unquote(str(e.get_destination())),
         {k: _unquote(str(v)) for k, v in e.get_attributes().items()})
        for e in graph.get_edges()
    ]
    return nodes, edges


def edge(edges: list[tuple[str, str, Attrs]], source: str, target: str,
         label_start: str = "") -> Attrs:
    found = [a for s, t, a in edges if s == source and t == target
             and a.get("label", "").startswith(label_start)]
    assert len(found) == 1, (source, target, label_start, edges)
    return found[0]


def test_dot_draws_finals_as_double_circles_and_the_start_as_a_point() -> None:
    nodes, edges = parse_dot(render_dot(graph_of(EVOLVE)))
    assert {n for n, a in nodes.items() if a.get("shape") == "doublecircle"} == {
        "filed", "no_patterns", "failed", IMPLICIT_FAIL,
    }
    assert nodes["__start"]["shape"] == "point"
    assert [(s, t) for s, t, _ in edges if s == "__start"] == [("__start", "analyze")]
    assert nodes["no_patterns"]["label"] == (
        '<no_patterns<br/><font point-size="8" color="#555555">no "actionable"<br/>'
        "patterns</font>>"
    )
    assert nodes["filed"]["label"] == "filed"
    assert nodes["analyze"]["label"] == "analyze\nformula analyze"


def test_dot_labels_edges_with_event_and_guard() -> None:
    _, edges = parse_dot(render_dot(graph_of(EVOLVE)))
    assert edge(edges, "analyze", "refine")["label"] == "done"
    labels = sorted(a["label"] for s, t, a in edges if (s, t) == ("analyze", "no_patterns"))
    assert labels == [
        'done\n[count(output.patterns, it.severity != "info") == 0]',
        "done\n[output.summary.total_patterns == 0]",
    ]


def test_dot_draws_implicit_fail_edges_dashed_to_a_dashed_fail_node() -> None:
    nodes, edges = parse_dot(render_dot(graph_of(EVOLVE)))
    assert nodes[IMPLICIT_FAIL]["label"] == "fail (implicit)"
    assert "dashed" in nodes[IMPLICIT_FAIL]["style"]
    implicit = edge(edges, "analyze", IMPLICIT_FAIL)
    assert implicit["style"] == "dashed"
    assert implicit["label"] == "schema_invalid, guardrail, error"
    assert all("style" not in a for s, t, a in edges
               if t in ("refine", "file_pr", "filed", "failed") and s != t)


def test_dot_draws_retries_as_labelled_self_loops() -> None:
    _, edges = parse_dot(render_dot(graph_of(EVOLVE)))
    assert edge(edges, "analyze", "analyze")["label"] == "↻ retry 2 on schema_invalid\n(feedback)"
    assert edge(edges, "refine", "refine")["label"] == (
        "↻ retry 1 on schema_invalid, guardrail\n(feedback, backoff 5s)"
    )
    assert [s for s, t, _ in edges if s == t == "file_pr"] == []


def test_dot_highlights_the_path_a_run_took() -> None:
    nodes, edges = parse_dot(render_dot(graph_of(EVOLVE, RUN)))
    taken = {(s, t) for s, t, a in edges if a.get("penwidth") == "3"}
    assert taken == {("__start", "analyze"), ("analyze", "refine"), ("refine", "file_pr"),
                     ("refine", "refine"), ("file_pr", IMPLICIT_FAIL)}
    assert edge(edges, "file_pr", IMPLICIT_FAIL)["style"] == "bold,dashed"
    visited = {n for n, a in nodes.items() if a.get("fillcolor") == "#fde68a"}
    assert visited == {"analyze", "refine", "file_pr", IMPLICIT_FAIL}


def test_unguarded_edges_to_one_target_are_drawn_as_one_but_listed_apart() -> None:
    m = machine(
        state("a", on("done", "ok"), on("schema_invalid", "bad"),
              on("error", "bad", path("output.x"), "output.x"), on("guardrail", "bad"),
              on("timeout", "bad")),
        finals={"ok": "succeed", "bad": "fail"},
    )
    _, edges = parse_dot(render_dot(graph_of(m)))
    assert sorted(a["label"] for s, t, a in edges if (s, t) == ("a", "bad")) == [
        "error\n[output.x]", "schema_invalid, guardrail, timeout",
    ]
    mermaid = [line.strip() for line in render_mermaid(graph_of(m)).splitlines()]
    assert "a --> bad : schema_invalid, guardrail, timeout" in mermaid
    text = render_text(graph_of(m)).splitlines()
    assert [
        line for line in text if line.endswith("--> bad")
    ] == ["a --schema_invalid--> bad", "a --error [output.x]--> bad",
            "a --guardrail--> bad", "a --timeout--> bad"]
    # highlighting a run marks the drawn edge when any of its outcomes was taken
    run = TakenPath("r", steps=(("a", "timeout", "bad"),))
    _, edges = parse_dot(render_dot(graph_of(m, run)))
    assert edge(edges, "a", "bad", "schema_invalid")["penwidth"] == "3"
    assert "penwidth" not in edge(edges, "a", "bad", "error")


def test_dot_quotes_names_graphviz_would_read_as_keywords_or_escapes() -> None:
    m = machine(
        state("graph", on("done", "node", binary("==", path("output.p"), lit("a\\nb")),
                          'output.p == "a\\nb"')),
        state("node", on("done", "edge")),
        finals={"edge": "succeed"},
    )
    nodes, edges = parse_dot(render_dot(graph_of(m)))
    assert {"graph", "node", "edge"} <= set(nodes)
    assert edge(edges, "graph", "node")["label"] == 'done\n[output.p == "a\\nb"]'


def test_render_rejects_an_unknown_format() -> None:
    with pytest.raises(MgtError, match="unknown graph format 'gif'"):
        render(graph_of(EVOLVE), "gif")


# ---------------------------------------------------------------- images through graphviz


def _graphviz_json(source: str) -> dict[str, Any]:
    import json

    data = render_image(source, "json")
    parsed: dict[str, Any] = json.loads(data)
    return parsed


@needs_graphviz
def test_graphviz_reads_the_dot_as_written() -> None:
    parsed = _graphviz_json(render_dot(graph_of(EVOLVE, RUN)))
    names = {o["name"] for o in parsed["objects"]}
    assert {"analyze", "refine", "file_pr", "filed", IMPLICIT_FAIL} <= names
    assert len(parsed["edges"]) == len(parse_dot(render_dot(graph_of(EVOLVE)))[1])


@needs_graphviz
def test_svg_is_an_svg_document_with_every_state() -> None:
    svg = render(graph_of(EVOLVE), "svg")
    assert isinstance(svg, bytes)
    text = svg.decode("utf-8")
    assert "<svg" in text
    for name in ("analyze", "refine", "file_pr", "filed", "fail (implicit)", "↻ retry 2"):
        assert name in text


@needs_graphviz
def test_png_is_a_png_image() -> None:
    png = render(graph_of(EVOLVE), "png")
    assert isinstance(png, bytes)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000


@needs_graphviz
def test_graphviz_failing_is_a_one_line_mgt_error() -> None:
    with pytest.raises(MgtError, match=r"^graphviz 'dot' failed \(exit \d+\): .*syntax error"):
        render_image("digraph { this is not dot ", "svg")


def test_a_missing_dot_program_says_how_to_install_graphviz(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MgtError) as caught:
        render_image(render_dot(graph_of(EVOLVE)), "svg")
    assert str(caught.value) == DOT_NOT_FOUND
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("guard", "text"),
    [
        (ex.Unary("not", binary("or", path("output.a"), path("output.b")), HERE),
         "not (output.a or output.b)"),
        (binary("in", ex.Index(path("output.xs"), lit(0), HERE),
                ex.ListExpr((lit("a"), lit(None)), HERE)),
         'output.xs[0] in ["a", null]'),
        (binary("*", ex.Unary("-", path("input.n"), HERE), binary("+", path("input.m"), lit(1))),
         "-input.n * (input.m + 1)"),
        (binary(">=", path("fetch.attempts"), binary("-", lit(3), lit(1))),
         "fetch.attempts >= 3 - 1"),
        (binary("<", path("output.age"), ex.DurationLit(1800, "30m", HERE)),
         "output.age < 30m"),
        (binary("and", path("output.ok"), lit(True)), "output.ok and true"),
    ],
)
def test_a_guard_without_its_source_text_is_written_back_from_its_nodes(
    guard: ex.Expr, text: str
) -> None:
    m = machine(state("a", on("done", "ok", guard)))
    assert f"a --done [{text}]--> ok" in render_text(graph_of(m)).splitlines()


def _chain(n: int) -> Any:
    return machine(*(state(f"s{i}", on("done", f"s{i + 1}" if i + 1 < n else "ok"))
                     for i in range(n)))


def test_large_machines_get_a_cheaper_graphviz_layout() -> None:
    large = render_dot(graph_of(_chain(40))).splitlines()
    small = render_dot(graph_of(_chain(10))).splitlines()
    for setting in ("nslimit=1;", "nslimit1=1;", "mclimit=0.1;", "splines=line;"):
        assert setting in large
        assert setting not in small


@needs_graphviz
def test_a_100_state_chain_is_laid_out_by_graphviz() -> None:
    # With the default layout, every state's dashed edge to the one implicit fail
    # final kept graphviz busy past the render timeout at this size.
    svg = render(graph_of(_chain(100)), "svg")
    assert isinstance(svg, bytes)
    assert b"s99" in svg


def test_graphviz_that_never_finishes_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    slow = tmp_path / "dot"
    slow.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("mgt.compile.graph.DOT_TIMEOUT_SECONDS", 1)
    with pytest.raises(MgtError, match=r"did not finish within 1 s: .* use --format text"):
        render_image(render_dot(graph_of(EVOLVE)), "svg")
