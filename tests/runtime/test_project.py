"""A project's `mgt.toml` [exec]: how `mgt exec` picks its model executor, offline included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mgt.errors import MgtError
from mgt.executors import model_credentials_configured
from mgt.runtime.project import find_project_file, load_exec_settings
from tests.fakes.claude_cli import ClaudeCLI
from tests.runtime.procs import mgt


def mgt_exactly(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m mgt` with exactly `env` (no variable inherited from this process)."""
    return subprocess.run(
        [sys.executable, "-m", "mgt", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )

REPO = Path(__file__).resolve().parents[2]

# One model state: the log-analyzer polecat asked for a PatternReport.
MACHINE = f"""\
machine asks "one model call"

import polecats from "{REPO / "polecats"}"
import schemas from "{REPO / "schemas"}"

state ask:
    run polecat log-analyzer prompt "Report the patterns you see."
    on done -> finished

final finished: succeed
"""

REPORT = {
    "patterns": [],
    "summary": {"total_patterns": 0, "critical": 0, "warning": 0, "info": 0},
}

RECORDED = {
    "type": "result", "subtype": "success", "is_error": False,
    "result": json.dumps(REPORT), "structured_output": REPORT, "session_id": "s-1",
    "total_cost_usd": 0.002, "usage": {"input_tokens": 900, "output_tokens": 40},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory: machines/asks.mgt, recorded answers, mgt.toml naming them."""
    (tmp_path / "machines").mkdir()
    (tmp_path / "machines" / "asks.mgt").write_text(MACHINE)
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "ask.json").write_text(json.dumps(RECORDED))
    (tmp_path / "mgt.toml").write_text('[exec]\noffline_replay_dir = "answers"\n')
    return tmp_path


def no_model_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no zellij, no Claude Code on PATH and no credentials."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_", "ZELLIJ", "MGT_"))}
    # Only the system directories: no `claude` or `zellij-cc` from a developer's PATH.
    env["PATH"] = os.pathsep.join(
        p for p in ("/usr/sbin", "/usr/bin", "/sbin", "/bin") if not _has_model_program(p)
    )
    env["HOME"] = str(tmp_path / "home")
    return env


def _has_model_program(directory: str) -> bool:
    return any(shutil.which(name, path=directory) for name in ("claude", "zellij-cc"))


# --------------------------------------------------------------------------- settings


def test_the_nearest_mgt_toml_applies_and_its_paths_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "mgt.toml").write_text('[exec]\nexecutor = "claude"\n')
    (tmp_path / "a" / "mgt.toml").write_text(
        '[exec]\nexecutor = "replay"\nreplay_dir = "rec"\noffline_replay_dir = "../off"\n'
    )
    settings = load_exec_settings(tmp_path / "a" / "b" / "m.mgt")
    assert settings.file == tmp_path / "a" / "mgt.toml"
    assert settings.executor == "replay"
    assert settings.replay_dir == (tmp_path / "a" / "rec").resolve()
    assert settings.offline_replay_dir == (tmp_path / "off").resolve()
    assert find_project_file(tmp_path) == tmp_path / "mgt.toml"


def test_a_target_repository_mgt_toml_without_exec_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "mgt.toml").write_text('[evolve]\nmust_pass = ["make test"]\n')
    settings = load_exec_settings(tmp_path / "m.mgt")
    assert (settings.executor, settings.replay_dir, settings.offline_replay_dir) == (
        None, None, None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[exec\n", "mgt.toml:1:6: invalid TOML"),
        ('[exec]\nexecuter = "claude"\n', "unknown key 'executer'"),
        ("[exec]\nexecutor = 3\n", "[exec].executor: expected a non-empty string"),
        ('exec = "claude"\n', "[exec] must be a table"),
    ],
)
def test_a_bad_project_file_is_a_one_line_usage_error(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "mgt.toml").write_text(text)
    with pytest.raises(MgtError, match=r"mgt\.toml") as info:
        load_exec_settings(tmp_path / "m.mgt")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_credentials_come_from_the_environment_or_a_stored_login(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert not model_credentials_configured({"HOME": str(home)})
    assert model_credentials_configured({"HOME": str(home), "ANTHROPIC_API_KEY": "k"})
    assert not model_credentials_configured({"HOME": str(home), "ANTHROPIC_API_KEY": " "})
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / ".credentials.json").write_text("{}")
    assert model_credentials_configured({"HOME": str(home)})


# --------------------------------------------------------------------------- mgt exec


def test_with_no_model_the_run_replays_the_recorded_answers_and_says_so(
    project: Path, tmp_path: Path
) -> None:
    proc = mgt_exactly("exec", "machines/asks.mgt", "--runs-dir", "runs", "--json",
                       cwd=project, env=no_model_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "mgt: offline: no zellij session and no Claude Code installed" in proc.stderr
    assert str(project / "answers") in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "succeeded"
    assert summary["cost_usd"] == pytest.approx(0.002)


def test_without_an_offline_directory_no_model_is_the_executors_own_error(
    project: Path, tmp_path: Path
) -> None:
    (project / "mgt.toml").unlink()
    proc = mgt_exactly("exec", "machines/asks.mgt", "--runs-dir", "runs",
                       cwd=project, env=no_model_env(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("mgt: no model executor available")
    assert "Traceback" not in proc.stderr


def test_the_project_executor_setting_is_used(project: Path, tmp_path: Path) -> None:
    (project / "mgt.toml").write_text('[exec]\nexecutor = "replay"\nreplay_dir = "answers"\n')
    proc = mgt_exactly("exec", "machines/asks.mgt", "--runs-dir", "runs",
                       cwd=project, env=no_model_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "offline" not in proc.stderr  # chosen, not fallen back to
    # The human report ends with the cost table and its total.
    assert "total" in proc.stdout and "$0.0020" in proc.stdout


@pytest.mark.e2e
def test_claude_without_credentials_falls_back_to_the_recordings(
    project: Path, tmp_path: Path, claude_cli: ClaudeCLI
) -> None:
    env = no_model_env(tmp_path)
    env["MGT_CLAUDE"] = str(claude_cli.path)
    proc = mgt_exactly("exec", "machines/asks.mgt", "--runs-dir", "runs", cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Claude Code has no credentials" in proc.stderr
    assert claude_cli.server.message_requests == []


@pytest.mark.e2e
def test_the_same_command_with_a_model_configured_runs_for_real(
    project: Path, claude_cli: ClaudeCLI
) -> None:
    claude_cli.server.push({"structured": REPORT})
    proc = mgt("exec", "machines/asks.mgt", "--runs-dir", "runs", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "offline" not in proc.stderr
    assert len(claude_cli.server.message_requests) >= 1
    assert json.loads(proc.stdout)["outputs"]["ask"] == REPORT
