"""A `Machine` (+ the path a run took) → a drawing: text, Mermaid, DOT, or SVG/PNG via graphviz.

`graph_of` extracts a neutral `Graph` (nodes, edges, retry loops, what a run
visited); each renderer turns that into one format, the way
python-statemachine's diagram package goes extract → model → render. The
graph is drawn from the `Machine` rather than from the compiled chart because
it shows what the chart does not hold: retries, guard text as written, and
which fail edges are implicit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mgt.compile.model import EVENTS, IMPLICIT_FAIL, Machine, RetrySpec, StateSpec, TransitionSpec
from mgt.compile.routes import IMPLICIT_FAIL_MESSAGE, needs_implicit_fail, routes
from mgt.errors import MgtError
from mgt.expr import nodes as ex

__all__ = [
    "FORMATS",
    "Edge",
    "Graph",
    "Loop",
    "Node",
    "Step",
    "TakenPath",
    "graph_of",
    "render",
    "render_dot",
    "render_image",
    "render_mermaid",
    "render_text",
]

FORMATS = ("text", "mermaid", "dot", "svg", "png")

#: One transition a run took: (from, event, to).
Step = tuple[str, str, str]

DOT_NOT_FOUND = (
    "graphviz 'dot' not found: install graphviz (apt-get install graphviz / brew install graphviz)"
)


# ---------------------------------------------------------------- the neutral graph


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    label: str
    final: bool = False
    status: Literal["succeed", "fail"] | None = None  # finals only
    message: str | None = None  # finals only
    detail: str | None = None  # states: what the state runs
    implicit: bool = False
    visited: bool = False
    region: str | None = None  # a fan-out: `for ITEM in LIST max N` and its policy


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    events: tuple[str, ...]  # several only for grouped implicit fail edges
    guard: str | None = None
    implicit: bool = False
    taken: bool = False

    @property
    def label(self) -> str:
        events = ", ".join(self.events)
        return f"{events} [{self.guard}]" if self.guard else events


@dataclass(frozen=True, slots=True)
class Loop:
    """A retry policy, drawn as a self-loop on its state."""

    state: str
    count: int
    events: tuple[str, ...]
    feedback: bool = False
    backoff_seconds: float | None = None
    taken: bool = False

    @property
    def label(self) -> str:
        extras = ["feedback"] if self.feedback else []
        if self.backoff_seconds is not None:
            extras.append(f"backoff {_duration(self.backoff_seconds)}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        return f"↻ retry {self.count} on {', '.join(self.events)}{suffix}"


@dataclass(frozen=True)
class Graph:
    name: str
    description: str | None
    start: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    loops: tuple[Loop, ...]
    run_id: str | None = None  # set when a run's path is highlighted

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class TakenPath:
    """What a run did, as far as a graph can show.

    `steps` are its transitions, `entered` the states it entered in order, and
    `retried` the (state, outcome) pairs that a retry consumed. `guards` holds, for
    steps whose journal line named it, the guard (as written; None for an unguarded
    transition) that chose the step: two guarded transitions with the same event and
    target are then told apart.
    """

    run_id: str
    steps: tuple[Step, ...]
    entered: tuple[str, ...] = ()
    retried: frozenset[tuple[str, str]] = frozenset()
    guards: Mapping[Step, frozenset[str | None]] = field(default_factory=dict)

    def took(self, step: Step, guard: str | None) -> bool:
        """Whether the run took `step` through the transition whose guard is `guard`."""
        if step not in self.steps:
            return False
        return step not in self.guards or guard in self.guards[step]

    def visited(self, start: str) -> set[str]:
        names = {start} if self.steps or self.entered else set()
        names.update(self.entered)
        for source, _event, target in self.steps:
            names.update((source, target))
        return names


def graph_of(machine: Machine, taken: TakenPath | None = None) -> Graph:
    """Extract the drawable graph of `machine`, marking what `taken` went through."""
    retried = taken.retried if taken else frozenset()
    visited = taken.visited(machine.start) if taken else set()
    nodes: list[Node] = [
        Node(name, name, detail=_run_text(spec), visited=name in visited,
             region=_region_of(spec))
        for name, spec in machine.states.items()
    ]
    nodes += [
        Node(name, name, final=True, status=spec.status, message=spec.message,
             visited=name in visited)
        for name, spec in machine.finals.items()
        if name != IMPLICIT_FAIL
    ]
    if needs_implicit_fail(machine, possible_only=True):
        nodes.append(
            Node(IMPLICIT_FAIL, IMPLICIT_FAIL_MESSAGE, final=True, status="fail",
                 implicit=True, visited=IMPLICIT_FAIL in visited)
        )
    edges: list[Edge] = []
    loops: list[Loop] = []
    for name, spec in machine.states.items():
        edges += _edges_of(name, routes(spec, possible_only=True), taken)
        loops += [_loop_of(name, retry, retried) for retry in spec.retries]
    return Graph(
        name=machine.name,
        description=machine.description,
        start=machine.start,
        nodes=tuple(nodes),
        edges=tuple(edges),
        loops=tuple(loops),
        run_id=taken.run_id if taken else None,
    )


def _edges_of(source: str, transitions: Iterable[TransitionSpec],
              run: TakenPath | None) -> list[Edge]:
    edges: list[Edge] = []
    implicit_events: list[str] = []
    for t in transitions:
        if t.implicit and t.target == IMPLICIT_FAIL:
            implicit_events.append(t.event)  # grouped into one dashed edge below
            continue
        guard = t.guard_source or (_expr_text(t.guard) if t.guard is not None else None)
        taken = run is not None and run.took((source, t.event, t.target), guard)
        edges.append(Edge(source, t.target, (t.event,), guard, t.implicit, taken))
    if implicit_events:
        taken = run is not None and any(
            run.took((source, e, IMPLICIT_FAIL), None) for e in implicit_events
        )
        edges.append(Edge(source, IMPLICIT_FAIL, tuple(implicit_events), None, True, taken))
    return edges


def _loop_of(name: str, retry: RetrySpec, retried: frozenset[tuple[str, str]]) -> Loop:
    events = tuple(sorted(retry.events, key=_event_order))
    taken = any((name, event) in retried for event in events)
    return Loop(name, retry.count, events, retry.feedback, retry.backoff_seconds, taken)


def _event_order(event: str) -> tuple[int, str]:
    return (EVENTS.index(event) if event in EVENTS else len(EVENTS), event)


def _run_text(spec: StateSpec) -> str:
    if spec.branches:
        return " | ".join(f"{name}: {_run_text(branch)}" for name, branch in spec.branches)
    run = spec.run
    if run.kind == "command":
        return f"command {_shorten(run.command or '', 40)}"
    return f"{run.kind} {run.target or ''}".rstrip()


def _region_of(spec: StateSpec) -> str | None:
    """How a fan-out or branches region is labelled: its `for` clause or its branches, and
    its failure policy."""
    fan = spec.fan_out
    if fan is not None:
        text = f"for {fan.item} in {_shorten(fan.items_source, 40)}"
        if fan.max is not None:
            text += f" max {fan.max}"
        tolerate, cancel = fan.tolerate, fan.cancel_on_failure
    elif spec.branches:
        text = "parallel " + ", ".join(name for name, _ in spec.branches)
        tolerate, cancel = spec.tolerate, spec.cancel_on_failure
    else:
        return None
    policy = []
    if tolerate:
        policy.append(f"tolerate {tolerate}")
    if cancel:
        policy.append("cancel on first failure")
    return text + (f" ({', '.join(policy)})" if policy else "")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


# Loosest-binding first; a child binding looser than its parent gets parentheses.
_PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4,
               "??": 5, "+": 6, "-": 6, "*": 7, "/": 7}


def _expr_text(expr: ex.Expr, parent: int = 0) -> str:
    """A guard written back as source, for models that did not keep the original text."""
    if isinstance(expr, ex.Literal):
        if isinstance(expr.value, bool) or expr.value is None:
            return {True: "true", False: "false", None: "null"}[expr.value]
        return json.dumps(expr.value) if isinstance(expr.value, str) else repr(expr.value)
    if isinstance(expr, ex.DurationLit):
        return expr.text
    if isinstance(expr, ex.ListExpr):
        return "[" + ", ".join(_expr_text(i) for i in expr.items) + "]"
    if isinstance(expr, ex.ObjectExpr):
        return "{" + ", ".join(f"{json.dumps(k)}: {_expr_text(v)}" for k, v in expr.items) + "}"
    if isinstance(expr, ex.Name):
        return expr.id
    if isinstance(expr, ex.Attr):
        return f"{_expr_text(expr.obj, 9)}.{expr.name}"
    if isinstance(expr, ex.Index):
        return f"{_expr_text(expr.obj, 9)}[{_expr_text(expr.index)}]"
    if isinstance(expr, ex.Unary):
        own = 3 if expr.op == "not" else 8
        text = f"not {_expr_text(expr.operand, own)}" if expr.op == "not" else (
            f"-{_expr_text(expr.operand, own)}")
        return f"({text})" if own < parent else text
    if isinstance(expr, ex.Binary):
        own = _PRECEDENCE[expr.op]
        text = f"{_expr_text(expr.left, own)} {expr.op} {_expr_text(expr.right, own + 1)}"
        return f"({text})" if own < parent else text
    return f"{expr.func}(" + ", ".join(_expr_text(a) for a in expr.args) + ")"


# ---------------------------------------------------------------- renderers


def render(graph: Graph, fmt: str) -> str | bytes:
    """Render `graph` in `fmt` (one of FORMATS): str for text formats, bytes for images."""
    if fmt == "text":
        return render_text(graph)
    if fmt == "mermaid":
        return render_mermaid(graph)
    if fmt == "dot":
        return render_dot(graph)
    if fmt in ("svg", "png"):
        return render_image(render_dot(graph), fmt)
    raise MgtError(f"unknown graph format {fmt!r} (choose from {', '.join(FORMATS)})")


def _merged(edges: Iterable[Edge]) -> list[Edge]:
    """Unguarded edges from one state to one target drawn as one edge listing their events.

    A drawing with an arrow per outcome to the same `failed` final is mostly arrows;
    the text listing keeps one line per declared transition.
    """
    merged: dict[tuple[str, str, bool], Edge] = {}
    out: list[Edge | tuple[str, str, bool]] = []
    for edge in edges:
        if edge.guard is not None:
            out.append(edge)
            continue
        key = (edge.source, edge.target, edge.implicit)
        if key in merged:
            first = merged[key]
            merged[key] = Edge(first.source, first.target, first.events + edge.events, None,
                               first.implicit, first.taken or edge.taken)
        else:
            merged[key] = edge
            out.append(key)
    return [merged[item] if isinstance(item, tuple) else item for item in out]


def render_text(graph: Graph) -> str:
    """A readable adjacency listing, one route a line; `*` marks what a run took."""
    mark_runs = graph.run_id is not None

    def line(text: str, taken: bool) -> str:
        return (("* " if taken else "  ") + text) if mark_runs else text

    title = f"machine {graph.name}" + (f" — {graph.description}" if graph.description else "")
    out = [title]
    if mark_runs:
        out.append(f"(* = taken by run {graph.run_id})")
    out += ["", line(f"[*] --> {graph.start}", graph.node(graph.start).visited)]
    labels = {n.name: n.label for n in graph.nodes}
    for node in graph.nodes:
        if node.final:
            continue
        out.append("")
        if node.region:
            out.append(line(f"{node.name} [{node.region}: {node.detail}]", node.visited))
        for edge in (e for e in graph.edges if e.source == node.name):
            target = labels.get(edge.target, edge.target)
            arrow = (f"-.{edge.label}.->" if edge.implicit and edge.target == IMPLICIT_FAIL
                     else f"--{edge.label}-->")
            out.append(line(f"{node.name} {arrow} {target}", edge.taken))
        for loop in (lp for lp in graph.loops if lp.state == node.name):
            out.append(line(f"{node.name} {loop.label}", loop.taken))
    out.append("")
    for node in (n for n in graph.nodes if n.final):
        message = f" {json.dumps(node.message, ensure_ascii=False)}" if node.message else ""
        out.append(line(f"final {node.label}: {node.status}{message}", node.visited))
    return "\n".join(out) + "\n"


_MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_MERMAID_WORDS = {"state", "note", "direction", "class", "classDef", "style", "click", "as",
                  "end", "left", "right", "of", "linkStyle", "accTitle", "accDescr"}


def _mermaid_ids(names: Sequence[str]) -> dict[str, str]:
    """Node name → Mermaid id: the name itself when Mermaid can read it as an id."""
    ids: dict[str, str] = {}
    taken = set(names) | _MERMAID_WORDS
    for name in names:
        if _MERMAID_ID.match(name) and name not in _MERMAID_WORDS:
            ids[name] = name
            continue
        if name == IMPLICIT_FAIL:
            base = "implicit_fail"
        else:
            base = "state_" + re.sub(r"\W", "_", name).strip("_")
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _mermaid_text(text: str) -> str:
    # Mermaid splits statements on these and reads `#...;` as entity codes.
    return "".join(f"#{ord(c)};" if c in '#;:"<>{}' else c for c in " ".join(text.split()))


def render_mermaid(graph: Graph) -> str:
    """A Mermaid stateDiagram-v2; a run's visited states get the `taken` class."""
    ids = _mermaid_ids([n.name for n in graph.nodes])
    out = []
    if graph.description or graph.name:
        out += ["---", f"title: {_mermaid_text(graph.name)}", "---"]
    out += ["stateDiagram-v2", "    direction LR"]
    for node in graph.nodes:
        if ids[node.name] != node.name or node.implicit:
            out.append(f'    state "{_mermaid_text(node.label)}" as {ids[node.name]}')
    for node in graph.nodes:
        if node.final:
            note = str(node.status) + (f" — {node.message}" if node.message else "")
            out.append(f"    {ids[node.name]} : {_mermaid_text(note)}")
        elif node.region:  # a composite state: the region, with the step run per item
            item = f"{ids[node.name]}__each"
            out.append(f"    state {ids[node.name]} {{")
            out.append(f'        state "{_mermaid_text(node.detail or "")}" as {item}')
            out.append(f"        {item} : {_mermaid_text(node.region)}")
            out.append("    }")
        elif node.detail:
            out.append(f"    {ids[node.name]} : {_mermaid_text(node.detail)}")
    out.append(f"    [*] --> {ids[graph.start]}")
    for edge in _merged(graph.edges):
        label = edge.label + (" (implicit)" if edge.implicit else "")
        if edge.taken:
            label = f"* {label}"
        out.append(f"    {ids[edge.source]} --> {ids[edge.target]} : {_mermaid_text(label)}")
    for loop in graph.loops:
        label = ("* " if loop.taken else "") + loop.label
        out.append(f"    {ids[loop.state]} --> {ids[loop.state]} : {_mermaid_text(label)}")
    for node in graph.nodes:
        if node.final:
            out.append(f"    {ids[node.name]} --> [*]")
    out.append("    classDef implicit stroke-dasharray: 5 5,stroke:#888,color:#555")
    implicit = [ids[n.name] for n in graph.nodes if n.implicit]
    if implicit:
        out.append(f"    class {','.join(implicit)} implicit")
    visited = [ids[n.name] for n in graph.nodes if n.visited]
    if visited:
        out.append("    classDef taken fill:#fde68a,stroke:#d97706,stroke-width:3px")
        out.append(f"    class {','.join(visited)} taken")
    return "\n".join(out) + "\n"


def render_dot(graph: Graph) -> str:
    """Graphviz DOT source: finals as double circles, implicit fail edges dashed."""
    import pydot

    title = [graph.name] + ([graph.description] if graph.description else [])
    dot = pydot.Dot(
        _dot_q(graph.name), graph_type="digraph", rankdir="LR", labelloc="t",
        label=_dot_label(*title), fontname="Helvetica", fontsize="14",
        **(_LARGE_GRAPH if len(graph.nodes) > _LARGE_GRAPH_NODES else {}),
    )
    dot.set_node_defaults(fontname="Helvetica", fontsize="11", shape="box",
                          style="rounded,filled", fillcolor="white", penwidth="1.5")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="9")
    names = {n.name for n in graph.nodes}
    start_id = next(c for c in ("__start", "__start_", "__start__") if c not in names)
    dot.add_node(pydot.Node(_dot_q(start_id), shape="point", width="0.15", label='""',
                            fillcolor="black"))
    for number, node in enumerate(graph.nodes):
        if node.region:  # a fan-out is drawn as a region around its state
            cluster = pydot.Cluster(
                f"fanout_{number}", label=_dot_label(node.region), style="dashed",
                color=_RETRY_COLOR, fontcolor=_RETRY_COLOR, fontsize="9")
            cluster.add_node(pydot.Node(_dot_q(node.name), **_node_attrs(node)))
            dot.add_subgraph(cluster)  # type: ignore[arg-type]  # a Cluster is a Subgraph
            continue
        dot.add_node(pydot.Node(_dot_q(node.name), **_node_attrs(node)))
    start_attrs: dict[str, Any] = _TAKEN if graph.node(graph.start).visited else {}
    dot.add_edge(pydot.Edge(_dot_q(start_id), _dot_q(graph.start), **start_attrs))
    for edge in _merged(graph.edges):
        attrs: dict[str, Any] = {"label": _dot_label(", ".join(edge.events),
                                     *([f"[{edge.guard}]"] if edge.guard else []))}
        if edge.implicit:
            attrs.update(style="dashed", color=_IMPLICIT_COLOR, fontcolor=_IMPLICIT_COLOR)
        if edge.taken:
            attrs.update(_TAKEN, style="bold,dashed" if edge.implicit else "bold")
        dot.add_edge(pydot.Edge(_dot_q(edge.source), _dot_q(edge.target), **attrs))
    for loop in graph.loops:
        head, _, extras = loop.label.partition(" (")
        attrs = {"label": _dot_label(head, *([f"({extras}"] if extras else [])),
                 "style": "dotted", "color": _RETRY_COLOR, "fontcolor": _RETRY_COLOR}
        if loop.taken:
            attrs.update(_TAKEN)
        dot.add_edge(pydot.Edge(_dot_q(loop.state), _dot_q(loop.state), **attrs))
    source: str = dot.to_string()
    return source


# Every state's arrow to the shared fail (or `failed`) final makes graphviz's layout
# superlinear: a 100-state chain took over 100 s. Capping network-simplex and
# crossing-minimisation passes and drawing straight edges brings a 200-state chain
# to about a second; small machines keep the default (curved, tuned) layout.
_LARGE_GRAPH_NODES = 30
_LARGE_GRAPH = {"nslimit": "1", "nslimit1": "1", "mclimit": "0.1", "splines": "line"}
DOT_TIMEOUT_SECONDS = 120

_TAKEN_COLOR = "#d97706"
_TAKEN: dict[str, Any] = {
    "color": _TAKEN_COLOR, "fontcolor": _TAKEN_COLOR, "penwidth": "3", "style": "bold",
}
_IMPLICIT_COLOR = "#888888"
_RETRY_COLOR = "#2563eb"


def _node_attrs(node: Node) -> dict[str, Any]:
    attrs: dict[str, Any]
    if not node.final:
        attrs = {"label": _dot_label(node.label, *([node.detail] if node.detail else []))}
    else:
        attrs = {"shape": "doublecircle", "label": _dot_label(node.label),
                 "color": "#b91c1c" if node.status == "fail" else "#15803d"}
        if node.message:  # small and wrapped, so the circle stays near the name's size
            attrs["label"] = _dot_html(node.label, (node.message, 8, "#555555"))
    if node.implicit:
        attrs.update(style="dashed,filled", color=_IMPLICIT_COLOR, fontcolor="#555555")
    if node.visited:
        attrs.update(fillcolor="#fde68a", penwidth="3")
        if not node.implicit:
            attrs["color"] = _TAKEN_COLOR
    return attrs


def _dot_q(text: str) -> str:
    """A DOT quoted string; quoting every id also keeps `graph`, `node`... from being keywords."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(*lines: str) -> str:
    """A quoted multi-line label; user text cannot produce DOT escapes such as `\\l`."""
    return '"' + "\\n".join(_dot_q(line)[1:-1] for line in lines) + '"'


def _dot_html(title: str, *notes: tuple[str, int, str]) -> str:
    """An HTML-like DOT label: `title`, then each (text, point size, colour) note wrapped."""
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    parts = [escape(title)]
    for text, size, color in notes:
        lines = "<br/>".join(escape(line) for line in textwrap.wrap(text, 18) or [""])
        parts.append(f'<font point-size="{size}" color="{color}">{lines}</font>')
    return "<" + "<br/>".join(parts) + ">"


def render_image(dot_source: str, fmt: str) -> bytes:
    """Run graphviz `dot -T<fmt>` on DOT source; a missing `dot` is a one-line error."""
    program = shutil.which("dot")
    if program is None:
        raise MgtError(DOT_NOT_FOUND)
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=dot_source.encode("utf-8"),
            capture_output=True, timeout=DOT_TIMEOUT_SECONDS, check=False,
        )
    except FileNotFoundError as err:
        raise MgtError(DOT_NOT_FOUND) from err
    except subprocess.TimeoutExpired as err:
        raise MgtError(
            f"graphviz 'dot' did not finish within {DOT_TIMEOUT_SECONDS} s: the machine is too "
            "large to lay out; use --format text or mermaid"
        ) from err
    except (OSError, subprocess.SubprocessError) as err:
        raise MgtError(f"graphviz 'dot' could not run: {err}") from err
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MgtError(
            f"graphviz 'dot' failed (exit {done.returncode})"
            + (f": {reason[0]}" if reason else "")
        )
    return done.stdout
