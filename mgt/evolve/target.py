"""A target repository → its `mgt.toml` settings; a plain directory → a fresh git repository.

`mgt.toml` at the root of a target repository tells the evolve cycle how to
validate changes to it, since not every target builds with cabal:

    [evolve]
    must_pass = ["make build", "make test"]   # replaces the formula's [validation].must_pass
    timeout = "300s"                          # per must_pass command (seconds or a duration)
    forbidden_paths = ["src/core/"]           # added to the polecat's [guardrails]
    forbidden_changes = ["*.lock"]            # added to the formula's [validation]
    base_branch = "main"                      # overrides the file-pr formula's [git]
    remote = "origin"                         # where the github forge pushes
    github_repo = "owner/name"                # for the github forge, when the remote URL
                                              # does not name it
    sandbox = "bubblewrap"                    # how must_pass runs model-written code;
                                              # "none" opts out (said in the review)
    pass_env = ["PYTHONPATH"]                 # environment names passed into the sandbox
    sandbox_read_only = ["~/.ghcup"]          # host paths shown read-only in the sandbox
    memory_limit_mb = 4096                    # data memory per must_pass command
    process_limit = 512                       # processes per must_pass command
    protected_paths = ["deploy/"]             # added to the built-in protected paths
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgt.errors import EvolveError
from mgt.evolve.git import FALLBACK_IDENTITY, git

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "TargetConfig", "load_target_config", "scratch_copy"]

DEFAULT_TIMEOUT_SECONDS = 300.0
CONFIG_FILE = "mgt.toml"
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".mgt", ".pytest_cache")


@dataclass(frozen=True)
class TargetConfig:
    """The `[evolve]` table of a target's mgt.toml (all None/empty when there is none)."""

    path: Path | None = None  # the mgt.toml read, if any
    must_pass: tuple[str, ...] | None = None  # None: use the formula's
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    forbidden_paths: tuple[str, ...] = ()
    forbidden_changes: tuple[str, ...] = ()
    base_branch: str | None = None
    remote: str | None = None
    github_repo: str | None = None
    sandbox: str = "bubblewrap"
    pass_env: tuple[str, ...] = ()
    sandbox_read_only: tuple[str, ...] = ()
    memory_limit_mb: int = 4096
    process_limit: int = 512
    protected_paths: tuple[str, ...] = ()


def load_target_config(repo: Path) -> TargetConfig:
    """Read `repo/mgt.toml`; EvolveError naming the file and key when it is malformed."""
    path = repo / CONFIG_FILE
    if not path.is_file():
        return TargetConfig()
    from mgt.defs.files import read_toml_table
    from mgt.errors import DefinitionError

    try:
        table = read_toml_table(path, "evolve") or {}
    except DefinitionError as e:
        raise EvolveError(str(e)) from None
    known = {"must_pass", "timeout", "forbidden_paths", "forbidden_changes", "base_branch",
             "remote", "github_repo", *_SANDBOX_KEYS}
    unknown = sorted(set(table) - known)
    if unknown:
        raise EvolveError(
            f"{path}: [evolve].{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
        )
    must_pass = table.get("must_pass")
    return TargetConfig(
        path=path,
        must_pass=None if must_pass is None else tuple(_strings(path, "must_pass", must_pass)),
        timeout_seconds=_timeout(path, table.get("timeout", DEFAULT_TIMEOUT_SECONDS)),
        forbidden_paths=tuple(_strings(path, "forbidden_paths", table.get("forbidden_paths", []))),
        forbidden_changes=tuple(
            _strings(path, "forbidden_changes", table.get("forbidden_changes", []))
        ),
        base_branch=_optional_string(path, "base_branch", table.get("base_branch")),
        remote=_optional_string(path, "remote", table.get("remote")),
        github_repo=_optional_string(path, "github_repo", table.get("github_repo")),
        **_sandbox_settings(path, table),
    )


_SANDBOX_KEYS = ("sandbox", "pass_env", "sandbox_read_only", "memory_limit_mb",
                 "process_limit", "protected_paths")


def _sandbox_settings(path: Path, table: dict[str, Any]) -> dict[str, Any]:
    """The keys about containing model-written code, checked (see the module docstring)."""
    from mgt.evolve.sandbox import DEFAULT_MEMORY_MB, DEFAULT_PROCESSES, SANDBOX_MODES

    mode = table.get("sandbox", "bubblewrap")
    if mode not in SANDBOX_MODES:
        raise EvolveError(
            f"{path}: [evolve].sandbox: must be one of {', '.join(map(repr, SANDBOX_MODES))}"
        )
    names = _strings(path, "pass_env", table.get("pass_env", []))
    bad = [n for n in names if not n.replace("_", "a").isalnum() or n[0].isdigit()]
    if bad:
        raise EvolveError(f"{path}: [evolve].pass_env: {bad[0]!r} is not an environment name")
    return {
        "sandbox": mode,
        "pass_env": tuple(names),
        "sandbox_read_only": tuple(
            _strings(path, "sandbox_read_only", table.get("sandbox_read_only", []))
        ),
        "memory_limit_mb": _positive(path, "memory_limit_mb",
                                     table.get("memory_limit_mb", DEFAULT_MEMORY_MB)),
        "process_limit": _positive(path, "process_limit",
                                   table.get("process_limit", DEFAULT_PROCESSES)),
        "protected_paths": tuple(
            _strings(path, "protected_paths", table.get("protected_paths", []))
        ),
    }


def _positive(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EvolveError(f"{path}: [evolve].{key}: must be a whole number more than zero")
    return value


def _strings(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EvolveError(f"{path}: [evolve].{key}: must be a list of non-empty strings")
    return list(value)


def _optional_string(path: Path, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise EvolveError(f"{path}: [evolve].{key}: must be a non-empty string")
    return value


def _timeout(path: Path, value: Any) -> float:
    if isinstance(value, bool):
        raise EvolveError(f"{path}: [evolve].timeout: must be seconds or a duration like \"5m\"")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        from mgt.expr.durations import parse_duration

        try:
            seconds = parse_duration(value).seconds
        except ValueError as e:
            raise EvolveError(f"{path}: [evolve].timeout: {e}") from None
    else:
        raise EvolveError(f"{path}: [evolve].timeout: must be seconds or a duration like \"5m\"")
    if seconds <= 0:
        raise EvolveError(f"{path}: [evolve].timeout: must be more than zero")
    return seconds


def scratch_copy(src: Path, dest: Path, branch: str = "main") -> Path:
    """Copy the plain directory `src` to `dest` and make it a git repository with one commit.

    For demos and tests: the bundled `examples/target/` is stored as plain files,
    and the evolve cycle needs a real repository to branch from. `dest` must not
    exist yet (or be an empty directory). Returns `dest`.
    """
    if not src.is_dir():
        raise EvolveError(f"{src} is not a directory")
    if dest.exists() and any(dest.iterdir()):
        raise EvolveError(f"{dest} already exists and is not empty")
    if dest.exists():
        dest.rmdir()
    try:
        shutil.copytree(src, dest, ignore=_IGNORED)
    except OSError as e:
        raise EvolveError(f"cannot copy {src} to {dest}: {e}") from None
    name, email = FALLBACK_IDENTITY
    git(dest, "init", "--quiet", "-b", branch)
    git(dest, "add", "--all")
    git(dest, "-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet",
        "--no-verify", "-m", f"Import {src.name}")
    return dest
