"""Evolve-cycle built-in steps: `apply-diff` (dry run of a change) and `prepare-repo` (the target).

    run builtin apply-diff     with changes = refine.output [, repo = ...]
        The diff applied in a scratch worktree of the target and its must_pass
        commands run there; the target itself is not touched. Output: what
        applied and how validation went. A diff that does not apply, an unsafe
        or forbidden path, or a failing command → the `guardrail` event.

    run builtin prepare-repo   [with repo = "path/to/target"]
        The repository the run works on. The root of a git repository is used
        in place: every later step works in `git worktree`s of it (never a
        clone or a copy), so the PR branch and the local PR record land in the
        user's repository while its working tree, index, HEAD and other
        branches are never touched. Its output is marked `"worktrees": true`.
        A plain directory (the bundled sample) is copied into the run
        directory (`RUN/target`) and made a fresh git repository with one
        commit on `main`; that output is marked `"scratch": true`, and a
        resumed run reuses the copy. Either mark makes every later evolve
        step of the run (guardrails, apply-diff, open-pr) use that repository
        unless it binds another `repo`. `scratch-repo` is the same step under
        its former name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mgt.errors import EvolveError
from mgt.evolve.git import (
    GitFailure,
    current_branch,
    git,
    is_repo_root,
    prune_stale_worktrees,
    repo_root,
    resolve_base,
    rev_parse,
    scratch_worktree,
)
from mgt.evolve.guardrails import raise_first_failure, run_must_pass
from mgt.evolve.pr import changes_input, safety_problems
from mgt.evolve.settings import evolve_settings, target_repo
from mgt.evolve.target import load_target_config, scratch_copy
from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure

__all__ = ["apply_diff", "prepare_repo", "scratch_repo"]


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
    raise_first_failure(runs, "in a scratch worktree", settings.must_pass_source)
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


def prepare_repo(ctx: StepContext) -> dict[str, Any]:
    """BUILTINS["prepare-repo"]: the repository to work on (see the module docstring)."""
    value = ctx.bindings.get("repo") or ctx.machine_inputs.get("repo")
    if not value:
        raise StepFailure("prepare-repo needs a `repo` input (the repository to improve)")
    source = Path(str(value)).expanduser()
    source = source if source.is_absolute() else ctx.cwd / source
    if not source.is_dir():
        raise StepFailure(f"prepare-repo: {source} is not a directory")
    if is_repo_root(source):
        source = source.resolve()
        removed = prune_stale_worktrees(source)  # left by a run that was killed
        for path in removed:
            ctx.progress(f"removed the stale worktree {path} of a killed run")
        ctx.progress(f"working in git worktrees of {source} (its own tree is left untouched)")
        return {
            "repo": str(source),
            "worktrees": True,  # later steps of the run find their target by this mark
            "scratch": False,
            "source": str(source),
            "base_branch": current_branch(source),
            "commit": rev_parse(source, "HEAD"),
        }
    dest = (ctx.run_dir / "target").absolute()  # later steps may run from elsewhere
    if (dest / ".git").exists():
        ctx.progress(f"reusing the scratch copy {dest}")
    else:
        if dest.exists():
            import shutil

            shutil.rmtree(dest)  # a copy interrupted half-way: start again
        try:
            scratch_copy(source, dest)
        except GitFailure as e:
            raise EvolveError(f"cannot make a scratch copy of {source}: {e.stderr}") from None
        ctx.progress(f"scratch copy of {source}: {dest}")
    branch = current_branch(dest)
    return {
        "repo": str(dest),
        "scratch": True,  # later steps of the run find their target by this mark
        "source": str(source),
        "base_branch": branch,
        "commit": rev_parse(dest, "HEAD"),
    }


#: The former name of `prepare-repo` (machines written before it keep working).
scratch_repo = prepare_repo
