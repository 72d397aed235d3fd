"""Revert PRs for regressed changes: a real `git revert` on a new branch; the base untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.ledger import read_local
from mgt.evolve.ledger_step import read_ledger_step, rejected_context
from mgt.evolve.metadata import parse_blocks
from tests.evolve.conftest import MakeCtx, run_git
from tests.evolve.ledger_support import T, file_pr, ledger_ctx, logs, merge, report_of
from tests.evolve.loggen import Phase


def tree_state(repo: Path) -> tuple[str, str, str, str]:
    return (run_git(repo, "rev-parse", "main"), run_git(repo, "symbolic-ref", "HEAD"),
            run_git(repo, "status", "--porcelain"), run_git(repo, "worktree", "list"))


@pytest.mark.parametrize("ff", [False, True])
def test_regression_gets_a_revert_pr(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path, ff: bool,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    pr = file_pr(make_ctx, proposal, report)
    merge(repo, pr["branch_name"], T, ff=ff)
    (repo / "notes.txt").write_text("a person's uncommitted work\n")  # a dirty tree stays dirty
    before = tree_state(repo)

    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert [v["verdict"] for v in out["verdicts"]] == ["regressed"]
    (revert,) = out["reverts"]
    assert revert["pr"] == 1 and revert["revert_pr"] == 2
    assert revert["branch"] == f"sleeptime/revert-1-{revert['branch'].split('-', 2)[2]}"
    assert tree_state(repo) == before  # base, HEAD, working tree, worktrees: untouched
    assert (repo / "notes.txt").read_text() == "a person's uncommitted work\n"

    # The branch holds the revert: its tree is main's tree before the merge.
    branch = revert["branch"]
    assert run_git(repo, "rev-parse", f"{branch}^{{tree}}") == \
        run_git(repo, "rev-parse", f"{pr['commit_sha']}^^{{tree}}")
    assert run_git(repo, "rev-parse", f"{branch}^") == run_git(repo, "rev-parse", "main")
    assert run_git(repo, "branch", "--format=%(refname:short)", "--contains",
                   revert["commit_sha"]).split() == [branch]  # on its own branch only

    # The record says why, with the figures, and carries its own block.
    record = json.loads((repo / ".git/mgt/prs/2.json").read_text())
    assert record["head"] == branch and record["base"] == "main"
    assert re.search(r"\| `slow-llm-dmscene` \| slow_share \| 0\.29\d* \| 0\.60\d* \| regressed \|",
                     record["body"]), record["body"]
    (meta,) = parse_blocks(record["body"])
    assert meta["kind"] == "revert" and meta["reverts"] == 1
    assert json.loads((repo / ".git/mgt/prs/1.json").read_text())["mgt_revert_pr"] == 2

    # Next cycle: no second verdict, no second revert; the open revert covers the pattern.
    again = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert again["verdicts"] == [] and again["reverts"] == []
    assert [c["pr"] for c in again["covered"]] == [2]
    prs = read_local(repo)
    assert [(p.number, p.kind, p.state, p.revert_pr) for p in prs] == \
        [(1, "pr", "merged", 2), (2, "revert", "open", None)]


def test_a_revert_that_conflicts_is_a_note(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    pr = file_pr(make_ctx, proposal, report)
    merge(repo, pr["branch_name"], T)
    # A person then rewrote the same file on main: the revert no longer applies.
    path = pr["files_changed"][0]
    (repo / path).write_text("rewritten by hand\n")
    run_git(repo, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qam", "edit")
    main = run_git(repo, "rev-parse", "main")
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert out["reverts"] == []
    assert "no revert PR for PR #1" in out["notes"][0] and "does not apply" in out["notes"][0]
    assert run_git(repo, "rev-parse", "main") == main
    assert "sleeptime/revert" not in run_git(repo, "branch", "--list")
    assert len(run_git(repo, "worktree", "list").splitlines()) == 1


def test_revert_false_only_reports(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    pr = file_pr(make_ctx, proposal, report)
    merge(repo, pr["branch_name"], T)
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source, revert=False))
    assert [v["verdict"] for v in out["verdicts"]] == ["regressed"] and out["reverts"] == []


def test_a_regressed_change_reaches_the_refiner_as_ineffective(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.3), Phase(slow_share=0.6))
    report = report_of(source)
    pr = file_pr(make_ctx, proposal, report)
    merge(repo, pr["branch_name"], T)
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert [(i["pr"], i["verdict"]) for i in out["ineffective"]] == [(1, "regressed")]
    assert out["rejected"] == []
    text = rejected_context(make_ctx({}, outputs={"ledger": out}))
    assert "## Merged changes that did not help" in text and "Merged PR #1" in text
    assert '"verdict": "regressed"' in text and pr["title"] in text
    assert "## Changes reviewers rejected" not in text
