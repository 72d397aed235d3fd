"""Evolve test fixtures: a real git copy of the sample target, the sample analysis, contexts."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mgt.defs.formula import Formula, load_formula
from mgt.defs.polecat import Polecat, load_polecat
from mgt.defs.schemas import SchemaRegistry
from mgt.evolve.target import scratch_copy
from mgt.runtime.context import StepContext
from tests.fakes.claude_cli import claude_cli, messages_server  # noqa: F401  (e2e fixtures)

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
TARGET = ROOT / "examples" / "target"
RESPONSES = ROOT / "examples" / "responses"


def run_git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git repository holding examples/target (one commit on main)."""
    return scratch_copy(TARGET, tmp_path / "target")


@pytest.fixture(scope="session")
def report() -> dict[str, Any]:
    """The analyzer's PatternReport of examples/logs (with --nodes), as recorded."""
    data: dict[str, Any] = json.loads((DATA / "patterns.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def sample_answer() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESPONSES / "refine.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def proposal(sample_answer: dict[str, Any]) -> dict[str, Any]:
    """The sample refine answer's ProposedChanges (a deep copy: tests edit it)."""
    return copy.deepcopy(sample_answer["structured_output"])


@pytest.fixture(scope="session")
def refiner() -> Polecat:
    return load_polecat(ROOT / "polecats" / "conditional-refiner.toml")


@pytest.fixture(scope="session")
def refine_formula() -> Formula:
    return load_formula(ROOT / "formulas" / "refine.formula.toml")


@pytest.fixture(scope="session")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load_dir(ROOT / "schemas")


MakeCtx = Callable[..., StepContext]


@pytest.fixture
def make_ctx(tmp_path: Path, repo: Path, report: dict[str, Any]) -> MakeCtx:
    """A StepContext for the target copy; keyword arguments override fields or bindings."""

    def make(
        bindings: dict[str, Any] | None = None,
        *,
        state: str = "refine",
        repo_path: Path | None = None,
        with_report: bool = True,
        **fields: Any,
    ) -> StepContext:
        bound = {"patterns": report} if with_report else {}
        bound.update(bindings or {})
        values: dict[str, Any] = {
            "run_id": "test-run",
            "run_dir": tmp_path / "run",
            "attempt_dir": tmp_path / "run" / "states" / state / "1",
            "state": state,
            "attempt": 1,
            "machine_inputs": {"repo": str(repo_path or repo)},
            "bindings": bound,
            "outputs": {},
            "cwd": tmp_path,
        }
        values.update(fields)
        return StepContext(**values)

    return make


def add_change(repo: Path, path: str, text: str | None, rationale: str) -> dict[str, Any]:
    """A change made for real in `repo` and undone: its git diff, path and rationale.

    `text` None deletes the file. The repository is left as it was.
    """
    file = repo / path
    existed = file.exists()
    if text is None:
        file.unlink()
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    if not existed:
        run_git(repo, "add", "--intent-to-add", path)
    diff = run_git(repo, "diff", "--", path)
    if existed:
        run_git(repo, "checkout", "--", path)
    else:
        run_git(repo, "rm", "--cached", "--quiet", path)
        file.unlink()
    return {"path": path, "diff": diff, "rationale": rationale}


def proposed(changes: list[dict[str, Any]], ids: list[str] | None = None) -> dict[str, Any]:
    """A ProposedChanges around `changes`."""
    return {
        "changes": changes,
        "patterns_addressed": ids if ids is not None else ["token-bloat-dmscene"],
        "validation": {"build_success": True, "test_success": True},
        "expected_impact": {
            "metrics": [{"metric": "dmScene_prompt_tokens", "before": 6494,
                         "after_estimate": "3000-3600"}],
        },
    }
