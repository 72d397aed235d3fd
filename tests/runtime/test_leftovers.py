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


def _pane(tmp_path: Path, output: Path) -> subprocess.Popen[bytes]:
    """What a zellij-cc pane runs, `claude ... | tee OUTPUT`, started as the zellij server
    would: in a session of its own, not a child of mgt, with none of mgt's marks."""
    env = {k: v for k, v in os.environ.items() if k not in (RUN_ID_VAR, ATTEMPT_VAR)}
    return subprocess.Popen(["sh", "-c", f"sleep 48.5 | tee '{output}' >/dev/null"],
                            cwd=tmp_path, env=env, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_zellij_pane_writing_into_the_runs_states_is_ended_and_others_are_not(
    tmp_path: Path,
) -> None:
    states = tmp_path / "runs" / "20260101-000000-x-abcd" / "states"
    (states / "refine" / "1").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ours = _pane(tmp_path, states / "refine" / "1" / "result.json")
    theirs = _pane(tmp_path, elsewhere / "result.json")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            any(b"tee" in Path(f"/proc/{p}/cmdline").read_bytes() for p in _children(proc.pid))
            for proc in (ours, theirs)
        ):
            time.sleep(0.05)
        ended = end_leftovers("20260101-000000-x-abcd", tee_under=states)
        assert ended == [ours.pid]  # the pane's pipeline group, Claude (here: sleep) with it
        assert ours.wait(timeout=30) != 0
        assert _alive(theirs.pid)
    finally:
        for proc in (ours, theirs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        kill_processes_with("sleep 48.5")


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(name))
    return found
