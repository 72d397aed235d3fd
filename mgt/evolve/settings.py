"""StepContext (polecat, formula, bindings, target mgt.toml) → effective evolve settings.

Each limit keeps the name of the file and key it came from, because a guardrail
message must say which rule was broken ("the limit is 5 (conditional-refiner
[guardrails].max_files_changed)"). When several sources set the same limit, the
smallest wins.

A state that produces a ProposedChanges without a polecat or formula (a
`run command`, a replayed answer in a test) is held to the bundled
conditional-refiner polecat and refine formula: the output contract belongs to
them, and a guardrail that silently vanishes is worse than a strict default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.errors import EvolveError
from mgt.evolve.target import TargetConfig, load_target_config

if TYPE_CHECKING:
    from mgt.defs.formula import Formula
    from mgt.defs.polecat import Polecat
    from mgt.runtime.context import StepContext

__all__ = [
    "EvolveSettings",
    "Limit",
    "Rule",
    "bundled_path",
    "evolve_settings",
    "find_pattern_report",
    "target_repo",
]

DEFAULT_MUST_PASS_SOURCE = "no must_pass commands configured"
#: The keys of a prepare-repo output (mgt.evolve.builtins), the only output that names the target.
_PREPARED_KEYS = frozenset({"repo", "scratch", "worktrees", "source", "base_branch", "commit"})


@dataclass(frozen=True)
class Limit:
    value: int
    source: str  # e.g. "conditional-refiner [guardrails].max_files_changed"


@dataclass(frozen=True)
class Rule:
    pattern: str  # a path prefix ("src/core/") or a glob ("*.cabal")
    source: str


@dataclass(frozen=True)
class EvolveSettings:
    repo: Path
    target: TargetConfig
    max_files: list[Limit] = field(default_factory=list)
    max_lines: list[Limit] = field(default_factory=list)
    max_lines_per_file: list[Limit] = field(default_factory=list)
    forbidden_paths: list[Rule] = field(default_factory=list)
    forbidden_globs: list[Rule] = field(default_factory=list)
    citation_required_by: str | None = None  # the key that requires pattern citations
    impact_required_by: str | None = None
    target_files: list[str] | None = None
    must_pass: tuple[str, ...] = ()
    must_pass_source: str = DEFAULT_MUST_PASS_SOURCE
    timeout_seconds: float = 300.0
    base_branch: str = "main"

    @staticmethod
    def tightest(limits: list[Limit]) -> Limit | None:
        return min(limits, key=lambda limit: limit.value) if limits else None


def bundled_path(relative: str) -> Path | None:
    """`polecats/NAME.toml`, `formulas/…`, `schemas/…` of the repository holding this package."""
    path = Path(__file__).resolve().parents[2] / relative
    return path if path.is_file() else None


def target_repo(ctx: StepContext) -> Path:
    """The target repository of this step.

    The `repo` binding; else the repository an earlier `prepare-repo` state
    chose (its output has `"scratch": true` for a copy, `"worktrees": true` for
    the user's repository used in place), so that every step of the run uses it
    even when, like the refine formula, it takes no `repo` input; else the
    `repo` run input; else the step's cwd.
    """
    value = ctx.bindings.get("repo")
    if not value:
        for output in reversed(list(ctx.outputs.values())):
            # Only an output of exactly prepare-repo's shape: a model's output (say, an
            # analysis) that adds "repo" and a mark must not redirect later steps.
            if isinstance(output, Mapping) and output.get("repo") \
                    and set(output) <= _PREPARED_KEYS and (
                output.get("scratch") is True or output.get("worktrees") is True
            ):
                value = output["repo"]
                break
    value = value or ctx.machine_inputs.get("repo")
    if value is None or value == "":
        return ctx.cwd
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (ctx.cwd / path)


def _bundled_definitions() -> tuple[Polecat | None, Formula | None]:
    from mgt.defs.formula import load_formula
    from mgt.defs.polecat import load_polecat

    polecat_path = bundled_path("polecats/conditional-refiner.toml")
    formula_path = bundled_path("formulas/refine.formula.toml")
    return (
        load_polecat(polecat_path) if polecat_path else None,
        load_formula(formula_path) if formula_path else None,
    )


def evolve_settings(ctx: StepContext, repo: Path | None = None) -> EvolveSettings:
    """Every guardrail and validation setting that applies to this step's ProposedChanges."""
    repo = repo if repo is not None else target_repo(ctx)
    target = load_target_config(repo)
    polecat, formula = ctx.polecat, ctx.formula
    if polecat is None and formula is None:
        polecat, formula = _bundled_definitions()

    max_files: list[Limit] = []
    max_lines: list[Limit] = []
    per_file: list[Limit] = []
    forbidden_paths: list[Rule] = []
    forbidden_globs: list[Rule] = []
    citation: str | None = None
    impact: str | None = None

    if polecat is not None:
        g = polecat.guardrails
        where = f"{polecat.name} [guardrails]"
        if g.max_files_changed is not None:
            max_files.append(Limit(g.max_files_changed, f"{where}.max_files_changed"))
        if g.max_lines_changed is not None:
            max_lines.append(Limit(g.max_lines_changed, f"{where}.max_lines_changed"))
        forbidden_paths += [Rule(p, f"{where}.forbidden_paths") for p in g.forbidden_paths]
        if g.require_pattern_link:
            citation = f"{where}.require_pattern_link"

    must_pass: tuple[str, ...] = ()
    must_pass_source = DEFAULT_MUST_PASS_SOURCE
    if formula is not None:
        fg = formula.guardrails
        where = f"{formula.name} formula [guardrails]"
        if fg.max_files_changed is not None:
            max_files.append(Limit(fg.max_files_changed, f"{where}.max_files_changed"))
        if fg.max_lines_changed is not None:
            max_lines.append(Limit(fg.max_lines_changed, f"{where}.max_lines_changed"))
        if fg.max_lines_per_file is not None:
            per_file.append(Limit(fg.max_lines_per_file, f"{where}.max_lines_per_file"))
        forbidden_paths += [Rule(p, f"{where}.forbidden_paths") for p in fg.forbidden_paths]
        if fg.require_pattern_citation and citation is None:
            citation = f"{where}.require_pattern_citation"
        if fg.require_expected_improvement:
            impact = f"{where}.require_expected_improvement"
        fv = formula.validation
        forbidden_globs += [
            Rule(p, f"{formula.name} formula [validation].forbidden_changes")
            for p in fv.forbidden_changes
        ]
        if fv.must_pass:
            must_pass = tuple(fv.must_pass)
            must_pass_source = f"{formula.name} formula [validation].must_pass"

    forbidden_paths += [
        Rule(p, "mgt.toml [evolve].forbidden_paths") for p in target.forbidden_paths
    ]
    forbidden_globs += [
        Rule(p, "mgt.toml [evolve].forbidden_changes") for p in target.forbidden_changes
    ]
    if target.must_pass is not None:
        must_pass = target.must_pass
        must_pass_source = "mgt.toml [evolve].must_pass"

    max_changes = ctx.bindings.get("max_changes")
    if isinstance(max_changes, int) and not isinstance(max_changes, bool):
        max_files.append(Limit(max_changes, "the max_changes input"))
    target_files = ctx.bindings.get("target_files")
    files_filter = (
        [str(p) for p in target_files]
        if isinstance(target_files, list | tuple) and target_files else None
    )
    return EvolveSettings(
        repo=repo,
        target=target,
        max_files=max_files,
        max_lines=max_lines,
        max_lines_per_file=per_file,
        forbidden_paths=forbidden_paths,
        forbidden_globs=forbidden_globs,
        citation_required_by=citation,
        impact_required_by=impact,
        target_files=files_filter,
        must_pass=must_pass,
        must_pass_source=must_pass_source,
        timeout_seconds=target.timeout_seconds,
        base_branch=target.base_branch or _formula_base_branch(formula) or "main",
    )


def _formula_base_branch(formula: Formula | None) -> str | None:
    if formula is not None and formula.git is not None:
        return formula.git.base_branch
    return None


def _as_report(value: Any, base: Path) -> dict[str, Any] | None:
    """A PatternReport from a bound value: the object itself, JSON text, or a JSON file path."""
    if isinstance(value, Mapping):
        patterns = value.get("patterns")
        return dict(value) if isinstance(patterns, list) else None
    if isinstance(value, str | Path):
        text = str(value).strip()
        if text.startswith("{"):
            try:
                return _as_report(json.loads(text), base)
            except json.JSONDecodeError:
                return None
        path = Path(text)
        path = path if path.is_absolute() else base / path
        if len(text) < 4096 and path.is_file():
            try:
                return _as_report(json.loads(path.read_text(encoding="utf-8")), base)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise EvolveError(f"cannot read the PatternReport {path}: {e}") from None
    return None


def find_pattern_report(ctx: StepContext) -> tuple[dict[str, Any], str] | None:
    """The analysis this step works from, and where it was found.

    The `patterns` binding (refine formula), else `evidence` (file-pr formula),
    else the latest output of an earlier state that is a PatternReport.
    """
    for name in ("patterns", "evidence"):
        if name in ctx.bindings:
            report = _as_report(ctx.bindings[name], ctx.cwd)
            if report is not None:
                return report, f"the `{name}` input"
    for state, output in reversed(list(ctx.outputs.items())):
        if isinstance(output, Mapping) and isinstance(output.get("summary"), Mapping):
            report = _as_report(output, ctx.cwd)
            if report is not None:
                return report, f"the output of state {state}"
    return None
