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
    from mgt.compile.model import IMPLICIT_FAIL, Machine, StateSpec
    from mgt.engines.temporal.machines import machine_for
    from mgt.engines.temporal.store import StoredOutputs, resolve
    from mgt.extensions import WORKSPACE_BUILTINS
    from mgt.runtime.decide import Retry, Router, decide, outcome_of
    from mgt.runtime.events import (
        AttemptFinished,
        AttemptStarted,
        Backoff,
        Event,
        GuardFailed,
        ItemFinished,
        ItemStarted,
        OtherEvent,
        RunFinished,
        RunInterrupted,
        RunStarted,
        RunState,
        StateEntered,
        Transition,
        WorkspaceRestored,
        parse_event,
    )
    from mgt.runtime.fanout import FanOutItem, items_of, join, policy_of
    from mgt.runtime.interpreter import timeout_of

__all__ = ["ATTEMPT", "CLAIM", "ITEM", "WORKER_LOST", "WORKFLOW", "MachineWorkflow",
           "timeout_of"]

WORKFLOW = "mgt.run"
CLAIM = "mgt.claim"
ATTEMPT = "mgt.attempt"
ITEM = "mgt.item"
#: The error type of an attempt cut short because its worker is shutting down (SIGTERM).
WORKER_LOST = "WorkerLost"
#: How long past a state's own timeout an attempt may run before it is taken as lost
#: (the executor enforces the timeout itself and reports `timeout`).
GRACE_SECONDS = 60.0
#: How many workers a run may lose in a row, without one attempt finishing, before it fails.
MAX_LOST = 5




@workflow.defn(name=WORKFLOW, sandboxed=False)
class MachineWorkflow:
    """One run. Input: {run_id (else the workflow id), machine_path, machine_sha256, inputs,
    budget_usd, cwd, executor, executor_options, task_queue, heartbeat_seconds,
    claim_seconds, store, store_min_bytes, spread}."""

    def __init__(self) -> None:
        self.run = RunState()
        self.params: dict[str, Any] = {}
        self.worker_queue: str | None = None
        self._claiming: asyncio.Lock | None = None
        self._moved = False  # the run lost the worker it had claimed
        self.machine: Machine | None = None
        self.scope: Any = None

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
        # the definition files are checked where they are used, by the worker of each
        # attempt: failing here would fail the workflow task over and over, not the run
        self.machine = machine = machine_for(params["machine_path"], params["machine_sha256"])
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
        self.scope = scope = GuardScope(inputs=inputs,
                                        outputs=StoredOutputs(run.outputs, store),
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

    async def _claimed(self) -> str:
        """The queue of the worker the run's file-bound work goes to (claimed when none is:
        once, however many items found their worker lost at the same time)."""
        if self._claiming is None:
            self._claiming = asyncio.Lock()
        async with self._claiming:
            for _ in range(MAX_LOST):
                if self.worker_queue is not None:
                    break
                queue: str = await workflow.execute_activity(
                    CLAIM, self.params["run_id"], result_type=str,
                    task_queue=self.params["task_queue"],
                    start_to_close_timeout=timedelta(
                        seconds=float(self.params.get("claim_seconds") or 60.0)),
                    retry_policy=RetryPolicy(maximum_attempts=0),
                )
                if not self._moved or await self._restore(queue):
                    self.worker_queue = queue
            if self.worker_queue is None:  # every worker was lost while restoring: go on
                self.worker_queue = queue
            return self.worker_queue

    async def _restore(self, queue: str) -> bool:
        """Make the run's workspace again on the worker of `queue`, which takes over a run
        whose worker was lost: each finished state whose step makes it
        (`WORKSPACE_BUILTINS`, e.g. prepare-repo's scratch copy) runs there once more, in
        the order the run took them, and its new output replaces the old. False when
        this worker was lost too."""
        machine = self.machine
        assert machine is not None
        done = [name for name in dict.fromkeys(self.run.path) if name in self.run.outputs]
        for name in done:
            spec = machine.states.get(name)
            if spec is None or spec.run.kind != "builtin" \
                    or spec.run.target not in WORKSPACE_BUILTINS:
                continue
            number = self.run.attempts.get(name, 0)
            try:
                result = await self._execute(ATTEMPT, self._request(spec, number, None), queue,
                                             timeout_of(machine, spec))
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, CancelledError):
                    raise asyncio.CancelledError(str(cause)) from err
                if _lost(cause):
                    self._emit(OtherEvent(raw={"type": "worker_lost", "state": name,
                                               "attempt": number, "queue": queue}))
                    return False
                self._emit(WorkspaceRestored(state=name, attempt=number, outcome="error",
                                             error=f"on its new worker: {cause or err}"))
                continue
            event = parse_event(result)
            if isinstance(event, AttemptFinished):
                self._emit(WorkspaceRestored(
                    state=name, attempt=number, outcome=event.outcome,
                    output=event.output if event.outcome == "done" else None,
                    error=event.error))
        self._moved = False
        return True

    def _request(self, spec: StateSpec, number: int, feedback: str | None,
                 **more: Any) -> dict[str, Any]:
        params = self.params
        return {
            "run_id": params["run_id"], "machine_path": params["machine_path"],
            "machine_sha256": params["machine_sha256"],
            "definitions": params.get("definitions"), "inputs": params["inputs"],
            "cwd": params["cwd"], "budget_usd": params.get("budget_usd"),
            "executor": params.get("executor"),
            "executor_options": params.get("executor_options") or {},
            "state": spec.name, "attempt": number, "feedback": feedback,
            "outputs": self.run.outputs, "attempts": self.run.attempts,
            "cost_usd": self.run.cost_usd,
            "store": params.get("store"), "store_min_bytes": params.get("store_min_bytes"),
            **more,
        }

    async def _execute(self, name: str, request: dict[str, Any], queue: str,
                       timeout: float) -> dict[str, Any]:
        heartbeat = float(self.params.get("heartbeat_seconds") or 30.0)
        claim = float(self.params.get("claim_seconds") or 60.0)
        result: dict[str, Any] = await workflow.execute_activity(
            name, request, result_type=dict,
            task_queue=queue,
            schedule_to_start_timeout=timedelta(seconds=claim),
            start_to_close_timeout=timedelta(seconds=timeout + GRACE_SECONDS),
            heartbeat_timeout=timedelta(seconds=heartbeat),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return result

    async def _attempt(self, machine: Machine, spec: StateSpec, feedback: str | None) -> None:
        """One attempt, made again on another worker (next number) each time one is lost."""
        if spec.fan_out is not None or spec.branches:
            await self._fan_out(machine, spec, feedback)
            return
        timeout = timeout_of(machine, spec)
        children: dict[str, str] = {}
        for _ in range(MAX_LOST):
            queue = await self._claimed()
            number = self.run.attempts.get(spec.name, 0) + 1
            self._emit(AttemptStarted(state=spec.name, attempt=number, kind=spec.run.kind))
            try:
                result = await self._execute(
                    ATTEMPT, self._request(spec, number, feedback, children=children),
                    queue, timeout)
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, CancelledError):  # the run itself is being cancelled
                    raise asyncio.CancelledError(str(cause)) from err
                if _lost(cause):
                    self._lost(spec.name, number, queue)
                    children = _children_of(cause) or children
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

    def _lost(self, state: str, attempt: int, queue: str, index: int | None = None) -> None:
        """The worker of `queue` is gone: journal it, and let the next work claim another
        (which starts afresh) unless that happened already."""
        raw: dict[str, Any] = {"type": "worker_lost", "state": state, "attempt": attempt,
                               "queue": queue}
        if index is not None:
            raw["item"] = index
        self._emit(OtherEvent(raw=raw))
        if self.worker_queue == queue:
            self.worker_queue = None
            self._moved = True

    # ------------------------------------------------------------------ fan-out

    async def _fan_out(self, machine: Machine, spec: StateSpec, feedback: str | None) -> None:
        """One attempt of a fan-out (or a state of branches): each item one activity, `max`
        at a time, joined as the local engine joins them (`mgt.runtime.fanout`).

        Items go to the run's worker (they may read its files) unless the state is listed
        in `[temporal] spread`, then to the shared queue (any worker). An item whose worker
        is lost is made again (on another); finished items are kept.
        """
        number = self.run.attempts.get(spec.name, 0) + 1
        self._emit(AttemptStarted(state=spec.name, attempt=number, kind=spec.run.kind))
        jobs = items_of(spec, self.scope.names())
        if not isinstance(jobs, list):
            self._finished(spec.name, number, jobs.event, jobs.error or "",
                           retryable=jobs.retryable)
            return
        policy = policy_of(spec)
        # a retry keeps the items that were done (the fold kept them for this visit)
        results: dict[int, ItemFinished] = {
            i: ev for i, ev in self.run.visit.items.items() if i < len(jobs)}
        todo = [job for job in jobs if job.index not in results]
        gate = asyncio.Semaphore(max(1, min(policy.max or len(todo), len(todo) or 1)))
        stopped = policy.stops(results.values())
        tasks: dict[int, asyncio.Task[None]] = {}
        active: set[int] = set()  # items whose activity is under way (a policy stop cancels)
        # an item's activity makes its own retries: room for all of them and their backoffs
        timeout = timeout_of(machine, spec) * (1 + sum(r.count for r in spec.retries)) \
            + sum(r.count * (r.backoff_seconds or 0.0) for r in spec.retries)
        spread = spec.name in (self.params.get("spread") or ())

        async def one(job: FanOutItem) -> None:
            nonlocal stopped
            async with gate:
                if stopped:
                    self._item_done(spec, number, job, "cancelled",
                                    "cancelled after an earlier item failed")
                    results[job.index] = self.run.visit.items[job.index]
                    return
                self._emit(ItemStarted(state=spec.name, attempt=number, index=job.index,
                                       key=job.key))
                active.add(job.index)
                try:
                    event = await self._item(spec, number, job, feedback, timeout, spread)
                except asyncio.CancelledError:
                    if not stopped:  # the run is being cancelled
                        raise
                    self._item_done(spec, number, job, "cancelled",
                                    "cancelled after an earlier item failed")
                    results[job.index] = self.run.visit.items[job.index]
                    return
                finally:
                    active.discard(job.index)
                self._emit(event)
                results[job.index] = event
                if not stopped and policy.stops(results.values()):
                    stopped = True
                    for index in sorted(active):  # those waiting for the gate see `stopped`
                        tasks[index].cancel()

        for job in todo:
            tasks[job.index] = asyncio.create_task(one(job))
        await asyncio.gather(*tasks.values())
        outcome = join(spec, jobs, results)
        self._emit(AttemptFinished(state=spec.name, attempt=number, outcome=outcome.event,
                                   error=outcome.error, retryable=outcome.retryable,
                                   output=outcome.output))

    async def _item(self, spec: StateSpec, number: int, job: FanOutItem,
                    feedback: str | None, timeout: float, spread: bool) -> ItemFinished:
        """Item `job` of attempt `number`, made again each time its worker is lost."""
        children: dict[str, str] = {}
        for _ in range(MAX_LOST):
            queue = self.params["task_queue"] if spread else await self._claimed()
            request = self._request(spec, number, feedback, index=job.index, spread=spread,
                                    children=children)
            try:
                result = await self._execute(ITEM, request, queue, timeout)
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, CancelledError):
                    raise asyncio.CancelledError(str(cause)) from err
                if _lost(cause):
                    self._lost(spec.name, number, queue, job.index)
                    children = _children_of(cause) or children
                    continue
                return self._item_event(spec, number, job, "error",
                                        f"the item failed on its worker: {cause or err}")
            event = parse_event(result)
            if not isinstance(event, ItemFinished):
                return self._item_event(spec, number, job, "error",
                                        f"the worker answered a {event.type} event")
            return event
        return self._item_event(spec, number, job, "error", f"lost {MAX_LOST} workers in a row")

    def _item_event(self, spec: StateSpec, number: int, job: FanOutItem, outcome: str,
                    error: str) -> ItemFinished:
        return ItemFinished(state=spec.name, attempt=number, index=job.index, key=job.key,
                            outcome=outcome, error=error)

    def _item_done(self, spec: StateSpec, number: int, job: FanOutItem, outcome: str,
                   error: str) -> None:
        self._emit(self._item_event(spec, number, job, outcome, error))

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


def _children_of(cause: BaseException | None) -> dict[str, str]:
    """The child-run journals a lost activity last reported (its heartbeat details, or the
    details of the error a stopping worker raised), for the next one to resume them."""
    details: Any = ()
    if isinstance(cause, TimeoutError):
        details = cause.last_heartbeat_details
    elif isinstance(cause, ApplicationError):
        details = cause.details
    found = details[-1] if details else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def _lost(cause: BaseException | None) -> bool:
    """Whether an activity failed because its worker was lost (silent, gone or stopping)."""
    if isinstance(cause, TimeoutError):
        return cause.type in {TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START}
    return isinstance(cause, ApplicationError) and cause.type == WORKER_LOST


def _chart(machine: Machine) -> Any:
    from mgt.compile.chart import build_chart

    return build_chart(machine)
