"""The evolve cycle through the real program: `python -m mgt exec` on recorded answers (replay).

A machine of the evolve cycle's shape (scratch copy → analyze → refine → open
the PR) runs as a user would run it; the analysis is a recorded answer so the
test depends only on the evolve pieces. The refine answers are the bundled
samples in examples/responses/.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.evolve.conftest import DATA, RESPONSES, ROOT, TARGET, run_git

MACHINE = """\
machine evolve_replay "the evolve cycle on recorded answers"

import polecats from "{root}/polecats"
import formulas from "{root}/formulas"
import schemas from "{root}/schemas"

input repo: path = "{target}"
input forge: enum("local", "github") = "local"

state prepare_repo:
    run builtin scratch-repo
    with repo = input.repo
    on done -> analyze

state analyze:
    run formula analyze
    with since = 24h
    on done -> refine

state refine:
    run formula refine
    with patterns = analyze.output
    retry 1 on schema_invalid, guardrail with feedback
    on done -> open_pr
    on guardrail -> failed

state open_pr:
    run builtin open-pr
    with changes = refine.output, evidence = analyze.output, forge = input.forge
    output PRResult
    on done -> filed
    on guardrail -> failed

final filed: succeed "pull request filed"
final failed: fail
"""


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def replay_dir(tmp_path: Path, refine: dict[str, Path]) -> Path:
    """Recorded answers: the analysis (as a Claude Code result) and the given refine files."""
    directory = tmp_path / "answers"
    directory.mkdir()
    report = json.loads((DATA / "patterns.json").read_text())
    analyze = copy.deepcopy(json.loads((RESPONSES / "refine.json").read_text()))
    analyze.update(structured_output=report, result=json.dumps(report), total_cost_usd=0.0021)
    (directory / "analyze.json").write_text(json.dumps(analyze))
    for name, source in refine.items():
        shutil.copy(source, directory / name)
    return directory


def run_machine(tmp_path: Path, answers: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    machine = tmp_path / "evolve_replay.mgt"
    machine.write_text(MACHINE.format(root=ROOT, target=TARGET))
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", str(machine), "--executor", "replay",
         "--replay-dir", str(answers), "--runs-dir", str(runs), "--json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )
    return proc, runs


def events(runs: Path, run_id: str) -> list[dict[str, Any]]:
    lines = (runs / run_id / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_cycle_files_a_pr_in_a_scratch_copy(tmp_path: Path) -> None:
    before = tree_digest(TARGET)
    proc, runs = run_machine(tmp_path, replay_dir(tmp_path, {"refine.json":
                                                             RESPONSES / "refine.json"}))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "succeeded" and summary["final"] == "filed"
    assert summary["path"] == ["prepare_repo", "analyze", "refine", "open_pr", "filed"]
    pr = summary["outputs"]["open_pr"]
    copy_dir = Path(summary["outputs"]["prepare_repo"]["repo"])
    assert copy_dir == runs / summary["run_id"] / "target"
    assert run_git(copy_dir, "rev-parse", pr["branch_name"]).strip() == pr["commit_sha"]
    assert re.fullmatch(r"sleeptime/\d{4}-\d{2}-\d{2}-mixed-patterns", pr["branch_name"])
    assert pr["pr_url"] == (copy_dir / ".git/mgt/prs/1.json").as_uri()
    # The refine tokens and dollars are the sample answer's; the sample target is untouched.
    assert summary["cost_usd"] == pytest.approx(0.0021 + 0.014002)
    assert tree_digest(TARGET) == before
    guardrails = json.loads(
        (runs / summary["run_id"] / "states/refine/1/guardrails.json").read_text())
    assert guardrails["accepted"] is True and guardrails["repo"] == str(copy_dir)
    prompt = (runs / summary["run_id"] / "states/refine/1/prompt.md").read_text()
    assert f"## Target repository\n\nYour changes are for the git repository at `{copy_dir}`" \
        in prompt


def test_a_forbidden_change_is_retried_with_feedback(tmp_path: Path) -> None:
    answers = replay_dir(tmp_path, {"refine.1.json": RESPONSES / "retry/refine.1.json",
                                    "refine.2.json": RESPONSES / "retry/refine.2.json"})
    proc, runs = run_machine(tmp_path, answers)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    run_id = summary["run_id"]
    feedback = ('"src/dmgraph/core/dsl.py" is under the forbidden path "src/dmgraph/core/" '
                "(mgt.toml [evolve].forbidden_paths); leave it unchanged.")
    finished = [e for e in events(runs, run_id)
                if e["type"] == "attempt_finished" and e["state"] == "refine"]
    assert [e["outcome"] for e in finished] == ["guardrail", "done"]
    assert finished[0]["problems"] == [feedback]
    assert feedback in (runs / run_id / "states/refine/2/prompt.md").read_text()
    assert summary["outputs"]["open_pr"]["files_changed"] == [
        "graph/dm.graph", "templates/dm_scene.jinja"]


def test_a_change_that_breaks_the_build_fails_the_run(tmp_path: Path) -> None:
    broken = json.loads((RESPONSES / "refine.json").read_text())
    broken["structured_output"]["changes"] = broken["structured_output"]["changes"][:1]
    broken["result"] = json.dumps(broken["structured_output"])
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    proc, runs = run_machine(tmp_path, replay_dir(tmp_path, {"refine.json":
                                                             tmp_path / "broken.json"}))
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["final"] == "failed"
    assert summary["path"] == ["prepare_repo", "analyze", "refine", "failed"]
    finished = [e for e in events(runs, summary["run_id"])
                if e["type"] == "attempt_finished" and e["state"] == "refine"]
    assert [e["outcome"] for e in finished] == ["guardrail", "guardrail"]
    assert "declares input full_faction_history that templates/dm_scene.jinja never uses" \
        in finished[-1]["problems"][0]
    copy_dir = runs / summary["run_id"] / "target"
    assert run_git(copy_dir, "branch", "--list", "sleeptime/*") == ""
