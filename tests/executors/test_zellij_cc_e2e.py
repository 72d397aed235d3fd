"""The zellij-cc executor through the stand-in (the seed's flags) and the real Claude Code CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mgt.errors import ExecutorError
from mgt.executors import make_executor
from mgt.executors.base import ExecRequest
from mgt.executors.zellij import ZellijCCExecutor, timeout_grace
from tests.executors.conftest import pids_with
from tests.fakes.claude_cli import ZELLIJ_CC_STANDIN, ClaudeCLI

Build = Callable[..., ExecRequest]


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "zellij-cc.log"
    monkeypatch.setenv("ZELLIJ_CC_LOG", str(log))
    return log


def logged_args(log: Path) -> dict[str, str]:
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    argv = entry["argv"]
    assert argv[0] == "run"
    return dict(zip(argv[1::2], argv[2::2], strict=True))


@pytest.mark.e2e
def test_zellij_cc_runs_claude_with_the_system_prompt_at_the_head(
    claude_cli: ClaudeCLI, make_request: Build, argv_log: Path
) -> None:
    claude_cli.server.push({"text": '{"verdict": "ok"}'})
    request = make_request(state="refine", attempt=2, prompt="Draft the change.")
    result = make_executor("zellij-cc", session="work").run(request)

    assert result.error is None, result.error
    assert result.text == '{"verdict": "ok"}'
    assert result.cost_usd > 0 and result.input_tokens > 0
    assert result.raw_result_path == request.attempt_dir / "result.json"
    assert result.details["pane"] == "mgt-refine-2"

    args = logged_args(argv_log)
    assert args["--session"] == "work"
    assert "refine" in args["--name"] and "2" in args["--name"]
    assert args["--model"] == "haiku"
    assert args["--output-file"] == str(request.attempt_dir / "result.json")
    assert args["--cwd"] == str(request.cwd)
    assert args["--timeout"] == "60"
    assert args["--prompt"] == "You are the log analyzer polecat.\n\nDraft the change."

    (call,) = claude_cli.server.message_requests
    # Claude Code adds its own reminder blocks first; our text is the prompt block itself.
    assert call.first_user_text.endswith("You are the log analyzer polecat.\n\nDraft the change.")
    # zellij-cc has no system-prompt or tools flag: Claude Code's own prompt and tools go along.
    assert len(call.system_text) > 5000
    assert "Bash" in call.tool_names


@pytest.mark.e2e
def test_zellij_cc_api_error_is_reported_with_its_reason(
    claude_cli: ClaudeCLI, make_request: Build
) -> None:
    claude_cli.server.push({"status": 400, "message": "prompt is too long: 1 > 0"})
    result = make_executor("zellij-cc", session="work").run(make_request())
    assert result.error is not None
    assert result.error.startswith("Claude Code (via zellij-cc) reported an error (API status 400)")
    assert result.exit_code == 1


@pytest.mark.e2e
def test_zellij_cc_timeout_is_a_timeout_and_leaves_nothing_running(
    claude_cli: ClaudeCLI, make_request: Build
) -> None:
    claude_cli.server.push({"hang": True})
    request = make_request(timeout_seconds=2.0, prompt="hang-marker-7f3a")
    result = make_executor("zellij-cc", session="work", grace=20.0).run(request)
    assert result.timed_out
    assert result.error is not None and "left no result" in result.error
    assert pids_with("hang-marker-7f3a") == []


def test_our_own_timeout_stops_a_hanging_zellij_cc(make_request: Build, tmp_path: Path) -> None:
    hanging = tmp_path / "zellij-cc"
    hanging.write_text("#!/bin/sh\nsleep 300 # stuck-zellij-marker\n")
    hanging.chmod(0o755)
    request = make_request(timeout_seconds=0.5)
    executor = make_executor("zellij-cc", session="s", program=str(hanging), grace=0.5)
    result = executor.run(request)
    assert result.timed_out
    assert "did not return within 0.5s (+0.5s grace)" in (result.error or "")
    assert pids_with("stuck-zellij-marker") == []


def test_a_hanging_zellij_cc_is_stopped_after_a_grace_proportionate_to_the_timeout(
    make_request: Build, monkeypatch: pytest.MonkeyPatch, argv_log: Path
) -> None:
    monkeypatch.setenv("ZELLIJ_CC_HANG", "1")  # the stand-in never reports, nor times out
    request = make_request(timeout_seconds=1.0, prompt="hung-standin-marker-51c2")
    executor = make_executor("zellij-cc", session="s", program=str(ZELLIJ_CC_STANDIN))
    assert isinstance(executor, ZellijCCExecutor)
    assert executor.grace_for(request) == 2.0  # not a fixed 30 s on top of a 1 s timeout
    result = executor.run(request)
    assert result.timed_out
    assert "did not return within 1s (+2s grace)" in (result.error or "")
    assert logged_args(argv_log)["--timeout"] == "1"
    assert pids_with("hung-standin-marker-51c2") == []


@pytest.mark.parametrize(
    ("timeout", "grace"),
    [(0.5, 2.0), (3.0, 2.0), (8.0, 2.0), (20.0, 5.0), (60.0, 15.0), (120.0, 30.0), (3600, 30.0)],
)
def test_timeout_grace_is_a_quarter_of_the_timeout_within_bounds(
    timeout: float, grace: float, make_request: Build
) -> None:
    assert timeout_grace(timeout) == grace
    executor = make_executor("zellij-cc", session="s")
    fixed = make_executor("zellij-cc", session="s", grace=7.0)  # the option still wins
    assert isinstance(executor, ZellijCCExecutor) and isinstance(fixed, ZellijCCExecutor)
    assert executor.grace_for(make_request(timeout_seconds=timeout)) == grace
    assert fixed.grace_for(make_request(timeout_seconds=timeout)) == 7.0


def test_zellij_cc_printing_garbage_is_an_error(make_request: Build, tmp_path: Path) -> None:
    broken = tmp_path / "zellij-cc"
    broken.write_text("#!/bin/sh\necho 'thread main panicked' >&2\necho not-json\nexit 101\n")
    broken.chmod(0o755)
    result = make_executor("zellij-cc", session="s", program=str(broken)).run(make_request())
    assert result.error is not None
    assert "zellij-cc (exit 101) left no result" in result.error
    assert "'not-json'" in result.error
    assert "thread main panicked" in result.error


def test_zellij_cc_needs_a_session(make_request: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZELLIJ_SESSION_NAME", raising=False)
    monkeypatch.setenv("MGT_ZELLIJ_CC", str(ZELLIJ_CC_STANDIN))
    with pytest.raises(ExecutorError, match="zellij-cc needs a zellij session"):
        make_executor("zellij-cc").run(make_request())
    monkeypatch.setenv("ZELLIJ_SESSION_NAME", "from-env")
    assert make_executor("zellij-cc").session == "from-env"  # type: ignore[attr-defined]


def test_zellij_cc_not_installed(make_request: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MGT_ZELLIJ_CC", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ExecutorError, match="zellij-cc not found on PATH"):
        make_executor("zellij-cc", session="s").run(make_request())


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--session", "s", "--name", "n", "--prompt", "p", "--output-file", "f", "--bogus"],
        ["run", "--session", "s", "--name", "n", "--prompt", "p"],
        ["run", "--session", "s", "--name", "n", "--prompt", "p", "--output-file", "f",
         "--timeout", "soon"],
        ["spawn"],
        [],
    ],
)  # fmt: skip
def test_standin_rejects_bad_arguments_like_the_real_one(args: list[str]) -> None:
    proc = subprocess.run(
        [str(ZELLIJ_CC_STANDIN), *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "usage: zellij-cc" in proc.stderr
    assert proc.stdout == ""
