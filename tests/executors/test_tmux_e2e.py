"""The tmux executor with real tmux (a private server) running the real Claude Code CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mgt.executors import make_executor
from mgt.executors.base import ExecRequest
from tests.executors.conftest import SCHEMA, pids_with
from tests.fakes.claude_cli import ClaudeCLI

pytestmark = pytest.mark.e2e

Build = Callable[..., ExecRequest]


@pytest.fixture
def socket() -> Iterator[str]:
    """A private tmux server for this test, killed afterwards."""
    if shutil.which("tmux") is None:
        pytest.skip("TMUX NOT INSTALLED: run scripts/install-test-tools.sh")
    name = f"mgt-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


def tmux(socket: str, *args: str) -> str:
    proc = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.stdout


def test_window_created_and_result_read(
    claude_cli: ClaudeCLI, make_request: Build, socket: str
) -> None:
    claude_cli.server.push({"structured": {"verdict": "from tmux"}})
    request = make_request(state="file_pr", attempt=1, output_schema=SCHEMA)
    executor = make_executor("tmux", session="mgt-e2e", socket=socket, keep_window=True)
    result = executor.run(request)

    assert result.error is None, result.error
    assert result.output == {"verdict": "from tmux"}
    assert result.cost_usd > 0
    windows = tmux(socket, "list-windows", "-t", "mgt-e2e", "-F", "#{window_name}").split()
    assert "mgt-file_pr-1" in windows  # kept open, showing the answer, until Enter
    assert result.details["window"] == "mgt-file_pr-1"
    assert json.loads((request.attempt_dir / "result.json").read_text())["type"] == "result"
    assert (request.attempt_dir / "exit_code").read_text().strip() == "0"
    # Lean like the claude executor: the polecat's system prompt, no default tools.
    (call,) = claude_cli.server.message_requests
    assert "You are the log analyzer polecat." in call.system_text
    assert "Bash" not in call.tool_names
    tmux(socket, "send-keys", "-t", "mgt-e2e:mgt-file_pr-1", "Enter")


def test_finished_window_closes_and_session_stays(
    claude_cli: ClaudeCLI, make_request: Build, socket: str
) -> None:
    claude_cli.server.push({"text": "plain"})
    first = make_executor("tmux", session="mgt-e2e", socket=socket)
    assert first.run(make_request(state="a")).text == "plain"
    claude_cli.server.push({"text": "again"})
    assert first.run(make_request(state="b")).text == "again"  # reuses the session
    assert tmux(socket, "list-sessions", "-F", "#{session_name}").split() == ["mgt-e2e"]
    windows = tmux(socket, "list-windows", "-a", "-F", "#{window_name}").split()
    assert "mgt-a-1" not in windows and "mgt-b-1" not in windows


def test_timeout_kills_the_window_and_its_processes(
    claude_cli: ClaudeCLI, make_request: Build, socket: str
) -> None:
    claude_cli.server.push({"hang": True})
    request = make_request(state="analyze", attempt=3, timeout_seconds=3.0)
    result = make_executor("tmux", session="mgt-e2e", socket=socket, grace=1.0).run(request)
    assert result.timed_out
    assert "tmux window mgt-analyze-3 was killed" in (result.error or "")
    assert pids_with(str(request.attempt_dir)) == []
    assert "mgt-analyze-3" not in tmux(socket, "list-windows", "-a", "-F", "#{window_name}")


def test_claude_failing_in_the_window_is_an_error(
    claude_cli: ClaudeCLI, make_request: Build, socket: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-claude"
    broken.write_text("#!/bin/sh\necho 'fatal: cannot start' >&2\nexit 7\n")
    broken.chmod(0o755)
    request = make_request(timeout_seconds=30.0)
    executor = make_executor("tmux", session="mgt-e2e", socket=socket, program=str(broken))
    result = executor.run(request)
    assert not result.timed_out
    assert (
        result.error
        == "Claude Code (in tmux) printed no result (exit 7); stderr: fatal: cannot start"
    )
