"""The transition graph of a machine → reachability, dead ends, unhandled outcomes, dominators.

`Flow` builds the graph once. Besides one node per state and final, every
state S with an `on done` gets a node "S/done" between S and its done targets:
S's output exists exactly on paths that went through S/done. So "is
`T.output` surely there when S runs?" is "does T/done dominate S?", answered
with the Lengauer–Tarjan dominator algorithm.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise

from mgt import ast
from mgt.check.context import Check, Context, possible_events
from mgt.diagnostics import Diagnostic

__all__ = ["CHECKS", "Flow"]

_ENTRY = "\0entry"


def _done(state: str) -> str:
    return f"{state}/done"


class Flow:
    """Graph facts about one machine (only states, finals and explicit transitions)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.edges: dict[str, list[str]] = {_ENTRY: []}
        # (state, target) → the first event other than done that takes it (done goes via S/done)
        self.events: dict[tuple[str, str], str] = {}
        if ctx.start is not None:
            self.edges[_ENTRY].append(ctx.start.name.text)
        for name in ctx.finals:
            self.edges.setdefault(name, [])
        for name, state in ctx.states.items():
            out = self.edges.setdefault(name, [])
            for on in state.transitions:
                target = on.target.text
                if target not in ctx.states and target not in ctx.finals:
                    continue
                if on.event.text == "done":
                    done = _done(name)
                    if done not in self.edges:
                        self.edges[done] = []
                        out.append(done)
                    self.edges[done].append(target)
                else:
                    self.events.setdefault((name, target), on.event.text)
                    out.append(target)
        self.reachable = self._reach(_ENTRY, self.edges)
        self._intervals: dict[str, tuple[int, int]] | None = None

    @staticmethod
    def _reach(start: str, edges: dict[str, list[str]], avoid: str | None = None) -> set[str]:
        seen = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in edges.get(node, ()):
                if nxt not in seen and nxt != avoid:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def reaches_final(self) -> set[str]:
        """Every node from which some declared final can be reached."""
        reverse: dict[str, list[str]] = {}
        for node, targets in self.edges.items():
            for target in targets:
                reverse.setdefault(target, []).append(node)
        found: set[str] = set()
        for final in self.ctx.finals:
            found |= self._reach(final, reverse)
        return found

    # ---- dominators --------------------------------------------------------

    def _dominator_intervals(self) -> dict[str, tuple[int, int]]:
        """Pre/post numbers of the dominator tree: a dominates b iff a's interval holds b's."""
        idom = _immediate_dominators(_ENTRY, self.edges)
        children: dict[str, list[str]] = {}
        for node, parent in idom.items():
            if node != parent:
                children.setdefault(parent, []).append(node)
        intervals: dict[str, tuple[int, int]] = {}
        pre: dict[str, int] = {}
        clock = 0
        stack: list[tuple[str, bool]] = [(_ENTRY, False)]
        while stack:
            node, done = stack.pop()
            if done:
                intervals[node] = (pre[node], clock)
                clock += 1
                continue
            pre[node] = clock
            clock += 1
            stack.append((node, True))
            stack.extend((child, False) for child in children.get(node, ()))
        return intervals

    def dominates(self, a: str, b: str) -> bool:
        if self._intervals is None:
            self._intervals = self._dominator_intervals()
        intervals = self._intervals
        if b not in intervals:
            return True  # unreachable: nothing to say (reported elsewhere)
        if a not in intervals:
            return False
        (a_in, a_out), (b_in, b_out) = intervals[a], intervals[b]
        return a_in <= b_in and b_out <= a_out

    def output_available(self, producer: str, reader: str, after_done: bool) -> bool:
        """Has state `producer` surely finished with `done` when `reader` reads its output?

        `after_done`: the read happens in a guard of `reader`'s `on done` (so `reader`
        itself has just finished); otherwise before `reader` runs or after another outcome.
        """
        return self.dominates(_done(producer), _done(reader) if after_done else reader)

    def path_without_output(self, producer: str, reader: str) -> str:
        """A shortest path start → … → reader that never passes `producer`'s done, as text:
        `analyze on timeout -> refine`."""
        avoid = _done(producer)
        parent: dict[str, str] = {}
        queue = deque([_ENTRY])
        seen = {_ENTRY}
        while queue:
            node = queue.popleft()
            if node == reader:
                break
            for nxt in self.edges.get(node, ()):
                if nxt not in seen and nxt != avoid:
                    seen.add(nxt)
                    parent[nxt] = node
                    queue.append(nxt)
        if reader not in parent:
            return reader
        path = [reader]
        while path[-1] in parent and parent[path[-1]] != _ENTRY:
            path.append(parent[path[-1]])
        states = [p for p in reversed(path) if "/" not in p]
        steps = [states[0]]
        for before, after in pairwise(states):
            event = "done" if _done(before) in path else self.events.get((before, after), "?")
            steps.append(f"on {event} -> {after}")
        return " ".join(steps)


def _immediate_dominators(entry: str, edges: dict[str, list[str]]) -> dict[str, str]:
    """Lengauer–Tarjan (simple version, iterative): node → its immediate dominator.

    Near-linear; the iterative Cooper–Harvey–Kennedy algorithm is quadratic on the
    long chains a generated 500-state machine has (every state → one `failed`).
    Only nodes reachable from `entry` appear; `entry` maps to itself.
    """
    vertex: list[str] = []
    number: dict[str, int] = {}
    parent: dict[str, str] = {}
    stack: list[tuple[str, str]] = [(entry, entry)]
    while stack:
        node, via = stack.pop()
        if node in number:
            continue
        number[node] = len(vertex)
        vertex.append(node)
        parent[node] = via
        stack.extend((w, node) for w in reversed(edges.get(node, ())) if w not in number)
    preds: dict[str, list[str]] = {v: [] for v in vertex}
    for v in vertex:
        for w in edges.get(v, ()):
            preds[w].append(v)

    semi = dict(number)
    label = {v: v for v in vertex}
    ancestor: dict[str, str] = {}
    bucket: dict[str, list[str]] = {}
    idom: dict[str, str] = {}

    def evaluate(v: str) -> str:
        if v not in ancestor:
            return v
        chain = []
        u = v
        while ancestor[u] in ancestor:
            chain.append(u)
            u = ancestor[u]
        for x in reversed(chain):
            a = ancestor[x]
            if semi[label[a]] < semi[label[x]]:
                label[x] = label[a]
            ancestor[x] = ancestor[a]
        return label[v]

    for i in range(len(vertex) - 1, 0, -1):
        w = vertex[i]
        for v in preds[w]:
            u = evaluate(v)
            if semi[u] < semi[w]:
                semi[w] = semi[u]
        bucket.setdefault(vertex[semi[w]], []).append(w)
        p = parent[w]
        ancestor[w] = p
        for v in bucket.pop(p, []):
            u = evaluate(v)
            idom[v] = u if semi[u] < semi[v] else p
    for i in range(1, len(vertex)):
        w = vertex[i]
        if idom[w] != vertex[semi[w]]:
            idom[w] = idom[idom[w]]
    idom[entry] = entry
    return idom


# ---- checks -------------------------------------------------------------


def check_unreachable(ctx: Context) -> Iterator[Diagnostic]:
    if ctx.start is None:
        return
    reachable = ctx.flow.reachable
    start = ctx.start.name.text
    for name, state in ctx.states.items():
        if name not in reachable:
            yield Diagnostic.error(
                f"state '{name}' is unreachable: no transition leads to it from the start "
                f"state '{start}'",
                state.name.span,
            )
    for name, final in ctx.finals.items():
        if name not in reachable:
            yield Diagnostic.warning(f"final '{name}' is never reached", final.name.span)


def check_reaches_final(ctx: Context) -> Iterator[Diagnostic]:
    if not ctx.finals and ctx.states:
        yield Diagnostic.error(
            f"machine '{ctx.machine.name.text}' has no final states",
            ctx.machine.name.span,
            "add 'final NAME: succeed' (or fail) and transitions to it",
        )
        return
    alive = ctx.flow.reaches_final()
    for name, state in ctx.states.items():
        if name in ctx.flow.reachable and name not in alive:
            yield Diagnostic.error(
                f"state '{name}' can never reach a final state: every path from it loops "
                "or ends in an unhandled outcome",
                state.name.span,
            )


def check_done_fallback(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.states.values():
        done = [on for on in state.transitions if on.event.text == "done"]
        if not done:
            yield Diagnostic.error(
                f"state '{state.name.text}' has no 'on done' transition, so finishing "
                "successfully would fail the run",
                state.name.span,
                f"add 'on done -> STATE' to state '{state.name.text}'",
            )
        elif all(on.guard is not None for on in done):
            yield Diagnostic.error(
                f"every 'on done' of state '{state.name.text}' has a guard; when none "
                "matches the run fails",
                done[-1].span,
                "add an unguarded 'on done -> STATE' after the guarded ones",
            )


def check_unhandled_events(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.states.values():
        if state.run is None:
            continue
        handled = {on.event.text for on in state.transitions if on.guard is None}
        missing = [
            e for e in possible_events(state) if e != "done" and e not in handled
        ]
        if missing:
            events = ", ".join(missing)
            if len(missing) > 1:
                what = f"outcomes {events}; they end"
            else:
                what = f"outcome {events}; it ends"
            yield Diagnostic.warning(
                f"state '{state.name.text}' has no transition for {what} the run in the "
                "implicit fail final",
                state.name.span,
            )


def check_impossible_events(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.states.values():
        if state.run is None:
            continue
        # a fan-out's retry clauses retry each item's step, which ends like any step
        possible = possible_events(replace(state, fan_out=None))
        what = _kind_phrase(state)
        for retry in state.retries:
            for event in retry.events:
                if event.text in possible or event.text not in _ALL_EVENTS:
                    continue
                yield Diagnostic.warning(
                    f"'{event.text}' cannot happen for {what}, so this retry never runs",
                    event.span,
                )


_ALL_EVENTS = frozenset({"done", "schema_invalid", "guardrail", "timeout", "error"})


def _kind_phrase(state: ast.State) -> str:
    assert state.run is not None
    if state.run.kind == "command":
        return "a command without an 'output' schema"
    if state.run.kind == "builtin":
        return "a builtin without an 'output' schema"
    return f"a {state.run.kind}"


CHECKS: tuple[Check, ...] = (
    check_unreachable,
    check_reaches_final,
    check_done_fallback,
    check_unhandled_events,
    check_impossible_events,
)
