"""`mgt exec` end to end: the real Claude Code CLI (claude and zellij-cc executors) against the
scripted Messages-API server. Each test reads what reached the server, not just what mgt says."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.claude_cli import ClaudeCLI
from tests.runtime.procs import (
    journal,
    kill_processes_with,
    mgt,
    spawn,
    wait_for,
    wait_for_event,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
IMPORTS = f"""\
import polecats from "{ROOT / 'polecats'}"
import formulas from "{ROOT / 'formulas'}"
import schemas from "{ROOT / 'schemas'}"
"""


def report(total: int = 0) -> dict[str, Any]:
    patterns = [
        {"id": f"slow-llm-n{i}", "type": "slow_llm", "severity": "warning", "occurrences": 4,
         "details": {"node": f"n{i}"}, "recommendation": "shorten the prompt"}
        for i in range(total)
    ]
    return {"patterns": patterns,
            "summary": {"total_patterns": total, "critical": 0, "warning": total, "info": 0}}


INVALID = {"patterns": [{"id": 7}], "summary": {"total_patterns": "three"}}


def write_machine(work: Path, body: str, name: str = "m") -> Path:
    path = work / f"{name}.mgt"
    path.write_text(f"machine {name}\n\n{IMPORTS}\n{body}")
    return path


def exec_json(work: Path, machine: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = mgt("exec", machine, "--runs-dir", "runs", "--json", *extra, cwd=work)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def events(work: Path, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in journal(work / "runs" / run_id) if e["type"] == kind]


ANALYZE = """\
state analyze:
    run formula analyze
    with since = 24h
    timeout 60s
    on done when output.summary.total_patterns == 0 -> quiet
    on done -> busy

final quiet: succeed "no actionable patterns"
final busy: succeed
"""


@pytest.mark.parametrize(("total", "final"), [(0, "quiet"), (2, "busy")])
def test_happy_path_with_guard_routing(claude_cli: ClaudeCLI, tmp_path: Path, total: int,
                                       final: str) -> None:
    claude_cli.server.push({"structured": report(total)})
    code, summary, err = exec_json(tmp_path, write_machine(tmp_path, ANALYZE),
                                   "--executor", "claude")
    assert code == 0, err
    assert summary["status"] == "succeeded" and summary["final"] == final
    assert summary["path"] == ["analyze", final]
    assert summary["outputs"]["analyze"] == report(total)
    assert summary["cost_usd"] > 0
    assert summary["tokens"]["input"] > 0 and summary["tokens"]["output"] > 0

    (call,) = claude_cli.server.message_requests
    assert "You are the Log Analyzer for ExoMonad" in call.system_text
    prompt = call.first_user_text
    assert "# Task: analyze" in prompt
    assert "5. Generate PatternReport with recommendations" in prompt
    assert '- `since` = "24h"' in prompt
    (transition,) = events(tmp_path, summary["run_id"], "transition")
    expected_guard = "output.summary.total_patterns == 0" if total == 0 else None
    assert transition["guard"] == expected_guard


RETRYING = """\
state analyze:
    run formula analyze
    with since = 24h
    retry 1 on schema_invalid with feedback
    on done -> ok
    on schema_invalid -> gave_up

final ok: succeed
final gave_up: fail "the analysis never matched its schema"
"""


def test_no_json_then_valid_json_the_feedback_reaches_the_second_prompt(
    claude_cli: ClaudeCLI, tmp_path: Path
) -> None:
    """Through zellij-cc (no --json-schema), mgt extracts and validates the answer itself."""
    claude_cli.server.push(
        {"text": "I looked at the logs and everything seems fine."},
        {"text": f"Here is the report:\n```json\n{json.dumps(report(0))}\n```"},
    )
    code, summary, err = exec_json(tmp_path, write_machine(tmp_path, RETRYING),
                                   "--executor", "zellij-cc", "--session", "test")
    assert code == 0, err
    assert summary["path"] == ["analyze", "ok"]
    first, second = claude_cli.server.message_requests
    assert "was rejected" not in first.first_user_text
    assert "## Your previous answer (attempt 1) was rejected: `schema_invalid`" in \
        second.first_user_text
    assert "- the answer contains no JSON object" in second.first_user_text
    outcomes = [e["outcome"] for e in events(tmp_path, summary["run_id"], "attempt_finished")]
    assert outcomes == ["schema_invalid", "done"]


def test_schema_invalid_until_retries_run_out_fires_the_events_transition(
    claude_cli: ClaudeCLI, tmp_path: Path
) -> None:
    """Claude Code checks --json-schema and retries by itself; when it gives up, mgt retries
    with feedback quoting every error path, then takes `on schema_invalid`."""
    claude_cli.server.push(*[{"structured": INVALID}] * 40)
    code, summary, err = exec_json(tmp_path, write_machine(tmp_path, RETRYING),
                                   "--executor", "claude")
    assert code == 1, err
    assert (summary["status"], summary["final"]) == ("failed", "gave_up")
    assert "the analysis never matched its schema" in err
    finished = events(tmp_path, summary["run_id"], "attempt_finished")
    assert [e["outcome"] for e in finished] == ["schema_invalid", "schema_invalid"]
    assert "at $.summary.total_patterns: must be integer" in finished[0]["problems"]
    retried = [r for r in claude_cli.server.message_requests
               if "(attempt 1) was rejected" in r.first_user_text]
    assert retried, "the feedback never reached the server"
    assert "- at $.summary.total_patterns: must be integer" in retried[0].first_user_text
    assert "- at $.patterns[0].id: must be string" in retried[0].first_user_text


def test_a_hanging_model_is_a_timeout_and_claude_is_stopped(
    claude_cli: ClaudeCLI, tmp_path: Path
) -> None:
    claude_cli.server.push({"hang": True})
    machine = write_machine(tmp_path, """\
state analyze:
    run formula analyze
    with since = 24h
    timeout 3s
    on done -> ok
    on timeout -> slow

final ok: succeed
final slow: fail "the model did not answer in time"
""")
    code, summary, err = exec_json(tmp_path, machine, "--executor", "claude")
    assert code == 1, err
    assert summary["final"] == "slow"
    (finished,) = events(tmp_path, summary["run_id"], "attempt_finished")
    assert finished["outcome"] == "timeout"
    assert "did not answer within 3s" in finished["error"]
    assert not _claude_alive(summary["run_id"])


def test_an_api_error_is_an_error_outcome(claude_cli: ClaudeCLI, tmp_path: Path) -> None:
    claude_cli.server.push({"status": 400, "message": "prompt is too long"})
    machine = write_machine(tmp_path, """\
state analyze:
    run formula analyze
    with since = 24h
    on done -> ok
    on error -> broke

final ok: succeed
final broke: fail
""")
    code, summary, err = exec_json(tmp_path, machine, "--executor", "claude")
    assert code == 1, err
    assert summary["final"] == "broke"
    (finished,) = events(tmp_path, summary["run_id"], "attempt_finished")
    assert finished["outcome"] == "error"
    assert "API status 400" in finished["error"]


TWO_CALLS = """\
state first:
    run polecat log-analyzer prompt "FIRST: report on the last day"
    output PatternReport
    on done -> second

state second:
    run polecat log-analyzer prompt "SECOND: report again"
    output PatternReport
    on done -> ok

final ok: succeed
"""


def test_the_budget_stops_the_run_before_a_call_over_it(claude_cli: ClaudeCLI, tmp_path: Path
                                                       ) -> None:
    claude_cli.server.push({"structured": report(0)}, {"structured": report(0)})
    code, summary, err = exec_json(tmp_path, write_machine(tmp_path, TWO_CALLS),
                                   "--executor", "claude", "--budget-usd", "0.000001")
    assert code == 1, err
    assert summary["path"] == ["first", "second", "_fail"]
    assert len(claude_cli.server.message_requests) == 1  # the second call was never made
    finished = events(tmp_path, summary["run_id"], "attempt_finished")
    assert finished[-1]["error"].startswith("budget exhausted: spent $")
    assert finished[-1]["error"].endswith("of $0.0000")


def _requests_with(cli: ClaudeCLI, text: str) -> int:
    return sum(1 for r in cli.server.message_requests if text in r.first_user_text)


def _claude_alive(marker: str) -> bool:
    from tests.executors.conftest import pids_with

    return bool(pids_with(marker))


def test_kill_9_during_a_model_call_then_resume_calls_only_what_did_not_finish(
    claude_cli: ClaudeCLI, tmp_path: Path
) -> None:
    claude_cli.server.push({"structured": report(0)}, {"hang": True})
    machine = write_machine(tmp_path, TWO_CALLS)
    proc = spawn("exec", machine, "--runs-dir", "runs", "--executor", "claude", cwd=tmp_path)
    try:
        run_dir = wait_for_event(tmp_path / "runs", proc, lambda e: e["type"] ==
                                 "attempt_started" and e["state"] == "second", "second to start")
        wait_for("the second call to reach the server",
                 lambda: _requests_with(claude_cli, "SECOND") == 1, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_processes_with(str(tmp_path / "runs"))  # the orphaned claude, as after a crash
    claude_cli.server.push({"structured": report(1)})
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["path"] == ["first", "second", "ok"]
    assert summary["outputs"] == {"first": report(0), "second": report(1)}
    assert _requests_with(claude_cli, "FIRST") == 1  # the finished state was not called again
    assert _requests_with(claude_cli, "SECOND") == 2
    assert summary["cost_usd"] > 0

    again = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to resume" in again.stderr
    assert len(claude_cli.server.message_requests) == 3


def test_ctrl_c_during_a_model_call_stops_claude_and_exits_130(
    claude_cli: ClaudeCLI, tmp_path: Path
) -> None:
    claude_cli.server.push({"structured": report(0)}, {"hang": True})
    proc = spawn("exec", write_machine(tmp_path, TWO_CALLS), "--runs-dir", "runs",
                 "--executor", "claude", cwd=tmp_path)
    try:
        wait_for("the second call", lambda: _requests_with(claude_cli, "SECOND") == 1, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_processes_with(str(tmp_path / "runs"))
    assert proc.returncode == 130, err
    assert "continue with: mgt resume" in err
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    wait_for("claude to be stopped", lambda: not _claude_alive(run_dir.name))
    claude_cli.server.push({"structured": report(0)})
    resumed = mgt("resume", run_dir.name, "--runs-dir", "runs", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _requests_with(claude_cli, "FIRST") == 1
