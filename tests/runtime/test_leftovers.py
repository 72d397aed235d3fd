"""A step's processes outliving a kill -9 of mgt are ended by `mgt resume` before it goes on.

Real processes throughout: a real `mgt exec` is killed with SIGKILL while its
command step sleeps; the `sleep` (a grandchild, which the parent-death signal
does not reach) must be gone once `mgt resume` has run, and the step must not
have run twice at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mgt.executors.process import ATTEMPT_VAR, RUN_ID_VAR, end_leftovers
from tests.runtime.procs import journal, kill_processes_with, mgt, spawn, wait_for_event

#: The first attempt sleeps long and leaves a mark; a second one finds the mark and ends
#: at once. `started` counts how many attempts began while another was still sleeping.
NAP = ("echo start >> log; if [ -e marked ]; then echo again >> log; exit 0; fi; "
       "touch marked; sleep 47.5; echo woke >> log")
MACHINE = f"""\
machine slow

state nap:
    run command "{NAP}"
    timeout 2m
    on done -> ok

final ok: succeed
"""


def _pids_marked(run_id: str) -> list[int]:
    mark = f"{RUN_ID_VAR}={run_id}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if mark in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                stat = Path(f"/proc/{name}/stat").read_text()
                if stat[stat.rfind(")") + 2] != "Z":
                    pids.append(int(name))
        except OSError:
            continue
    return pids


def _cmdline(pid: int) -> bytes:
    """The program and arguments (the `sh -c` holding the text "sleep" is not the sleep)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "slow.mgt").write_text(MACHINE)
    yield tmp_path
    kill_processes_with("sleep 47.5")


def test_resume_ends_the_killed_runs_leftover_processes_first(work: Path) -> None:
    proc = spawn("exec", "slow.mgt", "--runs-dir", "runs", cwd=work)
    run_dir = wait_for_event(work / "runs", proc, lambda e: e["type"] == "process_started",
                             "the command to start")
    run_id = run_dir.name
    deadline = time.monotonic() + 30
    while not any(_cmdline(p).startswith(b"sleep\0") for p in _pids_marked(run_id)):
        assert time.monotonic() < deadline, "the sleep never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    leftovers = _pids_marked(run_id)
    assert leftovers, "the sleep should outlive mgt (that is the race being closed)"
    started = next(e for e in journal(run_dir) if e["type"] == "process_started")
    assert started["state"] == "nap" and started["attempt"] == 1
    assert all(os.getpgid(p) == started["pgid"] for p in leftovers)

    resumed = mgt("resume", run_id, "--runs-dir", "runs", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p for p in leftovers if _alive(p)], "resume left the killed attempt running"
    assert (work / "log").read_text().split() == ["start", "start", "again"]


def test_a_journaled_group_that_is_not_the_runs_is_left_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    marked = subprocess.Popen(
        ["sleep", "30"], start_new_session=True,
        env={**os.environ, RUN_ID_VAR: "run-x", ATTEMPT_VAR: "nap/1"},
    )
    try:
        for child in (stranger, marked):  # until each is `sleep`, its environment is ours
            deadline = time.monotonic() + 30
            while not _cmdline(child.pid).startswith(b"sleep\0"):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        ended = end_leftovers("run-x", [stranger.pid, marked.pid], grace=2)
        assert ended == [marked.pid]
        assert marked.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None  # its pgid was journaled, but it is not ours
        assert end_leftovers("run-y", [stranger.pid]) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        marked.kill()
        stranger.wait()
        marked.wait()
