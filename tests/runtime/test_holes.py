"""Edges of running, each as a user meets it: usage refused early, stale views, changed
definitions on resume, kills while a run is created, clocks and hostile answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mgt.compile.model import RunSpec, StateSpec
from mgt.executors import make_executor
from mgt.executors.base import ExecRequest, ExecResult, Executor
from mgt.extensions import BUILTINS
from mgt.runtime.interpreter import Interpreter
from mgt.runtime.journal import MAX_DEPTH, RunJournal, list_runs, load_run, read_events
from tests.runtime.build import ROOT, builtin, machine, on, resume, retry, run
from tests.runtime.procs import journal, kill_processes_with, mgt, spawn, wait_for_event

SLOW = """\
machine slow

import schemas from "schemas"

state first:
    run command "true"
    on done -> wait

state wait:
    run command "if [ -e slow ]; then sleep 41.5; fi"
    timeout 2m
    on done -> ok

final ok: succeed
"""


@pytest.fixture
def work(tmp_path: Path) -> Any:
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    (tmp_path / "slow").touch()
    (tmp_path / "slow.mgt").write_text(SLOW)
    yield tmp_path
    kill_processes_with("sleep 41.5")


def _killed_in_wait(work: Path) -> Path:
    proc = spawn("exec", "slow.mgt", "--runs-dir", "runs", cwd=work)
    run_dir = wait_for_event(work / "runs", proc,
                             lambda e: e["type"] == "process_started" and e["state"] == "wait",
                             "the wait state to start")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    kill_processes_with("sleep 41.5")
    return run_dir


def one_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mgt: "), proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- usage


def test_the_command_executor_is_refused_for_a_run(work: Path) -> None:
    line = one_line(mgt("exec", "slow.mgt", "--runs-dir", "runs", "--executor", "command",
                        cwd=work))
    assert "--executor command" in line
    assert not (work / "runs").exists() or not list((work / "runs").iterdir())
    line = one_line(mgt("resume", "nosuch", "--runs-dir", "runs", "--executor", "command",
                        cwd=work))
    assert "--executor command" in line


# --------------------------------------------------------------------------- views


def test_runs_shows_the_state_the_journal_says_not_a_stale_run_json(work: Path) -> None:
    run_dir = _killed_in_wait(work)
    info = json.loads((run_dir / "run.json").read_text())
    info["current_state"] = "first"  # as a throttled refresh can leave it
    (run_dir / "run.json").write_text(json.dumps(info))
    listed = mgt("runs", "--runs-dir", "runs", "--json", cwd=work)
    row = json.loads(listed.stdout)[0]
    assert (row["status"], row["current_state"]) == ("interrupted", "wait")
    table = mgt("runs", "--runs-dir", "runs", cwd=work).stdout
    assert "interrupted  wait" in table


# --------------------------------------------------------------------------- resume pins


def test_resume_refuses_when_an_imported_definition_changed(work: Path) -> None:
    run_dir = _killed_in_wait(work)
    info = json.loads((run_dir / "run.json").read_text())
    schema = str((work / "schemas" / "PRResult.json").resolve())
    assert schema in info["definitions"]
    original = (work / "schemas" / "PRResult.json").read_text()
    (work / "schemas" / "PRResult.json").write_text(original.replace("{", "{\n", 1))
    line = one_line(mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work))
    assert schema in line and "changed since the run started" in line
    (work / "schemas" / "PRResult.json").unlink()
    line = one_line(mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work))
    assert schema in line and "no longer exists" in line
    (work / "schemas" / "PRResult.json").write_text(original)
    assert not [e for e in journal(run_dir) if e["type"] == "run_resumed"]  # nothing was run
    (work / "slow").unlink()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
    assert resumed.returncode == 0, resumed.stderr


# --------------------------------------------------------------------------- creation


CREATE_LOOP = """\
import sys
from mgt.runtime.journal import RunJournal
root = sys.argv[1]
print("go", flush=True)
while True:
    RunJournal.create_new(root, "m", {"machine": {"name": "m"}}).close()
"""


def test_a_kill_while_runs_are_created_never_leaves_a_run_without_run_json(
        tmp_path: Path) -> None:
    for i in range(8):
        proc = subprocess.Popen([sys.executable, "-c", CREATE_LOOP, str(tmp_path / "runs")],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout is not None and proc.stdout.readline() == "go\n"
        time.sleep(0.1 + 0.037 * i)  # kills land at different points of a creation
        proc.kill()
        proc.wait()
        proc.stdout.close()
    visible = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert visible
    unborn = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]
    for path in unborn:  # left by the kills; old enough not to be another's in the making
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    RunJournal.create_new(tmp_path / "runs", "m", {}).close()  # sweeps what kills left
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]
    for run_dir in visible:
        assert json.loads((run_dir / "run.json").read_text())["run_id"] == run_dir.name
    assert all(r.status != "corrupt" for r in list_runs(tmp_path / "runs"))


def test_run_ids_taken_already_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    import secrets
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    taken = {f"{now + timedelta(seconds=s):%Y%m%d-%H%M%S}-m-00000000" for s in range(-1, 5)}
    for name in taken:  # another run, started in the same second, drew the same bits
        (tmp_path / name).mkdir()
    real = secrets.token_hex
    ids = iter(["00000000"])  # run ids are 4 random bytes

    def token_hex(n: int | None = None) -> str:
        return (next(ids, None) if n == 4 else None) or real(n)

    monkeypatch.setattr(secrets, "token_hex", token_hex)
    journal = RunJournal.create_new(tmp_path, "m", {})
    journal.close()
    assert journal.run_id not in taken
    assert {p.name for p in tmp_path.iterdir()} == taken | {journal.run_id}


# --------------------------------------------------------------------------- clocks


def test_a_journaled_backoff_in_the_future_waits_no_longer_than_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTINS, "flaky", "tests.runtime.steps:flaky")
    m = machine(builtin("a", on("done", "ok"), step="flaky", succeed_on="2",
                        retries=[retry(1, "error", backoff=5)]))

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    assert run(m, tmp_path, sleep=interrupt).status == "interrupted"
    path = tmp_path / "run-1" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        if event["type"] == "backoff":
            event["ts"] = "2099-01-01T00:00:00.000Z"  # a clock that was wrong, or an edit
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    slept: list[float] = []
    result = resume(m, tmp_path, sleep=slept.append)
    assert result.status == "succeeded"
    assert slept == [5]


# --------------------------------------------------------------------------- hostile answers


class Answers:
    """A model executor answering with a fixed structured output (a real Executor)."""

    name = "answers"

    def __init__(self, output: Any) -> None:
        self.output = output

    def run(self, request: ExecRequest) -> ExecResult:
        return ExecResult(output=self.output, cost_usd=0.01, input_tokens=5, output_tokens=7)


def _deep(levels: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def test_an_answer_nested_900_deep_is_an_ordinary_schema_invalid(tmp_path: Path) -> None:
    m = machine(StateSpec("ask", RunSpec("polecat", "nobody", prompt="answer"),
                          transitions=(on("done", "ok"), on("schema_invalid", "bad"))))

    def factory(kind: str) -> Executor:
        return Answers(_deep(900)) if kind == "model" else make_executor("command")

    with RunJournal.create(tmp_path, "r") as j:
        result = Interpreter(m, j, {}, executors=factory, cwd=tmp_path).start()
    assert (result.status, result.final) == ("failed", "bad")
    finished = next(e for e in read_events(tmp_path / "r")[0]
                    if e["type"] == "attempt_finished")
    assert finished["outcome"] == "schema_invalid" and finished["output"] is None
    assert "levels deep; answer with a flatter" in finished["problems"][0]
    assert finished["cost_usd"] == 0.01  # what it cost is kept
    record = load_run(tmp_path, "r")
    assert record.run.failure_cause() is not None
    # a shallower answer of the same kind is kept whole
    with RunJournal.create(tmp_path, "s") as j:
        ok = Interpreter(m, j, {}, executors=lambda k: Answers(_deep(50)), cwd=tmp_path).start()
    assert ok.status == "succeeded" and ok.outputs["ask"] == _deep(50)


# --------------------------------------------------------------------------- one CLI edge

BROKEN = """\
machine m

state a:
    run command "true"
    on done -> ok
    on done -> ok

final ok: succeed
final unused: fail
"""


def test_a_machine_that_does_not_check_reads_the_same_from_every_command(
        tmp_path: Path) -> None:
    (tmp_path / "m.mgt").write_text(BROKEN)
    checked = mgt("check", "m.mgt", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[-1] == "m.mgt: 1 error, 2 warnings"
    for command in (["exec", "m.mgt", "--runs-dir", "runs"], ["graph", "m.mgt"]):
        proc = mgt(*command, cwd=tmp_path)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr == checked.stdout, command
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["exec", "resume", "runs", "show", "graph", "check"])
def test_a_bad_flag_prints_the_usage_of_its_subcommand(tmp_path: Path, command: str) -> None:
    proc = mgt(command, "x", "--no-such-flag", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"usage: mgt {command} "), proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("mgt: error: unrecognized arguments: ") and "--no-such-flag" in last


def test_an_input_too_deep_to_journal_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "m.mgt").write_text(
        'machine m\n\ninput data: json\n\nstate a:\n    run command "true"\n'
        "    on done -> ok\n\nfinal ok: succeed\n"
    )
    deep: Any = 1
    for _ in range(MAX_DEPTH + 50):
        deep = [deep]
    (tmp_path / "in.json").write_text(json.dumps({"data": deep}))
    line = one_line(mgt("exec", "m.mgt", "--inputs", "in.json", "--runs-dir", "runs",
                        cwd=tmp_path))
    assert f"input 'data': nested more than {MAX_DEPTH} levels deep" in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_builtin_output_too_deep_to_journal_is_an_error_outcome(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTINS, "deep", "tests.runtime.test_holes:deep_output")
    result = run(machine(builtin("a", on("done", "ok"), on("error", "bad"), step="deep")),
                 tmp_path)
    assert result.final == "bad"
    assert "levels deep" in (result.run.failure_cause() or "")


def deep_output(ctx: Any) -> Any:
    return _deep(MAX_DEPTH + 10)


def test_a_run_killed_before_its_first_event_resumes_from_the_start(tmp_path: Path) -> None:
    (tmp_path / "m.mgt").write_text(
        'machine m\n\nstate a:\n    run command "echo ran >> log"\n'
        "    on done -> ok\n\nfinal ok: succeed\n"
    )
    from mgt.compile import load_machine
    from mgt.runtime.interpreter import run_info

    m = load_machine(tmp_path / "m.mgt")
    info = run_info(m, {}, budget_usd=None, cwd=tmp_path)
    RunJournal.create_new(tmp_path / "runs", m.name, {**info, "executor": None}).close()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "events.jsonl").read_text() == ""  # as a kill right here leaves it
    assert load_run(tmp_path / "runs", run_dir.name).status == "interrupted"
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["path"] == ["a", "ok"]
    assert (tmp_path / "log").read_text() == "ran\n"
