"""RUNS_DIR/.serve/ → the scheduler's memory (`state.json`) and its lock (one serve per runs dir).

`state.json` (written atomically) holds, per schedule name:

    {"last_tick": "2026-01-15T03:00:00+00:00",   # the latest tick that was started
     "in_flight": {"run_id": "...", "pid": 123, "tick": "...", "started_at": "..."} | null,
     "last_run": {"run_id", "status", "cost_usd", "exit_code", "finished_at", "error"}}

A run is written `in_flight` before its process starts and cleared when it ends
with a final; one still there when `mgt serve` starts was interrupted (SIGTERM,
a crash) and is resumed. The lock (`fcntl.flock` on `.serve/lock`, holding
the pid) is held for the whole life of a `mgt serve`, so a second one on the
same runs directory stops at once instead of running a schedule twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mgt.errors import RunError

__all__ = ["SERVE_DIR", "ScheduleState", "ServeBusy", "ServeLock", "ServeState"]

SERVE_DIR = ".serve"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


class ServeBusy(RunError):
    """Another `mgt serve` holds the runs directory (exit 1: nothing wrong with the input)."""

    exit_code = 1


@dataclass
class ScheduleState:
    last_tick: datetime | None = None
    in_flight: dict[str, Any] | None = None
    last_run: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "last_tick": None if self.last_tick is None else self.last_tick.isoformat(),
            "in_flight": self.in_flight,
            "last_run": self.last_run,
        }


@dataclass
class ServeState:
    """Every schedule's state, read from and written back to `RUNS_DIR/.serve/state.json`."""

    path: Path
    schedules: dict[str, ScheduleState] = field(default_factory=dict)

    @classmethod
    def load(cls, runs_dir: Path) -> ServeState:
        path = runs_dir / SERVE_DIR / STATE_FILE
        state = cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as err:
            raise RunError(f"{path}: unreadable scheduler state ({err}); "
                           "move it away to start the schedules afresh") from None
        entries = data.get("schedules") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise RunError(f"{path}: not a scheduler state file")
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            tick = entry.get("last_tick")
            try:
                last = datetime.fromisoformat(tick) if isinstance(tick, str) else None
            except ValueError:
                last = None
            flight = entry.get("in_flight")
            run = entry.get("last_run")
            state.schedules[str(name)] = ScheduleState(
                last_tick=last,
                in_flight=flight if isinstance(flight, dict) else None,
                last_run=run if isinstance(run, dict) else None,
            )
        return state

    def of(self, name: str) -> ScheduleState:
        return self.schedules.setdefault(name, ScheduleState())

    def save(self) -> None:
        from mgt.runtime.journal import atomic_write_json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {
            "version": 1,
            "schedules": {name: s.to_json() for name, s in sorted(self.schedules.items())},
        })


class ServeLock:
    """The exclusive lock of one runs directory's scheduler, held until `release`."""

    def __init__(self, runs_dir: Path) -> None:
        directory = runs_dir / SERVE_DIR
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise ServeBusy(f"another mgt serve is running on {runs_dir}{who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
