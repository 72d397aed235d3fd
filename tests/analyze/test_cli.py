"""`mgt analyze` run as a real program: human and --json output, sources, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.analyze.helpers import REPO, check_report, error, llm, move
from tests.analyze.test_sample_logs import documented_patterns
from tests.fakes.loki import FakeLoki

SAMPLE = REPO / "examples" / "logs" / "tidepool-events.jsonl"
NODES = REPO / "examples" / "logs" / "nodes.txt"


def mgt(*args: str, cwd: Path = REPO, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_LOKI")}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "mgt", "analyze", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, env=environ,
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return check_report(json.loads(result.stdout))


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(p["id"], p["type"], p["severity"], p["occurrences"]) for p in report["patterns"]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mgt: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_json_report_of_the_sample() -> None:
    result = mgt("--source", str(SAMPLE), "--nodes", str(NODES), "--json")
    report = report_of(result)
    assert rows(report) == documented_patterns()
    assert report["metadata"]["generator_version"].startswith("mgt ")
    assert report["metadata"]["thresholds"]["latency_critical_ms"] == 5000


def test_human_report_of_the_sample() -> None:
    result = mgt("--source", str(SAMPLE), "--nodes", str(NODES))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Analyzed 8049 events" in out
    assert "3 malformed lines skipped" in out
    lines = out.splitlines()
    for pattern_id, _type, severity, occurrences in documented_patterns():
        # piped output is wide: each pattern is one line with its severity and count
        [line] = [row for row in lines if f" {pattern_id} " in row]
        assert severity.upper() in line
        assert f" {occurrences} " in line
    assert "dmAction → dmError: 20.1% (190 of 946)" in out
    assert "7 patterns: 3 critical, 2 warning, 2 info" in out


def test_no_patterns_is_still_a_success(tmp_path: Path) -> None:
    events = tmp_path / "calm.jsonl"
    events.write_text(json.dumps(llm(latency=10)) + "\n")
    result = mgt("--source", str(events))
    assert result.returncode == 0
    assert "No patterns found." in result.stdout
    assert report_of(mgt("--source", str(events), "--json"))["patterns"] == []


def test_gzip_json_array_and_stdin_sources_agree(tmp_path: Path) -> None:
    expected = rows(report_of(mgt("--source", str(SAMPLE), "--json")))
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert rows(report_of(mgt("--source", str(gz), "--json"))) == expected
    # the array `sleeptime-logs --json` / `mgt logs --json` print
    array = []
    for line in SAMPLE.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "type" in event:
            array.append({"timestamp": event.pop("timestamp"), "event": event})
    arr = tmp_path / "events.json"
    arr.write_text(json.dumps(array))
    assert rows(report_of(mgt("--source", str(arr), "--json"))) == expected
    piped = mgt("--source", "-", "--json", stdin=SAMPLE.read_text())
    assert rows(report_of(piped)) == expected


def test_since_counts_back_from_the_newest_event(tmp_path: Path) -> None:
    items = [error("Old failure 1", timestamp="2026-01-10T00:00:00Z")] * 3 + [
        error("New failure 1", timestamp="2026-01-15T12:00:00Z"),
        error("New failure 2", timestamp="2026-01-15T13:00:00Z"),
        error("New failure 3", timestamp="2026-01-15T14:00:00Z"),
    ]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(i) + "\n" for i in items))
    day = report_of(mgt("--source", str(events), "--since", "24h", "--json"))
    assert [p["details"]["template"] for p in day["patterns"]] == ["New failure <n>"]
    assert day["summary"]["events_analyzed"] == 3
    assert day["summary"]["query_range"].startswith("2026-01-15T12:00:00")
    week = report_of(mgt("--source", str(events), "--since", "7d", "--json"))
    assert week["summary"]["total_patterns"] == 2


def test_another_polecats_thresholds(tmp_path: Path) -> None:
    original = (REPO / "polecats" / "log-analyzer.toml").read_text(encoding="utf-8")
    strict = tmp_path / "strict.toml"
    strict.write_text(original.replace("min_occurrences = 3", "min_occurrences = 100"))
    report = report_of(mgt("--source", str(SAMPLE), "--polecat", str(strict), "--json"))
    assert [p["id"] for p in report["patterns"]] == [
        "slow-llm-dmscene", "failed-transition-dmaction-dmerror", "token-bloat-dmscene",
    ]
    assert report["metadata"]["thresholds"]["min_occurrences"] == 100


def test_bundled_thresholds_are_found_from_any_directory(tmp_path: Path) -> None:
    report = report_of(mgt("--source", str(SAMPLE), "--json", cwd=tmp_path))
    assert report["metadata"]["thresholds_source"].endswith("log-analyzer.toml")
    assert rows(report) == [r for r in documented_patterns() if r[1] != "dead_path"]


def test_nodes_as_a_json_array(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps(["dmScene", "dmNowhere", "dmLegacyRecap"]))
    report = report_of(mgt("--source", str(SAMPLE), "--nodes", str(nodes), "--json"))
    dead = [p["id"] for p in report["patterns"] if p["type"] == "dead_path"]
    assert dead == ["dead-path-dmlegacyrecap", "dead-path-dmnowhere"]


# ------------------------------------------------------------------------ bad input


def test_missing_source_file() -> None:
    assert_one_line_error(mgt("--source", "no/such/file.jsonl"), "no/such/file.jsonl")


def test_directory_as_source(tmp_path: Path) -> None:
    assert_one_line_error(mgt("--source", str(tmp_path)), "directory")


@pytest.mark.parametrize("since", ["yesterday", "-1h", "24", "h"])
def test_bad_since(since: str) -> None:
    assert_one_line_error(mgt("--source", str(SAMPLE), f"--since={since}"), "duration")


def test_bad_polecat_files(tmp_path: Path) -> None:
    assert_one_line_error(mgt("--source", str(SAMPLE), "--polecat", "nope.toml"), "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[thresholds\nmin_occurrences = 3\n")
    assert_one_line_error(mgt("--source", str(SAMPLE), "--polecat", str(broken)), "broken.toml")
    wrong = tmp_path / "wrong.toml"
    original = (REPO / "polecats" / "log-analyzer.toml").read_text(encoding="utf-8")
    wrong.write_text(original.replace("min_occurrences = 3", 'min_occurrences = "many"'))
    assert_one_line_error(mgt("--source", str(SAMPLE), "--polecat", str(wrong)),
                          "min_occurrences")
    assert_one_line_error(
        mgt("--source", str(SAMPLE), "--polecat", str(REPO / "polecats" / "pr-filer.toml")),
        "no [thresholds]",
    )


def test_bad_nodes_files(tmp_path: Path) -> None:
    assert_one_line_error(mgt("--source", str(SAMPLE), "--nodes", "nope.txt"), "nope.txt")
    bad = tmp_path / "nodes.json"
    bad.write_text('{"nodes": ["a"]}')
    assert_one_line_error(mgt("--source", str(SAMPLE), "--nodes", str(bad)), "array of strings")
    bad.write_text('["a", 1]')
    assert_one_line_error(mgt("--source", str(SAMPLE), "--nodes", str(bad)), "array of strings")
    bad.write_text("[not json")
    assert_one_line_error(mgt("--source", str(SAMPLE), "--nodes", str(bad)), "JSON")


def test_polecat_and_nodes_files_nested_too_deeply(tmp_path: Path) -> None:
    deep_toml = tmp_path / "deep.toml"
    deep_toml.write_text("[thresholds]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_one_line_error(mgt("--source", str(SAMPLE), "--polecat", str(deep_toml)),
                          "deep.toml", "nested too deeply")
    deep_json = tmp_path / "nodes.json"
    deep_json.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(mgt("--source", str(SAMPLE), "--nodes", str(deep_json)),
                          "nodes.json", "nested too deeply")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_loki_is_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = mgt("--source", url)
    assert_one_line_error(result, "127.0.0.1")


def test_default_source_is_grafana_loki_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = mgt(cwd=tmp_path, env={"GRAFANA_LOKI_URL": url})
    assert_one_line_error(result, url)


# ----------------------------------------------------------------------------- Loki


def test_analyze_a_loki_server(tmp_path: Path) -> None:
    now = time.time_ns()
    events = (
        [llm(node="dmScene", latency=6000, prompt=6500, completion=300)] * 4
        + [move("dmAction", "dmError")] * 3 + [move("dmAction", "dmDice")] * 7
        + [error(f"Failed to parse SceneNarrative: missing field 'mood' at offset {i}")
           for i in range(3)]
    )
    # more entries than the server's per-query cap, so the analyzer's source must page
    events += [{"type": "user_action", "action_type": "talk", "node_context": "dmScene"}] * 40
    with FakeLoki(max_entries=25) as loki:
        for i, event in enumerate(events):
            loki.add_event(event, ts=now - 10_000_000_000 + i * 1_000_000)
        result = mgt("--source", loki.url, "--since", "1h", "--json")
        report = report_of(result)
        assert len(loki.query_requests) >= 2
    assert report["summary"]["events_analyzed"] == len(events)
    assert {(p["id"], p["severity"]) for p in report["patterns"]} == {
        ("slow-llm-dmscene", "critical"),
        ("token-bloat-dmscene", "warning"),
        ("failed-transition-dmaction-dmerror", "critical"),
        ("repeated-error-failed-to-parse-scenenarrative-missing-field-mood-at-offset", "warning"),
    }
    assert report["metadata"]["source"].startswith("http://127.0.0.1:")


def test_a_graphs_own_stream_selector_reaches_loki_and_the_report(tmp_path: Path) -> None:
    """A user whose logs are not labelled app="tidepool": GRAFANA_LOKI_SELECTOR names them."""
    now = time.time_ns()
    ours = [llm(node="storyBeat", latency=7000, prompt=900, completion=80)] * 5
    theirs = [llm(node="otherApp", latency=9000, prompt=900, completion=80)] * 5
    with FakeLoki() as loki:
        for i, event in enumerate(ours):
            line = json.dumps(event, separators=(",", ":"))
            loki.add(now - 5_000_000_000 + i, line, {"app": "story-engine", "env": "prod"})
            loki.add(now - 5_000_000_000 + i, line, {"app": "story-engine", "env": "dev"})
        for i, event in enumerate(theirs):
            loki.add_event(event, ts=now - 4_000_000_000 + i)  # app="tidepool"
        selector = '{app="story-engine", env="prod"}'
        result = mgt("--source", loki.url, "--since", "1h", "--json",
                     env={"GRAFANA_LOKI_SELECTOR": selector})
        assert result.returncode == 0, result.stderr
        report = check_report(json.loads(result.stdout), selector)
        assert all(r.params["query"].startswith(selector) for r in loki.query_requests)
        bad = mgt("--source", loki.url, env={"GRAFANA_LOKI_SELECTOR": "app=story"})
        assert_one_line_error(bad, "GRAFANA_LOKI_SELECTOR", "not a LogQL stream selector")
    assert report["summary"]["events_analyzed"] == len(ours)
    (slow,) = [p for p in report["patterns"] if p["type"] == "slow_llm"]
    assert slow["id"] == "slow-llm-storybeat"
    assert slow["grafana_query"].startswith(selector + " |= ")


def test_a_truncated_gzip_is_analyzed_as_far_as_it_goes(tmp_path: Path) -> None:
    whole = gzip.compress(SAMPLE.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 3])
    report = report_of(mgt("--source", str(cut), "--since", "all", "--json"))
    assert 0 < report["summary"]["events_analyzed"] < 8049
    assert any("stopped reading" in note for note in report["summary"]["notes"])
    human = mgt("--source", str(cut), "--since", "all")
    assert human.returncode == 0
    assert "note: " in human.stdout and "stopped reading" in human.stdout


def test_log_text_with_lone_surrogates_in_the_report_and_the_builtin(tmp_path: Path) -> None:
    # "\ud800" is valid JSON in a log line but no UTF-8: `mgt analyze --json` crashed with a
    # traceback printing it, and the analyze-logs step failed writing PatternReport.json
    line = ('{"timestamp": "2026-01-15T00:00:0%d.000Z", "type": "error", '
            '"message": "bad \\ud800 input", "context": "x\\udfff"}\n')
    source = tmp_path / "events.jsonl"
    source.write_text("".join(line % i for i in range(4)))
    report = report_of(mgt("--source", str(source), "--json"))
    [pattern] = report["patterns"]
    assert pattern["sample_events"][0]["event"]["message"] == "bad \ud800 input"
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", str(REPO / "machines" / "analyze.mgt"),
         "--input", f"source={source}", "--input", "min_occurrences=1",
         "--runs-dir", str(tmp_path / "runs"), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["final"] == "report"


def test_a_graphs_own_failure_nodes_come_from_its_analyzer_polecat(tmp_path: Path) -> None:
    """A graph whose fallback node is `rescue` (no "error" or "fail" in its name): listed in
    the polecat's `failure_nodes`, transitions to it are failures like any other."""
    log = tmp_path / "events.jsonl"
    moves = [move("planBeat", "rescue")] * 4 + [move("planBeat", "writeBeat")] * 6 \
        + [move("writeBeat", "askHumanFallback")] * 3 + [move("writeBeat", "planBeat")] * 3
    log.write_text("".join(json.dumps(m) + "\n" for m in moves))
    polecat = tmp_path / "analyzer.toml"
    bundled = (REPO / "polecats" / "log-analyzer.toml").read_text()
    assert "[thresholds]" in bundled
    polecat.write_text(bundled.replace(
        "[thresholds]", '[thresholds]\nfailure_nodes = ["rescue", "*Fallback"]', 1))

    def failed(*extra: str) -> set[str]:
        report = report_of(mgt("--source", str(log), "--since", "all", "--json", *extra))
        return {p["id"] for p in report["patterns"] if p["type"] == "failed_transition"}

    assert failed() == set()  # by name alone, neither is a failure
    assert failed("--polecat", str(polecat)) == {
        "failed-transition-planbeat-rescue", "failed-transition-writebeat-askhumanfallback"}
