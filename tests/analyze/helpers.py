"""Test helpers: event dicts → LogEvents (the real parser), and a full PatternReport check."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from mgt.analyze.analyzer import analyze_events
from mgt.analyze.thresholds import Thresholds
from mgt.logs.events import LogEvent, parse_event

REPO = Path(__file__).resolve().parents[2]
T = Thresholds(source="tests")  # the original polecat's values: 3, 2000, 5000, 0.05, 0.15


def events(items: Iterable[dict[str, Any]]) -> Iterator[LogEvent]:
    """Each dict as the JSON line a log would hold, parsed by mgt.logs."""
    for item in items:
        event = parse_event(json.dumps(item))
        assert event is not None, item
        yield event


def llm(node: str | None = "dmScene", latency: float = 100, prompt: float = 100,
        completion: float = 100, model: str | None = "haiku", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "llm_call", "latency_ms": latency,
                             "prompt_tokens": prompt, "completion_tokens": completion, **extra}
    if node is not None:
        event["node"] = node
    if model is not None:
        event["model"] = model
    return event


def move(source: str, to: str, **extra: Any) -> dict[str, Any]:
    return {"type": "graph_transition", "from": source, "to": to, "trigger": "t", **extra}


def error(message: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "message": message, **extra}


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "schemas" / "PatternReport.json").read_text())
    return loaded


def check_report(report: dict[str, Any], selector: str = '{app="tidepool"}') -> dict[str, Any]:
    """Assert everything every report must satisfy; returns the report for chaining."""
    validator = jsonschema.Draft7Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    patterns = report["patterns"]
    summary = report["summary"]
    assert summary["total_patterns"] == len(patterns)
    for severity in ("critical", "warning", "info"):
        assert summary[severity] == sum(p["severity"] == severity for p in patterns)
    ids = [p["id"] for p in patterns]
    assert len(set(ids)) == len(ids), ids
    rank = {"critical": 0, "warning": 1, "info": 2}
    keys = [(rank[p["severity"]], -p["occurrences"], p["id"]) for p in patterns]
    assert keys == sorted(keys)
    for p in patterns:
        assert len(p.get("sample_events", [])) <= 5
        assert p["recommendation"]
        assert p["grafana_query"].startswith(selector)
    json.dumps(report, allow_nan=False)  # strictly JSON: no NaN/Infinity anywhere
    return report


def analyze(items: Iterable[dict[str, Any]], thresholds: Thresholds = T,
            **kwargs: Any) -> dict[str, Any]:
    return check_report(analyze_events(events(items), thresholds=thresholds, **kwargs))


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in report["patterns"]}


def found(report: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(p["id"], p["severity"], p["occurrences"]) for p in report["patterns"]}
