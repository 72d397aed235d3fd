"""A user's own git repository for evolve tests: made dirty, snapshotted, run on with `mgt exec`.

`user_repo` builds a repository from examples/target the way a user has one:
commits on `main`, another branch, a staged edit, an unstaged edit and an
untracked file. `snapshot` captures everything a run must leave alone (the
working tree's bytes, the index file's bytes, `git status`, HEAD, the branches,
remotes, local config and the worktree list). `mgt` runs `python -m mgt` with a
private TMPDIR, so a test can see that no scratch worktree is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.evolve.e2e_support import ROOT, TARGET, user_env

MACHINE = ROOT / "machines" / "evolve.mgt"
REPLAY = ("--executor", "replay", "--replay-dir", str(ROOT / "examples" / "responses"))


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """git in `repo` without optional locks, so that looking never rewrites the index."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**(env or os.environ), "GIT_OPTIONAL_LOCKS": "0"})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def user_repo(where: Path, *, dirty: bool = True) -> Path:
    """examples/target as a user's repository: history, a branch, and work in progress."""
    repo = where / "user-repo"
    shutil.copytree(TARGET, repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "A User")
    git(repo, "config", "user.email", "user@example.com")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "the user's graph")
    git(repo, "branch", "feature")
    if dirty:
        with (repo / "templates" / "dm_summary.jinja").open("a", encoding="utf-8") as f:
            f.write("{# a human's unsaved idea #}\n")  # unstaged
        with (repo / "README.md").open("a", encoding="utf-8") as f:
            f.write("\nStaged, not committed.\n")
        git(repo, "add", "README.md")  # staged: the index differs from HEAD
        (repo / "notes.txt").write_text("untracked scratch notes\n", encoding="utf-8")
    return repo


def tree_bytes(root: Path) -> str:
    """A hash of every path and byte under `root` outside .git (untracked files included)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts):
        rel = str(path.relative_to(root)).encode()
        digest.update(rel + (b"\0" + path.read_bytes() if path.is_file() else b"/") + b"\0")
    return digest.hexdigest()


def snapshot(repo: Path, *, new_branch: str | None = None) -> dict[str, Any]:
    """Everything a run must not change in the user's repository (`new_branch` left out)."""
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    branches = [line for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)",
                                     "refs/heads").splitlines()
                if line.split()[0] != f"refs/heads/{new_branch}"]
    return {
        "index": index,
        "tree": tree_bytes(repo),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "head": git(repo, "symbolic-ref", "HEAD") + git(repo, "rev-parse", "HEAD"),
        "branches": branches,
        "remotes": git(repo, "remote", "-v"),
        "config": (repo / ".git" / "config").read_text(encoding="utf-8"),
        "worktrees": worktrees(repo),
    }


def worktrees(repo: Path) -> list[str]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [line for line in listing.splitlines() if line.startswith("worktree ")]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    work: Path

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    @property
    def run_dir(self) -> Path:
        return self.work / "runs" / str(self.summary["run_id"])

    @property
    def leftovers(self) -> list[str]:
        """mgt's temporary directories (scratch worktrees) still in the run's TMPDIR."""
        return sorted(p.name for p in (self.work / "tmp").glob("mgt-*"))


def mgt_env(work: Path, **extra: str) -> dict[str, str]:
    scratch = work / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    env = user_env(TMPDIR=str(scratch), **extra)
    env["PYTHONPATH"] = str(ROOT)
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY",
                 "GRAFANA_LOKI_URL", "GRAFANA_LOKI_USER", "GRAFANA_LOKI_TOKEN",
                 "GRAFANA_LOKI_BEARER", "GRAFANA_LOKI_ORG_ID"):
        if name not in extra:
            env.pop(name, None)
    return env


def mgt(work: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 240) -> Result:
    """`python -m mgt ARGS --runs-dir WORK/runs` from `work`."""
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", *args, "--runs-dir", str(work / "runs")],
        capture_output=True, text=True, cwd=work, env=env or mgt_env(work), timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, work)


def evolve(work: Path, *inputs: str, env: dict[str, str] | None = None,
           options: tuple[str, ...] = REPLAY) -> Result:
    """`mgt exec machines/evolve.mgt --json` with each `--input`, on recorded answers."""
    args = ["exec", str(MACHINE), "--json", *options]
    for item in inputs:
        args += ["--input", item]
    return mgt(work, *args, env=env)


GITHUB_URL = "https://github.com/acme/dm-graph.git"


def github_remote(tmp: Path, repo: Path, url: str = GITHUB_URL) -> tuple[Path, Path]:
    """`origin = url` in `repo`, really a bare repository: (bare, GIT_CONFIG_GLOBAL file).

    The global config rewrites `url` to the bare repository (`url.<bare>.insteadOf`),
    so the user's remote reads as GitHub while git pushes to a local directory. The
    bare repository starts with the user's `main` and `feature`.
    """
    bare = tmp / "github" / "acme" / "dm-graph.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)],
                   check=True)
    git(repo, "remote", "add", "origin", url)
    git(repo, "push", "--quiet", str(bare), "main", "feature")
    config = tmp / "gitconfig"
    config.write_text(f'[url "{bare.as_uri()}"]\n\tinsteadOf = {url}\n', encoding="utf-8")
    return bare, config


def loki_with_sample_logs(loki: Any, path: Path, newest_ago_ns: int = 60 * 10**9) -> int:
    """The sample log events stored in a FakeLoki, moved so the newest is `newest_ago_ns` old.

    Their spacing is kept (the sample spans under 24 hours), and each event's own
    `timestamp` moves with its Loki entry. Returns the number of events.
    """
    import time

    from mgt.logs.events import format_timestamp, parse_timestamp
    from tests.fakes.loki import load_events

    events = load_events(path)
    stamps = [parse_timestamp(e.get("timestamp")) for e in events]
    newest = max(t for t in stamps if t is not None)
    shift = time.time_ns() - newest_ago_ns - newest
    for event, stamp in zip(events, stamps, strict=True):
        if stamp is None:
            continue
        moved = stamp + shift
        loki.add_event({**event, "timestamp": format_timestamp(moved)}, ts=moved)
    return len(events)
