"""forge=github end to end: the branch pushed to the user's own remote, the PR opened over REST.

The user's repository has `origin = https://github.com/acme/dm-graph.git`, as a
clone from GitHub has; a test-only global git config rewrites that URL to a
local bare repository (`url.<bare>.insteadOf`), so git really pushes to
"GitHub", and the GitHub stand-in (tests/fakes/github_api.py) answers the REST
calls over real HTTP from the same bare repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.evolve.realrepo_support import (
    GITHUB_URL,
    evolve,
    git,
    github_remote,
    mgt_env,
    snapshot,
    user_repo,
    worktrees,
)
from tests.fakes.github_api import GitHubStandIn

TOKEN = "ghp_standin_token_0123456789"
URL = GITHUB_URL


@dataclass
class GitHub:
    repo: Path
    bare: Path
    api: GitHubStandIn
    env: dict[str, str]


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHub]:
    repo = user_repo(tmp_path)
    bare, config = github_remote(tmp_path, repo, URL)
    with GitHubStandIn(bare, "acme/dm-graph", token=TOKEN) as api:
        env = mgt_env(tmp_path, GIT_CONFIG_GLOBAL=str(config), GITHUB_API_URL=api.url,
                      GITHUB_TOKEN=TOKEN)
        yield GitHub(repo, bare, api, env)


def test_forge_github_pushes_to_the_users_remote_and_opens_the_pr(
    tmp_path: Path, github: GitHub
) -> None:
    before = snapshot(github.repo)
    result = evolve(tmp_path, f"repo={github.repo}", "forge=github", env=github.env)
    assert result.code == 0, result.stderr
    assert result.summary["final"] == "filed"
    pr = result.summary["outputs"]["open_pr"]
    branch, sha = pr["branch_name"], pr["commit_sha"]

    # The branch is in the user's repository and on "GitHub" (the bare repository behind
    # the URL the user's origin names), at the same commit; the base is not written to.
    assert git(github.repo, "rev-parse", f"refs/heads/{branch}").strip() == sha
    assert git(github.bare, "rev-parse", f"refs/heads/{branch}").strip() == sha
    assert git(github.bare, "rev-parse", "main").strip() == \
        git(github.repo, "rev-parse", "main").strip()

    # The pull request, through the REST API: preflight asked about the repository first.
    calls = [(r.method, r.path.split("?")[0]) for r in github.api.requests]
    assert calls[0] == ("GET", "/repos/acme/dm-graph")
    assert ("POST", "/repos/acme/dm-graph/pulls") in calls
    (pull,) = github.api.pulls.values()
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["draft"]) == (branch, "main", True)
    assert pull["head"]["sha"] == sha
    assert "## Validation" in pull["body"]
    assert pr["pr_url"] == "https://github.com/acme/dm-graph/pull/1"
    assert pr["pr_number"] == 1 and pr["forge"] == "github"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in github.api.requests)

    # Nothing else changed in the user's repository; no local PR record for a GitHub PR.
    assert snapshot(github.repo, new_branch=branch) == before
    assert git(github.repo, "remote", "get-url", "origin").strip() == URL
    assert not [p for p in (github.repo / ".git" / "mgt").rglob("*") if p.is_file()]  # no record
    assert worktrees(github.repo) == [f"worktree {github.repo.resolve()}"]
    assert result.leftovers == []
    assert TOKEN not in (result.run_dir / "run.json").read_text(encoding="utf-8")


def test_an_ssh_remote_names_the_same_repository(tmp_path: Path, github: GitHub) -> None:
    ssh = "git@github.com:acme/dm-graph.git"
    git(github.repo, "remote", "set-url", "origin", ssh)
    config = Path(github.env["GIT_CONFIG_GLOBAL"])
    config.write_text(f'[url "{github.bare.as_uri()}"]\n\tinsteadOf = {ssh}\n',
                      encoding="utf-8")
    result = evolve(tmp_path, f"repo={github.repo}", "forge=github", env=github.env)
    assert result.code == 0, result.stderr
    (pull,) = github.api.pulls.values()
    assert git(github.bare, "rev-parse", f"refs/heads/{pull['head']['ref']}").strip() == \
        result.summary["outputs"]["open_pr"]["commit_sha"]
