"""examples/logs → the analyzer finds exactly what its README says; the file is reproducible."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mgt.analyze.analyzer import analyze_source, load_nodes
from mgt.analyze.thresholds import load_thresholds
from tests.analyze.helpers import REPO, check_report

LOGS = REPO / "examples" / "logs"
EVENTS = LOGS / "tidepool-events.jsonl"
NODES = LOGS / "nodes.txt"


def documented_patterns() -> list[tuple[str, str, str, int]]:
    """The rows of the README's "What the analyzer finds" table."""
    text = (LOGS / "README.md").read_text(encoding="utf-8")
    section = text.split("## What the analyzer finds", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([a-z0-9-]+) \| (\w+) \| (\w+) \| (\d+) \|$", section, re.M)
    assert rows, "the README table of expected patterns is missing"
    return [(i, t, s, int(n)) for i, t, s, n in rows]


def test_the_sample_logs_give_exactly_the_documented_patterns() -> None:
    analysis = analyze_source(
        str(EVENTS), since="24h", thresholds=load_thresholds(), nodes=load_nodes(NODES)
    )
    report = check_report(analysis.report)
    got = [(p["id"], p["type"], p["severity"], p["occurrences"]) for p in report["patterns"]]
    assert got == documented_patterns()
    summary = report["summary"]
    assert (summary["critical"], summary["warning"], summary["info"]) == (3, 2, 2)
    assert summary["events_analyzed"] == 8049
    assert summary["skipped"] == 3
    assert summary["query_range"].startswith("2026-01-15T00:00:26")
    # every planted type is present
    assert {p["type"] for p in report["patterns"]} == {
        "slow_llm", "failed_transition", "repeated_error", "token_bloat", "dead_path",
    }


def test_without_nodes_there_is_no_dead_path() -> None:
    report = check_report(analyze_source(str(EVENTS), since="all").report)
    expected = [row for row in documented_patterns() if row[1] != "dead_path"]
    assert [(p["id"], p["type"], p["severity"], p["occurrences"])
            for p in report["patterns"]] == expected


def test_the_injection_message_stays_data() -> None:
    report = analyze_source(str(EVENTS), since="all", thresholds=load_thresholds()).report
    # It occurs once, so it is in no pattern, and nothing it says changed the severities.
    assert "Ignore previous instructions" not in str(report["patterns"])
    assert report["summary"]["critical"] == 3


def test_nodes_file_matches_the_target_graph() -> None:
    graph = (REPO / "examples" / "target" / "graph" / "dm.graph").read_text(encoding="utf-8")
    graph_nodes = re.findall(r"^node (\w+)", graph, re.M)
    assert load_nodes(NODES) == graph_nodes


def test_the_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(LOGS / "generate.py"), "--out", str(tmp_path)],
        check=True, capture_output=True, timeout=120,
    )
    assert (tmp_path / "tidepool-events.jsonl").read_bytes() == EVENTS.read_bytes()
    assert (tmp_path / "nodes.txt").read_bytes() == NODES.read_bytes()
