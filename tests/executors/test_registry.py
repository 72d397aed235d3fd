"""make_executor names and options; default_executor_name from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgt.errors import UsageError
from mgt.executors import EXECUTOR_NAMES, default_executor_name, make_executor


def fake_program(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with no claude or zellij-cc, outside zellij; returns the bin directory to fill."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for key in ("ZELLIJ", "ZELLIJ_SESSION_NAME", "MGT_CLAUDE", "MGT_ZELLIJ_CC"):
        monkeypatch.delenv(key, raising=False)
    return bin_dir


@pytest.mark.parametrize("name", ["zellij-cc", "claude", "tmux", "command"])
def test_every_name_builds_an_executor_without_running_anything(name: str) -> None:
    executor = make_executor(name, session=None, replay_dir=None)
    assert executor.name == name


def test_names_are_the_documented_ones() -> None:
    assert EXECUTOR_NAMES == ("zellij-cc", "claude", "tmux", "replay", "command")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match="unknown executor 'claud'; did you mean 'claude'\\?"):
        make_executor("claud")
    with pytest.raises(UsageError, match="executors: zellij-cc, claude, tmux, replay, command"):
        make_executor("openai")


def test_options_for_other_executors_are_ignored_unknown_ones_rejected(tmp_path: Path) -> None:
    assert make_executor("claude", session="s", replay_dir=str(tmp_path)).name == "claude"
    with pytest.raises(UsageError, match="option 'colour'"):
        make_executor("claude", colour="red")


def test_session_option_reaches_zellij_cc() -> None:
    executor = make_executor("zellij-cc", session="work")
    assert executor.session == "work"  # type: ignore[attr-defined]


def test_default_is_zellij_cc_inside_zellij(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_program(bare_env, "zellij-cc")
    fake_program(bare_env, "claude")
    monkeypatch.setenv("ZELLIJ_SESSION_NAME", "main")
    assert default_executor_name() == "zellij-cc"


def test_default_is_claude_outside_zellij(bare_env: Path) -> None:
    fake_program(bare_env, "zellij-cc")
    fake_program(bare_env, "claude")
    assert default_executor_name() == "claude"


def test_default_is_claude_in_zellij_without_zellij_cc(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_program(bare_env, "claude")
    monkeypatch.setenv("ZELLIJ", "0")
    assert default_executor_name() == "claude"


def test_env_overrides_count_as_installed(
    bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = fake_program(tmp_path / "opt", "my-claude")
    monkeypatch.setenv("MGT_CLAUDE", str(elsewhere))
    assert default_executor_name() == "claude"
    zcc = fake_program(tmp_path / "opt", "my-zellij-cc")
    monkeypatch.setenv("MGT_ZELLIJ_CC", str(zcc))
    monkeypatch.setenv("ZELLIJ", "0")
    assert default_executor_name() == "zellij-cc"


def test_nothing_installed_says_what_to_install(bare_env: Path) -> None:
    with pytest.raises(UsageError) as err:
        default_executor_name()
    assert str(err.value) == (
        "no model executor available: install Claude Code (npm install -g "
        "@anthropic-ai/claude-code) or pass --executor replay --replay-dir DIR"
    )
