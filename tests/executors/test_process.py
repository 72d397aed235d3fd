"""run_process: exit codes, captured streams, stdin, timeouts ending the whole tree, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mgt.errors import ExecutorError
from mgt.executors.process import kill_group, run_process
from tests.executors.conftest import alive


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_exit_code_and_streams_are_captured() -> None:
    result = run_process(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert result.exit_code == 3
    assert not result.timed_out
    assert not result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.stderr_tail() == "err"


def test_input_goes_to_stdin_and_env_replaces_environment() -> None:
    result = run_process(
        ["sh", "-c", 'cat; printf "[%s]" "$ONLY"'],
        input="hello\n",
        env={"ONLY": "this", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert result.ok
    assert result.stdout == "hello\n[this]"


def test_streams_go_to_the_files_given(tmp_path: Path) -> None:
    out, err = tmp_path / "deep" / "out.txt", tmp_path / "err.txt"
    result = run_process(
        ["sh", "-c", "echo to-out; echo to-err >&2"],
        stdout_path=out,
        stderr_path=err,
        cwd=tmp_path,
        timeout=30,
    )
    assert out.read_text() == "to-out\n" == result.stdout
    assert err.read_text() == "to-err\n" == result.stderr


def test_large_output_does_not_block() -> None:
    # 4 MB is far beyond a pipe buffer: a pipe-based runner would deadlock here.
    code = "import sys; sys.stdout.write('x' * 4_000_000)"
    result = run_process([sys.executable, "-c", code], timeout=60)
    assert result.ok
    assert len(result.stdout) == 4_000_000


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; sh -c 'sleep 300' & echo $! >> {pids}; sleep 300"
    result = run_process(["sh", "-c", script], timeout=1.0, grace=1.0)
    assert result.timed_out
    assert result.exit_code is None
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    for pid in children:
        assert wait_gone(pid), f"process {pid} outlived the timeout"


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"trap '' TERM; (trap '' TERM; sleep 300) & echo $! > {pids}; while :; do sleep 1; done"
    )
    result = run_process(["sh", "-c", script], timeout=1.0, grace=0.5)
    assert result.timed_out
    pid = int(pids.read_text())
    assert wait_gone(pid), "a child ignoring SIGTERM survived"


def test_stragglers_are_ended_when_the_leader_exits(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = run_process(["sh", "-c", f"sleep 300 & echo $! > {pids}; exit 0"], timeout=30)
    assert result.ok
    assert wait_gone(int(pids.read_text())), "a backgrounded child was left running"


def test_killed_by_a_signal_gives_a_negative_exit_code() -> None:
    result = run_process(["sh", "-c", "kill -9 $$"], timeout=30)
    assert result.exit_code == -9
    assert not result.timed_out


def test_missing_program_is_an_executor_error() -> None:
    with pytest.raises(ExecutorError, match="no-such-program-xyz not found"):
        run_process(["no-such-program-xyz"], timeout=5)


def test_missing_cwd_is_an_executor_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="no such directory"):
        run_process(["true"], cwd=tmp_path / "absent", timeout=5)


def test_not_executable_is_an_executor_error(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ExecutorError, match="cannot run"):
        run_process([str(script)], timeout=5)


def test_kill_group_of_a_vanished_group_is_harmless() -> None:
    result = run_process(["true"], timeout=5)
    assert result.ok
    kill_group(2**22 - 7, grace=0.1)  # no such group: returns quietly


def test_interrupting_mgt_ends_the_child_tree(tmp_path: Path) -> None:
    # Ctrl-C reaches mgt only (the child has its own session); mgt must end the tree itself.
    pids = tmp_path / "pids"
    code = (
        "from mgt.executors.process import run_process\n"
        f"run_process(['sh', '-c', 'sleep 300 & echo $! > {pids}; wait'], timeout=300, grace=1)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pids.read_text())
    assert alive(child)
    parent.send_signal(signal.SIGINT)
    _, stderr = parent.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr
    assert wait_gone(child), "the child outlived an interrupted mgt"


def test_a_command_line_too_long_is_an_executor_error() -> None:
    with pytest.raises(ExecutorError, match="command line is too long"):
        run_process(["echo", "x" * 200_000], timeout=5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_the_child_dies_with_a_killed_mgt(tmp_path: Path) -> None:
    # kill -9 runs no cleanup in mgt; the child must not run on as an orphan.
    pids = tmp_path / "pids"
    code = (
        "import os\n"
        "from mgt.executors.process import run_process\n"
        f"run_process(['sh', '-c', 'echo $$ > {pids}; exec sleep 300'], timeout=300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pids.read_text())
    assert alive(child)
    parent.kill()
    parent.wait(timeout=30)
    assert wait_gone(child), "the step outlived a killed mgt"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_child_is_forked_is_not_lost(tmp_path: Path, signum: int) -> None:
    # CPython runs Python at-fork hooks around Popen (logging registers one); a handler's
    # exception raised inside such a hook is printed as "Exception ignored" and dropped, so a
    # Ctrl-C landing there was lost and the step ran to its end. This hook signals the process
    # exactly then, every time.
    pids = tmp_path / "pids"
    code = (
        "import os, signal\n"
        "from mgt.executors.process import run_process\n"
        "def terminated(signum, frame):\n"
        "    raise SystemExit('terminated')\n"
        "signal.signal(signal.SIGTERM, terminated)\n"
        "fired = []\n"
        "def hook():\n"
        "    if not fired:\n"
        f"        fired.append(1); os.kill(os.getpid(), {int(signum)})\n"
        "os.register_at_fork(after_in_parent=hook)\n"
        "try:\n"
        f"    run_process(['sh', '-c', 'echo $$ > {pids}; exec sleep 5'], timeout=60, grace=1)\n"
        "except (KeyboardInterrupt, SystemExit) as stop:\n"
        "    print('stopped', type(stop).__name__)\n"
        "else:\n"
        "    print('ran to the end')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("stopped"), (proc.stdout, proc.stderr)
    if pids.exists() and pids.read_text().strip():
        assert wait_gone(int(pids.read_text())), "the child outlived the interrupted step"


def test_a_second_ctrl_c_during_the_grace_period_still_ends_the_tree(tmp_path: Path) -> None:
    # The first Ctrl-C sends SIGTERM and waits `grace` for the group; a second one during
    # that wait used to abort the wait before the SIGKILL, leaving a TERM-ignoring child.
    pids = tmp_path / "pids"
    code = (
        "from mgt.executors.process import run_process\n"
        f"run_process(['sh', '-c', \"trap '' TERM; sleep 300 & echo $! > {pids}; wait\"],"
        " timeout=300, grace=30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pids.read_text())
    parent.send_signal(signal.SIGINT)
    time.sleep(0.5)  # inside the 30 s grace: the child ignores SIGTERM
    assert alive(child)
    parent.send_signal(signal.SIGINT)
    try:
        parent.communicate(timeout=20)
        assert wait_gone(child), "a TERM-ignoring child outlived a twice-interrupted mgt"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
