"""open-pr runs must_pass only for a change the guardrails did not validate; unsafe paths first.

The must_pass command here passes until a flag file exists. The guardrails
accept the change (must_pass passes), then the test creates the flag: if open-pr
ran must_pass again it would fail. It files the PR when the change is
byte-identical to the validated one on the same base commit, and runs (and
fails) must_pass when anything differs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.guardrails import check_proposed_changes
from mgt.evolve.pr import open_pr
from mgt.runtime.context import GuardrailFailure, StepContext
from tests.evolve.conftest import MakeCtx, run_git


@pytest.fixture
def flag(repo: Path, tmp_path: Path) -> Path:
    """mgt.toml's must_pass fails once this file exists."""
    flag = tmp_path / "must-pass-would-fail"
    config = repo / "mgt.toml"
    text = config.read_text(encoding="utf-8")
    start = text.index("must_pass = [")
    end = text.index("]", start) + 1
    # The sandbox hides the host's /tmp: show the flag's directory to must_pass, read-only.
    config.write_text(text[:start] + f"must_pass = [{json.dumps(f'test ! -e {flag}')}]\n"
                      f"sandbox_read_only = [{json.dumps(str(tmp_path))}]"
                      + text[end:], encoding="utf-8")
    run_git(repo, "commit", "--quiet", "-am", "a must_pass that a flag breaks")
    return flag


def validated(make_ctx: MakeCtx, proposal: dict[str, Any]) -> StepContext:
    """The refine attempt as the runtime leaves it: guardrails.json and output.json."""
    ctx = make_ctx(state="refine")
    assert check_proposed_changes(ctx, proposal) == []
    (ctx.attempt_dir / "output.json").write_text(json.dumps(proposal), encoding="utf-8")
    review = json.loads((ctx.attempt_dir / "guardrails.json").read_text(encoding="utf-8"))
    assert [r["exit_code"] for r in review["validation"]["runs"]] == [0]
    return ctx


def file_pr(make_ctx: MakeCtx, changes: Any, report: dict[str, Any]) -> StepContext:
    return make_ctx({"changes": changes, "evidence": report}, state="open_pr",
                    attempt_dir=make_ctx().run_dir / "states" / "open_pr" / "1",
                    with_report=False)


def test_a_validated_change_is_filed_without_running_must_pass_again(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], report: dict[str, Any], flag: Path
) -> None:
    validated(make_ctx, proposal)
    flag.touch()  # must_pass would fail now
    result = open_pr(file_pr(make_ctx, proposal, report))
    body = (make_ctx().run_dir / "states" / "open_pr" / "1" / "pr-body.md").read_text("utf-8")
    assert "## Validation" in body
    assert "passed once, when the guardrails accepted this change (state refine, attempt 1" \
        in body
    assert body.index("## Validation") < body.rindex("\n---\n")  # before the footer
    assert "The commands ran in a bubblewrap sandbox" in body
    assert run_git(repo, "rev-parse", result["branch_name"]).strip() == result["commit_sha"]


def test_the_pr_body_says_when_must_pass_ran_without_a_sandbox(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], report: dict[str, Any], flag: Path
) -> None:
    config = repo / "mgt.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[evolve]\n", '[evolve]\nsandbox = "none"\n', 1), encoding="utf-8")
    run_git(repo, "commit", "--quiet", "-am", "opt out of the sandbox")
    validated(make_ctx, proposal)
    open_pr(file_pr(make_ctx, proposal, report))
    body = (make_ctx().run_dir / "states" / "open_pr" / "1" / "pr-body.md").read_text("utf-8")
    assert "ran WITHOUT a sandbox" in body
    assert 'sandbox = "none"' in body


def test_a_different_change_runs_must_pass(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], report: dict[str, Any], flag: Path
) -> None:
    validated(make_ctx, proposal)
    flag.touch()
    other = copy.deepcopy(proposal)
    other["changes"] = other["changes"][:1]  # not what the guardrails validated
    with pytest.raises(GuardrailFailure, match="must_pass command `test ! -e"):
        open_pr(file_pr(make_ctx, other, report))
    assert run_git(repo, "branch", "--list").split() == ["*", "main"]


def test_a_moved_base_runs_must_pass(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], report: dict[str, Any], flag: Path
) -> None:
    validated(make_ctx, proposal)
    (repo / "CHANGELOG").write_text("moved on\n", encoding="utf-8")
    run_git(repo, "add", "CHANGELOG")
    run_git(repo, "commit", "--quiet", "-m", "main moved after the review")
    flag.touch()
    with pytest.raises(GuardrailFailure, match="must_pass command `test ! -e"):
        open_pr(file_pr(make_ctx, proposal, report))


def test_a_rejected_review_is_no_validation(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], report: dict[str, Any], flag: Path
) -> None:
    ctx = validated(make_ctx, proposal)
    review_file = ctx.attempt_dir / "guardrails.json"
    review = json.loads(review_file.read_text(encoding="utf-8"))
    review["accepted"] = False
    review_file.write_text(json.dumps(review), encoding="utf-8")
    flag.touch()
    with pytest.raises(GuardrailFailure, match="must_pass command"):
        open_pr(file_pr(make_ctx, proposal, report))


def git_quote(name: str) -> str:
    """A path as git writes an unusual one in a diff header: "a/evil\\001name"."""
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
               34: '\\"', 92: "\\\\"}
    out = "".join(escapes.get(b) or (f"\\{b:03o}" if b < 32 or b >= 127 else chr(b))
                  for b in name.encode("utf-8"))
    return f'"{out}"'


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\u202e", "\n"])
def test_a_control_character_in_a_path_is_refused_before_any_branch(
    make_ctx: MakeCtx, repo: Path, report: dict[str, Any], char: str
) -> None:
    name = f"templates/evil{char}name.jinja"
    diff = (f"diff --git {git_quote('a/' + name)} {git_quote('b/' + name)}\n"
            f"new file mode 100644\n--- /dev/null\n+++ {git_quote('b/' + name)}\n"
            "@@ -0,0 +1 @@\n+hello\n")
    changes = {"changes": [{"path": name, "diff": diff, "rationale": "token-bloat-dmscene"}],
               "patterns_addressed": ["token-bloat-dmscene"]}
    branches = run_git(repo, "for-each-ref", "refs/heads")
    with pytest.raises(GuardrailFailure, match="control character"):
        open_pr(file_pr(make_ctx, changes, report))
    assert run_git(repo, "for-each-ref", "refs/heads") == branches
    assert not (repo / ".git" / "mgt").exists()
    assert run_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
