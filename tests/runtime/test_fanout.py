"""Fan-out states run by a real `mgt exec`: the cap, input order, the failure policy,
cancellation of running items, and a kill -9 mid-fan-out resumed with finished items kept.

Items are real shell commands; they leave marks in the working directory so the tests
see what ran, how many at once and how often, never how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.procs import (
    journal,
    kill_processes_with,
    mgt,
    only_run,
    spawn,
    wait_for,
    wait_for_event,
)

#: Each item marks itself running, notes how many are running, works, then unmarks.
COUNTING = ("mkdir -p running; touch running/$n; ls running | wc -l >> peaks; "
            "echo $n >> ran; sleep 0.2; rm running/$n; echo out-$n")


def _machine(body: str, items: str = '["a", "b", "c", "d", "e", "f"]') -> str:
    return f"""\
machine fan
input items: json = {items}

state each:
{body}
    on done when count(output, it.outcome == "done") == len(output) -> all_done
    on done -> some_done
    on error -> failed

final all_done: succeed
final some_done: succeed "some items failed"
final failed: fail
"""


def _exec(work: Path, text: str, *extra: str) -> dict[str, Any]:
    (work / "fan.mgt").write_text(text)
    proc = mgt("exec", "fan.mgt", "--runs-dir", "runs", "--json", *extra, cwd=work)
    assert proc.stdout, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def _items(work: Path) -> list[dict[str, Any]]:
    events = journal(only_run(work / "runs"))
    finished = [e for e in events if e["type"] == "attempt_finished" and e["state"] == "each"]
    output: list[dict[str, Any]] = finished[-1]["output"]
    return output


def test_items_run_under_the_cap_and_come_back_in_input_order(tmp_path: Path) -> None:
    body = f'    for n in input.items max 2\n    run command "{COUNTING}"\n    with n = n\n'
    summary = _exec(tmp_path, _machine(body))
    assert summary["final"] == "all_done", summary
    peaks = [int(x) for x in (tmp_path / "peaks").read_text().split()]
    assert len(peaks) == 6 and max(peaks) <= 2  # never more than `max 2` at once
    items = _items(tmp_path)
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4, 5]
    assert [i["key"] for i in items] == ["a", "b", "c", "d", "e", "f"]
    assert [i["output"]["stdout"] for i in items] == [f"out-{k}\n" for k in "abcdef"]
    assert {i["outcome"] for i in items} == {"done"}


@pytest.mark.parametrize(("tolerate", "final"), [("", "failed"), ("    tolerate 1 failure\n",
                                                                    "some_done")])
def test_the_failure_policy_decides_the_states_outcome(tmp_path: Path, tolerate: str,
                                                       final: str) -> None:
    body = ('    for n in input.items max 3\n    run command "test $n != c"\n'
            f"    with n = n\n{tolerate}")
    summary = _exec(tmp_path, _machine(body))
    assert summary["final"] == final, summary
    items = _items(tmp_path)
    assert [i["outcome"] for i in items] == ["done", "done", "error", "done", "done", "done"]
    assert "exited with 1" in items[2]["error"]


def test_cancel_on_first_failure_stops_running_items_and_skips_the_rest(tmp_path: Path
                                                                        ) -> None:
    # item a fails at once; b and c sleep until they are stopped; d..f never start
    step = ('if [ $n = a ]; then exit 3; fi; echo $$ >> pids; sleep 41.5; echo woke >> woke')
    body = (f'    for n in input.items max 3\n    run command "{step}"\n    with n = n\n'
            "    cancel on first failure\n    timeout 2m\n")
    try:
        summary = _exec(tmp_path, _machine(body))
    finally:
        kill_processes_with("sleep 41.5")
    assert summary["final"] == "failed", summary
    items = _items(tmp_path)
    assert items[0]["outcome"] == "error"
    assert {i["outcome"] for i in items[1:]} == {"cancelled"}
    assert not (tmp_path / "woke").exists()
    for pid in (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else []:
        assert not Path(f"/proc/{pid}").exists() or _zombie(int(pid)), "an item kept running"


def test_an_item_name_is_bound_per_item_and_lists_of_objects_are_keyed(tmp_path: Path) -> None:
    items = '[{"id": "x1", "size": 2}, {"id": "x2", "size": 5}]'
    body = ('    for job in input.items max 2\n    run command "echo $size"\n'
            "    with size = job.size * 10\n")
    summary = _exec(tmp_path, _machine(body, items))
    assert summary["final"] == "all_done", summary
    results = _items(tmp_path)
    assert [r["key"] for r in results] == ["x1", "x2"]
    assert [r["output"]["stdout"] for r in results] == ["20\n", "50\n"]


def test_an_empty_list_is_done_with_no_items(tmp_path: Path) -> None:
    body = '    for n in input.items max 2\n    run command "exit 1"\n    with n = n\n'
    summary = _exec(tmp_path, _machine(body, "[]"))
    assert summary["final"] == "all_done", summary
    assert _items(tmp_path) == []


def test_kill_9_mid_fan_out_resumes_with_finished_items_kept(tmp_path: Path) -> None:
    # a and b finish at once; c and d wait for a `go` file that appears only after the kill
    step = ("echo $n >> ran; if [ $n = c ] || [ $n = d ]; then "
            "while [ ! -e go ]; do sleep 0.05; done; fi; echo out-$n")
    body = (f'    for n in input.items max 2\n    run command "{step}"\n    with n = n\n'
            "    timeout 2m\n")
    (tmp_path / "fan.mgt").write_text(_machine(body, '["a", "b", "c", "d"]'))
    proc = spawn("exec", "fan.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        run_dir = wait_for_event(
            tmp_path / "runs", proc,
            lambda e: e["type"] == "process_started" and e.get("item") == 3,
            "item d to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted((tmp_path / "ran").read_text().split()) == ["a", "b", "c", "d"]
    finished = [e["index"] for e in journal(run_dir) if e["type"] == "item_finished"]
    assert sorted(finished) == [0, 1]
    (tmp_path / "go").touch()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path)
    summary = json.loads(resumed.stdout)
    assert summary["final"] == "all_done", resumed.stderr
    # a and b ran once (kept); c and d, cut short, ran again
    assert sorted((tmp_path / "ran").read_text().split()) == ["a", "b", "c", "c", "d", "d"]
    items = _items(tmp_path)
    assert [i["output"]["stdout"] for i in items] == [f"out-{k}\n" for k in "abcd"]


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_retry_clauses_retry_each_item_on_its_own(tmp_path: Path) -> None:
    # b and d fail on their first try only; the others never fail
    step = ('echo $n >> ran; if [ $n = b ] || [ $n = d ]; then '
            'if [ ! -e tried-$n ]; then touch tried-$n; exit 1; fi; fi')
    body = (f'    for n in input.items max 2\n    run command "{step}"\n    with n = n\n'
            "    retry 1 on error\n")
    summary = _exec(tmp_path, _machine(body, '["a", "b", "c", "d"]'))
    assert summary["final"] == "all_done", summary
    assert sorted((tmp_path / "ran").read_text().split()) == ["a", "b", "b", "c", "d", "d"]
    events = journal(only_run(tmp_path / "runs"))
    assert [e["attempt"] for e in events if e["type"] == "attempt_started"] == [1]


def test_graph_draws_a_fan_out_as_a_region(tmp_path: Path) -> None:
    body = ('    for n in input.items max 3\n    run command "echo $n"\n    with n = n\n'
            "    tolerate 1 failure\n")
    (tmp_path / "fan.mgt").write_text(_machine(body))
    text = mgt("graph", "fan.mgt", cwd=tmp_path).stdout
    assert "each [for n in input.items max 3 (tolerate 1): command echo $n]" in text
    mermaid = mgt("graph", "fan.mgt", "--format", "mermaid", cwd=tmp_path).stdout
    assert "    state each {" in mermaid and "each__each : for n in input.items max 3" in mermaid
    dot = mgt("graph", "fan.mgt", "--format", "dot", cwd=tmp_path).stdout
    assert "subgraph cluster_fanout_0 {" in dot
    assert 'label="for n in input.items max 3 (tolerate 1)"' in dot
    # a fan-out ends with done or error only: no implicit edges for the others
    assert "timeout" not in text


POLECAT = """\
[polecat]
name = "echo"
description = "answers with what it is asked"

[model]
name = "claude-haiku-4-5"

[prompt.system]
content = "Answer briefly."
"""


def test_every_items_cost_counts_toward_the_totals_and_the_budget(tmp_path: Path) -> None:
    (tmp_path / "polecats").mkdir()
    (tmp_path / "polecats" / "echo.toml").write_text(POLECAT)
    (tmp_path / "recorded").mkdir()
    (tmp_path / "recorded" / "each.json").write_text(json.dumps({
        "type": "result", "subtype": "success", "is_error": False, "result": "ok",
        "total_cost_usd": 0.25, "usage": {"input_tokens": 100, "output_tokens": 10}}))
    text = _machine('    for n in input.items max 1\n    run polecat echo prompt "say hi"\n'
                    "    with n = n\n").replace(
        "input items", 'import polecats from "polecats"\ninput items')
    # one at a time: four items spend the $1.00 budget, the fifth and sixth are refused
    summary = _exec(tmp_path, text, "--executor", "replay", "--replay-dir", "recorded",
                    "--budget-usd", "1.0")
    assert summary["final"] == "failed", summary
    items = _items(tmp_path)
    assert [i["outcome"] for i in items] == ["done"] * 4 + ["error"] * 2
    assert "budget exhausted" in items[4]["error"]
    shown = mgt("show", only_run(tmp_path / "runs").name, "--runs-dir", "runs", "--json",
                cwd=tmp_path)
    data = json.loads(shown.stdout)
    assert data["cost_usd"] == pytest.approx(1.0)
    assert data["tokens"] == {"input": 400, "output": 40}
    each = next(s for s in data["states"] if s["state"] == "each")
    assert [i["outcome"] for i in each["items"]] == ["done"] * 4 + ["error"] * 2
    assert each["cost_usd"] == pytest.approx(1.0)


BRANCHES = """\
machine checks
input target: str = "x"

state checks:
    branch lint:
        run command "echo linted $t"
        with t = input.target
    branch tests:
        run command "echo $$ >> pids; {tests}"
        timeout 1m
    branch review:
        run command "sleep 0.2; echo reviewed"
{policy}    on done when output.lint.outcome == "done" and output.tests.outcome == "done" -> clean
    on done -> partly
    on error -> failed

final clean: succeed
final partly: succeed
final failed: fail
"""


def _branches(work: Path, tests: str, policy: str = "") -> dict[str, Any]:
    (work / "b.mgt").write_text(BRANCHES.format(tests=tests, policy=policy))
    proc = mgt("exec", "b.mgt", "--runs-dir", "runs", "--json", cwd=work)
    assert proc.stdout, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def test_branches_run_their_own_steps_and_join_by_name(tmp_path: Path) -> None:
    summary = _branches(tmp_path, "echo tested")
    assert summary["final"] == "clean", summary
    out = summary["outputs"]["checks"]
    assert list(out) == ["lint", "tests", "review"]
    assert out["lint"]["output"]["stdout"] == "linted x\n"
    assert out["tests"]["output"]["stdout"] == "tested\n"
    assert out["review"] == {"outcome": "done", "output": {
        "exit_code": 0, "stdout": "reviewed\n", "stderr": ""}}


def test_a_failed_branch_fails_the_state_unless_tolerated(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _branches(tmp_path / "a", "exit 4")["final"] == "failed"
    summary = _branches(tmp_path / "b", "exit 4", "    tolerate 1 failure\n")
    assert summary["final"] == "partly", summary
    assert summary["outputs"]["checks"]["tests"]["outcome"] == "error"


def test_a_branch_failing_with_cancel_stops_the_others(tmp_path: Path) -> None:
    text = BRANCHES.replace('sleep 0.2; echo reviewed', 'sleep 43.5; echo reviewed')
    (tmp_path / "b.mgt").write_text(text.format(tests="sleep 0.3; exit 2",
                                                policy="    cancel on first failure\n"))
    try:
        proc = mgt("exec", "b.mgt", "--runs-dir", "runs", "--json", cwd=tmp_path)
    finally:
        kill_processes_with("sleep 43.5")
    summary = json.loads(proc.stdout)
    assert summary["final"] == "failed", summary
    events = journal(only_run(tmp_path / "runs"))
    outcomes = {e["key"]: e["outcome"] for e in events if e["type"] == "item_finished"}
    assert outcomes == {"lint": "done", "tests": "error", "review": "cancelled"}


CHILD = """\
machine child
input word: str

state first:
    run command "echo first-$w >> ran; echo $w$w"
    with w = input.word
    on done -> second

state second:
    run command "echo second-$w >> ran; if [ $w = b ]; then {wait}; fi; echo ok"
    with w = input.word
    timeout 2m
    on done -> done

final done: succeed returns first.output.stdout
""".replace("{wait}", "while [ ! -e go ]; do sleep 0.05; done")

PARENT = """\
machine parent
input words: json = ["a", "b"]

state each:
    for w in input.words max 2
    run machine "child.mgt"
    with word = w
    on done when all(output, it.outcome == "done") -> ok
    on done -> some
    on error -> failed

final ok: succeed
final some: succeed
final failed: fail
"""


def test_a_sub_machine_per_item_resumes_inside_the_child_after_kill_9(tmp_path: Path) -> None:
    (tmp_path / "child.mgt").write_text(CHILD)
    (tmp_path / "parent.mgt").write_text(PARENT)
    proc = spawn("exec", "parent.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        wait_for_event(tmp_path / "runs", proc,
                       lambda e: e["type"] == "item_finished" and e["index"] == 0,
                       "item a to finish")
        run_dir = only_run(tmp_path / "runs")
        child_b = run_dir / "machines" / "each-v1-items-1"
        wait_for("child b's second state to start", lambda: any(
            e["type"] == "process_started" and e["state"] == "second"
            for e in journal(child_b)), proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (tmp_path / "go").touch()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path)
    summary = json.loads(resumed.stdout)
    assert summary["final"] == "ok", resumed.stderr
    ran = (tmp_path / "ran").read_text().split()
    # a's child finished before the kill and is kept; b's child resumed at `second`
    assert sorted(ran) == ["first-a", "first-b", "second-a", "second-b", "second-b"]
    assert [i["output"] for i in summary["outputs"]["each"]] == ["aa\n", "bb\n"]


def test_sigterm_mid_fan_out_stops_running_items_and_journals_none_of_them(tmp_path: Path
                                                                           ) -> None:
    step = "echo $$ >> pids; sleep 44.5"
    body = (f'    for n in input.items max 2\n    run command "{step}"\n    with n = n\n'
            "    timeout 2m\n")
    (tmp_path / "fan.mgt").write_text(_machine(body, '["a", "b", "c"]'))
    proc = spawn("exec", "fan.mgt", "--runs-dir", "runs", cwd=tmp_path)
    try:
        run_dir = wait_for_event(
            tmp_path / "runs", proc,
            lambda e: e["type"] == "process_started" and e.get("item") == 1, "item b")
        wait_for_event(tmp_path / "runs", proc,
                       lambda e: e["type"] == "process_started" and e.get("item") == 0,
                       "item a")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()] \
            if (tmp_path / "pids").exists() else []
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        kill_processes_with("sleep 44.5")
    assert alive == [], "an item's process outlived the interrupted run"
    events = journal(run_dir)
    assert not [e for e in events if e["type"] == "item_finished"]
    assert events[-1]["type"] == "run_interrupted"


def test_cancel_on_first_failure_starts_no_item_after_the_failure(tmp_path: Path) -> None:
    """One at a time: the item after the failing one must never start. The stop is decided
    on the failing item's own thread, before its pool thread takes the next item."""
    from mgt.compile import load_machine
    from tests.runtime.build import run

    source = tmp_path / "fan.mgt"
    source.write_text(_machine('    for n in input.items max 1\n    cancel on first failure\n'
                               '    run command "echo $n >> ran; test $n != b"\n'
                               '    with n = n\n', items='["a", "b", "c", "d"]'))
    machine = load_machine(str(source))
    for attempt in range(25):  # the race it guards against was rare: look many times
        work = tmp_path / f"w{attempt}"
        work.mkdir()
        result = run(machine, work, inputs={"items": ["a", "b", "c", "d"]})
        assert result.final == "failed"
        assert (work / "ran").read_text().split() == ["a", "b"], attempt
