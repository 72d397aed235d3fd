"""`mgt serve` as a user runs it: real child processes, state in the runs dir, a fixed clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.runtime.procs import mgt, spawn, wait_for

# Appends a mark, then holds while the `hold` file exists (so a test decides when it ends).
TICK = """\
machine tick "appends a mark to a file"

input tag: str = "x"
input marks: str = "marks.txt"
input hold: str = "hold"

state mark:
    run command "echo $tag >> $marks; while [ -f $hold ]; do sleep 0.05; done"
    with tag = input.tag, marks = input.marks, hold = input.hold
    on done -> ok

final ok: succeed
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tick.mgt").write_text(TICK)
    return tmp_path


def config(project: Path, *tables: str) -> None:
    (project / "mgt.toml").write_text("\n".join(tables))


def nightly(name: str = "nightly", tag: str = "n", extra: str = "") -> str:
    return (f'[[schedule]]\nname = "{name}"\nmachine = "tick.mgt"\ncron = "0 3 * * *"\n'
            f'inputs = {{ tag = "{tag}" }}\n{extra}')


def serve(project: Path, now: str, *args: str) -> subprocess.CompletedProcess[str]:
    return mgt("serve", "--runs-dir", "runs", *args, cwd=project, env={"MGT_SERVE_NOW": now})


def marks(project: Path) -> list[str]:
    path = project / "marks.txt"
    return path.read_text().split() if path.exists() else []


def state(project: Path) -> dict[str, dict[str, object]]:
    data = json.loads((project / "runs" / ".serve" / "state.json").read_text())
    schedules: dict[str, dict[str, object]] = data["schedules"]
    return schedules


def in_flight_id(project: Path) -> object:
    try:
        flight = state(project)["nightly"]["in_flight"]
    except (FileNotFoundError, KeyError):
        return None
    return flight.get("run_id") if isinstance(flight, dict) else None


def runs(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "runs").iterdir() if (p / "events.jsonl").exists())


def test_once_twice_in_a_row_runs_once(project: Path) -> None:
    config(project, nightly())
    first = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert first.returncode == 0, first.stderr
    [run_id] = runs(project)
    assert f"nightly: started run {run_id}" in first.stdout
    assert f"nightly: run {run_id} succeeded $0.0000" in first.stdout
    second = serve(project, "2026-01-15T10:05:00Z", "--once")
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert marks(project) == ["n"]
    entry = state(project)["nightly"]
    assert entry["last_tick"] == "2026-01-15T03:00:00+00:00"
    assert entry["in_flight"] is None
    assert entry["last_run"]["status"] == "succeeded"  # type: ignore[index]


def test_ticks_missed_while_down_give_one_catch_up_run(project: Path) -> None:
    config(project, nightly())
    assert serve(project, "2026-01-15T10:00:00Z", "--once").returncode == 0
    # Three nightly ticks (16th, 17th, 18th at 03:00) pass while nothing runs: one run.
    later = serve(project, "2026-01-18T09:00:00Z", "--once")
    assert later.returncode == 0, later.stderr
    assert later.stdout.count("started run") == 1
    assert marks(project) == ["n", "n"]
    assert state(project)["nightly"]["last_tick"] == "2026-01-18T03:00:00+00:00"
    # Before the next tick nothing is due; at it, one run.
    assert serve(project, "2026-01-19T02:59:59Z", "--once").stdout == ""
    assert serve(project, "2026-01-19T03:00:00Z", "--once").stdout.count("started run") == 1
    assert len(runs(project)) == 3


def test_every_counts_intervals_from_the_last_tick_in_the_schedules_zone(project: Path) -> None:
    config(project,
           '[[schedule]]\nname = "hourly"\nmachine = "tick.mgt"\nevery = "1h"\n'
           'inputs = { tag = "h" }\n',
           nightly("paris", "p", 'timezone = "Europe/Paris"\n'))
    # 02:30 UTC is 03:30 in Paris: the Paris nightly's 03:00 tick (02:00 UTC) has passed.
    assert serve(project, "2026-01-15T02:30:00Z", "--once").returncode == 0
    assert sorted(marks(project)) == ["h", "p"]
    assert state(project)["paris"]["last_tick"] == "2026-01-15T02:00:00+00:00"
    assert serve(project, "2026-01-15T03:29:59Z", "--once").stdout == ""
    assert "hourly: started" in serve(project, "2026-01-15T05:45:00Z", "--once").stdout
    assert state(project)["hourly"]["last_tick"] == "2026-01-15T05:30:00+00:00"
    assert sorted(marks(project)) == ["h", "h", "p"]


def test_inputs_executor_and_budget_reach_the_run(project: Path) -> None:
    config(project, nightly(extra='budget_usd = 3\nexecutor = "claude"\n').replace(
        'inputs = { tag = "n" }', 'inputs = { tag = "a b", marks = "m.txt" }'))
    proc = serve(project, "2026-01-15T10:00:00Z", "--once", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["started", "finished"]
    run_json = json.loads((project / "runs" / events[0]["run_id"] / "run.json").read_text())
    assert run_json["inputs"]["tag"] == "a b"
    assert (project / "m.txt").read_text() == "a b\n"  # relative to mgt.toml's directory


def test_a_run_is_never_started_while_the_schedules_last_one_is_under_way(
    project: Path,
) -> None:
    config(project, '[[schedule]]\nname = "often"\nmachine = "tick.mgt"\nevery = "1s"\n')
    (project / "hold").touch()
    server = spawn("serve", "--runs-dir", "runs", cwd=project,
                   env={"MGT_SERVE_NOW": "2026-01-15T10:00:00Z"})
    try:
        wait_for("the first run", lambda: marks(project) == ["x"], server)
        time.sleep(2.5)  # several 1s ticks pass while the run holds
        assert marks(project) == ["x"]
        assert len(runs(project)) == 1
        # A second serve on the same runs directory refuses to run anything.
        other = serve(project, "2026-01-15T10:00:00Z", "--once")
        assert other.returncode == 1
        assert "another mgt serve is running on" in other.stderr
        (project / "hold").unlink()
        wait_for("a second run after the first", lambda: len(marks(project)) >= 2, server)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    assert server.returncode == 130


def test_sigterm_interrupts_a_run_resumably_and_the_next_serve_resumes_it(
    project: Path,
) -> None:
    config(project, nightly())
    (project / "hold").touch()
    server = spawn("serve", "--runs-dir", "runs", cwd=project,
                   env={"MGT_SERVE_NOW": "2026-01-15T10:00:00Z"})
    wait_for("the run to start", lambda: marks(project) == ["n"], server)
    wait_for("its run id in the state", lambda: in_flight_id(project) is not None, server)
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 130, err
    [run_id] = runs(project)
    assert f"nightly: run {run_id} interrupted" in out
    entry = state(project)["nightly"]
    assert entry["in_flight"]["run_id"] == run_id  # type: ignore[index]
    show = mgt("show", run_id, "--runs-dir", "runs", "--json", cwd=project)
    assert json.loads(show.stdout)["status"] == "interrupted"
    # No command of the run is left behind holding the file.
    (project / "hold").unlink()

    again = serve(project, "2026-01-15T10:01:00Z", "--once")
    assert again.returncode == 0, again.stderr
    assert f"nightly: resumed run {run_id}" in again.stdout
    assert f"nightly: run {run_id} succeeded" in again.stdout
    assert runs(project) == [run_id]  # resumed, not a new run for the same tick
    assert marks(project) == ["n", "n"]  # the interrupted state ran again, to its end
    assert state(project)["nightly"]["in_flight"] is None
    assert serve(project, "2026-01-15T10:02:00Z", "--once").stdout == ""


def test_a_run_that_cannot_start_is_reported_and_its_tick_is_not_retried(
    project: Path,
) -> None:
    config(project, nightly().replace('inputs = { tag = "n" }', 'inputs = { nope = "n" }'))
    proc = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert proc.returncode == 1
    assert "nightly: run - error: mgt: unknown input 'nope'" in proc.stdout or \
        "nightly: run - error:" in proc.stdout, proc.stdout
    assert runs(project) == []
    assert serve(project, "2026-01-15T10:01:00Z", "--once").stdout == ""


BAD = [
    ('name = "a"\nmachine = "tick.mgt"\n', 2,
     "give exactly one of cron = \"...\" or every = \"...\""),
    ('name = "a"\nmachine = "tick.mgt"\ncron = "0 3 * * *"\nevery = "1h"\n', 2,
     "give exactly one of"),
    ('name = "a"\nmachine = "tick.mgt"\ncron = "61 3 * * *"\n', 5,
     "cron: invalid cron expression '61 3 * * *'"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "soon"\n', 5, "every: invalid duration 'soon'"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "0s"\n', 5, "at least 1s"),
    ('name = "a"\nmachine = "nope.mgt"\nevery = "1h"\n', 4, "machine: no such file: nope.mgt"),
    ('machine = "tick.mgt"\nevery = "1h"\n', 2, "missing key 'name'"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "1h"\ncolour = 1\n', 6, "unknown key 'colour'"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "1h"\ntimezone = "Mars/Base"\n', 6,
     "unknown time zone 'Mars/Base'"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "1h"\nbudget_usd = -1\n', 6,
     "budget_usd: must be a positive number"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = 3600\n', 5, "every: Input should be a valid"),
    ('name = "a"\nmachine = "tick.mgt"\nevery = "1h"\ninputs = { d = 2026-01-01 }\n', 6,
     "inputs.d: an input is a string"),
]


@pytest.mark.parametrize(("body", "line", "message"), BAD)
def test_a_bad_schedule_table_is_one_line_naming_its_line(
    project: Path, body: str, line: int, message: str
) -> None:
    config(project, "# schedules\n[[schedule]]\n" + body)
    proc = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"mgt: mgt.toml:{line}: [[schedule]]: "), proc.stderr
    assert message in proc.stderr
    assert not (project / "runs").exists()


def test_duplicate_names_malformed_toml_and_no_schedules_are_one_line_errors(
    project: Path,
) -> None:
    config(project, nightly(), nightly())
    proc = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert (proc.returncode, proc.stderr) == (
        2, "mgt: mgt.toml:6: [[schedule]]: duplicate schedule name 'nightly' "
           "(first at line 1)\n")
    (project / "mgt.toml").write_text("[[schedule]\n")
    proc = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert proc.returncode == 2 and proc.stderr.startswith("mgt: mgt.toml:1: invalid TOML")
    (project / "mgt.toml").write_text("[exec]\n")
    proc = serve(project, "2026-01-15T10:00:00Z", "--once")
    assert proc.returncode == 2 and "no [[schedule]] tables" in proc.stderr
    proc = mgt("serve", "--once", "--config", "missing.toml", cwd=project)
    assert (proc.returncode, proc.stderr) == (2, "mgt: missing.toml: no such file\n")


def test_a_serve_killed_outright_leaves_its_run_to_the_next_one(project: Path) -> None:
    from tests.runtime.procs import kill_processes_with

    config(project, nightly(tag=f"k{os.getpid()}"))
    (project / "hold").touch()
    server = spawn("serve", "--runs-dir", "runs", cwd=project,
                   env={"MGT_SERVE_NOW": "2026-01-15T10:00:00Z"})
    wait_for("the run id in the state", lambda: in_flight_id(project) is not None, server)
    server.kill()  # no chance to forward anything: the run's process lives on
    server.communicate(timeout=60)
    run_id = in_flight_id(project)
    # While that orphan still holds its run, a new serve starts nothing for the schedule.
    busy = serve(project, "2026-01-15T10:01:00Z", "--once")
    assert busy.returncode == 0, busy.stderr
    assert busy.stdout == f"nightly: run {run_id} is held by another process; waiting for it\n"
    kill_processes_with(str(project / "tick.mgt"))  # the crash took the run down too
    (project / "hold").unlink()
    again = serve(project, "2026-01-15T10:02:00Z", "--once")
    assert again.returncode == 0, again.stderr
    assert f"nightly: resumed run {run_id}" in again.stdout
    assert f"nightly: run {run_id} succeeded" in again.stdout
    assert runs(project) == [run_id]


def test_serve_also_serves_the_web_view_of_its_runs(project: Path) -> None:
    import re
    import urllib.request

    config(project, nightly())
    (project / "hold").touch()
    server = spawn("serve", "--runs-dir", "runs", "--ui", "0", cwd=project,
                   env={"MGT_SERVE_NOW": "2026-01-15T10:00:00Z", "MGT_UI_TOKEN": ""})
    try:
        wait_for("the run to start", lambda: marks(project) == ["n"], server)
        wait_for("its run id in the state", lambda: in_flight_id(project) is not None, server)
        [run_id] = runs(project)
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]  # schedule, web view, started
        found = re.search(r"web view of the runs at (http://127\.0\.0\.1:\d+/)", "".join(lines))
        assert found, lines
        with urllib.request.urlopen(found.group(1), timeout=30) as page:
            assert page.status == 200
            assert run_id in page.read().decode()  # the run under way, on the runs list
    finally:
        (project / "hold").unlink()
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_serve_refuses_a_web_view_off_loopback_without_a_token(project: Path) -> None:
    config(project, nightly())
    result = mgt("serve", "--runs-dir", "runs", "--once", "--ui", "0", "--ui-host", "0.0.0.0",
                 cwd=project, env={"MGT_SERVE_NOW": "2026-01-15T10:00:00Z", "MGT_UI_TOKEN": ""})
    assert result.returncode == 2
    assert "without an access token" in result.stderr
    assert "Traceback" not in result.stderr
    assert marks(project) == []  # refused before anything ran
