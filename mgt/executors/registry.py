"""Executor name + options → an `Executor`; which model executor to use by default.

    zellij-cc   the seed's zellij-cc program (options: session, program)
    claude      headless Claude Code (options: program, extra_args)
    tmux        Claude Code in a tmux window (options: session, program)
    replay      recorded answers (option: dir; `replay:DIR` is accepted as a name)
    command     `run command` states

Options set to None are ignored, and so are options meant for another
executor (the CLI passes `session` and `replay_dir` whatever the name), so
callers can pass everything they have. An option no executor knows is a
programming error and raises UsageError.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from mgt.diagnostics import did_you_mean
from mgt.errors import UsageError
from mgt.executors.base import Executor

__all__ = ["EXECUTOR_NAMES", "default_executor_name", "make_executor"]

EXECUTOR_NAMES = ("zellij-cc", "claude", "tmux", "replay", "command")

_OPTIONS: dict[str, set[str]] = {
    "zellij-cc": {"session", "program", "grace"},
    "claude": {"program", "extra_args", "permission_mode", "grace"},
    "tmux": {"session", "program", "tmux", "socket", "poll_interval", "keep_window", "grace"},
    "replay": {"dir"},
    "command": {"shell", "grace"},
}
_ALIASES = {"replay_dir": "dir", "zellij_session": "session", "tmux_session": "session"}
_KNOWN = set().union(*_OPTIONS.values(), _ALIASES)

NO_EXECUTOR = (
    "no model executor available: install Claude Code (npm install -g @anthropic-ai/claude-code) "
    "or pass --executor replay --replay-dir DIR"
)


def make_executor(name: str, **options: Any) -> Executor:
    """A ready executor. UsageError for an unknown name or a missing/bad option."""
    if name.startswith("replay:"):
        name, options = "replay", {**options, "dir": name.split(":", 1)[1]}
    if name not in _OPTIONS:
        hint = did_you_mean(name, EXECUTOR_NAMES)
        raise UsageError(
            f"unknown executor '{name}'"
            + (f"; {hint}" if hint else "")
            + f" (executors: {', '.join(EXECUTOR_NAMES)})"
        )
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key not in _KNOWN:
            raise UsageError(f"executor option '{key}' is not known to any executor")
        key = _ALIASES.get(key, key)
        if value is not None and key in _OPTIONS[name]:
            kwargs[key] = value
    if name == "zellij-cc":
        from mgt.executors.zellij import ZellijCCExecutor

        return ZellijCCExecutor(**kwargs)
    if name == "claude":
        from mgt.executors.claude import ClaudeExecutor

        return ClaudeExecutor(**kwargs)
    if name == "tmux":
        from mgt.executors.tmux import TmuxExecutor

        return TmuxExecutor(**kwargs)
    if name == "replay":
        from mgt.executors.replay import ReplayExecutor

        if "dir" not in kwargs:
            raise UsageError("the replay executor needs a directory: --replay-dir DIR")
        return ReplayExecutor(**kwargs)
    from mgt.executors.command import CommandExecutor

    return CommandExecutor(**kwargs)


def default_executor_name() -> str:
    """zellij-cc inside a zellij session, else claude when installed, else UsageError."""
    in_zellij = bool(os.environ.get("ZELLIJ") or os.environ.get("ZELLIJ_SESSION_NAME"))
    if in_zellij and _available("MGT_ZELLIJ_CC", "zellij-cc"):
        return "zellij-cc"
    if _available("MGT_CLAUDE", "claude"):
        return "claude"
    raise UsageError(NO_EXECUTOR)


#: Environment variables any one of which lets Claude Code reach a model.
CREDENTIAL_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
)


def model_credentials_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Claude Code has a way to reach a model: a key or token in the environment,
    a cloud provider switch, or a stored login (`$CLAUDE_CONFIG_DIR` or `~/.claude`)."""
    env = os.environ if environ is None else environ
    if any(env.get(name, "").strip() for name in CREDENTIAL_VARIABLES):
        return True
    config_dir = env.get("CLAUDE_CONFIG_DIR") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".claude"
    )
    return os.path.isfile(os.path.join(config_dir, ".credentials.json"))


def _available(env_var: str, program: str) -> bool:
    override = os.environ.get(env_var, "").strip()
    return shutil.which(override or program) is not None
