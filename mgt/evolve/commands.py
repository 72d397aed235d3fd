"""A validation command line + a directory → `CommandRun` (exit code, bounded output tail, timing).

`must_pass` command lines come from trusted configuration (the formula or the
target's mgt.toml), never from logs or model output, but the code they run is
the model's; the guardrails therefore run them through `mgt.evolve.sandbox`,
and `run_command` here only when the target opted out. Both use /bin/sh like
`run command` does, with stderr merged into stdout so the tail reads in
order. `run_process` gives each its own process group and reaps the whole tree
on timeout; only the tail of the output is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgt.errors import EvolveError, ExecutorError
from mgt.evolve.git import git_env

__all__ = ["TAIL_CHARS", "TAIL_LINES", "CommandRun", "run_command", "tail"]

TAIL_LINES = 40
TAIL_CHARS = 6000


@dataclass(frozen=True)
class CommandRun:
    command: str
    exit_code: int | None  # None when it timed out
    timed_out: bool
    seconds: float
    output_tail: str  # the last lines of stdout+stderr, bounded
    limit: str | None = None  # the sandbox limit it most likely hit, in words
    sandbox: str | None = None  # how it was contained ("bubblewrap", "none (...)")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "output_tail": self.output_tail,
            "limit": self.limit,
            "sandbox": self.sandbox,
        }


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last `lines` lines of `text`, at most `chars` characters (cut at a line start)."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    if len(kept) > chars:
        kept = kept[-chars:]
        kept = kept.split("\n", 1)[1] if "\n" in kept else kept
    return kept


def run_command(
    command: str, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> CommandRun:
    """Run `command` with /bin/sh in `cwd`; never raises for the command's own failure."""
    from mgt.executors.process import run_process

    full_env = git_env()
    full_env.update(env or {})
    try:
        result = run_process(
            ["/bin/sh", "-c", "exec 2>&1\n" + command], cwd=cwd, env=full_env, timeout=timeout
        )
    except ExecutorError as e:
        raise EvolveError(f"cannot run `{command}` in {cwd}: {e}") from None
    return CommandRun(
        command, result.exit_code, result.timed_out, result.duration_seconds, tail(result.stdout)
    )
