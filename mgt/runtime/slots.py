"""A runs directory and a cap N → at most N model calls at once, across every process using it.

    RUNS_DIR/.slots/slot-0 … slot-(N-1)

A model call holds one slot file for its whole length, `fcntl.flock`'d
exclusively: it tries every slot without blocking, and when all are taken it
says so once ("waiting for a model slot (N in use)") and tries again, sooner at
first and then every `MAX_POLL_SECONDS`, until one frees (or it is interrupted).
The kernel drops a flock when its file is closed, and a process's files are
closed when it dies however it dies, so a `kill -9` never leaks a slot; the
slot's file descriptor is not inherited by the programs the call starts, so an
orphan left behind by a killed mgt does not hold it either. flock locks belong
to an open file, not to a process, so threads of one process (the items of a
fan-out) count against the cap like separate processes do.

The cap comes from `--max-model-calls N`, else `$MGT_MAX_MODEL_CALLS`, else the
project's `mgt.toml` `[exec] max_model_calls`, else `DEFAULT_MAX_MODEL_CALLS`.
Processes that share a runs directory should use the same cap: each uses slots
0..N-1 of its own N. `SlotExecutor` wraps a model executor so that every call
takes a slot; commands and builtins never do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgt.errors import UsageError
from mgt.executors.base import ExecRequest, ExecResult, Executor

__all__ = [
    "DEFAULT_MAX_MODEL_CALLS",
    "ENV_VAR",
    "MAX_MODEL_CALLS_LIMIT",
    "SLOTS_DIR",
    "ModelSlots",
    "Slot",
    "SlotExecutor",
    "model_slots",
    "parse_cap",
    "resolve_cap",
]

#: Model calls at once in one runs directory when nothing says otherwise.
DEFAULT_MAX_MODEL_CALLS = 4
#: A cap above this is a typo, not a plan (and would be that many files).
MAX_MODEL_CALLS_LIMIT = 1024
ENV_VAR = "MGT_MAX_MODEL_CALLS"
SLOTS_DIR = ".slots"
#: The first retry comes soon (a slot often frees within a model call's tail); later ones
#: every MAX_POLL_SECONDS at most, with jitter so waiters do not retry in lockstep.
FIRST_POLL_SECONDS = 0.01
MAX_POLL_SECONDS = 0.2


def parse_cap(value: object, where: str) -> int:
    """A cap from a flag, a variable or a file → an int in 1..MAX_MODEL_CALLS_LIMIT, or a
    UsageError naming `where`."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_MODEL_CALLS_LIMIT:
        raise UsageError(
            f"{where}: expected a whole number from 1 to {MAX_MODEL_CALLS_LIMIT}, got {value!r}"
        )
    return number


def resolve_cap(flag: int | None, machine_path: str | Path | None = None) -> int:
    """--max-model-calls, else $MGT_MAX_MODEL_CALLS, else mgt.toml's [exec] max_model_calls,
    else DEFAULT_MAX_MODEL_CALLS."""
    if flag is not None:
        return parse_cap(flag, "--max-model-calls")
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():  # an empty variable is unset
        return parse_cap(env, ENV_VAR)
    if machine_path is not None:
        from mgt.runtime.project import load_exec_settings

        settings = load_exec_settings(machine_path)
        if settings.max_model_calls is not None:
            return settings.max_model_calls
    return DEFAULT_MAX_MODEL_CALLS


@dataclass
class Slot:
    """One held slot; `release` (or the process's death) frees it."""

    index: int
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)


class ModelSlots:
    """The slots of one runs directory, taken `cap` at most at once by everyone using it."""

    def __init__(
        self,
        runs_dir: Path | str,
        cap: int,
        *,
        on_wait: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dir = Path(runs_dir) / SLOTS_DIR
        self.cap = parse_cap(cap, "the model call cap")
        self._on_wait = on_wait
        self._sleep = sleep

    def _paths(self) -> list[Path]:
        return [self.dir / f"slot-{i}" for i in range(self.cap)]

    def _open(self, path: Path) -> int:
        try:
            # O_CLOEXEC (Python's default, said here because it matters): a program the call
            # starts must not inherit the lock and keep the slot after mgt is gone.
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            self.dir.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise UsageError(f"cannot open the model slot {path}: {err.strerror or err}") from err

    def try_acquire(self, holder: str = "") -> Slot | None:
        """A free slot, taken now, or None when all `cap` are held."""
        for index, path in enumerate(self._paths()):
            fd = self._open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            with contextlib.suppress(OSError):  # who holds it: for a person looking, only
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {holder}".strip().encode() + b"\n", 0)
            return Slot(index, fd)
        return None

    def acquire(self, holder: str = "", *, label: str = "") -> Slot:
        """A slot, waiting as long as it takes (a signal's exception ends the wait); `label`
        says who waits in the waiting message."""
        slot = self.try_acquire(holder)
        delay = FIRST_POLL_SECONDS
        told = False
        while slot is None:
            if not told and self._on_wait is not None:
                told = True
                who = f"{label}: " if label else ""
                self._on_wait(f"{who}waiting for a model slot ({self.in_use()} in use, "
                              f"cap {self.cap})")
            self._sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_POLL_SECONDS)
            slot = self.try_acquire(holder)
        return slot

    @contextlib.contextmanager
    def hold(self, holder: str = "", *, label: str = "") -> Iterator[Slot]:
        slot = self.acquire(holder, label=label)
        try:
            yield slot
        finally:
            slot.release()

    def in_use(self) -> int:
        """How many of the cap's slots are held now (a snapshot: it may change at once)."""
        held = 0
        for path in self._paths():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # never made: never held
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                held += 1
            finally:
                os.close(fd)  # closing drops the probe's own lock, if it got one
        return held


def _tell(message: str) -> None:
    print(f"mgt: {message}", file=sys.stderr, flush=True)


class SlotExecutor:
    """A model executor whose every call holds a model slot for its whole length."""

    def __init__(self, inner: Executor, slots: ModelSlots) -> None:
        self.inner = inner
        self.slots = slots
        self.name = inner.name

    def run(self, request: ExecRequest) -> ExecResult:
        holder = f"{request.run_id} {request.state}/{request.attempt}"
        label = f"run {request.run_id} state '{request.state}'"
        with self.slots.hold(holder, label=label):
            return self.inner.run(request)

    def __getattr__(self, attribute: str) -> Any:
        # the executor's own properties (`program`, `session`) as if unwrapped
        if attribute == "inner":  # not set yet: no recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)


def model_slots(runs_dir: Path | str, flag: int | None, machine_path: str | Path | None
                ) -> ModelSlots:
    """The slots a run started from the command line uses; waiting is said on stderr."""
    return ModelSlots(runs_dir, resolve_cap(flag, machine_path), on_wait=_tell)
