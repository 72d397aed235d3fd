"""The real Claude Code CLI (installed into tests/.node) wired to a scripted Messages-API server.

`scripts/install-test-tools.sh` installs the pinned CLI with npm; tests find it
at `tests/.node/node_modules/.bin/claude` (override: `MGT_TEST_CLAUDE`). The
fixtures here start a `MessagesServer` and point Claude Code at it through the
environment, with a throwaway HOME so nothing touches a real configuration:

    from tests.fakes.claude_cli import claude_cli, messages_server  # in a conftest.py

    @pytest.mark.e2e
    def test_x(claude_cli):
        claude_cli.server.push({"structured": {"ok": True}})
        ...  # anything started now (mgt, zellij-cc stand-in) runs the real CLI

`claude_cli` sets the variables in os.environ (via monkeypatch) and also sets
`MGT_CLAUDE` and the stand-in `MGT_ZELLIJ_CC`, so executors and `python -m mgt`
subprocesses use them. When the CLI is not installed the test is skipped with
a reason saying how to install it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.messages_api import MessagesServer

__all__ = [
    "CLAUDE_BIN",
    "ZELLIJ_CC_STANDIN",
    "ClaudeCLI",
    "claude_binary",
    "claude_cli",
    "claude_env",
    "messages_server",
    "require_claude",
]

TESTS_DIR = Path(__file__).resolve().parent.parent
CLAUDE_BIN = TESTS_DIR / ".node" / "node_modules" / ".bin" / "claude"
ZELLIJ_CC_STANDIN = Path(__file__).resolve().parent / "zellij-cc"


def claude_binary() -> Path | None:
    """The installed test CLI, or None."""
    override = os.environ.get("MGT_TEST_CLAUDE")
    path = Path(override) if override else CLAUDE_BIN
    return path if path.is_file() and os.access(path, os.X_OK) else None


_version_cache: dict[Path, str | None] = {}


def claude_version(path: Path) -> str | None:
    if path not in _version_cache:
        try:
            proc = subprocess.run(
                [str(path), "--version"], capture_output=True, text=True, timeout=60, check=False
            )
            _version_cache[path] = proc.stdout.split()[0] if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, IndexError):
            _version_cache[path] = None
    return _version_cache[path]


def require_claude() -> Path:
    """The CLI's path; skips the test loudly when it is not installed or does not start.

    In CI (`CI=true`) a missing CLI fails the test instead: a green CI run must
    not hide end-to-end tests that never ran.
    """
    path = claude_binary()
    if path is None:
        _skip_or_fail(
            f"REAL CLAUDE CODE CLI NOT INSTALLED at {CLAUDE_BIN}: run "
            "scripts/install-test-tools.sh (npm install --prefix tests/.node "
            "@anthropic-ai/claude-code) to run this e2e test"
        )
    assert path is not None
    if claude_version(path) is None:
        _skip_or_fail(f"REAL CLAUDE CODE CLI AT {path} DOES NOT START (claude --version failed)")
    return path


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def claude_env(base_url: str, home: Path) -> dict[str, str]:
    """The variables that point Claude Code at a local server with a throwaway configuration."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "IS_SANDBOX": "1",  # --dangerously-skip-permissions (zellij-cc) refuses root otherwise
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
    }


@dataclass
class ClaudeCLI:
    path: Path
    server: MessagesServer
    env: dict[str, str]  # the variables set for this test
    home: Path


@pytest.fixture
def messages_server() -> Iterator[MessagesServer]:
    """A started scripted Messages-API server with an empty script (push answers onto it)."""
    with MessagesServer() as server:
        yield server


@pytest.fixture
def claude_cli(
    messages_server: MessagesServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ClaudeCLI:
    """The real CLI pointed at `messages_server`; env set for this process and its children."""
    path = require_claude()
    home = tmp_path / "claude-home"
    env = claude_env(messages_server.url, home)
    env["MGT_CLAUDE"] = str(path)
    env["MGT_ZELLIJ_CC"] = str(ZELLIJ_CC_STANDIN)
    for key in ("MGT_MODEL", "MGT_MODEL_MAP", "MGT_CLAUDE_ARGS", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return ClaudeCLI(path=path, server=messages_server, env=env, home=home)
