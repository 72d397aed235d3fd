"""ExecRequest → headless Claude Code (`claude -p --output-format json`) → ExecResult.

The lean way to run a polecat: only its own system prompt (`--system-prompt-file`)
and only its mapped tools (`--tools`), with the allowlist enforced
(`--permission-mode dontAsk --allowedTools PATTERNS`: a tool call outside the
patterns is denied, not run). Claude Code's default prompt and full tool set
would make every request many times larger (see bench/bench_tokens.py).

    claude -p --output-format json --model M --system-prompt-file SYS
           --tools "Bash,Read" [--allowedTools P...] --permission-mode dontAsk
           [--json-schema SCHEMA]   < PROMPT

The prompt goes on standard input (no argv length limit). Program: `MGT_CLAUDE`
or `claude` on PATH; extra flags from `MGT_CLAUDE_ARGS` (shell words, e.g.
`--bare`). `parse_claude_result` reads the one JSON object the CLI prints; the
zellij-cc, tmux and replay executors use it too.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.common import (
    RESULT_FILE,
    STDERR_FILE,
    child_env,
    find_program,
    prepare_attempt_dir,
)
from mgt.executors.mapping import DEFAULT_MODEL, builtin_tools
from mgt.executors.process import DEFAULT_GRACE_SECONDS, run_process

__all__ = [
    "INSTALL_HINT",
    "ClaudeExecutor",
    "claude_args",
    "find_claude",
    "find_result_object",
    "parse_claude_result",
]

INSTALL_HINT = "install Claude Code (npm install -g @anthropic-ai/claude-code)"
SYSTEM_PROMPT_FILE = "system-prompt.txt"


def find_claude() -> str:
    """The Claude Code program: `MGT_CLAUDE`, else `claude` on PATH; ExecutorError if neither."""
    return find_program("MGT_CLAUDE", "claude", INSTALL_HINT)


class ClaudeExecutor:
    """Runs each request as one headless Claude Code process."""

    name = "claude"

    def __init__(
        self,
        *,
        program: str | None = None,
        extra_args: Sequence[str] | None = None,
        permission_mode: str = "dontAsk",
        grace: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self._program = program
        if extra_args is None:
            extra_args = shlex.split(os.environ.get("MGT_CLAUDE_ARGS", ""))
        self.extra_args = tuple(extra_args)
        self.permission_mode = permission_mode
        self.grace = grace

    @property
    def program(self) -> str:
        if self._program is None:
            self._program = find_claude()
        return self._program

    def argv(self, request: ExecRequest, system_prompt_file: Path) -> list[str]:
        """The command line for `request` (the prompt itself goes on stdin)."""
        return [
            self.program,
            *claude_args(request, system_prompt_file, self.permission_mode),
            *self.extra_args,
        ]

    def run(self, request: ExecRequest) -> ExecResult:
        attempt_dir = prepare_attempt_dir(request.attempt_dir)
        system_file = attempt_dir / SYSTEM_PROMPT_FILE
        system_file.write_text(
            request.system_prompt or "", encoding="utf-8", errors="backslashreplace"
        )
        result_path = attempt_dir / RESULT_FILE
        proc = run_process(
            self.argv(request, system_file),
            cwd=request.cwd,
            env=child_env(request.env),
            timeout=request.timeout_seconds,
            input=request.prompt,
            stdout_path=result_path,
            stderr_path=attempt_dir / STDERR_FILE,
            grace=self.grace,
        )
        if proc.timed_out:
            return ExecResult(
                raw_result_path=result_path,
                timed_out=True,
                error=f"Claude Code did not answer within {_seconds(request.timeout_seconds)}; "
                "it was stopped with all its processes",
            )
        return parse_claude_result(
            proc.stdout,
            exit_code=proc.exit_code,
            stderr=proc.stderr,
            raw_result_path=result_path,
        )


def claude_args(request: ExecRequest, system_prompt_file: Path, permission_mode: str) -> list[str]:
    args = [
        "-p",
        "--output-format", "json",
        "--model", request.model or DEFAULT_MODEL,
        "--system-prompt-file", str(system_prompt_file),
        "--tools", builtin_tools(request.tools),
    ]  # fmt: skip
    if request.tools:
        args += ["--allowedTools", *request.tools]
    args += ["--permission-mode", permission_mode]
    if request.output_schema is not None:
        args += ["--json-schema", json.dumps(request.output_schema, separators=(",", ":"))]
    return args


def parse_claude_result(
    stdout: str,
    *,
    exit_code: int | None,
    stderr: str = "",
    raw_result_path: Path | None = None,
    source: str = "Claude Code",
) -> ExecResult:
    """Claude Code's `--output-format json` text → ExecResult (never raises for bad content)."""
    result = ExecResult(raw_result_path=raw_result_path, exit_code=exit_code)
    text = stdout.strip()
    if not text:
        result.error = f"{source} printed no result ({_exit(exit_code)}){_tail(stderr)}"
        return result
    obj = find_result_object(text)
    if obj is None:
        result.error = (
            f"{source} printed something that is not a JSON result ({_exit(exit_code)}): "
            f"{text[:200]!r}{_tail(stderr)}"
        )
        return result
    fill_from_result(result, obj)
    if obj.get("is_error"):
        status = obj.get("api_error_status")
        raw_errors = obj.get("errors")
        errors = [str(e) for e in raw_errors if e] if isinstance(raw_errors, list) else []
        reason = obj.get("result") or "; ".join(errors) or obj.get("subtype") or "unknown error"
        api = f" (API status {status})" if status else ""
        result.error = f"{source} reported an error{api}: {_one_line(str(reason))}"
    elif exit_code not in (0, None):
        result.error = f"{source} exited with {exit_code}{_tail(stderr)}"
    return result


def fill_from_result(result: ExecResult, obj: dict[str, Any]) -> None:
    """Copy text, structured output, cost, tokens and session from a result object."""
    if isinstance(obj.get("result"), str):
        result.text = obj["result"]
    if "structured_output" in obj:
        result.output = obj["structured_output"]
    result.cost_usd = _number(obj.get("total_cost_usd"))
    raw_usage = obj.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    cache_read = int(_number(usage.get("cache_read_input_tokens")))
    cache_creation = int(_number(usage.get("cache_creation_input_tokens")))
    result.input_tokens = int(_number(usage.get("input_tokens"))) + cache_read + cache_creation
    result.output_tokens = int(_number(usage.get("output_tokens")))
    if isinstance(obj.get("session_id"), str):
        result.session_id = obj["session_id"]
    details: dict[str, Any] = {
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }
    for key in ("subtype", "num_turns", "duration_ms", "stop_reason", "api_error_status",
                "terminal_reason"):  # fmt: skip
        if obj.get(key) is not None:
            details[key] = obj[key]
    models = obj.get("modelUsage")
    if isinstance(models, dict) and models:
        details["models"] = sorted(models)
    if isinstance(obj.get("errors"), list) and obj["errors"]:
        details["errors"] = obj["errors"]  # e.g. why --json-schema retries ran out
    if obj.get("permission_denials"):
        details["permission_denials"] = obj["permission_denials"]
    result.details.update(details)


def find_result_object(text: str) -> dict[str, Any] | None:
    """The `{"type": "result", ...}` object in the output, tolerating stray lines around it."""
    candidates: list[Any] = []
    try:
        candidates.append(json.loads(text))
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to be a result
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith(("{", "[")):
                try:
                    candidates.append(json.loads(line))
                    break
                except (ValueError, RecursionError):
                    continue
    for value in candidates:
        items = value if isinstance(value, list) else [value]  # --verbose prints a list
        for item in reversed(items):
            if isinstance(item, dict) and item.get("type") == "result":
                return item
    return None


def _number(value: Any) -> float:
    """A cost or token count as reported; anything else (text, negative, not finite, too big
    for a float) counts as 0, so a bad result can neither crash a run nor refill its budget."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


def _exit(code: int | None) -> str:
    return "no exit code" if code is None else f"exit {code}"


def _one_line(text: str, width: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"; stderr: {_one_line(' | '.join(lines[-3:]), 300)}" if lines else ""


def _seconds(value: float) -> str:
    return f"{value:g}s"
