"""`mgt graph` run as a program: formats, -o, --run, and every way it can be misused."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from mgt.compile.graph import DOT_NOT_FOUND

needs_graphviz = pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz 'dot' is not installed"
)

PIPELINE = '''\
machine pipeline "Fetch, check, publish"

input strict: bool = true

state fetch:
    run command "echo '{\\"items\\": 3}'"
    on done when output.exit_code == 0 -> check
    on done -> failed
    on error -> failed

state check:
    run builtin noop
    retry 2 on error with feedback
    on done when input.strict -> publish
    on done -> published

state publish:
    run builtin noop
    on done -> published

final published: succeed "all published"
final failed: fail
'''


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.mgt"
    path.write_text(PIPELINE)
    return path


def mgt(*args: str | Path, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mgt", *map(str, args)],
        capture_output=True, env=env, cwd=cwd, timeout=120, check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("mgt: "), err
    return err.strip()


# ---------------------------------------------------------------- formats


def test_text_is_the_default(pipeline: Path) -> None:
    proc = mgt("graph", pipeline)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "machine pipeline — Fetch, check, publish"
    assert "fetch --done [output.exit_code == 0]--> check" in lines
    assert "fetch --error--> failed" in lines
    assert "fetch --done--> failed" in lines
    assert "fetch -.timeout.-> fail (implicit)" in lines  # a command is never schema_invalid
    assert "check --done [input.strict]--> publish" in lines
    assert "check ↻ retry 2 on error (feedback)" in lines
    assert 'final published: succeed "all published"' in lines


def test_mermaid_and_dot_go_to_stdout(pipeline: Path) -> None:
    mermaid = mgt("graph", pipeline, "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert "stateDiagram-v2" in mermaid.stdout.decode()
    assert "check --> publish : done [input.strict]" in mermaid.stdout.decode()
    dot = mgt("graph", pipeline, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.decode().startswith('digraph "pipeline" {')
    assert '"fetch" -> "_fail"' in dot.stdout.decode()


@needs_graphviz
def test_svg_goes_to_stdout(pipeline: Path) -> None:
    proc = mgt("graph", pipeline, "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    assert b"<svg" in proc.stdout and b"publish" in proc.stdout


@needs_graphviz
def test_png_is_written_to_the_output_file(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "pipeline.png"
    proc = mgt("graph", pipeline, "--format", "png", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_graphviz
def test_png_may_go_to_a_pipe(pipeline: Path) -> None:
    proc = mgt("graph", pipeline, "--format", "png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"\x89PNG")


def test_png_is_never_written_to_a_terminal(pipeline: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "graph", str(pipeline), "--format", "png"],
            stdout=terminal, stderr=subprocess.PIPE, timeout=120, check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "mgt: a PNG is binary: write it to a file with -o FILE.png\n"


def test_text_is_written_to_the_output_file(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.txt"
    proc = mgt("graph", pipeline, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert "check ↻ retry 2 on error (feedback)" in out.read_text()


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_a_missing_graphviz_is_one_line_saying_how_to_install_it(
    pipeline: Path, tmp_path: Path, fmt: str
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    proc = mgt("graph", pipeline, "--format", fmt, "-o", tmp_path / f"g.{fmt}", env=env)
    assert proc.returncode == 2
    assert one_line_error(proc) == f"mgt: {DOT_NOT_FOUND}"
    assert not (tmp_path / f"g.{fmt}").exists()
    # the text formats need nothing installed
    assert mgt("graph", pipeline, "--format", "dot", env=env).returncode == 0


# ---------------------------------------------------------------- bad input


def test_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    proc = mgt("graph", tmp_path / "nope.mgt")
    assert proc.returncode == 2
    assert "nope.mgt" in one_line_error(proc)


def test_a_machine_with_check_errors_is_not_drawn(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mgt"
    bad.write_text(PIPELINE.replace("-> publish", "-> publsh"))
    proc = mgt("graph", bad)
    assert proc.returncode == 1
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert "bad.mgt:14:" in err and "publsh" in err and "Traceback" not in err


def test_binary_garbage_is_a_clean_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mgt"
    junk.write_bytes(bytes(range(256)) * 4)
    proc = mgt("graph", junk)
    assert proc.returncode in (1, 2)
    assert b"Traceback" not in proc.stderr
    assert proc.stderr.startswith(b"mgt: ") or b"junk.mgt:" in proc.stderr


def test_an_unwritable_output_is_a_one_line_error(pipeline: Path, tmp_path: Path) -> None:
    proc = mgt("graph", pipeline, "-o", tmp_path / "no" / "such" / "dir" / "g.txt")
    assert proc.returncode == 2
    assert one_line_error(proc).startswith("mgt: cannot write ")


def test_an_unknown_format_is_a_usage_error(pipeline: Path) -> None:
    proc = mgt("graph", pipeline, "--format", "gif")
    assert proc.returncode == 2
    assert b"invalid choice: 'gif'" in proc.stderr


# ---------------------------------------------------------------- --run


def write_run(runs: Path, run_id: str, transitions: Sequence[tuple[str | None, ...]],
              attempts: tuple[tuple[str, int, str], ...] = (), tail: str = "") -> None:
    """A run directory in the journal's format: events.jsonl (+ run.json).

    A transition is (from, event, to) or (from, event, to, guard-as-written-or-None).
    """
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    events: list[dict[str, object]] = [{"type": "run_started"}]
    path = [transitions[0][0]] if transitions else []
    for state, attempt, outcome in attempts:
        events.append({"type": "attempt_started", "state": state, "attempt": attempt})
        events.append({"type": "attempt_finished", "state": state, "attempt": attempt,
                       "outcome": outcome})
    for source, event, target, *guard in transitions:
        events.append({"type": "transition", "from": source, "event": event, "to": target,
                       **({"guard": guard[0]} if guard else {})})
        events.append({"type": "state_entered", "state": target})
        path.append(target)
    events.insert(1, {"type": "state_entered", "state": path[0]} if path else {"type": "x"})
    lines = [json.dumps({"seq": i, "ts": "2025-01-01T00:00:00Z", **e})
             for i, e in enumerate(events)]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n" + tail)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "path": path}))


def test_run_marks_the_path_taken_in_text(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "pipeline-1",
              [("fetch", "done", "check", "output.exit_code == 0"),
               ("check", "done", "published", None)],
              attempts=(("fetch", 1, "done"), ("check", 1, "error"), ("check", 2, "done")))
    proc = mgt("graph", pipeline, "--run", "pipeline-1", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert "(* = taken by run pipeline-1)" in lines
    assert "* fetch --done [output.exit_code == 0]--> check" in lines
    assert "* check --done--> published" in lines
    assert "  check --done [input.strict]--> publish" in lines
    assert "* check ↻ retry 2 on error (feedback)" in lines
    assert '* final published: succeed "all published"' in lines
    assert "  final failed: fail" in lines


def test_run_highlights_edges_in_dot(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r1", [("fetch", "error", "failed")])
    proc = mgt("graph", pipeline, "--format", "dot", "--run", "r1", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    taken = [line for line in lines if "->" in line and "penwidth=3" in line]
    assert [line.split(" [")[0] for line in taken] == ['"__start" -> "fetch"',
                                                        '"fetch" -> "failed"']


def test_runs_dir_comes_from_the_environment(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "elsewhere"
    write_run(runs, "r2", [("fetch", "error", "failed")])
    proc = mgt("graph", pipeline, "--run", "r2", env={**os.environ, "MGT_RUNS_DIR": str(runs)})
    assert proc.returncode == 0, proc.stderr
    assert "* fetch --error--> failed" in proc.stdout.decode().splitlines()


def test_a_torn_last_journal_line_is_ignored(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r3", [("fetch", "done", "check")], tail='{"seq": 9, "type": "trans')
    proc = mgt("graph", pipeline, "--run", "r3", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    assert "* fetch --done [output.exit_code == 0]--> check" in proc.stdout.decode()


def test_an_unknown_run_id_is_a_one_line_error(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "pipeline-20250101", [("fetch", "done", "check")])
    proc = mgt("graph", pipeline, "--run", "pipeline-20250102", "--runs-dir", runs)
    assert proc.returncode == 2
    message = one_line_error(proc)
    assert "no run 'pipeline-20250102'" in message
    assert "did you mean 'pipeline-20250101'" in message
    proc = mgt("graph", pipeline, "--run", "../x", "--runs-dir", runs)
    assert proc.returncode == 2
    assert "bad run id" in one_line_error(proc)
    # an empty id (an unset shell variable: --run "$RUN") used to draw with nothing marked
    proc = mgt("graph", pipeline, "--run", "", "--runs-dir", runs)
    assert proc.returncode == 2
    assert "bad run id ''" in one_line_error(proc)


def test_a_run_of_another_machine_warns_and_still_draws(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "r4", [("fetch", "done", "transform")])
    proc = mgt("graph", pipeline, "--run", "r4", "--runs-dir", runs)
    assert proc.returncode == 0
    assert "warning" in proc.stderr.decode() and "transform" in proc.stderr.decode()
    assert "* [*] --> fetch" in proc.stdout.decode()


def test_the_guard_a_journal_names_tells_same_target_transitions_apart(tmp_path: Path) -> None:
    source = tmp_path / "twice.mgt"
    source.write_text(
        'machine twice\n\n'
        'state a:\n'
        '    run command "true"\n'
        '    on done when output.exit_code == 0 -> ok\n'
        '    on done when output.stdout == "" -> ok\n'
        '    on done -> ok\n\n'
        'final ok: succeed\n'
    )
    runs = tmp_path / "runs"
    write_run(runs, "r5", [("a", "done", "ok", 'output.stdout == ""')])
    proc = mgt("graph", source, "--run", "r5", "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert "  a --done [output.exit_code == 0]--> ok" in lines
    assert '* a --done [output.stdout == ""]--> ok' in lines
    assert "  a --done--> ok" in lines


def test_a_real_run_is_drawn_on_its_machine(pipeline: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    ran = mgt("exec", pipeline, "--runs-dir", runs, "--input", "strict=false", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    proc = mgt("graph", pipeline, "--run", run_id, "--runs-dir", runs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    starred = [line for line in proc.stdout.decode().splitlines() if line.startswith("* ")]
    assert starred == [
        "* [*] --> fetch",
        "* fetch --done [output.exit_code == 0]--> check",
        "* check --done--> published",
        '* final published: succeed "all published"',
    ]
    pipeline.write_text(PIPELINE.replace("all published", "everything published"))
    proc = mgt("graph", pipeline, "--run", run_id, "--runs-dir", runs)
    assert proc.returncode == 0
    assert b"warning: run" in proc.stderr and b"another version" in proc.stderr
