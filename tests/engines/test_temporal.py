"""`mgt exec --engine temporal` against a real dev server and real `mgt worker` processes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.engines.conftest import Cluster
from tests.runtime.procs import journal, mgt, only_run, spawn, wait_for

CHAIN = """\
machine chain "three steps, the second reads the first"

state first:
    run command "echo '{\\"n\\": 2}' > n.json; echo first >> first.log"
    on done -> second

state second:
    run command "cat n.json"
    with n = first.output.exit_code
    on done -> third

state third:
    run command "echo third"
    on done -> ok

final ok: succeed "all three"
"""

SLOW = """\
machine slow "a long step a worker dies in"

state first:
    run command "echo first >> first.log"
    on done -> slow

state slow:
    run command "echo started >> slow.log; sleep 5; echo finished >> done.log"
    on done -> ok

final ok: succeed
"""


def _runs_on(cluster: Cluster, run_id: str) -> list[str]:
    """The workers whose work directory holds files of run `run_id`."""
    root = cluster.work / "workers"
    return sorted(p.name for p in root.iterdir() if (p / run_id).is_dir()) \
        if root.exists() else []


def test_runs_end_to_end_on_two_workers_each_run_on_one(cluster: Cluster) -> None:
    (cluster.work / "chain.mgt").write_text(CHAIN)
    cluster.worker("a")
    cluster.worker("b")
    procs = []
    for index in range(4):
        sub = cluster.work / f"r{index}"
        sub.mkdir()
        procs.append(spawn("exec", cluster.work / "chain.mgt", "--engine", "temporal",
                           "--runs-dir", cluster.work / "runs", "--json", cwd=sub))
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    for summary in summaries:
        assert summary["status"] == "succeeded"
        assert summary["path"] == ["first", "second", "third", "ok"]
        run_id = summary["run_id"]
        # file-bound work: every attempt of a run ran on the one worker it claimed
        owners = _runs_on(cluster, run_id)
        assert len(owners) == 1, owners
        states = cluster.work / "workers" / owners[0] / run_id / "states"
        assert sorted(p.name for p in states.iterdir()) == ["first", "second", "third"]
    assert summaries[0]["outputs"]["second"]["stdout"] == '{"n": 2}\n'
    # the local mirror reads like a file run
    run_id = summaries[0]["run_id"]
    shown = mgt("show", run_id, "--runs-dir", cluster.work / "runs", "--json", cwd=cluster.work)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["path"] == ["first", "second", "third", "ok"]
    listed = mgt("runs", "--runs-dir", cluster.work / "runs", "--json", cwd=cluster.work)
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == \
        sorted(s["run_id"] for s in summaries)
    again = mgt("resume", run_id, "--runs-dir", cluster.work / "runs", cwd=cluster.work)
    assert again.returncode == 0 and "nothing to resume" in again.stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_killed_mid_attempt_and_the_run_finishes_on_the_other(
        cluster: Cluster, sig: signal.Signals) -> None:
    (cluster.work / "slow.mgt").write_text(SLOW)
    workers = {"a": cluster.worker("a"), "b": cluster.worker("b")}
    proc = spawn("exec", cluster.work / "slow.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", "--json", cwd=cluster.work)
    slow_log = cluster.work / "slow.log"
    wait_for("the slow attempt to start", slow_log.exists, proc)
    run_id = only_run(cluster.work / "runs").name
    owners = _runs_on(cluster, run_id)
    assert len(owners) == 1, owners
    victim = owners[0]
    os.kill(workers[victim].pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "succeeded"
    # what had finished was not done again; the attempt cut short was made again elsewhere
    assert (cluster.work / "first.log").read_text() == "first\n"
    assert slow_log.read_text() == "started\nstarted\n"
    survivor = "b" if victim == "a" else "a"
    assert (cluster.work / "workers" / survivor / run_id / "states" / "slow" / "2").is_dir()
    events = journal(cluster.work / "runs" / run_id)
    lost = [e for e in events if e["type"] == "worker_lost"]
    assert [(e["state"], e["attempt"]) for e in lost] == [("slow", 1)]
    finished = [(e["state"], e["attempt"], e["outcome"]) for e in events
                if e["type"] == "attempt_finished"]
    assert finished == [("first", 1, "done"), ("slow", 2, "done")]


LONG = """\
machine long "a step to cancel"

state wait:
    run command "echo $$ > pid; sleep 60"
    on done -> ok

final ok: succeed
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("how", ["mgt cancel", "ctrl-c"])
def test_cancel_interrupts_the_run_and_ends_its_processes(cluster: Cluster, how: str) -> None:
    (cluster.work / "long.mgt").write_text(LONG)
    cluster.worker("a")
    proc = spawn("exec", cluster.work / "long.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", cwd=cluster.work)
    pid_file = cluster.work / "pid"
    wait_for("the step to start", lambda: pid_file.exists() and pid_file.read_text().strip()
             != "", proc)
    pid = int(pid_file.read_text())
    run_id = only_run(cluster.work / "runs").name
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
    else:
        cancelled = mgt("cancel", run_id, "--runs-dir", cluster.work / "runs", cwd=cluster.work)
        assert cancelled.returncode == 0, cancelled.stderr
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"run {run_id} interrupted in state 'wait'" in err
    events = journal(cluster.work / "runs" / run_id)
    assert events[-1]["type"] == "run_interrupted"
    assert events[-1]["signal"] == "cancel"
    wait_for("the step's process to be ended", lambda: not _alive(pid))
    again = mgt("resume", run_id, "--runs-dir", cluster.work / "runs", cwd=cluster.work)
    assert again.returncode == 2
    assert again.stderr == (f"mgt: run {run_id} was cancelled on Temporal and cannot be "
                            "resumed; start it again with mgt exec\n")


def test_an_unreachable_server_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    (tmp_path / "long.mgt").write_text(LONG)
    proc = mgt("exec", tmp_path / "long.mgt", "--engine", "temporal", "--temporal-address",
               "127.0.0.1:1", "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: cannot reach the Temporal server at 127.0.0.1:1")
    assert "Traceback" not in proc.stderr
    assert not any((tmp_path / "runs").iterdir())


def test_cancel_of_a_local_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "long.mgt").write_text(LONG.replace("sleep 60", "true"))
    done = mgt("exec", tmp_path / "long.mgt", "--runs-dir", tmp_path / "runs", "--json",
               cwd=tmp_path)
    run_id = json.loads(done.stdout)["run_id"]
    proc = mgt("cancel", run_id, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (f"mgt: run {run_id} does not run on Temporal; stop a local run "
                           "with Ctrl-C or SIGTERM of its mgt exec\n")


def test_resume_re_attaches_to_a_run_whose_follower_was_killed(cluster: Cluster) -> None:
    (cluster.work / "slow.mgt").write_text(SLOW.replace("sleep 5", "sleep 2"))
    cluster.worker("a")
    proc = spawn("exec", cluster.work / "slow.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", cwd=cluster.work)
    wait_for("the slow attempt to start", (cluster.work / "slow.log").exists, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the follower only: the run goes on on the server
    proc.communicate()
    run_id = only_run(cluster.work / "runs").name
    resumed = mgt("resume", run_id, "--runs-dir", cluster.work / "runs", "--json",
                  cwd=cluster.work)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["path"] == ["first", "slow", "ok"]
    events = journal(cluster.work / "runs" / run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run_finished"
    assert (cluster.work / "slow.log").read_text() == "started\n"  # made once, not again


def test_resume_of_a_run_that_ended_with_no_worker_left_reads_its_history(
        cluster: Cluster) -> None:
    import asyncio

    from temporalio.client import Client, WorkflowExecutionStatus

    (cluster.work / "slow.mgt").write_text(SLOW.replace("sleep 5", "sleep 1"))
    worker = cluster.worker("a")
    proc = spawn("exec", cluster.work / "slow.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", cwd=cluster.work)
    wait_for("the slow attempt to start", (cluster.work / "slow.log").exists, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the follower only
    proc.communicate()
    run_id = only_run(cluster.work / "runs").name

    async def status() -> WorkflowExecutionStatus | None:
        client = await Client.connect(cluster.address)
        return (await client.get_workflow_handle(run_id).describe()).status

    wait_for("the run to end on the server",
             lambda: asyncio.run(status()) == WorkflowExecutionStatus.COMPLETED)
    worker.send_signal(signal.SIGTERM)  # no worker left to answer a query
    worker.communicate(timeout=30)
    resumed = mgt("resume", run_id, "--runs-dir", cluster.work / "runs", "--json",
                  cwd=cluster.work)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["path"] == ["first", "slow", "ok"]
    events = journal(cluster.work / "runs" / run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run_finished"


BIG = """\
machine big "a large output, routed on and bound from"

import schemas from "schemas"

state make:
    run command "cat big.json"
    output Big
    on done when output.n == 7 -> use
    on done -> wrong

state use:
    run command "echo $n"
    with n = make.output.n
    on done -> ok

final ok: succeed
final wrong: fail
"""


def test_a_large_output_goes_to_the_store_and_only_its_reference_to_the_history(
        cluster: Cluster) -> None:
    (cluster.work / "schemas").mkdir()
    (cluster.work / "schemas" / "Big.json").write_text(json.dumps(
        {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}))
    with (cluster.work / "mgt.toml").open("a") as toml:
        toml.write('store = "store"\nstore_min_bytes = 1000\n')
    (cluster.work / "big.mgt").write_text(BIG)
    (cluster.work / "big.json").write_text(json.dumps({"n": 7, "pad": "x" * 5000}))
    cluster.worker("a")
    proc = mgt("exec", cluster.work / "big.mgt", "--engine", "temporal", "--runs-dir",
               cluster.work / "runs", "--json", cwd=cluster.work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["path"] == ["make", "use", "ok"]  # the guard read the stored value
    assert summary["outputs"]["use"]["stdout"] == "7\n"  # and so did the binding
    events = journal(cluster.work / "runs" / summary["run_id"])
    made = next(e for e in events if e["type"] == "attempt_finished" and e["state"] == "make")
    ref = made["output"]["$mgt_stored"]
    stored = cluster.work / "store" / ref[:2] / f"{ref}.json"
    assert json.loads(stored.read_text())["pad"] == "x" * 5000
    assert "x" * 5000 not in json.dumps(events)


WORKSPACE = """\
machine workspace "a scratch copy of the target, then a long step that works in it"

input repo: path = "target"

state prepare:
    run builtin prepare-repo
    with repo = input.repo
    on done -> work

state work:
    run command "echo started >> ../work.log; cat $dir/marker; sleep 5"
    with dir = prepare.output.repo
    on done -> ok

final ok: succeed
"""


def test_a_run_that_loses_its_worker_makes_its_workspace_again_on_the_next(
        cluster: Cluster) -> None:
    import shutil

    (cluster.work / "target").mkdir()
    (cluster.work / "target" / "marker").write_text("the target\n")
    (cluster.work / "ws.mgt").write_text(WORKSPACE)
    (cluster.work / "sub").mkdir()
    workers = {"a": cluster.worker("a"), "b": cluster.worker("b")}
    proc = spawn("exec", cluster.work / "ws.mgt", "--engine", "temporal", "--runs-dir",
                 cluster.work / "runs", "--json", cwd=cluster.work / "sub")
    wait_for("the long step to start", (cluster.work / "work.log").exists, proc)
    run_id = only_run(cluster.work / "runs").name
    victim = _runs_on(cluster, run_id)[0]
    os.kill(workers[victim].pid, signal.SIGKILL)
    workers[victim].communicate()
    shutil.rmtree(cluster.work / "workers" / victim)  # its machine is gone, files and all
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "succeeded", summary
    survivor = "b" if victim == "a" else "a"
    # the step ran again in a scratch copy made on the survivor, not in the lost one
    moved = summary["outputs"]["prepare"]["repo"]
    assert moved.startswith(str(cluster.work / "workers" / survivor / run_id)), moved
    assert summary["outputs"]["work"]["stdout"] == "the target\n"
    events = journal(cluster.work / "runs" / run_id)
    restored = [e for e in events if e["type"] == "workspace_restored"]
    assert [(e["state"], e["outcome"]) for e in restored] == [("prepare", "done")]
    assert restored[0]["output"]["repo"] == moved
    # not an attempt: prepare was made once as far as the run's attempts go
    assert [(e["state"], e["attempt"]) for e in events if e["type"] == "attempt_started"] \
        == [("prepare", 1), ("work", 1), ("work", 2)]


CHILD = """\
machine child "two steps, the second long"

input tag: str = "x"

state one:
    run command "echo $tag >> one.log"
    with tag = input.tag
    on done -> two

state two:
    run command "echo $tag >> two-started.log; sleep 4; echo $tag >> two.log"
    with tag = input.tag
    on done -> ok

final ok: succeed
"""

PARENT = """\
machine parent "a child machine, then a fan-out of them"

state kid:
    run machine "child.mgt"
    with tag = "solo"
    on done -> kids

state kids:
    for t in ["p", "q"]
    run machine "child.mgt"
    with tag = t
    on done -> ok

final ok: succeed
"""


def _reported(cluster: Cluster, run_id: str, needle: str) -> int:
    """How many of the run's activities under way last heartbeated details holding `needle`."""
    import asyncio

    from temporalio.client import Client
    from temporalio.converter import DataConverter

    async def look() -> int:
        client = await Client.connect(cluster.address)
        described = await client.get_workflow_handle(run_id).describe()
        convert = DataConverter.default.payload_converter
        found = 0
        for pending in described.raw_description.pending_activities:
            if pending.HasField("heartbeat_details"):
                details = convert.from_payloads(pending.heartbeat_details.payloads)
                found += any(needle in text for text in (details[-1] or {}).values())
        return found

    return asyncio.run(look())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_child_machine_cut_short_resumes_on_the_next_worker(
        cluster: Cluster, sig: signal.Signals) -> None:
    (cluster.work / "child.mgt").write_text(CHILD)
    (cluster.work / "parent.mgt").write_text(PARENT)
    workers = {"a": cluster.worker("a"), "b": cluster.worker("b")}
    proc = spawn("exec", cluster.work / "parent.mgt", "--engine", "temporal", "--runs-dir",
                 cluster.work / "runs", "--json", cwd=cluster.work)
    started = cluster.work / "two-started.log"

    def kill_when(tags: set[str], state: str) -> None:
        wait_for(f"the long steps of {sorted(tags)} to start", lambda: started.exists()
                 and tags <= set(started.read_text().split()), proc)
        run_id = only_run(cluster.work / "runs").name
        # the heartbeats that carry the children's progress have reached the server
        wait_for("the children's first states in the heartbeats", lambda: _reported(
            cluster, run_id, '"type":"attempt_finished","state":"one"') >= len(tags), proc)
        victim, = (name for name in _runs_on(cluster, run_id)  # the one running `state`
                   if (cluster.work / "workers" / name / run_id / "states" / state).is_dir())
        os.kill(workers[victim].pid, sig)
        workers[victim].communicate()
        workers[victim] = cluster.worker(victim)

    kill_when({"solo"}, "kid")
    kill_when({"p", "q"}, "kids")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    # each child's first state ran once: the children were resumed, not started over
    assert sorted((cluster.work / "one.log").read_text().split()) == ["p", "q", "solo"]
    assert sorted((cluster.work / "two.log").read_text().split()) == ["p", "q", "solo"]
    assert sorted(started.read_text().split()) == ["p", "p", "q", "q", "solo", "solo"]


def test_a_worker_whose_child_machine_differs_from_the_runs_start_refuses_it(
        cluster: Cluster) -> None:
    (cluster.work / "child.mgt").write_text(CHILD.replace("sleep 4", "sleep 0"))
    (cluster.work / "slowparent.mgt").write_text(SLOW.replace(
        'state slow:\n    run command "echo started >> slow.log; sleep 5; '
        'echo finished >> done.log"',
        'state slow:\n    run machine "child.mgt"').replace(
        'echo first >> first.log"', 'echo first >> first.log; sleep 30"'))  # killed in it
    first = cluster.worker("a")
    proc = spawn("exec", cluster.work / "slowparent.mgt", "--engine", "temporal",
                 "--runs-dir", cluster.work / "runs", "--json", cwd=cluster.work)
    wait_for("the first state to run", (cluster.work / "first.log").exists, proc)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    child = cluster.work / "child.mgt"
    child.write_text(child.read_text().replace("echo $tag >> one.log", "echo changed"))
    cluster.worker("b")  # a fresh worker loads the changed file
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"{child.resolve()} differs here from the run's start" in out + err, out + err
    assert not (cluster.work / "one.log").exists()  # nothing ran from the changed file
