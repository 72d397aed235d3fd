"""Scratch worktrees: removed by their maker; a killed maker's removed by the next step, only those.

A real process makes a worktree with `scratch_worktree` and is then left
running or killed with SIGKILL; `prune_stale_worktrees` must remove exactly the
worktrees of dead makers (and a PR branch they made that holds no commit), and
never the user's own worktrees or a live run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgt.evolve.git import prune_stale_worktrees, scratch_worktree
from tests.evolve.conftest import ROOT, run_git

MAKER = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from mgt.evolve.git import scratch_worktree
    repo, branch, commit = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3] == "1"
    with scratch_worktree(repo, "main", branch=branch) as tree:
        if commit:
            (tree / "new.txt").write_text("work\\n")
            subprocess.run(["git", "-C", str(tree), "add", "new.txt"], check=True)
            subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c",
                            "user.email=t@example.com", "commit", "-qm", "work"], check=True)
        print(tree, flush=True)
        time.sleep(120)
""")


def listed(repo: Path) -> list[str]:
    out = run_git(repo, "worktree", "list", "--porcelain")
    main, *others = [line.split(" ", 1)[1] for line in out.splitlines()
                     if line.startswith("worktree ")]
    return [main, *sorted(others)]


@pytest.fixture
def maker(repo: Path, tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(branch: str = "", commit: bool = False) -> tuple[subprocess.Popen[str], Path]:
        proc = subprocess.Popen(
            [sys.executable, "-c", MAKER, str(repo), branch, "1" if commit else "0"],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)},
        )
        started.append(proc)
        assert proc.stdout is not None
        tree = Path(proc.stdout.readline().strip())
        assert tree.is_dir()
        return proc, tree

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_killed_makers_worktree_and_empty_branch_go_a_live_ones_and_the_users_stay(
    repo: Path, tmp_path: Path, maker: object
) -> None:
    mine = tmp_path / "users-own-worktree"
    run_git(repo, "worktree", "add", "--quiet", "-b", "users-feature", str(mine), "main")
    live, live_tree = maker()  # type: ignore[operator]
    dead, dead_tree = maker("sleeptime/killed-before-commit")  # type: ignore[operator]
    kept, kept_tree = maker("sleeptime/killed-after-commit", True)  # type: ignore[operator]
    os.kill(kept.pid, signal.SIGKILL)
    kept.wait()
    os.kill(dead.pid, signal.SIGKILL)  # not reaped: a zombie, as under a parent that hangs
    while Path(f"/proc/{dead.pid}").exists() and \
            Path(f"/proc/{dead.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        time.sleep(0.05)
    assert len(listed(repo)) == 5

    removed = prune_stale_worktrees(repo)
    assert sorted(removed) == sorted([dead_tree, kept_tree])
    assert listed(repo) == [str(repo), *sorted([str(mine), str(live_tree)])]
    assert not dead_tree.parent.exists() and not kept_tree.parent.exists()
    branches = run_git(repo, "branch", "--list", "--format=%(refname:short)").split()
    assert "sleeptime/killed-before-commit" not in branches  # it held nothing
    assert "sleeptime/killed-after-commit" in branches  # it holds a commit: kept
    assert "users-feature" in branches

    live.terminate()  # SIGTERM: the maker's own cleanup is not run, like a crash
    live.wait()
    assert prune_stale_worktrees(repo) == [live_tree]
    assert listed(repo) == [str(repo), str(mine)]


def test_scratch_worktree_removes_its_worktree_on_an_exception(repo: Path) -> None:
    with pytest.raises(RuntimeError), scratch_worktree(repo, "main") as tree:
        assert tree.is_dir()
        raise RuntimeError("a step failed inside")
    assert listed(repo) == [str(repo)]
    assert not tree.parent.exists()


def test_a_worktree_add_killed_half_way_does_not_block_the_next(repo: Path,
                                                                tmp_path: Path) -> None:
    """What `git worktree add` leaves when killed while writing its registration (seen after
    a kill -9 mid-fan-out): still locked "initializing", `commondir` empty. git prunes no
    locked entry and fails every later `worktree add` on it."""
    import json
    import socket

    from mgt.evolve.git import WORKTREE_MARKER

    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = tmp_path / "mgt-pr-killed"
    (holder / "tree").mkdir(parents=True)
    (holder / WORKTREE_MARKER).write_text(json.dumps({
        "pid": dead.pid, "started": None, "host": socket.gethostname(), "repo": str(repo),
        "branch": "sleeptime/half-made", "base_commit": run_git(repo, "rev-parse", "main")
        .strip()}))
    run_git(repo, "branch", "sleeptime/half-made", "main")
    entry = repo / ".git" / "worktrees" / "tree"
    entry.mkdir(parents=True)
    (entry / "locked").write_text("initializing")
    (entry / "gitdir").write_text(str(holder / "tree" / ".git") + "\n")
    (entry / "commondir").write_text("")
    (entry / "HEAD").write_text(run_git(repo, "rev-parse", "main"))
    blocked = subprocess.run(["git", "worktree", "add", "--quiet", "--detach",
                              str(tmp_path / "probe"), "main"], cwd=repo,
                             capture_output=True, text=True, check=False)
    assert blocked.returncode != 0 and "commondir" in blocked.stderr  # what git does

    with scratch_worktree(repo, "main", branch="sleeptime/next") as tree:
        assert (tree / ".git").exists()
    assert not entry.exists() and not holder.exists()
    branches = run_git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    assert "sleeptime/half-made" not in branches.split()  # nothing was committed to it
    assert "sleeptime/next" in branches.split()


def test_a_ref_lock_a_killed_git_left_does_not_block_the_branch(repo: Path) -> None:
    """`git worktree add -b B` killed while creating B leaves refs/heads/B.lock, and git then
    refuses B ("Unable to create ... .lock: File exists")."""
    lock = repo / ".git" / "refs" / "heads" / "sleeptime" / "again.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    with scratch_worktree(repo, "main", branch="sleeptime/again") as tree:
        assert (tree / ".git").exists()
    assert not lock.exists()
    assert run_git(repo, "rev-parse", "sleeptime/again").strip() == \
        run_git(repo, "rev-parse", "main").strip()
