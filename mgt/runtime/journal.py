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
mgt goes on: one fsync per step, like a database commit per checkpoint; the
item_finished events of a fan-out's items that end together share one (group
commit, `sync_through`), each still on disk before its item is counted. The
others (state_entered, attempt_started, process_started, transition, backoff) are written and
flushed, so a killed process keeps them, and become durable with the next
fsync; the log on disk is therefore always a prefix of the run, which resume
continues (an attempt whose start was lost to a machine crash is simply run
again, as one that started but did not finish would be).
Derived files are replaced atomically (tmp + rename) and fsync'd only when
asked (`durable=True`). A new run directory is built under a hidden name and
renamed into place with its run.json, so it is never seen half made.

Each line is a typed event (`mgt.runtime.events`), checked as it is read, and
every reader folds them into one `RunState`; `RunRecord` is that fold plus
run.json, for `mgt runs`, `mgt show` and `mgt graph --run`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mgt.errors import JournalError
from mgt.runtime.events import (
    AttemptRecord,
    Event,
    EventProblem,
    RunState,
    StateRecord,
    fold,
    parse_event,
)

__all__ = [
    "DURABLE_EVENTS",
    "EVENT_TYPES",
    "AttemptRecord",
    "RunJournal",
    "RunRecord",
    "StateRecord",
    "TooDeep",
    "atomic_write_json",
    "atomic_write_text",
    "jsonable",
    "list_runs",
    "load_run",
    "new_run_id",
    "read_events",
    "read_run_events",
    "read_taken_path",
    "record_of",
    "run_infos",
    "run_summary",
    "sha256_file",
]

EVENT_TYPES = (
    "run_started",
    "run_resumed",
    "state_entered",
    "attempt_started",
    "process_started",
    "attempt_finished",
    "item_started",
    "item_finished",
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
    return f"{stamp}-{slug}-{secrets.token_hex(4)}"  # 32 bits: ids of one second do not meet


#: How deep a value may nest to be journaled; deeper is refused, never a RecursionError
#: (json's encoder recurses once a level, within Python's limit of 1000 frames).
MAX_DEPTH = 400


class TooDeep(ValueError):
    """A value nested deeper than MAX_DEPTH levels (the journal cannot keep it)."""


def jsonable(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Make a runtime value JSON-serialisable: paths as strings, durations as their text.

    Raises `TooDeep` (a ValueError) for a value nested deeper than `max_depth` (a hostile model
    answer can be): the caller decides what that means, no stack overflows here.
    """
    return _jsonable(value, max_depth)


def _jsonable(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth <= 0 and isinstance(value, Mapping | list | tuple | set | frozenset):
        raise TooDeep(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth - 1) for v in value]
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
    {"run_started", "run_resumed", "attempt_finished", "item_finished", "run_interrupted",
     "run_finished"}
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
    """All whole events as JSON objects, and the byte length of the intact prefix.

    Each line is checked as it is read (`mgt.runtime.events.parse_event`); see
    `read_run_events` for the typed events.
    """
    typed, size = read_run_events(run_dir)
    return [e.to_json() for e in typed], size


def read_run_events(run_dir: Path) -> tuple[list[Event], int]:
    """All whole events, typed, and the byte length of the intact prefix (a torn last line
    is dropped).

    Only the last line may be torn (we append one line at a time); garbage anywhere
    else means the file was edited or corrupted: `file:line: corrupt event (why)`.
    """
    path = run_dir / EVENTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"{run_dir.name}: no {EVENTS_FILE} (not a run directory?)") from None
    except OSError as err:
        raise JournalError(f"cannot read {path}: {err.strerror or err}") from err
    events: list[Event] = []
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
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError) as err:
            if pos >= len(data):  # torn last line that happens to end in a newline
                break
            raise JournalError(f"{path}:{lineno}: corrupt event line ({err})") from None
        try:
            events.append(parse_event(raw))
        except EventProblem as err:
            raise JournalError(f"{path}:{lineno}: corrupt event ({err})") from None
        good = pos
    return events, good


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


# --------------------------------------------------------------------------- reading a run


@dataclass
class RunRecord:
    """A run as read back from disk (for `mgt runs`, `mgt show`, `mgt graph --run`).

    Everything but `info` comes from the fold of its events (`run`); `problem` is set,
    and `status` is "corrupt", for a run whose journal cannot be read (`mgt runs`).
    """

    run_id: str
    run_dir: Path
    info: dict[str, Any]  # run.json as written (a view; the journal holds the truth)
    run: RunState
    status: str
    problem: str | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.run.events]

    @property
    def states(self) -> dict[str, StateRecord]:
        return self.run.states

    @property
    def path(self) -> list[str]:
        return self.run.path

    @property
    def transitions(self) -> list[tuple[str, str, str]]:
        return self.run.taken

    @property
    def final(self) -> str | None:
        return self.run.final

    @property
    def current_state(self) -> str | None:
        return self.run.current_state

    @property
    def cost_usd(self) -> float:
        return self.run.cost_usd

    @property
    def input_tokens(self) -> int:
        return self.run.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.run.output_tokens

    def outputs(self) -> dict[str, Any]:
        return {name: s.output for name, s in self.states.items() if s.output is not None}

    def summary(self) -> dict[str, Any]:
        """The `mgt exec --json` object (docs/cli.md)."""
        return run_summary(self.run_id, self.status, self.run, self.outputs())


def run_summary(run_id: str, status: str, run: RunState, outputs: Mapping[str, Any]
                ) -> dict[str, Any]:
    """The `mgt exec --json` / `mgt resume --json` object, the one place it is written."""
    return {
        "run_id": run_id,
        "status": status,
        "final": run.final,
        "path": list(run.path),
        "outputs": jsonable(dict(outputs)),
        "cost_usd": round(run.cost_usd, 6),
        "tokens": {"input": run.input_tokens, "output": run.output_tokens},
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


def _read_info(run_dir: Path) -> dict[str, Any]:
    """run.json, leaving out what is unreadable in it (a view of the journal: not fatal)."""
    try:
        info = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        info = {}
    if not isinstance(info, dict):
        return {}
    return {k: v for k, v in info.items() if info_problem(k, v) is None}


def load_run(runs_dir: Path | str, run_id: str) -> RunRecord:
    """Read a run's events (through the fold), run.json and outputs into a `RunRecord`."""
    run_dir = _run_dir(runs_dir, run_id)
    events, _ = read_run_events(run_dir)
    return record_of(run_dir, _read_info(run_dir), fold(events))


def record_of(run_dir: Path, info: dict[str, Any], run: RunState) -> RunRecord:
    """A `RunRecord` of a folded run; a run nobody holds that did not end was killed."""
    status = run.status
    if status == "running" and not _lock_is_held(run_dir):
        status = "interrupted"  # nobody holds it: the process died (kill -9, power loss)
    for name, rec in run.states.items():
        out = run_dir / "outputs" / f"{name}.json"
        if out.is_file():
            with contextlib.suppress(OSError, ValueError, RecursionError):  # a view: best effort
                rec.output = json.loads(out.read_text(encoding="utf-8"))
    return RunRecord(run_id=run_dir.name, run_dir=run_dir, info=info, run=run, status=status)


#: What each field of run.json holds (each may also be missing or null).
_INFO_FIELDS: dict[str, str] = {
    "run_id": "text", "status": "text", "current_state": "text", "final": "text",
    "message": "text", "created": "text", "updated": "text", "cwd": "text", "executor": "text",
    "budget_usd": "number", "cost_usd": "number", "path": "list",
    "machine": "object", "inputs": "object", "executor_options": "object", "tokens": "object",
    "definitions": "object",
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
        if key == "definitions" and not all(isinstance(v, str) for v in value.values()):
            return "'definitions' should map files to sha256 strings"
        return None
    word, fits = _KINDS[holds]
    return None if fits(value) else f"'{key}' should be {word}, got {json.dumps(value)[:40]}"


def read_taken_path(runs_dir: Path | str, run_id: str) -> list[tuple[str, str, str]]:
    """The transitions a run took, in order, as (from_state, event, to_state)."""
    run_dir = _run_dir(runs_dir, run_id)
    events, _ = read_run_events(run_dir)
    return fold(events).taken


def _run_dirs(runs_dir: Path | str) -> Iterator[Path]:
    """The directory of each run under `runs_dir` (a run being created, see
    RunJournal.create, is not one yet)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if not child.name.startswith(".") and (child / EVENTS_FILE).is_file():
            yield child


def run_infos(runs_dir: Path | str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(run id, run.json) of each run `list_runs` lists, without reading its events."""
    for child in _run_dirs(runs_dir):
        yield child.name, _read_info(child)


def list_runs(runs_dir: Path | str) -> list[RunRecord]:
    """Every run under `runs_dir`, newest first; a run whose journal cannot be read is listed
    with status "corrupt" and the reason in `problem`, never left out."""
    root = Path(runs_dir)
    records: list[RunRecord] = []
    for child in _run_dirs(root):
        try:
            records.append(load_run(root, child.name))
        except JournalError as err:
            records.append(RunRecord(run_id=child.name, run_dir=child, info=_read_info(child),
                                     run=RunState(), status="corrupt", problem=str(err)))
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
    """The one writer of a run directory; holds its lock from `create`/`open` until `close`.

    `state` is the fold of every event written or read so far (`mgt.runtime.events`).
    """

    def __init__(self, run_dir: Path, lock_fd: int, events: list[Event], size: int):
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self._lock_fd: int | None = lock_fd
        self.state: RunState = fold(events)
        self._seq = max((e.seq for e in events), default=0)
        self._synced = self._seq  # every event up to this seq is on disk
        self._sync_lock = threading.Lock()
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

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event as its JSON object (the typed ones are `state.events`)."""
        return [e.to_json() for e in self.state.events]

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path | str, run_id: str,
               info: Mapping[str, Any] | None = None) -> RunJournal:
        """A new run directory, complete with its run.json (`info`) before anyone sees it.

        It is built under a hidden name in `runs_dir` and renamed into place, so a
        kill at any instant leaves either no run or one that resumes.
        """
        root = Path(runs_dir)
        run_dir = root / run_id
        if run_dir.exists():
            raise JournalError(f"run directory {run_dir} already exists")
        _sweep_unborn(root)
        tmp = root / f"{UNBORN_PREFIX}{run_id}-{secrets.token_hex(6)}"
        lock_fd: int | None = None
        try:
            tmp.mkdir(parents=True)
            (tmp / "states").mkdir()
            (tmp / "outputs").mkdir()
            (tmp / EVENTS_FILE).touch()
            lock_fd = _acquire_lock(tmp)  # the lock is the inode's: it moves with the rename
            start_info = {**jsonable(dict(info or {})), "run_id": run_id}
            if info is not None:
                start_info.setdefault("created", now_iso())
                start_info["updated"] = now_iso()
                atomic_write_json(tmp / RUN_FILE, start_info, durable=True)
            _fsync_dir(tmp)
            try:
                os.rename(tmp, run_dir)
            except OSError as err:
                if err.errno in {errno.EEXIST, errno.ENOTEMPTY}:
                    raise JournalError(f"run directory {run_dir} already exists") from None
                raise
            _fsync_dir(root)
        except BaseException as err:
            if lock_fd is not None:
                _unlock(lock_fd)
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, OSError):
                raise JournalError(f"cannot create {run_dir}: {err.strerror or err}") from err
            raise
        journal = cls(run_dir, lock_fd, [], 0)
        journal.info = start_info if info is not None else {}
        return journal

    @classmethod
    def create_new(cls, runs_dir: Path | str, machine_name: str,
                   info: Mapping[str, Any] | None = None) -> RunJournal:
        """`create` under a fresh run id, trying another one should the id be taken."""
        for _ in range(ID_TRIES - 1):
            try:
                return cls.create(runs_dir, new_run_id(machine_name), info)
            except JournalError as err:
                if "already exists" not in str(err):
                    raise
        return cls.create(runs_dir, new_run_id(machine_name), info)

    @classmethod
    def open(cls, runs_dir: Path | str, run_id: str) -> RunJournal:
        """Take over an existing run (for resume): lock it, then read its intact events."""
        run_dir = _run_dir(runs_dir, run_id)
        lock_fd = _acquire_lock(run_dir)
        try:
            events, size = read_run_events(run_dir)
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

    def emit(self, event: Event, *, sync: bool = True) -> Event:
        """Append one typed event (stamped with seq and ts); fsync it first if it is one of
        DURABLE_EVENTS. Returns the stamped event, already folded into `state`.

        `sync=False`: the caller makes it durable with `sync_through(event.seq)` before
        it goes on, outside whatever lock it holds around `emit`, so that the events
        of many threads finishing at once (a fan-out's items) share one fsync.
        """
        try:
            data = jsonable(replace(event, seq=self._seq + 1, ts=now_iso()).to_json())
            line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
            stamped = parse_event(data)  # folded as it will be read back, not as given
        except (ValueError, RecursionError) as err:
            raise JournalError(f"refusing to journal a {event.type} event: {err}") from None
        try:
            self._fh.write(line)
            self._fh.flush()
        except OSError as err:
            raise JournalError(f"cannot append to {self.run_dir / EVENTS_FILE}: {err}") from err
        self._seq += 1
        self.state.apply(stamped)
        if sync and stamped.type in DURABLE_EVENTS:
            self.sync_through(stamped.seq)
        return stamped

    def sync_through(self, seq: int) -> None:
        """Return once every event up to `seq` is on disk: one fdatasync covers all the
        events written before it began, so threads waiting together share it (group
        commit); the file is appended in order, so what is on disk is a prefix."""
        if self._synced >= seq:
            return
        with self._sync_lock:
            if self._synced >= seq:
                return
            written = self._seq  # all of these lines are written and flushed
            try:
                _datasync(self._fh.fileno())
            except OSError as err:
                raise JournalError(f"cannot sync {self.run_dir / EVENTS_FILE}: {err}") from err
            self._synced = max(self._synced, written)

    def append(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append one event given as its JSON fields (checked like a line read back)."""
        try:
            event = parse_event({"type": type, **jsonable(fields)})
        except EventProblem as err:
            raise JournalError(f"refusing to journal a malformed event: {err}") from None
        return self.emit(event).to_json()

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
        return record_of(self.run_dir, self.info, self.state)


#: Name prefix of a run directory being built (hidden: `mgt runs` does not list it).
UNBORN_PREFIX = ".new-"
UNBORN_GRACE_SECONDS = 60.0


def _sweep_unborn(root: Path) -> None:
    """Remove what a kill left of runs being created: their lock is no longer held."""
    try:
        leftovers = [p for p in root.iterdir() if p.name.startswith(UNBORN_PREFIX)]
    except OSError:
        return
    now = time.time()
    for path in leftovers:
        try:  # a young one may be another process's, between its mkdir and its lock
            young = now - path.stat().st_mtime < UNBORN_GRACE_SECONDS
        except OSError:
            continue
        if not young and not _lock_is_held(path):
            shutil.rmtree(path, ignore_errors=True)


#: How many fresh run ids `create_new` tries before giving up.
ID_TRIES = 5
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
