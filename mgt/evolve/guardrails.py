"""ProposedChanges + the target repository → problems, each one sentence of retry feedback.

The runtime does not trust the model. After a ProposedChanges passes its JSON
Schema, `check_proposed_changes` (OUTPUT_CHECKS["ProposedChanges"]) checks it
against the repository and the rules of the polecat, the formula and the
target's mgt.toml:

- paths are relative, stay inside the repository and out of `.git/`, hold no
  control character, and are not protected (`mgt.evolve.protected`: CI and
  automation config, git config, mgt's own settings, and the target's
  `[evolve].protected_paths`), on either side of a rename;
- each change's diff is a unified diff of exactly the file its `path` names,
  with no binary or symlink content, and `lines_added`/`lines_removed` agree;
- files, total lines and lines per file are within the limits;
- no path is under a forbidden path or matches a forbidden glob;
- patterns_addressed and every rationale cite pattern ids of the analysis;
- the expected impact is stated when the formula asks for it;
- every diff applies (`git apply --check`), alone and together;
- and, only when all of that holds (and the refine formula's `dry_run` input
  is not true), the `must_pass` commands pass in a scratch git worktree with
  the diff applied. The worktree is always removed.

Problems are returned (empty = accepted); the review, validation included, is
written to `guardrails.json` in the attempt directory for the run's record.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from mgt.evolve.commands import CommandRun, run_command
from mgt.evolve.diffs import DiffError, FileDiff, parse_diff, render_patch
from mgt.evolve.git import (
    GitFailure,
    git,
    repo_root,
    resolve_base,
    rev_parse,
    scratch_worktree,
)
from mgt.evolve.protected import control_character, protected_problem
from mgt.evolve.sandbox import require_sandbox, run_sandboxed, sandbox_label, sandbox_policy
from mgt.evolve.settings import EvolveSettings, evolve_settings, find_pattern_report, target_repo
from mgt.runtime.context import GuardrailFailure, StepContext

__all__ = [
    "Review",
    "check_proposed_changes",
    "cites",
    "matches_glob",
    "path_problem",
    "raise_first_failure",
    "review_changes",
    "run_must_pass",
    "under_path",
]

_ALLOWED_MODES = ("100644", "100755")


@dataclass
class Review:
    """What the guardrails found: problems, the parsed files, the validation runs."""

    problems: list[str] = field(default_factory=list)
    files: list[FileDiff] = field(default_factory=list)
    base: str | None = None
    base_commit: str | None = None
    notes: list[str] = field(default_factory=list)
    validation: list[CommandRun] = field(default_factory=list)
    validation_skipped: str | None = None
    sandbox: str | None = None  # how must_pass ran: "bubblewrap" or "none (opted out ...)"

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self, settings: EvolveSettings) -> dict[str, Any]:
        return {
            "accepted": self.ok,
            "problems": self.problems,
            "repo": str(settings.repo),
            "base": self.base,
            "base_commit": self.base_commit,
            "notes": self.notes,
            "files": [
                {"path": f.path, "added": f.added, "removed": f.removed} for f in self.files
            ],
            "limits": {
                "max_files": _limit_json(settings.tightest(settings.max_files)),
                "max_lines": _limit_json(settings.tightest(settings.max_lines)),
                "max_lines_per_file": _limit_json(settings.tightest(settings.max_lines_per_file)),
            },
            "validation": {
                "must_pass": list(settings.must_pass),
                "source": settings.must_pass_source,
                "skipped": self.validation_skipped,
                "sandbox": self.sandbox,
                "runs": [run.to_json() for run in self.validation],
            },
        }


def _limit_json(limit: Any) -> dict[str, Any] | None:
    return None if limit is None else {"value": limit.value, "source": limit.source}


def path_problem(path: str) -> str | None:
    """Why `path` may not be changed by a diff (None when it may)."""
    if not path.strip():
        return "is empty"
    code = control_character(path)
    if code is not None:
        return f"contains the control character {code}; no path may contain one"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        return "is absolute; give paths relative to the repository root"
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts:
        return 'goes outside the repository (".." is not allowed)'
    if ".git" in parts:
        return "is inside .git/, which is never changed"
    return None


def _normal(path: str) -> str:
    return str(PurePosixPath(path.replace("\\", "/"))).removeprefix("./")


def under_path(path: str, prefix: str) -> bool:
    """Is `path` the forbidden path `prefix`, or inside it (a glob prefix matches by glob)?"""
    if any(ch in prefix for ch in "*?["):
        return fnmatch.fnmatchcase(path, prefix) or fnmatch.fnmatchcase(path, prefix + "*")
    bare = _normal(prefix).rstrip("/")
    return path == bare or path.startswith(bare + "/")


def matches_glob(path: str, glob: str) -> bool:
    """Does `path` match a forbidden_changes glob?"""
    # As in .gitignore: a pattern without "/" matches the file name at any depth.
    if "/" not in glob.strip("/"):
        return fnmatch.fnmatchcase(PurePosixPath(path).name, glob) or fnmatch.fnmatchcase(
            path, glob
        )
    return fnmatch.fnmatchcase(path, glob.strip("/"))


def cites(text: str, pattern_id: str) -> bool:
    """Does `text` name `pattern_id` as a whole id (case-insensitively)?"""
    boundary = r"[A-Za-z0-9_-]"
    return re.search(
        rf"(?<!{boundary}){re.escape(pattern_id)}(?!{boundary})", text, re.IGNORECASE
    ) is not None


def _quote_git(error: GitFailure) -> str:
    lines = [line.strip() for line in error.stderr.splitlines() if line.strip()]
    return "; ".join(lines[:6]) or f"exit code {error.returncode}"


def _ids(report: Mapping[str, Any]) -> list[str]:
    return [
        str(p["id"]) for p in report.get("patterns", [])
        if isinstance(p, Mapping) and isinstance(p.get("id"), str)
    ]


def review_changes(
    output: Mapping[str, Any],
    settings: EvolveSettings,
    report: tuple[Mapping[str, Any], str] | None,
    progress: Callable[[str], None] = lambda _m: None,
    validate: bool = True,
) -> Review:
    """Every check of a ProposedChanges against `settings.repo` (see the module docstring)."""
    review = Review()
    problems = review.problems
    changes = [c for c in output.get("changes", []) if isinstance(c, Mapping)]
    if not changes:
        problems.append(
            "changes is empty: propose at least one change, each with a path, a unified diff "
            "and a rationale."
        )

    parsed: list[tuple[int, str, list[FileDiff]]] = []  # (number, label, files) that parsed
    for number, change in enumerate(changes, start=1):
        files = _check_change(number, change, problems, settings.target.protected_paths)
        if files is not None:
            parsed.append((number, _label(number, change), files))
            review.files.extend(files)

    _check_limits(review.files, settings, problems)
    _check_rules(review.files, settings, problems)
    _check_citations(output, changes, settings, report, problems)
    if settings.impact_required_by and not _has_impact(output.get("expected_impact")):
        problems.append(
            "expected_impact is missing; say which metrics should improve, each with its "
            f"before value and after_estimate ({settings.impact_required_by})."
        )

    base, note = resolve_base(settings.repo, settings.base_branch)
    review.base, review.base_commit = base, rev_parse(settings.repo, base)
    if note:
        review.notes.append(note)
    with scratch_worktree(settings.repo, base, prefix="mgt-validate-") as tree:
        applies = True
        for _number, label, files in parsed:
            try:
                git(tree, "apply", "--check", "-p1", "--whitespace=nowarn", "-",
                    input_text=render_patch(files))
            except GitFailure as e:
                applies = False
                problems.append(
                    f"{label}: the diff does not apply to the target repository at {base}: "
                    f"git apply --check says: {_quote_git(e)}"
                )
        if applies and len(parsed) > 1:
            try:
                git(tree, "apply", "--check", "-p1", "--whitespace=nowarn", "-",
                    input_text=render_patch(review.files))
            except GitFailure as e:
                problems.append(
                    f"The changes do not apply together to the target repository at {base}: "
                    f"git apply --check says: {_quote_git(e)}"
                )
        if problems:
            review.validation_skipped = "the changes broke guardrails; must_pass not run"
        elif not validate:
            review.validation_skipped = "the dry_run input is true; must_pass not run"
        elif not settings.must_pass:
            review.validation_skipped = settings.must_pass_source
        else:
            git(tree, "apply", "-p1", "--whitespace=nowarn", "-",
                input_text=render_patch(review.files))
            review.sandbox = sandbox_label(sandbox_policy(settings.target))
            review.validation = run_must_pass(settings, tree, progress)
            problems.extend(_validation_problems(review.validation, settings))
    return review


def run_must_pass(
    settings: EvolveSettings, tree: Path, progress: Callable[[str], None]
) -> list[CommandRun]:
    """The must_pass commands in order, stopping at the first failure, each in a sandbox.

    The commands run code the model wrote, so they run under bubblewrap (see
    mgt.evolve.sandbox); SandboxUnavailable when none can be made and the
    target's mgt.toml did not opt out with `[evolve] sandbox = "none"`.
    """
    policy = sandbox_policy(settings.target)
    bwrap = require_sandbox(policy) if settings.must_pass else None
    runs: list[CommandRun] = []
    for command in settings.must_pass:
        if bwrap is None:
            progress(f"validating: `{command}` in a scratch worktree, NOT sandboxed "
                     '(mgt.toml [evolve].sandbox = "none")')
            run = replace(run_command(command, tree, settings.timeout_seconds),
                          sandbox=sandbox_label(policy))
        else:
            progress(f"validating: `{command}` in a sandboxed scratch worktree")
            run = run_sandboxed(command, tree, settings.timeout_seconds, policy, bwrap)
        runs.append(run)
        if not run.ok:
            break
    return runs


def raise_first_failure(runs: Sequence[CommandRun], where: str, source: str) -> None:
    """GuardrailFailure naming the first must_pass command that did not pass, if any
    (`where`: "in a scratch worktree", "on branch B"; `source`: where the commands came from)."""
    failed = [r for r in runs if not r.ok]
    if failed:
        r = failed[0]
        how = "timed out" if r.timed_out else f"failed with exit code {r.exit_code}"
        raise GuardrailFailure([
            f"must_pass command `{r.command}` {how} {where} with the diff applied ({source}); "
            f"its output ends with:\n{r.output_tail}"
        ])


def _validation_problems(runs: Sequence[CommandRun], settings: EvolveSettings) -> list[str]:
    problems: list[str] = []
    for run in runs:
        if run.ok:
            continue
        why = f"; {run.limit}" if run.limit else ""
        # said up front here, so not again at the end of the tail
        output = run.output_tail.removesuffix(f"[sandbox: {run.limit}]").rstrip("\n")
        tail = f"; its output ends with:\n{output}" if output else "; it printed nothing"
        if run.timed_out:
            problems.append(
                f"must_pass command `{run.command}` timed out after "
                f"{settings.timeout_seconds:g}s in a scratch worktree with the diff applied "
                f"({settings.must_pass_source}){why}{tail}"
            )
        else:
            problems.append(
                f"must_pass command `{run.command}` failed with exit code {run.exit_code} in a "
                f"scratch worktree with the diff applied ({settings.must_pass_source}){why}{tail}"
            )
    return problems


def _quoted(text: str) -> str:
    """A string from the model as one JSON string literal: quotes, newlines and control
    characters escaped, so it cannot add lines (instructions) to the feedback quoting it."""
    return json.dumps(text, ensure_ascii=False)


def _label(number: int, change: Mapping[str, Any]) -> str:
    path = change.get("path")
    if not isinstance(path, str) or not path:
        return f"change {number}"
    return f"change {number} ({path if path.isprintable() else _quoted(path)})"


def _check_change(
    number: int, change: Mapping[str, Any], problems: list[str], protected: Sequence[str] = ()
) -> list[FileDiff] | None:
    label = _label(number, change)
    path = str(change.get("path", ""))
    why = path_problem(path)
    if why:
        problems.append(f"change {number}: path {_quoted(path)} {why}.")
        return None
    why = protected_problem(path, protected)
    if why:
        problems.append(f"change {number}: {why}")
        return None
    path = _normal(path)
    try:
        files = parse_diff(str(change.get("diff", "")))
    except DiffError as e:
        problems.append(
            f"{label}: the diff is not a unified diff: {e.reason} (line {e.line} of the diff)."
        )
        return None
    ok = True
    for fd in files:
        for p in fd.paths:
            why = path_problem(p)
            if why:
                problems.append(f"{label}: the diff changes {_quoted(p)}, which {why}.")
                ok = False
                continue
            why = protected_problem(p, protected)
            if why:  # both sides of a rename: nothing moves into or out of a protected path
                problems.append(f"{label}: {why}")
                ok = False
        if fd.binary:
            problems.append(f"{label}: binary patches are not accepted; change text files only.")
            ok = False
        for line in fd.extended:
            mode = line.rsplit(" ", 1)[-1]
            if mode not in _ALLOWED_MODES:
                problems.append(
                    f"{label}: file mode {mode} is not allowed (only regular files, "
                    f"{' or '.join(_ALLOWED_MODES)})."
                )
                ok = False
    if not ok:
        return None
    touched = list(dict.fromkeys(p for fd in files for p in fd.paths))
    if len(touched) > 1:
        problems.append(
            f"{label}: the diff changes {len(touched)} files ({', '.join(touched)}); give each "
            "file its own change."
        )
        return None
    if touched != [path]:
        problems.append(
            f'{label}: the diff changes "{touched[0]}", not {_quoted(path)}; a change\'s diff '
            "must change exactly the file named in its path."
        )
        return None
    added, removed = sum(f.added for f in files), sum(f.removed for f in files)
    counts = (("lines_added", added, "adds"), ("lines_removed", removed, "removes"))
    for key, counted, verb in counts:
        claimed = change.get(key)
        if isinstance(claimed, int) and claimed != counted:
            problems.append(
                f"{label}: {key} is {claimed} but the diff {verb} {counted} "
                f"line{'s' * (counted != 1)}."
            )
    return files


def _check_limits(files: Sequence[FileDiff], settings: EvolveSettings, problems: list[str]) -> None:
    per_path: dict[str, int] = {}
    for fd in files:
        per_path[fd.path] = per_path.get(fd.path, 0) + fd.added + fd.removed
    touched = list(dict.fromkeys(p for fd in files for p in fd.paths))
    limit = settings.tightest(settings.max_files)
    if limit is not None and len(touched) > limit.value:
        problems.append(
            f"The changes touch {len(touched)} files; the limit is {limit.value} ({limit.source})."
        )
    limit = settings.tightest(settings.max_lines)
    total = sum(per_path.values())
    if limit is not None and total > limit.value:
        problems.append(
            f"The changes add and remove {total} lines in total; the limit is {limit.value} "
            f"({limit.source})."
        )
    limit = settings.tightest(settings.max_lines_per_file)
    if limit is not None:
        for path, count in per_path.items():
            if count > limit.value:
                problems.append(
                    f'"{path}": {count} lines added and removed; the limit per file is '
                    f"{limit.value} ({limit.source})."
                )


def _check_rules(files: Sequence[FileDiff], settings: EvolveSettings, problems: list[str]) -> None:
    for path in dict.fromkeys(p for fd in files for p in fd.paths):
        for rule in settings.forbidden_paths:
            if under_path(path, rule.pattern):
                problems.append(
                    f'"{path}" is under the forbidden path "{rule.pattern}" ({rule.source}); '
                    "leave it unchanged."
                )
                break
        for rule in settings.forbidden_globs:
            if matches_glob(path, rule.pattern):
                problems.append(
                    f'"{path}" matches the forbidden pattern "{rule.pattern}" ({rule.source}); '
                    "leave it unchanged."
                )
                break
        if settings.target_files is not None and path not in map(_normal, settings.target_files):
            problems.append(
                f'"{path}" is not one of the target_files input '
                f"({', '.join(settings.target_files)}); change only those files."
            )


def _check_citations(
    output: Mapping[str, Any],
    changes: Sequence[Mapping[str, Any]],
    settings: EvolveSettings,
    report: tuple[Mapping[str, Any], str] | None,
    problems: list[str],
) -> None:
    required = settings.citation_required_by
    addressed = [str(p) for p in output.get("patterns_addressed", []) if isinstance(p, str)]
    if report is None:
        if required:
            problems.append(
                "No PatternReport is available (bind it as the `patterns` input), so pattern "
                f"citations cannot be checked ({required})."
            )
        return
    analysis, where = report
    known = _ids(analysis)
    known_lower = {k.lower() for k in known}
    shown = ", ".join(known) if known else "none"
    for pattern_id in addressed:
        if pattern_id.lower() not in known_lower:
            problems.append(
                f"patterns_addressed cites {_quoted(pattern_id)}, which is not a pattern id in the "
                f"analysis ({where}); known ids: {shown}."
            )
    if not required:
        return
    if not addressed:
        problems.append(
            "patterns_addressed is empty; every change must trace to a pattern id from the "
            f"analysis (known ids: {shown}) ({required})."
        )
    for number, change in enumerate(changes, start=1):
        rationale = str(change.get("rationale", ""))
        if not any(cites(rationale, pattern_id) for pattern_id in known):
            problems.append(
                f"{_label(number, change)}: the rationale cites no pattern id from the analysis; "
                f"name the pattern it addresses (one of: {shown}) ({required})."
            )


def _has_impact(impact: Any) -> bool:
    if not isinstance(impact, Mapping):
        return False
    metrics = impact.get("metrics")
    notes = impact.get("notes")
    return bool(metrics) or (isinstance(notes, str) and bool(notes.strip()))


def _record(attempt_dir: Path, name: str, document: Mapping[str, Any]) -> None:
    """Write the review next to the attempt's other files; the record never fails the check."""
    try:
        attempt_dir.mkdir(parents=True, exist_ok=True)
        tmp = attempt_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(attempt_dir / name)
    except OSError:
        pass


def check_proposed_changes(ctx: StepContext, output: Any) -> list[str]:
    """OUTPUT_CHECKS["ProposedChanges"]: the problems with `output` (empty = accepted)."""
    if not isinstance(output, Mapping):
        return ["The output is not a ProposedChanges object."]
    repo = repo_root(target_repo(ctx))
    settings = evolve_settings(ctx, repo)
    dry_run = ctx.bindings.get("dry_run") is True  # the refine formula's preview mode
    review = review_changes(output, settings, find_pattern_report(ctx), ctx.progress,
                            validate=not dry_run)
    _record(ctx.attempt_dir, "guardrails.json", review.to_json(settings))
    return review.problems
