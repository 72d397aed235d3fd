"""Protected paths: no proposal adds, changes, deletes or renames CI, git or mgt configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.diffs import parse_diff
from mgt.evolve.guardrails import check_proposed_changes, path_problem
from mgt.evolve.pr import open_pr, safety_problems
from mgt.evolve.protected import DEFAULT_PROTECTED, normalise, protected_problem
from mgt.evolve.target import load_target_config
from mgt.runtime.context import GuardrailFailure
from tests.evolve.conftest import MakeCtx, add_change, proposed, run_git

CITE = "For token-bloat-dmscene: "

# One real file name under each built-in rule.
EXAMPLES = {
    ".github": ".github/workflows/ci.yml",
    ".gitlab-ci.yml": ".gitlab-ci.yml",
    ".gitlab": ".gitlab/ci/build.yml",
    ".circleci": ".circleci/config.yml",
    "Jenkinsfile": "Jenkinsfile",
    ".travis.yml": ".travis.yml",
    "azure-pipelines.yml": "azure-pipelines.yml",
    "azure-pipelines.yaml": "azure-pipelines.yaml",
    ".azure-pipelines": ".azure-pipelines/build.yml",
    ".buildkite": ".buildkite/pipeline.yml",
    ".drone.yml": ".drone.yml",
    "bitbucket-pipelines.yml": "bitbucket-pipelines.yml",
    ".woodpecker.yml": ".woodpecker.yml",
    ".woodpecker": ".woodpecker/test.yml",
    ".gitea": ".gitea/workflows/ci.yaml",
    ".forgejo": ".forgejo/workflows/ci.yaml",
    "appveyor.yml": "appveyor.yml",
    ".appveyor.yml": ".appveyor.yml",
    "CODEOWNERS": "docs/CODEOWNERS",
    ".pre-commit-config.yaml": ".pre-commit-config.yaml",
    ".husky": ".husky/pre-commit",
    ".git": ".GIT/hooks/post-checkout",
    ".gitattributes": ".gitattributes",
    ".gitmodules": ".gitmodules",
    ".lfsconfig": ".lfsconfig",
    ".devcontainer": ".devcontainer/devcontainer.json",
    ".devcontainer.json": ".devcontainer.json",
    ".vscode": ".vscode/tasks.json",
    ".envrc": ".envrc",
    "mgt.toml": "mgt.toml",
    ".mgt": ".mgt/schedules.toml",
    "/polecats": "polecats/conditional-refiner.toml",
    "/formulas": "formulas/refine.formula.toml",
    "*.formula.toml": "sub/dir/file-pr.formula.toml",
}


def test_every_rule_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(rule.pattern for rule in DEFAULT_PROTECTED)


@pytest.mark.parametrize(("rule", "path"), sorted(EXAMPLES.items()))
def test_every_protected_path_is_a_guardrail(
    make_ctx: MakeCtx, repo: Path, rule: str, path: str
) -> None:
    # written by hand: git itself refuses to stage some of these (".GIT/...")
    diff = (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{path}\n@@ -0,0 +1 @@\n+changed: true\n")
    change = {"path": path, "diff": diff, "rationale": CITE + "tidy config."}
    problems = check_proposed_changes(make_ctx(), proposed([change]))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'change 1: "{path}" is protected (')
    assert f"mgt's built-in protected path \"{rule}\"" in problems[0]
    assert problems[0].endswith("a proposal may not change it.")
    assert run_git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("path", [
    "./.github/workflows/ci.yml", "src/../.github/workflows/ci.yml", ".github\\workflows\\x.yml",
    ".GitHub/Workflows/CI.yml", ".github./workflows/x.yml", ".github /workflows/x.yml",
    ".git\u200chub/workflows/x.yml", ".github::$INDEX_ALLOCATION/workflows/x.yml",
    "MGT.TOML", "sub/Mgt.Toml", "Polecats/x.toml", "x.FORMULA.toml", "\ufeff.gitmodules",
])
def test_disguised_spellings_are_protected(path: str) -> None:
    assert protected_problem(path) is not None, normalise(path)


@pytest.mark.parametrize("path", [
    "Makefile", ".gitignore", "src/github/x.py", "docs/gitlab-ci.md", "src/polecats/x.toml",
    "formula.toml", "templates/dm_scene.jinja", ".githubx/y", "mgt.toml.md",
])
def test_ordinary_paths_are_not_protected(path: str) -> None:
    assert protected_problem(path) is None


@pytest.mark.parametrize("code", [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_control_character_is_refused(code: int) -> None:
    path = f"src/a{chr(code)}b.py"
    assert path_problem(path) == (
        f"contains the control character U+{code:04X}; no path may contain one")


def _diff(repo: Path, *args: str) -> str:
    return run_git(repo, "diff", "--cached", "-M", *args)


def _staged(repo: Path, *commands: tuple[str, ...]) -> str:
    """The staged diff after `commands` (git arguments), then the repository put back."""
    for command in commands:
        run_git(repo, *command)
    diff = _diff(repo)
    run_git(repo, "reset", "-q", "--hard", "HEAD")
    run_git(repo, "clean", "-qfd")
    return diff


def test_renames_into_and_out_of_protected_paths(make_ctx: MakeCtx, repo: Path) -> None:
    (repo / ".github").mkdir()
    (repo / ".github" / "ci.yml").write_text("on: push\n" * 5)
    run_git(repo, "add", ".github")
    run_git(repo, "commit", "-qm", "ci")
    into = _staged(repo, ("mv", "README.md", ".github/README.md"))
    out_of = _staged(repo, ("mv", ".github/ci.yml", "ci.yml"))
    assert "rename from" in into and "rename from" in out_of
    target = load_target_config(repo)
    cases = ((into, ".github/README.md", "README.md"), (out_of, ".github/ci.yml", "ci.yml"))
    for diff, path, other_side in cases:
        problems = safety_problems(parse_diff(diff), target)
        assert any(p.startswith(f'"{path}" is protected (CI configuration') for p in problems)
        # the change names the unprotected side: the other side is still checked
        rationale = CITE + "move a file."
        proposal = proposed([{"path": other_side, "diff": diff, "rationale": rationale}])
        problems = check_proposed_changes(make_ctx(), proposal)
        assert any(f'"{path}" is protected (CI configuration' in p for p in problems), problems


def test_new_and_deleted_protected_files(make_ctx: MakeCtx, repo: Path) -> None:
    deleted = add_change(repo, "mgt.toml", None, CITE + "drop the checks.")
    assert "deleted file mode" in deleted["diff"]
    problems = check_proposed_changes(make_ctx(), proposed([deleted]))
    assert problems == [
        'change 1: "mgt.toml" is protected (mgt\'s own settings, which set the guardrails '
        "and must_pass commands; mgt's built-in protected path \"mgt.toml\"); a proposal may "
        "not change it."
    ]
    added = add_change(repo, ".github/workflows/x.yml", "on: push\n", CITE + "add CI.")
    assert "new file mode" in added["diff"]
    assert len(check_proposed_changes(make_ctx(), proposed([added]))) == 1


def test_the_target_adds_protected_paths(make_ctx: MakeCtx, repo: Path) -> None:
    with (repo / "mgt.toml").open("a") as f:
        f.write('protected_paths = ["deploy/prod", "*.tf"]\n')
    run_git(repo, "commit", "-qam", "protect deploy")
    for path in ("deploy/prod/app.yml", "Deploy/Prod/app.yml", "infra/main.TF"):
        change = add_change(repo, path, "x\n", CITE + "deploy.")
        problems = check_proposed_changes(make_ctx(), proposed([change]))
        assert problems == [
            f'change 1: "{path}" is protected (the protected path '
            f'"{"deploy/prod" if "eploy" in path else "*.tf"}" of mgt.toml '
            "[evolve].protected_paths); a proposal may not change it."
        ]
    # the built-in list still holds: a target cannot remove from it
    change = add_change(repo, ".github/workflows/x.yml", "on: push\n", CITE + "add CI.")
    assert len(check_proposed_changes(make_ctx(), proposed([change]))) == 1


def test_open_pr_refuses_a_protected_path_and_leaves_no_branch(
    make_ctx: MakeCtx, repo: Path, report: dict[str, Any]
) -> None:
    change = add_change(repo, ".github/workflows/ci.yml", "on: push\n", CITE + "CI.")
    ctx = make_ctx({"changes": change["diff"], "evidence": report}, state="open_pr")
    branches = run_git(repo, "branch", "--list")
    with pytest.raises(GuardrailFailure) as caught:
        open_pr(ctx)
    assert any('".github/workflows/ci.yml" is protected' in p for p in caught.value.problems)
    assert run_git(repo, "branch", "--list") == branches
    assert not (repo / ".git" / "mgt" / "prs").exists()


def test_a_control_character_in_a_diff_path_is_refused_before_any_commit(
    make_ctx: MakeCtx, repo: Path, report: dict[str, Any]
) -> None:
    diff = ('diff --git "a/notes\\033[2Jx.md" "b/notes\\033[2Jx.md"\nnew file mode 100644\n'
            '--- /dev/null\n+++ "b/notes\\033[2Jx.md"\n@@ -0,0 +1 @@\n+hello\n')
    ctx = make_ctx({"changes": diff, "evidence": report}, state="open_pr")
    with pytest.raises(GuardrailFailure) as caught:
        open_pr(ctx)
    assert any("control character U+001B" in p for p in caught.value.problems)
    assert run_git(repo, "branch", "--list").strip() == "* main"
    assert not (repo / ".git" / "mgt" / "prs").exists()
