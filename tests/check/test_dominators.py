"""The dominator algorithm behind 'STATE.output surely exists', against a brute-force oracle."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.check.flow import _immediate_dominators


def reachable(edges: dict[str, list[str]], start: str, removed: str | None) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen and nxt != removed:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def brute_force_dominators(edges: dict[str, list[str]], entry: str) -> dict[str, set[str]]:
    nodes = reachable(edges, entry, None)
    return {
        b: {a for a in nodes if a in (b, entry) or b not in reachable(edges, entry, a)}
        for b in nodes
    }


def dominators_from_idom(idom: dict[str, str], node: str) -> set[str]:
    found = {node}
    while idom[node] != node:
        node = idom[node]
        found.add(node)
    return found


graphs = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.lists(
        st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=n * 3
    ).map(lambda pairs: (n, pairs))
)


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_lengauer_tarjan_matches_brute_force(graph: tuple[int, list[tuple[int, int]]]) -> None:
    n, pairs = graph
    edges: dict[str, list[str]] = {f"n{i}": [] for i in range(n)}
    for a, b in pairs:
        edges[f"n{a}"].append(f"n{b}")
    idom = _immediate_dominators("n0", edges)
    expected = brute_force_dominators(edges, "n0")
    assert set(idom) == set(expected)
    for node, doms in expected.items():
        assert dominators_from_idom(idom, node) == doms


def test_a_long_chain_with_a_shared_sink() -> None:
    # The shape that made the quadratic algorithm slow: s0 → s1 → … and every s → sink.
    n = 3000
    edges = {f"s{i}": [f"s{i + 1}", "sink"] for i in range(n)}
    edges[f"s{n}"] = ["sink"]
    idom = _immediate_dominators("s0", edges)
    assert idom["sink"] == "s0"
    assert idom[f"s{n}"] == f"s{n - 1}"
