"""ExecRequest.command → `sh -c COMMAND` in cwd → ExecResult, output `{exit_code, stdout, stderr}`.

Done on exit 0; any other exit is an error naming the code and the end of
stderr. The timeout ends the command's whole process group. stdout and stderr
are kept in full in the attempt directory (`stdout.txt`, `stderr.txt`).
"""

from __future__ import annotations

from mgt.errors import ExecutorError
from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.common import STDERR_FILE, child_env, prepare_attempt_dir
from mgt.executors.process import DEFAULT_GRACE_SECONDS, run_process

__all__ = ["CommandExecutor"]

STDOUT_FILE = "stdout.txt"


class CommandExecutor:
    """Runs `run command "..."` states."""

    name = "command"

    def __init__(self, *, shell: str = "sh", grace: float = DEFAULT_GRACE_SECONDS) -> None:
        self.shell = shell
        self.grace = grace

    def run(self, request: ExecRequest) -> ExecResult:
        if not request.command:
            raise ExecutorError(f"state '{request.state}': the command executor needs a command")
        attempt_dir = prepare_attempt_dir(request.attempt_dir)
        proc = run_process(
            [self.shell, "-c", request.command],
            cwd=request.cwd,
            env=child_env(request.env),
            timeout=request.timeout_seconds,
            stdout_path=attempt_dir / STDOUT_FILE,
            stderr_path=attempt_dir / STDERR_FILE,
            grace=self.grace,
        )
        output = {"exit_code": proc.exit_code, "stdout": proc.stdout, "stderr": proc.stderr}
        result = ExecResult(
            text=proc.stdout,
            output=output,
            exit_code=proc.exit_code,
            raw_result_path=attempt_dir / STDOUT_FILE,
            details={"duration_seconds": round(proc.duration_seconds, 3)},
        )
        if proc.timed_out:
            result.timed_out = True
            result.error = (
                f"command did not finish within {request.timeout_seconds:g}s; "
                "it was stopped with all its processes"
            )
        elif proc.exit_code != 0:
            code = proc.exit_code or 0
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            tail = proc.stderr_tail()
            result.error = f"command {how}" + (f": {tail}" if tail else "")
        return result
