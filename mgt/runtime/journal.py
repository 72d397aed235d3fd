"""Run directory on disk ⇄ a durable run: `RunJournal` writes it, `load_run` reads it back.

    RUNS_DIR/<run-id>/
        run.json               summary, rewritten atomically at every step boundary
        events.jsonl           append-only, one fsync'd JSON object a line
        lock                   fcntl.flock'd by the one process that holds the run
        states/<state>/<n>/    prompt.md, request.json, the raw result, stderr, output.json
        outputs/<state>.json   the latest accepted output of each state
        inputs/<state>/        `file` inputs materialised for a formula's prompt

events.jsonl is the source of truth (an accepted output is in its
attempt_finished event too); run.json and outputs/ are views of it that resume
rewrites. A run killed at any instant is rebuilt from its events (a torn last
line is ignored and cut off before the next append), so no finished attempt is
ever lost or re-run.

Durability: a killed process loses nothing it wrote (the page cache outlives
it), so what fsync buys is surviving a crash of the machine itself. The events
that record finished work (attempt_finished, with its output) and the run's
own milestones (run_started/resumed/finished/interrupted) are fsync'd before
mgt goes on: one fsync per step, like a database commit per checkpoint. The
others (state_entered, attempt_started, transition, backoff) are written and
flushed, so a killed process keeps them, and become durable with the next
fsync; the log on disk is therefore always a prefix of the run, which resume
continues (an attempt whose start was lost to a machine crash is simply run
again, as one that started but did not finish would be).
Derived files are replaced atomically (tmp + rename) and fsync'd only when
asked (`durable=True`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mgt.errors import JournalError

__all__ = [
    "DURABLE_EVENTS",
    "EVENT_TYPES",
    "AttemptRecord",
    "RunJournal",
    "RunRecord",
    "StateRecord",
    "atomic_write_json",
    "atomic_write_text",
    "jsonable",
    "list_runs",
    "load_run",
    "new_run_id",
    "read_events",
    "read_taken_path",
]

EVENT_TYPES = (
    "run_started",
    "run_resumed",
    "state_entered",
    "attempt_started",
    "attempt_finished",
    "backoff",
    "guard_failed",
    "transition",
    "run_interrupted",
    "run_finished",
)

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = "lock"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(machine_name: str) -> str:
    """`20261125-101500-evolve-3f9a`: sortable by time, readable, unique enough to never collide."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")  # UTC, like every timestamp in a run
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in machine_name)[:40] or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def jsonable(value: Any) -> Any:
    """Make a runtime value JSON-serialisable: paths as strings, durations as their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    text = getattr(value, "text", None)  # mgt.expr Duration keeps its source text ("24h")
    if isinstance(text, str):
        return text
    seconds = getattr(value, "seconds", None)
    if isinstance(seconds, int | float):
        return seconds
    return str(value)


def _datasync(fd: int) -> None:
    """fdatasync where there is one: the data and the size, not the timestamps (cheaper)."""
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Events fsync'd before the journal returns (the rest ride on the next fsync).
DURABLE_EVENTS = frozenset(
    {"run_started", "run_resumed", "attempt_finished", "run_interrupted", "run_finished"}
)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Write a temp file and rename it over `path`: readers see the old file or the new one.

    `durable`: fsync the file before and its directory after the rename, so the
    new content also survives a crash of the machine.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"cannot write {path}: {err.strerror or err}") from err


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    text = json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(path, text, durable=durable)


def read_events(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """All whole events, and the byte length of the intact prefix (a torn last line is dropped).

    Only the last line may be torn (we append one fsync'd line at a time); garbage
    anywhere else means the file was edited or corrupted, which is an error.
    """
    path = run_dir / EVENTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"{run_dir.name}: no {EVENTS_FILE} (not a run directory?)") from None
    except OSError as err:
        raise JournalError(f"cannot read {path}: {err.strerror or err}") from err
    events: list[dict[str, Any]] = []
    good = 0
    pos = 0
    lineno = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        lineno += 1
        if end < 0:  # no newline: the write of the last line was cut short
            break
        line = data[pos:end]
        pos = end + 1
        if not line.strip():
            good = pos
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError) as err:
            if pos >= len(data):  # torn last line that happens to end in a newline
                break
            raise JournalError(f"{path}:{lineno}: corrupt event line ({err})") from None
        problem = event_problem(event)
        if problem is not None:
            raise JournalError(f"{path}:{lineno}: corrupt event ({problem})")
        events.append(event)
        good = pos
    return events, good


#: The fields an event of each type must have, with what they hold; every reader of a
#: journal (show, runs, graph --run, resume) relies on them, so a line without them is corrupt.
_EVENT_FIELDS: dict[str, dict[str, str]] = {
    "state_entered": {"state": "text"},
    "attempt_started": {"state": "text", "attempt": "integer"},
    "attempt_finished": {"state": "text", "attempt": "integer", "outcome": "text"},
    "transition": {"from": "text", "event": "text", "to": "text"},
    "run_finished": {"status": "text"},
}
#: Fields that may be missing or null, but hold this when given.
_OPTIONAL_FIELDS: dict[str, str] = {
    "type": "text",
    "cost_usd": "number",
    "tokens": "token counts",
    "problems": "list",
    "error": "text",
    "feedback": "text",
}
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "token counts": (
        'an object of integers ({"input": N, "output": N})',
        lambda v: isinstance(v, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in v.values()),
    ),
}


def event_problem(event: Mapping[str, Any]) -> str | None:
    """What is wrong with one journal event (a missing or mistyped field), or None."""
    kind = event.get("type")
    required = _EVENT_FIELDS.get(kind, {}) if isinstance(kind, str) else {}
    what = f"{kind} event" if isinstance(kind, str) else "event"
    for key in required:
        if key not in event:
            return f"{what} without '{key}'"
    for key, holds in (*required.items(), *_OPTIONAL_FIELDS.items()):
        value = event.get(key)
        if value is None and key not in required:
            continue
        word, fits = _KINDS[holds]
        if not fits(value):
            return f"{what}: '{key}' should be {word}, got {json.dumps(value)[:40]}"
    return None


# --------------------------------------------------------------------------- reading a run


@dataclass
class AttemptRecord:
    attempt: int
    outcome: str | None = None  # None while running / when the process died mid-attempt
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    feedback: str | None = None
    started: str | None = None
    finished: str | None = None


@dataclass
class StateRecord:
    name: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    visits: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    output: Any = None

    @property
    def last_outcome(self) -> str | None:
        return next((a.outcome for a in reversed(self.attempts) if a.outcome), None)


@dataclass
class RunRecord:
    """A run as read back from disk (for `mgt runs`, `mgt show`, `mgt graph --run`)."""

    run_id: str
    run_dir: Path
    info: dict[str, Any]  # run.json as written
    events: list[dict[str, Any]]
    states: dict[str, StateRecord]
    path: list[str]
    transitions: list[tuple[str, str, str]]
    status: str
    final: str | None
    cost_usd: float
    input_tokens: int
    output_tokens: int

    def outputs(self) -> dict[str, Any]:
        return {name: s.output for name, s in self.states.items() if s.output is not None}

    def summary(self) -> dict[str, Any]:
        """The `mgt exec --json` object (DESIGN §4)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "final": self.final,
            "path": self.path,
            "outputs": self.outputs(),
            "cost_usd": round(self.cost_usd, 6),
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
        }


def _run_dir(runs_dir: Path | str, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id in {".", ".."}:
        raise JournalError(f"bad run id {run_id!r}")
    run_dir = Path(runs_dir) / run_id
    if not (run_dir / EVENTS_FILE).is_file():
        known = sorted(p.name for p in Path(runs_dir).glob("*/") if (p / EVENTS_FILE).is_file())
        from mgt.diagnostics import did_you_mean

        hint = did_you_mean(run_id, known)
        suffix = f" ({hint})" if hint else ""
        raise JournalError(f"no run {run_id!r} in {runs_dir}{suffix}")
    return run_dir


def load_run(runs_dir: Path | str, run_id: str) -> RunRecord:
    """Read a run's events, run.json and outputs into a `RunRecord`."""
    run_dir = _run_dir(runs_dir, run_id)
    events, _ = read_events(run_dir)
    try:
        info = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        info = {}
    # run.json is a view of the journal: what is unreadable in it is left out, not fatal
    info = {k: v for k, v in info.items() if info_problem(k, v) is None} \
        if isinstance(info, dict) else {}
    return _record_from_events(run_id, run_dir, info, events)


#: What each field of run.json holds (each may also be missing or null).
_INFO_FIELDS: dict[str, str] = {
    "run_id": "text", "status": "text", "current_state": "text", "final": "text",
    "message": "text", "created": "text", "updated": "text", "cwd": "text", "executor": "text",
    "budget_usd": "number", "cost_usd": "number", "path": "list",
    "machine": "object", "inputs": "object", "executor_options": "object", "tokens": "object",
}
_MACHINE_FIELDS = ("name", "path", "sha256")


def info_problem(key: str, value: Any) -> str | None:
    """What is wrong with one field of run.json (the wrong type), or None."""
    if value is None or key not in _INFO_FIELDS:
        return None
    holds = _INFO_FIELDS[key]
    if holds == "object":
        if not isinstance(value, dict):
            return f"'{key}' should be an object, got {json.dumps(value)[:40]}"
        if key == "machine":
            for name in _MACHINE_FIELDS:
                item = value.get(name)
                if item is not None and not isinstance(item, str):
                    return f"'machine.{name}' should be a string, got {json.dumps(item)[:40]}"
        return None
    word, fits = _KINDS[holds]
    return None if fits(value) else f"'{key}' should be {word}, got {json.dumps(value)[:40]}"


def _record_from_events(
    run_id: str, run_dir: Path, info: dict[str, Any], events: list[dict[str, Any]]
) -> RunRecord:
    states: dict[str, StateRecord] = {}
    path: list[str] = []
    transitions: list[tuple[str, str, str]] = []
    status = "running"
    final: str | None = None
    cost = 0.0
    tin = tout = 0
    for ev in events:
        kind = ev.get("type")
        if kind == "state_entered":
            name = str(ev["state"])
            path.append(name)
            if not ev.get("final"):
                states.setdefault(name, StateRecord(name)).visits += 1
        elif kind == "attempt_started":
            rec = states.setdefault(str(ev["state"]), StateRecord(str(ev["state"])))
            rec.attempts.append(AttemptRecord(int(ev["attempt"]), started=ev.get("ts")))
        elif kind == "attempt_finished":
            rec = states.setdefault(str(ev["state"]), StateRecord(str(ev["state"])))
            att = next((a for a in rec.attempts if a.attempt == ev["attempt"]), None)
            if att is None:
                att = AttemptRecord(int(ev["attempt"]))
                rec.attempts.append(att)
            att.outcome = ev.get("outcome")
            att.cost_usd = float(ev.get("cost_usd") or 0.0)
            tokens = ev.get("tokens") or {}
            att.input_tokens = int(tokens.get("input", 0))
            att.output_tokens = int(tokens.get("output", 0))
            att.error = ev.get("error")
            att.feedback = ev.get("feedback")
            att.finished = ev.get("ts")
            rec.cost_usd += att.cost_usd
            rec.input_tokens += att.input_tokens
            rec.output_tokens += att.output_tokens
            cost += att.cost_usd
            tin += att.input_tokens
            tout += att.output_tokens
        elif kind == "transition":
            transitions.append((str(ev["from"]), str(ev["event"]), str(ev["to"])))
        elif kind in {"run_started", "run_resumed"}:
            status = "running"
        elif kind == "run_interrupted":
            status = "interrupted"
        elif kind == "run_finished":
            status = str(ev.get("status", "failed"))
            final = ev.get("final")
    if status == "running" and not _lock_is_held(run_dir):
        status = "interrupted"  # nobody holds it: the process died (kill -9, power loss)
    for name, rec in states.items():
        out = run_dir / "outputs" / f"{name}.json"
        if out.is_file():
            with contextlib.suppress(OSError, ValueError, RecursionError):  # a view: best effort
                rec.output = json.loads(out.read_text(encoding="utf-8"))
    return RunRecord(
        run_id=run_id,
        run_dir=run_dir,
        info=info,
        events=events,
        states=states,
        path=path,
        transitions=transitions,
        status=status,
        final=final,
        cost_usd=cost,
        input_tokens=tin,
        output_tokens=tout,
    )


def read_taken_path(runs_dir: Path | str, run_id: str) -> list[tuple[str, str, str]]:
    """The transitions a run took, in order, as (from_state, event, to_state)."""
    run_dir = _run_dir(runs_dir, run_id)
    events, _ = read_events(run_dir)
    return [
        (str(ev["from"]), str(ev["event"]), str(ev["to"]))
        for ev in events
        if ev.get("type") == "transition"
    ]


def list_runs(runs_dir: Path | str) -> list[RunRecord]:
    """Every run under `runs_dir`, newest first (unreadable directories are skipped)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    records: list[RunRecord] = []
    for child in root.iterdir():
        if not (child / EVENTS_FILE).is_file():
            continue
        try:
            records.append(load_run(root, child.name))
        except JournalError:
            continue
    records.sort(key=lambda r: (str(r.info.get("created", "")), r.run_id), reverse=True)
    return records


def _lock_is_held(run_dir: Path) -> bool:
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- writing a run


class RunJournal:
    """The one writer of a run directory; holds its lock from `create`/`open` until `close`."""

    def __init__(self, run_dir: Path, lock_fd: int, events: list[dict[str, Any]], size: int):
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self._lock_fd: int | None = lock_fd
        self.events = events
        self._seq = max((int(e.get("seq", 0)) for e in events), default=0)
        path = run_dir / EVENTS_FILE
        try:
            if path.exists() and path.stat().st_size != size:
                os.truncate(path, size)  # cut off a torn last line before appending
            # a lone surrogate (valid JSON, no UTF-8) is written as its \\uXXXX escape:
            # the same JSON string, read back exactly
            self._fh: IO[str] = open(  # noqa: SIM115
                path, "a", encoding="utf-8", errors="backslashreplace"
            )
        except OSError as err:
            self._release()
            raise JournalError(f"cannot open {path}: {err.strerror or err}") from err
        self.info: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path | str, run_id: str) -> RunJournal:
        run_dir = Path(runs_dir) / run_id
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            (run_dir / "states").mkdir()
            (run_dir / "outputs").mkdir()
            (run_dir / EVENTS_FILE).touch()
            _fsync_dir(run_dir)
            _fsync_dir(run_dir.parent)
        except FileExistsError:
            raise JournalError(f"run directory {run_dir} already exists") from None
        except OSError as err:
            raise JournalError(f"cannot create {run_dir}: {err.strerror or err}") from err
        return cls(run_dir, _acquire_lock(run_dir), [], 0)

    @classmethod
    def open(cls, runs_dir: Path | str, run_id: str) -> RunJournal:
        """Take over an existing run (for resume): lock it, then read its intact events."""
        run_dir = _run_dir(runs_dir, run_id)
        lock_fd = _acquire_lock(run_dir)
        try:
            events, size = read_events(run_dir)
            info = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise JournalError(f"{run_id}: corrupt {RUN_FILE}: not a JSON object")
            problem = next(filter(None, (info_problem(k, v) for k, v in info.items())), None)
            if problem is not None:
                raise JournalError(f"{run_id}: corrupt {RUN_FILE}: {problem}")
        except JournalError:
            _unlock(lock_fd)
            raise
        except (OSError, ValueError, RecursionError) as err:
            _unlock(lock_fd)
            raise JournalError(f"{run_id}: cannot read {RUN_FILE}: {err}") from err
        journal = cls(run_dir, lock_fd, events, size)
        journal.info = info
        return journal

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def append(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append one event line; fsync it first if it is one of DURABLE_EVENTS."""
        self._seq += 1
        event = {"seq": self._seq, "ts": now_iso(), "type": type, **jsonable(fields)}
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._fh.write(line)
            self._fh.flush()
            if type in DURABLE_EVENTS:
                _datasync(self._fh.fileno())
        except OSError as err:
            raise JournalError(f"cannot append to {self.run_dir / EVENTS_FILE}: {err}") from err
        self.events.append(event)
        return event

    def write_info(self, *, durable: bool = False, **fields: Any) -> None:
        """Update run.json (atomically) with `fields`; `updated` is set for you."""
        self.info.update(jsonable(fields))
        self.info["updated"] = now_iso()
        atomic_write_json(self.run_dir / RUN_FILE, self.info, durable=durable)

    def attempt_dir(self, state: str, attempt: int) -> Path:
        path = self.run_dir / "states" / state / str(attempt)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JournalError(f"cannot create {path}: {err.strerror or err}") from err
        return path

    def write_output(self, state: str, output: Any) -> None:
        atomic_write_json(self.run_dir / "outputs" / f"{state}.json", output, durable=False)

    def read_output(self, state: str) -> Any:
        path = self.run_dir / "outputs" / f"{state}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as err:
            raise JournalError(f"cannot read {path}: {err}") from err

    def record(self) -> RunRecord:
        return _record_from_events(self.run_id, self.run_dir, self.info, self.events)


LOCK_TRIES = 6
LOCK_RETRY_SECONDS = 0.05


def _acquire_lock(run_dir: Path) -> int:
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise JournalError(f"cannot open {path}: {err.strerror or err}") from err
    for _ in range(LOCK_TRIES):  # a reader probing the lock (`_lock_is_held`) holds it briefly
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            time.sleep(LOCK_RETRY_SECONDS)
    else:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        raise JournalError(f"run {run_dir.name} is held by another process{holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()
