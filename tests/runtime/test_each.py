"""`mgt exec --each`: one real run per inputs line, concurrently, under the model call cap."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgt.runtime.journal import list_runs
from tests.runtime.procs import mgt, spawn, wait_for
from tests.runtime.slowmodel import intervals, kill_standins, make_project, max_overlap, slow_env

COMMANDS = """\
machine gate "passes or fails on its input"

input item: str
input times: int = 1

state check:
    run command "test \\"$item\\" != bad"
    with item = input.item
    on done -> ok
    on error -> failed

final ok: succeed
final failed: fail
"""


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "calls"
    directory.mkdir()
    yield directory
    kill_standins(directory)


def runs_in(runs: Path) -> list[Path]:
    if not runs.exists():
        return []
    return [p for p in runs.iterdir() if not p.name.startswith(".")]


def test_each_line_is_a_run_and_all_of_them_hold_the_cap(tmp_path: Path, log: Path) -> None:
    machine = make_project(tmp_path, states=2)
    items = [f"item-{n}" for n in range(6)]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join(json.dumps({"item": i}) for i in items) + "\n\n")
    runs = tmp_path / "runs"
    done = mgt("exec", machine, "--each", inputs, "--executor", "claude", "--runs-dir", runs,
               "--parallel", "6", "--max-model-calls", "2", "--json",
               cwd=tmp_path, env=slow_env(log, 0.5), timeout=240)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["total"] == 6 and summary["succeeded"] == 6
    assert [r["line"] for r in summary["runs"]] == [1, 2, 3, 4, 5, 6]
    records = {r.run_id: r for r in list_runs(runs)}
    assert {r["run_id"] for r in summary["runs"]} == set(records)
    assert sorted(r.info["inputs"]["item"] for r in records.values()) == items
    assert all(r.status == "succeeded" for r in records.values())
    assert done.stderr.count("succeeded at 'ok'") == 6
    spans = intervals(log)
    assert len(spans) == 12
    assert max_overlap(spans) <= 2


def test_the_table_and_exit_1_when_a_run_fails(tmp_path: Path) -> None:
    machine = tmp_path / "gate.mgt"
    machine.write_text(COMMANDS)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"item": "a"}\n{"item": "bad"}\n{"item": "c", "times": 3}\n')
    done = mgt("exec", machine, "--each", inputs, "--runs-dir", tmp_path / "runs",
               cwd=tmp_path, timeout=240)
    assert done.returncode == 1, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["line", "run", "status", "final", "cost"]
    assert [(r[0], r[2], r[3]) for r in rows[1:4]] == [
        ("1", "succeeded", "ok"), ("2", "failed", "failed"), ("3", "succeeded", "ok")]
    assert "3 run(s): 2 succeeded, 1 failed" in done.stdout
    assert len(runs_in(tmp_path / "runs")) == 3


def test_input_given_with_input_applies_to_every_run(tmp_path: Path) -> None:
    machine = tmp_path / "gate.mgt"
    machine.write_text(COMMANDS)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"item": "a"}\n{"item": "b"}\n')
    done = mgt("exec", machine, "--each", inputs, "--input", "item=bad", "--json",
               "--runs-dir", tmp_path / "runs", cwd=tmp_path, timeout=240)
    assert done.returncode == 1
    assert json.loads(done.stdout)["failed"] == 2


def test_bad_lines_are_named_and_no_run_starts(tmp_path: Path) -> None:
    machine = tmp_path / "gate.mgt"
    machine.write_text(COMMANDS)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join([
        '{"item": "fine"}',
        '{"item": "x",}',
        '["item"]',
        '{"itme": "typo"}',
        '{"item": "x", "times": "many"}',
        '{"times": 2}',
        '{"item": "x", "times": NaN}',
        "[" * 100_000,
    ]) + "\n")
    runs = tmp_path / "runs"
    done = mgt("exec", machine, "--each", inputs, "--runs-dir", runs, cwd=tmp_path)
    assert done.returncode == 2
    err = done.stderr
    assert f"mgt: {inputs}:2:14: invalid JSON: Expecting property name" in err
    assert f"mgt: {inputs}:3: expected a JSON object of input names to values, got an array" \
        in err
    assert f"mgt: {inputs}:4: unknown input 'itme': did you mean 'item'?" in err
    assert f"mgt: {inputs}:5: input 'times': expected an integer, got 'many'" in err
    assert f"mgt: {inputs}:6: missing required input 'item'" in err
    assert f"mgt: {inputs}:7:" in err
    assert f"mgt: {inputs}:8:" in err
    assert f"{inputs}:1" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"mgt: --each {inputs}: 7 bad line(s); no run was started"
    assert "Traceback" not in err
    assert runs_in(runs) == []


@pytest.mark.parametrize(("content", "message"), [
    ("", "no inputs"),
    ("\n  \n", "no inputs"),
    (None, "no such file"),
])
def test_an_empty_or_missing_inputs_file_is_one_line(tmp_path: Path, content: str | None,
                                                     message: str) -> None:
    machine = tmp_path / "gate.mgt"
    machine.write_text(COMMANDS)
    inputs = tmp_path / "in.jsonl"
    if content is not None:
        inputs.write_text(content)
    done = mgt("exec", machine, "--each", inputs, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", [["--dry-run"], ["--inputs", "x.json"]])
def test_each_refuses_flags_that_do_not_fit(tmp_path: Path, flag: list[str]) -> None:
    machine = tmp_path / "gate.mgt"
    machine.write_text(COMMANDS)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"item": "a"}\n')
    done = mgt("exec", machine, "--each", inputs, *flag, cwd=tmp_path)
    assert done.returncode == 2
    assert "--each cannot be combined with" in done.stderr


def test_sigterm_stops_the_runs_under_way_resumably_and_starts_no_more(
    tmp_path: Path, log: Path
) -> None:
    machine = make_project(tmp_path, states=1)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"item": f"i{n}"}) + "\n" for n in range(5)))
    runs = tmp_path / "runs"
    proc = spawn("exec", machine, "--each", inputs, "--executor", "claude", "--runs-dir", runs,
                 "--parallel", "2", "--max-model-calls", "4", "--json",
                 cwd=tmp_path, env=slow_env(log, 600))
    try:
        wait_for("two model calls", lambda: len(list(log.glob("*.start"))) == 2, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        summary = json.loads(out)
        statuses = [r["status"] for r in summary["runs"]]
        assert sorted(statuses) == ["interrupted"] * 2 + ["not started"] * 3
        records = list_runs(runs)
        assert len(records) == 2
        assert all(r.status == "interrupted" for r in records)
        for record in records:  # each resumes alone to its end
            resumed = mgt("resume", record.run_id, "--runs-dir", runs, cwd=tmp_path,
                          env=slow_env(tmp_path / "calls2", 0), timeout=120)
            assert resumed.returncode == 0, resumed.stderr
    finally:
        proc.kill()
        proc.wait()
