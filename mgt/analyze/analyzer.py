"""Events (or a log source) + thresholds → a PatternReport: the analyzer's one entry point.

    report = analyze_events(events, thresholds=load_thresholds(), nodes=load_nodes("nodes.txt"))
    report = analyze_source("examples/logs/tidepool-events.jsonl", since="24h")

One pass over the events, memory bounded by the number of distinct keys (see
`mgt.analyze.aggregate`), deterministic output apart from `metadata`'s
`generated_at` and `query_duration_ms`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgt.analyze.aggregate import MAX_KEYS, Aggregates, EventLike
from mgt.analyze.report import build_report
from mgt.analyze.rules import RULES, find_patterns
from mgt.analyze.thresholds import Thresholds, load_thresholds
from mgt.errors import UsageError

__all__ = ["Analysis", "analyze_events", "analyze_source", "load_nodes", "run_analysis"]


@dataclass(frozen=True)
class Analysis:
    """A finished analysis: the report and the aggregates it was built from (for figures)."""

    report: dict[str, Any]
    aggregates: Aggregates
    thresholds: Thresholds
    #: pattern id in `report` → its fingerprint (`mgt.analyze.fingerprint`), stable across days
    fingerprints: dict[str, str] = field(default_factory=dict)


def load_nodes(path: str | Path) -> list[str]:
    """Known graph nodes from a text file (one a line, `#` comments) or a JSON array of names."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"nodes file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read nodes file {p}: {reason}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise UsageError(f"nodes file {p}: not a valid JSON array: {err}") from None
        except RecursionError:
            raise UsageError(f"nodes file {p}: not a valid JSON array: nested too deeply") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"nodes file {p}: a JSON nodes file must be an array of strings")
        names = [v.strip() for v in value]
    else:
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    nodes = list(dict.fromkeys(n for n in names if n))
    if len(nodes) > MAX_KEYS:
        raise UsageError(f"nodes file {p}: {len(nodes)} nodes; at most {MAX_KEYS} are supported")
    return nodes


def run_analysis(
    events: Iterable[EventLike],
    *,
    thresholds: Thresholds | None = None,
    nodes: Sequence[str] | None = None,
    rules: Iterable[str] = RULES,
    skipped: int | Callable[[], int] = 0,
    source: str | None = None,
) -> Analysis:
    """Analyze a stream of events; `skipped` may be a callable read after the stream ends."""
    return _run(lambda agg: agg.feed_all(events), thresholds=thresholds, nodes=nodes,
                rules=rules, skipped=skipped, source=source)


def _run(
    feed: Callable[[Aggregates], None],
    *,
    thresholds: Thresholds | None,
    nodes: Sequence[str] | None,
    rules: Iterable[str],
    skipped: int | Callable[[], int],
    source: str | None,
) -> Analysis:
    """`run_analysis`, the aggregates fed by `feed` (events, or a file source's blocks)."""
    t = thresholds if thresholds is not None else load_thresholds()
    wanted = set(rules)
    rule_set = tuple(r for r in RULES if r in wanted)
    started = time.perf_counter()
    agg = Aggregates(t.latency_warning_ms, nodes, t.failure_nodes)
    feed(agg)
    findings = find_patterns(agg, t, rule_set)
    report = build_report(
        findings,
        agg,
        t,
        rules=rule_set,
        skipped=skipped() if callable(skipped) else skipped,
        source=source,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
    from mgt.analyze.fingerprint import finding_fingerprint
    from mgt.analyze.report import pattern_ids

    fingerprints = {
        pattern_id: finding_fingerprint(finding)
        for finding, pattern_id in zip(findings, pattern_ids(findings), strict=True)
    }
    return Analysis(report=report, aggregates=agg, thresholds=t, fingerprints=fingerprints)


def analyze_events(
    events: Iterable[EventLike],
    *,
    thresholds: Thresholds | None = None,
    nodes: Sequence[str] | None = None,
    rules: Iterable[str] = RULES,
    skipped: int = 0,
) -> dict[str, Any]:
    """The PatternReport for `events`."""
    return run_analysis(
        events, thresholds=thresholds, nodes=nodes, rules=rules, skipped=skipped
    ).report


def analyze_source(
    spec: str | None,
    *,
    since: str | None = "24h",
    thresholds: Thresholds | None = None,
    nodes: Sequence[str] | None = None,
    rules: Iterable[str] = RULES,
) -> Analysis:
    """Analyze a Loki URL or event file (None: `$GRAFANA_LOKI_URL`), streaming."""
    from mgt.logs.sources import FileSource, NewerThanTail, open_source

    with open_source(spec, since=since) as source:
        if isinstance(source, FileSource):
            # A time-ordered file has its newest event at its end: `since` needs no scan
            # of the whole file. A file that proves otherwise is analyzed again, exactly.
            source.tail_first = True

        def feed(agg: Aggregates) -> None:
            if isinstance(source, FileSource):
                # Blocks of lines, an ordinary line's event left as its decoded dict: no
                # event object per line (see `FileSource.event_blocks`).
                try:
                    blocks = source.event_blocks(agg.feed_line_block, check_digits=False)
                    for items, _ in blocks:
                        agg.feed_parts(items, hold=True)  # the events of a JSON array file
                finally:
                    agg.flush()
            else:
                agg.feed_all(source.iter_events())

        def analyze() -> Analysis:
            return _run(
                feed,
                thresholds=thresholds,
                nodes=nodes,
                rules=rules,
                skipped=lambda: source.skipped,
                source=source.description,
            )

        try:
            analysis = analyze()
        except NewerThanTail:
            source.notes.clear()
            analysis = analyze()
        if source.notes:
            analysis.report["summary"]["notes"] = list(source.notes[:10])
    return analysis
