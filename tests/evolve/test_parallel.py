"""machines/evolve-parallel.mgt run offline on the bundled sample → one PR record per pattern.

Real runs of `python -m mgt exec` / `mgt resume` (no credentials: the recorded
answers of examples/responses, one per pattern) on a scratch git copy of
examples/target; the PRs are read back from its git directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.evolve.e2e_support import LOGS, ROOT, TARGET, git, offline_env

MACHINE = ROOT / "machines" / "evolve-parallel.mgt"
#: The sample's actionable patterns, in the analyzer's order (the info one is left out).
ACTIONABLE = [
    "slow-llm-dmscene",
    "failed-transition-dmaction-dmerror",
    "repeated-error-failed-to-parse-scenenarrative-missing-field-mood-at-offset",
    "token-bloat-dmscene",
    "slow-llm-dmaftermath",
]
INFO = "failed-transition-dmscene-dmerror"
ALL_IDS = [*ACTIONABLE, INFO]


def scratch_target(tmp_path: Path, *, slow: bool = False) -> Path:
    """A git repository holding examples/target (must_pass made slower with `slow`)."""
    repo = tmp_path / "target"
    shutil.copytree(TARGET, repo, ignore=shutil.ignore_patterns("__pycache__"))
    if slow:  # each item takes a second or more: time to kill the run mid-fan-out
        config = repo / "mgt.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('must_pass = [\n',
                                       'must_pass = [\n    "python3 -c \'import time; '
                                       'time.sleep(1)\'",\n', 1), encoding="utf-8")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=dev@example.com", "-c", "user.name=dev", "commit", "-qm", "init")
    return repo


def mgt_args(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mgt", *args, "--runs-dir", str(work / "runs"), "--json"]


def env(work: Path) -> dict[str, str]:
    home = work / "home"
    home.mkdir(exist_ok=True)
    return offline_env(home, ROOT)


def records(repo: Path) -> list[dict[str, Any]]:
    directory = repo / ".git" / "mgt" / "prs"
    found = [json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")]
    return sorted(found, key=lambda r: int(r["number"]))


def pr_branches(repo: Path) -> list[str]:
    """Branches holding a commit beyond main (a branch left at main carries no PR)."""
    out = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/sleeptime/")
    return [b for b in out.split() if git(repo, "rev-list", "--count", f"main..{b}").strip() != "0"]


def check_one_pr_per_pattern(repo: Path) -> list[dict[str, Any]]:
    found = records(repo)
    assert sorted(r["patterns_addressed"][0] for r in found) == sorted(ACTIONABLE)
    assert all(len(r["patterns_addressed"]) == 1 for r in found)
    assert len({r["head"] for r in found}) == len(found) == len(ACTIONABLE)
    assert sorted(pr_branches(repo)) == sorted(r["head"] for r in found)
    for r in found:
        mine = r["patterns_addressed"][0]
        # the branch holds the recorded commit, and the PR cites its own pattern only
        assert git(repo, "rev-parse", r["head"]).strip() == r["commit_sha"]
        assert mine in r["body"]
        others = [p for p in ALL_IDS if p != mine and p in r["body"]]
        assert others == [], f"PR for {mine} cites {others}"
    return found


def test_the_offline_run_files_one_pr_per_actionable_pattern(tmp_path: Path) -> None:
    repo = scratch_target(tmp_path)
    proc = subprocess.run(mgt_args(tmp_path, "exec", str(MACHINE), "--input", f"repo={repo}",
                                   "--input", f"source={LOGS}"),
                          capture_output=True, text=True, env=env(tmp_path), cwd=tmp_path,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "offline" in proc.stderr  # the recorded answers, said so
    summary = json.loads(proc.stdout)
    assert summary["final"] == "filed"
    found = check_one_pr_per_pattern(repo)

    # the fan-out's output is in input order: each item's PR is its own pattern's
    items = summary["outputs"]["refine_each"]
    assert [i["index"] for i in items] == list(range(len(ALL_IDS)))
    assert [i["outcome"] for i in items] == ["done"] * len(ALL_IDS)
    addressed = [(i["output"] or {}).get("patterns_addressed") for i in items]
    assert addressed == [[p] for p in ACTIONABLE] + [None]  # the info pattern: nothing filed
    by_branch = {r["head"]: r for r in found}
    for item, pattern in zip(items, ACTIONABLE, strict=False):
        assert by_branch[item["output"]["branch_name"]]["patterns_addressed"] == [pattern]
    # the ledger was read once, in the parent; no child reads it
    run = tmp_path / "runs" / summary["run_id"]
    children = sorted((run / "machines").iterdir())
    assert len(children) == len(ALL_IDS)
    for child in children:
        states = {json.loads(line).get("state")
                  for line in (child / "events.jsonl").read_text(encoding="utf-8").splitlines()}
        assert "ledger" not in states


def _wait_for(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_kill_mid_fan_out_then_resume_files_only_the_rest(tmp_path: Path) -> None:
    repo = scratch_target(tmp_path, slow=True)
    proc = subprocess.Popen(mgt_args(tmp_path, "exec", str(MACHINE), "--input", f"repo={repo}",
                                     "--input", f"source={LOGS}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(tmp_path),
                            cwd=tmp_path, start_new_session=True)
    try:
        _wait_for(lambda: len(records(repo)) >= 1 if (repo / ".git" / "mgt" / "prs").is_dir()
                  else False)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    before = records(repo)
    assert 1 <= len(before) < len(ACTIONABLE), "the kill came after the fan-out"

    # not .slots (the model-call cap's): run directories only
    runs = [p for p in (tmp_path / "runs").iterdir()
            if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1
    resumed = subprocess.run(mgt_args(tmp_path, "resume", runs[0].name), capture_output=True,
                             text=True, env=env(tmp_path), cwd=tmp_path, timeout=300,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["final"] == "filed"
    after = check_one_pr_per_pattern(repo)
    # the PRs filed before the kill are kept as they were; only the rest were filed
    kept = {r["number"]: (r["head"], r["commit_sha"]) for r in after}
    assert all(kept[r["number"]] == (r["head"], r["commit_sha"]) for r in before)


def test_the_parallel_machines_check_clean() -> None:
    for name in ("evolve-parallel.mgt", "refine-one.mgt"):
        proc = subprocess.run([sys.executable, "-m", "mgt", "check",
                               str(ROOT / "machines" / name)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
