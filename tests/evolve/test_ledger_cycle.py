"""machines/evolve.mgt run twice as a user would (`python -m mgt exec`): one PR, not two.

The refiner's answer is replayed from a directory (`--executor replay`), so a
model call is an attempt of the refine state in the run's journal; the prompt
the model would have read is the attempt's `prompt.md`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mgt.evolve.metadata import parse_blocks
from tests.evolve.conftest import ROOT, run_git
from tests.evolve.e2e_support import Run, sample, user_env
from tests.evolve.ledger_support import T
from tests.evolve.loggen import Phase, write_events
from tests.fakes.github_api import GitHubStandIn

MACHINE = ROOT / "machines" / "evolve.mgt"


def cycle(work: Path, repo: Path, source: Path, answers: Path, *inputs: str,
          **env: str) -> Run:
    args = [sys.executable, "-m", "mgt", "exec", str(MACHINE), "--runs-dir", str(work / "runs"),
            "--json", "--executor", "replay", "--replay-dir", str(answers),
            "--input", f"repo={repo}", "--input", f"source={source}"]
    for item in inputs:
        args += ["--input", item]
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run(args, capture_output=True, text=True, cwd=work,
                          env=user_env(TMPDIR=str(tmp), PYTHONPATH=str(ROOT), **env),
                          timeout=300, check=False)
    assert proc.stdout.strip(), proc.stderr
    summary = json.loads(proc.stdout)
    return Run(proc.returncode, summary, proc.stderr, work / "runs" / summary["run_id"])


def setup(tmp_path: Path, repo: Path) -> tuple[Path, Path]:
    source = write_events(tmp_path / "events.jsonl", split=T, before=Phase(slow_share=0.5),
                          after=Phase(slow_share=0.5))
    answers = tmp_path / "answers"
    answers.mkdir()
    answer: dict[str, Any] = sample()
    answer["patterns_addressed"] = ["slow-llm-dmscene"]  # the generated logs have no bloat
    for change in answer["changes"]:
        change["rationale"] = change["rationale"].replace("token-bloat-dmscene",
                                                          "slow-llm-dmscene")
    (answers / "refine.json").write_text(json.dumps(answer), encoding="utf-8")
    return source, answers


def model_calls(run: Run) -> int:
    return len(run.finished("refine"))


def test_two_cycles_on_unchanged_logs_file_one_pr(tmp_path: Path, repo: Path) -> None:
    source, answers = setup(tmp_path, repo)
    first = cycle(tmp_path, repo, source, answers)
    assert (first.code, first.summary["final"]) == (0, "filed"), first.stderr
    assert model_calls(first) == 1
    pr = first.summary["outputs"]["open_pr"]
    # The branch and the record are in the user's repository itself.
    assert run_git(repo, "rev-parse", pr["branch_name"]).strip() == pr["commit_sha"]
    assert (repo / ".git/mgt/prs/1.json").is_file()

    second = cycle(tmp_path, repo, source, answers)
    assert (second.code, second.summary["status"], second.summary["final"]) == \
        (0, "succeeded", "covered"), second.stderr
    assert model_calls(second) == 0
    assert second.summary["path"] == ["preflight", "prepare_repo", "analyze", "ledger", "covered"]
    ledger = second.summary["outputs"]["ledger"]
    assert ledger["covering_prs"] == [1]
    assert "#1 (slow-llm-dmscene)" in ledger["message"]
    assert sorted(p.name for p in (repo / ".git/mgt/prs").glob("*.json")) == ["1.json"]
    # `mgt show` (like `mgt exec` without --json) names the covering PR.
    show = subprocess.run([sys.executable, "-m", "mgt", "show", second.summary["run_id"],
                           "--runs-dir", str(tmp_path / "runs")], capture_output=True,
                          text=True, cwd=tmp_path, env=user_env(PYTHONPATH=str(ROOT),
                                                                COLUMNS="200"),
                          timeout=120, check=False)
    assert show.returncode == 0, show.stderr
    assert "ledger · LedgerReport" in show.stdout
    assert "slow-llm-dmscene  covered by #1 (open)" in show.stdout
    assert run_git(repo, "branch", "--list", "sleeptime/*").count("sleeptime/") == 1


def test_a_closed_pr_reaches_the_refiner_as_rejected(tmp_path: Path, repo: Path) -> None:
    source, answers = setup(tmp_path, repo)
    first = cycle(tmp_path, repo, source, answers)
    pr = first.summary["outputs"]["open_pr"]
    prompt = (first.dir / "states/refine/1/prompt.md").read_text(encoding="utf-8")
    assert "Changes reviewers rejected" not in prompt
    run_git(repo, "branch", "-D", pr["branch_name"])  # the reviewer closes it unmerged

    second = cycle(tmp_path, repo, source, answers)
    assert model_calls(second) == 1
    prompt = (second.dir / "states/refine/1/prompt.md").read_text(encoding="utf-8")
    assert "## Changes reviewers rejected" in prompt
    section = prompt.split("## Changes reviewers rejected", 1)[1]
    assert "Rejected PR #1" in section and pr["title"] in section
    for path in pr["files_changed"]:
        assert path in section
    assert second.summary["outputs"]["ledger"]["rejected"][0]["pr"] == 1


def test_two_cycles_on_github_file_one_pr(tmp_path: Path, repo: Path) -> None:
    source, answers = setup(tmp_path, repo)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main")
    with GitHubStandIn(remote, "acme/dm-graph", token="s3cret") as gh:
        env = {"GITHUB_API_URL": gh.url, "GITHUB_TOKEN": "s3cret",
               "GITHUB_REPOSITORY": "acme/dm-graph", "NO_PROXY": "127.0.0.1,localhost"}
        first = cycle(tmp_path, repo, source, answers, "forge=github", **env)
        assert (first.code, first.summary["final"]) == (0, "filed"), first.stderr
        assert list(gh.pulls) == [1]
        (block,) = parse_blocks(gh.pulls[1]["body"])
        assert block["patterns"][0]["id"] == "slow-llm-dmscene"

        second = cycle(tmp_path, repo, source, answers, "forge=github", **env)
        assert (second.code, second.summary["final"]) == (0, "covered"), second.stderr
        assert model_calls(second) == 0 and list(gh.pulls) == [1]
        listed = [r.path for r in gh.requests if r.method == "GET" and "state=all" in r.path]
        assert listed, "the second cycle read the forge"
