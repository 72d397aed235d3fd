"""The bundled target builds and tests itself; scratch copies; mgt.toml; the sample answer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgt.defs.schemas import SchemaRegistry
from mgt.errors import EvolveError
from mgt.evolve.builtins import apply_diff, scratch_repo
from mgt.evolve.commands import run_command, tail
from mgt.evolve.guardrails import check_proposed_changes
from mgt.evolve.target import load_target_config, scratch_copy
from mgt.runtime.context import GuardrailFailure
from tests.evolve.conftest import ROOT, TARGET, MakeCtx, run_git

# --------------------------------------------------------------------------- the sample target


def test_scratch_copy_is_a_clean_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(TARGET, plain)
    (plain / "src" / "__pycache__").mkdir()
    (plain / "src" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    repo = scratch_copy(plain, tmp_path / "copy")
    assert run_git(repo, "status", "--porcelain") == ""
    assert run_git(repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert run_git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    tracked = run_git(repo, "ls-files").split()
    assert "graph/dm.graph" in tracked and "mgt.toml" in tracked
    assert not any("__pycache__" in p for p in tracked)


def test_scratch_copy_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(EvolveError, match="already exists and is not empty"):
        scratch_copy(TARGET, tmp_path / "busy")
    with pytest.raises(EvolveError, match="is not a directory"):
        scratch_copy(tmp_path / "missing", tmp_path / "d")


def test_the_target_must_pass_commands_pass_as_shipped(repo: Path) -> None:
    config = load_target_config(repo)
    assert config.must_pass == ("PYTHONPATH=src python3 -m dmgraph.build",
                                "PYTHONPATH=src python3 -m unittest -q")
    runs = [run_command(c, repo, config.timeout_seconds) for c in config.must_pass]
    assert [r.exit_code for r in runs] == [0, 0], [r.output_tail for r in runs]
    assert "build ok" in runs[0].output_tail
    assert "warning: graph/dm.graph:19: node dmLegacyRecap is unreachable" in runs[0].output_tail
    assert runs[1].output_tail.rstrip().endswith("OK")


def test_the_target_build_catches_a_dangling_edge(repo: Path) -> None:
    graph = repo / "graph" / "dm.graph"
    graph.write_text(graph.read_text() + "edge dmSummary -> dmEpilogue on success\n")
    run = run_command("PYTHONPATH=src python3 -m dmgraph.build", repo, 60)
    assert run.exit_code == 1
    assert "edge dmSummary -> dmEpilogue: no node named dmEpilogue" in run.output_tail


def test_the_sample_logs_point_at_the_target_graph() -> None:
    nodes = [line.split("#")[0].strip() for line in
             (ROOT / "examples/logs/nodes.txt").read_text().splitlines()]
    graph = (TARGET / "graph/dm.graph").read_text()
    for node in filter(None, nodes):
        assert f"\nnode {node} " in graph


# --------------------------------------------------------------------------- mgt.toml


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[evolve\n", "mgt.toml:1:8: invalid TOML"),
        ("evolve = 3\n", "mgt.toml: [evolve] must be a table"),
        ("[evolve]\nmust_pas = []\n", "mgt.toml: [evolve].must_pas: unknown key"),
        ("[evolve]\nmust_pass = [\"\"]\n", "[evolve].must_pass: must be a list of non-empty"),
        ("[evolve]\ntimeout = \"soon\"\n", "mgt.toml: [evolve].timeout:"),
        ("[evolve]\ntimeout = 0\n", "[evolve].timeout: must be more than zero"),
        ("[evolve]\nbase_branch = 1\n", "[evolve].base_branch: must be a non-empty string"),
    ],
)
def test_malformed_mgt_toml(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mgt.toml").write_text(text)
    with pytest.raises(EvolveError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_target_config(tmp_path)


def test_mgt_toml_durations_and_absence(tmp_path: Path) -> None:
    assert load_target_config(tmp_path).must_pass is None
    (tmp_path / "mgt.toml").write_text('[evolve]\ntimeout = "2m"\nmust_pass = []\n')
    config = load_target_config(tmp_path)
    assert config.timeout_seconds == 120 and config.must_pass == ()


def test_output_tail_is_bounded() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    kept = tail(text)
    assert kept.splitlines()[-1] == "line 9999" and len(kept.splitlines()) == 40
    assert len(tail("x" * 100_000)) <= 6000


# --------------------------------------------------------------------------- builtins


def test_apply_diff_is_a_dry_run(make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any]) -> None:
    out = apply_diff(make_ctx({"changes": proposal}, state="dry_run"))
    assert out["applies"] is True and out["lines_removed"] == 8 and out["lines_added"] == 1
    assert [r["ok"] for r in out["validation"]["runs"]] == [True, True]
    assert run_git(repo, "status", "--porcelain") == ""
    assert run_git(repo, "branch", "--list").split() == ["*", "main"]
    proposal["changes"] = proposal["changes"][:1]
    with pytest.raises(GuardrailFailure, match=re.escape(
        "must_pass command `PYTHONPATH=src python3 -m dmgraph.build` failed with exit code 1"
    )):
        apply_diff(make_ctx({"changes": proposal}, state="dry_run"))


def test_prepare_repo_copies_plain_dirs_and_uses_repositories_in_place(
    make_ctx: MakeCtx, repo: Path, tmp_path: Path
) -> None:
    ctx = make_ctx({"repo": str(TARGET)}, state="prepare")
    out = scratch_repo(ctx)
    assert out["repo"] == str((ctx.run_dir / "target").absolute())
    assert out["base_branch"] == "main"
    assert run_git(Path(out["repo"]), "status", "--porcelain") == ""
    assert out["scratch"] is True
    assert scratch_repo(ctx) == out  # a resumed run reuses its copy

    in_place = scratch_repo(make_ctx({"repo": str(repo)}, state="prepare",
                                     run_dir=tmp_path / "run2"))
    assert in_place["commit"] == run_git(repo, "rev-parse", "HEAD").strip()
    assert Path(in_place["repo"]) == repo.resolve()
    assert (in_place["worktrees"], in_place["scratch"]) == (True, False)
    assert not (tmp_path / "run2" / "target").exists()  # no clone, no copy


# --------------------------------------------------------------------------- sample answer


def test_the_sample_refine_answer_is_a_claude_code_result(
    sample_answer: dict[str, Any], schemas: SchemaRegistry
) -> None:
    assert sample_answer["type"] == "result" and sample_answer["subtype"] == "success"
    assert sample_answer["is_error"] is False and sample_answer["num_turns"] == 2
    assert json.loads(sample_answer["result"]) == sample_answer["structured_output"]
    assert schemas.validate("ProposedChanges", sample_answer["structured_output"]) == []
    usage = sample_answer["usage"]
    # Haiku 4.5: $1 per million input tokens, $5 per million output tokens.
    expected = usage["input_tokens"] / 1e6 + usage["output_tokens"] * 5 / 1e6
    assert sample_answer["total_cost_usd"] == pytest.approx(expected, abs=1e-6)
    [model] = sample_answer["modelUsage"]
    assert model.startswith("claude-haiku-4-5")


def test_the_sample_answer_passes_against_the_live_analysis(
    make_ctx: MakeCtx, proposal: dict[str, Any]
) -> None:
    """The analyzer's report of the sample logs, computed now, is what the answer cites."""
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "analyze", "--source",
         str(ROOT / "examples/logs/tidepool-events.jsonl"), "--nodes",
         str(ROOT / "examples/logs/nodes.txt"), "--json"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    live = json.loads(proc.stdout)
    by_id = {p["id"]: p for p in live["patterns"]}
    assert set(proposal["patterns_addressed"]) <= set(by_id)
    figures = {m["metric"]: m["before"] for m in proposal["expected_impact"]["metrics"]}
    assert figures["dmScene_latency_ms"] == round(by_id["slow-llm-dmscene"]["details"]
                                                  ["mean_latency_ms"])
    assert figures["dmScene_prompt_tokens"] == round(by_id["slow-llm-dmscene"]["details"]
                                                     ["prompt_tokens_avg"])
    assert check_proposed_changes(make_ctx({"patterns": live}), proposal) == []


def test_later_steps_work_on_the_scratch_copy(
    make_ctx: MakeCtx, proposal: dict[str, Any], report: dict[str, Any]
) -> None:
    """The refine formula takes no `repo`: its guardrails find the copy the run made."""
    prepared = scratch_repo(make_ctx({"repo": str(TARGET)}, state="prepare"))
    ctx = make_ctx(outputs={"prepare": prepared, "analyze": report},
                   machine_inputs={"repo": str(TARGET)})
    assert check_proposed_changes(ctx, proposal) == []
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    assert record["repo"] == prepared["repo"]
    # Without the copy, the plain sample directory is refused, not modified.
    with pytest.raises(EvolveError, match=r"is not (the root of )?a git repository"):
        check_proposed_changes(make_ctx(machine_inputs={"repo": str(TARGET)}), proposal)


def test_only_a_prepare_repo_output_names_the_target(
    make_ctx: MakeCtx, repo: Path, tmp_path: Path
) -> None:
    """A model's output (an analysis) carrying "repo" and a mark does not redirect the steps
    after it; prepare-repo's own output does."""
    from mgt.evolve.settings import target_repo

    prepared = scratch_repo(make_ctx({"repo": str(repo)}, state="prepare"))
    hostile = {"summary": {"total_patterns": 1}, "patterns": [], "repo": str(tmp_path),
               "worktrees": True, "scratch": True}
    ctx = make_ctx(outputs={"prepare_repo": prepared, "analyze": hostile},
                   machine_inputs={"repo": str(tmp_path / "elsewhere")})
    assert target_repo(ctx) == repo.resolve()
