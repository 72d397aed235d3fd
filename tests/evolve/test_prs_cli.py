"""`mgt prs`: the ledger of a real repository as a table and as JSON, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.ledger_step import read_ledger_step
from tests.evolve.conftest import ROOT, MakeCtx, run_git
from tests.evolve.e2e_support import user_env
from tests.evolve.ledger_support import T, file_pr, ledger_ctx, logs, merge, report_of
from tests.evolve.loggen import Phase
from tests.fakes.github_api import GitHubStandIn


def mgt(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mgt", *args], capture_output=True, text=True,
                          cwd=cwd, env=user_env(PYTHONPATH=str(ROOT), COLUMNS="200", **env),
                          timeout=120, check=False)


def ledger_with_history(make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any],
                        tmp_path: Path) -> None:
    """#1 merged and regressed (→ #4 its revert), #2 closed, #3 open."""
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    first = file_pr(make_ctx, proposal, report)
    closed = file_pr(make_ctx, proposal, report)
    file_pr(make_ctx, proposal, report)
    run_git(repo, "branch", "-D", closed["branch_name"])
    merge(repo, first["branch_name"], T)
    read_ledger_step(ledger_ctx(make_ctx, repo, report, source))  # verdict + revert #4


def test_prs_json_and_table(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    ledger_with_history(make_ctx, repo, proposal, tmp_path)
    proc = mgt("prs", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["forge"] == "local" and Path(data["repo"]) == repo
    rows = {row["number"]: row for row in data["prs"]}
    assert [(n, r["kind"], r["state"]) for n, r in rows.items()] == [
        (1, "pr", "merged"), (2, "pr", "closed"), (3, "pr", "open"), (4, "revert", "open")]
    assert rows[1]["verdict"]["verdict"] == "regressed" and rows[1]["revert_pr"] == 4
    assert rows[1]["patterns"] == ["slow-llm-dmscene"]
    assert rows[1]["figures"].startswith("slow_share 0.29")
    assert "→ 0.60" in rows[1]["figures"]
    assert rows[4]["reverts"] == 1
    assert rows[3]["figures"].startswith("slow_share 0.4") and "at filing" in rows[3]["figures"]

    table = mgt("prs", "--repo", str(repo), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    row1 = next(line for line in lines if line.lstrip("│ ").startswith("1 "))
    assert "merged" in row1 and "regressed (revert #4)" in row1 and "slow-llm-dmscene" in row1
    assert any("revert of #1" in line for line in lines)
    assert any("closed" in line for line in lines)


def test_prs_errors_are_one_line(tmp_path: Path, repo: Path) -> None:
    proc = mgt("prs", "--repo", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode != 0 and proc.stderr.startswith("mgt: ")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    empty = mgt("prs", "--repo", str(repo), cwd=tmp_path)
    assert empty.returncode == 0 and "no sleeptime PRs" in empty.stdout
    github = mgt("prs", "--repo", str(repo), "--forge", "github", cwd=tmp_path)
    assert github.returncode != 0 and "--github-repo" in github.stderr


def test_prs_on_github(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    run_git(repo, "remote", "add", "origin", str(remote))
    run_git(repo, "push", "-q", "origin", "main")
    report = report_of(logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5)))
    with GitHubStandIn(remote, "acme/dm-graph", token="s3cret") as gh:
        env = {"GITHUB_API_URL": gh.url, "GITHUB_TOKEN": "s3cret", "NO_PROXY": "127.0.0.1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        file_pr(make_ctx, proposal, report, forge="github", github_repo="acme/dm-graph")
        proc = mgt("prs", "--repo", str(repo), "--forge", "github", "--github-repo",
                   "acme/dm-graph", "--json", cwd=tmp_path, **env)
        assert proc.returncode == 0, proc.stderr
        (row,) = json.loads(proc.stdout)["prs"]
        assert (row["number"], row["state"], row["patterns"]) == (1, "open", ["slow-llm-dmscene"])
        assert row["url"] == "https://github.com/acme/dm-graph/pull/1"
        bad = mgt("prs", "--repo", str(repo), "--forge", "github", "--github-repo",
                  "acme/dm-graph", cwd=tmp_path, **dict(env, GITHUB_TOKEN="wrong"))
        assert bad.returncode != 0 and "401" in bad.stderr and "Traceback" not in bad.stderr
