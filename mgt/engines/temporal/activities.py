"""Activity requests from `MachineWorkflow` → attempts and fan-out items run on this worker →
their events.

    mgt.claim    run id → this worker's own task queue (the run's file-bound work goes there)
    mgt.attempt  a state, its attempt number and the run's outputs so far → the
                 attempt_finished event (as a journal line) the interpreter wrote for it
    mgt.item     a fan-out state, its attempt, an item index and the run's outputs → the
                 item_finished event of that item (its retries included)

Work is done by the interpreter's own code (`Interpreter.run_attempt`, `run_item`),
over a run directory this worker keeps for the run (`<work_dir>/<run id>`: prompts,
requests, outputs, files a step leaves for the next). The activities of one run under
way on this worker share that directory's journal and interpreter (a session), so a
fan-out's items run side by side in it. An item of a state listed in `[temporal]
spread` may run on any worker: it gets a directory of its own
(`<work_dir>/.items/<run id>.<state>.<attempt>.<index>`) and nothing of the run's.

An output of at least `[temporal] store_min_bytes` goes to the store, and only its
reference to the history. Work runs in a thread of a pool the size of the worker's
cap while the activity heartbeats; a cancelled activity ends the processes it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mgt.engines.temporal.machines import machine_for
from mgt.engines.temporal.store import put, resolve
from mgt.engines.temporal.workflow import ATTEMPT, CLAIM, ITEM, WORKER_LOST
from mgt.runtime.interpreter import FanOutControl

if TYPE_CHECKING:
    from mgt.runtime.interpreter import Interpreter
    from mgt.runtime.journal import RunJournal

__all__ = ["Attempts"]

#: where spread items keep their own directories, under the work directory
ITEMS_DIR = ".items"


@dataclass
class _Session:
    """A run's journal and interpreter on this worker, while activities of the run are under
    way; the process groups they started, by (state, attempt, item index or None)."""

    journal: RunJournal
    interp: Interpreter
    users: int = 0
    pgids: dict[tuple[str, int, int | None], int] = field(default_factory=dict)


class Attempts:
    """The activities of one worker process."""

    def __init__(self, own_queue: str, work_dir: Path, max_concurrent: int) -> None:
        self.own_queue = own_queue
        self.work_dir = work_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent,
                                                          thread_name_prefix="mgt-attempt")
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    @activity.defn(name=CLAIM)
    async def claim(self, run_id: str) -> str:
        if activity.is_worker_shutdown():  # stopping: its queue is about to go unserved
            raise ApplicationError("this worker is stopping; another will take the run")
        activity.logger.info("run %s claimed by %s", run_id, self.own_queue)
        return self.own_queue

    @activity.defn(name=ATTEMPT)
    async def attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._heartbeating(request, self._attempt)

    @activity.defn(name=ITEM)
    async def item(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._heartbeating(request, self._item)

    async def _heartbeating(self, request: dict[str, Any],
                            body: Callable[[dict[str, Any], FanOutControl], dict[str, Any]]
                            ) -> dict[str, Any]:
        """`body` on a pool thread, heartbeating until it returns; ended when cancelled."""
        info = activity.info()
        interval = (info.heartbeat_timeout.total_seconds() / 3
                    if info.heartbeat_timeout else 10.0)
        loop = asyncio.get_running_loop()
        control = FanOutControl()
        future = loop.run_in_executor(self.pool, body, request, control)
        children = _Children(self._run_dir_of(request), request)
        sent: dict[str, str] | None = None
        last = float("-inf")
        try:
            while True:
                # at the interval, and as soon as a child run has moved on (the worker sends
                # at most one heartbeat a second: `mgt.engines.temporal.worker`)
                now, seen = loop.time(), children.snapshot()
                if seen != sent or now - last >= interval:
                    activity.heartbeat(request["state"], request["attempt"],
                                       request.get("index"), seen)
                    sent, last = seen, now
                done, _ = await asyncio.wait({future}, timeout=min(max(interval, 0.1), 0.5))
                if done:
                    return future.result()
        except asyncio.CancelledError:
            from mgt.executors.process import end_leftovers

            control.interrupt()  # an item's process groups
            if request.get("index") is None:  # an attempt: the run's only work under way
                end_leftovers(request["run_id"], self._groups_of(request))
            # an item ends only its own groups: its run's other items run on, or are cut
            # short by their own cancellation (never as a failure of their step)
            if activity.is_worker_shutdown():  # not the run's cancel: move it elsewhere
                raise ApplicationError("the worker is shutting down", children.snapshot(),
                                       type=WORKER_LOST, non_retryable=True) from None
            raise

    def _run_dir_of(self, request: dict[str, Any]) -> Path:
        key = _session_key(request)
        return (self.work_dir / ITEMS_DIR if key != request["run_id"] else self.work_dir) / key

    def _groups_of(self, request: dict[str, Any]) -> list[int]:
        with self._lock:
            session = self._sessions.get(_session_key(request))
            if session is None:
                return []
            return [pgid for (state, attempt, index), pgid in session.pgids.items()
                    if (state, attempt, index) == (request["state"], request["attempt"],
                                                   request.get("index"))]

    # ------------------------------------------------------------------ on a pool thread

    def _attempt(self, request: dict[str, Any], control: FanOutControl) -> dict[str, Any]:
        from mgt.errors import MgtError

        with self._session(request) as session:
            _seed_children(session.journal.run_dir, request.get("children"))
            try:
                event = session.interp.run_attempt(request["state"], int(request["attempt"]),
                                                   request.get("feedback"))
            except MgtError as err:
                raise ApplicationError(str(err)) from None
        return _stored(event.to_json(), request.get("store"), request.get("store_min_bytes"))

    def _item(self, request: dict[str, Any], control: FanOutControl) -> dict[str, Any]:
        from mgt.errors import MgtError

        with self._session(request) as session:
            _seed_children(session.journal.run_dir, request.get("children"))
            try:
                event = session.interp.run_item(request["state"], int(request["attempt"]),
                                                int(request["index"]), request.get("feedback"),
                                                control)
            except MgtError as err:
                raise ApplicationError(str(err)) from None
        if event is None:  # interrupted: the activity is being cancelled
            raise ApplicationError("the item was cut short", type=WORKER_LOST)
        return event.to_json()

    @contextmanager
    def _session(self, request: dict[str, Any]) -> Iterator[_Session]:
        """The run's session on this worker (opened for the first activity under way), with
        the workflow's outputs, attempt numbers and cost adopted."""
        key = _session_key(request)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = self._open(request)
            session.users += 1
        try:
            store = request.get("store")
            session.interp.adopt({name: resolve(store, value)
                                  for name, value in request["outputs"].items()},
                                 request["attempts"], float(request["cost_usd"]))
            yield session
        finally:
            with self._lock:
                session.users -= 1
                if session.users == 0:
                    del self._sessions[key]
                    session.journal.close()

    def _open(self, request: dict[str, Any]) -> _Session:
        """Open (or create) the run's directory on this worker and an interpreter over it."""
        from mgt.errors import MgtError
        from mgt.runtime.cli import executor_factory, needs_model
        from mgt.runtime.events import ProcessStarted
        from mgt.runtime.inputs import resolve_inputs
        from mgt.runtime.interpreter import Interpreter
        from mgt.runtime.journal import RunJournal

        machine = machine_for(request["machine_path"], request["machine_sha256"],
                              request.get("definitions"))
        key = _session_key(request)
        runs_dir = self._run_dir_of(request).parent
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            if (runs_dir / key).is_dir():
                journal = RunJournal.open(runs_dir, key)
            else:
                journal = RunJournal.create(runs_dir, key, {
                    "machine": {"name": machine.name, "path": request["machine_path"],
                                "sha256": request["machine_sha256"]},
                    "engine": "temporal", "status": "running"})
        except MgtError as err:
            raise ApplicationError(str(err)) from None
        cwd = Path(request["cwd"])
        if not cwd.is_dir():  # a worker on another machine: the run's own directory
            cwd = journal.run_dir
        pgids: dict[tuple[str, int, int | None], int] = {}

        def watch(event: dict[str, Any], totals: Any) -> None:
            if event.get("type") == ProcessStarted.type:
                pgids[(event["state"], event["attempt"], event.get("item"))] = event["pgid"]

        try:
            factory = executor_factory(request.get("executor"),
                                       dict(request.get("executor_options") or {}),
                                       check=needs_model(machine))
            inputs = resolve_inputs(machine, stored=request["inputs"], cwd=Path(request["cwd"]))
            interp = Interpreter(machine, journal, inputs, executors=factory,
                                 budget_usd=request.get("budget_usd"), cwd=cwd, on_event=watch)
        except MgtError as err:
            journal.close()
            raise ApplicationError(str(err)) from None
        except BaseException:
            journal.close()
            raise
        return _Session(journal, interp, pgids=pgids)


class _Children:
    """The journals of the child runs (`run machine`) of one attempt or item, as heartbeat
    details: if this worker is lost, the next one resumes them instead of starting over.

    A child's directory is `machines/STATE-vVISIT[-items-INDEX][-try-N]` in the run's
    directory (nested children under it); only whole lines are sent, and nothing once
    they pass MAX_BYTES (the history keeps the last heartbeat of a failed activity).
    """

    MAX_BYTES = 1 << 20

    def __init__(self, run_dir: Path, request: dict[str, Any]) -> None:
        self.root = run_dir / "machines"
        self.prefix = f"{request['state']}-v"
        self.index = request.get("index")

    def _mine(self, name: str) -> bool:
        if not name.startswith(self.prefix):
            return False
        parts = name[len(self.prefix):].split("-")
        if self.index is None:
            return "items" not in parts
        return parts[1:3] == ["items", str(self.index)]

    def snapshot(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if not self.root.is_dir():
            return found
        total = 0
        for top in sorted(p for p in self.root.iterdir() if self._mine(p.name)):
            for events in sorted(top.rglob("events.jsonl")):
                try:
                    text = events.read_text(encoding="utf-8")
                except (OSError, ValueError):
                    continue
                text = text[:text.rfind("\n") + 1]  # whole lines only
                total += len(text)
                if total > self.MAX_BYTES:
                    return {}
                found[str(events.parent.relative_to(self.root))] = text
        return found


def _seed_children(run_dir: Path, children: Any) -> None:
    """Write the child runs a lost worker had under way (its last heartbeat) into this
    worker's run directory, so `run machine` resumes them: their finished states are kept."""
    from mgt.runtime.journal import EVENTS_FILE, RunJournal

    if not isinstance(children, dict):
        return
    root = (run_dir / "machines").resolve()
    for name, text in sorted(children.items()):  # parents before their nested children
        if not isinstance(name, str) or not isinstance(text, str):
            continue
        target = (root / name).resolve()
        if not target.is_relative_to(root) or target == root \
                or (target / EVENTS_FILE).exists():
            continue
        journal = RunJournal.create(target.parent, target.name, {"engine": "temporal"})
        with (journal.run_dir / EVENTS_FILE).open("a", encoding="utf-8") as out:
            out.write(text)
        journal.close()


def _session_key(request: dict[str, Any]) -> str:
    """The run id, or for a spread item the id of its own directory."""
    run_id = str(request["run_id"])
    if not request.get("spread"):
        return run_id
    return f"{run_id}.{request['state']}.{request['attempt']}.{request['index']}"


def _stored(event: dict[str, Any], store: str | None, min_bytes: int | None) -> dict[str, Any]:
    """The event with a large output put in the store and a reference in its place."""
    output = event.get("output")
    if store is None or output is None:
        return event
    size = len(json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size < (min_bytes or 0):
        return event
    return {**event, "output": put(Path(store), output)}
