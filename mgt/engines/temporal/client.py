"""`mgt exec --engine temporal`, `mgt resume` and `mgt cancel` of a Temporal run → exit codes.

The run is started as a `MachineWorkflow` whose id is the run id. The starting
command follows it: it polls the workflow's `events` query and appends each new
event to a local run directory, through the same journal as a file run, so
`mgt runs`, `mgt show` and `mgt graph --run` read a Temporal run like any other.
The local directory is a mirror; the workflow history is the truth.

`mgt resume RUN_ID` of an unfinished Temporal run re-attaches: it follows the same
workflow again (the server never stopped it), mirroring what it missed; a run the
server cancelled, terminated or no longer knows is refused in one line. Ctrl-C or
SIGTERM of the command that follows a run, or `mgt cancel RUN_ID`, cancels the
workflow: its attempt under way is cancelled (its processes ended), the run is
journaled as interrupted and the command exits 130.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mgt.errors import MgtError, RunError, UsageError

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from mgt.compile.model import Machine
    from mgt.engines.temporal.settings import TemporalSettings
    from mgt.runtime.journal import RunJournal

__all__ = ["cancel_main", "connect", "exec_temporal", "leave_after", "mirror", "record_end",
           "require_sdk", "resume_temporal", "run_params"]

POLL_SECONDS = 0.25


def require_sdk() -> None:
    """A one-line error, not a traceback, when the Temporal SDK is not installed."""
    try:
        import temporalio  # noqa: F401
    except ImportError:
        raise UsageError("the Temporal engine needs the temporalio package: "
                         "pip install 'mgt[temporal]'") from None


async def connect(address: str, namespace: str) -> Client:
    """A client of the server at `address`; an unreachable one is a UsageError, one line."""
    from temporalio.client import Client

    try:
        return await Client.connect(address, namespace=namespace)
    except Exception as err:  # the SDK raises RuntimeError and friends for a refused connection
        raise UsageError(f"cannot reach the Temporal server at {address} "
                         f"(namespace {namespace}): {err}") from None


def exec_temporal(args: argparse.Namespace, machine: Machine, inputs: dict[str, Any],
                  executor: str | None, options: dict[str, Any]) -> NoReturn:
    """Start `machine` as a workflow, follow it to its end; the exit code of `mgt exec`."""
    require_sdk()
    from mgt.engines.temporal.settings import load_settings
    from mgt.runtime.interpreter import run_info
    from mgt.runtime.journal import RunJournal

    settings = load_settings(machine.source_path, address=args.temporal_address)
    settings.spread_states(machine)  # a bad `spread` is refused before any run exists
    info = run_info(machine, inputs, budget_usd=args.budget_usd, cwd=Path.cwd())
    journal = RunJournal.create_new(args.runs_dir, machine.name, {
        **info, "executor": executor, "executor_options": options, "engine": "temporal",
        "temporal": {"address": settings.address, "namespace": settings.namespace,
                     "task_queue": settings.task_queue}})
    params = run_params(machine, inputs, settings, executor=executor, options=options,
                        budget_usd=args.budget_usd, cwd=Path.cwd(), run_id=journal.run_id)
    def body() -> int:
        try:
            return asyncio.run(_drive(journal, settings, machine, args.json, params))
        except BaseException:
            if not journal.state.events:  # the workflow never started: leave no husk
                shutil.rmtree(journal.run_dir, ignore_errors=True)
            raise
        finally:
            journal.close()

    leave_after(body)


def run_params(machine: Machine, inputs: dict[str, Any], settings: TemporalSettings, *,
               executor: str | None, options: dict[str, Any], budget_usd: float | None,
               cwd: Path, run_id: str | None = None) -> dict[str, Any]:
    """The `mgt.run` workflow's input: the machine pinned by path and sha256, the typed
    inputs as JSON, and where and how its attempts run.

    `mgt exec --engine temporal` passes its run id; a Temporal Schedule's action has
    none (each run it starts takes its workflow id as run id)."""
    from mgt.runtime.journal import jsonable

    params: dict[str, Any] = {} if run_id is None else {"run_id": run_id}
    params.update({
        "machine_path": str(Path(machine.source_path).resolve()),
        "machine_sha256": machine.source_hash, "definitions": dict(machine.definitions),
        "inputs": jsonable(inputs),
        "budget_usd": budget_usd, "cwd": str(cwd), "executor": executor,
        "executor_options": options, "task_queue": settings.task_queue,
        "heartbeat_seconds": settings.heartbeat_seconds,
        "claim_seconds": settings.claim_seconds, "store": settings.store,
        "store_min_bytes": settings.store_min_bytes,
        "spread": settings.spread_states(machine),
    })
    return params


def resume_temporal(args: argparse.Namespace, journal: RunJournal) -> NoReturn:
    """Follow an unfinished Temporal run again (the server kept running it)."""
    require_sdk()
    from mgt.engines.temporal.settings import TemporalSettings

    stored = journal.info.get("temporal") or {}
    settings = TemporalSettings(address=stored.get("address") or "",
                                namespace=stored.get("namespace") or "default")
    def body() -> int:
        try:
            return asyncio.run(_drive(journal, settings, None, args.json, None))
        finally:
            journal.close()

    leave_after(body)


def cancel_main(args: argparse.Namespace) -> NoReturn:
    """`mgt cancel RUN_ID`: cancel a Temporal run's workflow (its follower exits 130)."""
    require_sdk()
    from mgt.runtime.journal import load_run

    record = load_run(args.runs_dir, args.run_id)
    stored = record.info.get("temporal")
    if record.info.get("engine") != "temporal" or not isinstance(stored, dict):
        raise UsageError(f"run {record.run_id} does not run on Temporal; stop a local run "
                         "with Ctrl-C or SIGTERM of its mgt exec")

    async def cancel() -> None:
        from temporalio.service import RPCError

        client = await connect(str(stored.get("address")), str(stored.get("namespace")))
        try:
            await client.get_workflow_handle(record.run_id).cancel()
        except RPCError as err:
            raise UsageError(f"cannot cancel run {record.run_id}: {err}") from None

    def body() -> int:
        asyncio.run(cancel())
        print(f"mgt: cancelling run {record.run_id}", file=sys.stderr)
        return 0

    leave_after(body)


def leave_after(body: Callable[[], int]) -> NoReturn:
    """Run `body`, report its error as `mgt.cli` would, and end the process with its code.

    The Temporal SDK's native threads sometimes crash the interpreter's teardown
    (SIGSEGV or SIGABRT after the work is done), which would turn a good exit code
    into a signal: once the work is done and the journal closed, nothing is left to
    clean up, so the process leaves at once.
    """
    try:
        code = body()
    except MgtError as err:
        print(f"mgt: {err}", file=sys.stderr)
        code = err.exit_code
    except KeyboardInterrupt:
        print("mgt: interrupted", file=sys.stderr)
        code = 130
    with suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


async def _drive(journal: RunJournal, settings: TemporalSettings, machine: Machine | None,
                 as_json: bool, params: dict[str, Any] | None) -> int:
    from temporalio.client import WorkflowFailureError
    from temporalio.common import WorkflowIDReusePolicy

    from mgt.engines.temporal.workflow import WORKFLOW
    from mgt.runtime.cli import live_progress

    client = await connect(settings.address, settings.namespace)
    if params is not None:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            WORKFLOW, params, id=journal.run_id, task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    else:
        handle = client.get_workflow_handle(journal.run_id)
        await _check_resumable(handle, journal.run_id)
    show = live_progress(journal.run_id)
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, cancelled.set)
    result_task = asyncio.ensure_future(handle.result())
    cancel_task = asyncio.ensure_future(cancelled.wait())
    try:
        while True:
            # the result first: a run that ended (maybe with no worker left to answer a
            # query) is mirrored from it, not from a query that would wait for a worker
            await asyncio.wait({result_task, cancel_task}, timeout=POLL_SECONDS,
                               return_when=asyncio.FIRST_COMPLETED)
            if result_task.done():
                break
            if cancel_task.done():
                await handle.cancel()
                cancel_task = asyncio.ensure_future(asyncio.Event().wait())
            await mirror(handle, journal, show)
        try:
            result = result_task.result()
        except WorkflowFailureError as err:
            await mirror(handle, journal, show)
            if journal.state.status == "interrupted":
                return _end(journal, machine, as_json, "interrupted")
            raise RunError(f"run {journal.run_id} failed on Temporal: "
                           f"{err.cause or err}") from None
        ended = result.get("events") if isinstance(result, dict) else None
        await mirror(handle, journal, show, ended if isinstance(ended, list) else None)
        return _end(journal, machine, as_json, journal.state.status)
    finally:
        cancel_task.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _check_resumable(handle: WorkflowHandle[Any, Any], run_id: str) -> None:
    """Refuse to follow a workflow the server no longer has, or one that ended unfinished."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    try:
        described = await handle.describe()
    except RPCError as err:
        raise UsageError(f"run {run_id}: the Temporal server does not know it ({err}); "
                         "start it again with mgt exec") from None
    ended = {WorkflowExecutionStatus.CANCELED: "cancelled",
             WorkflowExecutionStatus.TERMINATED: "terminated",
             WorkflowExecutionStatus.TIMED_OUT: "timed out"}
    if described.status in ended:
        raise UsageError(f"run {run_id} was {ended[described.status]} on Temporal and cannot "
                         "be resumed; start it again with mgt exec")


async def mirror(handle: WorkflowHandle[Any, Any], journal: RunJournal, show: Any,
                 events: list[Any] | None = None) -> None:
    """Append the workflow's events the local run directory has not seen yet: `events`
    when given (a finished workflow's result holds them all), else the `events` query,
    else, for a workflow that finished, its result (read from the history: no worker
    need be up)."""
    from mgt.runtime.events import parse_event
    from mgt.runtime.interpreter import Totals

    seen = journal.state.events[-1].seq if journal.state.events else 0
    if events is None:
        try:
            events = await handle.query("events", seen, result_type=list)
        except Exception:  # no worker answers queries right now
            events = await _result_events(handle)
            if events is None:  # still running: try again later
                return
    for raw in events:
        if not isinstance(raw, dict) or int(raw.get("seq") or 0) <= seen:
            continue
        event = journal.emit(parse_event(raw))
        seen = event.seq
        if show is not None:
            show(raw, Totals.of(journal.state))
        if event.type == "attempt_finished" and raw.get("outcome") == "done":
            with suppress(MgtError, OSError):
                journal.write_output(raw["state"], raw.get("output"))


async def _result_events(handle: WorkflowHandle[Any, Any]) -> list[Any] | None:
    """The events in a completed workflow's result; None when it has none (yet)."""
    from temporalio.client import WorkflowExecutionStatus

    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
            return None
        result = await handle.result()
    except Exception:
        return None
    events = result.get("events") if isinstance(result, dict) else None
    return events if isinstance(events, list) else None


def _end(journal: RunJournal, machine: Machine | None, as_json: bool, status: str) -> int:
    from mgt.runtime.cli import report_result
    from mgt.runtime.interpreter import RunResult, Totals

    status = record_end(journal, status)
    run = journal.state
    result = RunResult(run_id=journal.run_id, run_dir=journal.run_dir, status=status,
                       final=run.final, message=run.message, path=list(run.path),
                       outputs=dict(run.outputs), totals=Totals.of(run), run=run)
    return report_result(result, as_json, machine)


def record_end(journal: RunJournal, status: str) -> str:
    """Write a mirrored run's end into its run.json; the status it ended with."""
    run = journal.state
    if status == "interrupted" and run.status != "interrupted":
        status = run.status
    journal.write_info(status=status, final=run.final, current_state=run.current_state,
                       message=run.message, path=list(run.path),
                       cost_usd=round(run.cost_usd, 6),
                       tokens={"input": run.input_tokens, "output": run.output_tokens})
    return status
