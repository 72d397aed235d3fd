"""`python3 -m dmgraph.build [ROOT]`: parse and validate graph/*.graph; exit 1 on any error."""

from __future__ import annotations

import sys
from pathlib import Path

from dmgraph.core.dsl import GraphSyntaxError, parse_graph
from dmgraph.validate import validate


def build(root: Path) -> int:
    graph_files = sorted((root / "graph").glob("*.graph"))
    if not graph_files:
        print(f"error: no graph/*.graph files under {root}", file=sys.stderr)
        return 1
    errors = 0
    for path in graph_files:
        relative = path.relative_to(root).as_posix()
        try:
            graph = parse_graph(path.read_text(encoding="utf-8"), relative)
        except GraphSyntaxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            errors += 1
            continue
        for problem in validate(graph, root):
            print(f"{problem.severity}: {relative}:{problem.line}: {problem.message}",
                  file=sys.stderr)
            errors += problem.severity == "error"
        print(f"{relative}: graph {graph.name}, {len(graph.nodes)} nodes, "
              f"{len(graph.edges)} edges")
    if errors:
        print(f"build failed: {errors} error(s)", file=sys.stderr)
        return 1
    print("build ok")
    return 0


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
