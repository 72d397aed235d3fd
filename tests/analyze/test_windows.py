"""Two adjacent windows from one read, and pattern fingerprints that hold across days."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgt.analyze.analyzer import analyze_events, analyze_source
from mgt.analyze.fingerprint import FINGERPRINT_PATTERN, pattern_fingerprint
from mgt.analyze.windows import analyze_windows
from mgt.errors import UsageError
from mgt.logs.events import LogEvent, format_timestamp
from tests.analyze.helpers import T, error, events, llm, move

HOUR = 3600 * 10**9
SPLIT = 1768478400 * 10**9  # 2026-01-15T12:00:00Z, the "merge"
SLOW = pattern_fingerprint("slow_llm", "node:dmScene")
TIMEOUT = pattern_fingerprint("repeated_error", "timeout after <n>ms")
NEW_ERROR = pattern_fingerprint("repeated_error", "cache miss for <hex>")
FAILED = pattern_fingerprint("failed_transition", "dmScene\x00dmError")


def at(ns: int, item: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": format_timestamp(ns), **item}


def change_point_log() -> list[dict[str, Any]]:
    """A day before the merge with a slow node and a timeout, a day after with neither."""
    rows: list[dict[str, Any]] = []
    start = SPLIT - 24 * HOUR
    for i in range(96):  # every 30 minutes over both days
        ts = start + i * HOUR // 2
        after = ts >= SPLIT
        rows.append(at(ts, llm(latency=150 if after else 6000 + i, prompt=400 + i)))
        rows.append(at(ts + 1, move("dmScene", "dmNext")))
        if not after:
            rows.append(at(ts + 2, error(f"timeout after {1000 + i}ms", context="dmScene")))
        if i % 8 == 0:
            rows.append(at(ts + 3, move("dmScene", "dmError")))
    rows.append(at(SPLIT + 3 * HOUR, error("cache miss for 0xdeadbeef")))
    rows.append(at(SPLIT - 30 * HOUR, error("timeout after 1ms")))  # outside both windows
    rows.append(at(SPLIT + 30 * HOUR, llm(latency=9000)))  # outside both windows
    rows.append(llm(latency=9000))  # no time: in neither
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def strip(report: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(report))
    for key in ("generated_at", "query_duration_ms", "source"):
        out["metadata"].pop(key, None)
    out["summary"].pop("window", None)
    out["summary"].pop("skipped", None)
    return out


def test_figures_before_and_after_a_change_point(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", change_point_log())
    before, after = analyze_windows(str(path), SPLIT, 24 * HOUR, thresholds=T)
    assert (before.start_ns, before.end_ns, after.start_ns, after.end_ns) == (
        SPLIT - 24 * HOUR, SPLIT, SPLIT, SPLIT + 24 * HOUR)
    assert before.occurrences(SLOW) == 48
    assert after.occurrences(SLOW) == 0 and after.figures_of(SLOW) is None
    assert before.occurrences(TIMEOUT) == 48 and after.occurrences(TIMEOUT) == 0
    assert before.occurrences(NEW_ERROR) == 0
    # Below the reporting threshold (3) after the merge, yet it has figures.
    new = after.figures_of(NEW_ERROR)
    assert new is not None and new.occurrences == 1 and not new.reported
    assert NEW_ERROR not in after.ids
    failed_before, failed_after = before.figures_of(FAILED), after.figures_of(FAILED)
    assert failed_before is not None and failed_after is not None
    assert (failed_before.occurrences, failed_after.occurrences) == (6, 6)
    assert failed_before.reported and failed_before.details["from"] == "dmScene"
    slow = before.figures_of(SLOW)
    assert slow is not None and slow.severity == "critical" and slow.reported
    assert before.ids[SLOW] == "slow-llm-dmscene"
    assert before.report["summary"]["window"] == (
        "2026-01-14T12:00:00.000000000Z/2026-01-15T12:00:00.000000000Z")
    assert before.events == 48 * 2 + 48 + 6 and after.events == 48 * 2 + 6 + 1
    assert after.complete  # the file goes past the end of the after-window


def test_each_window_is_what_the_analyzer_makes_of_its_events_alone(tmp_path: Path) -> None:
    rows = change_point_log()
    path = write(tmp_path / "events.jsonl", rows)
    before, after = analyze_windows(str(path), SPLIT, 24 * HOUR, thresholds=T)
    parsed = list(events(rows))
    for window in (before, after):
        alone = [e for e in parsed if e.timestamp is not None
                 and window.start_ns <= e.timestamp < window.end_ns]
        assert strip(window.report) == strip(analyze_events(alone, thresholds=T))


def test_one_read_of_an_iterable_source() -> None:
    reads: list[int] = []

    def once() -> Iterator[LogEvent]:
        reads.append(1)
        yield from events(change_point_log())

    before, after = analyze_windows(once(), SPLIT, 24 * HOUR, thresholds=T)
    assert reads == [1]
    assert before.occurrences(SLOW) == 48 and after.occurrences(SLOW) == 0


def test_an_after_window_the_logs_do_not_reach_yet_is_incomplete(tmp_path: Path) -> None:
    rows = [r for r in change_point_log() if r.get("timestamp", "") < "2026-01-15T18"]
    path = write(tmp_path / "events.jsonl", rows)
    before, after = analyze_windows(str(path), SPLIT, 24 * HOUR, thresholds=T)
    assert before.complete and not after.complete
    assert after.events > 0


def test_a_window_length_must_be_positive() -> None:
    with pytest.raises(UsageError, match="window length must be positive"):
        analyze_windows([], SPLIT, 0)


def test_fingerprints_hold_across_days_and_differ_across_keys(tmp_path: Path) -> None:
    day1 = [at(SPLIT + i * 10**9, llm(latency=5000 + i)) for i in range(5)] + [
        at(SPLIT + i * 10**9, error(f"timeout after {i}ms")) for i in range(4)]
    day2 = [at(SPLIT + 86400 * 10**9 + i * 10**9, llm(latency=2500, prompt=9 + i,
                                                      session_id=f"s{i}"))
            for i in range(40)] + [
        at(SPLIT + 86400 * 10**9 + i * 10**9, error(f"timeout after {i * 7}ms"))
        for i in range(30)]
    one = analyze_source(str(write(tmp_path / "1.jsonl", day1)), since="all")
    two = analyze_source(str(write(tmp_path / "2.jsonl", day2)), since="all")
    assert one.fingerprints == {"slow-llm-dmscene": SLOW, "repeated-error-timeout-after-ms":
                                TIMEOUT}
    assert set(two.fingerprints.values()) == {SLOW, TIMEOUT}
    assert one.report["patterns"] != two.report["patterns"]  # other counts, same problems
    assert len({SLOW, TIMEOUT, NEW_ERROR, FAILED,
                pattern_fingerprint("slow_llm", "model:dmScene"),
                pattern_fingerprint("token_bloat", "node:dmScene")}) == 6
    for fp in (SLOW, TIMEOUT, NEW_ERROR, FAILED):
        assert FINGERPRINT_PATTERN.match(fp)


def test_the_fingerprint_format_is_fixed() -> None:
    # Fingerprints are recorded in pull requests: a change of format orphans them all.
    assert pattern_fingerprint("slow_llm", "node:dmScene") == "slow_llm:" + __import__(
        "hashlib").sha256(b"slow_llm\x00node:dmScene").hexdigest()[:16]
    assert pattern_fingerprint("repeated_error", "x\ud800") == pattern_fingerprint(
        "repeated_error", "x\ud800")
