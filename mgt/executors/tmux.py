"""ExecRequest → Claude Code in a visible tmux window, result teed to a file, polled → ExecResult.

The zellij-cc mechanics with tmux: each attempt gets a window named
`mgt-STATE-ATTEMPT` in the session `MGT_TMUX_SESSION` (or the `session`
option; by default a detached session `mgt` that is created when missing), on
the default tmux server or the one named by the `socket` option (`tmux -L`).
The window runs a small bash script written into the attempt directory:

    claude -p ... < prompt.txt 2> stderr.txt | tee result.json
    echo $? > exit_code      (after showing stderr.txt in the window)

so a person attached to the session watches the answer arrive while mgt
polls `result.json` until it holds a complete Claude Code result (or the
script has ended, or the timeout passed). On timeout mgt kills the window's
process group and the window. A finished window closes by itself, or, with
the `keep_window` option, waits for Enter so its output can be read. The
Claude Code command line is the lean one of the `claude` executor (own
system prompt, mapped tools).
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from mgt.errors import ExecutorError
from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.claude import (
    SYSTEM_PROMPT_FILE,
    claude_args,
    find_claude,
    find_result_object,
    parse_claude_result,
)
from mgt.executors.common import RESULT_FILE, STDERR_FILE, child_env, prepare_attempt_dir, read_text
from mgt.executors.process import DEFAULT_GRACE_SECONDS, kill_group, run_process

__all__ = ["TmuxExecutor", "window_name"]

DEFAULT_SESSION = "mgt"
PROMPT_FILE = "prompt.txt"
SCRIPT_FILE = "run.sh"
EXIT_FILE = "exit_code"
# Variables of the tmux server itself, never passed into a window.
_SKIP_ENV = {"TMUX", "TMUX_PANE", "PWD", "OLDPWD", "SHLVL", "_"}


def window_name(request: ExecRequest) -> str:
    return f"mgt-{request.state}-{request.attempt}"


class TmuxExecutor:
    """Runs each request in its own tmux window and reads the result file it tees."""

    name = "tmux"

    def __init__(
        self,
        *,
        session: str | None = None,
        program: str | None = None,
        tmux: str = "tmux",
        socket: str | None = None,
        poll_interval: float = 0.1,
        keep_window: bool = False,
        grace: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self._session = session
        self._program = program
        self.tmux_argv = [tmux, "-L", socket] if socket else [tmux]
        self.poll_interval = poll_interval
        self.keep_window = keep_window
        self.grace = grace

    @property
    def session(self) -> str:
        return self._session or os.environ.get("MGT_TMUX_SESSION", "").strip() or DEFAULT_SESSION

    @property
    def program(self) -> str:
        if self._program is None:
            self._program = find_claude()
        return self._program

    # -- tmux ------------------------------------------------------------------------------
    def _tmux(self, *args: str, check: bool = True) -> str:
        proc = run_process([*self.tmux_argv, *args], timeout=30)
        if check and not proc.ok:
            detail = proc.stderr.strip() or f"exit {proc.exit_code}"
            raise ExecutorError(f"tmux {args[0]} failed: {detail}")
        return proc.stdout.strip()

    def ensure_session(self) -> str:
        session = self.session
        probe = run_process([*self.tmux_argv, "has-session", "-t", f"={session}"], timeout=30)
        if not probe.ok:
            self._tmux("new-session", "-d", "-s", session, "-n", "mgt")
        return session

    # -- run -------------------------------------------------------------------------------
    def run(self, request: ExecRequest) -> ExecResult:
        attempt_dir = prepare_attempt_dir(request.attempt_dir)
        result_path = attempt_dir / RESULT_FILE
        exit_path = attempt_dir / EXIT_FILE
        for stale in (result_path, exit_path):
            stale.unlink(missing_ok=True)
        script = self._write_script(request, attempt_dir)
        session = self.ensure_session()
        env = child_env(request.env)
        env_args = [
            arg
            for key, value in sorted(env.items())
            if key not in _SKIP_ENV and "\0" not in value
            for arg in ("-e", f"{key}={value}")
        ]
        created = self._tmux(
            "new-window", "-d", "-P", "-F", "#{window_id} #{pane_pid}",
            "-t", f"={session}:", "-n", window_name(request),
            "-c", str(request.cwd), *env_args,
            "bash", str(script),
        )  # fmt: skip
        try:
            window_id, pane_pid = created.split()
            pid = int(pane_pid)
        except ValueError:
            raise ExecutorError(f"tmux new-window printed {created!r}") from None
        deadline = time.monotonic() + request.timeout_seconds
        finished = False
        while True:
            content = read_text(result_path) or ""
            if find_result_object(content.strip()) is not None:
                finished = True
                break
            if exit_path.exists():
                finished = True
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_interval)
        details = {"window": window_name(request), "session": session, "window_id": window_id}
        if not finished:
            self._stop(window_id, pid)
            return ExecResult(
                raw_result_path=result_path,
                timed_out=True,
                error=f"Claude Code did not answer within {request.timeout_seconds:g}s; "
                f"tmux window {window_name(request)} was killed",
                details=details,
            )
        exit_code = self._wait_exit_code(exit_path)
        if not self.keep_window:
            self._stop(window_id, pid, grace=0.5)
        result = parse_claude_result(
            read_text(result_path) or "",
            exit_code=exit_code,
            stderr=read_text(attempt_dir / STDERR_FILE) or "",
            raw_result_path=result_path,
            source="Claude Code (in tmux)",
        )
        result.details.update(details)
        return result

    def _write_script(self, request: ExecRequest, attempt_dir: Path) -> Path:
        (attempt_dir / PROMPT_FILE).write_text(
            request.prompt, encoding="utf-8", errors="backslashreplace"
        )
        system_file = attempt_dir / SYSTEM_PROMPT_FILE
        system_file.write_text(
            request.system_prompt or "", encoding="utf-8", errors="backslashreplace"
        )
        argv = [self.program, *claude_args(request, system_file, "dontAsk")]
        q = shlex.quote
        exit_file = q(str(attempt_dir / EXIT_FILE))
        stderr_file = q(str(attempt_dir / STDERR_FILE))
        lines = [
            "# written by mgt's tmux executor: one attempt of one state",
            "set -o pipefail",
            f"cd {q(str(request.cwd))} || {{ echo 127 > {exit_file}; exit; }}",
            f"echo {q(f'mgt: {request.state} attempt {request.attempt}')} >&2",
            f"{shlex.join(argv)} < {q(str(attempt_dir / PROMPT_FILE))} "
            f"2> {stderr_file} | tee {q(str(attempt_dir / RESULT_FILE))}",
            "status=$?",
            f"cat {stderr_file} >&2",
            f"echo $status > {exit_file}.tmp && mv {exit_file}.tmp {exit_file}",
        ]
        if self.keep_window:
            lines += ['echo "[mgt] finished (exit $status); press Enter to close"', "read -r _"]
        script = attempt_dir / SCRIPT_FILE
        script.write_text(  # paths keep their undecodable bytes
            "\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape"
        )
        return script

    def _wait_exit_code(self, exit_path: Path, wait: float = 2.0) -> int | None:
        """The script's exit status (it follows the result by a moment; None if it never came)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            text = read_text(exit_path)
            if text is not None and text.strip():
                try:
                    return int(text.strip())
                except ValueError:
                    return None
            time.sleep(0.02)
        return None

    def _stop(self, window_id: str, pane_pid: int, grace: float | None = None) -> None:
        """End the window's whole process group, then the window itself."""
        try:
            pgid = os.getpgid(pane_pid)
        except ProcessLookupError:
            pgid = None
        # tmux makes the pane's first process a session (and group) leader; a different
        # group id means the pid is gone and was reused: leave that process alone.
        if pgid == pane_pid:
            kill_group(pane_pid, grace=self.grace if grace is None else grace)
        self._tmux("kill-window", "-t", window_id, check=False)
