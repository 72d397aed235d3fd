"""PatternReport + ProposedChanges → the values of the file-pr templates (branch, title, body).

The file-pr formula's `[git]` and `[pr]` templates name these fields:
`{date}`, `{pattern_type}`, `{title}`, `{pattern_summary}`, `{grafana_links}`,
`{footer}`, `{brief_description}`, `{pattern_count}`, `{pattern_table}`,
`{change_summary}`, `{evidence_section}`, `{expected_impact}`.

Log content is untrusted: it reaches the PR only as data — table cells are
escaped (no HTML, no `|`), sample events and queries sit in code fences longer
than any run of backticks inside them.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from mgt.evolve.diffs import FileDiff

__all__ = [
    "PATTERN_TYPE_SLUGS",
    "SEVERITY_ORDER",
    "branch_pattern_type",
    "fill",
    "template_values",
]

#: PatternReport `type` → the `{pattern_type}` of a branch name. One type: its slug
#: (the file-evidence skill's examples: `slow-llm-calls`, `failed-transitions`);
#: several types: `mixed-patterns`.
PATTERN_TYPE_SLUGS: dict[str, str] = {
    "slow_llm": "slow-llm-calls",
    "failed_transition": "failed-transitions",
    "repeated_error": "repeated-errors",
    "dead_path": "dead-paths",
    "token_bloat": "token-bloat",
}
MIXED = "mixed-patterns"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def fill(template: str, values: Mapping[str, Any]) -> str:
    """`template` with `{name}` fields replaced; unknown fields and stray braces stay as written."""
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:  # unbalanced braces: fill what can be filled, literally
        for key, value in values.items():
            template = template.replace("{" + key + "}", str(value))
        return template
    for literal, field, spec, conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        if field in values:
            out.append(str(values[field]))
        else:
            rest = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            out.append("{" + field + rest + "}")
    return "".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "patterns"


def branch_pattern_type(patterns: Sequence[Mapping[str, Any]]) -> str:
    types = list(dict.fromkeys(str(p.get("type", "")) for p in patterns))
    if len(types) == 1:
        return PATTERN_TYPE_SLUGS.get(types[0], _slug(types[0]))
    return MIXED


def _cell(value: Any, limit: int = 120) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|")


def _fence(text: str, info: str = "") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text}\n{ticks}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.0f}".replace(",", "")
    return str(value)


def subject(pattern: Mapping[str, Any]) -> str:
    """Where a pattern is: `dmScene`, `dmAction -> dmError`, or a short error template."""
    details = pattern.get("details")
    d = details if isinstance(details, Mapping) else {}
    if d.get("from") and d.get("to"):
        return f"{d['from']} -> {d['to']}"
    for key in ("node", "model"):
        if d.get(key):
            return str(d[key])
    for key in ("template", "message"):
        if d.get(key):
            text = " ".join(str(d[key]).split())
            return f'"{text[:57]}…"' if len(text) > 60 else f'"{text}"'
    return str(pattern.get("id", "?"))


_PHRASES = {
    "slow_llm": "speed up slow LLM calls at {where}",
    "token_bloat": "trim prompt tokens at {where}",
    "failed_transition": "fix failing transition {where}",
    "repeated_error": "fix repeated error {where}",
    "dead_path": "remove or reconnect dead path {where}",
}


def brief_description(patterns: Sequence[Mapping[str, Any]]) -> str:
    if not patterns:
        return "apply proposed changes"
    first = patterns[0]
    phrase = _PHRASES.get(str(first.get("type")), "address {where}").format(where=subject(first))
    more = len(patterns) - 1
    return phrase + (f" (+{more} more pattern{'s' * (more > 1)})" if more else "")


def figures(pattern: Mapping[str, Any]) -> str:
    """The few figures a reviewer wants first: `avg 5620ms, p95 7310ms, 4120 prompt tokens`."""
    details = pattern.get("details")
    d = details if isinstance(details, Mapping) else {}
    parts: list[str] = []
    latency = d.get("mean_latency_ms", d.get("avg_latency_ms"))
    if isinstance(latency, int | float):
        parts.append(f"avg {_number(latency)}ms")
    if isinstance(d.get("p95_latency_ms"), int | float):
        parts.append(f"p95 {_number(d['p95_latency_ms'])}ms")
    if isinstance(d.get("prompt_tokens_avg"), int | float):
        parts.append(f"{_number(d['prompt_tokens_avg'])} prompt tokens")
    if isinstance(d.get("completion_tokens_avg"), int | float):
        parts.append(f"{_number(d['completion_tokens_avg'])} completion tokens")
    if isinstance(d.get("rate"), int | float):
        parts.append(f"rate {d['rate'] * 100:.1f}%")
    if isinstance(d.get("count"), int) and not parts:
        parts.append(f"{d['count']} times")
    return ", ".join(parts)


def pattern_summary(patterns: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for p in patterns:
        extra = figures(p)
        lines.append(
            f"- {p.get('type')} at {subject(p)} ({p.get('id')}): {p.get('occurrences')} "
            f"occurrences, {p.get('severity')}" + (f", {extra}" if extra else "")
        )
    return "\n".join(lines) or "- (none named)"


def grafana_links(patterns: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"- {p.get('id')}: {' '.join(str(p['grafana_query']).split())}"
        for p in patterns if p.get("grafana_query")
    ]
    return ("\n" + "\n".join(lines)) if lines else "none recorded"


def pattern_table(patterns: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "| Pattern | Type | Severity | Occurrences | Details |",
        "|---------|------|----------|-------------|---------|",
    ]
    for p in patterns:
        rows.append(
            f"| {_cell(p.get('id'))} ({_cell(subject(p))}) | {_cell(p.get('type'))} | "
            f"{_cell(p.get('severity'))} | {_cell(p.get('occurrences'))} | {_cell(figures(p))} |"
        )
    return "\n".join(rows)


def change_summary(
    files: Sequence[FileDiff], proposal: Mapping[str, Any] | None
) -> str:
    sections: list[str] = []
    changes = proposal.get("changes", []) if proposal else []
    rationale = {
        str(c.get("path", "")).removeprefix("./"): c for c in changes if isinstance(c, Mapping)
    }
    for fd in files:
        change = rationale.get(fd.path, {})
        kind = f"{change['change_type']}, " if change.get("change_type") else ""
        state = "new file, " if fd.is_new else "deleted, " if fd.is_deleted else ""
        head = f"### `{fd.path}` ({state}{kind}+{fd.added} −{fd.removed})"
        body = str(change.get("rationale", "")).strip()
        sections.append(head + ("\n\n" + body if body else ""))
    if proposal and isinstance(proposal.get("rollback_instructions"), str):
        sections.append(f"**Rollback:** {proposal['rollback_instructions'].strip()}")
    return "\n\n".join(sections)


def evidence_section(patterns: Sequence[Mapping[str, Any]], samples_per_pattern: int = 3) -> str:
    parts: list[str] = []
    queries = [
        f"- {p.get('id')}:\n\n" + _indent(_fence(str(p["grafana_query"]), "logql"))
        for p in patterns if p.get("grafana_query")
    ]
    if queries:
        parts.append("### Grafana Queries\n\n" + "\n\n".join(queries))
    samples: list[str] = []
    for p in patterns:
        events = p.get("sample_events")
        if isinstance(events, list):
            samples += [
                json.dumps(e, ensure_ascii=False, sort_keys=True)
                for e in events[:samples_per_pattern]
            ]
    if samples:
        parts.append("### Sample Log Entries\n\n" + _fence("\n".join(samples), "json"))
    return "\n\n".join(parts) or "No queries or sample events were recorded."


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def expected_impact(proposal: Mapping[str, Any] | None) -> str:
    impact = proposal.get("expected_impact") if proposal else None
    if not isinstance(impact, Mapping):
        return "Not stated."
    parts: list[str] = []
    metrics = [m for m in impact.get("metrics", []) if isinstance(m, Mapping)]
    if metrics:
        rows = [
            "| Metric | Before | After (expected) | Improvement |",
            "|--------|--------|------------------|-------------|",
        ]
        for m in metrics:
            cells = (
                m.get("metric", ""), _number(m.get("before", "")), m.get("after_estimate", ""),
                m.get("improvement_percent", "—"),
            )
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        parts.append("\n".join(rows))
    if impact.get("confidence"):
        parts.append(f"Confidence: {_cell(impact['confidence'])}")
    if isinstance(impact.get("notes"), str) and impact["notes"].strip():
        parts.append(impact["notes"].strip())
    return "\n\n".join(parts) or "Not stated."


def template_values(
    *,
    date: str,
    patterns: Sequence[Mapping[str, Any]],
    files: Sequence[FileDiff],
    proposal: Mapping[str, Any] | None,
    footer: str,
    title: str | None = None,
) -> dict[str, str]:
    """Every field the file-pr formula's templates use."""
    brief = title or brief_description(patterns)
    return {
        "date": date,
        "pattern_type": branch_pattern_type(patterns),
        "title": brief,
        "brief_description": brief,
        "pattern_summary": pattern_summary(patterns),
        "grafana_links": grafana_links(patterns),
        "footer": footer,
        "pattern_count": str(len(patterns)),
        "pattern_table": pattern_table(patterns),
        "change_summary": change_summary(files, proposal),
        "evidence_section": evidence_section(patterns),
        "expected_impact": expected_impact(proposal),
    }
