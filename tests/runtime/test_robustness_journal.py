"""Corrupted run directories given to the real `mgt runs | show | resume | graph --run`: an
event with a missing or wrongly typed field, a run.json that is not an object or has fields of
the wrong type, a journal naming a state the machine does not have. Each is one `mgt:` line
and exit 2 (never a traceback), and one bad run never hides the others from `mgt runs`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.procs import mgt, spawn, wait_for_event

MACHINE = """\
machine slow "three steps, the second slow"

state first:
    run command "echo first"
    on done -> wait

state wait:
    run command "test x$QUICK = x1 || sleep 30"
    on done -> last

state last:
    run command "echo last"
    on done -> ok

final ok: succeed "all done"
"""


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped by Ctrl-C in its second state (a real one, made by `mgt exec`)."""
    work = tmp_path_factory.mktemp("interrupted")
    (work / "slow.mgt").write_text(MACHINE)
    proc = spawn("exec", "slow.mgt", "--runs-dir", "runs", cwd=work)
    run_dir = wait_for_event(
        work / "runs", proc,
        lambda e: e.get("type") == "attempt_started" and e.get("state") == "wait",
        "the slow state to start",
    )
    proc.send_signal(2)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    return run_dir


def copy_run(interrupted: Path, work: Path) -> Path:
    import shutil

    (work / "slow.mgt").write_text(MACHINE)
    target = work / "runs" / interrupted.name
    shutil.copytree(interrupted, target)
    info = json.loads((target / "run.json").read_text())
    info["machine"]["path"] = str(work / "slow.mgt")
    (target / "run.json").write_text(json.dumps(info))
    return target


def edit_events(run_dir: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    path = run_dir / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    change(events)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def edit_info(run_dir: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps(change(info)))


def one_line(proc: Any, code: int = 2) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mgt: "), proc.stderr
    return str(lines[0])


def set_field(kind: str, key: str, value: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(events: list[dict[str, Any]]) -> None:
        event = next(e for e in events if e["type"] == kind)
        if value is KeyError:
            del event[key]
        else:
            event[key] = value

    return change


BAD_EVENTS = {
    "state-missing": set_field("state_entered", "state", KeyError),
    "attempt-a-list": set_field("attempt_started", "attempt", [1]),
    "attempt-text": set_field("attempt_started", "attempt", "one"),
    "outcome-missing": set_field("attempt_finished", "outcome", KeyError),
    "cost-text": set_field("attempt_finished", "cost_usd", "free"),
    "tokens-a-list": set_field("attempt_finished", "tokens", [1, 2]),
    "to-missing": set_field("transition", "to", KeyError),
}


@pytest.mark.parametrize("name", sorted(BAD_EVENTS))
def test_an_event_with_a_missing_or_mistyped_field(interrupted: Path, tmp_path: Path,
                                                   name: str) -> None:
    run_dir = copy_run(interrupted, tmp_path)
    edit_events(run_dir, BAD_EVENTS[name])
    for command in (["show", run_dir.name], ["resume", run_dir.name],
                    ["graph", "slow.mgt", "--run", run_dir.name]):
        line = one_line(mgt(*command, "--runs-dir", "runs", cwd=tmp_path))
        assert "events.jsonl:" in line and "corrupt event" in line, line
    listed = mgt("runs", "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr


def test_a_corrupt_run_is_listed_as_corrupt_beside_the_others(interrupted: Path,
                                                             tmp_path: Path) -> None:
    bad = copy_run(interrupted, tmp_path)
    edit_events(bad, BAD_EVENTS["attempt-a-list"])
    good = tmp_path / "runs" / "20260101-000000-slow-good"
    import shutil

    shutil.copytree(interrupted, good)
    listed = mgt("runs", "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {good.name, bad.name}
    assert rows[good.name]["status"] == "interrupted" and "problem" not in rows[good.name]
    assert rows[bad.name]["status"] == "corrupt"
    assert "events.jsonl:" in rows[bad.name]["problem"]
    assert "corrupt event" in rows[bad.name]["problem"]
    table = mgt("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert table.returncode == 0 and "corrupt" in table.stdout, table.stderr
    assert f"run {bad.name} is corrupt: " in table.stderr


BAD_INFO: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a-list": lambda info: [1, 2],
    "machine-a-string": lambda info: {**info, "machine": "slow"},
    "path-a-number": lambda info: {**info, "machine": {**info["machine"], "path": 5}},
    "inputs-a-string": lambda info: {**info, "inputs": "none"},
    "budget-text": lambda info: {**info, "budget_usd": "lots"},
    "cwd-a-number": lambda info: {**info, "cwd": 7},
}


@pytest.mark.parametrize("name", sorted(BAD_INFO))
def test_a_run_json_of_the_wrong_shape(interrupted: Path, tmp_path: Path, name: str) -> None:
    run_dir = copy_run(interrupted, tmp_path)
    edit_info(run_dir, BAD_INFO[name])
    line = one_line(mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=tmp_path))
    assert "run.json" in line, line
    # run.json is a view of the journal: show and runs read the run without it
    shown = mgt("show", run_dir.name, "--runs-dir", "runs", cwd=tmp_path)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "first" in shown.stdout
    shown = mgt("show", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["path"] == ["first", "wait"]
    listed = mgt("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert listed.returncode == 0 and run_dir.name in listed.stdout, listed.stderr


def test_a_journal_naming_a_state_the_machine_does_not_have(interrupted: Path,
                                                             tmp_path: Path) -> None:
    run_dir = copy_run(interrupted, tmp_path)

    def rename(events: list[dict[str, Any]]) -> None:
        for event in events:
            for key in ("state", "to"):
                if event.get(key) == "wait":
                    event[key] = "nosuch"

    edit_events(run_dir, rename)
    line = one_line(mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=tmp_path))
    assert "'nosuch'" in line and "internal error" not in line, line


def test_the_untouched_copy_still_resumes(interrupted: Path, tmp_path: Path) -> None:
    run_dir = copy_run(interrupted, tmp_path)
    proc = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path,
               env={"QUICK": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == ["first", "wait", "last", "ok"]


def test_an_output_file_nested_too_deeply_is_left_out_of_show(interrupted: Path,
                                                               tmp_path: Path) -> None:
    # outputs/ is a view of the journal: an unreadable one is skipped, never a traceback
    run_dir = copy_run(interrupted, tmp_path)
    (run_dir / "outputs" / "first.json").write_text("[" * 100_000 + "]" * 100_000)
    for command in (["show", run_dir.name], ["show", run_dir.name, "--json"], ["runs"]):
        proc = mgt(*command, "--runs-dir", "runs", cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
