"""The executor contract: `ExecRequest` → `Executor.run` → `ExecResult`.

Executors know nothing of the .mgt language. They receive a fully assembled
request (prompt, system prompt, model alias, mapped tool patterns, output
schema, cwd, timeout) and return what happened; the runtime classifies it into
an outcome (`done`, `schema_invalid`, `guardrail`, `timeout`, `error`).

An executor must never raise for a failure of the thing it ran (non-zero exit,
bad JSON, timeout): it reports it in `ExecResult.error` / `timed_out`. It raises
`ExecutorError` only when it cannot run at all (program not installed, bad config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ExecRequest", "ExecResult", "Executor"]


@dataclass(frozen=True)
class ExecRequest:
    run_id: str
    state: str
    attempt: int  # 1-based
    prompt: str
    system_prompt: str | None
    model: str | None  # already mapped (e.g. "haiku")
    tools: tuple[str, ...]  # Claude Code tool/permission patterns, already mapped
    output_schema: Mapping[str, Any] | None  # resolved JSON Schema (no external $refs)
    cwd: Path
    timeout_seconds: float
    attempt_dir: Path  # the executor writes its raw result / stderr files here
    inputs: Mapping[str, Any] = field(default_factory=dict)  # evaluated `with` bindings
    command: str | None = None  # for the command executor
    builtin: str | None = None  # for the builtin executor
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment


@dataclass
class ExecResult:
    text: str | None = None  # the final text answer (Claude Code's `result`)
    output: Any = None  # structured output if the executor has one (structured_output, builtin)
    cost_usd: float = 0.0
    input_tokens: int = 0  # includes cache read/creation tokens
    output_tokens: int = 0
    session_id: str | None = None
    raw_result_path: Path | None = None
    exit_code: int | None = None
    error: str | None = None  # set when the step failed to produce an answer
    timed_out: bool = False
    guardrail: list[str] | None = None  # a builtin's deterministic rejection (→ guardrail)
    details: dict[str, Any] = field(default_factory=dict)  # model, num_turns, cache tokens...


class Executor(Protocol):
    name: str

    def run(self, request: ExecRequest) -> ExecResult: ...
