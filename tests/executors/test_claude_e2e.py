"""The claude executor driving the real Claude Code CLI against the scripted Messages-API server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from mgt.executors import make_executor
from mgt.executors.base import ExecRequest
from tests.executors.conftest import SCHEMA, pids_with
from tests.fakes.claude_cli import ClaudeCLI

pytestmark = pytest.mark.e2e

Build = Callable[..., ExecRequest]


def test_structured_output_happy_path(claude_cli: ClaudeCLI, make_request: Build) -> None:
    claude_cli.server.push({"structured": {"verdict": "slow", "count": 3}})
    request = make_request(output_schema=SCHEMA, prompt="Find the slow nodes.")
    result = make_executor("claude").run(request)

    assert result.error is None, result.error
    assert result.output == {"verdict": "slow", "count": 3}
    assert json.loads(result.text or "") == {"verdict": "slow", "count": 3}
    assert result.cost_usd > 0
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.session_id
    assert result.raw_result_path == request.attempt_dir / "result.json"
    assert json.loads(result.raw_result_path.read_text())["type"] == "result"

    (call,) = claude_cli.server.message_requests
    # Lean: the polecat's own system prompt, no built-in tools, only the schema tool.
    assert "You are the log analyzer polecat." in call.system_text
    assert len(call.system_text) < 1000
    assert "Find the slow nodes." in call.first_user_text
    assert [t for t in call.tool_names if t != "DeferredToolPlaceholder"] == ["StructuredOutput"]
    schema_tool = next(t for t in call.body["tools"] if t["name"] == "StructuredOutput")  # type: ignore[index]
    assert schema_tool["input_schema"]["required"] == ["verdict"]
    # The reported input tokens are what the server said it counted.
    assert result.input_tokens == call.body_chars // 4


def test_text_answer_with_fenced_json(claude_cli: ClaudeCLI, make_request: Build) -> None:
    answer = 'Here it is:\n```json\n{"verdict": "fine"}\n```'
    claude_cli.server.push({"text": answer})
    result = make_executor("claude").run(make_request(output_schema=None))
    assert result.error is None, result.error
    assert result.text == answer  # extraction from the text is the runtime's job
    assert result.output is None
    assert "StructuredOutput" not in claude_cli.server.message_requests[0].tool_names


def test_mapped_tools_are_the_only_tools_and_the_allowlist_is_enforced(
    claude_cli: ClaudeCLI, make_request: Build
) -> None:
    request = make_request(tools=("Bash(mgt logs:*)",))
    forbidden = request.cwd / "forbidden"
    claude_cli.server.push(
        {"tool": "Bash", "input": {"command": f"touch {forbidden}", "description": "x"}},
        {"text": "done"},
    )
    result = make_executor("claude").run(request)
    assert result.error is None, result.error
    assert result.text == "done"
    first = claude_cli.server.message_requests[0]
    assert [t for t in first.tool_names if t != "DeferredToolPlaceholder"] == ["Bash"]
    assert not forbidden.exists(), "a command outside the polecat's allowlist ran"
    denials = result.details["permission_denials"]
    assert denials[0]["tool_input"]["command"] == f"touch {forbidden}"


def test_api_400_is_an_error_with_the_reason(claude_cli: ClaudeCLI, make_request: Build) -> None:
    claude_cli.server.push(
        {"status": 400, "message": "prompt is too long: 250000 tokens > 200000 maximum"}
    )
    result = make_executor("claude").run(make_request())
    assert result.error is not None
    assert result.error.startswith("Claude Code reported an error (API status 400): ")
    assert "Prompt is too long" in result.error
    assert result.exit_code == 1
    assert not result.timed_out
    assert result.details["api_error_status"] == 400


def test_server_hang_is_stopped_by_our_timeout_with_no_leftover_process(
    claude_cli: ClaudeCLI, make_request: Build
) -> None:
    claude_cli.server.push({"hang": True})
    request = make_request(timeout_seconds=3.0)
    result = make_executor("claude", grace=1.0).run(request)
    assert result.timed_out
    assert "did not answer within 3s" in (result.error or "")
    assert result.output is None
    # The system prompt file path is unique to this attempt and on the CLI's command line.
    assert pids_with(str(request.attempt_dir)) == []
    assert len(claude_cli.server.message_requests) == 1


def test_retry_feedback_reaches_the_prompt(claude_cli: ClaudeCLI, make_request: Build) -> None:
    claude_cli.server.push({"structured": {"verdict": "x"}})
    feedback = "Your previous answer failed validation: $.count: 'three' is not of type 'integer'"
    make_executor("claude").run(make_request(attempt=2, prompt=f"Do it.\n\n{feedback}"))
    assert feedback in claude_cli.server.message_requests[0].first_user_text


def test_schema_invalid_answers_until_the_cli_gives_up(
    claude_cli: ClaudeCLI, make_request: Build
) -> None:
    # Claude Code validates --json-schema itself, tells the model, and stops after 5 tries.
    claude_cli.server.push(*[{"structured": {"verdict": n}} for n in range(5)])
    result = make_executor("claude").run(make_request(output_schema=SCHEMA))
    assert result.output is None
    assert result.details["subtype"] == "error_max_structured_output_retries"
    assert "/verdict: must be string" in result.details["errors"][0]
    assert result.error is not None and "/verdict: must be string" in result.error
    calls = claude_cli.server.message_requests
    assert len(calls) == 5
    assert "Output does not match required schema" in calls[1].messages_text
