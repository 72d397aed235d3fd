"""A PatternReport → the human-readable `mgt analyze` report (a rich table and a summary).

Every log-derived string (node names, templates) is rendered as plain text,
never as rich markup, so a log line cannot style or forge the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mgt.analyze.text import truncate

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["key_figures", "render_report"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def key_figures(pattern: dict[str, Any]) -> str:
    """One line of the figures that matter for a pattern's type."""
    d = pattern.get("details", {})
    kind = pattern.get("type")
    if kind == "slow_llm":
        return (
            f"mean {d.get('mean_latency_ms')} ms · p95 {d.get('p95_latency_ms')} ms · "
            f"max {d.get('max_latency_ms')} ms · {d.get('slow_calls')}/{d.get('calls')} calls slow"
        )
    if kind == "failed_transition":
        rate = d.get("rate")
        shown = f"{rate:.1%}" if isinstance(rate, int | float) else "?"
        return (
            f"{_one_line(d.get('from'))} → {_one_line(d.get('to'))}: {shown} "
            f"({d.get('count')} of {d.get('transitions_from')})"
        )
    if kind == "repeated_error":
        return truncate(_one_line(d.get("template")), 90)
    if kind == "token_bloat":
        return (
            f"mean {d.get('prompt_tokens_avg')} prompt / {d.get('completion_tokens_avg')} "
            f"completion tokens · {d.get('bloated_calls')}/{d.get('calls')} calls"
        )
    if kind == "dead_path":
        return f"{_one_line(d.get('node'))}: never entered"
    return ""


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def render_report(report: dict[str, Any], console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    summary = report.get("summary", {})
    meta = report.get("metadata", {})
    head = Text()
    head.append(f"Analyzed {summary.get('events_analyzed', 0)} events")
    if meta.get("source"):
        head.append(f" from {meta['source']}")
    if summary.get("query_range"):
        head.append(f"\n  range {summary['query_range']}")
    skipped, ignored = summary.get("skipped", 0), summary.get("ignored", 0)
    if skipped or ignored:
        head.append(f"\n  {skipped} malformed lines skipped, ")
        head.append(f"{ignored} events with missing or invalid fields")
    console.print(head)

    patterns = report.get("patterns", [])
    if patterns:
        table = Table(show_lines=False, pad_edge=False, expand=False)
        table.add_column("severity", no_wrap=True, min_width=8)
        table.add_column("pattern", overflow="fold")
        table.add_column("occurrences", justify="right", no_wrap=True, min_width=5)
        table.add_column("figures", overflow="fold")
        for p in patterns:
            severity = p["severity"]
            table.add_row(
                Text(severity.upper(), style=_STYLE.get(severity, "")),
                Text(p["id"]),
                Text(str(p["occurrences"])),
                Text(key_figures(p)),
            )
        console.print(table)
    else:
        console.print("No patterns found.")

    line = (
        f"{summary.get('total_patterns', 0)} patterns: {summary.get('critical', 0)} critical, "
        f"{summary.get('warning', 0)} warning, {summary.get('info', 0)} info"
    )
    console.print(Text(line, style="bold"))
    for note_text in summary.get("notes") or []:
        console.print(Text(f"note: {note_text}", style="yellow"))
    for table_name, note in (summary.get("overflow") or {}).items():
        console.print(Text(f"note: {note['events']} {note['note']} ({table_name})", style="dim"))
    thresholds = meta.get("thresholds")
    if thresholds:
        figures = ", ".join(f"{k}={v}" for k, v in thresholds.items())
        console.print(Text(f"thresholds ({meta.get('thresholds_source')}): {figures}", style="dim"))
