"""Graph + repository files -> problems (errors and warnings) the build reports."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dmgraph.core.dsl import Graph, parse_duration_ms

LLM_ATTRS = {"template", "inputs", "schema", "timeout", "retries"}
TOOL_ATTRS = {"effect", "timeout"}
MAX_TIMEOUT_MS = 120_000
MAX_RETRIES = 3
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    line: int
    message: str


def template_variables(text: str) -> list[str]:
    found: list[str] = []
    for name in _VARIABLE.findall(text):
        if name not in found:
            found.append(name)
    return found


def validate(graph: Graph, root: Path) -> list[Problem]:
    problems: list[Problem] = []

    def error(line: int, message: str) -> None:
        problems.append(Problem("error", line, message))

    if graph.start not in graph.nodes:
        error(1, f"start node {graph.start} is not declared")
    for node in graph.nodes.values():
        allowed = {"llm": LLM_ATTRS, "tool": TOOL_ATTRS, "logic": set()}[node.kind]
        for key in node.attrs:
            if key not in allowed:
                error(node.line, f"node {node.name}: {node.kind} nodes take no {key}=")
        if "timeout" in node.attrs:
            try:
                timeout = parse_duration_ms(node.attrs["timeout"])
            except ValueError as exc:
                error(node.line, f"node {node.name}: {exc}")
            else:
                if not 0 < timeout <= MAX_TIMEOUT_MS:
                    error(node.line, f"node {node.name}: timeout must be within 1ms..120s")
        if "retries" in node.attrs:
            raw = node.attrs["retries"]
            if not raw.isdigit() or int(raw) > MAX_RETRIES:
                error(node.line, f"node {node.name}: retries must be 0..{MAX_RETRIES}, got {raw}")
        if node.kind == "tool" and "effect" not in node.attrs:
            error(node.line, f"node {node.name}: tool nodes need effect=NAME")
        if node.kind == "llm":
            problems.extend(_check_llm_node(node.name, node.line, node.attrs, node.inputs, root))

    for edge in graph.edges:
        for end in (edge.source, edge.target):
            if end not in graph.nodes:
                error(edge.line, f"edge {edge.source} -> {edge.target}: no node named {end}")
    seen: dict[tuple[str, str], int] = {}
    for edge in graph.edges:
        key = (edge.source, edge.trigger)
        if key in seen:
            error(edge.line, f"{edge.source} already has an edge on {edge.trigger} (line {seen[key]})")
        seen[key] = edge.line
    for final in sorted(graph.finals):
        if final not in graph.nodes:
            error(1, f"final {final} is not a declared node")
    outgoing = {edge.source for edge in graph.edges}
    for node in graph.nodes.values():
        if node.name not in outgoing and node.name not in graph.finals:
            error(node.line, f"node {node.name} has no outgoing edge and is not final")

    reachable = _reachable(graph)
    for node in graph.nodes.values():
        if node.name not in reachable and graph.start in graph.nodes:
            problems.append(
                Problem("warning", node.line, f"node {node.name} is unreachable from {graph.start}")
            )
    return sorted(problems, key=lambda p: (p.line, p.severity, p.message))


def _check_llm_node(
    name: str, line: int, attrs: dict[str, str], inputs: list[str], root: Path
) -> list[Problem]:
    problems: list[Problem] = []
    template = attrs.get("template")
    if template is None:
        return [Problem("error", line, f"node {name}: llm nodes need template=PATH")]
    template_path = root / template
    if not template_path.is_file():
        return [Problem("error", line, f"node {name}: template {template} does not exist")]
    used = template_variables(template_path.read_text(encoding="utf-8"))
    for variable in used:
        if variable not in inputs:
            problems.append(
                Problem("error", line, f"node {name}: {template} uses {variable}, "
                        "which is not in the node's inputs=")
            )
    for variable in inputs:
        if variable not in used:
            problems.append(
                Problem("error", line, f"node {name}: declares input {variable} that "
                        f"{template} never uses")
            )
    schema = attrs.get("schema")
    if schema is not None:
        problems.extend(_check_schema(name, line, schema, root))
    return problems


def _check_schema(name: str, line: int, schema: str, root: Path) -> list[Problem]:
    path = root / schema
    if not path.is_file():
        return [Problem("error", line, f"node {name}: schema {schema} does not exist")]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [Problem("error", line, f"node {name}: schema {schema} is not JSON: {exc}")]
    if not isinstance(document, dict) or document.get("type") != "object":
        return [Problem("error", line, f"node {name}: schema {schema} must describe an object")]
    properties = document.get("properties", {})
    missing = [key for key in document.get("required", []) if key not in properties]
    if missing:
        return [Problem("error", line, f"node {name}: schema {schema} requires undefined "
                        f"properties {', '.join(missing)}")]
    return []


def _reachable(graph: Graph) -> set[str]:
    seen = {graph.start}
    frontier = [graph.start]
    while frontier:
        current = frontier.pop()
        for edge in graph.edges:
            if edge.source == current and edge.target not in seen:
                seen.add(edge.target)
                frontier.append(edge.target)
    return seen
