"""Helpers every executor shares: finding a program, the child environment, attempt files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from mgt.errors import ExecutorError

__all__ = [
    "RESULT_FILE",
    "STDERR_FILE",
    "child_env",
    "find_program",
    "prepare_attempt_dir",
    "read_text",
]

RESULT_FILE = "result.json"  # the raw result an executor writes into the attempt directory
STDERR_FILE = "stderr.txt"


def find_program(env_var: str, name: str, install_hint: str) -> str:
    """The program named by `env_var` if set (must exist), else `name` on PATH."""
    override = os.environ.get(env_var, "").strip()
    if override:
        found = shutil.which(override)
        if found is None:
            raise ExecutorError(f"{env_var}={override}: no such executable program")
        return found
    found = shutil.which(name)
    if found is None:
        raise ExecutorError(f"{name} not found on PATH: {install_hint} (or set {env_var})")
    return found


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """mgt's own environment plus the request's extra variables."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def prepare_attempt_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExecutorError(f"cannot create attempt directory {path}: {e.strerror or e}") from None
    return path


def read_text(path: Path) -> str | None:
    """A file's text, or None when it does not exist or cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
