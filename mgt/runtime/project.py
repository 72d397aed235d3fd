"""A project's `mgt.toml` `[exec]` table → how `mgt exec` picks its model executor.

`mgt.toml` is looked up from the machine file's directory upwards (the same
file a target repository uses for `[evolve]`). Keys, all optional:

    [exec]
    executor = "claude"                      # default model executor for this project
    replay_dir = "recordings"                # answers for `executor = "replay"`
    offline_replay_dir = "examples/responses"
        # recorded answers used when no model is configured (no zellij session,
        # no Claude Code with credentials); mgt says so when it falls back
    max_model_calls = 4                      # model calls at once in a runs directory

Paths are relative to the `mgt.toml` that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mgt.errors import UsageError

__all__ = ["ExecSettings", "find_project_file", "load_exec_settings"]

PROJECT_FILE = "mgt.toml"


@dataclass(frozen=True)
class ExecSettings:
    file: Path | None = None
    executor: str | None = None
    replay_dir: Path | None = None
    offline_replay_dir: Path | None = None
    max_model_calls: int | None = None


def find_project_file(start: Path) -> Path | None:
    """The nearest `mgt.toml` at or above `start` (a directory), or None."""
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def load_exec_settings(machine_path: str | Path) -> ExecSettings:
    """The `[exec]` settings that apply to a machine file (empty when there are none)."""
    found = find_project_file(Path(machine_path).resolve().parent)
    if found is None:
        return ExecSettings()
    from mgt.defs.files import read_toml_table

    table = read_toml_table(found, "exec") or {}
    known = {"executor", "replay_dir", "offline_replay_dir", "max_model_calls"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(f"{found}: [exec]: unknown key '{unknown[0]}'")

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise UsageError(f"{found}: [exec].{key}: expected a non-empty string")
        return value

    def directory(key: str) -> Path | None:
        value = text(key)
        return (found.parent / value).resolve() if value else None

    cap = table.get("max_model_calls")
    if cap is not None:
        from mgt.runtime.slots import parse_cap

        cap = parse_cap(cap, f"{found}: [exec].max_model_calls")
    return ExecSettings(
        file=found,
        max_model_calls=cap,
        executor=text("executor"),
        replay_dir=directory("replay_dir"),
        offline_replay_dir=directory("offline_replay_dir"),
    )
