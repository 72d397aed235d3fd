"""Workflow input (a pinned machine file, inputs) → the run's typed events and its end.

`MachineWorkflow` is the interpreter's loop with the I/O taken out: it folds the
events it emits into a `RunState` (the same fold the file journal uses), asks the
pure `decide()` what follows each outcome, sleeps a backoff with `workflow.sleep`,
and runs each attempt as the `mgt.attempt` activity. So retries, guards, backoff
and budgets are decided by the same code as in a local run, and replay rebuilds
the same decisions from the activities' recorded results.

Work bound to files: a run's attempts all go to one worker, the one that answered
the run's `mgt.claim` on the shared task queue (each worker also polls a queue of
its own). When that worker is lost (no heartbeat, its queue unserved, or it is
shutting down) the attempt under way counts as cut short, the run claims another
worker, and the next attempt starts there from a fresh run directory.

A large output travels as a reference to `[temporal] store` (`store.py`), content-
addressed, so the workflow resolves it deterministically where a guard reads it.

The machine is read through `machine_for` (path + sha256, cached per process): the
`.mgt` file is the workflow's code, and a worker whose copy differs fails the
workflow task until the right file is in place, as with any other code change.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from mgt.compile.model import IMPLICIT_FAIL, FormulaStep, Machine, StateSpec
    from mgt.engines.temporal.machines import machine_for
    from mgt.engines.temporal.store import StoredOutputs, resolve
    from mgt.runtime.decide import Retry, Router, decide, outcome_of
    from mgt.runtime.events import (
        AttemptFinished,
        AttemptStarted,
        Backoff,
        Event,
        GuardFailed,
        OtherEvent,
        RunFinished,
        RunInterrupted,
        RunStarted,
        RunState,
        StateEntered,
        Transition,
        parse_event,
    )

__all__ = ["ATTEMPT", "CLAIM", "WORKER_LOST", "WORKFLOW", "MachineWorkflow", "timeout_of"]

WORKFLOW = "mgt.run"
CLAIM = "mgt.claim"
ATTEMPT = "mgt.attempt"
#: The error type of an attempt cut short because its worker is shutting down (SIGTERM).
WORKER_LOST = "WorkerLost"
#: Timeout for a step whose state and formula give none (as the interpreter's).
DEFAULT_TIMEOUT_SECONDS = 600.0
#: How long past a state's own timeout an attempt may run before it is taken as lost
#: (the executor enforces the timeout itself and reports `timeout`).
GRACE_SECONDS = 60.0
#: How many workers a run may lose in a row, without one attempt finishing, before it fails.
MAX_LOST = 5


def timeout_of(machine: Machine, spec: StateSpec) -> float:
    """A state's timeout in seconds: the state's, else its formula's, else the default."""
    if spec.timeout_seconds:
        return spec.timeout_seconds
    formula = machine.formulas.get(spec.run.target or "") if spec.run.kind == "formula" \
        else None
    if isinstance(spec.step, FormulaStep):
        formula = spec.step.formula
    if formula is not None and formula.execution.timeout_seconds:
        return float(formula.execution.timeout_seconds)
    return DEFAULT_TIMEOUT_SECONDS


@workflow.defn(name=WORKFLOW, sandboxed=False)
class MachineWorkflow:
    """One run. Input: {run_id (else the workflow id), machine_path, machine_sha256, inputs, budget_usd, cwd,
    executor, executor_options, task_queue, heartbeat_seconds, claim_seconds, store,
    store_min_bytes}."""

    def __init__(self) -> None:
        self.run = RunState()
        self.params: dict[str, Any] = {}
        self.worker_queue: str | None = None

    # ------------------------------------------------------------------ queries

    @workflow.query(name="events")
    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """The run's events after seq `since`, as journal lines."""
        return [e.to_json() for e in self.run.events if e.seq > since]

    # ------------------------------------------------------------------ the loop

    @workflow.run
    async def run_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        # a run a Temporal Schedule started has no run id of its own: its workflow id is it
        self.params = params = {**params,
                                "run_id": params.get("run_id") or workflow.info().workflow_id}
        machine = machine_for(params["machine_path"], params["machine_sha256"])
        router = Router(_chart(machine))
        run = self.run
        for name in machine.states:  # `STATE.attempts` is 0, not null, before STATE runs
            run.attempts.setdefault(name, 0)
        from pathlib import Path

        from mgt.compile.chart import GuardScope
        from mgt.runtime.inputs import resolve_inputs

        # guards read typed inputs, as in a local run (the history holds them as JSON)
        inputs = resolve_inputs(machine, stored=params["inputs"],
                                cwd=Path(params["cwd"]))
        store = params.get("store")
        scope = GuardScope(inputs=inputs, outputs=StoredOutputs(run.outputs, store),
                           attempts=run.attempts)
        self._emit(RunStarted(machine=machine.name, machine_path=params["machine_path"],
                              machine_sha256=machine.source_hash, inputs=params["inputs"]))
        try:
            while True:
                state = run.state or machine.start
                if machine.is_final(state) or state == IMPLICIT_FAIL:
                    return self._finish(machine, state)
                if not run.entered:
                    self._emit(StateEntered(state=state))
                spec = machine.states[state]
                pending = run.visit.pending
                if pending is None:
                    await self._attempt(machine, spec, None)
                    continue
                outcome = outcome_of(pending)
                outcome.output = resolve(store, outcome.output)  # guards read the value
                action = decide(router, spec, [e.outcome for e in run.visit.retried],
                                outcome, scope, attempt=pending.attempt,
                                timeout_seconds=timeout_of(machine, spec))
                if isinstance(action, Retry):
                    if action.backoff_seconds:
                        self._emit(Backoff(state=state, seconds=action.backoff_seconds))
                        await workflow.sleep(action.backoff_seconds)
                    await self._attempt(machine, spec, action.feedback)
                    continue
                for event, problem in action.guard_errors:
                    self._emit(GuardFailed(state=state, event=event, error=problem))
                self._emit(Transition(source=state, event=action.event, target=action.target,
                                      guard=action.guard))
        except asyncio.CancelledError:
            self._emit(RunInterrupted(state=run.current_state or machine.start,
                                      signal="cancel"))
            raise

    async def _attempt(self, machine: Machine, spec: StateSpec, feedback: str | None) -> None:
        """One attempt, made again on another worker (next number) each time one is lost."""
        params = self.params
        heartbeat = float(params.get("heartbeat_seconds") or 30.0)
        claim = float(params.get("claim_seconds") or 60.0)
        timeout = timeout_of(machine, spec)
        for _ in range(MAX_LOST):
            if self.worker_queue is None:
                self.worker_queue = await workflow.execute_activity(
                    CLAIM, params["run_id"], result_type=str,
                    task_queue=params["task_queue"],
                    start_to_close_timeout=timedelta(seconds=claim),
                    retry_policy=RetryPolicy(maximum_attempts=0),
                )
            number = self.run.attempts.get(spec.name, 0) + 1
            self._emit(AttemptStarted(state=spec.name, attempt=number, kind=spec.run.kind))
            request = {
                "run_id": params["run_id"], "machine_path": params["machine_path"],
                "machine_sha256": params["machine_sha256"], "inputs": params["inputs"],
                "cwd": params["cwd"], "budget_usd": params.get("budget_usd"),
                "executor": params.get("executor"),
                "executor_options": params.get("executor_options") or {},
                "state": spec.name, "attempt": number, "feedback": feedback,
                "outputs": self.run.outputs, "attempts": self.run.attempts,
                "cost_usd": self.run.cost_usd,
                "store": params.get("store"), "store_min_bytes": params.get("store_min_bytes"),
            }
            try:
                result = await workflow.execute_activity(
                    ATTEMPT, request, result_type=dict,
                    task_queue=self.worker_queue,
                    schedule_to_start_timeout=timedelta(seconds=claim),
                    start_to_close_timeout=timedelta(seconds=timeout + GRACE_SECONDS),
                    heartbeat_timeout=timedelta(seconds=heartbeat),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, CancelledError):  # the run itself is being cancelled
                    raise asyncio.CancelledError(str(cause)) from err
                lost = isinstance(cause, TimeoutError) and cause.type in {
                    TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START}
                if lost or (isinstance(cause, ApplicationError) and cause.type == WORKER_LOST):
                    self._emit(OtherEvent(raw={"type": "worker_lost", "state": spec.name,
                                               "attempt": number, "queue": self.worker_queue}))
                    self.worker_queue = None  # claim another worker; it starts afresh
                    continue
                message = str(cause or err)
                if isinstance(cause, TimeoutError):
                    self._finished(spec.name, number, "timeout",
                                   f"the attempt ran past its timeout of {timeout:g}s")
                else:
                    self._finished(spec.name, number, "error",
                                   f"the attempt failed on its worker: {message}")
                return
            self._emit(parse_event(result))
            return
        self._finished(spec.name, self.run.attempts.get(spec.name, 0), "error",
                       f"lost {MAX_LOST} workers in a row", retryable=False)

    def _finished(self, state: str, attempt: int, outcome: str, error: str,
                  *, retryable: bool = True) -> None:
        self._emit(AttemptFinished(state=state, attempt=attempt, outcome=outcome, error=error,
                                   retryable=retryable))

    def _finish(self, machine: Machine, final: str) -> dict[str, Any]:
        spec = machine.finals.get(final)
        status = "succeeded" if spec is not None and spec.status == "succeed" else "failed"
        message = spec.message if spec is not None else None
        if final == IMPLICIT_FAIL:
            for step in reversed(self.run.transitions):
                if step.target == IMPLICIT_FAIL:
                    message = (f"state '{step.source}' ended with '{step.event}' "
                               "and has no transition for it")
                    break
        if not self.run.entered:
            self._emit(StateEntered(state=final, final=True))
        self._emit(RunFinished(status=status, final=final, message=message))
        return {"status": status, "final": final, "message": message,
                "events": self.events(0)}

    def _emit(self, event: Event) -> None:
        """Stamp and fold one event, as the file journal does (`ts` from the workflow clock)."""
        seq = len(self.run.events) + 1
        ts = workflow.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        data = {"seq": seq, "ts": ts, **event.raw} if isinstance(event, OtherEvent) \
            else replace(event, seq=seq, ts=ts).to_json()
        self.run.apply(parse_event(data))


def _chart(machine: Machine) -> Any:
    from mgt.compile.chart import build_chart

    return build_chart(machine)
