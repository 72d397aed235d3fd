"""Runs directory, PatternReport files and PR records → plain view models the pages render.

This is the web view's only door to data: every page reads through these
functions, which read runs only through `mgt.runtime.journal`'s public readers
(plus the attempt files for prompts and answers), so pointing the view at a new
reader means editing this module alone. Nothing here writes anything.

What these models hold is untrusted text (log lines, prompts, model answers,
run ids); templates escape it. Secrets are masked here, before any template
sees them: input values whose key names a credential, and the userinfo of URLs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mgt.errors import JournalError, MgtError
from mgt.runtime.journal import RunRecord, StateRecord, load_run

__all__ = [
    "MASK",
    "AttemptView",
    "FileView",
    "GraphView",
    "ItemView",
    "PRView",
    "PatternView",
    "ReportView",
    "RunRow",
    "RunView",
    "StateView",
    "events_size",
    "format_cost",
    "format_duration",
    "load_report",
    "mask_secrets",
    "pattern_reports_of",
    "pr_records",
    "report_view",
    "run_graph",
    "run_rows",
    "run_snapshot",
    "run_view",
]

MASK = "••••••"
#: Keys whose values are credentials wherever they appear (inputs, request bindings).
_SECRET_KEY = re.compile(r"token|key|secret|passw(or)?d|credential|auth", re.IGNORECASE)
#: `scheme://user:password@host`: the userinfo part is masked, the rest kept.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]+)@")
#: A file shown in an attempt is cut at this many characters (the rest is on disk).
MAX_FILE_CHARS = 200_000


# ---------------------------------------------------------------- formatting


def parse_ts(text: Any) -> datetime | None:
    """An ISO timestamp from a journal (`...Z`), or None when missing or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def format_duration(seconds: float | None) -> str:
    """`850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`; an empty string for None."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def format_cost(usd: float) -> str:
    return f"${usd:.4f}"


def _seconds_between(start: Any, end: Any) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    return (b - a).total_seconds() if a and b else None


def mask_secrets(value: Any, key: str = "") -> Any:
    """`value` with credentials replaced by MASK: values of keys naming a secret, URL userinfo."""
    if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, str):
        return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", value)
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- the runs list


@dataclass(frozen=True)
class RunRow:
    run_id: str
    status: str
    machine: str
    created: str
    duration: str
    cost: str
    tokens: str
    final: str
    current: str
    sort_key: tuple[str, str] = ("", "")  # (run.json's created, run id), as list_runs sorts


def _machine_name(record: RunRecord) -> str:
    machine = record.info.get("machine")
    name = machine.get("name") if isinstance(machine, dict) else None
    if isinstance(name, str) and name:
        return name
    started = next((e for e in record.events if e.get("type") == "run_started"), {})
    return str(started.get("machine") or "?")


def _run_seconds(record: RunRecord) -> float | None:
    start = record.info.get("created") or (record.events[0].get("ts") if record.events else None)
    end = record.events[-1].get("ts") if record.events else None
    if record.status == "running":
        begun = parse_ts(start)
        return (datetime.now(UTC) - begun).total_seconds() if begun else None
    return _seconds_between(start, end)


def _current_state(record: RunRecord) -> str:
    return record.path[-1] if record.path else ""


def _row(record: RunRecord) -> RunRow:
    created = parse_ts(record.info.get("created"))
    return RunRow(
        run_id=record.run_id,
        status=record.status,
        machine=_machine_name(record),
        created=created.strftime("%Y-%m-%d %H:%M:%S") if created else "",
        duration=format_duration(_run_seconds(record)),
        cost=format_cost(record.cost_usd),
        tokens=f"{record.input_tokens:,} in / {record.output_tokens:,} out",
        final=record.final or "",
        current=_current_state(record),
        sort_key=(str(record.info.get("created", "")), record.run_id),
    )


#: Rows of finished runs, by run directory, with the (events size, events mtime, run.json
#: mtime) they were read at: a finished run does not change, so a list of a thousand runs
#: reads only the new and the running ones again (list_runs would read them all).
_ROWS: dict[Path, tuple[tuple[int, int, int], RunRow]] = {}


def _file_key(run_dir: Path) -> tuple[int, int, int] | None:
    try:
        events = (run_dir / "events.jsonl").stat()
    except OSError:
        return None
    try:
        info = (run_dir / "run.json").stat().st_mtime_ns
    except OSError:
        info = 0
    return events.st_size, events.st_mtime_ns, info


def _all_rows(runs_dir: Path) -> list[RunRow]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows: list[RunRow] = []
    for child in root.iterdir():
        key = _file_key(child)
        if key is None:
            continue
        cached = _ROWS.get(child)
        if cached is not None and cached[0] == key and cached[1].status != "running":
            rows.append(cached[1])
            continue
        try:
            row = _row(load_run(root, child.name))
        except JournalError:  # unreadable: skipped, as list_runs skips it
            continue
        _ROWS[child] = (key, row)
        rows.append(row)
    rows.sort(key=lambda r: r.sort_key, reverse=True)
    return rows


def run_rows(
    runs_dir: Path, *, status: str | None = None, machine: str | None = None
) -> tuple[list[RunRow], list[str], list[str]]:
    """Rows of the runs list (newest first) matching the filters, and every status and machine."""
    rows = _all_rows(runs_dir)
    statuses = sorted({r.status for r in rows})
    machines = sorted({r.machine for r in rows})
    chosen = [
        r for r in rows
        if (not status or r.status == status) and (not machine or r.machine == machine)
    ]
    return chosen, statuses, machines


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class FileView:
    name: str
    text: str
    truncated: bool = False


@dataclass(frozen=True)
class AttemptView:
    number: int
    outcome: str  # "running" while it has not finished
    cost: str
    tokens: str
    duration: str
    error: str | None
    problems: list[str]
    feedback: str | None
    prompt: FileView | None
    answer: FileView | None
    output: str | None
    stderr: FileView | None
    other_files: list[FileView]


@dataclass(frozen=True)
class StateView:
    name: str
    visits: int
    outcome: str
    cost: str
    tokens: str
    current: bool
    attempts: list[AttemptView]
    has_report: bool
    items: list[ItemView] = field(default_factory=list)  # a fan-out's, or branches'


@dataclass(frozen=True)
class ItemView:
    """One item (or branch) of a fan-out state: its latest result, or in flight."""

    index: int
    key: str
    outcome: str
    cost: str
    error: str
    output: str


def _item_views(rec: Any, status: str) -> list[ItemView]:
    items: dict[int, ItemView] = {}
    for index, ev in getattr(rec, "items", {}).items():
        key = "" if ev.key is None else (ev.key if isinstance(ev.key, str)
                                          else json.dumps(ev.key, ensure_ascii=False))
        items[index] = ItemView(
            index=index, key=str(mask_secrets(key)), outcome=ev.outcome,
            cost=format_cost(ev.cost_usd), error=str(mask_secrets(ev.error or "")),
            output=_pretty(mask_secrets(ev.output)) if ev.output is not None else "")
    for index in getattr(rec, "items_running", set()):
        items[index] = ItemView(index=index, key="",
                                outcome="running" if status == "running" else "did not finish",
                                cost="", error="", output="")
    return [items[i] for i in sorted(items)]


@dataclass(frozen=True)
class RunView:
    run_id: str
    status: str
    machine: str
    machine_path: str
    created: str
    duration: str
    cost: str
    tokens: str
    final: str
    message: str
    current: str
    path: list[str]
    inputs: list[tuple[str, str]]
    states: list[StateView]
    seq: int = 0
    executor: str = ""
    machine_note: str = ""  # why the drawing may not be of the machine this run ran


#: Attempt files shown in their own place; every other file is listed after them.
_PROMPT_FILES = ("prompt.md",)
_ANSWER_FILES = ("result.json", "stdout.txt")
_STDERR_FILES = ("stderr.txt",)
_SKIPPED_FILES = {"output.json", "feedback.md", "system-prompt.md"}


def _read_file(path: Path) -> FileView | None:
    """An attempt file as text; a link is not followed (an agent with tools could point
    one at any file of the machine) and a binary file is described, not shown."""
    if path.is_symlink():
        return FileView(path.name, "(a symbolic link: not followed)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_CHARS * 4 + 1)
    except OSError:
        return None
    if b"\0" in data[:8192]:
        size = path.stat().st_size
        return FileView(path.name, f"(a binary file of {size:,} bytes: not shown)")
    text = data.decode("utf-8", errors="replace")
    truncated = len(text) > MAX_FILE_CHARS
    if path.name == "request.json":  # bindings may carry credentials
        with contextlib.suppress(ValueError, RecursionError):
            text = _pretty(mask_secrets(json.loads(text)))
    return FileView(path.name, text[:MAX_FILE_CHARS], truncated)


def _answer_file(path: Path) -> FileView | None:
    """The model's answer: the `result` text of a Claude Code result file, else the raw file."""
    view = _read_file(path)
    if view is None or path.name != "result.json" or view.truncated:
        return view
    with contextlib.suppress(ValueError, RecursionError):
        data = json.loads(view.text)
        if isinstance(data, dict) and isinstance(data.get("result"), str):
            answer: str = data["result"]
            with contextlib.suppress(ValueError, RecursionError):
                answer = _pretty(json.loads(answer))
            return FileView("result.json", answer)
    return view


def _attempt_events(record: RunRecord, state: str) -> dict[int, dict[str, Any]]:
    return {
        int(e["attempt"]): e for e in record.events
        if e.get("type") == "attempt_finished" and e.get("state") == state
    }


def _attempt_view(record: RunRecord, state: StateRecord, number: int) -> AttemptView:
    att = next(a for a in state.attempts if a.attempt == number)
    event = _attempt_events(record, state.name).get(number, {})
    directory = record.run_dir / "states" / state.name / str(number)
    files = sorted(p for p in directory.iterdir() if p.is_file() or p.is_symlink()) \
        if directory.is_dir() else []
    by_name = {p.name: p for p in files}
    prompt = next((_read_file(by_name[n]) for n in _PROMPT_FILES if n in by_name), None)
    answer = next((_answer_file(by_name[n]) for n in _ANSWER_FILES if n in by_name), None)
    stderr = next((_read_file(by_name[n]) for n in _STDERR_FILES if n in by_name), None)
    if stderr is not None and not stderr.text.strip():
        stderr = None
    feedback = att.feedback
    if feedback is None and "feedback.md" in by_name:
        fb = _read_file(by_name["feedback.md"])
        feedback = fb.text if fb else None
    shown = {*_PROMPT_FILES, *_ANSWER_FILES, *_STDERR_FILES, *_SKIPPED_FILES}
    others = [v for p in files if p.name not in shown and (v := _read_file(p)) is not None]
    output = event.get("output") if "output" in event else None
    problems = event.get("problems")
    return AttemptView(
        number=number,
        outcome=att.outcome or ("running" if record.status == "running" else "unfinished"),
        cost=format_cost(att.cost_usd),
        tokens=f"{att.input_tokens:,} in / {att.output_tokens:,} out",
        duration=format_duration(_seconds_between(att.started, att.finished)),
        error=att.error,
        problems=[str(p) for p in problems] if isinstance(problems, list) else [],
        feedback=feedback,
        prompt=prompt,
        answer=answer,
        output=_pretty(output) if output is not None else None,
        stderr=stderr,
        other_files=others,
    )


def _is_report(value: Any) -> bool:
    """Whether an output has the shape of a PatternReport (patterns + summary)."""
    return (isinstance(value, dict) and isinstance(value.get("patterns"), list)
            and isinstance(value.get("summary"), dict))


def _info_inputs(record: RunRecord) -> dict[str, Any]:
    inputs = record.info.get("inputs")
    if isinstance(inputs, dict):
        return inputs
    started = next((e for e in record.events if e.get("type") == "run_started"), {})
    found = started.get("inputs")
    return found if isinstance(found, dict) else {}


def run_view(runs_dir: Path, run_id: str) -> RunView:
    """Everything the run page shows; JournalError when there is no such run."""
    record = load_run(runs_dir, run_id)
    current = _current_state(record) if record.status == "running" else ""
    states: list[StateView] = []
    for name in dict.fromkeys(record.path + list(record.states)):  # path order, then the rest
        rec = record.states.get(name)
        if rec is None:
            continue
        attempts = [_attempt_view(record, rec, a.attempt) for a in rec.attempts]
        states.append(StateView(
            name=name,
            visits=rec.visits,
            outcome=rec.last_outcome or (attempts[-1].outcome if attempts else ""),
            cost=format_cost(rec.cost_usd),
            tokens=f"{rec.input_tokens:,} in / {rec.output_tokens:,} out",
            current=name == current,
            attempts=attempts,
            has_report=_is_report(rec.output),
            items=_item_views(rec, record.status),
        ))
    masked = mask_secrets(_info_inputs(record))
    inputs = [(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
              for k, v in masked.items()]
    machine = record.info.get("machine")
    machine_path = machine.get("path") if isinstance(machine, dict) else None
    ran_hash = machine.get("sha256") if isinstance(machine, dict) else None
    row = _row(record)
    return RunView(
        run_id=record.run_id,
        status=record.status,
        machine=row.machine,
        machine_path=machine_path if isinstance(machine_path, str) else "",
        created=row.created,
        duration=row.duration,
        cost=row.cost,
        tokens=row.tokens,
        final=row.final,
        message=str(record.info.get("message") or ""),
        current=current,
        path=list(record.path),
        inputs=inputs,
        states=states,
        seq=len(record.events),
        executor=str(record.info.get("executor") or ""),
        machine_note=_machine_note(machine_path, ran_hash),
    )


def _machine_note(path: Any, ran_hash: Any) -> str:
    """Whether the machine file is still the one the run ran (as `mgt graph --run` warns)."""
    if not isinstance(path, str) or not Path(path).is_file():
        return "The machine file of this run is not on this computer."
    if not isinstance(ran_hash, str):
        return ""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                digest.update(chunk)
    except OSError:
        return "The machine file of this run cannot be read."
    if digest.hexdigest() != ran_hash:
        return ("The machine file has changed since this run: "
                "its path is drawn on the current version.")
    return ""


def events_size(runs_dir: Path, run_id: str) -> int:
    """The byte size of a run's events.jsonl (what the live page polls), -1 when it is gone."""
    record_dir = Path(runs_dir) / run_id
    try:
        return (record_dir / "events.jsonl").stat().st_size
    except OSError:
        return -1


def run_snapshot(runs_dir: Path, run_id: str) -> dict[str, Any]:
    """The small JSON a live page applies: status, current state, per-state outcome and cost."""
    record = load_run(runs_dir, run_id)
    current = _current_state(record) if record.status == "running" else ""
    row = _row(record)
    return {
        "status": record.status,
        "current": current,
        "final": record.final or "",
        "path": list(record.path),
        "cost": row.cost,
        "tokens": row.tokens,
        "duration": row.duration,
        "seq": len(record.events),
        "states": [
            {"name": name, "visits": s.visits, "attempts": len(s.attempts),
             "outcome": s.last_outcome or ("running" if name == current else ""),
             "cost": format_cost(s.cost_usd)}
            for name, s in record.states.items()
        ],
    }


# ---------------------------------------------------------------- the machine drawn


@dataclass(frozen=True)
class GraphView:
    svg: bytes | None
    problem: str | None = None


_CURRENT_COLOR = "#2563eb"


def run_graph(runs_dir: Path, run_id: str) -> GraphView:
    """The run's machine as SVG (graphviz), the taken path marked and the current state in blue.

    The machine is read from the path run.json names; when it is gone or no longer
    checks, the view says why instead of drawing.
    """
    from mgt.compile import load_machine
    from mgt.compile.graph import graph_of, render_dot, render_image

    record = load_run(runs_dir, run_id)
    machine_info = record.info.get("machine")
    path = machine_info.get("path") if isinstance(machine_info, dict) else None
    if not isinstance(path, str) or not Path(path).is_file():
        return GraphView(None, "the machine file of this run is not on this computer")
    try:
        machine = load_machine(path)
    except MgtError as err:
        return GraphView(None, f"the machine file no longer checks: {str(err)[:200]}")
    dot = render_dot(graph_of(machine, _taken_path(record)))
    current = _current_state(record) if record.status == "running" else ""
    if current in machine.states:
        # a later node statement overrides the attributes of the earlier one
        quoted = '"' + current.replace("\\", "\\\\").replace('"', '\\"') + '"'
        mark = (f"{quoted} [fillcolor=\"#bfdbfe\", color=\"{_CURRENT_COLOR}\", penwidth=\"4\"];\n")
        dot = dot.rstrip().removesuffix("}") + mark + "}\n"
    try:
        return GraphView(render_image(dot, "svg"))
    except MgtError as err:
        return GraphView(None, str(err))


def _taken_path(record: RunRecord) -> Any:
    """The TakenPath of a run, built as `mgt graph --run` builds it."""
    from mgt.compile.graph import TakenPath

    retried: set[tuple[str, str]] = set()
    for name, state in record.states.items():
        attempts = sorted(state.attempts, key=lambda a: a.attempt)
        retried.update((name, a.outcome) for a in attempts[:-1] if a.outcome)
    guards: dict[tuple[str, str, str], set[str | None]] = {}
    for event in record.events:
        if event.get("type") == "transition" and "guard" in event:
            step = (str(event["from"]), str(event["event"]), str(event["to"]))
            guard = event["guard"]
            guards.setdefault(step, set()).add(guard if isinstance(guard, str) else None)
    return TakenPath(
        run_id=record.run_id,
        steps=tuple(record.transitions),
        entered=tuple(record.path),
        retried=frozenset(retried),
        guards={step: frozenset(texts) for step, texts in guards.items()},
    )


# ---------------------------------------------------------------- patterns


@dataclass(frozen=True)
class PatternView:
    id: str
    type: str
    severity: str
    occurrences: int
    where: str
    recommendation: str
    details: list[tuple[str, str]]
    samples: list[str]


@dataclass(frozen=True)
class ReportView:
    title: str
    summary: list[tuple[str, str]]
    patterns: list[PatternView]
    #: Chart.js-ready figures (see static/charts.js); JSON-encoded by the template.
    charts: dict[str, Any] = field(default_factory=dict)


def load_report(path: Path) -> dict[str, Any]:
    """A PatternReport JSON file (`mgt analyze --json`); MgtError when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise MgtError(f"cannot read the report {path}: {err}") from None
    if not _is_report(data):
        raise MgtError(f"{path} is not a PatternReport (no 'patterns' list and 'summary' object)")
    return dict(data)


def pattern_reports_of(runs_dir: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """The outputs of a run that are PatternReports, by state."""
    record = load_run(runs_dir, run_id)
    return {name: s.output for name, s in record.states.items() if _is_report(s.output)}


def _where(pattern: Mapping[str, Any]) -> str:
    details = pattern.get("details")
    if not isinstance(details, dict):
        return ""
    if isinstance(details.get("node"), str):
        return str(details["node"])
    if isinstance(details.get("from"), str) and isinstance(details.get("to"), str):
        return f"{details['from']} → {details['to']}"
    contexts = details.get("contexts")
    if isinstance(contexts, dict):
        return ", ".join(str(k) for k in list(contexts)[:3])
    return ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _latency_chart(patterns: list[dict[str, Any]]) -> dict[str, Any]:
    """Per node: min, mean, p95 and max latency of its LLM calls (from slow_llm details)."""
    nodes: dict[str, dict[str, float]] = {}
    for p in patterns:
        details = p.get("details")
        if p.get("type") != "slow_llm" or not isinstance(details, dict):
            continue
        node = str(details.get("node") or p.get("id"))
        figures = {
            "min": _number(details.get("min_latency_ms")),
            "mean": _number(details.get("mean_latency_ms", details.get("avg_latency_ms"))),
            "p95": _number(details.get("p95_latency_ms")),
            "max": _number(details.get("max_latency_ms")),
        }
        nodes[node] = {k: v for k, v in figures.items() if v is not None}
    labels = list(nodes)
    return {
        "labels": labels,
        "series": {k: [nodes[n].get(k) for n in labels] for k in ("min", "mean", "p95", "max")},
        "threshold": next(
            (_number(p["details"].get("latency_threshold_ms")) for p in patterns
             if p.get("type") == "slow_llm" and isinstance(p.get("details"), dict)), None),
    }


def _hour(ts: Any) -> str | None:
    stamp = parse_ts(ts[:26] + "Z" if isinstance(ts, str) and len(ts) > 27 else ts)
    return stamp.strftime("%Y-%m-%d %H:00") if stamp else None


def _errors_chart(patterns: list[dict[str, Any]]) -> dict[str, Any]:
    """Error patterns over time: per hour, how many of their sampled events fell in it,
    and each repeated error's first and last sighting."""
    hours: dict[str, dict[str, int]] = {}
    spans: list[dict[str, Any]] = []
    for p in patterns:
        if p.get("type") not in {"repeated_error", "failed_transition"}:
            continue
        pid = str(p.get("id"))
        samples = p.get("sample_events")
        for sample in samples if isinstance(samples, list) else []:
            hour = _hour(sample.get("timestamp")) if isinstance(sample, dict) else None
            if hour:
                hours.setdefault(hour, {}).setdefault(pid, 0)
                hours[hour][pid] += 1
        details = p.get("details")
        if isinstance(details, dict):
            first, last = parse_ts(_trim(details.get("first_seen"))), \
                parse_ts(_trim(details.get("last_seen")))
            if first and last:
                spans.append({"id": pid, "first": first.isoformat(), "last": last.isoformat(),
                              "count": _number(details.get("count")) or 0})
    labels = sorted(hours)
    ids = sorted({pid for h in hours.values() for pid in h})
    return {
        "labels": labels,
        "series": {pid: [hours[h].get(pid, 0) for h in labels] for pid in ids},
        "spans": spans,
    }


def _trim(ts: Any) -> Any:
    """Loki's nanosecond timestamps (`...45.322000000Z`) cut to what fromisoformat reads."""
    if isinstance(ts, str):
        match = re.match(r"^(.*?\.\d{1,6})\d*(Z|[+-]\d\d:\d\d)?$", ts)
        if match:
            return match[1] + (match[2] or "")
    return ts


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def report_view(report: Mapping[str, Any], title: str) -> ReportView:
    raw = [p for p in report.get("patterns", []) if isinstance(p, dict)]
    order = {"critical": 0, "warning": 1, "info": 2}
    raw.sort(key=lambda p: (order.get(str(p.get("severity")), 3),
                            -(_number(p.get("occurrences")) or 0)))
    patterns = []
    for p in raw:
        details = _mapping(p.get("details"))
        samples = p.get("sample_events")
        samples = samples if isinstance(samples, list) else []
        patterns.append(PatternView(
            id=str(p.get("id", "")),
            type=str(p.get("type", "")),
            severity=str(p.get("severity", "")),
            occurrences=int(_number(p.get("occurrences")) or 0),
            where=_where(p),
            recommendation=str(p.get("recommendation", "")),
            details=[(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                     for k, v in mask_secrets(details).items()],
            samples=[json.dumps(mask_secrets(s), ensure_ascii=False) for s in samples[:5]],
        ))
    summary = _mapping(report.get("summary"))
    shown = ("total_patterns", "critical", "warning", "info", "events_analyzed", "query_range")
    by_type: dict[str, int] = {}
    for view in patterns:
        by_type[view.type] = by_type.get(view.type, 0) + view.occurrences
    return ReportView(
        title=title,
        summary=[(k, str(summary[k])) for k in shown if k in summary],
        patterns=patterns,
        charts={
            "latency": _latency_chart(raw),
            "errors": _errors_chart(raw),
            "types": {"labels": list(by_type), "values": list(by_type.values())},
        },
    )


# ---------------------------------------------------------------- pull requests


@dataclass(frozen=True)
class PRView:
    number: int
    title: str
    branch: str
    base: str
    state: str
    draft: bool
    created: str
    patterns: list[str]
    files: list[str]
    labels: list[str]
    body: str
    verdict: str | None
    figures: dict[str, Any] | None  # {"labels", "before", "after"} when the record has them


def _git_dir(repo: Path) -> Path:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--git-common-dir"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise MgtError(f"cannot run git in {repo}: {err}") from None
    if done.returncode != 0:
        raise MgtError(f"{repo} is not a git repository")
    out = Path(done.stdout.strip())
    return out if out.is_absolute() else (repo / out).resolve()


def _figures(record: Mapping[str, Any]) -> dict[str, Any] | None:
    before, after = record.get("figures_before"), record.get("figures_after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    labels = [k for k in before if _number(before[k]) is not None]
    labels += [k for k in after if k not in before and _number(after[k]) is not None]
    if not labels:
        return None
    was = [_number(before.get(k)) for k in labels]
    now = [_number(after.get(k)) for k in labels]
    return {
        "labels": labels, "before": was, "after": now,
        "change": [f"{(b - a) / abs(a) * 100:+.0f}%" if a and b is not None else ""
                   for a, b in zip(was, now, strict=True)],
    }


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _verdict_figures(verdict: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A ledger verdict's per-pattern primary figure, before and after the merge."""
    if not verdict or not isinstance(verdict.get("patterns"), list):
        return None
    labels: list[str] = []
    was: list[float | None] = []
    now: list[float | None] = []
    change: list[str] = []
    for p in verdict["patterns"]:
        if not isinstance(p, Mapping) or not isinstance(p.get("metric"), str):
            continue
        metric = p["metric"]
        raw_before, raw_after = p.get("before"), p.get("after")
        before: Mapping[str, Any] = raw_before if isinstance(raw_before, Mapping) else {}
        after: Mapping[str, Any] = raw_after if isinstance(raw_after, Mapping) else {}
        labels.append(f"{p.get('id', '?')} {metric}")
        was.append(_number(before.get(metric)))
        now.append(_number(after.get(metric)))
        relative = _number(p.get("change"))
        change.append(f"{relative * 100:+.0f}%" if relative is not None else "")
    if not labels:
        return None
    return {"labels": labels, "before": was, "after": now, "change": change}


def pr_records(repo: Path) -> list[PRView]:
    """The target's sleeptime PRs on its local forge, read as `mgt prs` reads them (the
    ledger: state from git, verdicts and reverts from the records), newest first."""
    from mgt.evolve.ledger import read_local

    _git_dir(repo)  # a clear error for a directory that is not a repository
    views: list[PRView] = []
    for pr in read_local(repo):
        record: dict[str, Any] = {}
        if pr.record_path is not None:
            try:
                loaded = json.loads(pr.record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                loaded = None
            record = loaded if isinstance(loaded, dict) else {}
        body = record.get("body")
        if not isinstance(body, str) and pr.record_path is not None:
            body_file = pr.record_path.with_suffix(".md")
            body = body_file.read_text("utf-8", "replace") if body_file.is_file() else ""
        if pr.verdict:
            verdict: str | None = str(pr.verdict.get("verdict", ""))
        elif pr.state == "merged" and pr.kind == "pr":
            verdict = "awaiting"
        else:
            verdict = str(record["verdict"]) if record.get("verdict") is not None else None
        if pr.revert_pr and verdict:
            verdict += f" (revert #{pr.revert_pr})"
        views.append(PRView(
            number=pr.number,
            title=pr.title,
            branch=pr.head,
            base=pr.base,
            state=pr.state,
            draft=record.get("draft") is True,
            created=str(record.get("created_at", "")),
            patterns=[str(p.get("id", "")) for p in pr.patterns] or pr.patterns_addressed,
            files=pr.files_changed or _strings(record.get("files_changed")),
            labels=_strings(record.get("labels")),
            body=str(mask_secrets(body or "")),
            verdict=verdict,
            figures=_verdict_figures(pr.verdict) or _figures(record),
        ))
    views.sort(key=lambda v: v.number, reverse=True)
    return views


def known_run(runs_dir: Path, run_id: str) -> bool:
    """Whether `run_id` names a readable run (the id is checked by the journal's reader)."""
    try:
        load_run(runs_dir, run_id)
    except JournalError:
        return False
    return True
