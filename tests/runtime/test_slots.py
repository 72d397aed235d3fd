"""The model call cap of a runs directory across real processes: held, awaited, freed by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgt.errors import UsageError
from mgt.runtime.slots import DEFAULT_MAX_MODEL_CALLS, ModelSlots, resolve_cap
from tests.runtime.procs import mgt, spawn, wait_for
from tests.runtime.slowmodel import (
    intervals,
    kill_standins,
    make_project,
    max_overlap,
    slow_env,
)

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from mgt.runtime.slots import ModelSlots
    runs, cap, log, seconds = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    with ModelSlots(runs, cap).hold("test"):
        (log / f"{__import__('os').getpid()}.start").write_text(repr(time.time()))
        print("held", flush=True)
        time.sleep(seconds)
        (log / f"{__import__('os').getpid()}.stop").write_text(repr(time.time()))
""")


def holder(runs: Path, cap: int, log: Path, seconds: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(runs), str(cap), str(log),
                             str(seconds)], env=env, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "calls"
    directory.mkdir()
    yield directory
    kill_standins(directory)


def test_the_cap_holds_across_processes(tmp_path: Path, log: Path) -> None:
    procs = [holder(tmp_path / "runs", 2, log, 0.4) for _ in range(6)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    spans = intervals(log)
    assert len(spans) == 6
    assert max_overlap(spans) <= 2


def test_kill_9_of_a_holder_frees_its_slot(tmp_path: Path, log: Path) -> None:
    runs = tmp_path / "runs"
    proc = holder(runs, 1, log, 600)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        slots = ModelSlots(runs, 1)
        assert slots.try_acquire() is None
        assert slots.in_use() == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        slot = slots.try_acquire()
        assert slot is not None
        slot.release()
        assert slots.in_use() == 0
    finally:
        proc.kill()
        proc.wait()


def test_slots_of_one_process_count_against_the_cap(tmp_path: Path) -> None:
    """Threads (the items of a fan-out) take slots like processes do: a second open file
    description cannot take a slot the first holds."""
    slots = ModelSlots(tmp_path / "runs", 2)
    first, second = slots.try_acquire(), slots.try_acquire()
    assert first is not None and second is not None and first.index != second.index
    assert slots.try_acquire() is None
    first.release()
    third = slots.try_acquire()
    assert third is not None and third.index == first.index
    second.release()
    third.release()


def test_every_model_call_of_separate_mgt_exec_processes_holds_a_slot(
    tmp_path: Path, log: Path
) -> None:
    machine = make_project(tmp_path, states=2)
    env = slow_env(log, 0.7)
    procs = [spawn("exec", machine, "--executor", "claude", "--input", f"item=i{n}",
                   "--runs-dir", tmp_path / "runs", "--max-model-calls", "2",
                   cwd=tmp_path, env=env) for n in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    spans = intervals(log)
    assert len(spans) == 8
    assert max_overlap(spans) <= 2


def test_a_run_waits_for_a_slot_and_says_so(tmp_path: Path, log: Path) -> None:
    machine = make_project(tmp_path, states=1)
    runs = tmp_path / "runs"
    slots = ModelSlots(runs, 1)
    taken = slots.try_acquire("the test")
    assert taken is not None
    proc = spawn("exec", machine, "--executor", "claude", "--input", "item=x",
                 "--runs-dir", runs, cwd=tmp_path, env={**slow_env(log, 0),
                                                        "MGT_MAX_MODEL_CALLS": "1"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "state 's1': waiting for a model slot (1 in use, cap 1)" in line
        assert not list(log.glob("*.start"))  # it did wait: the model was not called
        released = time.time()
        taken.release()
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        [(start, _)] = intervals(log)
        assert start >= released
    finally:
        taken.release()
        proc.kill()
        proc.wait()


def test_kill_9_of_mgt_exec_mid_call_frees_its_slot(tmp_path: Path, log: Path) -> None:
    """The model program a killed mgt leaves behind does not inherit the slot."""
    machine = make_project(tmp_path, states=1)
    runs = tmp_path / "runs"
    first = spawn("exec", machine, "--executor", "claude", "--input", "item=a",
                  "--runs-dir", runs, "--max-model-calls", "1",
                  cwd=tmp_path, env=slow_env(log, 600))
    try:
        wait_for("the first model call", lambda: bool(list(log.glob("*.start"))), first)
        assert ModelSlots(runs, 1).in_use() == 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        second = mgt("exec", machine, "--executor", "claude", "--input", "item=b",
                     "--runs-dir", runs, "--max-model-calls", "1",
                     cwd=tmp_path, env=slow_env(tmp_path / "calls2", 0))
        assert second.returncode == 0, second.stderr
        assert "waiting for a model slot" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_commands_take_no_slot(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    machine = tmp_path / "cmd.mgt"
    machine.write_text('machine cmd "a command"\n\nstate go:\n    run command "true"\n'
                       "    on done -> ok\n\nfinal ok: succeed\n")
    taken = ModelSlots(runs, 1).try_acquire()
    assert taken is not None
    try:
        done = mgt("exec", machine, "--runs-dir", runs, "--max-model-calls", "1",
                   cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "waiting" not in done.stderr
    finally:
        taken.release()


# --------------------------------------------------------------------------- the cap's value


def test_the_cap_comes_from_the_flag_then_the_environment_then_mgt_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = make_project(tmp_path)
    monkeypatch.delenv("MGT_MAX_MODEL_CALLS", raising=False)
    assert resolve_cap(None, machine) == DEFAULT_MAX_MODEL_CALLS
    (tmp_path / "mgt.toml").write_text("[exec]\nmax_model_calls = 7\n")
    assert resolve_cap(None, machine) == 7
    monkeypatch.setenv("MGT_MAX_MODEL_CALLS", "3")
    assert resolve_cap(None, machine) == 3
    assert resolve_cap(12, machine) == 12
    monkeypatch.setenv("MGT_MAX_MODEL_CALLS", "")  # empty: unset
    assert resolve_cap(None, machine) == 7


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "100000"])
def test_a_bad_cap_in_the_environment_is_one_line(
    tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MGT_MAX_MODEL_CALLS", value)
    with pytest.raises(UsageError, match="MGT_MAX_MODEL_CALLS: expected a whole number"):
        resolve_cap(None, None)


@pytest.mark.parametrize("value", ["0", '"four"', "true", "2.5"])
def test_a_bad_cap_in_mgt_toml_is_one_line_and_no_run(tmp_path: Path, value: str) -> None:
    machine = make_project(tmp_path)
    (tmp_path / "mgt.toml").write_text(f"[exec]\nmax_model_calls = {value}\n")
    done = mgt("exec", machine, "--executor", "claude", "--input", "item=x",
               "--runs-dir", tmp_path / "runs", cwd=tmp_path, env=slow_env(tmp_path / "c", 0))
    assert done.returncode == 2
    assert "[exec].max_model_calls: expected a whole number" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any(
        p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))


def test_a_bad_flag_is_usage(tmp_path: Path) -> None:
    machine = make_project(tmp_path)
    done = mgt("exec", machine, "--max-model-calls", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "--max-model-calls" in done.stderr


def test_replayed_calls_hold_slots_too(tmp_path: Path) -> None:
    """A replayed answer stands for a model call: with MGT_REPLAY_DELAY it takes that long,
    and under a cap of 1 no two of them overlap. A call ends when its result file is written;
    it began at least the delay before: those spans lie inside the calls, so their overlap is
    a floor of the calls' own."""
    machine = make_project(tmp_path, states=2)
    answers = tmp_path / "answers"
    answers.mkdir()
    for state in ("s1", "s2"):
        (answers / f"{state}.json").write_text('{"ok": true}')
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(f'{{"item": "i{n}"}}\n' for n in range(4)))
    runs = tmp_path / "runs"
    done = mgt("exec", machine, "--each", inputs, "--executor", f"replay:{answers}",
               "--runs-dir", runs, "--parallel", "4", "--max-model-calls", "1", cwd=tmp_path,
               env={"MGT_REPLAY_DELAY": "0.3", "MGT_MAX_MODEL_CALLS": ""}, timeout=240)
    assert done.returncode == 0, done.stderr
    ends = [p.stat().st_mtime for p in runs.glob("*/states/*/1/result.json")]
    assert len(ends) == 8
    assert max_overlap([(end - 0.3, end) for end in ends]) == 1


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "1e9"])
def test_a_bad_replay_delay_is_one_line(tmp_path: Path, value: str) -> None:
    machine = make_project(tmp_path)
    (tmp_path / "answers").mkdir()
    done = mgt("exec", machine, "--executor", f"replay:{tmp_path / 'answers'}", "--input",
               "item=x", "--runs-dir", tmp_path / "runs", cwd=tmp_path,
               env={"MGT_REPLAY_DELAY": value})
    assert done.returncode == 2
    assert done.stderr.strip() == f"mgt: MGT_REPLAY_DELAY: expected seconds from 0 to 86400, " \
                                  f"got {value!r}"
