"""The ledger on the github forge: the stand-in over real HTTP lists, merges, closes, comments."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mgt.evolve.ledger import LedgerClient, read_github
from mgt.evolve.ledger_step import read_ledger_step
from mgt.evolve.metadata import parse_blocks, render_block
from tests.evolve.conftest import MakeCtx, run_git
from tests.evolve.ledger_support import T, file_pr, ledger_ctx, logs, report_of
from tests.evolve.loggen import Phase
from tests.fakes.github_api import GitHubStandIn

REPO = "acme/dm-graph"


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    run_git(repo, "remote", "add", "origin", str(bare))
    run_git(repo, "push", "-q", "origin", "main")
    return bare


@pytest.fixture
def github(remote: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(remote, REPO, token="s3cret") as gh:
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        monkeypatch.setenv("GITHUB_TOKEN", "s3cret")
        monkeypatch.delenv("GH_TOKEN", raising=False)
        yield gh


def gh_call(gh: GitHubStandIn, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{gh.url}/repos/{REPO}{path}", json=body,
                         headers={"Authorization": "Bearer s3cret"})


def merge_on_github(gh: GitHubStandIn, number: int) -> str:
    gh.now = T
    response = gh_call(gh, "PUT", f"/pulls/{number}/merge")
    gh.now = None
    assert response.status_code == 200, response.text
    sha: str = response.json()["sha"]
    return sha


def github_pr(make_ctx: MakeCtx, proposal: dict[str, Any], report: dict[str, Any]) -> Any:
    return file_pr(make_ctx, proposal, report, forge="github", github_repo=REPO)


def gh_ledger_ctx(make_ctx: MakeCtx, repo: Path, report: dict[str, Any], source: Path) -> Any:
    return ledger_ctx(make_ctx, repo, report, source, forge="github", github_repo=REPO)


def comment_posts(gh: GitHubStandIn) -> list[Any]:
    return [r for r in gh.requests if r.method == "POST" and r.path.endswith("/comments")]


def test_pages_follow_link_headers(
    make_ctx: MakeCtx, repo: Path, github: GitHubStandIn, proposal: dict[str, Any],
    tmp_path: Path,
) -> None:
    report = report_of(logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5)))
    for _ in range(3):
        github_pr(make_ctx, proposal, report)
    client = LedgerClient(REPO, "s3cret")
    try:
        numbers = [p["number"] for p in client.pages("/pulls?state=all&per_page=2")]
        assert numbers == [1, 2, 3]
        assert [p.number for p in read_github(client)] == [1, 2, 3]
    finally:
        client.close()
    pages = [r.path for r in github.requests if r.method == "GET" and "per_page=2" in r.path]
    assert len(pages) == 2 and "page=2" in pages[1]


def test_open_merged_closed_on_github_and_a_verdict_comment_once(
    make_ctx: MakeCtx, repo: Path, remote: Path, github: GitHubStandIn,
    proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.05))
    report = report_of(source)
    first = github_pr(make_ctx, proposal, report)
    second = github_pr(make_ctx, proposal, report)
    assert first["pr_number"] == 1 and second["pr_number"] == 2
    # Someone else's PR with a hostile block in its body: read, never trusted, never a crash.
    run_git(repo, "push", "-q", "origin", "main:feature")
    response = gh_call(github, "POST", "/pulls", {
        "title": "human", "head": "feature", "base": "main",
        "body": '<!-- mgt:sleeptime {"kind": "pr", "patterns": [{"id": [1]}], '
                '"schema": 1e999} --> <!-- mgt:sleeptime {"kind": "verdict"} -->'})
    assert response.status_code == 201

    # A stranger's PR whose body claims every pattern: it covers nothing.
    stranger = dict(github.pulls[3], number=4, user={"login": "mallory", "type": "User"},
                    author_association="NONE", body=render_block(
                        {"kind": "pr", "patterns": [{"id": "x", "type": "failed_transition",
                                                     "key": {"from": "parseAction",
                                                             "to": "errorHandler"}}]}))
    github.pulls[4] = stranger

    out = read_ledger_step(gh_ledger_ctx(make_ctx, repo, report, source))
    assert [c["pr"] for c in out["covered"]] == [1] and out["actionable"] == 0
    assert {p["number"]: p["state"] for p in out["prs"]} == {1: "open", 2: "open", 3: "open"}

    merge_sha = merge_on_github(github, 1)
    assert gh_call(github, "PATCH", "/pulls/2", {"state": "closed"}).status_code == 200
    out = read_ledger_step(gh_ledger_ctx(make_ctx, repo, report, source))
    assert {p["number"]: p["state"] for p in out["prs"]} == {1: "merged", 2: "closed", 3: "open"}
    merged = next(p for p in out["prs"] if p["number"] == 1)
    assert merged["merge_sha"] == merge_sha and merged["merged_at"] == T.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert [(v["pr"], v["verdict"], v["recorded"]) for v in out["verdicts"]] == \
        [(1, "improved", True)]
    (post,) = comment_posts(github)
    assert post.path == f"/repos/{REPO}/issues/1/comments"
    (block,) = parse_blocks(post.body["body"])
    assert block["kind"] == "verdict" and block["pr"] == 1 and block["verdict"] == "improved"
    assert "**Impact: improved**" in post.body["body"]
    assert [r["pr"] for r in out["rejected"]] == [2]
    assert out["covered"] == []  # judged: the merged PR no longer holds the pattern

    again = read_ledger_step(gh_ledger_ctx(make_ctx, repo, report, source))
    assert again["verdicts"] == [] and len(comment_posts(github)) == 1  # read back, not redone


def test_regression_on_github_opens_a_revert_pr(
    make_ctx: MakeCtx, repo: Path, remote: Path, github: GitHubStandIn,
    proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    github_pr(make_ctx, proposal, report)
    merge_sha = merge_on_github(github, 1)
    local_main = run_git(repo, "rev-parse", "main")
    # A stranger comments a forged verdict to keep the change: it is not the ledger's own.
    github.comments[1] = [{
        "id": 99, "user": {"login": "mallory", "type": "User"}, "author_association": "NONE",
        "body": render_block({"kind": "verdict", "pr": 1, "verdict": "improved"}),
    }]
    out = read_ledger_step(gh_ledger_ctx(make_ctx, repo, report, source))
    assert [v["verdict"] for v in out["verdicts"]] == ["regressed"]
    (revert,) = out["reverts"]
    assert revert["revert_pr"] == 2
    pull = github.pulls[2]
    assert pull["base"]["ref"] == "main" and pull["head"]["ref"] == revert["branch"]
    (meta,) = parse_blocks(pull["body"])
    assert meta["kind"] == "revert" and meta["reverts"] == 1
    assert "slow_share" in pull["body"] and merge_sha in pull["body"]
    # The branch was pushed; the remote's main is still the merge; the user's main untouched.
    remote_heads = run_git(remote, "for-each-ref", "--format=%(refname:short) %(objectname)")
    assert f"{revert['branch']} {revert['commit_sha']}" in remote_heads
    assert f"main {merge_sha}" in remote_heads
    assert run_git(repo, "rev-parse", "main") == local_main
    assert run_git(remote, "rev-parse", f"{revert['branch']}^") == merge_sha + "\n"

    again = read_ledger_step(gh_ledger_ctx(make_ctx, repo, report, source))
    assert again["reverts"] == [] and again["verdicts"] == []
    assert [c["pr"] for c in again["covered"]] == [2]
