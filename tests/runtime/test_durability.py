"""What reaches the disk: the journal is synced at every durable event, watched at the OS call.

os.fsync / os.fdatasync are wrapped (and still called) to note which file each
sync was for and how long it was then: the boundary with the kernel, not our code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mgt.runtime.journal import DURABLE_EVENTS
from tests.runtime.build import builtin, machine, on, retry, run

Synced = list[tuple[str, int]]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Synced:
    seen: Synced = []

    def watch(real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            seen.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))
            real(fd)

        return sync

    monkeypatch.setattr(os, "fsync", watch(os.fsync))
    if hasattr(os, "fdatasync"):
        monkeypatch.setattr(os, "fdatasync", watch(os.fdatasync))
    return seen


def test_every_durable_event_is_synced_before_the_run_goes_on(tmp_path: Path,
                                                              synced: Synced) -> None:
    m = machine(
        builtin("a", on("done", "b"), on("error", "b")),
        builtin("b", on("done", "ok"), step="nosuch", retries=[retry(1, "error")]),
    )
    result = run(m, tmp_path)
    journal = result.run_dir / "events.jsonl"
    data = journal.read_bytes()
    synced_sizes = {size for path, size in synced if path == str(journal)}
    offset = 0
    durable = 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        event = json.loads(line)
        if event["type"] in DURABLE_EVENTS:
            durable += 1
            # synced right after its line was written, before any later line
            assert offset in synced_sizes, (event["type"], event["seq"])
    assert durable >= 5  # run_started, 3 attempt_finished, run_finished


def test_run_json_is_synced_when_the_run_starts_and_ends(tmp_path: Path,
                                                         synced: Synced) -> None:
    result = run(machine(builtin("a", on("done", "ok"))), tmp_path)
    tmp_prefix = str(result.run_dir / ".run.json")
    tmp_syncs = [path for path, _ in synced if path.startswith(tmp_prefix)]
    dirs = [path for path, _ in synced if path == str(result.run_dir)]
    assert tmp_syncs and dirs  # the temp file before its rename, the directory after


def test_every_fan_out_item_is_synced_before_the_state_is_joined(tmp_path: Path,
                                                                 synced: Synced) -> None:
    from mgt.compile import load_machine

    source = tmp_path / "fan.mgt"
    source.write_text('machine fan\n\nstate each:\n    for n in [1, 2, 3, 4, 5, 6, 7, 8] max 8\n'
                      '    run command "echo $n"\n    with n = n\n    on done -> ok\n\n'
                      "final ok: succeed\n")
    result = run(load_machine(str(source)), tmp_path)
    journal = result.run_dir / "events.jsonl"
    sizes = sorted(size for path, size in synced if path == str(journal))
    offset = 0
    ends: list[int] = []
    joined = None
    for line in journal.read_bytes().splitlines(keepends=True):
        event = json.loads(line)
        if event["type"] == "attempt_finished":
            joined = offset  # where the join was written
        offset += len(line)
        if event["type"] == "item_finished":
            ends.append(offset)
    assert len(ends) == 8 and joined is not None
    # each item's line was on disk before the state joined its items and went on
    for end in ends:
        assert any(end <= size <= joined for size in sizes), (end, joined, sizes)
