"""check_proposed_changes: each guardrail accepts at its limit, rejects past it, says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mgt.defs.polecat import Polecat
from mgt.errors import EvolveError
from mgt.evolve.guardrails import check_proposed_changes
from tests.evolve.conftest import MakeCtx, add_change, proposed, run_git

CITE = "For token-bloat-dmscene: "
REFINER = "conditional-refiner [guardrails]"


def lines(n: int, word: str = "line") -> str:
    return "".join(f"{word} {i}\n" for i in range(n))


def new_files(repo: Path, count: int, size: int) -> list[dict[str, Any]]:
    return [
        add_change(repo, f"notes/n{i}.md", lines(size), CITE + "notes for the scene prompt.")
        for i in range(count)
    ]


def assert_clean(repo: Path) -> None:
    """The target is as it was: no changes, no leftover worktrees, still on main."""
    assert run_git(repo, "status", "--porcelain") == ""
    assert run_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert run_git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"


# --------------------------------------------------------------------------- accepted


def test_the_sample_answer_is_accepted_and_recorded(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any]
) -> None:
    ctx = make_ctx()
    assert check_proposed_changes(ctx, proposal) == []
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert record["accepted"] is True
    assert record["base"] == "main"
    assert [r["command"] for r in record["validation"]["runs"]] == [
        "PYTHONPATH=src python3 -m dmgraph.build", "PYTHONPATH=src python3 -m unittest -q"]
    assert all(r["exit_code"] == 0 for r in record["validation"]["runs"])
    assert record["validation"]["source"] == "mgt.toml [evolve].must_pass"
    assert_clean(repo)


def test_pattern_ids_are_matched_whole_and_case_insensitively(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    proposal["patterns_addressed"] = ["Slow-LLM-dmScene"]
    proposal["changes"][1]["rationale"] = "Keeps dmScene consistent (TOKEN-BLOAT-DMSCENE)."
    assert check_proposed_changes(make_ctx(), proposal) == []


# --------------------------------------------------------------------------- limits


def test_max_files_changed_at_and_past_the_limit(make_ctx: MakeCtx, repo: Path) -> None:
    assert check_proposed_changes(make_ctx(), proposed(new_files(repo, 5, 2))) == []
    problems = check_proposed_changes(make_ctx(), proposed(new_files(repo, 6, 2)))
    assert problems == [f"The changes touch 6 files; the limit is 5 ({REFINER}.max_files_changed)."]


def test_max_lines_per_file_at_and_past_the_limit(make_ctx: MakeCtx, repo: Path) -> None:
    assert check_proposed_changes(make_ctx(), proposed(new_files(repo, 1, 50))) == []
    problems = check_proposed_changes(make_ctx(), proposed(new_files(repo, 1, 51)))
    assert problems == [
        '"notes/n0.md": 51 lines added and removed; the limit per file is 50 '
        "(refine formula [guardrails].max_lines_per_file)."
    ]


def test_max_lines_changed_at_and_past_the_limit(make_ctx: MakeCtx, repo: Path) -> None:
    assert check_proposed_changes(make_ctx(), proposed(new_files(repo, 4, 50))) == []
    problems = check_proposed_changes(make_ctx(), proposed(new_files(repo, 5, 41)))
    assert problems == [
        f"The changes add and remove 205 lines in total; the limit is 200 "
        f"({REFINER}.max_lines_changed)."
    ]


def test_the_tightest_limit_names_its_source(
    make_ctx: MakeCtx, proposal: dict[str, Any], refiner: Polecat
) -> None:
    strict = refiner.model_copy(
        update={"guardrails": refiner.guardrails.model_copy(update={"max_files_changed": 1})}
    )
    problems = check_proposed_changes(make_ctx(polecat=strict), proposal)
    assert problems == [f"The changes touch 2 files; the limit is 1 ({REFINER}.max_files_changed)."]
    problems = check_proposed_changes(make_ctx({"max_changes": 1}), proposal)
    assert problems == ["The changes touch 2 files; the limit is 1 (the max_changes input)."]


def test_target_files_input(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    problems = check_proposed_changes(
        make_ctx({"target_files": ["templates/dm_scene.jinja"]}), proposal
    )
    assert problems == ['"graph/dm.graph" is not one of the target_files input '
                        "(templates/dm_scene.jinja); change only those files."]


# --------------------------------------------------------------------------- paths


def test_forbidden_path_of_the_polecat(make_ctx: MakeCtx, repo: Path) -> None:
    change = add_change(repo, "src/ExoMonad/Effect/Log.hs", "module Log where\n",
                        CITE + "log less.")
    problems = check_proposed_changes(make_ctx(), proposed([change]))
    assert problems == [
        '"src/ExoMonad/Effect/Log.hs" is under the forbidden path "src/ExoMonad/Effect/" '
        f"({REFINER}.forbidden_paths); leave it unchanged."
    ]


def test_forbidden_path_of_the_target_mgt_toml(make_ctx: MakeCtx, repo: Path) -> None:
    text = (repo / "src/dmgraph/core/dsl.py").read_text().replace(
        'KINDS = ("llm", "logic", "tool")', 'KINDS = ("llm", "logic")')
    change = add_change(repo, "src/dmgraph/core/dsl.py", text, CITE + "fewer kinds.")
    problems = check_proposed_changes(make_ctx(), proposed([change]))
    assert problems == [
        '"src/dmgraph/core/dsl.py" is under the forbidden path "src/dmgraph/core/" '
        "(mgt.toml [evolve].forbidden_paths); leave it unchanged."
    ]


@pytest.mark.parametrize("path", ["dm-graph.cabal", "nested/deep/x.cabal", "flake.nix",
                                  "deploy/wrangler.toml"])
def test_forbidden_globs_of_the_formula(make_ctx: MakeCtx, repo: Path, path: str) -> None:
    change = add_change(repo, path, "name: x\n", CITE + "config.")
    problems = check_proposed_changes(make_ctx(), proposed([change]))
    glob = "*.cabal" if path.endswith(".cabal") else path
    assert problems == [
        f'"{path}" matches the forbidden pattern "{glob}" (refine formula '
        "[validation].forbidden_changes); leave it unchanged."
    ]


def test_a_glob_needs_the_whole_name(make_ctx: MakeCtx, repo: Path) -> None:
    change = add_change(repo, "docs/cabal-notes.md", "notes\n", CITE + "docs.")
    assert check_proposed_changes(make_ctx(), proposed([change])) == []


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "is absolute; give paths relative to the repository root"),
        ("../outside.txt", 'goes outside the repository (".." is not allowed)'),
        ("templates/../../x", 'goes outside the repository (".." is not allowed)'),
        (".git/hooks/pre-commit", "is inside .git/, which is never changed"),
    ],
)
def test_unsafe_change_paths(make_ctx: MakeCtx, path: str, why: str) -> None:
    change = {"path": path, "diff": f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n",
              "rationale": CITE + "x"}
    assert check_proposed_changes(make_ctx(), proposed([change])) == [
        f'change 1: path "{path}" {why}.'
    ]


def test_a_diff_smuggling_another_path(make_ctx: MakeCtx) -> None:
    change = {"path": "templates/dm_scene.jinja",
              "diff": "--- a/../../etc/x\n+++ b/../../etc/x\n@@ -1 +1 @@\n-a\n+b\n",
              "rationale": CITE + "x"}
    assert check_proposed_changes(make_ctx(), proposed([change])) == [
        'change 1 (templates/dm_scene.jinja): the diff changes "../../etc/x", which goes '
        'outside the repository (".." is not allowed).'
    ]


def test_diff_path_must_match_the_change_path(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["changes"][0]["path"] = "templates/dm_summary.jinja"
    assert check_proposed_changes(make_ctx(), proposal) == [
        'change 1 (templates/dm_summary.jinja): the diff changes "templates/dm_scene.jinja", '
        'not "templates/dm_summary.jinja"; a change\'s diff must change exactly the file '
        "named in its path."
    ]


def test_one_change_one_file(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    both = proposal["changes"][0]["diff"] + proposal["changes"][1]["diff"]
    change = {"path": "templates/dm_scene.jinja", "diff": both, "rationale": CITE + "x"}
    assert check_proposed_changes(make_ctx(), proposed([change])) == [
        "change 1 (templates/dm_scene.jinja): the diff changes 2 files "
        "(templates/dm_scene.jinja, graph/dm.graph); give each file its own change."
    ]


def test_symlinks_and_binaries_are_refused(make_ctx: MakeCtx) -> None:
    link = {"path": "l", "diff": "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n"
            "+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n", "rationale": CITE + "x"}
    binary = {"path": "i.png", "diff": "diff --git a/i.png b/i.png\nBinary files a/i.png and "
              "b/i.png differ\n", "rationale": CITE + "x"}
    assert check_proposed_changes(make_ctx(), proposed([link, binary])) == [
        "change 1 (l): file mode 120000 is not allowed (only regular files, 100644 or 100755).",
        "change 2 (i.png): binary patches are not accepted; change text files only.",
    ]


# --------------------------------------------------------------------------- diffs


def test_a_diff_that_does_not_apply(
    make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path
) -> None:
    proposal["changes"][0]["diff"] = proposal["changes"][0]["diff"].replace(
        " {{ scene_description }}", " {{ scene_summary }}")
    problems = check_proposed_changes(make_ctx(), proposal)
    assert problems == [
        "change 1 (templates/dm_scene.jinja): the diff does not apply to the target repository "
        "at main: git apply --check says: error: patch failed: templates/dm_scene.jinja:8; "
        "error: templates/dm_scene.jinja: patch does not apply"
    ]
    assert_clean(repo)


def test_changes_that_apply_alone_but_not_together(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    twice = proposed([proposal["changes"][0], dict(proposal["changes"][0])],
                     ["slow-llm-dmscene"])
    twice["changes"][0]["rationale"] = twice["changes"][1]["rationale"] = "slow-llm-dmscene"
    assert check_proposed_changes(make_ctx(), twice) == [
        "The changes do not apply together to the target repository at main: git apply "
        "--check says: error: patch failed: templates/dm_scene.jinja:8; error: "
        "templates/dm_scene.jinja: patch does not apply"
    ]


def test_not_a_unified_diff(make_ctx: MakeCtx) -> None:
    change = {"path": "templates/dm_scene.jinja", "diff": "Remove the faction history.",
              "rationale": CITE + "x"}
    assert check_proposed_changes(make_ctx(), proposed([change])) == [
        "change 1 (templates/dm_scene.jinja): the diff is not a unified diff: no ---/+++ file "
        "headers found (not a unified diff) (line 1 of the diff)."
    ]


def test_line_counts_must_agree_with_the_diff(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["changes"][0]["lines_removed"] = 6
    proposal["changes"][1]["lines_added"] = 3
    assert check_proposed_changes(make_ctx(), proposal) == [
        "change 1 (templates/dm_scene.jinja): lines_removed is 6 but the diff removes 7 lines.",
        "change 2 (graph/dm.graph): lines_added is 3 but the diff adds 1 line.",
    ]


def test_empty_changes(make_ctx: MakeCtx) -> None:
    assert check_proposed_changes(make_ctx(), proposed([], ["slow-llm-dmscene"])) == [
        "changes is empty: propose at least one change, each with a path, a unified diff and "
        "a rationale."
    ]


# --------------------------------------------------------------------------- citations

KNOWN = ("slow-llm-dmscene, failed-transition-dmaction-dmerror, "
         "repeated-error-failed-to-parse-scenenarrative-missing-field-mood-at-offset, "
         "token-bloat-dmscene, slow-llm-dmaftermath, failed-transition-dmscene-dmerror, "
         "dead-path-dmlegacyrecap")


def test_citing_a_pattern_that_does_not_exist(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["patterns_addressed"] = ["slow-llm-dmscene", "slow-llm-dmintake"]
    assert check_proposed_changes(make_ctx(), proposal) == [
        'patterns_addressed cites "slow-llm-dmintake", which is not a pattern id in the '
        f"analysis (the `patterns` input); known ids: {KNOWN}."
    ]


def test_every_rationale_cites_a_pattern(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["changes"][1]["rationale"] = "Keeps the graph consistent with the template."
    assert check_proposed_changes(make_ctx(), proposal) == [
        "change 2 (graph/dm.graph): the rationale cites no pattern id from the analysis; name "
        f"the pattern it addresses (one of: {KNOWN}) ({REFINER}.require_pattern_link)."
    ]


def test_a_prefix_of_an_id_is_not_a_citation(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["changes"][1]["rationale"] = "Follows slow-llm-dmscenes and token-bloat."
    assert len(check_proposed_changes(make_ctx(), proposal)) == 1


def test_patterns_addressed_empty(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["patterns_addressed"] = []
    assert check_proposed_changes(make_ctx(), proposal) == [
        "patterns_addressed is empty; every change must trace to a pattern id from the analysis "
        f"(known ids: {KNOWN}) ({REFINER}.require_pattern_link)."
    ]


def test_without_an_analysis_citations_cannot_be_checked(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    assert check_proposed_changes(make_ctx(with_report=False), proposal) == [
        "No PatternReport is available (bind it as the `patterns` input), so pattern citations "
        f"cannot be checked ({REFINER}.require_pattern_link)."
    ]


def test_the_analysis_from_an_earlier_state_or_a_file(
    make_ctx: MakeCtx, proposal: dict[str, Any], report: dict[str, Any], tmp_path: Path
) -> None:
    assert check_proposed_changes(
        make_ctx(with_report=False, outputs={"analyze": report}), proposal) == []
    path = tmp_path / "patterns.json"
    path.write_text(json.dumps(report))
    assert check_proposed_changes(make_ctx({"patterns": str(path)}), proposal) == []


def test_expected_impact_is_required_by_the_formula(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    del proposal["expected_impact"]
    assert check_proposed_changes(make_ctx(), proposal) == [
        "expected_impact is missing; say which metrics should improve, each with its before "
        "value and after_estimate (refine formula [guardrails].require_expected_improvement)."
    ]


def test_all_problems_are_reported_at_once(make_ctx: MakeCtx, proposal: dict[str, Any]) -> None:
    proposal["patterns_addressed"] = ["made-up"]
    proposal["changes"][0]["lines_removed"] = 1
    del proposal["expected_impact"]
    assert len(check_proposed_changes(make_ctx(), proposal)) == 3


# --------------------------------------------------------------------------- validation


def test_must_pass_failure_in_the_worktree(make_ctx: MakeCtx, proposal: dict[str, Any],
                                           repo: Path) -> None:
    # Only the template change: the graph still declares the input the template dropped.
    proposal["changes"] = proposal["changes"][:1]
    ctx = make_ctx()
    problems = check_proposed_changes(ctx, proposal)
    assert len(problems) == 1
    assert problems[0].startswith(
        "must_pass command `PYTHONPATH=src python3 -m dmgraph.build` failed with exit code 1 in "
        "a scratch worktree with the diff applied (mgt.toml [evolve].must_pass); its output "
        "ends with:\n"
    )
    assert ("error: graph/dm.graph:13: node dmScene: declares input full_faction_history that "
            "templates/dm_scene.jinja never uses") in problems[0]
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert [r["ok"] for r in record["validation"]["runs"]] == [False]  # stops at the first
    assert_clean(repo)
    assert (repo / "templates/dm_scene.jinja").read_text().count("full_faction_history") == 1


def test_must_pass_timeout(make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path) -> None:
    (repo / "mgt.toml").write_text(
        '[evolve]\nmust_pass = ["echo started; sleep 30"]\ntimeout = "1s"\n')
    run_git(repo, "commit", "-qam", "slow check")
    problems = check_proposed_changes(make_ctx(), proposal)
    assert problems == [
        "must_pass command `echo started; sleep 30` timed out after 1s in a scratch worktree "
        "with the diff applied (mgt.toml [evolve].must_pass); its output ends with:\nstarted"
    ]
    assert_clean(repo)


def test_without_mgt_toml_the_formula_commands_run(
    make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path
) -> None:
    run_git(repo, "rm", "-q", "mgt.toml")
    run_git(repo, "commit", "-qm", "no mgt.toml")
    problems = check_proposed_changes(make_ctx(), proposal)
    assert len(problems) == 1
    assert problems[0].startswith(
        "must_pass command `cabal build` failed with exit code 127 in a scratch worktree with "
        "the diff applied (refine formula [validation].must_pass)"
    )


def test_must_pass_does_not_run_when_a_guardrail_failed(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    proposal["patterns_addressed"] = ["made-up"]
    ctx = make_ctx()
    assert len(check_proposed_changes(ctx, proposal)) == 1
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert record["validation"]["runs"] == []
    assert record["validation"]["skipped"] == "the changes broke guardrails; must_pass not run"


def test_dry_run_checks_everything_but_must_pass(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    proposal["changes"] = proposal["changes"][:1]  # would fail the build
    ctx = make_ctx({"dry_run": True})
    assert check_proposed_changes(ctx, proposal) == []
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert record["validation"]["skipped"] == "the dry_run input is true; must_pass not run"


def test_validation_uses_the_base_branch_not_the_dirty_working_tree(
    make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path
) -> None:
    (repo / "templates/dm_scene.jinja").write_text("edited by a human, not committed\n")
    assert check_proposed_changes(make_ctx(), proposal) == []
    assert (repo / "templates/dm_scene.jinja").read_text() == "edited by a human, not committed\n"


def test_base_branch_falls_back_to_the_current_branch(
    make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path
) -> None:
    run_git(repo, "branch", "-m", "main", "trunk")
    (repo / "mgt.toml").write_text((repo / "mgt.toml").read_text().replace(
        'base_branch = "main"\n', ""))
    run_git(repo, "commit", "-qam", "no base")
    ctx = make_ctx()
    assert check_proposed_changes(ctx, proposal) == []
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert record["base"] == "trunk"
    assert record["notes"] == [f"base branch 'main' does not exist in {repo}; using the "
                               "current branch 'trunk' instead"]


# --------------------------------------------------------------------------- bad targets


def test_target_that_is_not_a_git_repository(make_ctx: MakeCtx, proposal: dict[str, Any],
                                             tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(EvolveError, match="is not a git repository"):
        check_proposed_changes(make_ctx(repo_path=plain), proposal)


def test_target_inside_another_repository(make_ctx: MakeCtx, proposal: dict[str, Any],
                                          repo: Path) -> None:
    with pytest.raises(EvolveError, match="is not the root of a git repository"):
        check_proposed_changes(make_ctx(repo_path=repo / "templates"), proposal)


def test_malformed_mgt_toml(make_ctx: MakeCtx, proposal: dict[str, Any], repo: Path) -> None:
    (repo / "mgt.toml").write_text("[evolve]\nmust_pass = 'make'\n")
    with pytest.raises(EvolveError, match=r"mgt.toml: \[evolve\].must_pass: must be a list"):
        check_proposed_changes(make_ctx(), proposal)


def test_not_an_object(make_ctx: MakeCtx) -> None:
    assert check_proposed_changes(make_ctx(), ["x"]) == [
        "The output is not a ProposedChanges object."]
