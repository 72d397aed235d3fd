"""Event files of several shapes → `analyze_source`'s report equals the reference path's.

The reference parses every line with `parse_event` (the general path, no
caches of canonical times, no block parsing, no tail guess) and analyzes the
events kept by the cutoff; the file is read by the fast paths. Shapes: lines
in time order or shuffled, the `timestamp` key first or last, times in the
canonical millisecond shape with some odd lines among them, `since` all or a
window.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from mgt.analyze.analyzer import analyze_source, run_analysis
from mgt.logs.events import format_timestamp, parse_event
from mgt.logs.sources import parse_duration
from tests.logs.helpers import make_events

N = 5000  # several 64 KiB blocks
ODD_LINES = [
    b"not json at all",
    b'{"type": "llm_call", "timestamp": "2026-13-15T10:30:59.120Z", "node": "classify"}',
    b'{"type": "error", "timestamp": "2026-01-15T10:30:59,120Z", "message": "comma 7"}',
    b'{"type": "error", "timestamp": "5138-11-16T09:46:40.000Z", "message": "far"}',
    b'{"type": "graph_transition", "timestamp": "2026-01-15T10:30:59.120Z", "session_id": 4,'
    b' "from": "a", "to": "error"}',
    b'{"type": "heartbeat", "timestamp": "2026-01-15T10:30:59.120Z"}',
    b'{"type": "llm_call", "timestamp": "2026-01-15T10:30:59.120Z", "latency_ms": NaN}',
    b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120+02:00", "message": "zone"}',
    b"",
    b"[1, 2]",
]


def lines_of(order: str, key: str) -> list[bytes]:
    rows = make_events(N, seed=11, step_s=2.7)
    lines = []
    for row in rows:
        row["timestamp"] = row["timestamp"][:23] + "Z"  # the millisecond shape
        if key == "last":
            row["timestamp"] = row.pop("timestamp")
        lines.append(json.dumps(row).encode())
    rng = random.Random(5)
    for odd in ODD_LINES:
        lines.insert(rng.randrange(len(lines)), odd)
    if order == "shuffled":
        rng.shuffle(lines)
    return lines


def reference(lines: list[bytes], since: str, source: str) -> dict[str, Any]:
    events, skipped = [], 0
    for line in lines:
        event = parse_event(line + b"\n")
        if event is None:
            skipped += bool(line.strip())
        else:
            events.append(event)
    window = parse_duration(since) if since != "all" else None
    if window is not None:
        newest = max(e.timestamp for e in events if e.timestamp is not None)
        events = [e for e in events if e.timestamp is None or e.timestamp >= newest - window]
    return clean(run_analysis(events, skipped=skipped, source=source).report)


def clean(report: dict[str, Any]) -> dict[str, Any]:
    report["metadata"].pop("generated_at")
    report["metadata"].pop("query_duration_ms")
    return report


@pytest.mark.parametrize("since", ["all", "2h"])
@pytest.mark.parametrize("key", ["first", "last"])
@pytest.mark.parametrize("order", ["ordered", "shuffled"])
def test_a_file_of_any_shape_gives_the_reference_report(
    tmp_path: Path, order: str, key: str, since: str
) -> None:
    lines = lines_of(order, key)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = clean(analyze_source(str(path), since=since).report)
    assert report == reference(lines, since, str(path))
    analyzed = report["summary"]["events_analyzed"]
    assert analyzed == N + 7 if since == "all" else 0 < analyzed < N  # 7 odd lines are events
    assert report["patterns"] or since != "all", "the generated events hold patterns"


def test_the_millisecond_shape_is_what_the_file_holds() -> None:
    line = lines_of("ordered", "first")[1]
    time = json.loads(line)["timestamp"]
    assert len(time) == 24 and time.endswith("Z")
    assert format_timestamp(parse_event(line).timestamp)[:23] == time[:23]  # type: ignore[union-attr]
