"""Fan-out on Temporal: each item is an activity of its own, against a real dev server and
real `mgt worker` processes. A worker lost mid-fan-out costs only the items it had under
way; `[temporal] spread` sends self-contained items to every worker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import Cluster
from tests.engines.test_temporal_engines import engine, work  # noqa: F401  (fixtures)
from tests.runtime.procs import journal, mgt, only_run, spawn, wait_for

RESTART = """\
machine restart "four items, two quick and two slow; the worker dies under the slow ones"

input items: json = [0, 1, 2, 3]

state each:
    for i in input.items max 4
    run command "echo $i >> started.log; if [ $i -ge 2 ]; then sleep 4; fi; echo $i >> done.log"
    with i = i
    on done -> ok

final ok: succeed
"""

POLICY = """\
machine policy "one item fails, one is tolerated; then one too many"

input items: json = ["a", "bad", "c", "d"]

state tolerant:
    for x in input.items max 2
    tolerate 1 failure
    run command "test $x != bad && echo ok-$x"
    with x = x
    on done -> strict

state strict:
    for x in input.items max 1
    cancel on first failure
    run command "echo $x >> strict.log; test $x != bad"
    with x = x
    on done -> ok
    on error -> failed

final ok: succeed
final failed: fail "an item failed"
"""

SPREAD = """\
machine spread "six self-contained items over every worker"

input items: json = [0, 1, 2, 3, 4, 5]

state each:
    for i in input.items
    run command "sleep 1; echo $i"
    with i = i
    on done -> ok

final ok: succeed
"""


def _items(events: list[dict[str, Any]], kind: str) -> list[tuple[Any, ...]]:
    return sorted((e["state"], e["attempt"], e["index"], e.get("outcome"))
                  for e in events if e["type"] == kind)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_restarted_mid_fan_out_loses_only_its_unfinished_items(
        cluster: Cluster, sig: signal.Signals) -> None:
    (cluster.work / "restart.mgt").write_text(RESTART)
    worker = cluster.worker("a")
    proc = spawn("exec", cluster.work / "restart.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", "--json", cwd=cluster.work)
    done_log, started_log = cluster.work / "done.log", cluster.work / "started.log"

    def quick_ones_done_slow_ones_running() -> bool:
        return done_log.exists() and sorted(done_log.read_text().split()) == ["0", "1"] \
            and {"2", "3"} <= set(started_log.read_text().split())

    wait_for("two items to finish and two to run", quick_ones_done_slow_ones_running, proc)
    run_id = only_run(cluster.work / "runs").name
    wait_for("the finished items to reach the run",
             lambda: len(_items(journal(cluster.work / "runs" / run_id), "item_finished"))
             == 2, proc)
    os.kill(worker.pid, sig)  # SIGTERM: its items are cut short, none of them failed
    worker.communicate()
    cluster.worker("a")  # the same worker, started again (a process of its own)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    # the finished items were not made again; the two cut short were, once each
    assert sorted(done_log.read_text().split()) == ["0", "1", "2", "3"]
    assert sorted(started_log.read_text().split()) == ["0", "1", "2", "2", "3", "3"]
    events = journal(cluster.work / "runs" / run_id)
    # only the items cut short were lost (a stopping worker may be seen lost twice by one)
    assert sorted({e["item"] for e in events if e["type"] == "worker_lost"}) == [2, 3]
    assert _items(events, "item_finished") == [("each", 1, i, "done") for i in range(4)]
    assert [(e["state"], e["attempt"], e["outcome"]) for e in events
            if e["type"] == "attempt_finished"] == [("each", 1, "done")]


def test_items_are_activities_of_their_own(cluster: Cluster) -> None:
    from temporalio.client import Client

    (cluster.work / "spread.mgt").write_text(SPREAD)
    cluster.worker("a")
    proc = mgt("exec", cluster.work / "spread.mgt", "--engine", "temporal", "--runs-dir",
               cluster.work / "runs", "--json", cwd=cluster.work)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]

    async def scheduled() -> list[str]:
        client = await Client.connect(cluster.address)
        history = await client.get_workflow_handle(run_id).fetch_history()
        return [e.activity_task_scheduled_event_attributes.activity_type.name
                for e in history.events
                if e.HasField("activity_task_scheduled_event_attributes")]

    import asyncio

    assert sorted(asyncio.run(scheduled())) == ["mgt.claim"] + ["mgt.item"] * 6


def test_spread_items_run_on_every_worker(cluster: Cluster) -> None:
    with (cluster.work / "mgt.toml").open("a") as toml:
        toml.write('spread = ["each"]\n')
    (cluster.work / "spread.mgt").write_text(SPREAD)
    cluster.worker("a", max_concurrent=2)
    cluster.worker("b", max_concurrent=2)
    proc = mgt("exec", cluster.work / "spread.mgt", "--engine", "temporal", "--runs-dir",
               cluster.work / "runs", "--json", cwd=cluster.work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert [item["output"]["stdout"] for item in summary["outputs"]["each"]] == \
        [f"{i}\n" for i in range(6)]
    # each item in a directory of its own, on whichever worker took it: both took some
    run_id = summary["run_id"]
    took = {name: sorted(p.name for p in (cluster.work / "workers" / name / ".items").glob(
        f"{run_id}.each.1.*")) for name in ("a", "b")}
    assert all(took.values()), took
    assert sorted(int(n.rsplit(".", 1)[1]) for names in took.values() for n in names) == \
        list(range(6))


@pytest.mark.parametrize("spread", ["3", '["each", 4]'])
def test_a_bad_spread_setting_is_one_line(cluster: Cluster, spread: str) -> None:
    with (cluster.work / "mgt.toml").open("a") as toml:
        toml.write(f"spread = {spread}\n")
    (cluster.work / "spread.mgt").write_text(SPREAD)
    proc = mgt("exec", cluster.work / "spread.mgt", "--engine", "temporal", "--runs-dir",
               cluster.work / "runs", cwd=cluster.work)
    assert proc.returncode == 2
    assert proc.stderr.endswith("[temporal].spread: expected true, false or a list of state "
                                "names\n"), proc.stderr
    assert not any((cluster.work / "runs").iterdir())


def test_spreading_a_state_that_is_no_fan_out_is_refused_before_any_run(
        cluster: Cluster) -> None:
    with (cluster.work / "mgt.toml").open("a") as toml:
        toml.write('spread = ["each", "other"]\n')
    (cluster.work / "m.mgt").write_text(SPREAD.replace("on done -> ok", "on done -> other")
                                        .replace("final ok", 'state other:\n    run command '
                                                 '"true"\n    on done -> ok\n\nfinal ok'))
    proc = mgt("exec", cluster.work / "m.mgt", "--engine", "temporal", "--runs-dir",
               cluster.work / "runs", cwd=cluster.work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("mgt: [temporal].spread: state 'other' of machine spread is not "
                           "a fan-out\n")
    assert not any((cluster.work / "runs").iterdir())


def test_the_failure_policy_is_the_same_on_both_engines(engine: str,  # noqa: F811
                                                         work: Path) -> None:  # noqa: F811
    (work / "policy.mgt").write_text(POLICY)
    proc = mgt("exec", work / "policy.mgt", "--engine", engine, "--runs-dir", work / "runs",
               "--json", cwd=work)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["path"] == ["tolerant", "strict", "failed"]
    assert [(i["index"], i["outcome"]) for i in summary["outputs"]["tolerant"]] == \
        [(0, "done"), (1, "error"), (2, "done"), (3, "done")]
    # one at a time and cancel on first failure: "bad" stops the two after it unstarted
    assert (work / "strict.log").read_text().split() == ["a", "bad"]
    events = journal(work / "runs" / summary["run_id"])
    strict = sorted((e["index"], e["outcome"]) for e in events
                    if e["type"] == "item_finished" and e["state"] == "strict")
    assert strict == [(0, "done"), (1, "error"), (2, "cancelled"), (3, "cancelled")]
