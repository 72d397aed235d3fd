"""Evolve-cycle built-in steps: `apply-diff` (dry run of a change) and `scratch-repo` (a safe copy).

    run builtin apply-diff     with changes = refine.output [, repo = ...]
        The diff applied in a scratch worktree of the target and its must_pass
        commands run there; the target itself is not touched. Output: what
        applied and how validation went. A diff that does not apply, an unsafe
        or forbidden path, or a failing command → the `guardrail` event.

    run builtin scratch-repo   [with repo = "path/to/target"]
        A copy of the target in the run directory (`RUN/target`): a plain
        directory becomes a fresh git repository (one commit on `main`), a git
        repository is cloned. Its output is marked `"scratch": true`; every
        later evolve step of the run (guardrails, apply-diff, open-pr) then
        works on the copy unless it binds another `repo`, so branches and PR
        records land in the copy, never in the original. A resumed run reuses
        the copy it made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mgt.errors import EvolveError
from mgt.evolve.git import (
    GitFailure,
    current_branch,
    git,
    repo_root,
    resolve_base,
    rev_parse,
    scratch_worktree,
)
from mgt.evolve.guardrails import run_must_pass
from mgt.evolve.pr import changes_input, safety_problems
from mgt.evolve.settings import evolve_settings, target_repo
from mgt.evolve.target import load_target_config, scratch_copy
from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure

__all__ = ["apply_diff", "scratch_repo"]


def apply_diff(ctx: StepContext) -> dict[str, Any]:
    """BUILTINS["apply-diff"]: apply `changes` in a scratch worktree and run must_pass there."""
    repo = repo_root(target_repo(ctx))
    files, _proposal = changes_input(ctx)
    target = load_target_config(repo)
    problems = safety_problems(files, target)
    if problems:
        raise GuardrailFailure(problems)
    settings = evolve_settings(ctx, repo)
    base, note = resolve_base(repo, settings.base_branch)
    from mgt.evolve.diffs import render_patch

    with scratch_worktree(repo, base, prefix="mgt-apply-") as tree:
        try:
            git(tree, "apply", "-p1", "--whitespace=nowarn", "-", input_text=render_patch(files))
        except GitFailure as e:
            raise GuardrailFailure(
                [f"the diff does not apply to {base}: git apply says: {e.stderr.strip()}"]
            ) from None
        runs = run_must_pass(settings, tree, ctx.progress)
    failed = [r for r in runs if not r.ok]
    if failed:
        r = failed[0]
        how = "timed out" if r.timed_out else f"failed with exit code {r.exit_code}"
        raise GuardrailFailure([
            f"must_pass command `{r.command}` {how} in a scratch worktree with the diff applied "
            f"({settings.must_pass_source}); its output ends with:\n{r.output_tail}"
        ])
    return {
        "applies": True,
        "repo": str(repo),
        "base_branch": base,
        "base_commit": rev_parse(repo, base),
        "notes": [note] if note else [],
        "files": [{"path": f.path, "added": f.added, "removed": f.removed} for f in files],
        "lines_added": sum(f.added for f in files),
        "lines_removed": sum(f.removed for f in files),
        "validation": {
            "source": settings.must_pass_source,
            "runs": [r.to_json() for r in runs],
        },
    }


def scratch_repo(ctx: StepContext) -> dict[str, Any]:
    """BUILTINS["scratch-repo"]: copy the target into RUN/target (see the module docstring)."""
    value = ctx.bindings.get("repo") or ctx.machine_inputs.get("repo")
    if not value:
        raise StepFailure("scratch-repo needs a `repo` input (the directory to copy)")
    source = Path(str(value)).expanduser()
    source = source if source.is_absolute() else ctx.cwd / source
    if not source.is_dir():
        raise StepFailure(f"scratch-repo: {source} is not a directory")
    dest = (ctx.run_dir / "target").absolute()  # later steps may run from elsewhere
    if (dest / ".git").exists():
        ctx.progress(f"reusing the scratch copy {dest}")
    else:
        if dest.exists():
            import shutil

            shutil.rmtree(dest)  # a copy interrupted half-way: start again
        if _is_repo_root(source):
            try:
                git(source, "clone", "--quiet", "--no-hardlinks", str(source), str(dest),
                    timeout=600)
            except GitFailure as e:
                raise EvolveError(f"cannot clone {source} into {dest}: {e.stderr}") from None
        else:
            scratch_copy(source, dest)
        ctx.progress(f"scratch copy of {source}: {dest}")
    branch = current_branch(dest)
    return {
        "repo": str(dest),
        "scratch": True,  # later steps of the run find their target by this mark
        "source": str(source),
        "base_branch": branch,
        "commit": rev_parse(dest, "HEAD"),
    }


def _is_repo_root(path: Path) -> bool:
    try:
        repo_root(path)
    except EvolveError:
        return False
    return True
