"""A merged sleeptime PR + the logs around its merge → an impact verdict (improved … pending).

For each pattern the PR addressed, its figures in a window before the merge
and a window of the same length after it (default 24h) are compared on the
pattern type's primary figure, where lower is better:

    slow_llm           slow_share   slow calls / calls of the node (or model)
    token_bloat        bloat_share  bloated calls / calls
    failed_transition  rate         transitions to the failure node / transitions leaving `from`
    repeated_error     count        errors with the template

Noise: a change is real only when it is at least `relative_noise` (10%) of the
figure before AND at least the absolute floor (0.02 for a share or rate; the
thresholds' `min_occurrences` for a count); anything smaller is `unchanged`.
Beyond noise, lower is `improved`, higher is `regressed`. A pattern is
`pending` while the after-window has not ended yet, or while an event file
does not reach its end (its figures would be partial); `unknown` (final) when
the ended window holds fewer than `min_events` events of its subject (default:
the thresholds' `min_occurrences`), or the window before the merge does and
the PR's block has no share or rate at filing to compare with instead (logs
kept for less time than since the merge). New critical patterns after the
merge on a node the PR's patterns name (absent before it, and the before-window
not empty) make the PR `regressed` too.

The PR's verdict: `regressed` if any pattern regressed or a new critical
pattern appeared; else `pending` if any pattern is pending; else `improved`
if any improved; else `unchanged` if any is (also for a PR naming no pattern);
else `unknown`. Final verdicts are recorded where the PR lives (see
`mgt.evolve.ledger`); pending ones are computed again next cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mgt.analyze.analyzer import Analysis
from mgt.analyze.thresholds import Thresholds
from mgt.evolve.ledger import LedgerPR
from mgt.evolve.metadata import SCHEMA_VERSION, fingerprint, pattern_key, sanitize

__all__ = [
    "PRIMARY",
    "ImpactSettings",
    "Window",
    "judge",
    "subject_figures",
    "verdict_text",
    "window_figures",
]

#: pattern type → (primary figure, the figure counting the subject's events)
PRIMARY: dict[str, tuple[str, str]] = {
    "slow_llm": ("slow_share", "calls"),
    "token_bloat": ("bloat_share", "calls"),
    "failed_transition": ("rate", "transitions_from"),
    "repeated_error": ("count", "events"),
}
SHARE_FLOOR = 0.02


@dataclass(frozen=True)
class ImpactSettings:
    window: timedelta = timedelta(hours=24)
    min_events: int | None = None  # None: the thresholds' min_occurrences
    relative_noise: float = 0.10
    share_floor: float = SHARE_FLOOR


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    analysis: Analysis
    complete: bool = True  # the source reaches the window's end (a file); Loki: by the clock


# ---------------------------------------------------------------- the analyzer, two windows
# The one place that reads the logs for verdicts: both windows from one read of the
# source (`mgt.analyze.windows.analyze_windows`).


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def window_figures(
    source: str | None, split_at: datetime, length: timedelta, thresholds: Thresholds,
    now: datetime | None = None,
) -> tuple[Window, Window]:
    """The analyses of [split-length, split) and [split, split+length) of `source`, read once.

    `now` is kept for callers that judge whether the after-window has ended; the read
    itself asks Loki for the two windows only and routes a file's events by their time.
    """
    from mgt.analyze.windows import analyze_windows

    length_ns = max(1, int(length.total_seconds() * 1_000_000_000))
    before, after = analyze_windows(source, _ns(split_at), length_ns, thresholds=thresholds)

    # A file (or stdin) holds what it holds: when its newest event is before the end of the
    # after-window, that window is partial however late it is now. Loki is asked for the two
    # windows only, so there the clock (the caller's `now`) says whether it has ended.
    from_file = not (source or "").startswith(("http://", "https://"))

    def window(lo: datetime, hi: datetime, part: Any) -> Window:
        analysis = Analysis(report=part.report, aggregates=part.aggregates,
                            thresholds=thresholds)
        return Window(lo, hi, analysis, complete=bool(part.complete) or not from_file)

    return (window(split_at - length, split_at, before),
            window(split_at, split_at + length, after))


# ---------------------------------------------------------------- figures


def subject_figures(analysis: Analysis, ptype: str, key: Mapping[str, str]) -> dict[str, float]:
    """The figures of one pattern's subject (node, transition, template) in one window."""
    agg = analysis.aggregates
    if ptype in ("slow_llm", "token_bloat"):
        group_by = key.get("group_by", "node")
        name = key.get("node") if group_by == "node" else key.get("model")
        stats = agg.llm.get((group_by, name if name is not None else "unknown"))
        calls = stats.calls if stats else 0
        if ptype == "slow_llm":
            slow = stats.slow.count if stats else 0
            figures = {"calls": float(calls), "slow_calls": float(slow),
                       "slow_share": round(slow / calls, 4) if calls else 0.0}
            if stats and stats.latency.count:
                figures["mean_latency_ms"] = round(stats.latency_sum / stats.latency.count, 1)
            return figures
        bloat = stats.bloat if stats else 0
        return {"calls": float(calls), "bloated_calls": float(bloat),
                "bloat_share": round(bloat / calls, 4) if calls else 0.0}
    if ptype == "failed_transition":
        source, to = key.get("from", ""), key.get("to", "")
        pair = agg.failures.get((source, to))
        count = pair.count if pair else 0
        total = agg.leaving.get(source, 0)
        return {"count": float(count), "transitions_from": float(total),
                "rate": round(count / total, 4) if total else 0.0}
    if ptype == "repeated_error":
        stats_e = agg.errors.get(key.get("template", ""))
        return {"count": float(stats_e.count if stats_e else 0), "events": float(agg.events)}
    return {"events": float(agg.events)}


def _expected_percent(meta: Mapping[str, Any] | None) -> float | None:
    """The smallest improvement the PR promised, in percent ("45-54%" → 45), if it named one."""
    expected = (meta or {}).get("expected_impact") or {}
    found: list[float] = []
    for metric in expected.get("metrics", []) if isinstance(expected, Mapping) else []:
        value = metric.get("improvement_percent") if isinstance(metric, Mapping) else None
        match = re.search(r"\d+(?:\.\d+)?", str(value)) if value is not None else None
        if match:
            found.append(float(match.group()))
    return min(found) if found else None


def _nodes(patterns: Sequence[Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for p in patterns:
        key: Mapping[str, Any] = p["key"] if isinstance(p.get("key"), Mapping) else {}
        for name in ("node", "from", "to"):
            value = key.get(name)
            if isinstance(value, str) and value:
                names.add(value)
    return names


def _report_fingerprints(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in report.get("patterns", []):
        details: Mapping[str, Any] = p["details"] if isinstance(p.get("details"), Mapping) else {}
        key = pattern_key(str(p.get("type")), details)
        out[fingerprint(str(p.get("type")), key)] = {
            "id": str(p.get("id")), "type": str(p.get("type")), "key": key,
            "severity": str(p.get("severity")),
        }
    return out


def judge(
    pr: LedgerPR, before: Window, after: Window, thresholds: Thresholds,
    settings: ImpactSettings | None = None, now: datetime | None = None,
) -> dict[str, Any]:
    """The verdict metadata block for `pr` from its two windows (see the module docstring)."""
    s = settings or ImpactSettings()
    now = now or datetime.now(UTC)
    min_events = s.min_events if s.min_events is not None else thresholds.min_occurrences
    expected = _expected_percent(pr.meta)
    results: list[dict[str, Any]] = []
    for p in pr.patterns:
        ptype, key = str(p.get("type", "")), p.get("key") or {}
        entry: dict[str, Any] = {"id": p["id"], "type": ptype, "key": key,
                                 "fingerprint": fingerprint(ptype, key), "figures": {}}
        if ptype not in PRIMARY or not key:
            entry.update(verdict="unknown", reason=(
                "no figure to compare for this pattern" if ptype in PRIMARY else
                f"no figure to compare for this pattern type ({ptype or 'not recorded'})"))
            results.append(entry)
            continue
        metric, events_name = PRIMARY[ptype]
        b = subject_figures(before.analysis, ptype, key)
        a = subject_figures(after.analysis, ptype, key)
        entry.update(metric=metric, before=b, after=a)
        if expected is not None:
            entry["expected_percent"] = expected
        after_events = a.get(events_name, 0.0)
        baseline = ""
        if b.get(events_name, 0.0) < min_events and _usable_at_filing(p, metric, events_name,
                                                                      min_events):
            # The logs no longer reach back before the merge (retention): the figures the
            # analysis gave when the PR was filed are the baseline instead.
            baseline = (f" (only {int(b.get(events_name, 0.0))} {events_name} in the logs "
                        "before the merge: compared with the figures at filing)")
            b = {k: float(v) for k, v in (p.get("figures") or {}).items()}
            entry.update(before=b, baseline="filing")
        if after.end > now:
            entry.update(verdict="pending",
                         reason=f"the after-window ends at {_iso(after.end)}")
        elif after_events < min_events and not after.complete:
            entry.update(verdict="pending", reason=(
                f"{int(after_events)} {events_name} after the merge; a verdict needs "
                f"at least {min_events}"))
        elif not after.complete:
            entry.update(verdict="pending", reason=(
                f"the logs end before the after-window does ({_iso(after.end)})"))
        elif after_events < min_events:
            entry.update(verdict="unknown", reason=(
                f"{int(after_events)} {events_name} in the logs after the merge, and the "
                f"window has ended: too few to judge (at least {min_events})"))
        elif b.get(events_name, 0.0) < min_events:
            entry.update(verdict="unknown", reason=(
                f"{int(b.get(events_name, 0.0))} {events_name} in the logs before the merge "
                "(they may not reach back that far) and no figure at filing: nothing to "
                "compare with"))
        else:
            old, new = b[metric], a[metric]
            delta = new - old
            floor = s.share_floor if metric != "count" else float(thresholds.min_occurrences)
            relative = delta / old if old else (0.0 if delta == 0 else float("inf"))
            if relative != float("inf"):
                entry["change"] = round(relative, 4)
            if abs(delta) < floor or abs(delta) < s.relative_noise * abs(old):
                verdict = "unchanged"
            else:
                verdict = "improved" if delta < 0 else "regressed"
            entry.update(verdict=verdict, reason=f"{metric} {_fmt(old)} → {_fmt(new)}" + (
                f" ({relative:+.0%})" if relative != float("inf") else "") + baseline)
        results.append(entry)

    touched = _nodes(pr.patterns)
    addressed = {str(r["fingerprint"]) for r in results}
    before_fps = _report_fingerprints(before.analysis.report)
    after_fps = _report_fingerprints(after.analysis.report)
    new_critical = [
        {**p, "fingerprint": fp, "figures": {}} for fp, p in after_fps.items()
        if fp not in before_fps and fp not in addressed and p["severity"] == "critical"
        and touched & _nodes([p]) and after.end <= now and after.complete
        and before.analysis.aggregates.events >= min_events  # else "new" only means unseen
    ]
    verdicts = [r["verdict"] for r in results]
    if "regressed" in verdicts or new_critical:
        verdict = "regressed"
    elif not verdicts:  # a block edited down to no patterns: nothing to wait for
        verdict = "unchanged"
    elif "pending" in verdicts:
        verdict = "pending"
    elif "improved" in verdicts:
        verdict = "improved"
    elif "unchanged" in verdicts:
        verdict = "unchanged"
    else:  # no pattern could be judged: final, but it says nothing about the change
        verdict = "unknown"
    reasons = [f"{r['id']}: {r['verdict']} ({r.get('reason', '')})" for r in results]
    reasons += [f"new critical pattern {p['id']} on {', '.join(sorted(touched & _nodes([p])))}"
                for p in new_critical]
    meta = {
        "schema": SCHEMA_VERSION, "kind": "verdict", "pr": pr.number, "verdict": verdict,
        "merged_at": _iso(pr.merged_at) if pr.merged_at else None,
        "window_seconds": int(s.window.total_seconds()), "checked_at": _iso(now),
        "patterns": results, "new_critical": new_critical, "reason": "; ".join(reasons),
    }
    return sanitize({k: v for k, v in meta.items() if v is not None}) or {}


def _usable_at_filing(pattern: Mapping[str, Any], metric: str, events_name: str,
                      min_events: int) -> bool:
    """The PR's block holds the pattern's primary figure at filing, from enough events, and
    the figure is a share or rate (a count depends on how long the analysis window was)."""
    figures = pattern.get("figures")
    if metric == "count" or not isinstance(figures, Mapping):
        return False
    value, events = figures.get(metric), figures.get(events_name)
    return isinstance(value, float | int) and isinstance(events, float | int) \
        and events >= min_events


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _cell(text: Any) -> str:
    """A PR-body-derived string made safe for a table cell in backticks (one line, no `|`)."""
    return " ".join(str(text).split()).replace("`", "'").replace("|", "/")[:120]


def verdict_text(meta: Mapping[str, Any]) -> str:
    """The human part of a verdict comment: the verdict and a before/after table."""
    hours = int(meta.get("window_seconds", 0)) / 3600
    lines = [f"**Impact: {meta.get('verdict')}** (PR #{meta.get('pr')}, {hours:g}h before vs "
             f"{hours:g}h after the merge at {meta.get('merged_at', '?')})", "",
             "| pattern | figure | before | after | verdict |", "|---|---|---|---|---|"]
    for p in meta.get("patterns", []):
        metric = str(p.get("metric", "-"))
        b, a = p.get("before", {}).get(metric), p.get("after", {}).get(metric)
        lines.append(f"| `{_cell(p['id'])}` | {_cell(metric)} | {'-' if b is None else _fmt(b)} | "
                     f"{'-' if a is None else _fmt(a)} | {p.get('verdict', '-')} |")
    for p in meta.get("new_critical", []):
        lines.append(f"| `{_cell(p['id'])}` | new critical pattern after the merge | - | - "
                     "| regressed |")
    return "\n".join(lines)
