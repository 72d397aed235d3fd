"""The command executor: output shape, exit codes, timeouts, environment and cwd."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mgt.errors import ExecutorError
from mgt.executors import make_executor
from mgt.executors.base import ExecRequest
from tests.executors.conftest import alive

Build = Callable[..., ExecRequest]


def test_exit_zero_is_done_with_output(make_request: Build) -> None:
    request = make_request(command="echo hello; echo warn >&2", prompt="")
    result = make_executor("command").run(request)
    assert result.error is None
    assert result.output == {"exit_code": 0, "stdout": "hello\n", "stderr": "warn\n"}
    assert result.exit_code == 0
    assert (request.attempt_dir / "stdout.txt").read_text() == "hello\n"
    assert (request.attempt_dir / "stderr.txt").read_text() == "warn\n"


def test_non_zero_exit_is_an_error_quoting_stderr(make_request: Build) -> None:
    result = make_executor("command").run(
        make_request(command="echo partial; echo 'tests failed: 3' >&2; exit 3")
    )
    assert result.error == "command exited with 3: tests failed: 3"
    assert result.output == {"exit_code": 3, "stdout": "partial\n", "stderr": "tests failed: 3\n"}
    assert not result.timed_out


def test_killed_by_signal_is_reported(make_request: Build) -> None:
    result = make_executor("command").run(make_request(command="kill -TERM $$"))
    assert result.error == "command was killed by signal 15"


def test_timeout_stops_the_command_and_its_children(make_request: Build) -> None:
    request = make_request(command="sleep 300 & echo $! > child.pid; wait", timeout_seconds=1.0)
    result = make_executor("command", grace=0.5).run(request)
    assert result.timed_out
    assert "did not finish within 1s" in (result.error or "")
    child = int((request.cwd / "child.pid").read_text())
    assert not alive(child)


def test_runs_in_cwd_with_the_request_environment(make_request: Build) -> None:
    request = make_request(command='pwd; printf "%s" "$MGT_EXTRA"', env={"MGT_EXTRA": "v1"})
    result = make_executor("command").run(request)
    assert result.output["stdout"] == f"{request.cwd}\nv1"


def test_no_command_is_an_executor_error(make_request: Build) -> None:
    with pytest.raises(ExecutorError, match="needs a command"):
        make_executor("command").run(make_request(command=None))
