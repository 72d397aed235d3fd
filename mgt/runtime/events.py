"""Journal lines ⇄ typed run events, and the one fold of a run's events into a `RunState`.

Every event of `events.jsonl` is one of the frozen dataclasses below; `parse_event`
turns a JSON object into one (or says what is wrong with it) and `Event.to_json`
writes it back. `fold` reads a run's events, in order, into a `RunState`: where the
run is, what each state did, what it cost, how it ended, and the visit under way.
Every reader of a run goes through it: resume, `mgt show` and `mgt runs`, the
failure cause, the path `mgt graph --run` draws. The fold does no I/O.

    run_started       machine, machine_path, machine_sha256, inputs
    run_resumed       state
    state_entered     state [final]
    attempt_started   state, attempt [kind]
    process_started   state, attempt, pgid [item] a step's process group, for resume to end
    item_started      state, attempt, index [key]  one item of a fan-out began
    item_finished     state, attempt, index, outcome [key output error cost_usd tokens]
    attempt_finished  state, attempt, outcome [cost_usd tokens error problems retryable output]
    backoff           state, seconds
    guard_failed      state, event, error
    transition        from, event, to [guard]
    run_interrupted   state [signal error]
    run_finished      status [final message]

Unknown event types are kept as `OtherEvent` and folded over, so a journal written
by a newer mgt still reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "AttemptFinished",
    "AttemptRecord",
    "AttemptStarted",
    "Backoff",
    "Event",
    "EventProblem",
    "GuardFailed",
    "ItemFinished",
    "ItemStarted",
    "OtherEvent",
    "ProcessStarted",
    "RunFinished",
    "RunInterrupted",
    "RunResumed",
    "RunStarted",
    "RunState",
    "StateEntered",
    "StateRecord",
    "Transition",
    "Visit",
    "WorkspaceRestored",
    "epoch",
    "fold",
    "parse_event",
]


class EventProblem(ValueError):
    """A journal line that is JSON but not a well-formed event (the message says why)."""


# --------------------------------------------------------------------------- field readers


def _text(raw: Mapping[str, Any], key: str, what: str) -> str:
    if key not in raw:
        raise EventProblem(f"{what} without '{key}'")
    value = raw[key]
    if not isinstance(value, str):
        raise EventProblem(f"{what}: '{key}' should be a string, got {_show(value)}")
    return value


def _opt_text(raw: Mapping[str, Any], key: str, what: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise EventProblem(f"{what}: '{key}' should be a string, got {_show(value)}")
    return value


def _int(raw: Mapping[str, Any], key: str, what: str) -> int:
    if key not in raw:
        raise EventProblem(f"{what} without '{key}'")
    value = raw[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventProblem(f"{what}: '{key}' should be an integer, got {_show(value)}")
    return value


def _number(raw: Mapping[str, Any], key: str, what: str) -> float:
    value = raw.get(key)
    if value is None:
        return 0.0
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise EventProblem(f"{what}: '{key}' should be a number, got {_show(value)}")
    return float(value)


def _tokens(raw: Mapping[str, Any], what: str) -> tuple[int, int]:
    value = raw.get("tokens")
    if value is None:
        return 0, 0
    if not isinstance(value, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in value.values()
    ):
        raise EventProblem(
            f'{what}: \'tokens\' should be an object of integers ({{"input": N, "output": N}}), '
            f"got {_show(value)}"
        )
    return int(value.get("input", 0)), int(value.get("output", 0))


def _problems(raw: Mapping[str, Any], what: str) -> tuple[str, ...]:
    value = raw.get("problems")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise EventProblem(f"{what}: 'problems' should be a list, got {_show(value)}")
    return tuple(str(p) for p in value)


def _show(value: Any) -> str:
    try:
        return json.dumps(value)[:40]
    except (ValueError, RecursionError):
        return type(value).__name__


# --------------------------------------------------------------------------- the events


@dataclass(frozen=True)
class Event:
    """One journal line. `seq` and `ts` are set by the journal when it appends the event."""

    type: ClassVar[str] = ""
    seq: int = field(default=0, kw_only=True)
    ts: str = field(default="", kw_only=True)

    def fields(self) -> dict[str, Any]:
        """The event's own fields as JSON (without seq, ts and type)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "type": self.type, **self.fields()}


@dataclass(frozen=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    machine: str | None = None
    machine_path: str | None = None
    machine_sha256: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {"machine": self.machine, "machine_path": self.machine_path,
                "machine_sha256": self.machine_sha256, "inputs": dict(self.inputs)}


@dataclass(frozen=True)
class RunResumed(Event):
    type: ClassVar[str] = "run_resumed"
    state: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"state": self.state}


@dataclass(frozen=True)
class StateEntered(Event):
    type: ClassVar[str] = "state_entered"
    state: str
    final: bool = False

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, **({"final": True} if self.final else {})}


@dataclass(frozen=True)
class AttemptStarted(Event):
    type: ClassVar[str] = "attempt_started"
    state: str
    attempt: int
    kind: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "attempt": self.attempt, "kind": self.kind}


@dataclass(frozen=True)
class ProcessStarted(Event):
    """A step's child process started in process group `pgid` (its leader's pid)."""

    type: ClassVar[str] = "process_started"
    state: str
    attempt: int
    pgid: int
    item: int | None = None  # the fan-out item whose step started it

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state, "attempt": self.attempt, "pgid": self.pgid}
        return data if self.item is None else {**data, "item": self.item}


@dataclass(frozen=True)
class ItemStarted(Event):
    """Item `index` of the fan-out in `state` began (its stable id is `state[index]`)."""

    type: ClassVar[str] = "item_started"
    state: str
    attempt: int
    index: int
    key: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "attempt": self.attempt, "index": self.index,
                "key": self.key}


@dataclass(frozen=True)
class ItemFinished(Event):
    """Item `index` of a fan-out finished; a resumed run keeps it and does not run it again."""

    type: ClassVar[str] = "item_finished"
    state: str
    attempt: int
    index: int
    outcome: str  # an attempt outcome, or `cancelled`
    key: str | None = None
    output: Any = None
    error: str | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "attempt": self.attempt, "index": self.index,
                "key": self.key, "outcome": self.outcome, "output": self.output,
                "error": self.error, "cost_usd": self.cost_usd,
                "tokens": {"input": self.input_tokens, "output": self.output_tokens}}

    def result(self) -> dict[str, Any]:
        """The item's entry in the fan-out's output list."""
        data: dict[str, Any] = {"index": self.index}
        if self.key is not None:
            data["key"] = self.key
        data["outcome"] = self.outcome
        data["output"] = self.output
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class AttemptFinished(Event):
    type: ClassVar[str] = "attempt_finished"
    state: str
    attempt: int
    outcome: str
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    problems: tuple[str, ...] = ()
    retryable: bool = True
    output: Any = None
    has_output: bool = True  # False in journals of older versions: output.json holds it

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state, "attempt": self.attempt, "outcome": self.outcome,
            "cost_usd": self.cost_usd,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "error": self.error, "problems": list(self.problems) or None,
            "retryable": self.retryable,
        }
        if self.has_output:
            data["output"] = self.output  # the durable copy: resume reads it from here
        return data


@dataclass(frozen=True)
class Backoff(Event):
    type: ClassVar[str] = "backoff"
    state: str
    seconds: float

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "seconds": self.seconds}


@dataclass(frozen=True)
class GuardFailed(Event):
    type: ClassVar[str] = "guard_failed"
    state: str
    event: str
    error: str

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "event": self.event, "error": self.error}


@dataclass(frozen=True)
class Transition(Event):
    type: ClassVar[str] = "transition"
    source: str
    event: str
    target: str
    guard: str | None = None
    guard_given: bool = True  # False in journals of older versions, which did not say

    def fields(self) -> dict[str, Any]:
        data = {"from": self.source, "event": self.event, "to": self.target}
        return {**data, "guard": self.guard} if self.guard_given else data


@dataclass(frozen=True)
class RunInterrupted(Event):
    type: ClassVar[str] = "run_interrupted"
    state: str | None = None
    signal: str | None = None
    error: str | None = None

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state, "signal": self.signal}
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: str
    final: str | None = None
    message: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"status": self.status, "final": self.final, "message": self.message}


@dataclass(frozen=True)
class WorkspaceRestored(Event):
    """A run moved to another worker (Temporal) and a finished state whose step makes the
    run's workspace (`mgt.extensions.WORKSPACE_BUILTINS`) was made again there first; its
    new output (the new place of the workspace) replaces the old one when it is `done`.
    Not an attempt: the state's attempts, costs and the run's path are unchanged."""

    type: ClassVar[str] = "workspace_restored"
    state: str
    attempt: int
    outcome: str
    output: Any = None
    error: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"state": self.state, "attempt": self.attempt, "outcome": self.outcome,
                "output": self.output, "error": self.error}


@dataclass(frozen=True)
class OtherEvent(Event):
    """An event type this version does not know: kept as read, ignored by the fold."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


def _parse_run_started(raw: Mapping[str, Any], what: str) -> Event:
    inputs = raw.get("inputs")
    return RunStarted(
        machine=_opt_text(raw, "machine", what),
        machine_path=_opt_text(raw, "machine_path", what),
        machine_sha256=_opt_text(raw, "machine_sha256", what),
        inputs=inputs if isinstance(inputs, dict) else {},
    )


def _parse_attempt_finished(raw: Mapping[str, Any], what: str) -> Event:
    tin, tout = _tokens(raw, what)
    return AttemptFinished(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        outcome=_text(raw, "outcome", what), cost_usd=_number(raw, "cost_usd", what),
        input_tokens=tin, output_tokens=tout, error=_opt_text(raw, "error", what),
        problems=_problems(raw, what), retryable=bool(raw.get("retryable", True)),
        output=raw.get("output"), has_output="output" in raw,
    )


def _opt_int(raw: Mapping[str, Any], key: str, what: str) -> int | None:
    return _int(raw, key, what) if raw.get(key) is not None else None


def _parse_item_finished(raw: Mapping[str, Any], what: str) -> Event:
    tin, tout = _tokens(raw, what)
    return ItemFinished(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        index=_int(raw, "index", what), outcome=_text(raw, "outcome", what),
        key=_opt_text(raw, "key", what), output=raw.get("output"),
        error=_opt_text(raw, "error", what), cost_usd=_number(raw, "cost_usd", what),
        input_tokens=tin, output_tokens=tout,
    )


def _parse_backoff(raw: Mapping[str, Any], what: str) -> Event:
    return Backoff(state=_text(raw, "state", what), seconds=_number(raw, "seconds", what))


_PARSERS: dict[str, Callable[[Mapping[str, Any], str], Event]] = {
    "run_started": _parse_run_started,
    "run_resumed": lambda raw, what: RunResumed(state=_opt_text(raw, "state", what)),
    "state_entered": lambda raw, what: StateEntered(
        state=_text(raw, "state", what), final=bool(raw.get("final"))),
    "attempt_started": lambda raw, what: AttemptStarted(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        kind=_opt_text(raw, "kind", what)),
    "process_started": lambda raw, what: ProcessStarted(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        pgid=_int(raw, "pgid", what), item=_opt_int(raw, "item", what)),
    "item_started": lambda raw, what: ItemStarted(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        index=_int(raw, "index", what), key=_opt_text(raw, "key", what)),
    "item_finished": _parse_item_finished,
    "attempt_finished": _parse_attempt_finished,
    "backoff": _parse_backoff,
    "workspace_restored": lambda raw, what: WorkspaceRestored(
        state=_text(raw, "state", what), attempt=_int(raw, "attempt", what),
        outcome=_text(raw, "outcome", what), output=raw.get("output"),
        error=_opt_text(raw, "error", what)),
    "guard_failed": lambda raw, what: GuardFailed(
        state=_text(raw, "state", what), event=_text(raw, "event", what),
        error=_opt_text(raw, "error", what) or ""),
    "transition": lambda raw, what: Transition(
        source=_text(raw, "from", what), event=_text(raw, "event", what),
        target=_text(raw, "to", what), guard=_opt_text(raw, "guard", what),
        guard_given="guard" in raw),
    "run_interrupted": lambda raw, what: RunInterrupted(
        state=_opt_text(raw, "state", what), signal=_opt_text(raw, "signal", what),
        error=_opt_text(raw, "error", what)),
    "run_finished": lambda raw, what: RunFinished(
        status=_text(raw, "status", what), final=_opt_text(raw, "final", what),
        message=_opt_text(raw, "message", what)),
}


def parse_event(raw: Mapping[str, Any]) -> Event:
    """A journal line's JSON object → its typed event; raises `EventProblem` saying why not."""
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise EventProblem(f"event: 'type' should be a string, got {_show(kind)}")
    raw_seq, raw_ts = raw.get("seq", 0), raw.get("ts", "")
    seq = raw_seq if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) else 0
    ts = raw_ts if isinstance(raw_ts, str) else ""
    parser = _PARSERS.get(kind)
    if parser is None:
        return OtherEvent(raw=dict(raw), seq=seq, ts=ts)
    return replace(parser(raw, f"{kind} event"), seq=seq, ts=ts)


# --------------------------------------------------------------------------- the fold


@dataclass
class AttemptRecord:
    attempt: int
    outcome: str | None = None  # None while running / when the process died mid-attempt
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    feedback: str | None = None
    started: str | None = None
    finished: str | None = None


@dataclass
class StateRecord:
    name: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    visits: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    output: Any = None
    items: dict[int, ItemFinished] = field(default_factory=dict)  # a fan-out's latest results
    items_running: set[int] = field(default_factory=set)

    @property
    def last_outcome(self) -> str | None:
        return next((a.outcome for a in reversed(self.attempts) if a.outcome), None)


@dataclass
class Visit:
    """The attempts of the current visit to a state (a state may be entered more than once).

    `retried` lists, in order, the finished attempts of this visit that were retried
    (another attempt followed them); `pending` is the last finished attempt, not yet
    acted on. The retries a visit has used follow from `retried` and the state's
    retry clauses (`mgt.runtime.decide.retries_used`).
    """

    retried: list[AttemptFinished] = field(default_factory=list)
    pending: AttemptFinished | None = None
    running: AttemptStarted | None = None  # an attempt started and not finished
    backoff: Backoff | None = None  # a backoff journaled after `pending`
    #: a fan-out's finished items in this visit, by index: a resumed attempt keeps them all,
    #: a retry keeps those that were done
    items: dict[int, ItemFinished] = field(default_factory=dict)


@dataclass
class RunState:
    """What a run's events say about it: everything a reader or a resume needs."""

    started: RunStarted | None = None
    state: str | None = None  # where the run is (or goes next, when `entered` is False)
    entered: bool = False
    path: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # highest attempt number by state
    outputs: dict[str, Any] = field(default_factory=dict)  # latest accepted output by state
    outputs_on_disk: dict[str, int] = field(default_factory=dict)  # done, output not in event
    states: dict[str, StateRecord] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    status: str = "running"  # running | interrupted | succeeded | failed
    finished: RunFinished | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    visit: Visit = field(default_factory=Visit)
    #: unfinished (state, attempt) → pgid; a fan-out item's as (`state[index]`, attempt)
    processes: dict[tuple[str, int], int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # every event folded, in order
    _last_detail: dict[str, str | None] = field(default_factory=dict)

    @property
    def final(self) -> str | None:
        return self.finished.final if self.finished is not None else None

    @property
    def message(self) -> str | None:
        return self.finished.message if self.finished is not None else None

    @property
    def current_state(self) -> str | None:
        return self.path[-1] if self.path else self.state

    @property
    def taken(self) -> list[tuple[str, str, str]]:
        return [(t.source, t.event, t.target) for t in self.transitions]

    def failure_cause(self) -> str | None:
        """Why the run took its last transition: the error of the attempt or guard that sent it
        there (None when there is none, or an output was routed on purpose by `on done`)."""
        last = self.transitions[-1] if self.transitions else None
        if last is None or last.event == "done":
            return None
        detail = self._last_detail.get(last.source)
        if not detail:
            return None
        text = " ".join(detail.split())
        return f"last error in '{last.source}': " + (text if len(text) <= 300 else
                                                      text[:299] + "…")

    def apply(self, event: Event) -> None:
        """Fold one more event into the state."""
        self.events.append(event)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """The `RunState` after `events` (continuing `state` when given)."""
    run = state if state is not None else RunState()
    for event in events:
        run.apply(event)
    return run


def _record(run: RunState, name: str) -> StateRecord:
    rec = run.states.get(name)
    if rec is None:
        rec = run.states[name] = StateRecord(name)
    return rec


def _on_run_started(run: RunState, ev: RunStarted) -> None:
    run.started = ev  # `state` stays None: the run goes to its machine's start next
    run.status = "running"


def _on_state_entered(run: RunState, ev: StateEntered) -> None:
    run.state, run.entered = ev.state, True
    run.path.append(ev.state)
    run.visit = Visit()
    if not ev.final:
        rec = _record(run, ev.state)
        rec.visits += 1
        rec.items_running.clear()


def _on_attempt_started(run: RunState, ev: AttemptStarted) -> None:
    run.attempts[ev.state] = max(run.attempts.get(ev.state, 0), ev.attempt)
    _record(run, ev.state).attempts.append(AttemptRecord(ev.attempt, started=ev.ts or None))
    visit = run.visit
    if visit.pending is not None:
        visit.retried.append(visit.pending)  # the retry decision that was made
        # a retry runs the failed items again; an attempt cut short keeps all it finished
        visit.items = {i: it for i, it in visit.items.items() if it.outcome == "done"}
    visit.pending, visit.backoff, visit.running = None, None, ev


def _on_process_started(run: RunState, ev: ProcessStarted) -> None:
    state = ev.state if ev.item is None else f"{ev.state}[{ev.item}]"
    run.processes[(state, ev.attempt)] = ev.pgid


def _on_item_started(run: RunState, ev: ItemStarted) -> None:
    _record(run, ev.state).items_running.add(ev.index)


def _on_item_finished(run: RunState, ev: ItemFinished) -> None:
    rec = _record(run, ev.state)
    rec.items[ev.index] = ev
    rec.items_running.discard(ev.index)
    rec.cost_usd += ev.cost_usd  # every item counts, so budgets see them as they finish
    rec.input_tokens += ev.input_tokens
    rec.output_tokens += ev.output_tokens
    run.cost_usd += ev.cost_usd
    run.input_tokens += ev.input_tokens
    run.output_tokens += ev.output_tokens
    run.processes.pop((f"{ev.state}[{ev.index}]", ev.attempt), None)
    if run.state == ev.state:
        run.visit.items[ev.index] = ev


def _on_attempt_finished(run: RunState, ev: AttemptFinished) -> None:
    rec = _record(run, ev.state)
    att = next((a for a in rec.attempts if a.attempt == ev.attempt), None)
    if att is None:
        att = AttemptRecord(ev.attempt)
        rec.attempts.append(att)
    att.outcome, att.error, att.finished = ev.outcome, ev.error, ev.ts or None
    att.cost_usd, att.input_tokens, att.output_tokens = (
        ev.cost_usd, ev.input_tokens, ev.output_tokens)
    rec.cost_usd += ev.cost_usd
    rec.input_tokens += ev.input_tokens
    rec.output_tokens += ev.output_tokens
    run.cost_usd += ev.cost_usd
    run.input_tokens += ev.input_tokens
    run.output_tokens += ev.output_tokens
    run.attempts[ev.state] = max(run.attempts.get(ev.state, 0), ev.attempt)
    run.processes.pop((ev.state, ev.attempt), None)
    run.processes = {k: v for k, v in run.processes.items()
                     if not (k[1] == ev.attempt and k[0].startswith(ev.state + "["))}
    _record(run, ev.state).items_running.clear()
    run._last_detail[ev.state] = ev.error or (ev.problems[0] if ev.problems else None)
    if ev.outcome == "done":
        if ev.has_output:
            run.outputs[ev.state] = ev.output
            run.outputs_on_disk.pop(ev.state, None)
        else:
            run.outputs_on_disk[ev.state] = ev.attempt
    run.visit.pending, run.visit.running, run.visit.backoff = ev, None, None


def _on_backoff(run: RunState, ev: Backoff) -> None:
    run.visit.backoff = ev


def _on_guard_failed(run: RunState, ev: GuardFailed) -> None:
    run._last_detail[ev.state] = ev.error


def _on_transition(run: RunState, ev: Transition) -> None:
    run.transitions.append(ev)
    run.state, run.entered = ev.target, False
    run.visit = Visit()


def _on_workspace_restored(run: RunState, ev: WorkspaceRestored) -> None:
    if ev.outcome == "done":
        run.outputs[ev.state] = ev.output
        run.outputs_on_disk.pop(ev.state, None)


def _on_run_resumed(run: RunState, ev: RunResumed) -> None:
    run.status = "running"


def _on_run_interrupted(run: RunState, ev: RunInterrupted) -> None:
    run.status = "interrupted"


def _on_run_finished(run: RunState, ev: RunFinished) -> None:
    run.status, run.finished = ev.status, ev
    run.processes.clear()


_HANDLERS: dict[type[Event], Callable[[RunState, Any], None]] = {
    RunStarted: _on_run_started,
    RunResumed: _on_run_resumed,
    StateEntered: _on_state_entered,
    AttemptStarted: _on_attempt_started,
    ProcessStarted: _on_process_started,
    ItemStarted: _on_item_started,
    ItemFinished: _on_item_finished,
    AttemptFinished: _on_attempt_finished,
    Backoff: _on_backoff,
    GuardFailed: _on_guard_failed,
    Transition: _on_transition,
    WorkspaceRestored: _on_workspace_restored,
    RunInterrupted: _on_run_interrupted,
    RunFinished: _on_run_finished,
}


def epoch(iso: str) -> float | None:
    """An event's `ts` as epoch seconds (None when it is not a timestamp)."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
