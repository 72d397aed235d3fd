"""`mgt serve --engine temporal`: `[[schedule]]` tables as Temporal Schedules on a real dev
server, fired there and followed into the runs directory by a real `mgt worker`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import signal
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import Cluster
from tests.runtime.procs import journal, mgt, spawn, wait_for

MACHINES = Path(__file__).parent / "machines"


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _client(address: str) -> Any:
    from temporalio.client import Client

    return await Client.connect(address)


async def _describe(address: str, sid: str) -> Any:
    return await (await _client(address)).get_schedule_handle(sid).describe()


async def _exists(address: str, sid: str) -> bool:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await _describe(address, sid)
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def _listed(address: str) -> set[str]:
    client = await _client(address)
    return {entry.id async for entry in await client.list_schedules()}


async def _cleanup(address: str, sids: list[str]) -> None:
    """Delete the test's schedules and terminate the runs they started (no worker may
    ever take them)."""
    from temporalio.service import RPCError

    client = await _client(address)
    for sid in sids:
        handle = client.get_schedule_handle(sid)
        try:
            described = await handle.describe()
        except RPCError:
            continue
        for action in described.info.running_actions:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(action.workflow_id).terminate("test over")
        await handle.delete()


@pytest.fixture
def project(cluster: Cluster) -> Iterator[Project]:
    found = Project(cluster)
    yield found
    _run(_cleanup(cluster.address, found.ids()))


class Project:
    """The cluster's work directory with a machine and an mgt.toml of [[schedule]] tables."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.temporal = (cluster.work / "mgt.toml").read_text()
        self.tag = uuid.uuid4().hex[:8]  # the dev server is shared: names of this test only
        shutil.copy(MACHINES / "tick.mgt", cluster.work / "tick.mgt")
        self.names: set[str] = set()

    def name(self, short: str) -> str:
        full = f"{short}-{self.tag}"
        self.names.add(full)
        return full

    def ids(self) -> list[str]:
        return [f"mgt-schedule-{n}" for n in sorted(self.names)]

    def write(self, tables: str) -> None:
        (self.cluster.work / "mgt.toml").write_text(self.temporal + tables)

    def serve(self, *extra: str, address: str | None = None) -> Any:
        flags = ["--temporal-address", address] if address else []
        return mgt("serve", "--engine", "temporal", "--json", "--runs-dir",
                   self.cluster.work / "runs", *flags, *extra, cwd=self.cluster.work)


def _events(proc: Any) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _kinds(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["schedule"]: e["event"] for e in events if e["schedule"] != "-"}


def _table(name: str, timing: str, *, note: str = "hello") -> str:
    return (f'\n[[schedule]]\nname = "{name}"\nmachine = "tick.mgt"\n{timing}\n'
            f'inputs = {{ note = "{note}" }}\nbudget_usd = 1.5\n')


def test_sync_creates_then_leaves_updates_and_deletes_schedules(project: Project) -> None:
    from temporalio.client import ScheduleOverlapPolicy, ScheduleRange

    address, queue = project.cluster.address, project.cluster.queue
    nightly, hourly = project.name("nightly"), project.name("hourly")
    nightly_table = _table(nightly, 'cron = "0 3 * * *"\ntimezone = "Europe/Paris"')
    hourly_table = _table(hourly, 'every = "90m"')
    project.write(nightly_table + hourly_table)

    first = _events(project.serve("--once"))
    assert _kinds(first) == {nightly: "created", hourly: "created"}
    assert first[-1]["event"] == "synced" and first[-1]["created"] == 2

    described = _run(_describe(address, f"mgt-schedule-{nightly}"))
    spec = described.schedule.spec
    assert spec.time_zone_name == "Europe/Paris"
    [calendar] = spec.calendars
    assert (calendar.minute, calendar.hour) == ((ScheduleRange(0),), (ScheduleRange(3),))
    assert calendar.day_of_month == (ScheduleRange(1, 31),)
    assert calendar.day_of_week == (ScheduleRange(0, 6),)
    policy = described.schedule.policy
    assert policy.overlap == ScheduleOverlapPolicy.SKIP  # never two runs of one schedule
    assert policy.catchup_window == timedelta(days=365)
    assert _run(described.memo()) == {"mgt_owner": "mgt serve"}
    action = described.schedule.action
    assert (action.workflow, action.id, action.task_queue) == \
        ("mgt.run", f"mgt-schedule-{nightly}", queue)
    from temporalio.converter import DataConverter

    [params] = DataConverter.default.payload_converter.from_payloads(list(action.args))
    machine = project.cluster.work / "tick.mgt"
    assert "run_id" not in params  # each run takes its workflow id as run id
    assert params["machine_path"] == str(machine.resolve())
    assert params["machine_sha256"] == hashlib.sha256(machine.read_bytes()).hexdigest()
    assert params["inputs"] == {"note": "hello"}
    assert params["budget_usd"] == 1.5
    assert params["cwd"] == str(project.cluster.work.resolve())
    assert params["task_queue"] == queue
    wait_for("a new schedule to run once at once", lambda: _run(_describe(
        address, f"mgt-schedule-{nightly}")).info.num_actions == 1)
    interval = _run(_describe(address, f"mgt-schedule-{hourly}")).schedule.spec.intervals
    assert [i.every for i in interval] == [timedelta(minutes=90)]

    again = _events(project.serve("--once"))
    assert _kinds(again) == {nightly: "unchanged", hourly: "unchanged"}
    assert again[-1]["message"].endswith("nothing changed (2 unchanged)")
    assert _run(_describe(address, f"mgt-schedule-{nightly}")).info.last_updated_at is None

    project.write(_table(nightly, 'cron = "30 4 * * *"\ntimezone = "Europe/Paris"')
                  + _table(hourly, 'every = "90m"', note="changed"))
    changed = _events(project.serve("--once"))
    assert _kinds(changed) == {nightly: "updated", hourly: "updated"}
    [calendar] = _run(_describe(address, f"mgt-schedule-{nightly}")).schedule.spec.calendars
    assert (calendar.minute, calendar.hour) == ((ScheduleRange(30),), (ScheduleRange(4),))
    updated = _run(_describe(address, f"mgt-schedule-{hourly}"))
    [params] = DataConverter.default.payload_converter.from_payloads(
        list(updated.schedule.action.args))
    assert params["inputs"] == {"note": "changed"}
    assert updated.info.num_actions == 1  # an update starts nothing

    # a changed machine file is a changed pin
    machine.write_text(machine.read_text() + "\n")
    repinned = _events(project.serve("--once"))
    assert _kinds(repinned) == {nightly: "updated", hourly: "updated"}

    wait_for("the list of schedules to show both",
             lambda: {f"mgt-schedule-{nightly}", f"mgt-schedule-{hourly}"}
             <= _run(_listed(address)))
    project.write(_table(nightly, 'cron = "30 4 * * *"\ntimezone = "Europe/Paris"'))
    removed = _events(project.serve("--once"))
    assert _kinds(removed) == {nightly: "unchanged", hourly: "deleted"}
    assert not _run(_exists(address, f"mgt-schedule-{hourly}"))
    assert _run(_exists(address, f"mgt-schedule-{nightly}"))


def test_schedules_of_another_task_queue_or_not_made_by_mgt_are_left_alone(
        project: Project) -> None:
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleIntervalSpec,
        ScheduleSpec,
    )

    address = project.cluster.address
    theirs, foreign = project.name("theirs"), project.name("foreign")

    async def make() -> None:
        client = await _client(address)
        for name, memo in ((theirs, {"mgt_owner": "mgt serve"}), (foreign, None)):
            await client.create_schedule(f"mgt-schedule-{name}", Schedule(
                action=ScheduleActionStartWorkflow("mgt.run", {}, id=f"mgt-schedule-{name}",
                                                   task_queue="another-project"),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))])),
                memo=memo)

    _run(make())
    wait_for("the list of schedules to show them",
             lambda: {f"mgt-schedule-{theirs}", f"mgt-schedule-{foreign}"}
             <= _run(_listed(address)))
    project.write("")
    assert _kinds(_events(project.serve("--once"))) == {}  # deleted neither
    assert _run(_exists(address, f"mgt-schedule-{theirs}"))
    for name, why in ((theirs, "starts runs on task queue 'another-project'"),
                      (foreign, "exists and was not made by mgt serve")):
        project.write(_table(name, 'every = "1h"'))
        proc = project.serve("--once")
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"mgt: schedule '{name}': Temporal schedule "
                                      f"mgt-schedule-{name} {why}")
        assert len(proc.stderr.splitlines()) == 1


def test_a_triggered_schedule_runs_on_a_worker_and_is_mirrored(project: Project) -> None:
    address, runs = project.cluster.address, project.cluster.work / "runs"
    daily = project.name("daily")
    sid = f"mgt-schedule-{daily}"
    project.write(_table(daily, 'every = "24h"'))
    project.cluster.worker("a")
    serve = spawn("serve", "--engine", "temporal", "--runs-dir", runs,
                  cwd=project.cluster.work)

    def finished() -> list[str]:
        return sorted(p.name for p in runs.iterdir()
                      if any(e["type"] == "run_finished" for e in journal(p)))

    wait_for("the run a new schedule makes at once", lambda: len(finished()) == 1, serve)

    async def trigger() -> None:
        await (await _client(address)).get_schedule_handle(sid).trigger()

    _run(trigger())
    wait_for("the triggered run", lambda: len(finished()) == 2, serve)
    listed = mgt("runs", "--runs-dir", runs, "--json", cwd=project.cluster.work)
    records = json.loads(listed.stdout)
    assert sorted(r["run_id"] for r in records) == finished()
    assert all(r["run_id"].startswith(f"{sid}-") for r in records)
    assert {r["status"] for r in records} == {"succeeded"}
    run_id = finished()[-1]
    shown = mgt("show", run_id, "--runs-dir", runs, "--json", cwd=project.cluster.work)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["path"] == ["tick", "ok"]
    assert summary["outputs"]["tick"]["stdout"] == "hello\n"
    info = json.loads((runs / run_id / "run.json").read_text())
    assert info["engine"] == "temporal" and info["schedule"] == daily
    assert info["status"] == "succeeded" and info["inputs"] == {"note": "hello"}

    serve.send_signal(signal.SIGTERM)
    out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert f"{daily}: run {run_id} succeeded" in out
    assert "the schedules and their runs go on on the Temporal server" in out
    assert _run(_exists(address, sid))  # stopping the follower leaves the schedule be


def test_a_follower_back_after_more_than_ten_runs_mirrors_each_of_them(
    project: Project,
) -> None:
    # A schedule's description lists its last 10 runs only: a follower that was away
    # while 12 ran finds the others in the server's list of the schedule's workflows.
    from temporalio.client import ScheduleOverlapPolicy

    address, runs = project.cluster.address, project.cluster.work / "runs"
    often = project.name("often")
    sid = f"mgt-schedule-{often}"
    project.write(_table(often, 'every = "24h"'))
    project.cluster.worker("a")

    def finished() -> list[str]:
        return sorted(p.name for p in runs.iterdir()
                      if any(e["type"] == "run_finished" for e in journal(p)))

    serve = spawn("serve", "--engine", "temporal", "--runs-dir", runs,
                  cwd=project.cluster.work)
    wait_for("the run a new schedule makes at once", lambda: len(finished()) == 1, serve)
    serve.send_signal(signal.SIGTERM)
    serve.communicate(timeout=60)
    assert serve.returncode == 0

    async def twelve_more() -> None:
        handle = (await _client(address)).get_schedule_handle(sid)
        for _ in range(12):  # a run's id holds its second: one trigger a second
            await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
            await asyncio.sleep(1.1)
        for _ in range(600):
            info = (await handle.describe()).info
            if info.num_actions >= 13 and not info.running_actions:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the schedule made {info.num_actions} runs, not 13")

    _run(twelve_more())
    assert len(finished()) == 1
    serve = spawn("serve", "--engine", "temporal", "--runs-dir", runs,
                  cwd=project.cluster.work)
    wait_for("each of the 13 runs mirrored", lambda: len(finished()) == 13, serve)
    serve.send_signal(signal.SIGTERM)
    out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert f"{often}: looking again at 13 earlier run(s) of the schedule" in out
    records = json.loads(mgt("runs", "--runs-dir", runs, "--json",
                             cwd=project.cluster.work).stdout)
    assert len(records) == 13 and {r["status"] for r in records} == {"succeeded"}


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    shutil.copy(MACHINES / "tick.mgt", tmp_path / "tick.mgt")
    (tmp_path / "mgt.toml").write_text(_table("nightly", 'cron = "0 3 * * *"'))
    proc = mgt("serve", "--engine", "temporal", "--once", "--temporal-address", "127.0.0.1:1",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: cannot reach the Temporal server at 127.0.0.1:1")
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(("timing", "message"), [
    ('cron = "0 3 1 * 1"', "cron '0 3 1 * 1': both day-of-month and day-of-week are set"),
    ('cron = "0 3 L * *"', "cron '0 3 L * *': day-of-month 'L': only numbers"),
    ('cron = "0 3 * * * 10"', "cron '0 3 * * * 10': a Temporal cron has minute hour "
                              "day-of-month month day-of-week (5 fields), this one has 6"),
])
def test_a_table_temporal_cannot_express_is_refused_before_the_server(
        tmp_path: Path, timing: str, message: str) -> None:
    shutil.copy(MACHINES / "tick.mgt", tmp_path / "tick.mgt")
    (tmp_path / "mgt.toml").write_text(_table("nightly", timing))
    # an unreachable server: the table is refused before any connection is tried
    proc = mgt("serve", "--engine", "temporal", "--once", "--temporal-address", "127.0.0.1:1",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mgt: mgt.toml: [[schedule]] 'nightly': {message}")
    assert proc.stderr.rstrip().endswith("Temporal cannot express it (use mgt serve without "
                                         "--engine temporal)")
    assert len(proc.stderr.splitlines()) == 1


def test_a_machine_that_does_not_check_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "tick.mgt").write_text("machine broken\n\nstate a:\n    on done -> nowhere\n")
    (tmp_path / "mgt.toml").write_text(_table("nightly", 'every = "1h"'))
    proc = mgt("serve", "--engine", "temporal", "--once", "--temporal-address", "127.0.0.1:1",
               cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: mgt.toml: [[schedule]] 'nightly': machine ")
    assert "see mgt check" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
