"""Aggregates + Thresholds → Findings: the five rules of DESIGN §7, exactly.

- slow_llm — per node (else model): calls with latency ≥ T.latency_warning_ms
  are slow; reported when slow calls ≥ T.min_occurrences; occurrences = slow
  calls; critical when their mean latency ≥ T.latency_critical_ms, else warning.
- failed_transition — per (from, to) where `to` contains "error" or "fail"
  (any case): reported when count ≥ T.min_occurrences; rate = count / all
  transitions leaving `from`; critical when rate ≥ T.error_rate_critical,
  warning when ≥ T.error_rate_warning, else info.
- repeated_error — error messages grouped by template (digit runs, hex and
  uuid ids masked): reported when count ≥ T.min_occurrences; critical when
  count ≥ 5 × T.min_occurrences, else warning.
- token_bloat — per node (else model, like slow_llm): calls with
  prompt_tokens ≥ 3000 and prompt_tokens ≥ 10 × completion_tokens; reported
  when ≥ T.min_occurrences; warning when their mean prompt_tokens ≥ 6000,
  else info.
- dead_path — known graph nodes never entered (as a transition's `to` or an
  llm_call's `node`): info.

Threshold comparisons are exact (fractions against the threshold as written,
so a rate of 3/20 *is* 0.15), never subject to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from mgt.analyze.aggregate import (
    BLOAT_MIN_PROMPT_TOKENS,
    BLOAT_RATIO,
    Aggregates,
    ErrorStats,
    LlmStats,
    PairStats,
)
from mgt.analyze.text import logql_regex_for_template, logql_string, truncate
from mgt.analyze.thresholds import Thresholds
from mgt.logs.settings import DEFAULT_SELECTOR

__all__ = [
    "BLOAT_WARNING_MEAN_PROMPT",
    "QUERY_TYPES",
    "RULES",
    "SELECTOR",
    "Finding",
    "find_patterns",
    "rules_for_query_type",
]

RULES: tuple[str, ...] = (
    "slow_llm",
    "failed_transition",
    "repeated_error",
    "token_bloat",
    "dead_path",
)

#: `query_type` of the analyze formula → the rules it runs.
QUERY_TYPES: dict[str, tuple[str, ...]] = {
    "all": RULES,
    "transitions": ("failed_transition", "dead_path"),
    "llm-calls": ("slow_llm", "token_bloat"),
    "errors": ("repeated_error",),
    # A session is a path through the graph: its rules are the path rules.
    "sessions": ("failed_transition", "dead_path"),
}

BLOAT_WARNING_MEAN_PROMPT = 6000
REPEATED_CRITICAL_FACTOR = 5
#: The stream selector of the bundled sample's logs (GRAFANA_LOKI_SELECTOR sets another).
SELECTOR = DEFAULT_SELECTOR

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One reported pattern before ids are made unique (see `mgt.analyze.report`)."""

    type: str
    key: str  # the full grouping key; a short hash of it disambiguates colliding ids
    label: str  # what the id slug is made from (node, "from to", template)
    severity: str
    occurrences: int
    details: dict[str, Any]
    recommendation: str
    grafana_query: str
    sample_events: list[dict[str, Any]] = field(default_factory=list)


def rules_for_query_type(query_type: str) -> tuple[str, ...]:
    """The rules a formula `query_type` runs; ValueError for an unknown one."""
    try:
        return QUERY_TYPES[query_type]
    except KeyError:
        known = ", ".join(QUERY_TYPES)
        raise ValueError(f"unknown query_type {query_type!r} (expected one of: {known})") from None


def find_patterns(
    agg: Aggregates, t: Thresholds, rules: Iterable[str] = RULES
) -> list[Finding]:
    """Every finding of the enabled rules, in rule order (the report sorts them)."""
    from mgt.logs.settings import load_settings

    enabled = set(rules)
    found: list[Finding] = []
    # the Grafana queries name the graph's logs as the Loki source does (GRAFANA_LOKI_SELECTOR)
    selector = load_settings().selector
    steps: list[tuple[str, Callable[[Aggregates, Thresholds, str], list[Finding]]]] = [
        ("slow_llm", _slow_llm),
        ("failed_transition", _failed_transitions),
        ("repeated_error", _repeated_errors),
        ("token_bloat", _token_bloat),
        ("dead_path", _dead_paths),
    ]
    for name, rule in steps:
        if name in enabled:
            found.extend(rule(agg, t, selector))
    return found


# ------------------------------------------------------------------------- helpers


def _at_least(total: float, count: int, threshold: float) -> bool:
    """total / count ≥ threshold, compared exactly (threshold taken as written)."""
    return Fraction(total) >= Fraction(str(threshold)) * count


def _fig(value: float | None, digits: int = 1) -> float | int | None:
    """A figure for a report: whole numbers as ints, others rounded."""
    if value is None:
        return None
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


def _mean(total: float, count: int) -> float | int | None:
    return _fig(total / count) if count else None


def _show(name: str) -> str:
    """A log-supplied name quoted for a sentence: one line, bounded, in backticks."""
    return "`" + truncate(" ".join(name.split()).replace("`", "'"), 40) + "`"


def _subject(stats: LlmStats, name: str) -> tuple[dict[str, Any], str]:
    """The details naming an llm_call group, and the LogQL filter that selects it."""
    if stats.group_by == "node":
        return {"node": name, "group_by": "node"}, f"node = {logql_string(name)}"
    if stats.group_by == "model":
        return {"model": name, "group_by": "model"}, f"model = {logql_string(name)}"
    return {"node": None, "group_by": "none"}, 'node = "" | model = ""'


# --------------------------------------------------------------------------- rules


def _slow_llm(agg: Aggregates, t: Thresholds, selector: str) -> list[Finding]:
    out: list[Finding] = []
    for (group_by, name), s in agg.llm.items():
        n = s.slow.count
        if n < t.min_occurrences or n == 0:
            continue
        critical = _at_least(s.slow_sum, n, t.latency_critical_ms)
        subject, where = _subject(s, name)
        mean = _mean(s.slow_sum, n)
        p95 = _fig(s.slow.quantile(0.95))
        details: dict[str, Any] = {
            **subject,
            "calls": s.calls,
            "slow_calls": n,
            "slow_share": round(n / s.latency.count, 4) if s.latency.count else None,
            "latency_threshold_ms": _fig(t.latency_warning_ms),
            "mean_latency_ms": mean,
            "avg_latency_ms": mean,
            "p95_latency_ms": p95,
            "max_latency_ms": _fig(s.slow.max),
            "min_latency_ms": _fig(s.slow.min),
            "prompt_tokens_avg": _mean(s.slow_prompt_sum, s.slow_prompt_n),
            "completion_tokens_avg": _mean(s.slow_completion_sum, s.slow_completion_n),
            "all_calls_mean_latency_ms": _mean(s.latency_sum, s.latency.count),
            "all_calls_p95_latency_ms": _fig(s.latency.quantile(0.95)),
        }
        if group_by == "node" and s.models:
            details["models"] = dict(sorted(s.models.items()))
        who = _show(name) if group_by != "none" else "calls without a node or model"
        advice = (
            f"{n} of {s.calls} LLM calls at {who} took ≥ {_fig(t.latency_warning_ms)} ms "
            f"(mean {mean} ms, p95 {p95} ms). Shorten the prompt: drop context the node "
            "does not use, split the call into smaller steps, or cache repeated queries."
        )
        out.append(
            Finding(
                type="slow_llm",
                key=f"{group_by}:{name}",
                label=name if group_by != "none" else "unknown",
                severity="critical" if critical else "warning",
                occurrences=n,
                details=details,
                recommendation=advice,
                grafana_query=(
                    f'{selector} |= "llm_call" | json | {where} '
                    f"| latency_ms >= {_fig(t.latency_warning_ms)}"
                ),
                sample_events=s.slow_samples.items(),
            )
        )
    return out


def _failed_transitions(agg: Aggregates, t: Thresholds, selector: str) -> list[Finding]:
    out: list[Finding] = []
    for (source, to), pair in agg.failures.items():
        out.extend(_failed_transition(agg, t, source, to, pair, selector))
    return out


def _failed_transition(
    agg: Aggregates, t: Thresholds, source: str, to: str, pair: PairStats, selector: str
) -> list[Finding]:
    n = pair.count
    if n < t.min_occurrences:
        return []
    total = agg.leaving[source]
    rate = Fraction(n, total)
    if rate >= Fraction(str(t.error_rate_critical)):
        severity = "critical"
    elif rate >= Fraction(str(t.error_rate_warning)):
        severity = "warning"
    else:
        severity = "info"
    advice = (
        f"{float(rate):.1%} of transitions leaving {_show(source)} go to {_show(to)} "
        f"({n} of {total}). Handle the failure in {_show(source)}: validate its input and "
        "the model's output before transitioning, retry transient failures, and add a "
        "fallback edge for the common cause."
    )
    return [
        Finding(
            type="failed_transition",
            key=f"{source}\x00{to}",
            label=f"{source} {to}",
            severity=severity,
            occurrences=n,
            details={
                "from": source,
                "to": to,
                "count": n,
                "transitions_from": total,
                "rate": round(float(rate), 4),
                "rate_warning": t.error_rate_warning,
                "rate_critical": t.error_rate_critical,
            },
            recommendation=advice,
            grafana_query=(
                f'{selector} |= "graph_transition" | json '
                f"| from = {logql_string(source)} | to = {logql_string(to)}"
            ),
            sample_events=pair.samples.items(),
        )
    ]


def _repeated_errors(agg: Aggregates, t: Thresholds, selector: str) -> list[Finding]:
    from mgt.logs.events import format_timestamp

    out: list[Finding] = []
    for template, s in agg.errors.items():
        if s.count < t.min_occurrences:
            continue
        critical = s.count >= REPEATED_CRITICAL_FACTOR * t.min_occurrences
        details: dict[str, Any] = {
            "template": template,
            "count": s.count,
            "first_seen": None if s.first_ns is None else format_timestamp(s.first_ns),
            "last_seen": None if s.last_ns is None else format_timestamp(s.last_ns),
        }
        if s.contexts:
            details["contexts"] = _contexts(s)
        advice = (
            f"The same error occurred {s.count} times. Fix its root cause; if it comes from "
            "parsing model output, make the output schema and the prompt template agree "
            "(add the missing field to the template or make it optional) and validate the "
            "output before using it."
        )
        regex = logql_regex_for_template(template)
        out.append(
            Finding(
                type="repeated_error",
                key=template,
                label=template,
                severity="critical" if critical else "warning",
                occurrences=s.count,
                details=details,
                recommendation=advice,
                grafana_query=f'{selector} |= "error" | json | message =~ {logql_string(regex)}',
                sample_events=s.samples.items(),
            )
        )
    return out


def _contexts(s: ErrorStats) -> dict[str, int]:
    ordered = sorted(s.contexts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(ordered)
    if s.other_contexts:
        out["(other)"] = s.other_contexts
    return out


def _token_bloat(agg: Aggregates, t: Thresholds, selector: str) -> list[Finding]:
    out: list[Finding] = []
    for (group_by, name), s in agg.llm.items():
        n = s.bloat
        if n < t.min_occurrences or n == 0:
            continue
        warning = _at_least(s.bloat_prompt_sum, n, BLOAT_WARNING_MEAN_PROMPT)
        subject, where = _subject(s, name)
        prompt_avg = _mean(s.bloat_prompt_sum, n)
        completion_avg = _mean(s.bloat_completion_sum, n)
        ratio = None
        if s.bloat_completion_sum:
            ratio = round(s.bloat_prompt_sum / s.bloat_completion_sum, 1)
        who = _show(name) if group_by != "none" else "calls without a node or model"
        advice = (
            f"{n} of {s.calls} LLM calls at {who} sent ≥ {BLOAT_MIN_PROMPT_TOKENS} prompt tokens "
            f"for a tenth as many completion tokens or fewer (mean {prompt_avg} prompt vs "
            f"{completion_avg} completion). Remove context the node's output does not need "
            "from its template, or summarise it once and reuse the summary."
        )
        out.append(
            Finding(
                type="token_bloat",
                key=f"{group_by}:{name}",
                label=name if group_by != "none" else "unknown",
                severity="warning" if warning else "info",
                occurrences=n,
                details={
                    **subject,
                    "calls": s.calls,
                    "bloated_calls": n,
                    "prompt_tokens_avg": prompt_avg,
                    "prompt_tokens_max": _fig(s.bloat_prompt_max),
                    "completion_tokens_avg": completion_avg,
                    "prompt_to_completion_ratio": ratio,
                    "min_prompt_tokens": BLOAT_MIN_PROMPT_TOKENS,
                    "min_ratio": BLOAT_RATIO,
                },
                recommendation=advice,
                grafana_query=(
                    f'{selector} |= "llm_call" | json | {where} '
                    f"| prompt_tokens >= {BLOAT_MIN_PROMPT_TOKENS}"
                ),
                sample_events=s.bloat_samples.items(),
            )
        )
    return out


def _dead_paths(agg: Aggregates, t: Thresholds, selector: str) -> list[Finding]:
    out: list[Finding] = []
    for node in agg.known_nodes:
        if agg.entered.get(node, 0):
            continue
        quoted = logql_string(node)
        out.append(
            Finding(
                type="dead_path",
                key=node,
                label=node,
                severity="info",
                occurrences=1,
                details={
                    "node": node,
                    "entries": 0,
                    "known_nodes": len(agg.known_nodes),
                    "events_analyzed": agg.events,
                },
                recommendation=(
                    f"No transition or LLM call entered {_show(node)} in the analyzed events. "
                    "Remove the node if it is dead code, fix the routing that should reach it, "
                    "or document it as intentionally unused (e.g. behind a feature flag)."
                ),
                grafana_query=(
                    f"{selector} |= {quoted} | json | to = {quoted} or node = {quoted}"
                ),
            )
        )
    return out
