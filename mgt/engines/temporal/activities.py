"""Activity requests from `MachineWorkflow` → attempts run on this worker → their events.

    mgt.claim    run id → this worker's own task queue (the run's attempts go there)
    mgt.attempt  a state, its attempt number and the run's outputs so far → the
                 attempt_finished event (as a journal line) the interpreter wrote for it

An attempt is run by the interpreter's own attempt code, over a run directory
this worker keeps for the run (`<work_dir>/<run id>`: prompts, requests, outputs,
files a step leaves for the next). An output of at least `[temporal] store_min_bytes`
goes to the store, and only its reference to the history. The attempt runs in a
thread of a pool the size of the worker's cap while the activity heartbeats; a
cancelled activity ends the attempt's processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mgt.engines.temporal.machines import machine_for
from mgt.engines.temporal.store import put, resolve
from mgt.engines.temporal.workflow import ATTEMPT, CLAIM, WORKER_LOST

__all__ = ["Attempts"]


class Attempts:
    """The activities of one worker process."""

    def __init__(self, own_queue: str, work_dir: Path, max_concurrent: int) -> None:
        self.own_queue = own_queue
        self.work_dir = work_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent,
                                                          thread_name_prefix="mgt-attempt")
        self._run_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @activity.defn(name=CLAIM)
    async def claim(self, run_id: str) -> str:
        activity.logger.info("run %s claimed by %s", run_id, self.own_queue)
        return self.own_queue

    @activity.defn(name=ATTEMPT)
    async def attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        info = activity.info()
        interval = (info.heartbeat_timeout.total_seconds() / 3
                    if info.heartbeat_timeout else 10.0)
        loop = asyncio.get_running_loop()
        pgids: dict[tuple[str, int], int] = {}
        future = loop.run_in_executor(self.pool, self._run, request, pgids)
        try:
            while True:
                activity.heartbeat(request["state"], request["attempt"])
                done, _ = await asyncio.wait({future}, timeout=max(interval, 0.1))
                if done:
                    return future.result()
        except asyncio.CancelledError:
            from mgt.executors.process import end_leftovers

            end_leftovers(request["run_id"], pgids.values())
            if activity.is_worker_shutdown():  # not the run's cancel: move it elsewhere
                raise ApplicationError("the worker is shutting down", type=WORKER_LOST,
                                       non_retryable=True) from None
            raise

    def _lock_of(self, run_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._run_locks.setdefault(run_id, threading.Lock())

    def _run(self, request: dict[str, Any], pgids: dict[tuple[str, int], int]
             ) -> dict[str, Any]:
        """One attempt, blocking: the interpreter's attempt over this worker's run directory."""
        from mgt.errors import MgtError
        from mgt.runtime.cli import _executor_factory, _needs_model
        from mgt.runtime.events import AttemptFinished, ProcessStarted
        from mgt.runtime.interpreter import Interpreter
        from mgt.runtime.journal import RunJournal

        machine = machine_for(request["machine_path"], request["machine_sha256"])
        run_id: str = request["run_id"]
        state: str = request["state"]
        spec = machine.states.get(state)
        if spec is None:
            raise ApplicationError(f"machine {machine.name} has no state {state!r}",
                                   non_retryable=True)
        cwd = Path(request["cwd"])
        if not cwd.is_dir():  # a worker on another machine: the run's own directory
            cwd = self.work_dir / run_id
        with self._lock_of(run_id):
            try:
                self.work_dir.mkdir(parents=True, exist_ok=True)
                if (self.work_dir / run_id).is_dir():
                    journal = RunJournal.open(self.work_dir, run_id)
                else:
                    journal = RunJournal.create(self.work_dir, run_id, {
                        "machine": {"name": machine.name, "path": request["machine_path"],
                                    "sha256": request["machine_sha256"]},
                        "engine": "temporal", "status": "running"})
            except MgtError as err:
                raise ApplicationError(str(err)) from None
            try:
                factory = _executor_factory(request.get("executor"),
                                            dict(request.get("executor_options") or {}),
                                            check=_needs_model(machine))

                def watch(event: dict[str, Any], totals: Any) -> None:
                    if event.get("type") == ProcessStarted.type:
                        pgids[(event["state"], event["attempt"])] = event["pgid"]

                from mgt.runtime.inputs import resolve_inputs

                inputs = resolve_inputs(machine, stored=request["inputs"],
                                        cwd=Path(request["cwd"]))
                interp = Interpreter(machine, journal, inputs, executors=factory,
                                     budget_usd=request.get("budget_usd"), cwd=cwd,
                                     on_event=watch)
                run = interp.run
                # the workflow's fold is the truth: this directory only holds the files
                store = request.get("store")
                run.outputs.clear()
                run.outputs.update({name: resolve(store, value)
                                    for name, value in request["outputs"].items()})
                run.attempts.clear()
                run.attempts.update(request["attempts"])
                run.attempts[state] = int(request["attempt"]) - 1
                run.cost_usd = float(request["cost_usd"])
                before = len(run.events)
                interp._attempt(spec, request.get("feedback"))
                finished = [e for e in run.events[before:] if isinstance(e, AttemptFinished)]
                if not finished:
                    raise ApplicationError(f"attempt {state}/{request['attempt']} left no "
                                           "attempt_finished event")
                event = finished[-1].to_json()
                return _stored(event, store, request.get("store_min_bytes"))
            except MgtError as err:
                raise ApplicationError(str(err)) from None
            finally:
                journal.close()


def _stored(event: dict[str, Any], store: str | None, min_bytes: int | None) -> dict[str, Any]:
    """The event with a large output put in the store and a reference in its place."""
    output = event.get("output")
    if store is None or output is None:
        return event
    size = len(json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size < (min_bytes or 0):
        return event
    return {**event, "output": put(Path(store), output)}
