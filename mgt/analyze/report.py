"""Findings + stream figures → a PatternReport document (schemas/PatternReport.json).

Ids are `TYPE-KEY` slugs (`slow-llm-dmscene`); when two findings would share
one, each gets a short hash of its full key appended, so an id never depends on
which other patterns happen to be present. Patterns are ordered by severity
(critical, warning, info), then occurrences (most first), then id. `summary`
is computed from the patterns themselves, so it cannot disagree with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mgt import __version__
from mgt.analyze.aggregate import MAX_KEYS, MAX_TEMPLATES, Aggregates
from mgt.analyze.rules import RULES, SEVERITY_RANK, Finding
from mgt.analyze.sketch import EXACT_LIMIT, RELATIVE_ERROR
from mgt.analyze.text import short_hash, slug
from mgt.analyze.thresholds import Thresholds

__all__ = ["ID_PATTERN", "build_report", "pattern_ids"]

ID_PATTERN = re.compile(r"^[a-z0-9-]+$")

_OVERFLOW_NOTES = {
    "llm_keys": f"llm_call events of nodes/models beyond the first {MAX_KEYS}",
    "transition_sources": f"transitions from nodes beyond the first {MAX_KEYS}",
    "failed_transitions": f"failed transitions of (from, to) pairs beyond the first {MAX_KEYS}",
    "error_templates": f"error events whose template came after the first {MAX_TEMPLATES}",
}


def pattern_ids(findings: Iterable[Finding]) -> list[str]:
    """A unique `^[a-z0-9-]+$` id per finding, in the same order."""
    items = list(findings)
    bases = [f"{f.type.replace('_', '-')}-{slug(f.label)}" for f in items]
    counts: dict[str, int] = {}
    for base in bases:
        counts[base] = counts.get(base, 0) + 1
    ids: list[str] = []
    taken: set[str] = set()
    for finding, base in zip(items, bases, strict=True):
        candidate = base if counts[base] == 1 else f"{base}-{short_hash(finding.key)}"
        unique, n = candidate, 2
        while unique in taken:  # only if a hash suffix itself collides
            unique, n = f"{candidate}-{n}", n + 1
        taken.add(unique)
        ids.append(unique)
    return ids


def build_report(
    findings: list[Finding],
    agg: Aggregates,
    thresholds: Thresholds,
    *,
    rules: Iterable[str],
    skipped: int = 0,
    source: str | None = None,
    duration_ms: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The PatternReport for `findings` over the stream `agg` summarised."""
    from mgt.logs.events import format_timestamp

    patterns: list[dict[str, Any]] = []
    for finding, pattern_id in zip(findings, pattern_ids(findings), strict=True):
        pattern: dict[str, Any] = {
            "id": pattern_id,
            "type": finding.type,
            "severity": finding.severity,
            "occurrences": finding.occurrences,
            "details": finding.details,
            "recommendation": finding.recommendation,
            "grafana_query": finding.grafana_query,
        }
        if finding.sample_events:
            pattern["sample_events"] = finding.sample_events[:5]
        patterns.append(pattern)
    patterns.sort(key=lambda p: (SEVERITY_RANK[p["severity"]], -p["occurrences"], p["id"]))

    summary: dict[str, Any] = {
        "total_patterns": len(patterns),
        "critical": sum(p["severity"] == "critical" for p in patterns),
        "warning": sum(p["severity"] == "warning" for p in patterns),
        "info": sum(p["severity"] == "info" for p in patterns),
    }
    if agg.first_ns is not None and agg.last_ns is not None:
        summary["query_range"] = f"{format_timestamp(agg.first_ns)}/{format_timestamp(agg.last_ns)}"
    summary["events_analyzed"] = agg.events
    summary["skipped"] = skipped
    summary["ignored"] = agg.ignored
    summary["events_by_type"] = dict(sorted(agg.by_type.items()))
    enabled = set(rules)
    summary["rules"] = [r for r in RULES if r in enabled]
    if agg.overflow:
        summary["overflow"] = {
            table: {"events": count, "note": f"{_OVERFLOW_NOTES.get(table, table)}: not grouped"}
            for table, count in sorted(agg.overflow.items())
        }

    generated = (now or datetime.now(UTC)).astimezone(UTC)
    metadata: dict[str, Any] = {
        "generated_at": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator_version": f"mgt {__version__}",
        "query_duration_ms": max(0, int(duration_ms)),
        "thresholds": thresholds.as_dict(),
        "thresholds_source": thresholds.source,
        "p95": (
            f"nearest rank; exact up to {EXACT_LIMIT} values per key, then a log-bucket "
            f"histogram within {RELATIVE_ERROR:.0%} relative error"
        ),
    }
    if source is not None:
        metadata["source"] = source
    return {"patterns": patterns, "summary": summary, "metadata": metadata}
