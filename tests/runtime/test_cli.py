"""`mgt exec | runs | show | resume` run as a user runs them: `python -m mgt` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path

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

SUMMARY_KEYS = {"run_id", "status", "final", "path", "outputs", "cost_usd", "tokens"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    return tmp_path


CHAIN = """\
machine chain "two steps"

input greeting: str = "hello"
input times: int = 1
input fast: bool = false
input since: duration = 24h

state first:
    run builtin noop
    on done when input.times > 1 -> many
    on done -> say

state say:
    run command "echo '{\\"said\\": 1}'"
    on done -> ok

state many:
    run builtin noop
    on done -> ok

final ok: succeed "all good"
"""


def test_exec_runs_to_a_succeed_final_and_prints_the_json_summary(work: Path) -> None:
    machine = write(work / "chain.mgt", CHAIN)
    proc = mgt("exec", machine, "--runs-dir", "runs", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "succeeded" and summary["final"] == "ok"
    assert summary["path"] == ["first", "say", "ok"]
    assert summary["outputs"]["say"] == {"exit_code": 0, "stdout": '{"said": 1}\n', "stderr": ""}
    assert summary["cost_usd"] == 0 and summary["tokens"] == {"input": 0, "output": 0}
    # not a terminal: no progress, just the one summary line
    assert proc.stderr.splitlines() == [
        f"mgt: run {summary['run_id']} succeeded at 'ok': all good "
        "(2 state(s), $0.0000, 0 in / 0 out tokens)"
    ]
    info = json.loads((work / "runs" / summary["run_id"] / "run.json").read_text())
    assert info["inputs"] == {"greeting": "hello", "times": 1, "fast": False, "since": "24h"}
    assert info["machine"]["path"] == str(machine.resolve())


def test_inputs_are_typed_from_the_command_line_and_files(work: Path) -> None:
    machine = write(work / "chain.mgt", CHAIN)
    toml = write(work / "in.toml", 'times = 3\nfast = true\nsince = "90m"\n')
    proc = mgt("exec", machine, "--runs-dir", "runs", "--inputs", toml, "--input",
               "greeting=hi there", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["path"] == ["first", "many", "ok"]
    info = json.loads((work / "runs" / summary["run_id"] / "run.json").read_text())
    assert info["inputs"] == {"greeting": "hi there", "times": 3, "fast": True, "since": "90m"}


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["--input", "times=many"], {}, "mgt: input 'times': expected an integer, got 'many'"),
        (["--input", "fast=perhaps"], {},
         "mgt: input 'fast': expected true or false, got 'perhaps'"),
        (["--input", "since=soon"], {},
         "mgt: input 'since': expected a duration such as 30s, 5m or 24h, got 'soon'"),
        (["--input", "tims=2"], {}, "mgt: unknown input 'tims': did you mean 'times'?"),
        (["--input", "times"], {}, "mgt: --input 'times': expected NAME=VALUE"),
        (["--inputs", "in.json"], {"in.json": '{\n  "times": 2,,\n}'},
         "mgt: in.json:2:14: invalid JSON: Expecting property name enclosed in double quotes"),
        (["--inputs", "in.toml"], {"in.toml": "times = \n"}, "mgt: in.toml:1:9: invalid TOML:"),
        (["--inputs", "in.json"], {"in.json": "[1, 2]"},
         "mgt: in.json: expected an object of input names to values"),
        (["--inputs", "in.yaml"], {"in.yaml": "times: 2"},
         "mgt: --inputs in.yaml: expected a .json or .toml file"),
        (["--inputs", "missing.json"], {}, "mgt: --inputs missing.json: No such file or directory"),
        (["--inputs", "in.json"], {"in.json": '{"times": "x"}'},
         "mgt: input 'times': expected an integer, got 'x'"),
        (["--budget-usd", "-1"], {}, "mgt: --budget-usd: expected a non-negative amount, got -1.0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_no_run_is_made(
    work: Path, args: list[str], files: dict[str, str], message: str
) -> None:
    machine = write(work / "chain.mgt", CHAIN)
    for name, text in files.items():
        write(work / name, text)
    proc = mgt("exec", machine, "--runs-dir", "runs", *args, cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list((work / "runs").iterdir()) == []


def test_a_missing_required_input_is_named(work: Path) -> None:
    machine = write(work / "m.mgt", CHAIN.replace('input greeting: str = "hello"',
                                                   "input reviewer: str"))
    proc = mgt("exec", machine, "--runs-dir", "runs", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "mgt: missing required input 'reviewer': give it with --input reviewer=..."
    )


def test_an_enum_input_suggests_the_closest_value(work: Path) -> None:
    machine = write(work / "m.mgt", CHAIN.replace('input greeting: str = "hello"',
                                                   'input kind: enum("all", "errors") = "all"'))
    proc = mgt("exec", machine, "--runs-dir", "runs", "--input", "kind=erors", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "mgt: input 'kind': expected one of 'all', 'errors', got 'erors'; did you mean 'errors'?"
    )


FAILING = """\
machine failing

state boom:
    run command "echo broken >&2; exit 4"
    on done -> ok

final ok: succeed
final bad: fail "never"
"""


def test_an_unhandled_error_fails_the_run_with_exit_1_naming_state_and_event(work: Path) -> None:
    machine = write(work / "f.mgt", FAILING)
    proc = mgt("exec", machine, "--runs-dir", "runs", "--json", cwd=work)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["status"], summary["final"]) == ("failed", "_fail")
    assert "state 'boom' ended with 'error' and has no transition for it" in proc.stderr

    show = mgt("show", summary["run_id"], "--runs-dir", "runs", cwd=work)
    assert show.returncode == 0
    assert "#1 error  command exited with 4: broken" in show.stdout

    again = mgt("resume", summary["run_id"], "--runs-dir", "runs", cwd=work)
    assert again.returncode == 1  # a finished run's own exit code
    assert "already finished (failed at '_fail'); nothing to resume" in again.stderr
    assert journal(work / "runs" / summary["run_id"])[-1]["type"] == "run_finished"


def test_dry_run_prints_prompts_and_commands_and_runs_nothing(work: Path) -> None:
    machine = write(work / "chain.mgt", CHAIN)
    proc = mgt("exec", machine, "--runs-dir", "runs", "--dry-run", "--input", "times=2", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "## state say: run command" in proc.stdout
    assert """$ echo '{"said": 1}'""" in proc.stdout
    assert "on done when input.times > 1 -> many" in proc.stdout
    assert list((work / "runs").iterdir()) == []


def test_a_commands_bindings_reach_it_as_environment_variables(work: Path) -> None:
    machine = write(work / "env.mgt", """\
machine env "a command reads its bindings"

input who: str = "o'brien"
input times: int = 2

state greet:
    run command "echo \\"$who x$times\\""
    with who = input.who, times = input.times + 1
    on done when output.stdout == "o'brien x3\\n" -> ok
    on done -> bad

final ok: succeed
final bad: fail
""")
    dry = mgt("exec", machine, "--runs-dir", "runs", "--dry-run", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert '"who": "o\'brien"' in dry.stdout and '"times": 3' in dry.stdout
    proc = mgt("exec", machine, "--runs-dir", "runs", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"]["greet"]["stdout"] == "o'brien x3\n"


def test_runs_lists_newest_first_and_show_reports_a_run(work: Path) -> None:
    machine = write(work / "chain.mgt", CHAIN)
    ids = []
    for times in ("1", "2"):
        proc = mgt("exec", machine, "--runs-dir", "runs", "--json", "--input", f"times={times}",
                   cwd=work)
        ids.append(json.loads(proc.stdout)["run_id"])
    listed = mgt("runs", "--runs-dir", "runs", "--json", cwd=work)
    rows = json.loads(listed.stdout)
    assert [r["run_id"] for r in rows] == ids[::-1]
    assert rows[0]["status"] == "succeeded" and rows[0]["machine"] == "chain"
    table = mgt("runs", "--runs-dir", "runs", cwd=work)
    assert table.stdout.splitlines()[0].split() == [
        "RUN", "MACHINE", "STATUS", "STATE", "STATES", "COST", "STARTED"
    ]
    assert table.stdout.splitlines()[1].startswith(ids[1])

    shown = json.loads(mgt("show", ids[0], "--runs-dir", "runs", "--json", cwd=work).stdout)
    assert shown["path"] == ["first", "say", "ok"]
    assert shown["message"] == "all good"
    assert [s["state"] for s in shown["states"]] == ["first", "say"]
    assert shown["states"][1]["attempts"][0]["outcome"] == "done"
    assert shown["transitions"][0] == {"from": "first", "event": "done", "to": "say"}


def test_show_of_an_unknown_run_is_one_line(work: Path) -> None:
    proc = mgt("show", "nope", "--runs-dir", "runs", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "mgt: no run 'nope' in runs"
    empty = mgt("runs", "--runs-dir", "runs", cwd=work)
    assert empty.returncode == 0 and "no runs in runs" in empty.stderr


def _blocking_machine(work: Path, marker: str) -> Path:
    """a: logs; b: logs, says it started, then blocks until the file `go` exists."""
    return write(work / "block.mgt", f"""\
machine block

state a:
    run command "echo a >> calls.txt"
    on done -> b

state b:
    run command "echo b >> calls.txt; touch started; until [ -e go ]; do sleep 0.1; done # {marker}"
    on done -> c

state c:
    run command "echo c >> calls.txt"
    on done -> ok

final ok: succeed
""")


def test_kill_9_during_an_attempt_then_resume_finishes_without_rerunning_finished_states(
    work: Path,
) -> None:
    marker = f"mgt-test-{uuid.uuid4().hex}"
    machine = _blocking_machine(work, marker)
    proc = spawn("exec", machine, "--runs-dir", "runs", cwd=work)
    try:
        run_dir = wait_for_event(work / "runs", proc, lambda e: e["type"] == "attempt_started"
                                 and e["state"] == "b", "b to start")
        wait_for("b's command to run", (work / "started").exists, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_processes_with(marker)  # a crash leaves b's command behind; clean it up
    assert proc.returncode == -signal.SIGKILL

    listed = json.loads(mgt("runs", "--runs-dir", "runs", "--json", cwd=work).stdout)
    assert listed[0]["status"] == "interrupted"  # nobody holds the lock any more
    (work / "go").touch()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["path"] == ["a", "b", "c", "ok"]
    assert (work / "calls.txt").read_text().split() == ["a", "b", "b", "c"]
    started = [(e["state"], e["attempt"]) for e in journal(run_dir)
               if e["type"] == "attempt_started"]
    assert started == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]

    again = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
    assert again.returncode == 0
    assert again.stderr.strip() == (
        f"mgt: run {run_dir.name} already finished (succeeded at 'ok'); nothing to resume"
    )
    assert (work / "calls.txt").read_text().split() == ["a", "b", "b", "c"]


def test_kill_9_between_attempts_resumes_the_rest_of_the_backoff(work: Path) -> None:
    machine = write(work / "retry.mgt", """\
machine retry

state a:
    run command "echo a >> calls.txt; test -e go"
    retry 1 on error backoff 2s
    on done -> ok

final ok: succeed
""")
    proc = spawn("exec", machine, "--runs-dir", "runs", cwd=work)
    run_dir = wait_for_event(work / "runs", proc, lambda e: e["type"] == "backoff", "the backoff")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (work / "go").touch()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert (work / "calls.txt").read_text().split() == ["a", "a"]
    types = [e["type"] for e in journal(run_dir)]
    assert types.count("backoff") == 1  # the resumed wait is the rest of the journaled one
    assert types.count("run_resumed") == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_exits_130_and_the_run_resumes(work: Path, sig: signal.Signals
                                                        ) -> None:
    marker = f"mgt-test-{uuid.uuid4().hex}"
    machine = _blocking_machine(work, marker)
    proc = spawn("exec", machine, "--runs-dir", "runs", cwd=work)
    try:
        wait_for("b's command to run", (work / "started").exists, proc)
        run_dir = only_run(work / "runs")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_processes_with(marker)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        f"mgt: run {run_dir.name} interrupted in state 'b' ($0.0000, 0 in / 0 out tokens); "
        f"continue with: mgt resume {run_dir.name}"
    )
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert journal(run_dir)[-1]["type"] == "run_interrupted"
    wait_for("b's command to be stopped", lambda: not _alive_with(marker))

    (work / "go").touch()
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert (work / "calls.txt").read_text().split() == ["a", "b", "b", "c"]


def _alive_with(marker: str) -> bool:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmd and stat[stat.rfind(")") + 2] != "Z":
            return True
    return False


def test_a_held_run_cannot_be_resumed_by_a_second_process(work: Path) -> None:
    marker = f"mgt-test-{uuid.uuid4().hex}"
    machine = _blocking_machine(work, marker)
    proc = spawn("exec", machine, "--runs-dir", "runs", cwd=work)
    try:
        wait_for("b's command to run", (work / "started").exists, proc)
        run_dir = only_run(work / "runs")
        second = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"mgt: run {run_dir.name} is held by another process (pid {proc.pid})"
        )
        (work / "go").touch()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        kill_processes_with(marker)


def test_resume_refuses_a_machine_that_changed(work: Path) -> None:
    marker = f"mgt-test-{uuid.uuid4().hex}"
    machine = _blocking_machine(work, marker)
    proc = spawn("exec", machine, "--runs-dir", "runs", cwd=work)
    try:
        wait_for("b's command to run", (work / "started").exists, proc)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        kill_processes_with(marker)
    run_dir = only_run(work / "runs")
    machine.write_text(machine.read_text().replace("echo c", "echo C"))
    proc2 = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=work)
    assert proc2.returncode == 2
    assert f"{machine} changed since the run started" in proc2.stderr
    assert len(proc2.stderr.splitlines()) == 1


def test_a_model_machine_with_no_executor_installed_says_what_to_install(work: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    machine = write(work / "m.mgt", f"""\
machine m

import polecats from "{root / 'polecats'}"
import schemas from "{root / 'schemas'}"

state ask:
    run polecat log-analyzer prompt "hello"
    on done -> ok

final ok: succeed
""")
    env = {"PATH": "/usr/bin:/bin", "MGT_CLAUDE": "", "MGT_ZELLIJ_CC": ""}
    proc = mgt("exec", machine, "--runs-dir", "runs", cwd=work, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: no model executor available: install Claude Code")
    assert list((work / "runs").iterdir()) == []


def _replay_machine(work: Path) -> Path:
    root = Path(__file__).resolve().parents[2]
    return write(work / "an.mgt", f"""\
machine an

import polecats from "{root / 'polecats'}"
import formulas from "{root / 'formulas'}"
import schemas from "{root / 'schemas'}"

state analyze:
    run formula analyze
    with since = 24h
    retry 1 on schema_invalid with feedback
    on done -> ok

final ok: succeed
""")


def _claude_result(text: str, cost: float) -> str:
    return json.dumps({"type": "result", "subtype": "success", "is_error": False,
                       "result": text, "total_cost_usd": cost,
                       "usage": {"input_tokens": 900, "output_tokens": 20}})


def test_the_replay_executor_answers_from_recorded_results(work: Path) -> None:
    replay = work / "recorded"
    replay.mkdir()
    empty = {"patterns": [], "summary": {"total_patterns": 0, "critical": 0, "warning": 0,
                                          "info": 0}}
    write(replay / "analyze.1.json", _claude_result("nothing to report", 0.002))
    write(replay / "analyze.2.json", _claude_result(json.dumps(empty), 0.003))
    proc = mgt("exec", _replay_machine(work), "--runs-dir", "runs", "--executor", "replay",
               "--replay-dir", replay, "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["outputs"]["analyze"] == empty
    assert summary["cost_usd"] == pytest.approx(0.005)
    assert summary["tokens"] == {"input": 1800, "output": 40}
    attempt2 = work / "runs" / summary["run_id"] / "states" / "analyze" / "2"
    assert "- the answer contains no JSON object" in (attempt2 / "prompt.md").read_text()
    shown = mgt("show", summary["run_id"], "--runs-dir", "runs", cwd=work).stdout
    assert "#1 schema_invalid  $0.0020  the answer contains no JSON object" in shown
    assert "#2 done  $0.0030" in shown


def test_dry_run_of_a_formula_shows_the_system_prompt_and_the_prompt(work: Path) -> None:
    proc = mgt("exec", _replay_machine(work), "--runs-dir", "runs", "--dry-run", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "polecat log-analyzer · model haiku · tools Bash(mgt logs:*)" in out
    assert "### system prompt\n\nYou are the Log Analyzer" in out
    assert "1. Query graph transitions for failures" in out
    assert '"title":"PatternReport"' in out


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        (["--executor", "claude"], "mgt: claude not found on PATH"),
        (["--executor", "tmux"], "mgt: claude not found on PATH"),
        (["--executor", "zellij-cc", "--session", "s"], "mgt: zellij-cc not found on PATH"),
        (["--executor", "zellij-cc"], "mgt: zellij-cc needs a zellij session"),
    ],
    ids=["claude", "tmux", "zellij-cc", "zellij-cc-no-session"],
)
def test_a_named_executor_that_cannot_run_is_refused_before_the_run(
    work: Path, executor: list[str], message: str
) -> None:
    # it used to create the run, fail its first model state and end at a fail final (exit 1)
    # with only "failed at 'X'" to say why
    env = {"PATH": "/usr/bin:/bin", "MGT_CLAUDE": "", "MGT_ZELLIJ_CC": ""}
    if executor[-1] == "zellij-cc":
        env["MGT_ZELLIJ_CC"] = sys.executable  # installed, but not in a session
    proc = mgt("exec", _replay_machine(work), "--runs-dir", "runs", *executor, cwd=work, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(message) and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert list((work / "runs").iterdir()) == []


@pytest.mark.parametrize("budget", ["inf", "nan", "-1", "-inf"])
def test_a_budget_that_is_not_a_finite_amount_is_refused(work: Path, budget: str) -> None:
    proc = mgt("exec", write(work / "chain.mgt", CHAIN), "--runs-dir", "runs",
               f"--budget-usd={budget}", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("mgt: --budget-usd: expected"), proc.stderr
    assert list((work / "runs").iterdir()) == []


def test_replay_with_an_empty_directory_is_refused(work: Path) -> None:
    # 'replay:' used to replay from the current directory, failing every model state
    proc = mgt("exec", _replay_machine(work), "--runs-dir", "runs", "--executor", "replay:",
               cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "mgt: --executor replay:DIR needs a directory after the colon\n"
    assert list((work / "runs").iterdir()) == []


def test_an_empty_runs_dir_is_not_the_current_directory(work: Path) -> None:
    # --runs-dir '' or MGT_RUNS_DIR= used to put run directories straight into the cwd
    machine = write(work / "chain.mgt", CHAIN)
    proc = mgt("exec", machine, "--runs-dir", "", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "mgt: error: argument --runs-dir: expected a directory, got an empty string"
    )
    proc = mgt("exec", machine, "--json", cwd=work, env={"MGT_RUNS_DIR": ""})
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    assert (work / ".mgt" / "runs" / run_id / "events.jsonl").is_file()
    assert not (work / run_id).exists()


def test_an_unknown_executor_is_one_line(work: Path) -> None:
    proc = mgt("exec", _replay_machine(work), "--runs-dir", "runs", "--executor", "claud",
               cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: unknown executor 'claud'; did you mean 'claude'?")
    assert list((work / "runs").iterdir()) == []


def test_check_errors_are_all_rendered_with_carets_and_exit_1(work: Path) -> None:
    machine = write(work / "bad.mgt", """\
machine bad

state a:
    run builtin noop
    on done -> nowhere
    on error -> elsewhere

final ok: succeed
""")
    proc = mgt("exec", machine, "--runs-dir", "runs", cwd=work)
    assert proc.returncode == 1
    assert "nowhere" in proc.stderr and "elsewhere" in proc.stderr
    assert "^" in proc.stderr and "Traceback" not in proc.stderr
    assert list((work / "runs").iterdir()) == []


def test_resume_reuses_the_runs_executor_and_recordings_from_anywhere(work: Path) -> None:
    marker = f"mgt-test-{uuid.uuid4().hex}"
    machine = _replay_machine(work)
    machine.write_text(machine.read_text().replace("    on done -> ok\n", f"""\
    on done -> wait

state wait:
    run command "touch started; until [ -e go ]; do sleep 0.1; done # {marker}"
    on done -> ok
"""))
    replay = work / "recorded"
    replay.mkdir()
    empty = {"patterns": [], "summary": {"total_patterns": 0, "critical": 0, "warning": 0,
                                          "info": 0}}
    write(replay / "analyze.json", _claude_result(json.dumps(empty), 0.002))
    proc = spawn("exec", machine, "--runs-dir", "runs", "--executor", "replay:recorded",
                 cwd=work)
    try:
        wait_for("the wait state", (work / "started").exists, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        kill_processes_with(marker)
    run_dir = only_run(work / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["executor"] == "replay"
    assert info["executor_options"] == {"replay_dir": str(replay.resolve())}

    (work / "go").touch()
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    resumed = mgt("resume", run_dir.name, "--runs-dir", work / "runs", "--json", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["path"] == ["analyze", "wait", "ok"]


def test_a_run_ending_at_a_fail_final_says_what_went_wrong(work: Path) -> None:
    # 'failed at X' alone left the user to dig the cause out of events.jsonl
    machine = write(work / "why.mgt", """\
machine why

input threshold: json = null

state probe:
    run command "true"
    on done when input.threshold > 1 -> failed
    on done -> ok
    on error -> failed

final ok: succeed
final failed: fail
""")
    proc = mgt("exec", machine, "--runs-dir", "runs", cwd=work)
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("mgt: run ") and " failed at 'failed'" in line, line
    assert "last error in 'probe'" in line and "could not be evaluated" in line, line
    run_id = line.split()[2]
    shown = mgt("show", run_id, "--runs-dir", "runs", cwd=work)
    assert "last error in 'probe'" in shown.stdout, shown.stdout


def test_an_implicit_fail_also_quotes_the_error(work: Path) -> None:
    proc = mgt("exec", write(work / "f.mgt", FAILING), "--runs-dir", "runs", cwd=work)
    assert proc.returncode == 1
    line = proc.stderr.splitlines()[-1]
    assert "state 'boom' ended with 'error' and has no transition for it" in line
    assert "last error in 'boom': command exited with 4: broken" in line, line
