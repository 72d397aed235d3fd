"""A log source + a split time T + a length L → the figures of [T-L, T) and [T, T+L), in one read.

    before, after = analyze_windows("events.jsonl", split_at_ns=merged_at, length_ns=DAY)
    fp = pattern_fingerprint("slow_llm", "node:dmScene")
    before.figures_of(fp).occurrences, after.figures_of(fp).occurrences

For the impact of a change merged at T: each event is routed by its timestamp
to the window before T or the one after it (events outside both, or without a
usable time, are only counted), so the source is read once. Each window gets
the PatternReport the analyzer would make of its events alone, and the
figures of EVERY pattern group seen in it, keyed by fingerprint
(`mgt.analyze.fingerprint`), whether or not it reached the reporting
threshold: a pattern that fell to one occurrence after a fix still has
figures. `after.complete` says whether the source reaches the end of the
after-window (else its figures are partial: a verdict should wait).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mgt.analyze.aggregate import Aggregates, EventLike
from mgt.analyze.fingerprint import finding_fingerprint
from mgt.analyze.report import build_report, pattern_ids
from mgt.analyze.rules import RULES, find_patterns
from mgt.analyze.thresholds import Thresholds, load_thresholds
from mgt.errors import UsageError

__all__ = ["PatternFigures", "Window", "analyze_windows"]


@dataclass(frozen=True)
class PatternFigures:
    """One pattern group's figures in one window (no samples: figures only)."""

    fingerprint: str
    type: str
    key: str
    label: str
    occurrences: int
    severity: str  # as the rule grades it, also below the reporting threshold
    details: dict[str, Any]
    reported: bool  # whether it reached the thresholds (is in the window's report)


@dataclass(frozen=True)
class Window:
    """One window's events summarised: `[start_ns, end_ns)`."""

    start_ns: int
    end_ns: int
    events: int
    report: dict[str, Any]
    figures: dict[str, PatternFigures]  # fingerprint → figures
    ids: dict[str, str]  # fingerprint → id in `report`, for the reported patterns
    complete: bool = True
    aggregates: Aggregates | None = field(default=None, repr=False, compare=False)

    def figures_of(self, fingerprint: str) -> PatternFigures | None:
        """The figures of a pattern in this window, or None when it never occurred."""
        return self.figures.get(fingerprint)

    def occurrences(self, fingerprint: str) -> int:
        """How often the pattern occurred in this window (0 when never)."""
        figures = self.figures.get(fingerprint)
        return 0 if figures is None else figures.occurrences


@dataclass
class _Pass:
    """What the one read counted besides the two windows."""

    untimed: int = 0
    outside: int = 0
    newest_ns: int | None = None
    skipped: int = 0


def analyze_windows(
    source: str | Iterable[EventLike] | None,
    split_at_ns: int,
    length_ns: int,
    *,
    thresholds: Thresholds | None = None,
    nodes: Sequence[str] | None = None,
    rules: Iterable[str] = RULES,
) -> tuple[Window, Window]:
    """The windows `[T-L, T)` and `[T, T+L)` of a source spec (Loki URL, file, `-`, None for
    `$GRAFANA_LOKI_URL`) or of an iterable of events, read once."""
    if length_ns <= 0:
        raise UsageError(f"window length must be positive, not {length_ns} ns")
    t = thresholds if thresholds is not None else load_thresholds()
    rule_set = tuple(r for r in RULES if r in set(rules))
    started = time.perf_counter()
    before = Aggregates(t.latency_warning_ms, nodes, t.failure_nodes)
    after = Aggregates(t.latency_warning_ms, nodes, t.failure_nodes)
    seen = _Pass()
    description = None
    if source is None or isinstance(source, str):
        from mgt.logs.sources import FileSource, open_source

        # Loki is asked for the two windows only; a file is read whole (times are routed).
        with open_source(source, since=2 * length_ns, now_ns=split_at_ns + length_ns) as src:
            if isinstance(src, FileSource):
                src.since_ns = None
            description = src.description
            _route(src.iter_events(), split_at_ns, length_ns, before, after, seen)
            seen.skipped = src.skipped
    else:
        _route(source, split_at_ns, length_ns, before, after, seen)
    duration = round((time.perf_counter() - started) * 1000)
    end = split_at_ns + length_ns
    complete = seen.newest_ns is not None and seen.newest_ns >= end - 1
    return (
        _window(before, t, rule_set, split_at_ns - length_ns, split_at_ns, seen, description,
                duration, complete=True),
        _window(after, t, rule_set, split_at_ns, end, seen, description, duration,
                complete=complete),
    )


def _route(
    events: Iterable[EventLike], split: int, length: int,
    before: Aggregates, after: Aggregates, seen: _Pass,
) -> None:
    start, end = split - length, split + length
    newest = seen.newest_ns
    into_before: list[EventLike] = []
    into_after: list[EventLike] = []
    # Feeding in small batches keeps the aggregates' hot loop (feed_all) in charge.
    for event in events:
        ts = event.timestamp
        if ts is None:
            seen.untimed += 1
            continue
        if newest is None or ts > newest:
            newest = ts
        if start <= ts < split:
            into_before.append(event)
            if len(into_before) >= 512:
                before.feed_all(into_before)
                into_before.clear()
        elif split <= ts < end:
            into_after.append(event)
            if len(into_after) >= 512:
                after.feed_all(into_after)
                into_after.clear()
        else:
            seen.outside += 1
    before.feed_all(into_before)
    after.feed_all(into_after)
    seen.newest_ns = newest


def _window(
    agg: Aggregates, t: Thresholds, rules: tuple[str, ...], start: int, end: int,
    seen: _Pass, description: str | None, duration: int, *, complete: bool,
) -> Window:
    findings = find_patterns(agg, t, rules)
    report = build_report(findings, agg, t, rules=rules, skipped=seen.skipped,
                          source=description, duration_ms=duration)
    from mgt.logs.events import format_timestamp

    report["summary"]["window"] = f"{format_timestamp(start)}/{format_timestamp(end)}"
    reported = {finding_fingerprint(f) for f in findings}
    ids = {finding_fingerprint(f): i
           for f, i in zip(findings, pattern_ids(findings), strict=True)}
    # Every group with at least one occurrence, graded by the same rules.
    everything = find_patterns(agg, t.with_min_occurrences(1), rules)
    figures = {
        finding_fingerprint(f): PatternFigures(
            fingerprint=finding_fingerprint(f), type=f.type, key=f.key, label=f.label,
            occurrences=f.occurrences, severity=f.severity, details=f.details,
            reported=finding_fingerprint(f) in reported,
        )
        for f in everything
    }
    return Window(start_ns=start, end_ns=end, events=agg.events, report=report,
                  figures=figures, ids=ids, complete=complete, aggregates=agg)
