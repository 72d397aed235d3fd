"""The fold of a run's events: every prefix of a journal resumes to the run's own final.

A run is killed at any instant as far as its journal is concerned when its
events.jsonl is cut after any line (or in the middle of one). Each such prefix,
resumed, must reach the same final as the run that was never interrupted, and
folding the whole journal must give what the live run knew.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mgt.compile.model import Machine
from mgt.runtime.events import RunFinished, fold, parse_event
from mgt.runtime.interpreter import Extensions, Interpreter
from mgt.runtime.journal import RunJournal, load_run, read_run_events
from tests.runtime.build import builtin, command, executors, machine, on, retry

STEPS = {name: f"tests.runtime.steps:{name}"
         for name in ("count", "flaky", "reject", "crash", "report", "rounds")}
EXTENSIONS = Extensions(builtins={"noop": "mgt.runtime.builtins:noop", **STEPS},
                        output_checks={}, prompt_context={})

MACHINES: dict[str, Machine] = {
    "chain": machine(
        builtin("a", on("done", "b"), step="count"),
        builtin("b", on("done", "c"), step="count", x="a.output.calls + 1"),
        builtin("c", on("done", "ok"), step="count"),
    ),
    "retries": machine(
        builtin("a", on("done", "b"), step="flaky", succeed_on="3",
                retries=[retry(4, "error", feedback=True, backoff=5)]),
        builtin("b", on("done", "ok"), on("guardrail", "bad"), step="reject",
                retries=[retry(2, "guardrail", feedback=True)]),
    ),
    "loop": machine(
        builtin("a", on("done", "a", "output.round < 3"), on("done", "b"), step="rounds"),
        builtin("b", on("done", "bad", "a.output.round != 3"), on("done", "ok"), step="noop"),
    ),
    "unhandled": machine(
        builtin("a", on("done", "b"), step="count"),
        builtin("b", on("done", "ok"), step="crash"),
    ),
    "command": machine(
        command("a", "printf hi", on("done", "b", 'output.stdout == "hi"'), on("done", "bad")),
        command("b", "exit 3", on("error", "ok"), retries=[retry(1, "error")]),
    ),
}


def _interpreter(m: Machine, journal: RunJournal, inputs: dict[str, Any]) -> Interpreter:
    return Interpreter(m, journal, inputs, executors=executors(), cwd=journal.run_dir,
                       sleep=lambda _s: None, extensions=EXTENSIONS)


def _full_run(name: str, root: Path) -> Path:
    with RunJournal.create(root, f"full-{name}") as journal:
        _interpreter(MACHINES[name], journal, {}).start()
    return root / f"full-{name}"


_FULL: dict[str, Path] = {}


def full_run(name: str, tmp_root: Path) -> Path:
    if name not in _FULL or not _FULL[name].exists():
        _FULL[name] = _full_run(name, tmp_root)
    return _FULL[name]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(MACHINES)), cut=st.floats(0, 1), torn=st.integers(0, 30))
def test_any_prefix_of_a_journal_resumes_to_the_same_final(
    tmp_path_factory: Any, name: str, cut: float, torn: int
) -> None:
    full = full_run(name, tmp_path_factory.mktemp("full"))
    lines = (full / "events.jsonl").read_bytes().splitlines(keepends=True)
    whole, _ = read_run_events(full)
    final = fold(whole).finished
    assert isinstance(final, RunFinished)
    keep = max(1, int(cut * len(lines)))  # a run dir always holds its run_started
    root = tmp_path_factory.mktemp("cut")
    run_dir = root / "r"
    shutil.copytree(full, run_dir)
    (run_dir / "calls.log").unlink(missing_ok=True)
    (run_dir / "lock").unlink(missing_ok=True)
    tail = lines[keep][:torn] if keep < len(lines) and torn else b""  # a line cut mid-write
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:keep]) + tail)

    with RunJournal.open(root, "r") as journal:
        if journal.state.finished is None:
            result = _interpreter(MACHINES[name], journal, {}).resume()
            assert (result.status, result.final) == (final.status, final.final)
    record = load_run(root, "r")
    assert (record.status, record.final) == (final.status, final.final)
    assert record.path == fold(whole).path


def test_the_fold_of_a_finished_journal_is_what_the_run_knew(tmp_path: Path) -> None:
    m = MACHINES["retries"]
    with RunJournal.create(tmp_path, "r") as journal:
        result = _interpreter(m, journal, {}).start()
        live = journal.state
    events, _ = read_run_events(tmp_path / "r")
    again = fold(events)
    assert again.path == live.path == result.path
    assert again.outputs == live.outputs
    assert again.attempts == {k: v for k, v in live.attempts.items() if v}
    assert (again.status, again.final, again.cost_usd) == ("failed", "bad", 0.0)
    assert [(a.attempt, a.outcome) for a in again.states["a"].attempts] == [
        (1, "error"), (2, "error"), (3, "done")]
    assert again.failure_cause() is not None and "change 1 cites" in again.failure_cause()
    # every event reads back as the very event that was written
    assert [parse_event(e.to_json()) for e in events] == events


def test_a_journal_of_an_older_version_still_shows_and_resumes(tmp_path: Path) -> None:
    """Older journals kept an accepted output only in states/STATE/N/output.json and wrote
    no process_started events; such a run still reads and resumes."""
    m = MACHINES["chain"]
    full = _full_run("chain", tmp_path / "full")
    root = tmp_path / "old"
    shutil.copytree(full, root / "r")
    lines = (root / "r" / "events.jsonl").read_text().splitlines()
    old = []
    for line in lines:
        event = json.loads(line)
        event.pop("output", None)  # as written before outputs were journaled
        old.append(event)
        if event["type"] == "transition" and event["from"] == "b":
            break  # killed on its way to c
    (root / "r" / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in old))
    shutil.rmtree(root / "r" / "outputs")
    (root / "r" / "outputs").mkdir()
    record = load_run(root, "r")
    assert (record.status, record.path) == ("interrupted", ["a", "b"])
    with RunJournal.open(root, "r") as journal:
        result = _interpreter(m, journal, {}).resume()
    assert (result.status, result.path) == ("succeeded", ["a", "b", "c", "ok"])
    assert result.outputs["b"]["x"] == 2  # read back from b's output.json
    assert json.loads((root / "r" / "outputs" / "a.json").read_text())["calls"] == 1
