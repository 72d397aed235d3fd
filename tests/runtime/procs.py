"""Running `python -m mgt` as a user would, and waiting on a run's journal from outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

WAIT_SECONDS = 60.0


def mgt(*args: str | Path, cwd: Path, env: Mapping[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mgt", *map(str, args)], cwd=cwd, env=_env(env),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def spawn(*args: str | Path, cwd: Path, env: Mapping[str, str] | None = None
          ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mgt", *map(str, args)], cwd=cwd, env=_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("ZELLIJ", "ZELLIJ_SESSION_NAME", "MGT_RUNS_DIR"):
        env.pop(key, None)
    env.update(extra or {})
    return env


def only_run(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if (p / "events.jsonl").exists()] \
        if runs_dir.exists() else []
    assert len(runs) == 1, runs
    return runs[0]


def journal(run_dir: Path) -> list[dict[str, Any]]:
    """The whole lines of events.jsonl (a line being written is left out)."""
    try:
        text = (run_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[str] | None = None
             ) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"mgt exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_event(runs_dir: Path, proc: subprocess.Popen[str] | None,
                   match: Callable[[dict[str, Any]], bool], what: str) -> Path:
    """Wait until the (only) run in `runs_dir` has journaled an event that `match`es."""
    found: list[Path] = []

    def check() -> bool:
        if not runs_dir.exists():
            return False
        for run_dir in runs_dir.iterdir():
            if any(match(e) for e in journal(run_dir)):
                found.append(run_dir)
                return True
        return False

    wait_for(what, check, proc)
    return found[0]


def kill_processes_with(marker: str) -> None:
    """SIGKILL the process groups of live processes whose command line contains `marker`
    (the children a kill -9'd mgt leaves behind, which a real crash would leave too)."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(int(name)), signal.SIGKILL)
