"""The evolve cycle on a user's own git repository: worktrees only, the user's tree untouched.

Each test runs `python -m mgt exec machines/evolve.mgt` (recorded refine answers)
on a real repository made from examples/target with work in progress in it (a
staged edit, an unstaged edit, an untracked file, another branch), and checks
that the run adds exactly one branch and one PR record to it, and that no
worktree is left behind: after success, after Ctrl-C, and after `kill -9`
followed by `mgt resume`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.evolve.realrepo_support import (
    MACHINE,
    REPLAY,
    evolve,
    git,
    mgt,
    mgt_env,
    snapshot,
    user_repo,
    worktrees,
)


def filed(result: object) -> dict[str, object]:
    from tests.evolve.realrepo_support import Result

    assert isinstance(result, Result)
    assert result.code == 0, (result.stdout, result.stderr)
    summary = result.summary
    assert (summary["status"], summary["final"]) == ("succeeded", "filed"), result.stderr
    pr: dict[str, object] = summary["outputs"]["open_pr"]
    return pr


def test_a_dirty_repository_gets_one_branch_and_one_record_and_nothing_else(
    tmp_path: Path,
) -> None:
    repo = user_repo(tmp_path)
    before = snapshot(repo)
    assert "M  README.md" in before["status"] and " M templates/dm_summary.jinja" in \
        before["status"] and "?? notes.txt" in before["status"]

    result = evolve(tmp_path, f"repo={repo}")
    pr = filed(result)
    branch = str(pr["branch_name"])
    assert result.summary["path"] == ["preflight", "prepare_repo", "analyze", "ledger", "refine",
                                      "open_pr", "filed"]
    prepared = result.summary["outputs"]["prepare_repo"]
    assert (prepared["repo"], prepared["worktrees"]) == (str(repo.resolve()), True)
    assert not (result.run_dir / "target").exists()  # no clone, no copy

    # The branch is in the user's repository, one commit on top of the user's main.
    assert git(repo, "rev-parse", f"refs/heads/{branch}").strip() == pr["commit_sha"]
    assert git(repo, "rev-parse", f"{pr['commit_sha']}^").strip() == \
        git(repo, "rev-parse", "main").strip()
    changed = git(repo, "diff", "--name-only", "main", branch).split()
    assert sorted(changed) == pr["files_changed"]
    # The uncommitted work is not in it: the PR is built from the base branch alone.
    assert "Staged, not committed." not in git(repo, "show", f"{branch}:README.md")

    # The PR record is in the user's git directory, never a tracked or untracked file.
    record_file = repo / ".git" / "mgt" / "prs" / "1.json"
    assert pr["pr_url"] == record_file.as_uri()
    record = json.loads(record_file.read_text(encoding="utf-8"))
    assert (record["head"], record["base"]) == (branch, "main")
    # must_pass ran once (when the guardrails accepted the change), and the PR says so.
    assert "## Validation" in record["body"]
    assert "passed once, when the guardrails accepted this change" in record["body"]

    # Everything else is exactly as the user left it, byte for byte.
    assert snapshot(repo, new_branch=branch) == before
    assert worktrees(repo) == [f"worktree {repo.resolve()}"]
    assert result.leftovers == []


def test_a_repository_in_a_path_with_spaces_and_no_main_branch(tmp_path: Path) -> None:
    """The base falls back to the checked-out branch; HEAD stays on it."""
    where = tmp_path / "my projects"
    where.mkdir()
    repo = user_repo(where, dirty=False)
    git(repo, "branch", "-m", "main", "trunk")
    (repo / "mgt.toml").write_text(
        (repo / "mgt.toml").read_text(encoding="utf-8").replace('base_branch = "main"\n', ""),
        encoding="utf-8",
    )
    git(repo, "commit", "--quiet", "-am", "no base_branch")
    before = snapshot(repo)
    pr = filed(evolve(tmp_path, f"repo={repo}"))
    assert pr["base_branch"] == "trunk"
    assert snapshot(repo, new_branch=str(pr["branch_name"])) == before


# -- interrupted runs ----------------------------------------------------------------------------


def slow_must_pass(repo: Path, flag: Path) -> None:
    """must_pass waits until `flag` exists, so a test can interrupt a run mid-validation."""
    config = repo / "mgt.toml"
    text = config.read_text(encoding="utf-8")
    start, end = text.index("must_pass = ["), text.index("]", text.index("must_pass = [")) + 1
    command = (f"while [ ! -e '{flag}' ]; do sleep 0.2; done; "
               "PYTHONPATH=src python3 -m dmgraph.build")
    # The sandbox hides the host's /tmp: show the flag's directory to must_pass, read-only.
    config.write_text(text[:start] + f"must_pass = [{json.dumps(command)}]\n"
                      f"sandbox_read_only = [{json.dumps(str(flag.parent))}]" + text[end:],
                      encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "validate after the flag")


def start_run(work: Path, repo: Path) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "mgt", "exec", str(MACHINE), "--json", *REPLAY,
            "--input", f"repo={repo}", "--runs-dir", str(work / "runs")]
    return subprocess.Popen(args, cwd=work, env=mgt_env(work), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_worktree(repo: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(worktrees(repo)) > 1:
            time.sleep(0.5)  # let must_pass start in it
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before validating: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no worktree appeared")


def run_id(work: Path) -> str:
    (run,) = [d.name for d in (work / "runs").iterdir() if d.is_dir() and d.name[0] != "."]
    return run


def test_kill_9_mid_cycle_then_resume_leaves_no_worktree(tmp_path: Path) -> None:
    repo = user_repo(tmp_path)
    flag = tmp_path / "go"
    slow_must_pass(repo, flag)
    before = snapshot(repo)

    proc = start_run(tmp_path, repo)
    wait_for_worktree(repo, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(worktrees(repo)) == 2  # the killed run's worktree is still registered

    flag.touch()  # (also ends the killed run's orphaned must_pass loop)
    resumed = mgt(tmp_path, "resume", run_id(tmp_path), "--json", *REPLAY)
    pr = filed(resumed)
    assert worktrees(repo) == [f"worktree {repo.resolve()}"]
    assert resumed.leftovers == []
    assert snapshot(repo, new_branch=str(pr["branch_name"])) == before


def test_ctrl_c_mid_cycle_removes_the_worktree_and_leaves_no_branch(tmp_path: Path) -> None:
    repo = user_repo(tmp_path)
    flag = tmp_path / "later"
    slow_must_pass(repo, flag)
    before = snapshot(repo)

    proc = start_run(tmp_path, repo)
    wait_for_worktree(repo, proc)
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    finally:
        flag.touch()  # ends a must_pass loop the interrupt might have left running
    assert proc.returncode == 130
    assert worktrees(repo) == [f"worktree {repo.resolve()}"]
    assert sorted(p.name for p in (tmp_path / "tmp").glob("mgt-*")) == []
    assert snapshot(repo) == before  # no branch either: the run stopped before open_pr


def test_a_failed_run_leaves_no_worktree_and_no_branch(tmp_path: Path) -> None:
    repo = user_repo(tmp_path)
    config = repo / "mgt.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        '"PYTHONPATH=src python3 -m dmgraph.build",', '"exit 3",'), encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "a build that always fails")
    before = snapshot(repo)
    result = evolve(tmp_path, f"repo={repo}")
    assert result.code != 0
    assert result.summary["final"] == "failed"
    assert snapshot(repo) == before
    assert not (repo / ".git" / "mgt").exists()
    assert result.leftovers == []
