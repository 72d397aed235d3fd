"""A must_pass command + a worktree + a `SandboxPolicy` → the command run inside bubblewrap.

Code a model wrote is hostile: a proposed test may print the environment, read
credential files, reach the network, write outside its worktree or fork
without end. `run_sandboxed` runs each must_pass command under `bwrap` with:

- no network (`--unshare-all` takes the network namespace too: only a loopback
  of its own, nothing listening);
- a scrubbed environment (`--clearenv`, then BASE_ENV, LC_*, TMPDIR,
  HOME set to a private directory, and the names the target's mgt.toml passes
  in `[evolve].pass_env`);
- the filesystem read-only (`--ro-bind / /`) except the worktree; `/tmp`,
  `/var/tmp`, `/run` and the caller's home directory are private empty tmpfs,
  so `~/.config/gh`, `~/.netrc`, `~/.git-credentials`, agent sockets and the
  like are not there at all; the worktree's `.git` link and the repository's
  git config (remote URLs may hold tokens) are hidden or read-only, so nothing
  in the worktree can point git at other code once the sandbox is gone;
- its own pid namespace, session and death with mgt (`--unshare-all`,
  `--new-session`, `--die-with-parent`): when the timeout kills the outer
  process, every process the command started dies with it;
- limits, set by util-linux's `prlimit` inside the sandbox: data memory
  (`RLIMIT_DATA`, which leaves the address-space reservations of GHC and the
  JVM alone) and processes (`RLIMIT_NPROC`, set inside the sandbox's user
  namespace so it counts only the sandbox's own processes; root is exempt from
  it, so a pids cgroup is used when mgt runs as root and one can be made).

When bwrap is missing or cannot make namespaces, `require_sandbox` refuses with
a message saying how to fix it, unless the target's mgt.toml says
`[evolve] sandbox = "none"`; that choice is then recorded with the review.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mgt.errors import EvolveError, ExecutorError
from mgt.evolve.commands import CommandRun, tail

if TYPE_CHECKING:
    from mgt.evolve.target import TargetConfig

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PROCESSES",
    "SANDBOX_MODES",
    "SandboxPolicy",
    "SandboxUnavailable",
    "bwrap_path",
    "limit_reason",
    "preflight_problem",
    "probe",
    "require_sandbox",
    "run_sandboxed",
    "sandbox_argv",
    "sandbox_label",
    "sandbox_policy",
    "sandbox_refusal",
]

SANDBOX_MODES = ("bubblewrap", "none")
DEFAULT_MEMORY_MB = 4096
DEFAULT_PROCESSES = 512
#: Names always passed into the sandbox (when set); LC_* as a prefix.
BASE_ENV = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "SOURCE_DATE_EPOCH")
SANDBOX_HOME = "/tmp/home"  # inside the sandbox: /tmp is a private tmpfs
_SYSTEM_UNDER_RUN = ("/run/current-system", "/run/wrappers")
_CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


class SandboxUnavailable(EvolveError):
    """No sandbox can be made and the target did not opt out."""


@dataclass(frozen=True)
class SandboxPolicy:
    """How code the model wrote runs: `mode` ("bubblewrap" or "none") and its limits."""

    mode: str = "bubblewrap"
    pass_env: tuple[str, ...] = ()
    memory_mb: int = DEFAULT_MEMORY_MB
    processes: int = DEFAULT_PROCESSES
    read_only_paths: tuple[str, ...] = ()  # extra host paths shown read-only (toolchains)


def sandbox_label(policy: SandboxPolicy) -> str:
    """What the review and the PR body say about how must_pass ran."""
    if policy.mode == "none":
        return "none (opted out in mgt.toml)"
    return "bubblewrap"


def bwrap_path() -> str | None:
    """The bwrap program: `MGT_BWRAP` when set (for tests and unusual installs), else PATH."""
    override = os.environ.get("MGT_BWRAP")
    if override is not None:
        return override if os.access(override, os.X_OK) and Path(override).is_file() else None
    return shutil.which("bwrap")


_PROBED: dict[str, str | None] = {}


def probe(bwrap: str | None = None) -> str | None:
    """Why no sandbox can be made (None when `bwrap` works); one probe per program path."""
    program = bwrap if bwrap is not None else bwrap_path()
    if program is None:
        override = os.environ.get("MGT_BWRAP")
        if override is not None:
            return f"MGT_BWRAP={override} is not an executable program"
        return "bubblewrap (bwrap) is not installed"
    if program in _PROBED:
        return _PROBED[program]
    try:
        proc = subprocess.run(
            [program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--unshare-all", "--die-with-parent", "--new-session", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        said = proc.stderr.strip().splitlines()
        why = None if proc.returncode == 0 else (
            f"bwrap cannot make a sandbox here: {said[-1] if said else f'exit {proc.returncode}'}"
            " (user namespaces may be disabled: see sysctl kernel.unprivileged_userns_clone "
            "and user.max_user_namespaces)"
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        why = f"bwrap cannot be run: {e}"
    _PROBED[program] = why
    return why


def sandbox_refusal(why: str | None, program: str | None) -> str:
    """The one-line refusal: what is wrong, then how to fix it or opt out."""
    fix = "install bubblewrap (apt-get install bubblewrap)" if program is None else \
        "allow user namespaces"
    return (f'no sandbox for must_pass (model-written code): {why}; {fix}, or set [evolve] '
            'sandbox = "none" in the target\'s mgt.toml')


def preflight_problem(target: TargetConfig) -> str | None:
    """For a check before any model call: why must_pass would be refused (None: it would run)."""
    if target.sandbox == "none":
        return None
    program = bwrap_path()
    why = probe(program)
    return None if why is None and program is not None else sandbox_refusal(why, program)


def require_sandbox(policy: SandboxPolicy) -> str | None:
    """The bwrap program to use (None when the target opted out); SandboxUnavailable if none."""
    if policy.mode == "none":
        return None
    program = bwrap_path()
    why = probe(program)
    if why is not None or program is None:
        raise SandboxUnavailable(sandbox_refusal(why, program))
    return program


def _env(policy: SandboxPolicy, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items()
           if k in BASE_ENV or k.startswith("LC_") or k in policy.pass_env}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=SANDBOX_HOME, TMPDIR="/tmp")
    return env


def _git_link(tree: Path) -> tuple[Path | None, Path | None]:
    """(the worktree's `.git` file, the repository's common git dir) when the tree has them."""
    link = tree / ".git"
    if not link.is_file():
        return (link if link.is_dir() else None), None
    try:
        text = link.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return link, None
    if not text.startswith("gitdir:"):
        return link, None
    gitdir = Path(text.removeprefix("gitdir:").strip())
    gitdir = gitdir if gitdir.is_absolute() else (tree / gitdir)
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return link, gitdir.resolve()
    common_dir = Path(common) if Path(common).is_absolute() else gitdir / common
    return link, common_dir.resolve()


def _account_home() -> str:
    """The home directory of mgt's user account (HOME may name another)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return ""


def sandbox_argv(
    bwrap: str,
    command: str,
    tree: Path,
    policy: SandboxPolicy,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The bwrap command line running `command` with /bin/sh in `tree` (see the docstring)."""
    environ = os.environ if environ is None else environ
    tree = tree.resolve()
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-all", "--die-with-parent", "--new-session"]
    hidden = ["/tmp", "/var/tmp", "/run"]  # /run holds sockets (docker, agents)
    if not Path("/var/run").is_symlink():
        hidden.append("/var/run")
    for home in dict.fromkeys((environ.get("HOME", ""), _account_home())):
        if home and Path(home).is_absolute() and Path(home).resolve() != Path("/") \
                and Path(home).is_dir():
            hidden.append(str(Path(home).resolve()))
    for path in hidden:
        if Path(path).is_dir():
            argv += ["--tmpfs", path]
    argv += ["--dir", SANDBOX_HOME]
    for system in _SYSTEM_UNDER_RUN:  # NixOS keeps its programs there
        argv += ["--ro-bind-try", system, system]
    for extra in policy.read_only_paths:
        shown = Path(os.path.expanduser(extra))
        if shown.is_absolute():
            argv += ["--ro-bind-try", str(shown), str(shown)]
    link, common = _git_link(tree)
    if common is not None and common.is_dir():
        # git works read-only inside; its config (remote URLs with tokens) is not shown
        argv += ["--ro-bind", str(common), str(common)]
        if (common / "config").is_file():
            argv += ["--dev-bind", "/dev/null", str(common / "config")]
    argv += ["--bind", str(tree), str(tree)]
    if link is not None:
        # a rewritten .git link would send the git run after the sandbox to other hooks
        argv += ["--ro-bind", str(link), str(link)]
    argv += ["--chdir", str(tree), "--clearenv"]
    for key, value in sorted(_env(policy, environ).items()):
        argv += ["--setenv", key, value]
    argv += ["--"]
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if prlimit is not None:
        argv += [prlimit, f"--nproc={policy.processes}",
                 f"--data={policy.memory_mb * 1024 * 1024}", "--"]
    argv += ["/bin/sh", "-c", "exec 2>&1\n" + command]
    return argv


@dataclass
class PidsCgroup:
    """A pids cgroup holding the sandbox (for root, whom RLIMIT_NPROC does not bind)."""

    path: Path

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def hit_limit(self) -> bool:
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, count = line.partition(" ")
                if key == "max" and count.strip() not in ("", "0"):
                    return True
        except OSError:
            pass
        return False

    def kill_all(self) -> None:
        import signal

        for _ in range(50):
            try:
                pids = [int(p) for p in self.procs.read_text().split()]
            except (OSError, ValueError):
                return
            if not pids:
                return
            for pid in pids:
                with suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            import time

            time.sleep(0.02)


@contextmanager
def pids_cgroup(limit: int) -> Iterator[PidsCgroup | None]:
    """A fresh pids cgroup limited to `limit` when mgt runs as root and may make one."""
    if os.geteuid() != 0:
        yield None
        return
    made: Path | None = None
    for root in _CGROUP_ROOTS:
        if not (root / "cgroup.procs").is_file():
            continue
        sweep_cgroups(root)
        if root == Path("/sys/fs/cgroup"):  # cgroup v2: needs the pids controller
            try:
                if "pids" not in (root / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        try:
            made = Path(tempfile.mkdtemp(prefix="mgt-sandbox-", dir=root))
            (made / "pids.max").write_text(str(limit))
            break
        except OSError:
            if made is not None:
                with suppress(OSError):
                    made.rmdir()
            made = None
    if made is None:
        yield None
        return
    group = PidsCgroup(made)
    try:
        yield group
    finally:
        group.kill_all()
        with suppress(OSError):
            made.rmdir()


#: A sandbox cgroup with no process in it for this long was left by an mgt that was killed.
STALE_CGROUP_SECONDS = 60.0


def sweep_cgroups(root: Path) -> list[Path]:
    """Remove the empty sandbox cgroups a killed mgt left under `root` (one busy or just made
    by another mgt, which has not joined it yet, is left alone); the ones removed."""
    import time

    removed: list[Path] = []
    try:
        found = [p for p in root.iterdir() if p.name.startswith("mgt-sandbox-")]
    except OSError:
        return removed
    now = time.time()
    for path in found:
        try:
            if now - path.stat().st_mtime < STALE_CGROUP_SECONDS \
                    or (path / "cgroup.procs").read_text().strip():
                continue
            path.rmdir()  # EBUSY if a process joined meanwhile: then it is not stale
        except OSError:
            continue
        removed.append(path)
    return removed


_PROCESS_SIGNS = ("resource temporarily unavailable", "cannot fork", "can't fork",
                  "fork failed", "fork: retry")
_MEMORY_SIGNS = ("memoryerror", "cannot allocate memory", "out of memory", "bad_alloc",
                 "heap exhausted", "failed to allocate", "mmap failed")


def limit_reason(output: str, policy: SandboxPolicy, cgroup_hit: bool = False) -> str | None:
    """Which sandbox limit a failed command most likely hit, in words (None: no sign of one)."""
    text = output.lower()
    if cgroup_hit or any(sign in text for sign in _PROCESS_SIGNS):
        return f"it hit the sandbox's process limit ({policy.processes} processes)"
    if any(sign in text for sign in _MEMORY_SIGNS):
        return f"it hit the sandbox's memory limit ({policy.memory_mb} MiB)"
    return None


def run_sandboxed(
    command: str, tree: Path, timeout: float, policy: SandboxPolicy, bwrap: str
) -> CommandRun:
    """`command` run by /bin/sh in `tree` inside bubblewrap; never raises for its own failure."""
    from mgt.executors.process import run_process

    argv = sandbox_argv(bwrap, command, tree, policy)
    with pids_cgroup(policy.processes) as group:
        if group is not None:
            # join the cgroup first: everything the sandbox starts is then counted
            argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group.procs), *argv]
        try:
            result = run_process(argv, cwd=tree, env=dict(os.environ), timeout=timeout)
        except ExecutorError as e:
            raise EvolveError(f"cannot run `{command}` in a sandbox in {tree}: {e}") from None
        hit = group is not None and group.hit_limit()
    output = result.stdout + result.stderr
    limit = None if result.exit_code == 0 else limit_reason(output, policy, hit)
    kept = tail(output)
    if limit is not None:  # every report that quotes the tail then says why
        kept = f"{kept}\n[sandbox: {limit}]".lstrip("\n")
    return CommandRun(command, result.exit_code, result.timed_out, result.duration_seconds,
                      kept, limit=limit, sandbox=sandbox_label(policy))


def sandbox_policy(target: TargetConfig) -> SandboxPolicy:
    """The policy a target's mgt.toml `[evolve]` table asks for."""
    return SandboxPolicy(
        mode=target.sandbox,
        pass_env=target.pass_env,
        memory_mb=target.memory_limit_mb,
        processes=target.process_limit,
        read_only_paths=target.sandbox_read_only,
    )
