"""ExecRequest → the seed's `zellij-cc run` (Claude Code in a visible zellij pane) → ExecResult.

    zellij-cc run --session S --name N --model M --prompt P --output-file F
                  --cwd D --timeout T

prints `{"exit_code", "output_file", "stderr_file"}`; F then holds Claude
Code's `--output-format json` result and the stderr file sits beside it (F
with extension `.stderr`). zellij-cc has no system-prompt, tools or schema
flag, so the polecat's system prompt goes at the head of P and Claude Code
runs with its own default prompt and tools (the output schema is part of the
prompt the runtime assembles). The pane name N is `mgt-STATE-ATTEMPT`.

Program: `MGT_ZELLIJ_CC`, else `zellij-cc` on PATH. Session: the `session`
option, else `ZELLIJ_SESSION_NAME`. zellij-cc enforces T itself; mgt also
stops it (and its process group) after T plus a grace period, in case it hangs.
The grace is proportionate to T (`timeout_grace`): a quarter of T, at least 2 s
(zellij-cc's own stop of Claude Code takes up to 2 s) and at most 30 s, so a
`timeout 3s` state ends within about 5 s, not 33 s.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from mgt.errors import ExecutorError
from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.claude import parse_claude_result
from mgt.executors.common import (
    RESULT_FILE,
    child_env,
    find_program,
    prepare_attempt_dir,
    read_text,
)
from mgt.executors.mapping import DEFAULT_MODEL
from mgt.executors.process import DEFAULT_GRACE_SECONDS, run_process

__all__ = ["ZellijCCExecutor", "find_zellij_cc", "pane_name", "timeout_grace", "zellij_prompt"]

INSTALL_HINT = "install the zellij-cc program"
REPORT_FILE = "zellij-cc.json"  # what zellij-cc printed
OWN_STDERR_FILE = "zellij-cc.stderr.txt"  # zellij-cc's own stderr (not Claude Code's)


def find_zellij_cc() -> str:
    return find_program("MGT_ZELLIJ_CC", "zellij-cc", INSTALL_HINT)


#: Bounds of the grace mgt gives zellij-cc beyond the state's timeout before stopping it.
MIN_GRACE_SECONDS = 2.0
MAX_GRACE_SECONDS = 30.0


def timeout_grace(timeout_seconds: float) -> float:
    """How long after a state's timeout mgt waits for zellij-cc to stop by itself.

    zellij-cc needs a moment to end Claude Code and print its report (its own stop
    allows 2 s); beyond that, waiting longer than a quarter of the timeout only means
    the state's timeout is not kept.
    """
    return min(MAX_GRACE_SECONDS, max(MIN_GRACE_SECONDS, timeout_seconds / 4))


def pane_name(request: ExecRequest) -> str:
    return f"mgt-{request.state}-{request.attempt}"


def zellij_prompt(request: ExecRequest) -> str:
    """The one prompt zellij-cc takes: the system prompt first, then the request's prompt."""
    if request.system_prompt:
        return f"{request.system_prompt.rstrip()}\n\n{request.prompt}"
    return request.prompt


class ZellijCCExecutor:
    """Runs each request through `zellij-cc run`, one pane per attempt."""

    name = "zellij-cc"

    def __init__(
        self,
        *,
        session: str | None = None,
        program: str | None = None,
        grace: float | None = None,
        kill_grace: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self._session = session
        self._program = program
        self.grace = grace  # on top of T before mgt stops zellij-cc; None: timeout_grace(T)
        self.kill_grace = kill_grace

    def grace_for(self, request: ExecRequest) -> float:
        """The grace beyond the request's timeout: the `grace` option, else proportionate."""
        if self.grace is not None:
            return self.grace
        return timeout_grace(request.timeout_seconds)

    @property
    def program(self) -> str:
        if self._program is None:
            self._program = find_zellij_cc()
        return self._program

    @property
    def session(self) -> str:
        session = self._session or os.environ.get("ZELLIJ_SESSION_NAME", "").strip()
        if not session:
            raise ExecutorError(
                "zellij-cc needs a zellij session: run mgt inside zellij "
                "(ZELLIJ_SESSION_NAME) or pass --session NAME"
            )
        return session

    def argv(self, request: ExecRequest, output_file: Path) -> list[str]:
        timeout = max(1, math.ceil(request.timeout_seconds))
        return [
            self.program, "run",
            "--session", self.session,
            "--name", pane_name(request),
            "--model", request.model or DEFAULT_MODEL,
            "--prompt", zellij_prompt(request),
            "--output-file", str(output_file),
            "--cwd", str(request.cwd),
            "--timeout", str(timeout),
        ]  # fmt: skip

    def run(self, request: ExecRequest) -> ExecResult:
        attempt_dir = prepare_attempt_dir(request.attempt_dir)
        output_file = attempt_dir / RESULT_FILE
        for stale in (output_file, output_file.with_suffix(".stderr")):
            stale.unlink(missing_ok=True)
        argv = self.argv(request, output_file)
        grace = self.grace_for(request)
        proc = run_process(
            argv,
            cwd=request.cwd,
            env=child_env(request.env),
            timeout=request.timeout_seconds + grace,
            stdout_path=attempt_dir / REPORT_FILE,
            stderr_path=attempt_dir / OWN_STDERR_FILE,
            grace=self.kill_grace,
        )
        if proc.timed_out:
            return ExecResult(
                raw_result_path=output_file,
                timed_out=True,
                error=f"zellij-cc did not return within {request.timeout_seconds:g}s "
                f"(+{grace:g}s grace); it was stopped with its process group",
            )
        report = _report(proc.stdout)
        result_file = Path(report["output_file"]) if report.get("output_file") else output_file
        stderr_file = _stderr_file(report, result_file)
        claude_exit = report.get("exit_code")
        exit_code = claude_exit if isinstance(claude_exit, int) else proc.exit_code
        content = read_text(result_file)
        if content is None or not content.strip():
            own = proc.stderr_tail()
            claude_err = (read_text(stderr_file) or "").strip() if stderr_file else ""
            why = f"zellij-cc (exit {proc.exit_code}) left no result in {result_file}"
            if not report:
                why += f"; it printed {proc.stdout.strip()[:200]!r}" if proc.stdout.strip() else ""
            detail = " | ".join(x for x in (own, claude_err[-300:]) if x)
            result = ExecResult(
                raw_result_path=result_file,
                exit_code=exit_code,
                error=why + (f"; stderr: {detail}" if detail else ""),
            )
        else:
            result = parse_claude_result(
                content,
                exit_code=exit_code,
                stderr=(read_text(stderr_file) or "") if stderr_file else "",
                raw_result_path=result_file,
                source="Claude Code (via zellij-cc)",
            )
        if result.error and proc.duration_seconds >= request.timeout_seconds:
            result.timed_out = True  # zellij-cc's own --timeout stopped it
        result.details.update({"pane": pane_name(request), "session": self.session})
        return result


def _report(stdout: str) -> dict[str, Any]:
    """zellij-cc's printed `{"exit_code", "output_file", "stderr_file"}` (its last JSON line).

    Only fields of the right type are kept (an int exit code, non-empty path strings): the
    report is another program's output, so anything else is as if it had not been printed.
    """
    value: Any = None
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            break
    else:
        try:
            value = json.loads(stdout)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(value, dict):
        return {}
    kinds = {"exit_code": int, "output_file": str, "stderr_file": str}
    return {
        key: item for key, item in value.items()
        if key not in kinds
        or (isinstance(item, kinds[key]) and not isinstance(item, bool) and item != "")
    }


def _stderr_file(report: dict[str, Any], result_file: Path) -> Path | None:
    if report.get("stderr_file"):
        return Path(report["stderr_file"])
    for candidate in (result_file.with_suffix(".stderr"), Path(f"{result_file}.stderr")):
        if candidate.exists():
            return candidate
    return None
