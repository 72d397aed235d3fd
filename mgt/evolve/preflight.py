"""The run's inputs (source, repo, forge) → what the run will need, checked before any model call.

`run builtin preflight` is the first state of the bundled evolve machines, and
`mgt exec --dry-run` runs it too. Each check is cheap and touches nothing:

- the source answers: a Loki URL is reachable and accepts the credentials (one
  `query_range` request for at most one entry of the last minute); an event
  file exists and is readable; no source means `GRAFANA_LOKI_URL`;
- the repository is a directory: the root of a git repository with a commit
  (used in place, through worktrees), or a plain directory (copied);
  its `mgt.toml`, if any, is valid;
- for `forge=github`: the repository is a git repository, its remote resolves
  to a GitHub repository (`owner/name` from an https or ssh URL, else
  `[evolve].github_repo` or GITHUB_REPOSITORY), a token is set (GITHUB_TOKEN
  or GH_TOKEN) and GitHub accepts it for that repository
  (`GET /repos/{owner}/{name}`; a token that cannot push is refused too), and
  git reaches the remote with the user's own credentials (`git ls-remote`).

A failure is one line that says what to fix (a `StepFailure`, so the run
ends before the first model call has been paid for). The output records what
was found, with any credentials in a URL redacted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgt.errors import EvolveError, MgtError
from mgt.runtime.context import StepContext, StepFailure

__all__ = ["check_forge", "check_repo", "check_source", "preflight"]

#: How long a preflight request may take; the real work has its own, longer, budgets.
TIMEOUT_SECONDS = 10.0


def _value(ctx: StepContext, name: str) -> Any:
    if ctx.bindings.get(name) is not None:
        return ctx.bindings[name]
    return ctx.machine_inputs.get(name)


def _absolute(ctx: StepContext, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else ctx.cwd / path


def check_source(ctx: StepContext, source: Any) -> dict[str, Any]:
    """The source answers (see the module docstring); StepFailure when it does not."""
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise StepFailure(f"source {source!r} is neither an event file nor a Loki URL")
    if source is None or source.startswith(("http://", "https://")):
        return _check_loki(source)
    if source == "-":
        return {"kind": "stdin", "source": "-"}
    path = _absolute(ctx, source)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise StepFailure(
            f"source {path} {what}: give an event file (JSON lines, "
            "optionally gzipped) or a Loki URL with --input source=..."
        )
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise StepFailure(f"source {path} cannot be read: {e.strerror or e}") from None
    return {"kind": "file", "source": str(path)}


def _check_loki(url: str | None) -> dict[str, Any]:
    from mgt.logs.loki import build_logql
    from mgt.logs.sources import LokiSource, open_source

    try:
        source = open_source(url, since="1m")
    except MgtError as e:
        raise StepFailure(f"source: {e}") from None
    assert isinstance(source, LokiSource)
    client = source.client
    client.max_attempts = 2  # a preflight says "not reachable" quickly; the run retries more
    client.max_retry_seconds = TIMEOUT_SECONDS
    where = client.display_url
    try:
        now = time.time_ns()
        query = build_logql(selector=client.settings.selector)
        for _entry in client.query_range(query, start_ns=now - 60 * 10**9, end_ns=now,
                                         limit=1, page_size=1):
            break
    except MgtError as e:
        hint = "" if url else " (no source given: GRAFANA_LOKI_URL is used)"
        raise StepFailure(f"source: {e}{hint}") from None
    finally:
        client.close()
    return {"kind": "loki", "source": where}


def check_repo(ctx: StepContext, repo: Any) -> dict[str, Any]:
    """The repository is a git repository root with a commit, or a plain directory."""
    from mgt.evolve.git import current_branch, is_repo_root, prune_stale_worktrees, rev_parse
    from mgt.evolve.target import load_target_config

    if not isinstance(repo, str) or not repo.strip():
        raise StepFailure("no repository: give the one to improve with --input repo=PATH")
    path = _absolute(ctx, repo)
    if not path.is_dir():
        raise StepFailure(
            f"repository {path} does not exist or is not a directory: "
            "give the one to improve with --input repo=PATH"
        )
    try:
        target = load_target_config(path)
    except EvolveError as e:
        raise StepFailure(str(e)) from None
    from mgt.evolve.sandbox import preflight_problem

    # An explicit empty must_pass runs no model-written code; otherwise (the target's or
    # the formula's commands) it would be refused after the refiner was paid for.
    refusal = None if target.must_pass == () else preflight_problem(target)
    if refusal:
        raise StepFailure(refusal)
    if not is_repo_root(path):
        return {"kind": "directory", "repo": str(path)}
    path = path.resolve()
    if rev_parse(path, "HEAD") is None:
        raise StepFailure(
            f"repository {path} has no commit yet: commit the files the run should improve"
        )
    prune_stale_worktrees(path)  # a killed run's worktrees go before this one starts
    found: dict[str, Any] = {"kind": "git", "repo": str(path), "branch": current_branch(path)}
    run_dir = ctx.run_dir.resolve()
    if run_dir != path and run_dir.is_relative_to(path):
        found["note"] = (
            f"the run directory {run_dir} is inside the repository, where it shows as "
            "untracked files; set --runs-dir or MGT_RUNS_DIR to a directory outside it, or "
            "ignore it (.gitignore)"
        )
        ctx.progress("note: " + found["note"])
    return found


def check_forge(ctx: StepContext, forge: Any, repo: Mapping[str, Any]) -> dict[str, Any]:
    """forge=github: remote → owner/name, a token, and GitHub accepting it for that repository."""
    if forge in (None, "local"):
        return {"forge": "local"}
    if forge != "github":
        raise StepFailure(f"unknown forge {forge!r}: use local or github")
    from mgt.evolve.github import GitHubClient, GitHubError, token_from_env
    from mgt.evolve.pr import resolve_github_repo
    from mgt.evolve.target import load_target_config

    if repo.get("kind") != "git":
        raise StepFailure(
            f"forge=github needs a git repository with a GitHub remote, and {repo['repo']} is "
            "a plain directory: point --input repo at a clone of your GitHub repository"
        )
    path = Path(str(repo["repo"]))
    target = load_target_config(path)
    remote = str(ctx.bindings.get("remote") or target.remote or "origin")
    try:
        name = resolve_github_repo(ctx, path, target, remote)
        token = token_from_env()
    except EvolveError as e:
        raise StepFailure(str(e)) from None
    try:
        with GitHubClient(name, token, timeout=TIMEOUT_SECONDS) as client:
            info = client.get_repository()
    except GitHubError as e:
        if e.status == 401:
            raise StepFailure(
                f"forge=github: GitHub refused the token in GITHUB_TOKEN/GH_TOKEN ({e}); "
                "set a valid token"
            ) from None
        if e.status in (403, 404):
            raise StepFailure(
                f"forge=github: the GitHub repository {name} (from remote '{remote}') was not "
                f"found or the token may not see it ({e}); check the remote URL, "
                "[evolve].github_repo in mgt.toml, or the token's access"
            ) from None
        raise StepFailure(f"forge=github: {e}") from None
    except EvolveError as e:
        raise StepFailure(f"forge=github: {e}") from None
    permissions = info.get("permissions") if isinstance(info, Mapping) else None
    if isinstance(permissions, Mapping) and permissions.get("push") is False:
        raise StepFailure(
            f"forge=github: the token (GITHUB_TOKEN/GH_TOKEN) may not push to {name}; "
            "use a token with write access to its contents and pull requests"
        )
    from mgt.evolve.git import GitFailure, git

    try:  # the push will need the remote with the user's own git credentials
        git(path, "ls-remote", "--heads", remote, timeout=TIMEOUT_SECONDS * 3)
    except GitFailure as e:
        said = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else str(e)
        raise StepFailure(
            f"forge=github: git cannot reach remote '{remote}' of {path} to push the branch "
            f"({said}); check the remote URL and your git credentials for it"
        ) from None
    except EvolveError as e:
        raise StepFailure(f"forge=github: {e}") from None
    api = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    return {"forge": "github", "remote": remote, "github_repo": name, "api_url": api}


def preflight(ctx: StepContext) -> dict[str, Any]:
    """BUILTINS["preflight"]: every check above, in order; the first failure ends the run."""
    ctx.progress("preflight: checking the source, the repository and the forge")
    repo = check_repo(ctx, _value(ctx, "repo"))
    forge = check_forge(ctx, _value(ctx, "forge"), repo)
    source = check_source(ctx, _value(ctx, "source"))
    return {"ok": True, "source": source, "repo": repo, "forge": forge}
