"""`mgt serve --engine temporal`: the `[[schedule]]` tables → Temporal Schedules, then their runs
mirrored into the runs directory.

Sync (every start of the command, and all of `--once`): each table becomes the
schedule `mgt-schedule-NAME` on the server, whose action starts the `mgt.run`
workflow with the params `mgt exec --engine temporal` builds (`client.run_params`),
less the run id (a run takes its workflow id as run id), with the machine pinned by
the sha256 it has now. Every table is checked (its machine loaded, its inputs
resolved, its timing expressible) before the server is touched. A schedule that is
already as wanted is left alone; one that differs is updated in place (its paused
state and notes kept); an mgt-owned schedule on this task queue whose table is gone
is deleted. Ownership: the id prefix plus the schedule memo `mgt_owner`; a schedule
with the id but not made by mgt, or made for another task queue, is refused.

Timing: `cron` (with `timezone`) or `every` (counted from the Unix epoch, as
Temporal's intervals are). Overlap policy SKIP: a run never starts while the
schedule's last one is under way; the ticks that come meanwhile are dropped.
Catch-up window 365 days: after the server was down, the missed ticks within the
window are taken in order and, with SKIP, only the first starts a run (the others
overlap it), so downtime gives at most one catch-up run. A new schedule runs once at
once (trigger on create), as a schedule that never ran is due at once in the local loop.

Follow (without `--once`): every second, each schedule's running and recent actions
are read; a workflow not yet mirrored gets a run directory (named by its workflow id)
as soon as it answers the `events` query, and is mirrored until it closes. SIGINT and
SIGTERM end the following only: the schedules and their runs belong to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.errors import JournalError, MgtError, UsageError
from mgt.serve.config import Schedule, ScheduleError

if TYPE_CHECKING:
    from temporalio.client import (
        Client,
        ScheduleDescription,
        WorkflowHandle,
    )
    from temporalio.client import Schedule as TemporalSchedule

    from mgt.engines.temporal.settings import TemporalSettings
    from mgt.runtime.journal import RunJournal

__all__ = ["CATCHUP_WINDOW", "OWNER", "OWNER_KEY", "SCHEDULE_PREFIX", "Planned", "plan",
           "schedule_id", "serve_temporal", "sync"]

SCHEDULE_PREFIX = "mgt-schedule-"
OWNER_KEY = "mgt_owner"
OWNER = "mgt serve"
FINGERPRINT_KEY = "mgt_fingerprint"
SCHEDULE_KEY = "mgt_schedule"
#: How far back missed ticks are still caught up after the server was down (one run at most).
CATCHUP_WINDOW = timedelta(days=365)
FOLLOW_SECONDS = 1.0

Emit = Callable[[dict[str, Any]], None]

_PREDEFINED = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_NUMERIC = re.compile(r"[0-9*,/-]+")
_NAMED = re.compile(r"[0-9A-Za-z*,/-]+")
_WORD = re.compile(r"[A-Za-z]+")
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAYS = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}


def schedule_id(name: str) -> str:
    """The Temporal Schedule id of the `[[schedule]]` table `name`."""
    return f"{SCHEDULE_PREFIX}{name}"


@dataclass(frozen=True)
class Planned:
    """One table, checked and turned into what its Temporal Schedule must hold."""

    schedule: Schedule
    schedule_id: str
    params: dict[str, Any]
    fingerprint: str

    @property
    def name(self) -> str:
        return self.schedule.name


# --------------------------------------------------------------------------- planning


def check_expressible(schedule: Schedule, where: str) -> None:
    """Refuse a table whose timing Temporal would read differently (or not at all)."""
    if schedule.cron is None:
        return
    cron = schedule.cron.strip()

    def refuse(why: str) -> ScheduleError:
        return ScheduleError(f"{where}: cron {cron!r}: {why}; Temporal cannot express it "
                             "(use mgt serve without --engine temporal)")

    if cron.startswith("@"):
        if cron not in _PREDEFINED:
            raise refuse("only @hourly, @daily, @weekly, @monthly and @yearly are shared")
        return
    fields = cron.split()
    if len(fields) != 5:
        raise refuse("a Temporal cron has minute hour day-of-month month day-of-week "
                     f"(5 fields), this one has {len(fields)}")
    minute, hour, dom, month, dow = fields
    for text, label in ((minute, "minute"), (hour, "hour"), (dom, "day-of-month")):
        if not _NUMERIC.fullmatch(text):
            raise refuse(f"{label} {text!r}: only numbers, *, ranges, lists and steps")
    for text, label, names in ((month, "month", _MONTHS), (dow, "day-of-week", _DAYS)):
        words = _WORD.findall(text)
        if not _NAMED.fullmatch(text) or any(w.lower() not in names for w in words):
            raise refuse(f"{label} {text!r}: only numbers, three-letter names, *, ranges, "
                         "lists and steps")
    if dom != "*" and dow != "*":
        raise refuse("both day-of-month and day-of-week are set: cron runs on days matching "
                     "either, Temporal only on days matching both; use two schedules")


def plan(schedules: list[Schedule], config: Path, settings: TemporalSettings) -> list[Planned]:
    """Every table checked and turned into its schedule's params (nothing sent anywhere)."""
    from mgt.defs.files import display_path

    shown = display_path(config)
    return [_plan_one(s, config.resolve().parent, settings, f"{shown}: [[schedule]] '{s.name}'")
            for s in schedules]


def _plan_one(schedule: Schedule, workdir: Path, settings: TemporalSettings,
              where: str) -> Planned:
    from mgt.compile import load_machine
    from mgt.engines.temporal.client import run_params
    from mgt.engines.temporal.workflow import WORKFLOW
    from mgt.runtime.cli import _executor_name, _executor_options
    from mgt.runtime.inputs import parse_input_args, resolve_inputs
    from mgt.serve.runner import _input_text

    check_expressible(schedule, where)
    try:
        machine = load_machine(str(schedule.machine))
    except MgtError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ScheduleError(f"{where}: machine {schedule.machine}: {first} (see mgt check "
                            f"{schedule.machine})") from None
    # As the local loop's `mgt exec` child: inputs, executor and paths as read from the
    # directory of mgt.toml.
    try:
        with contextlib.chdir(workdir):
            requested, options = _executor_options(argparse.Namespace(
                executor=schedule.executor, session=None, replay_dir=None))
            texts = [f"{key}={_input_text(value)}" for key, value in schedule.inputs.items()]
            inputs = resolve_inputs(machine, cli=parse_input_args(texts), cwd=workdir)
            executor = _executor_name(machine, requested, options)
    except MgtError as err:
        raise ScheduleError(f"{where}: {err}") from None
    params = run_params(machine, inputs, settings, executor=executor, options=options,
                        budget_usd=schedule.budget_usd, cwd=workdir)
    timing = {"cron": schedule.cron, "timezone": schedule.timezone} if schedule.cron else \
        {"every_seconds": schedule.every_seconds}
    blob = json.dumps({"timing": timing, "params": params, "workflow": WORKFLOW,
                       "task_queue": settings.task_queue, "overlap": "skip",
                       "catchup_seconds": CATCHUP_WINDOW.total_seconds()},
                      sort_keys=True, ensure_ascii=False)
    return Planned(schedule, schedule_id(schedule.name), params,
                   hashlib.sha256(blob.encode()).hexdigest())


def _temporal_schedule(planned: Planned, settings: TemporalSettings) -> TemporalSchedule:
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
    )

    from mgt.engines.temporal.workflow import WORKFLOW

    s = planned.schedule
    if s.cron is not None:
        spec = ScheduleSpec(cron_expressions=[s.cron], time_zone_name=s.timezone)
    else:
        assert s.every_seconds is not None
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(
            every=timedelta(seconds=s.every_seconds))])
    action = ScheduleActionStartWorkflow(
        WORKFLOW, planned.params, id=planned.schedule_id, task_queue=settings.task_queue,
        memo={SCHEDULE_KEY: s.name, FINGERPRINT_KEY: planned.fingerprint})
    return Schedule(action=action, spec=spec, policy=SchedulePolicy(
        overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW))


# --------------------------------------------------------------------------- sync


def _action_memo(client: Client, described: ScheduleDescription) -> dict[str, Any]:
    from temporalio.client import ScheduleActionStartWorkflow

    action = described.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return {}
    from temporalio.api.common.v1 import Payload

    converter = client.data_converter.payload_converter
    memo: dict[str, Any] = {}
    for key, value in action.memo.items():
        with contextlib.suppress(Exception):  # a memo someone else wrote: ignore what is odd
            memo[key] = converter.from_payload(value) if isinstance(value, Payload) else value
    return memo


def _action_params(client: Client, described: ScheduleDescription) -> Any:
    from temporalio.client import ScheduleActionStartWorkflow

    action = described.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        return None
    try:
        values = client.data_converter.payload_converter.from_payloads(list(action.args))
    except Exception:
        return None
    return values[0] if len(values) == 1 else None


def _is_current(client: Client, described: ScheduleDescription, planned: Planned,
                settings: TemporalSettings) -> bool:
    """Whether the schedule on the server already holds what `planned` asks for."""
    from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy

    from mgt.engines.temporal.workflow import WORKFLOW

    action = described.schedule.action
    policy = described.schedule.policy
    wanted_zone = planned.schedule.timezone if planned.schedule.cron is not None else None
    return (isinstance(action, ScheduleActionStartWorkflow)
            and action.workflow == WORKFLOW and action.id == planned.schedule_id
            and action.task_queue == settings.task_queue
            and _action_memo(client, described).get(FINGERPRINT_KEY) == planned.fingerprint
            and _action_params(client, described) == json.loads(json.dumps(planned.params))
            and policy.overlap == ScheduleOverlapPolicy.SKIP
            and policy.catchup_window == CATCHUP_WINDOW
            and (described.schedule.spec.time_zone_name or None) == wanted_zone)


async def _describe(client: Client, sid: str) -> ScheduleDescription | None:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await client.get_schedule_handle(sid).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise UsageError(f"cannot read Temporal schedule {sid}: {err}") from None


async def sync(client: Client, planned: list[Planned], settings: TemporalSettings,
               emit: Emit) -> dict[str, int]:
    """Create, update or leave each planned schedule; delete owned ones no table names."""
    from temporalio.client import ScheduleActionStartWorkflow, ScheduleUpdate
    from temporalio.service import RPCError, RPCStatusCode

    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    for p in planned:
        described = await _describe(client, p.schedule_id)
        wanted = _temporal_schedule(p, settings)
        when = p.schedule.when + (f" in {p.schedule.timezone}" if p.schedule.cron else "")
        event = {"schedule": p.name, "schedule_id": p.schedule_id, "when": when,
                 "machine": str(p.schedule.machine)}
        try:
            if described is None:
                await client.create_schedule(p.schedule_id, wanted, memo={OWNER_KEY: OWNER},
                                             trigger_immediately=True)
                counts["created"] += 1
                emit({"event": "created", **event})
                continue
            if (await described.memo()).get(OWNER_KEY) != OWNER:
                raise UsageError(f"schedule '{p.name}': Temporal schedule {p.schedule_id} "
                                 "exists and was not made by mgt serve; rename the "
                                 "[[schedule]] or delete that schedule")
            action = described.schedule.action
            queue = action.task_queue if isinstance(action, ScheduleActionStartWorkflow) \
                else None
            if queue != settings.task_queue:
                raise UsageError(f"schedule '{p.name}': Temporal schedule {p.schedule_id} "
                                 f"starts runs on task queue {queue!r}, not "
                                 f"{settings.task_queue!r} (another project's?); rename the "
                                 "[[schedule]] or delete that schedule")
            if _is_current(client, described, p, settings):
                counts["unchanged"] += 1
                emit({"event": "unchanged", **event})
                continue

            def update(given: Any, _wanted: TemporalSchedule = wanted) -> ScheduleUpdate:
                # keep what people do to a schedule by hand: paused or not, and its note
                return ScheduleUpdate(schedule=replace(
                    _wanted, state=given.description.schedule.state))

            await client.get_schedule_handle(p.schedule_id).update(update)
            counts["updated"] += 1
            emit({"event": "updated", **event})
        except RPCError as err:
            raise UsageError(f"schedule '{p.name}': the Temporal server refused it: "
                             f"{err}") from None
    wanted_ids = {p.schedule_id for p in planned}
    stale: list[str] = []
    try:
        async for entry in await client.list_schedules():
            if not entry.id.startswith(SCHEDULE_PREFIX) or entry.id in wanted_ids:
                continue
            if (await entry.memo()).get(OWNER_KEY) != OWNER:
                continue
            stale.append(entry.id)
    except RPCError as err:
        raise UsageError(f"cannot list the Temporal schedules: {err}") from None
    for sid in sorted(stale):
        described = await _describe(client, sid)
        if described is None:  # the list lags behind a delete
            continue
        action = described.schedule.action
        if not isinstance(action, ScheduleActionStartWorkflow) or \
                action.task_queue != settings.task_queue:
            continue  # another project's (it starts runs on another task queue)
        try:
            await client.get_schedule_handle(sid).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise UsageError(f"cannot delete Temporal schedule {sid}: {err}") from None
            continue
        counts["deleted"] += 1
        name = _action_memo(client, described).get(SCHEDULE_KEY) or sid[len(SCHEDULE_PREFIX):]
        emit({"event": "deleted", "schedule": str(name), "schedule_id": sid})
    return counts


# --------------------------------------------------------------------------- follow


@dataclass
class _Followed:
    name: str
    workflow_id: str
    handle: WorkflowHandle[Any, Any]
    journal: RunJournal | None = None


@dataclass
class Follower:
    """Mirrors the runs the planned schedules start into `runs_dir`, as `mgt exec` would."""

    client: Client
    planned: list[Planned]
    runs_dir: Path
    settings: TemporalSettings
    emit: Emit
    runs: dict[str, _Followed] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    unreachable: bool = False

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.catch_up()
            while not stop.is_set():
                await self.look()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), FOLLOW_SECONDS)
        finally:
            for followed in self.runs.values():
                if followed.journal is not None:
                    followed.journal.close()

    async def catch_up(self) -> None:
        """Once, at start: each schedule's runs since the newest one mirrored here.

        A schedule's description lists only its last 10 runs, which `look` reads; a
        follower that was away while more ran finds the others through the server's
        list of workflows the schedule started (`TemporalScheduledById`), from an hour
        before its newest local mirror was made (a run starts before its mirror). A
        schedule with no run mirrored here yet starts from those last 10, as before.
        """
        from mgt.runtime.journal import run_infos

        newest: dict[str, str] = {}
        for _, info in run_infos(self.runs_dir):
            name, made = info.get("schedule"), info.get("created")
            if (info.get("engine") == "temporal" and isinstance(name, str)
                    and isinstance(made, str) and made > newest.get(name, "")):
                newest[name] = made
        for p in self.planned:
            made = newest.get(p.name)
            if made is None:
                continue
            try:
                since = datetime.fromisoformat(made.replace("Z", "+00:00")) - timedelta(hours=1)
            except ValueError:
                continue
            # names are letters, digits, '-', '_' and '.' (see serve/config.py): no quoting
            query = (f"TemporalScheduledById = '{p.schedule_id}' AND "
                     f"StartTime >= '{since.astimezone(UTC).isoformat()}'")
            found = 0
            try:
                async for execution in self.client.list_workflows(query):
                    wid = execution.id
                    if wid not in self.runs and wid not in self.done:
                        self.runs[wid] = _Followed(p.name, wid,
                                                   self.client.get_workflow_handle(wid))
                        found += 1
            except Exception as err:  # no visibility store, or the server is away
                self.emit({"event": "warning", "schedule": p.name,
                           "message": f"cannot list its earlier runs: {err}"})
                continue
            if found:
                self.emit({"event": "catching_up", "schedule": p.name, "runs": found})

    async def look(self) -> None:
        """One pass: find the schedules' new runs, mirror every run followed."""
        from temporalio.client import ScheduleActionExecutionStartWorkflow

        for p in self.planned:
            try:
                described = await self.client.get_schedule_handle(p.schedule_id).describe()
            except Exception as err:  # the server is away for a moment: look again later
                if not self.unreachable:
                    self.unreachable = True
                    self.emit({"event": "warning", "schedule": p.name,
                               "message": f"cannot read its Temporal schedule: {err}"})
                continue
            self.unreachable = False
            actions = [r.action for r in described.info.recent_actions]
            actions += list(described.info.running_actions)
            for action in actions:
                if not isinstance(action, ScheduleActionExecutionStartWorkflow):
                    continue
                wid = action.workflow_id
                if wid not in self.runs and wid not in self.done:
                    self.runs[wid] = _Followed(p.name, wid,
                                               self.client.get_workflow_handle(wid))
        for wid, followed in list(self.runs.items()):
            try:
                ended = await self._step(followed)
            except JournalError as err:
                self.emit({"event": "warning", "schedule": followed.name, "run_id": wid,
                           "message": f"not mirrored: {err}"})
                ended = True
            if ended:
                if followed.journal is not None:
                    followed.journal.close()
                del self.runs[wid]
                self.done.add(wid)

    async def _step(self, followed: _Followed) -> bool:
        """Mirror one run a little further; True once it needs no more following."""
        from temporalio.client import WorkflowExecutionStatus

        from mgt.engines.temporal.client import mirror, record_end

        if followed.journal is None:
            followed.journal = await self._open(followed)
            if followed.journal is None:
                return followed.workflow_id in self.done
        journal = followed.journal
        await mirror(followed.handle, journal, None)
        try:
            status = (await followed.handle.describe()).status
        except Exception:
            return False
        if status == WorkflowExecutionStatus.RUNNING:
            return False
        await mirror(followed.handle, journal, None)
        ended = journal.state.status
        if ended == "running" and status is not None:
            ended = status.name.lower()
        ended = record_end(journal, ended)
        self.emit({"event": "finished", "schedule": followed.name,
                   "run_id": followed.workflow_id, "status": ended,
                   "cost_usd": round(journal.state.cost_usd, 6)})
        return True

    async def _open(self, followed: _Followed) -> RunJournal | None:
        """The run's local directory: taken over, or made once the run has events."""
        from mgt.runtime.journal import EVENTS_FILE, RunJournal, load_run

        wid = followed.workflow_id
        if (self.runs_dir / wid / EVENTS_FILE).is_file():
            record = load_run(self.runs_dir, wid)
            if record.info.get("status") != "running" or record.status == "running":
                self.done.add(wid)  # mirrored to its end already, or someone else follows it
                return None
            return RunJournal.open(self.runs_dir, wid)
        try:
            events = await followed.handle.query("events", 0, result_type=list)
        except Exception:  # no worker answers yet: look again later
            return None
        first = events[0] if events and isinstance(events[0], dict) else None
        if first is None:
            return None
        params = await self._params(followed)
        temporal = {"address": self.settings.address, "namespace": self.settings.namespace,
                    "task_queue": self.settings.task_queue}
        info: dict[str, Any] = {
            "machine": {"name": first.get("machine"), "path": params.get("machine_path"),
                        "sha256": params.get("machine_sha256")},
            "inputs": params.get("inputs") or {}, "status": "running", "final": None,
            "path": [], "cost_usd": 0.0, "tokens": {"input": 0, "output": 0},
            "budget_usd": params.get("budget_usd"), "cwd": params.get("cwd"),
            "executor": params.get("executor"),
            "executor_options": params.get("executor_options") or {},
            "engine": "temporal", "temporal": temporal, "schedule": followed.name,
        }
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            journal = RunJournal.create(self.runs_dir, wid, info)
        except JournalError as err:
            if "already exists" in str(err):  # another follower made it first
                self.done.add(wid)
                return None
            raise
        self.emit({"event": "started", "schedule": followed.name, "run_id": wid,
                   "engine": "temporal"})
        return journal

    async def _params(self, followed: _Followed) -> dict[str, Any]:
        """The params the workflow was started with (its first history event)."""
        converter = self.client.data_converter.payload_converter
        with contextlib.suppress(Exception):
            async for event in followed.handle.fetch_history_events():
                started = event.workflow_execution_started_event_attributes
                values = converter.from_payloads(list(started.input.payloads))
                if values and isinstance(values[0], dict):
                    return values[0]
                break
        return {}


# --------------------------------------------------------------------------- the command


def serve_temporal(args: argparse.Namespace, config: Path, schedules: list[Schedule],
                   emit: Emit) -> int:
    """Sync the schedules; without `--once`, then follow their runs until SIGINT/SIGTERM."""
    from mgt.engines.temporal.client import connect, leave_after, require_sdk
    from mgt.engines.temporal.settings import load_settings

    require_sdk()
    settings = load_settings(config, address=getattr(args, "temporal_address", None))
    planned = plan(schedules, config, settings)  # every table checked before the server
    runs_dir = Path(args.runs_dir).resolve()

    async def main() -> int:
        client = await connect(settings.address, settings.namespace)
        counts = await sync(client, planned, settings, emit)
        changed = counts["created"] + counts["updated"] + counts["deleted"]
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        emit({"event": "synced", "schedule": "-", **counts,
              "message": (f"schedules synced to {settings.address}: {summary}" if changed else
                          f"schedules synced to {settings.address}: nothing changed"
                          + (f" ({summary})" if summary else ""))})
        if args.once:
            return 0
        from mgt.serve.state import ServeLock

        runs_dir.mkdir(parents=True, exist_ok=True)
        lock = ServeLock(runs_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        emit({"event": "following", "schedule": "-",
              "message": f"following the runs of {len(planned)} schedule(s) into {runs_dir}; "
                         "Ctrl-C stops following (the schedules and their runs go on on the "
                         "Temporal server)"})
        try:
            await Follower(client, planned, runs_dir, settings, emit).run(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            lock.release()
        emit({"event": "stopped", "schedule": "-",
              "message": "stopped following; the schedules and their runs go on on the "
                         "Temporal server (mgt runs shows what was mirrored)"})
        return 0

    def body() -> int:
        if getattr(args, "ui", None) is None:
            return asyncio.run(main())
        from mgt.ui.cli import start_in_background

        url, stop_ui = start_in_background(runs_dir, args.ui_host, args.ui)
        emit({"event": "ui", "schedule": "-", "url": url})
        try:
            return asyncio.run(main())
        finally:
            stop_ui()

    leave_after(body)
