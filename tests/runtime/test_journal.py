"""The run directory: atomic writes, append-only events, torn-line recovery, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mgt.errors import JournalError
from mgt.runtime.journal import (
    RunJournal,
    atomic_write_json,
    list_runs,
    load_run,
    new_run_id,
    read_events,
    read_taken_path,
)


def _journal(tmp_path: Path, run_id: str = "20260101-000000-m-abcd") -> RunJournal:
    journal = RunJournal.create(tmp_path, run_id)
    journal.write_info(run_id=run_id, created="2026-01-01T00:00:00Z", status="running")
    return journal


def test_new_run_ids_sort_by_time_and_name_the_machine() -> None:
    run_id = new_run_id("evolve")
    stamp, _, rest = run_id.partition("-evolve-")
    assert len(stamp) == len("20261125-101500") and stamp[8] == "-"
    assert len(rest) == 8  # 32 bits: runs started in the same second do not collide
    assert all(c in "0123456789abcdef" for c in rest)
    assert "/" not in new_run_id("a/b c")


def test_events_are_numbered_and_readable(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        j.append("run_started", machine="m")
        j.append("state_entered", state="a")
        j.append("transition", **{"from": "a", "event": "done", "to": "b"})
    events, size = read_events(tmp_path / j.run_id)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["type"] for e in events] == ["run_started", "state_entered", "transition"]
    assert all(e["ts"].endswith("Z") for e in events)
    assert size == (tmp_path / j.run_id / "events.jsonl").stat().st_size
    assert read_taken_path(tmp_path, j.run_id) == [("a", "done", "b")]


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        j.append("run_started")
        j.append("state_entered", state="a")
    path = tmp_path / j.run_id / "events.jsonl"
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 3, "ts": "x", "type": "attempt_sta')  # killed mid-write
    events, size = read_events(tmp_path / j.run_id)
    assert len(events) == 2 and size == len(whole)

    with RunJournal.open(tmp_path, j.run_id) as again:
        again.append("attempt_started", state="a", attempt=1)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["seq"] == 3  # numbering continues from the intact events


def test_a_torn_line_that_ends_in_a_newline_is_also_ignored(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        j.append("run_started")
    path = tmp_path / j.run_id / "events.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 2, "ty\n')
    events, _ = read_events(tmp_path / j.run_id)
    assert [e["type"] for e in events] == ["run_started"]


def test_garbage_in_the_middle_is_a_journal_error(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        j.append("run_started")
    path = tmp_path / j.run_id / "events.jsonl"
    text = path.read_text()
    path.write_text("not json\n" + text)
    with pytest.raises(JournalError, match=r"events.jsonl:1: corrupt event line"):
        read_events(tmp_path / j.run_id)


def test_atomic_write_leaves_the_old_or_the_new_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_atomic_write_into_an_unwritable_place_is_a_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="cannot write"):
        atomic_write_json(blocker / "x.json", {})


def test_one_process_holds_a_run(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.append("run_started")
    code = (
        "import sys\n"
        "from mgt.runtime.journal import RunJournal\n"
        "from mgt.errors import JournalError\n"
        "try:\n"
        f"    RunJournal.open({str(tmp_path)!r}, {j.run_id!r})\n"
        "except JournalError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == f"run {j.run_id} is held by another process (pid {os.getpid()})"
    j.close()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_run_nobody_holds_that_never_finished_reads_as_interrupted(tmp_path: Path) -> None:
    j = _journal(tmp_path)
    j.append("run_started")
    j.append("state_entered", state="a")
    j.append("attempt_started", state="a", attempt=1)
    assert load_run(tmp_path, j.run_id).status == "running"
    j.close()
    record = load_run(tmp_path, j.run_id)
    assert record.status == "interrupted"
    assert record.states["a"].attempts[0].outcome is None


def test_load_run_sums_costs_per_state_and_run(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        j.append("run_started")
        j.append("state_entered", state="a")
        for n, (outcome, cost) in enumerate([("schema_invalid", 0.25), ("done", 0.5)], 1):
            j.append("attempt_started", state="a", attempt=n)
            j.append(
                "attempt_finished", state="a", attempt=n, outcome=outcome, cost_usd=cost,
                tokens={"input": 100, "output": 10},
            )
        j.write_output("a", {"x": 1})
        j.append("transition", **{"from": "a", "event": "done", "to": "end"})
        j.append("state_entered", state="end", final=True)
        j.append("run_finished", status="succeeded", final="end")
    record = load_run(tmp_path, j.run_id)
    assert record.status == "succeeded" and record.final == "end"
    assert record.path == ["a", "end"]
    assert record.states["a"].cost_usd == 0.75
    assert [a.outcome for a in record.states["a"].attempts] == ["schema_invalid", "done"]
    assert record.summary() == {
        "run_id": j.run_id,
        "status": "succeeded",
        "final": "end",
        "path": ["a", "end"],
        "outputs": {"a": {"x": 1}},
        "cost_usd": 0.75,
        "tokens": {"input": 200, "output": 20},
    }


def test_unknown_run_ids_say_what_exists(tmp_path: Path) -> None:
    _journal(tmp_path, "20260101-000000-evolve-abcd").close()
    with pytest.raises(JournalError, match="did you mean '20260101-000000-evolve-abcd'"):
        load_run(tmp_path, "20260101-000000-evolve-abce")
    with pytest.raises(JournalError, match="bad run id"):
        load_run(tmp_path, "../etc")


def test_list_runs_is_newest_first_and_skips_strangers(tmp_path: Path) -> None:
    for n, created in enumerate(["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]):
        with RunJournal.create(tmp_path, f"r{n}") as j:
            j.write_info(created=created)
            j.append("run_started")
    (tmp_path / "not-a-run").mkdir()
    assert [r.run_id for r in list_runs(tmp_path)] == ["r1", "r0"]
    assert list_runs(tmp_path / "missing") == []
