"""Schedules + a runs directory + a clock → `mgt exec` / `mgt resume` children started on time.

Each run is a child process `python -m mgt exec MACHINE --input K=V ... --runs-dir RUNS
--json` (an interrupted one: `python -m mgt resume RUN_ID`), started in the
directory of `mgt.toml` so relative input paths mean what they say there. A
child keeps the scheduler apart from the interpreter and isolates its failures.

Rules: a schedule has at most one run at a time (a tick that comes while its
run is under way waits for it: one run, however many ticks passed); the state
is saved before a child starts, so a crash never starts a tick twice; SIGTERM
or Ctrl-C is forwarded to the children as SIGTERM (they stop resumably, exit
130) and the next `mgt serve` resumes their runs before starting new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from mgt.serve.config import Schedule
from mgt.serve.state import SERVE_DIR, ScheduleState, ServeLock, ServeState
from mgt.serve.timing import due_tick, next_tick

__all__ = ["Clock", "Server"]

POLL_BUSY = 0.2  # seconds between looks at running children
POLL_IDLE = 1.0  # longest sleep while waiting for a tick (signals are seen within it)
GRACE = 60.0  # seconds a child gets to stop after SIGTERM before it is killed


class Clock:
    """The time now, UTC; `start` fixes it for tests (it then advances with the real clock)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._mono = time.monotonic()

    def now(self) -> datetime:
        if self._start is None:
            return datetime.now(UTC)
        return self._start + timedelta(seconds=time.monotonic() - self._mono)


@dataclass
class _Child:
    schedule: Schedule
    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    resumed: bool
    tick: str | None
    before: set[str] = field(default_factory=set)
    run_id: str | None = None
    announced: bool = False


class Server:
    """One `mgt serve`: holds the runs directory's scheduler lock while it runs."""

    def __init__(
        self,
        schedules: list[Schedule],
        runs_dir: Path,
        workdir: Path,
        *,
        clock: Clock,
        once: bool,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.schedules = schedules
        self.runs_dir = runs_dir.resolve()
        self.workdir = workdir
        self.clock = clock
        self.once = once
        self.emit = emit
        self.children: dict[str, _Child] = {}
        self.stopping: int | None = None  # the signal that asked us to stop
        self.interrupted_here: set[str] = set()  # schedules whose run stopped under us
        self.started_here: set[str] = set()
        self.busy_told: set[str] = set()
        self.failures = 0
        self.serve_dir = self.runs_dir / SERVE_DIR

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Serve until a signal (or, with `once`, until what was due has finished)."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        lock = ServeLock(self.runs_dir)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.state = ServeState.load(self.runs_dir)
            names = {s.name for s in self.schedules}
            for name in sorted(set(self.state.schedules) - names):
                entry = self.state.schedules[name]
                if entry.in_flight is not None:
                    self.emit({"event": "orphaned", "schedule": name,
                               "run_id": entry.in_flight.get("run_id"),
                               "message": "its [[schedule]] table is gone; not resumed"})
            while self.stopping is None:
                self._reap()
                if self.stopping is not None:
                    break
                self._start_due()
                if self.once and not self.children:
                    break
                self._sleep()
            if self.stopping is not None:
                self._stop_children()
                return 130
            return 1 if self.failures else 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock.release()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping is not None:  # a second Ctrl-C: do not wait for the children
            for child in self.children.values():
                _signal(child.proc, signal.SIGKILL)
        self.stopping = signum

    def _sleep(self) -> None:
        if self.children:
            time.sleep(POLL_BUSY)
            return
        now = self.clock.now()
        waits = [
            (next_tick(s, now, self.state.of(s.name).last_tick) - now).total_seconds()
            for s in self.schedules
        ]
        time.sleep(max(0.0, min([POLL_IDLE, *waits])))

    def _start_due(self) -> None:
        now = self.clock.now()
        for schedule in self.schedules:
            name = schedule.name
            if name in self.children or (self.once and name in self.started_here):
                continue
            entry = self.state.of(name)
            if entry.in_flight is not None:
                if name not in self.interrupted_here:
                    self._recover(schedule, entry)
                continue  # never a new run while one of this schedule is unfinished
            tick = due_tick(schedule, now, entry.last_tick)
            if tick is not None:
                self._start(schedule, entry, tick)

    # --------------------------------------------------------------- starting

    def _command(self, schedule: Schedule, run_id: str | None) -> list[str]:
        cmd = [sys.executable, "-m", "mgt"]
        if run_id is None:
            cmd += ["exec", str(schedule.machine)]
            for key, value in schedule.inputs.items():
                cmd += ["--input", f"{key}={_input_text(value)}"]
            if schedule.executor is not None:
                cmd += ["--executor", schedule.executor]
        else:
            cmd += ["resume", run_id]
        cmd += ["--runs-dir", str(self.runs_dir), "--json"]
        if schedule.budget_usd is not None:
            cmd += ["--budget-usd", repr(schedule.budget_usd)]
        return cmd

    def _spawn(self, schedule: Schedule, run_id: str | None, tick: str | None) -> _Child:
        self.started_here.add(schedule.name)
        for sub in ("out", "logs"):
            (self.serve_dir / sub).mkdir(parents=True, exist_ok=True)
        out = self.serve_dir / "out" / f"{schedule.name}.json"
        log = self.serve_dir / "logs" / f"{schedule.name}.log"
        before = set() if run_id is not None else _run_names(self.runs_dir)
        with out.open("wb") as out_fh, log.open("ab") as log_fh:
            log_fh.write(f"--- {self.clock.now().isoformat()} {schedule.name}\n".encode())
            log_fh.flush()
            # A session of its own: a Ctrl-C at the terminal reaches only us, and we forward
            # it as SIGTERM, the signal `mgt exec` treats as a resumable stop.
            proc = subprocess.Popen(
                self._command(schedule, run_id), cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=out_fh, stderr=log_fh, start_new_session=True,
            )
        child = _Child(schedule, proc, out, log, run_id is not None, tick, before, run_id)
        self.children[schedule.name] = child
        return child

    def _start(self, schedule: Schedule, entry: ScheduleState, tick: datetime) -> None:
        # The tick is spent and the run marked in flight before the child exists: a crash
        # from here on resumes this run, it never starts the tick again.
        entry.last_tick = tick
        entry.in_flight = {"run_id": None, "pid": None, "tick": tick.isoformat(),
                           "started_at": self.clock.now().isoformat()}
        self.state.save()
        child = self._spawn(schedule, None, tick.isoformat())
        entry.in_flight["pid"] = child.proc.pid
        self.state.save()

    def _recover(self, schedule: Schedule, entry: ScheduleState) -> None:
        """Resume a run left in flight by an earlier serve (or record how it ended)."""
        flight = entry.in_flight or {}
        run_id = flight.get("run_id")
        if not isinstance(run_id, str):
            run_id = _run_of_pid(self.runs_dir, flight.get("pid"), None)
        if run_id is None:
            self._finish(schedule, entry, {
                "run_id": None, "status": "lost", "exit_code": None, "cost_usd": None,
                "error": "the run's process ended before it created a run directory",
            })
            return
        from mgt.errors import JournalError
        from mgt.runtime.journal import load_run

        try:
            record = load_run(self.runs_dir, run_id)
        except JournalError as err:
            self._finish(schedule, entry, {"run_id": run_id, "status": "lost",
                                           "exit_code": None, "cost_usd": None,
                                           "error": str(err)})
            return
        if record.status == "running":
            # Someone holds it (a `mgt resume` by hand, a run outliving a killed serve).
            if schedule.name not in self.busy_told:
                self.busy_told.add(schedule.name)
                self.emit({"event": "busy", "schedule": schedule.name, "run_id": run_id,
                           "message": f"run {run_id} is held by another process; "
                                      "waiting for it"})
            return
        if record.status != "interrupted":
            self._finish(schedule, entry, {"run_id": run_id, "status": record.status,
                                           "exit_code": None, "cost_usd": record.cost_usd})
            return
        flight["run_id"] = run_id
        entry.in_flight = flight
        child = self._spawn(schedule, run_id, flight.get("tick"))
        flight["pid"] = child.proc.pid
        self.state.save()
        child.announced = True
        self.emit({"event": "resumed", "schedule": schedule.name, "run_id": run_id})

    # ---------------------------------------------------------------- watching

    def _reap(self) -> None:
        for name, child in list(self.children.items()):
            if child.run_id is None:
                child.run_id = _run_of_pid(self.runs_dir, child.proc.pid, child.before)
                if child.run_id is not None:
                    entry = self.state.of(name)
                    if entry.in_flight is not None:
                        entry.in_flight["run_id"] = child.run_id
                        self.state.save()
            if child.run_id is not None and not child.announced:
                child.announced = True
                self.emit({"event": "started", "schedule": name, "run_id": child.run_id,
                           "tick": child.tick})
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[name]
            self._ended(child, code)

    def _ended(self, child: _Child, code: int) -> None:
        name = child.schedule.name
        entry = self.state.of(name)
        summary = _read_summary(child.out)
        run_id = summary.get("run_id") if isinstance(summary.get("run_id"), str) else None
        run_id = run_id or child.run_id
        if run_id is not None and not child.announced:
            child.announced = True
            self.emit({"event": "started", "schedule": name, "run_id": run_id,
                       "tick": child.tick})
        status = summary.get("status")
        if not isinstance(status, str):
            status = "interrupted" if code == 130 and run_id is not None else "error"
        cost = summary.get("cost_usd")
        if status == "interrupted" and run_id is not None:
            # Resumable: stays in flight; the next serve (or this one, if it goes on) resumes it.
            self.interrupted_here.add(name)
            if entry.in_flight is not None:
                entry.in_flight["run_id"] = run_id
            self.state.save()
            self.emit({"event": "interrupted", "schedule": name, "run_id": run_id,
                       "cost_usd": cost, "exit_code": code})
            return
        result: dict[str, Any] = {"run_id": run_id, "status": status, "exit_code": code,
                                  "cost_usd": cost}
        if status == "error":
            result["error"] = _last_line(child.log) or f"exit code {code}"
        self._finish(child.schedule, entry, result)

    def _finish(self, schedule: Schedule, entry: ScheduleState, result: dict[str, Any]) -> None:
        result["finished_at"] = self.clock.now().isoformat()
        entry.last_run = result
        entry.in_flight = None
        self.state.save()
        if result["status"] not in ("succeeded",):
            self.failures += 1
        self.emit({"event": "finished", "schedule": schedule.name, **result})

    def _stop_children(self) -> None:
        for child in self.children.values():
            _signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while self.children:
            self._reap()
            if time.monotonic() > deadline:
                for child in self.children.values():
                    _signal(child.proc, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(POLL_BUSY / 2)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _input_text(value: Any) -> str:
    """A TOML input value → the `--input K=V` text `mgt exec` reads back as that value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _run_names(runs_dir: Path) -> set[str]:
    try:
        return {p.name for p in runs_dir.iterdir()}
    except OSError:
        return set()


def _run_of_pid(runs_dir: Path, pid: Any, before: set[str] | None) -> str | None:
    """The run directory whose lock names `pid` (a run's lock file holds its writer's pid)."""
    if not isinstance(pid, int):
        return None
    from mgt.runtime.journal import LOCK_FILE

    wanted = f"{pid}\n".encode()
    for name in _run_names(runs_dir):
        # hidden: .serve, and a run directory still being built under `.new-...` (its lock
        # already names the pid, but the run is not there yet: look again after the rename)
        if name.startswith(".") or (before is not None and name in before):
            continue
        try:
            with (runs_dir / name / LOCK_FILE).open("rb") as fh:
                if fh.read(32) == wanted:
                    return name
        except OSError:
            continue
    return None


def _read_summary(path: Path) -> dict[str, Any]:
    """The JSON object a child printed with --json (empty when it printed none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        value = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _last_line(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1].strip()[:500] if lines else None
