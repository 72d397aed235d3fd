"""The sandbox keys of a target's mgt.toml: read, checked, and acted on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mgt.errors import EvolveError
from mgt.evolve.guardrails import check_proposed_changes
from mgt.evolve.sandbox import DEFAULT_MEMORY_MB, DEFAULT_PROCESSES, probe, sandbox_policy
from mgt.evolve.target import load_target_config
from tests.evolve.conftest import MakeCtx, add_change, proposed, run_git


def write(repo: Path, text: str) -> None:
    (repo / "mgt.toml").write_text("[evolve]\n" + text)


def test_defaults(repo: Path) -> None:
    write(repo, "")
    policy = sandbox_policy(load_target_config(repo))
    assert policy.mode == "bubblewrap"
    assert policy.pass_env == ()
    assert (policy.memory_mb, policy.processes) == (DEFAULT_MEMORY_MB, DEFAULT_PROCESSES)
    assert load_target_config(repo).protected_paths == ()


def test_every_key(repo: Path) -> None:
    write(repo, 'sandbox = "none"\npass_env = ["PYTHONPATH", "CABAL_DIR"]\n'
                'sandbox_read_only = ["~/.ghcup"]\nmemory_limit_mb = 512\nprocess_limit = 64\n'
                'protected_paths = ["deploy/"]\n')
    target = load_target_config(repo)
    policy = sandbox_policy(target)
    assert policy.mode == "none"
    assert policy.pass_env == ("PYTHONPATH", "CABAL_DIR")
    assert policy.read_only_paths == ("~/.ghcup",)
    assert (policy.memory_mb, policy.processes) == (512, 64)
    assert target.protected_paths == ("deploy/",)


@pytest.mark.parametrize(("text", "message"), [
    ('sandbox = "docker"', "[evolve].sandbox: must be one of 'bubblewrap', 'none'"),
    ("sandbox = false", "[evolve].sandbox: must be one of"),
    ('pass_env = "PATH"', "[evolve].pass_env: must be a list of non-empty strings"),
    ('pass_env = ["A=B"]', "[evolve].pass_env: 'A=B' is not an environment name"),
    ('pass_env = ["1X"]', "[evolve].pass_env: '1X' is not an environment name"),
    ("memory_limit_mb = 0", "[evolve].memory_limit_mb: must be a whole number more than zero"),
    ('process_limit = "many"', "[evolve].process_limit: must be a whole number more than zero"),
    ("process_limit = true", "[evolve].process_limit: must be a whole number more than zero"),
    ("protected_paths = [\"\"]", "[evolve].protected_paths: must be a list of non-empty strings"),
])
def test_malformed_keys_are_one_clear_error(repo: Path, text: str, message: str) -> None:
    write(repo, text + "\n")
    with pytest.raises(EvolveError) as caught:
        load_target_config(repo)
    assert str(caught.value).startswith(f"{repo / 'mgt.toml'}: ")
    assert message in str(caught.value)


@pytest.mark.skipif(probe() is not None and os.environ.get("CI") != "true",
                    reason=f"no sandbox here: {probe()}")
def test_read_only_paths_show_a_toolchain_under_home(
    make_ctx: MakeCtx, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "home" / ".toolchain" / "bin"
    tool.mkdir(parents=True)
    (tool / "mytool").write_text("#!/bin/sh\necho tool ran\n")
    (tool / "mytool").chmod(0o755)
    write(repo, f'must_pass = ["{tool}/mytool", "touch {tool}/mytool"]\n'
                f'sandbox_read_only = ["{tool.parent}"]\n')
    run_git(repo, "commit", "-qam", "a toolchain")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ctx = make_ctx()
    change = add_change(repo, "x.txt", "x\n", "For token-bloat-dmscene: x.")
    problems = check_proposed_changes(ctx, proposed([change]))
    runs = json.loads((ctx.attempt_dir / "guardrails.json").read_text())["validation"]["runs"]
    assert runs[0]["ok"] is True and runs[0]["output_tail"] == "tool ran"
    assert len(problems) == 1 and "Read-only file system" in problems[0]  # shown, not writable
