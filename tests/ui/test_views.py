"""The view models of `mgt ui` (mgt/ui/views.py) on real runs, reports and PR records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mgt.errors import JournalError, MgtError
from mgt.ui import views
from tests.ui.data import SECRET, XSS_ALL, Runs


def test_rows_list_every_run_newest_first_with_status_machine_cost_and_final(runs: Runs) -> None:
    rows, statuses, machines = views.run_rows(runs.runs_dir)
    by_id = {r.run_id: r for r in rows}
    assert set(by_id) == {runs.ok, runs.failed, runs.hostile, runs.hostile_copy, runs.scan}
    ok = by_id[runs.ok]
    assert (ok.status, ok.machine, ok.final, ok.cost) == ("succeeded", "greet", "ok", "$0.0000")
    assert ok.tokens == "0 in / 0 out" and ok.duration and ok.created
    assert by_id[runs.failed].status == "failed"
    assert statuses == ["failed", "succeeded"]
    assert machines == ["broken", "greet", "hostile", "scan"]


def test_rows_are_filtered_by_status_and_machine(runs: Runs) -> None:
    rows, _, _ = views.run_rows(runs.runs_dir, status="failed")
    assert [r.run_id for r in rows] == [runs.failed]
    rows, _, _ = views.run_rows(runs.runs_dir, machine="greet", status="succeeded")
    assert [r.run_id for r in rows] == [runs.ok]
    rows, _, _ = views.run_rows(runs.runs_dir, machine="greet", status="failed")
    assert rows == []


def test_the_list_sees_new_runs_and_changed_ones(runs: Runs, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs.runs_dir / runs.ok, copy / runs.ok)
    assert [r.status for r in views.run_rows(copy)[0]] == ["succeeded"]
    shutil.copytree(runs.runs_dir / runs.failed, copy / runs.failed)
    assert {r.run_id for r in views.run_rows(copy)[0]} == {runs.ok, runs.failed}
    events = copy / runs.ok / "events.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    events.write_text("".join(line for line in lines if '"run_finished"' not in line))
    (copy / runs.ok / "lock").unlink(missing_ok=True)
    row = next(r for r in views.run_rows(copy)[0] if r.run_id == runs.ok)
    assert row.status == "interrupted"  # no run_finished and nobody holds it: read again


def test_a_missing_runs_directory_is_an_empty_list(tmp_path: Path) -> None:
    assert views.run_rows(tmp_path / "nowhere") == ([], [], [])


def test_a_run_view_holds_its_states_attempts_and_outputs_in_path_order(runs: Runs) -> None:
    view = views.run_view(runs.runs_dir, runs.ok)
    assert view.path == ["hello", "bye", "ok"]
    assert [s.name for s in view.states] == ["hello", "bye"]
    hello = view.states[0]
    assert hello.outcome == "done" and hello.visits == 1 and not hello.current
    (attempt,) = hello.attempts
    assert attempt.number == 1 and attempt.outcome == "done" and attempt.error is None
    assert attempt.answer is not None and attempt.answer.text == "hello Ada\n"
    assert attempt.output is not None and json.loads(attempt.output)["stdout"] == "hello Ada\n"
    assert view.current == "" and view.final == "ok" and view.message == "all said"


def test_a_failed_attempt_shows_its_error_and_stderr(runs: Runs) -> None:
    view = views.run_view(runs.runs_dir, runs.failed)
    (attempt,) = view.states[0].attempts
    assert attempt.outcome == "error"
    assert attempt.error and "4" in attempt.error
    assert attempt.stderr is not None and attempt.stderr.text == "compiling\n"


def test_credentials_in_inputs_are_masked(runs: Runs) -> None:
    view = views.run_view(runs.runs_dir, runs.ok)
    inputs = dict(view.inputs)
    assert inputs["api_token"] == views.MASK
    assert inputs["endpoint"] == f"https://{views.MASK}@example.com/hook"
    assert inputs["who"] == "Ada"
    assert SECRET not in repr(view)


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("password", "hunter2", views.MASK),
    ("GITHUB_TOKEN", "ghp_x", views.MASK),
    ("aws_secret_access_key", "k", views.MASK),
    ("note", "postgres://u:pw@db:5432/x", f"postgres://{views.MASK}@db:5432/x"),
    ("note", "see https://example.com/a@b", "see https://example.com/a@b"),
    ("token", "", ""),
    ("nested", {"api_key": "k", "ok": ["x"]}, {"api_key": views.MASK, "ok": ["x"]}),
])
def test_mask_secrets(key: str, value: object, shown: object) -> None:
    assert views.mask_secrets({key: value}) == {key: shown}


def test_hostile_attempt_files_are_read_as_text(runs: Runs) -> None:
    view = views.run_view(runs.runs_dir, runs.hostile)
    (attempt,) = view.states[0].attempts
    assert attempt.answer is not None and attempt.answer.text == XSS_ALL  # result.json's answer
    assert attempt.prompt is not None and XSS_ALL in attempt.prompt.text
    assert [f.name for f in attempt.other_files] == ["<img src=x onerror=alert(7)>.txt",
                                                     "request.json"]


def test_a_state_whose_output_is_a_pattern_report_is_found(runs: Runs) -> None:
    reports = views.pattern_reports_of(runs.runs_dir, runs.scan)
    assert list(reports) == ["analyze"]
    assert reports["analyze"]["summary"]["total_patterns"] > 0
    view = views.run_view(runs.runs_dir, runs.scan)
    assert [s.has_report for s in view.states] == [True]
    assert views.pattern_reports_of(runs.runs_dir, runs.ok) == {}


def test_links_are_not_followed_and_binary_files_not_shown(runs: Runs, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text(SECRET)
    copy = tmp_path / "runs"
    shutil.copytree(runs.runs_dir / runs.ok, copy / runs.ok)
    attempt = copy / runs.ok / "states" / "hello" / "1"
    (attempt / "key.txt").symlink_to(secret)
    (attempt / "stderr.txt").unlink()
    (attempt / "stderr.txt").symlink_to(secret)
    (attempt / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100))
    view = views.run_view(copy, runs.ok)
    assert SECRET not in repr(view)
    files = {f.name: f.text for f in view.states[0].attempts[0].other_files}
    assert files["key.txt"] == "(a symbolic link: not followed)"
    assert files["shot.png"] == "(a binary file of 116 bytes: not shown)"


def test_an_unknown_run_is_a_journal_error(runs: Runs) -> None:
    with pytest.raises(JournalError):
        views.run_view(runs.runs_dir, "nope")
    with pytest.raises(JournalError):
        views.run_view(runs.runs_dir, "../etc")
    assert not views.known_run(runs.runs_dir, "nope")


def test_a_snapshot_is_small_json(runs: Runs) -> None:
    snap = views.run_snapshot(runs.runs_dir, runs.ok)
    assert snap["status"] == "succeeded" and snap["current"] == "" and snap["final"] == "ok"
    assert [s["name"] for s in snap["states"]] == ["hello", "bye"]
    assert json.loads(json.dumps(snap)) == snap


def test_the_graph_is_svg_with_the_taken_path(runs: Runs) -> None:
    if shutil.which("dot") is None:
        pytest.skip("graphviz 'dot' is not installed")
    graph = views.run_graph(runs.runs_dir, runs.ok)
    assert graph.problem is None and graph.svg is not None
    svg = graph.svg.decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert ">hello<" in svg and ">bye<" in svg
    assert "#d97706" in svg  # the taken path's colour
    assert "<script" not in svg


def test_a_run_whose_machine_file_is_gone_says_so(runs: Runs, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(runs.runs_dir / runs.ok, copy / runs.ok)
    info = json.loads((copy / runs.ok / "run.json").read_text())
    info["machine"]["path"] = str(tmp_path / "gone.mgt")
    (copy / runs.ok / "run.json").write_text(json.dumps(info))
    graph = views.run_graph(copy, runs.ok)
    assert graph.svg is None and graph.problem and "not on this computer" in graph.problem
    assert "not on this computer" in views.run_view(copy, runs.ok).machine_note


def test_a_run_whose_machine_file_changed_says_so(runs: Runs, tmp_path: Path) -> None:
    assert views.run_view(runs.runs_dir, runs.ok).machine_note == ""
    copy = tmp_path / "runs"
    shutil.copytree(runs.runs_dir / runs.ok, copy / runs.ok)
    changed = tmp_path / "greet.mgt"
    changed.write_text((runs.root / "greet.mgt").read_text() + "\n# edited\n")
    info = json.loads((copy / runs.ok / "run.json").read_text())
    info["machine"]["path"] = str(changed)
    (copy / runs.ok / "run.json").write_text(json.dumps(info))
    assert "has changed since this run" in views.run_view(copy, runs.ok).machine_note
    assert views.run_graph(copy, runs.ok).svg is not None  # drawn all the same


def test_report_view_sorts_by_severity_and_prepares_the_charts(report_file: Path) -> None:
    report = views.load_report(report_file)
    view = views.report_view(report, "sample")
    severities = [p.severity for p in view.patterns]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)
    slow = next(p for p in view.patterns if p.id == "slow-llm-dmscene")
    assert slow.where == "dmScene" and slow.occurrences == 906
    latency = view.charts["latency"]
    assert latency["labels"][:2] == ["dmScene", "dmAftermath"]
    assert latency["series"]["p95"][0] == 7709.8 and latency["threshold"] == 2000
    spans = {s["id"]: s for s in view.charts["errors"]["spans"]}
    assert spans["repeated-error-xss"]["count"] == 3
    assert spans["repeated-error-xss"]["first"].startswith("2026-01-15T01:00:00")
    assert dict(view.summary)["events_analyzed"] == "8049"
    assert sum(view.charts["types"]["values"]) == sum(p.occurrences for p in view.patterns)


def test_a_file_that_is_not_a_report_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"patterns": 3}')
    with pytest.raises(MgtError, match="is not a PatternReport"):
        views.load_report(bad)
    with pytest.raises(MgtError, match="cannot read the report"):
        views.load_report(tmp_path / "missing.json")


def test_pr_records_newest_first_with_verdict_and_figures(repo: Path) -> None:
    prs = views.pr_records(repo)  # the ledger's view: states from git, verdicts from records
    assert [p.number for p in prs] == [3, 2, 1]
    measured = prs[1]
    assert measured.verdict == "improved" and measured.state == "merged"
    assert measured.patterns == ["slow-llm-dmscene", "token-bloat-dmscene"]
    assert measured.figures == {
        "labels": ["slow-llm-dmscene slow_share", "token-bloat-dmscene bloat_share"],
        "before": [0.93, 0.8], "after": [0.12, 0.05], "change": ["-87%", "-94%"]}
    plain = prs[2]
    assert (plain.state, plain.verdict, plain.figures) == ("open", None, None)
    assert plain.body == "## Summary\n\nplain"
    assert prs[0].state == "closed"  # its branch does not exist


def test_a_repository_without_records_has_none_and_a_non_repository_is_an_error(
    tmp_path: Path,
) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    assert views.pr_records(tmp_path / "empty") == []
    (tmp_path / "plain").mkdir()
    with pytest.raises(MgtError, match="not a git repository"):
        views.pr_records(tmp_path / "plain")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, ""), (0.25, "250 ms"), (12.34, "12.3 s"), (245, "4 min 05 s"), (7380, "2 h 03 min"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert views.format_duration(seconds) == text


FAN = """\
machine fan

input items: json = ["a", "b", "c"]

state each:
    for n in input.items max 2
    run command "test $n != c"
    with n = n
    tolerate 1 failures
    on done -> ok
    on error -> bad

final ok: succeed
final bad: fail
"""


def test_a_fan_out_state_shows_each_item_with_its_outcome(tmp_path: Path) -> None:
    from tests.runtime.procs import mgt

    (tmp_path / "fan.mgt").write_text(FAN.replace('"c"]', json.dumps(XSS_ALL) + "]")
                                      .replace("!= c", "!= x"), encoding="utf-8")
    proc = mgt("exec", "fan.mgt", "--runs-dir", "runs", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    [each] = [s for s in views.run_view(tmp_path / "runs", run_id).states if s.name == "each"]
    # the markup item breaks the unquoted `test`: an error, tolerated
    assert [(i.index, i.outcome) for i in each.items] == [(0, "done"), (1, "done"), (2, "error")]
    assert each.items[2].key == XSS_ALL and each.items[2].error  # text: the template escapes it
    assert '"exit_code": 0' in each.items[0].output
