"""A `Machine`'s states → every route out of each state, implicit fail fallbacks included.

The chart and the graphs both need the same answer to "where can this state
go?": the declared `on EVENT [when GUARD] -> STATE` transitions in order, then,
for every outcome that has no unguarded transition, a fallback to the implicit
`fail` final. The compiler may already have added those fallbacks to the model
(`TransitionSpec.implicit`); completing again adds nothing, so this works on a
model either way.
"""

from __future__ import annotations

from mgt.compile.model import EVENTS, IMPLICIT_FAIL, Machine, StateSpec, TransitionSpec

__all__ = [
    "IMPLICIT_FAIL_MESSAGE", "needs_implicit_fail", "possible_events", "routes", "unhandled_events",
]

#: How the implicit fail final is labelled in graphs.
IMPLICIT_FAIL_MESSAGE = "fail (implicit)"


def possible_events(state: StateSpec) -> tuple[str, ...]:
    """The outcomes `state` can end with (as `mgt check` reasons): a model step any; a command
    done, error or timeout; a builtin done, error or guardrail; either also schema_invalid and
    guardrail when it declares `output SCHEMA`."""
    kind = state.run.kind
    if kind == "machine":  # the child's own outcomes stay inside it
        return ("done", "error")
    if state.fan_out is not None or state.branches:  # items fail alone; the state fails
        return ("done", "error")
    if kind not in ("command", "builtin"):
        return EVENTS
    events = {"done", "error", "timeout" if kind == "command" else "guardrail"}
    if state.output_schema is not None:
        events |= {"schema_invalid", "guardrail"}
    return tuple(e for e in EVENTS if e in events)


def unhandled_events(state: StateSpec) -> tuple[str, ...]:
    """Outcomes of `state` that can end up with no transition (none, or only guarded ones)."""
    covered = {t.event for t in state.transitions if t.guard is None}
    return tuple(event for event in EVENTS if event not in covered)


def routes(state: StateSpec, *, possible_only: bool = False) -> tuple[TransitionSpec, ...]:
    """Declared transitions in order, then an implicit fail fallback per unhandled outcome;
    with `possible_only` (for drawings), no fallback for an outcome the state cannot end with."""
    fallbacks = tuple(
        TransitionSpec(event=event, target=IMPLICIT_FAIL, implicit=True)
        for event in unhandled_events(state)
    )
    every = state.transitions + fallbacks
    if not possible_only:
        return every
    possible = possible_events(state)
    return tuple(t for t in every if not t.implicit or t.event in possible)


def needs_implicit_fail(machine: Machine, *, possible_only: bool = False) -> bool:
    """Whether any route of `machine` reaches the implicit fail final (else it is left out)."""
    return any(
        t.target == IMPLICIT_FAIL
        for state in machine.states.values()
        for t in routes(state, possible_only=possible_only)
    )
