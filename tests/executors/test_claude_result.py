"""parse_claude_result on odd outputs, and the claude executor's command line and failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mgt.errors import ExecutorError
from mgt.executors import make_executor
from mgt.executors.base import ExecRequest
from mgt.executors.claude import ClaudeExecutor, parse_claude_result

Build = Callable[..., ExecRequest]

RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "result": "plain answer",
    "session_id": "s1",
    "total_cost_usd": 0.01,
    "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 10},
    "modelUsage": {"claude-haiku-4-5": {}},
    "num_turns": 1,
}


def test_plain_result() -> None:
    result = parse_claude_result(json.dumps(RESULT), exit_code=0)
    assert result.error is None
    assert (result.text, result.output, result.session_id) == ("plain answer", None, "s1")
    assert (result.input_tokens, result.output_tokens, result.cost_usd) == (15, 2, 0.01)
    assert result.details["models"] == ["claude-haiku-4-5"]
    assert result.details["cache_read_input_tokens"] == 10


def test_verbose_list_output_and_stray_lines() -> None:
    verbose = json.dumps([{"type": "system"}, {"type": "assistant"}, RESULT])
    assert parse_claude_result(verbose, exit_code=0).text == "plain answer"
    noisy = "warning: something\n" + json.dumps(RESULT) + "\n"
    assert parse_claude_result(noisy, exit_code=0).text == "plain answer"


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("", "Claude Code printed no result (exit 1); stderr: boom"),
        ("<html>502</html>", "Claude Code printed something that is not a JSON result (exit 1): "
         "'<html>502</html>'; stderr: boom"),
        ('{"type": "assistant"}', "Claude Code printed something that is not a JSON result"),
        ("[1, 2]", "Claude Code printed something that is not a JSON result"),
    ],
)  # fmt: skip
def test_garbage_is_an_error_quoting_it(stdout: str, expected: str) -> None:
    result = parse_claude_result(stdout, exit_code=1, stderr="\nboom\n")
    assert (result.error or "").startswith(expected)


def test_long_garbage_is_cut_to_200_chars() -> None:
    result = parse_claude_result("x" * 5000, exit_code=0)
    assert "'" + "x" * 200 + "'" in (result.error or "")
    assert "x" * 201 not in (result.error or "")


def test_error_result_without_status_and_non_zero_exit() -> None:
    failed = dict(RESULT, is_error=True, subtype="error_max_turns", result=None)
    assert parse_claude_result(json.dumps(failed), exit_code=1).error == (
        "Claude Code reported an error: error_max_turns"
    )
    odd = parse_claude_result(json.dumps(RESULT), exit_code=3, stderr="crashed late")
    assert odd.error == "Claude Code exited with 3; stderr: crashed late"


def test_bad_numbers_count_as_zero() -> None:
    weird = dict(
        RESULT, total_cost_usd="a lot", usage={"input_tokens": None, "output_tokens": True}
    )
    result = parse_claude_result(json.dumps(weird), exit_code=0)
    assert (result.cost_usd, result.input_tokens, result.output_tokens) == (0.0, 0, 0)


def test_command_line_is_lean(make_request: Build, tmp_path: Path) -> None:
    executor = ClaudeExecutor(program="claude", extra_args=["--bare"])
    request = make_request(
        tools=("Bash(mgt logs:*)", "Read"), output_schema={"type": "object"}, model="haiku"
    )
    argv = executor.argv(request, tmp_path / "sys.txt")
    assert argv == [
        "claude", "-p", "--output-format", "json", "--model", "haiku",
        "--system-prompt-file", str(tmp_path / "sys.txt"), "--tools", "Bash,Read",
        "--allowedTools", "Bash(mgt logs:*)", "Read", "--permission-mode", "dontAsk",
        "--json-schema", '{"type":"object"}', "--bare",
    ]  # fmt: skip
    assert request.prompt not in argv  # the prompt goes on stdin


def test_extra_args_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGT_CLAUDE_ARGS", "--bare --effort 'low'")
    assert ClaudeExecutor().extra_args == ("--bare", "--effort", "low")


def test_a_program_that_is_not_claude(make_request: Build, tmp_path: Path) -> None:
    fake = tmp_path / "not-claude"
    fake.write_text("#!/bin/sh\necho 'Error: something odd happened'\nexit 1\n")
    fake.chmod(0o755)
    result = make_executor("claude", program=str(fake)).run(make_request())
    assert result.error == (
        "Claude Code printed something that is not a JSON result (exit 1): "
        "'Error: something odd happened'"
    )


def test_missing_program_is_an_executor_error(
    make_request: Build, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MGT_CLAUDE", str(tmp_path / "no-claude"))
    with pytest.raises(ExecutorError, match=r"MGT_CLAUDE=.*no such executable"):
        make_executor("claude").run(make_request())
    monkeypatch.delenv("MGT_CLAUDE")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorError, match="npm install -g @anthropic-ai/claude-code"):
        make_executor("claude").run(make_request())
