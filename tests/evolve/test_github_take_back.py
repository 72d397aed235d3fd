"""forge=github, killed while GitHub opens its PR: the resumed run keeps that PR.

The stand-in opens the pull request, then holds its answer; mgt is killed
(SIGKILL) while it waits, so the run never journals the PR it opened. `mgt resume`
runs open-pr again: it adopts the branch it had committed, finds the open PR of
that branch whose sleeptime block names this run, and keeps it — one PR, not two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.evolve.realrepo_support import MACHINE, REPLAY, git, mgt
from tests.evolve.test_github_forge import GitHub, github  # noqa: F401  (fixture)


def test_a_run_killed_while_github_opens_its_pr_keeps_that_pr_on_resume(
        tmp_path: Path, github: GitHub) -> None:  # noqa: F811
    github.api.hold_create = threading.Event()
    args = [sys.executable, "-m", "mgt", "exec", str(MACHINE), "--json", *REPLAY,
            "--input", f"repo={github.repo}", "--input", "forge=github",
            "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen(args, cwd=tmp_path, env=github.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not github.api.pulls and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert github.api.pulls, proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    github.api.hold_create.set()
    github.api.hold_create = None
    (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))

    resumed = mgt(tmp_path, "resume", run_dir.name, "--json", env=github.env)
    assert resumed.code == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["final"] == "filed"
    pr = summary["outputs"]["open_pr"]
    (pull,) = github.api.pulls.values()  # one pull request, the one opened before the kill
    assert (pr["pr_number"], pr["branch_name"]) == (pull["number"], pull["head"]["ref"])
    creates = [r for r in github.api.requests
               if (r.method, r.path.split("?")[0]) == ("POST", "/repos/acme/dm-graph/pulls")]
    assert len(creates) == 1
    branches = git(github.bare, "branch", "--list", "sleeptime/*").split()
    assert branches == [pull["head"]["ref"]]  # no second branch pushed either
    assert not [p for p in (github.repo / ".git" / "mgt").rglob("*") if p.is_file()]  # no record
