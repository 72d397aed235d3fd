"""Shared fixtures: a request builder, process probes, and the real Claude Code CLI fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mgt.executors.base import ExecRequest
from tests.fakes.claude_cli import claude_cli, messages_server

__all__ = ["alive", "claude_cli", "messages_server", "pids_with"]

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["verdict"],
}


@pytest.fixture
def make_request(tmp_path: Path) -> Callable[..., ExecRequest]:
    """ExecRequest with sensible defaults; keyword arguments override fields."""

    def build(**fields: Any) -> ExecRequest:
        state = fields.get("state", "analyze")
        attempt = fields.get("attempt", 1)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "run_id": "run-test",
            "state": state,
            "attempt": attempt,
            "prompt": "Summarise the findings.",
            "system_prompt": "You are the log analyzer polecat.",
            "model": "haiku",
            "tools": (),
            "output_schema": None,
            "cwd": work,
            "timeout_seconds": 60.0,
            "attempt_dir": tmp_path / "run" / "states" / state / str(attempt),
        }
        values.update(fields)
        return ExecRequest(**values)

    return build


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and alive(int(name)):
            found.append(int(name))
    return found
