"""argv + cwd + timeout → `ProcessResult`; the child runs in its own session, its tree is reaped.

Every executor and every validation command runs through `run_process`. The
child starts a new session (so it is its own process-group leader and a
terminal's Ctrl-C reaches only mgt, which then ends the child cleanly). When
the timeout passes, or mgt itself is interrupted, the whole group gets SIGTERM
and, after a grace period, SIGKILL. When the leader exits by itself, members of
its group still running (a backgrounded `sleep &`, a tool's helper) are ended
the same way, so no step leaves orphans behind. A program that puts itself in
a new session of its own (a daemon, a tmux server) is out of reach of any
group kill; the tmux executor ends its windows itself. If mgt itself is
killed with SIGKILL, nothing can clean up: on Linux the child is asked to
receive SIGKILL when its parent dies, so at least the step's own process ends;
its descendants (the `sleep` of `sh -c "sleep 30; ..."`) live on. So a run's
steps are marked: inside `attempt_processes` every child gets MGT_RUN_ID and
MGT_ATTEMPT in its environment (inherited by its descendants) and its process
group is reported as soon as it starts, and `end_leftovers` ends, before a
resumed run goes on, every process group still holding a process so marked.

Output goes to files, never pipes, so a chatty child can never block on a full
pipe while mgt waits for it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from mgt.errors import ExecutorError

__all__ = [
    "ATTEMPT_VAR",
    "RUN_ID_VAR",
    "ProcessResult",
    "attempt_processes",
    "end_leftovers",
    "kill_group",
    "run_process",
]

#: Environment variables marking a step's processes as those of one run's attempt.
RUN_ID_VAR = "MGT_RUN_ID"
ATTEMPT_VAR = "MGT_ATTEMPT"
LEFTOVER_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class _Attempt:
    run_id: str
    attempt: str
    started: Callable[[int], None]


_CURRENT_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("mgt_attempt", default=None)


@contextmanager
def attempt_processes(run_id: str, attempt: str, started: Callable[[int], None]
                      ) -> Iterator[None]:
    """Within it, `run_process` marks its children as `run_id`'s `attempt` (environment) and
    calls `started(pgid)` as soon as each child exists (to journal it)."""
    token = _CURRENT_ATTEMPT.set(_Attempt(run_id, attempt, started))
    try:
        yield
    finally:
        _CURRENT_ATTEMPT.reset(token)


def end_leftovers(run_id: str, pgids: Iterable[int] = (),
                  grace: float = LEFTOVER_GRACE_SECONDS,
                  tee_under: Path | None = None) -> list[int]:
    """End what is left of a killed run's steps; returns the process groups it ended.

    Candidates are the journaled groups (`pgids`) and the group of every process whose
    environment marks it as one of `run_id`'s (which also covers a child started just
    before mgt was killed, whose group was never journaled). A group is ended only
    when one of its processes carries the mark: a recorded pgid the system has since
    given to someone else is left alone. SIGTERM, up to `grace` seconds, then SIGKILL.

    A zellij-cc pane runs `claude ... | tee OUTPUT_FILE` under the zellij server, not
    under mgt, so it carries no mark; it is found by its `tee` writing a file under
    `tee_under` (the run's `states/` directory, unique to the run), and its pipeline's
    group (the pane's Claude with it) is ended too.
    """
    mark = f"{RUN_ID_VAR}={run_id}".encode()
    pids = _all_pids()
    marked = [pid for pid in pids if pid != os.getpid() and _environ_has(pid, mark)]
    if tee_under is not None:
        marked += [pid for pid in pids if pid != os.getpid() and _tees_into(pid, tee_under)]
    ours = {g for g in (_pgid_of(pid) for pid in marked) if g is not None}
    groups = sorted(ours | {g for g in pgids if g in ours})
    groups = [g for g in groups if g not in {os.getpgrp(), 0, 1}]  # never our own group
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        members = {_pgid_of(pid) for pid in _all_pids()}
        if not members & set(groups):
            break
        time.sleep(0.02)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    return groups


def _tees_into(pid: int, directory: Path) -> bool:
    """Whether `pid` is a `tee` writing a file under `directory` (a zellij-cc pane's)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or os.path.basename(argv[0]) != b"tee":
        return False
    prefix = os.fsencode(str(directory.absolute())) + b"/"
    return any(arg.startswith(prefix) for arg in argv[1:])


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's: not ours either way
        return False
    return entry in data.split(b"\0")

DEFAULT_GRACE_SECONDS = 3.0
STRAGGLER_GRACE_SECONDS = 0.5  # for group members still running after the leader exited
MAX_CAPTURE_BYTES = 16 * 1024 * 1024  # what is read back into memory from each stream


@dataclass(frozen=True)
class ProcessResult:
    argv: tuple[str, ...]
    exit_code: int | None  # None when killed after a timeout; negative = killed by that signal
    timed_out: bool
    stdout: str
    stderr: str
    duration_seconds: float
    stdout_path: Path | None = None
    stderr_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def stderr_tail(self, lines: int = 5, width: int = 300) -> str:
        """The last non-empty lines of stderr on one line, for an error message."""
        tail = [line.strip() for line in self.stderr.splitlines() if line.strip()][-lines:]
        text = " | ".join(tail)
        return text if len(text) <= width else "…" + text[-width:]


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    input: str | bytes | None = None,
    stdout_path: Path | None = None,
    stderr_path: Path | None = None,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> ProcessResult:
    """Run `argv` to completion or timeout, never leaving any process of its group behind.

    `env` replaces the environment (pass `{**os.environ, ...}` to extend it).
    With `stdout_path`/`stderr_path` the streams are written there (and read
    back); otherwise temporary files are used. Raises `ExecutorError` only when
    the program cannot be started at all (not found, not executable, bad cwd).
    """
    argv = tuple(_os_text(str(a)) for a in argv)
    if env is not None:
        env = {_os_text(k): _os_text(v) for k, v in env.items()}
    if not argv:
        raise ExecutorError("no command to run")
    attempt = _CURRENT_ATTEMPT.get()
    if attempt is not None:
        env = {**(env if env is not None else os.environ),
               RUN_ID_VAR: attempt.run_id, ATTEMPT_VAR: _os_text(attempt.attempt)}
    with ExitStack() as stack:
        out = _open_sink(stack, stdout_path)
        err = _open_sink(stack, stderr_path)
        stdin: IO[bytes] | int = subprocess.DEVNULL
        if input is not None:
            stdin_file = stack.enter_context(tempfile.TemporaryFile())
            # a lone surrogate in a prompt cannot be UTF-8: it goes as its \\uXXXX escape
            data = input.encode("utf-8", "backslashreplace") if isinstance(input, str) else input
            stdin_file.write(data)
            stdin_file.seek(0)
            stdin = stdin_file
        started = time.monotonic()
        held = stack.enter_context(_signals_held())
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=stdin,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except FileNotFoundError as e:
            missing = e.filename if e.filename and str(e.filename) != str(cwd) else argv[0]
            if cwd is not None and not Path(cwd).is_dir():
                raise ExecutorError(f"cannot run {argv[0]}: no such directory {cwd}") from None
            raise ExecutorError(f"cannot run {argv[0]}: {missing} not found") from None
        except OSError as e:
            if e.errno == errno.E2BIG:
                size = sum(len(a.encode()) for a in argv)
                raise ExecutorError(
                    f"cannot run {argv[0]}: its command line is too long ({size:,} bytes)"
                ) from None
            raise ExecutorError(f"cannot run {argv[0]}: {e.strerror or e}") from None

        timed_out = False
        try:
            if attempt is not None:
                attempt.started(proc.pid)  # journaled before the child is waited on
            held.release()  # a Ctrl-C that came while forking acts now, with the child known
            timed_out = not _wait_exited(proc.pid, timeout)
            # The leader is exited but not reaped (or still running after the timeout):
            # its pid, and so the group id, cannot be reused while we end the group.
            kill_group(proc.pid, grace=grace if timed_out else STRAGGLER_GRACE_SECONDS, leader=proc)
        except BaseException:
            kill_group(proc.pid, grace=grace, leader=proc)
            proc.wait()
            raise
        code = proc.wait()
        duration = time.monotonic() - started
        stdout_text = _read_back(out)
        stderr_text = _read_back(err)
    return ProcessResult(
        argv=argv,
        exit_code=None if timed_out else code,
        timed_out=timed_out,
        stdout=stdout_text,
        stderr=stderr_text,
        duration_seconds=duration,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


def _os_text(text: str) -> str:
    """`text` as the OS can take it in an argument or environment variable: undecodable
    bytes (surrogate-escaped) stay those bytes; a lone surrogate that no encoding holds
    (from a log or a model's JSON) is passed as its backslash escape instead of failing."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class _HeldSignals:
    """SIGINT and SIGTERM noted instead of handled, until `release` delivers them."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.saved: dict[int, Callable[[int, FrameType | None], Any] | int] = {}

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread handles signals
        for sig in self.SIGNALS:
            handler = signal.getsignal(sig)
            if handler is None:  # installed from C: cannot be put back, leave it alone
                continue
            self.saved[sig] = handler
            signal.signal(sig, lambda signum, frame: self.seen.append(signum))

    def release(self) -> None:
        saved, self.saved = self.saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        seen, self.seen = self.seen, []
        for signum in dict.fromkeys(seen):
            signal.raise_signal(signum)  # its own handler runs now (KeyboardInterrupt, ...)


@contextmanager
def _signals_held() -> Iterator[_HeldSignals]:
    """Hold Ctrl-C and SIGTERM while a child is forked.

    With a `preexec_fn`, CPython runs Python at-fork hooks around the fork (logging
    registers one); an exception a signal handler raises inside such a hook is printed
    as "Exception ignored" and dropped, so a Ctrl-C landing there was lost and the step
    ran on to its end. Held signals are delivered by `release` (or on leaving).
    """
    held = _HeldSignals()
    held.hold()
    try:
        yield held
    finally:
        held.release()


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """On Linux, a pre-exec hook making the child get SIGKILL when mgt dies (even by -9).

    A `kill -9` of mgt runs no cleanup, and the child, in a session of its own,
    would otherwise go on (a model call still writing into a run that `mgt
    resume` continues). Only the child itself is covered, not its descendants.
    """
    prctl = _PRCTL
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # mgt died before the request took effect
            os._exit(137)

    return hook


def kill_group(
    pgid: int,
    *,
    grace: float = DEFAULT_GRACE_SECONDS,
    leader: subprocess.Popen[bytes] | None = None,
) -> None:
    """SIGTERM the process group, wait up to `grace` seconds for it to empty, then SIGKILL it.

    With `leader`, its exit is awaited without reaping, so the group id stays
    reserved until the whole group is gone.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    try:
        while time.monotonic() < deadline:
            if not _group_alive(pgid, leader):
                break
            time.sleep(0.02)
    finally:  # a second Ctrl-C cuts the grace short, never the SIGKILL
        _signal_group(pgid, signal.SIGKILL)
    if leader is not None:
        _wait_exited(leader.pid, None)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id now belongs to someone else's processes
        return False
    return True


def _group_alive(pgid: int, leader: subprocess.Popen[bytes] | None) -> bool:
    """True while any process other than an exited (zombie) leader is in the group."""
    if leader is not None and not _exited(leader.pid):
        return True
    return any(group == pgid and pid != pgid for pid, group in _process_groups().items())


#: How long one look at the process table serves every thread asking (a fan-out's items
#: end together, and each would read all of /proc). A look slightly old only makes a
#: group seem alive a little longer; the group is sent SIGKILL at the end regardless.
_TABLE_SECONDS = 0.01
_table: tuple[float, dict[int, int]] = (float("-inf"), {})
_table_lock = threading.Lock()


def _process_groups() -> dict[int, int]:
    """pid → process group of every live (not zombie) process, shared for _TABLE_SECONDS."""
    global _table
    with _table_lock:
        taken, groups = _table
        if time.monotonic() - taken < _TABLE_SECONDS:
            return groups
        groups = {}
        for pid in _all_pids():
            group = _pgid_of(pid)
            if group is not None:
                groups[pid] = group
        _table = (time.monotonic(), groups)
        return groups


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _pgid_of(pid: int) -> int | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096).decode("utf-8", "replace")
        finally:
            os.close(fd)
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 3 or fields[0] == "Z":
        return None  # a zombie holds nothing
    return int(fields[2])


def _exited(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _wait_exited(pid: int, timeout: float | None) -> bool:
    """Wait (without reaping) for `pid` to exit; False if still running after `timeout`.

    A pidfd (Linux 5.3+) wakes us the moment it exits; without one, we poll."""
    if _exited(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _poll_exited(pid, timeout)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while not _exited(pid):
            # in slices, so a signal handler (Ctrl-C) runs in good time on the main thread
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                return False
            poller.poll(wait * 1000)
        return True
    finally:
        os.close(fd)


def _poll_exited(pid: int, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    delay = 0.001
    while not _exited(pid):
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            delay = min(delay, remaining)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _open_sink(stack: ExitStack, path: Path | None) -> IO[bytes]:
    if path is None:
        return stack.enter_context(tempfile.TemporaryFile())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return stack.enter_context(path.open("w+b"))
    except OSError as e:
        raise ExecutorError(f"cannot write {path}: {e.strerror or e}") from None


def _read_back(sink: IO[bytes]) -> str:
    sink.flush()
    sink.seek(0)
    return sink.read(MAX_CAPTURE_BYTES).decode("utf-8", errors="replace")
