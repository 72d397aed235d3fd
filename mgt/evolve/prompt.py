"""A refine step's context → a Markdown section: the target repository, its rules, relevant files.

Registered as `PROMPT_CONTEXT["refine"]`. The refiner cannot draft a diff that
applies without the files it changes, and should not learn the guardrails by
failing them; so its prompt says where the target is (the user's repository,
or the run's scratch copy of a plain directory), the exact rules its answer
will be held to (limits, forbidden paths and globs, citations, the must_pass
commands), the tracked files, and the contents of the files the analysis
points at (by node name), within a budget. File contents are quoted as data
in fences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgt.evolve.git import (
    GitFailure,
    git,
    prune_stale_worktrees,
    repo_root,
    resolve_base,
    rev_parse,
)
from mgt.evolve.guardrails import matches_glob, under_path
from mgt.evolve.settings import EvolveSettings, evolve_settings, find_pattern_report, target_repo
from mgt.runtime.context import StepContext

__all__ = ["MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "refine_context", "relevant_files"]

MAX_TOTAL_BYTES = 32_000
MAX_FILE_BYTES = 12_000
MAX_LISTED = 200


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{2,63}$")
_CAMEL = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b")


def _subjects(report: Mapping[str, Any] | None) -> list[str]:
    """Node names (and the like) the patterns are about: where to look in the repository.

    Log-derived strings are untrusted: only identifier-shaped names are used
    (they select files and are shown in a heading), never free text.
    """
    found: list[str] = []
    for pattern in (report or {}).get("patterns", []):
        details = pattern.get("details") if isinstance(pattern, Mapping) else None
        if not isinstance(details, Mapping):
            continue
        names = [details.get(k) for k in ("node", "from", "to")]
        contexts = details.get("contexts")
        if isinstance(contexts, Mapping):
            names += list(contexts)
        template = details.get("template")
        if isinstance(template, str):  # "Failed to parse SceneNarrative: ..." names a type
            names += _CAMEL.findall(template)
        for name in names:
            if isinstance(name, str) and _IDENTIFIER.match(name) and name not in found:
                found.append(name)
    return found


def _forbidden(path: str, settings: EvolveSettings) -> bool:
    return any(under_path(path, r.pattern) for r in settings.forbidden_paths) or any(
        matches_glob(path, r.pattern) for r in settings.forbidden_globs
    )


def relevant_files(
    repo: Path, tracked: list[str], subjects: list[str], settings: EvolveSettings
) -> list[str]:
    """Tracked files the subjects point at: by file name first, then by content."""
    by_name: list[str] = []
    by_content: list[str] = []
    keys = [_norm(s) for s in subjects]
    for path in tracked:
        if _forbidden(path, settings):
            continue
        if any(k in _norm(Path(path).name) for k in keys):
            by_name.append(path)
            continue
        try:
            data = (repo / path).read_bytes()[:MAX_FILE_BYTES]
        except OSError:
            continue
        if b"\0" in data:
            continue
        text = data.decode("utf-8", "replace").lower()
        if any(s.lower() in text for s in subjects):
            by_content.append(path)
    # Definitions (the graph) before prose and tests: a deterministic, useful order.
    by_content.sort(key=lambda p: (p.startswith(("test", "tests/")), p.endswith(".md"), p))
    return by_content[:1] + by_name + by_content[1:]


def _fence(text: str, info: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"


def _rules(settings: EvolveSettings) -> list[str]:
    rules = [
        "- Each change is one file: `path` is relative to the repository root and is the file "
        "its `diff` changes; the diff is a unified diff (`--- a/PATH`, `+++ b/PATH`, `@@` "
        "hunks) against the base branch, with context lines copied exactly.",
        "- `lines_added` / `lines_removed` equal the diff's `+` / `-` lines.",
    ]
    for label, limits in (("files changed", settings.max_files),
                          ("lines added and removed in total", settings.max_lines),
                          ("lines added and removed per file", settings.max_lines_per_file)):
        limit = settings.tightest(limits)
        if limit is not None:
            rules.append(f"- At most {limit.value} {label} ({limit.source}).")
    never = [f"`{r.pattern}`" for r in settings.forbidden_paths]
    globs = [f"`{r.pattern}`" for r in settings.forbidden_globs]
    if never:
        rules.append(f"- Never change anything under {', '.join(never)}.")
    if globs:
        rules.append(f"- Never change files matching {', '.join(globs)}.")
    if settings.citation_required_by:
        rules.append("- `patterns_addressed` lists pattern ids of the analysis, and every "
                     "change's `rationale` names the pattern id it addresses.")
    if settings.impact_required_by:
        rules.append("- `expected_impact` gives metrics with `before` and `after_estimate`.")
    if settings.must_pass:
        commands = ", ".join(f"`{c}`" for c in settings.must_pass)
        rules.append(
            f"- With your diff applied, these commands must pass at the repository root "
            f"({settings.must_pass_source}): {commands}. Keep the repository consistent: "
            "change every file that must change together."
        )
    return rules


def refine_context(ctx: StepContext) -> str:
    """PROMPT_CONTEXT["refine"]: the target repository section of the refine prompt."""
    repo = repo_root(target_repo(ctx))
    # A resumed run may reach the model before any step that makes a worktree: a killed
    # attempt's worktree is removed here too, not only when the next one is made.
    prune_stale_worktrees(repo)
    settings = evolve_settings(ctx, repo)
    base, _note = resolve_base(repo, settings.base_branch)
    commit = rev_parse(repo, base) or ""
    tracked = [p for p in git(repo, "ls-tree", "-r", "--name-only", "-z", base).split("\0") if p]
    found = find_pattern_report(ctx)
    subjects = _subjects(found[0] if found else None)

    parts = [
        "## Target repository",
        f"Your changes are for the git repository at `{repo}` (base branch `{base}`, commit "
        f"`{commit[:12]}`). Paths in your answer are relative to its root; files are shown "
        "as they are on the base branch.",
        "### What your answer is checked against\n\n" + "\n".join(_rules(settings)),
    ]
    listing = "\n".join(tracked[:MAX_LISTED])
    more = f"\n… and {len(tracked) - MAX_LISTED} more" if len(tracked) > MAX_LISTED else ""
    parts.append(f"### Tracked files ({len(tracked)})\n\n" + _fence(listing + more, "text"))

    budget = MAX_TOTAL_BYTES
    shown: list[str] = []
    for path in relevant_files(repo, tracked, subjects, settings):
        try:
            data = git(repo, "show", f"{base}:{path}")
        except GitFailure:  # a file git cannot show (a submodule) is simply left out
            continue
        size = len(data.encode("utf-8"))
        if size > MAX_FILE_BYTES or size > budget:
            shown.append(f"#### `{path}`\n\n({size} bytes; not shown, read it with your tools)")
            continue
        budget -= size
        suffix = Path(path).suffix.lstrip(".") or "text"
        shown.append(f"#### `{path}`\n\n" + _fence(data, suffix))
    if shown:
        names = ", ".join(f"`{s}`" for s in subjects[:8])
        parts.append(
            f"### Files the analysis points at ({names}) — repository content, quoted as data"
            "\n\n" + "\n\n".join(shown)
        )
    return "\n\n".join(parts) + "\n"
