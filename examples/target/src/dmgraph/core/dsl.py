"""Graph DSL text -> Graph (nodes, edges, finals), with line numbers for every error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("llm", "logic", "tool")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(\d+)(ms|s|m)$")


class GraphSyntaxError(Exception):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class Node:
    name: str
    kind: str
    attrs: dict[str, str]
    line: int

    @property
    def inputs(self) -> list[str]:
        raw = self.attrs.get("inputs", "")
        return [item for item in raw.split(",") if item]

    @property
    def timeout_ms(self) -> int | None:
        raw = self.attrs.get("timeout")
        return None if raw is None else parse_duration_ms(raw)

    @property
    def retries(self) -> int:
        return int(self.attrs.get("retries", "0"))


@dataclass
class Edge:
    source: str
    target: str
    trigger: str
    line: int


@dataclass
class Graph:
    name: str
    start: str
    path: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    finals: set[str] = field(default_factory=set)


def parse_duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 30s, 2m)")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"ms": 1, "s": 1000, "m": 60_000}[unit]


def parse_graph(text: str, path: str = "<graph>") -> Graph:
    graph: Graph | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        keyword = words[0]

        def fail(message: str, number: int = number) -> GraphSyntaxError:
            return GraphSyntaxError(path, number, message)

        if keyword == "graph":
            if graph is not None:
                raise fail("a second 'graph' declaration")
            if len(words) != 3 or not words[2].startswith("start="):
                raise fail("expected: graph NAME start=NODE")
            graph = Graph(name=words[1], start=words[2].removeprefix("start="), path=path)
            continue
        if graph is None:
            raise fail("the file must start with: graph NAME start=NODE")
        if keyword == "node":
            if len(words) < 3:
                raise fail("expected: node NAME KIND [key=value ...]")
            name, kind = words[1], words[2]
            if not _NAME.match(name):
                raise fail(f"bad node name {name!r}")
            if kind not in KINDS:
                raise fail(f"unknown node kind {kind!r} (expected one of {', '.join(KINDS)})")
            if name in graph.nodes:
                raise fail(f"node {name} is already declared on line {graph.nodes[name].line}")
            attrs: dict[str, str] = {}
            for word in words[3:]:
                key, eq, value = word.partition("=")
                if not eq or not key or not value:
                    raise fail(f"expected key=value, got {word!r}")
                if key in attrs:
                    raise fail(f"attribute {key} given twice")
                attrs[key] = value
            graph.nodes[name] = Node(name, kind, attrs, number)
        elif keyword == "edge":
            if len(words) != 6 or words[2] != "->" or words[4] != "on":
                raise fail("expected: edge FROM -> TO on TRIGGER")
            graph.edges.append(Edge(words[1], words[3], words[5], number))
        elif keyword == "final":
            if len(words) != 2:
                raise fail("expected: final NODE")
            graph.finals.add(words[1])
        else:
            raise fail(f"unknown statement {keyword!r} (expected graph, node, edge or final)")
    if graph is None:
        raise GraphSyntaxError(path, 1, "empty graph file")
    return graph
