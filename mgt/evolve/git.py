"""git command lines → output or `EvolveError`; scratch worktrees that are always removed.

Every git call of the evolve cycle goes through `git()`: a clean environment
(no inherited GIT_DIR/GIT_WORK_TREE, English messages, no credential prompts),
a timeout, and failures converted into one `EvolveError` that quotes git.

Scratch worktrees of a user's repository live in a temporary directory that
also holds a marker (`mgt-worktree.json`: the pid and start time of the
process that made it). The step that makes one removes it whatever happens;
a worktree whose maker was killed (`kill -9`) is removed by the next evolve
step on the same repository (`prune_stale_worktrees`, e.g. on `mgt resume`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from mgt.errors import EvolveError

__all__ = [
    "FALLBACK_IDENTITY",
    "NO_HOOKS",
    "WORKTREE_MARKER",
    "GitFailure",
    "branch_exists",
    "commit_files",
    "current_branch",
    "directory_lock",
    "git",
    "git_dir",
    "identity_args",
    "is_ancestor",
    "is_repo_root",
    "prune_stale_worktrees",
    "repo_root",
    "resolve_base",
    "rev_parse",
    "scratch_worktree",
    "worktree_lock",
]

#: Hooks are never run: the user's hooks would run on model-written content, outside any
#: sandbox, and a hook that rewrites the commit would change what the guardrails checked.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
WORKTREE_MARKER = "mgt-worktree.json"

#: Used for commits when the target repository has no user.name/user.email configured.
FALLBACK_IDENTITY = ("Micro-Gas Town", "sleeptime@mgt.invalid")

# Variables that would point git somewhere other than the repository we name.
_GIT_LOCATION_VARS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
)


class GitFailure(EvolveError):
    """A git command exited non-zero; `stderr` holds git's own words."""

    def __init__(self, message: str, stderr: str, returncode: int) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="",
               SSH_ASKPASS="")
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def git(
    repo: Path, *args: str, input_text: str | None = None, timeout: float = 120.0
) -> str:
    """Run `git -C repo ARGS`; return stdout. Raises GitFailure (non-zero) or EvolveError."""
    command = ["git", "-C", str(repo), *args]
    try:
        proc = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=timeout,
            env=git_env(), check=False,
        )
    except FileNotFoundError:
        raise EvolveError("git is not installed (the evolve cycle needs it on PATH)") from None
    except subprocess.TimeoutExpired:
        raise EvolveError(
            f"`git {' '.join(args)}` timed out after {timeout:g}s in {repo}"
        ) from None
    except OSError as e:
        raise EvolveError(f"cannot run git in {repo}: {e.strerror or e}") from None
    if proc.returncode != 0:
        said = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
        raise GitFailure(f"`git {' '.join(args)}` failed in {repo}: {said}", said, proc.returncode)
    return proc.stdout


def repo_root(path: Path) -> Path:
    """The git work tree whose root is `path`; EvolveError when `path` is not one."""
    if not path.is_dir():
        raise EvolveError(f"target repository {path} does not exist or is not a directory")
    try:
        top = Path(git(path, "rev-parse", "--show-toplevel").strip())
    except GitFailure:
        raise EvolveError(
            f"target repository {path} is not a git repository "
            "(run `git init` and commit, or point the `repo` input at one)"
        ) from None
    if top.resolve() != path.resolve():
        raise EvolveError(
            f"target repository {path} is not the root of a git repository (it is inside "
            f"{top}); point the `repo` input at {top}, or at a scratch copy of {path}"
        )
    return top


def git_dir(repo: Path) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    out = git(repo, "rev-parse", "--git-common-dir").strip()
    path = Path(out)
    return path if path.is_absolute() else (repo / path).resolve()


def rev_parse(repo: Path, rev: str) -> str | None:
    """The full commit id `rev` names, or None if it names no commit."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip() or None
    except GitFailure:
        return None


def branch_exists(repo: Path, name: str) -> bool:
    return rev_parse(repo, f"refs/heads/{name}") is not None


def current_branch(repo: Path) -> str | None:
    """The checked-out branch, or None when HEAD is detached."""
    try:
        return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD").strip() or None
    except GitFailure:
        return None


def resolve_base(repo: Path, configured: str) -> tuple[str, str | None]:
    """(branch to build on, note): `configured` if it exists, else the current branch.

    The note says why the configured base was not used (None when it was).
    """
    if branch_exists(repo, configured):
        return configured, None
    here = current_branch(repo)
    if here is not None and branch_exists(repo, here):
        return here, (
            f"base branch '{configured}' does not exist in {repo}; using the current "
            f"branch '{here}' instead"
        )
    raise EvolveError(
        f"base branch '{configured}' does not exist in {repo} and HEAD is not on a branch "
        "with commits; set [evolve].base_branch in the target's mgt.toml"
    )


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    try:
        git(repo, "merge-base", "--is-ancestor", ancestor, descendant)
    except GitFailure as e:
        if e.returncode == 1:
            return False
        raise
    return True


def commit_files(repo: Path, sha: str) -> list[str]:
    """Paths a commit changes relative to its first parent (all paths for a root commit)."""
    out = git(repo, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", "-z",
              "--no-renames", sha)
    return sorted(p for p in out.split("\0") if p)


def identity_args(repo: Path) -> list[str]:
    """`-c user.name=… -c user.email=…` when the repository has no identity configured."""
    try:
        git(repo, "config", "user.email")
        git(repo, "config", "user.name")
    except GitFailure:
        name, email = FALLBACK_IDENTITY
        return ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    return []


def is_repo_root(path: Path) -> bool:
    """True when `path` is the root of a git work tree (not a directory inside one)."""
    try:
        repo_root(path)
    except EvolveError:
        return False
    return True


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (Linux; empty elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return stat.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else None


def _maker_alive(marker: dict[str, object]) -> bool:
    pid = marker.get("pid")
    if marker.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True  # another machine's worktree (a shared disk): not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields[:1] == ["Z"]:
        return False  # killed, not yet reaped by its parent
    started = marker.get("started")
    return started is None or _start_time(pid) in (None, started)


def _worktree_paths(repo: Path) -> list[Path]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [Path(line[len("worktree "):]) for line in out.splitlines()
            if line.startswith("worktree ")]


def prune_stale_worktrees(repo: Path, *, locked: bool = False) -> list[Path]:
    """Remove the worktrees of `repo` that an mgt process made and died without removing.

    Only worktrees whose directory holds our marker are candidates, and only when
    the process that made them is gone: the user's own worktrees, and those of a
    run still going, are left alone. A PR branch such a worktree was made for is
    deleted too while it still points at its base (nothing was committed to it);
    one with a commit is kept. Returns the paths removed. Never raises.

    Takes the worktree lock unless the caller holds it (`locked`): a `git worktree add`
    of another step is otherwise caught half-way and its registration taken for a stale one.
    """
    if not locked:
        try:
            with worktree_lock(repo):
                return prune_stale_worktrees(repo, locked=True)
        except EvolveError:
            return []
    removed: list[Path] = _drop_half_made(repo)
    try:
        paths = _worktree_paths(repo)
    except EvolveError:
        return removed
    for path in paths[1:]:  # the first is the main working tree
        marker_file = path.parent / WORKTREE_MARKER
        try:
            marker = json.loads(marker_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(marker, dict) or _maker_alive(marker):
            continue
        with suppress(EvolveError):
            git(repo, "worktree", "remove", "--force", "--force", str(path))
        shutil.rmtree(path.parent, ignore_errors=True)
        removed.append(path)
        branch, base = marker.get("branch"), marker.get("base_commit")
        if isinstance(branch, str) and isinstance(base, str) \
                and rev_parse(repo, f"refs/heads/{branch}") == base:
            with suppress(EvolveError):  # made for a PR, killed before its commit: no trace
                git(repo, "branch", "-D", branch)
    with suppress(EvolveError):
        git(repo, "worktree", "prune")  # registrations whose directory is already gone
    return removed


def _drop_stale_ref_lock(repo: Path, branch: str) -> None:
    """The `refs/heads/BRANCH.lock` a git killed while creating BRANCH left behind: git
    refuses the branch while it exists. Called under the worktree lock, for a branch that
    does not exist yet (only mgt makes its branches, one at a time), so no git holds it."""
    if rev_parse(repo, f"refs/heads/{branch}") is not None:
        return
    ref = git_dir(repo) / "refs" / "heads" / branch
    with suppress(OSError):
        ref.with_name(ref.name + ".lock").unlink()


#: A registration with no `gitdir` this old was left by a killed git, not one at work.
HALF_MADE_SECONDS = 60.0


def _drop_half_made(repo: Path) -> list[Path]:
    """Registrations a `git worktree add` killed half-way left (still locked "initializing",
    `commondir` empty or missing): git neither prunes them (locked) nor lists worktrees
    past them, so every later `worktree add` fails. Dropped when made by a dead mgt (its
    marker says so) or when their directory is gone. Returns the worktree paths."""
    admin = git_dir(repo) / "worktrees"
    dropped: list[Path] = []
    try:
        entries = [e for e in admin.iterdir() if e.is_dir()]
    except OSError:
        return dropped
    for entry in entries:
        try:
            commondir = (entry / "commondir").read_text(encoding="utf-8").strip()
        except OSError:
            commondir = ""
        if commondir:
            continue  # whole: `git worktree prune` and the marker check handle it
        try:
            path = Path((entry / "gitdir").read_text(encoding="utf-8").strip()).parent
        except (OSError, ValueError):
            path = None
            try:  # a user's own `git worktree add` may be under way: only an old one
                if time.time() - entry.stat().st_mtime < HALF_MADE_SECONDS:
                    continue
            except OSError:
                continue
        if path is not None and path.exists():
            try:
                marker = json.loads((path.parent / WORKTREE_MARKER).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not ours, and its directory is there: leave it to its owner
            if not isinstance(marker, dict) or _maker_alive(marker):
                continue
            shutil.rmtree(path.parent, ignore_errors=True)
            branch, base = marker.get("branch"), marker.get("base_commit")
            shutil.rmtree(entry, ignore_errors=True)
            if isinstance(branch, str) and isinstance(base, str) \
                    and rev_parse(repo, f"refs/heads/{branch}") == base:
                with suppress(EvolveError):  # made for a PR, killed before its commit
                    git(repo, "branch", "-D", branch)
        shutil.rmtree(entry, ignore_errors=True)
        if path is not None:
            dropped.append(path)
    return dropped


@contextmanager
def worktree_lock(repo: Path) -> Iterator[None]:
    """Held while worktrees of `repo` are added, removed or pruned: a flock on its git dir.

    Steps running at once on one repository (the items of a fan-out) would otherwise
    race: `git worktree prune` drops the registration of a worktree another step is
    still adding. The lock is taken on the directory itself, so nothing is written
    into the user's repository, and the kernel drops it with a killed holder.
    """
    with directory_lock(git_dir(repo)):
        yield


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on `directory` itself (no lock file), released on exit."""
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise EvolveError(f"cannot lock {directory}: {e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def scratch_worktree(
    repo: Path, base: str, branch: str | None = None, prefix: str = "mgt-worktree-"
) -> Iterator[Path]:
    """A new worktree of `repo` at `base` (detached, or on a new `branch`), removed on exit.

    The worktree lives in a temporary directory outside the repository; on exit it
    is removed with `git worktree remove --force` and pruned, whatever happened
    inside. A new branch stays (that is the point of creating it). Stale
    worktrees of killed runs are removed first (see `prune_stale_worktrees`).
    """
    holder = Path(tempfile.mkdtemp(prefix=prefix))
    path = holder / "tree"
    args: Sequence[str] = (
        ("worktree", "add", "--quiet", "-b", branch, str(path), base) if branch
        else ("worktree", "add", "--quiet", "--detach", str(path), base)
    )
    try:
        marker = {"pid": os.getpid(), "started": _start_time(os.getpid()),
                  "host": socket.gethostname(), "repo": str(repo), "branch": branch,
                  "base_commit": rev_parse(repo, base) if branch else None}
        (holder / WORKTREE_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        with worktree_lock(repo):
            prune_stale_worktrees(repo, locked=True)
            if branch:
                _drop_stale_ref_lock(repo, branch)
            git(repo, *NO_HOOKS, *args, timeout=600)  # a large checkout takes a while
    except BaseException:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        with ExitStack() as locked:
            with suppress(EvolveError):
                locked.enter_context(worktree_lock(repo))
            with suppress(EvolveError):
                git(repo, "worktree", "remove", "--force", "--force", str(path))
            shutil.rmtree(holder, ignore_errors=True)
            with suppress(EvolveError):
                git(repo, "worktree", "prune")
