"""`run builtin analyze-logs`: a state's bindings → the analyzer run → a PatternReport output.

Inputs (from the state's `with`, else the run's inputs): `since` (a duration
such as "24h", default "24h"), `source` (a log file or Loki URL; default
`$GRAFANA_LOKI_URL`), `min_occurrences` (overrides the polecat's threshold),
`query_type` (all | transitions | llm-calls | errors | sessions: which rules
run), `nodes` (a nodes file, or a list of node names, for dead paths) and
`polecat` (a polecat TOML whose [thresholds] to use; default: the state's
polecat if it has thresholds, else the bundled log-analyzer). Relative paths are
taken from the run's working directory. The report is written to the attempt
directory as `PatternReport.json` and returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgt.analyze.analyzer import Analysis, analyze_source, load_nodes
from mgt.analyze.rules import QUERY_TYPES, RULES, rules_for_query_type
from mgt.analyze.thresholds import Thresholds, from_polecat_thresholds, load_thresholds
from mgt.errors import MgtError
from mgt.runtime.context import StepContext, StepFailure

__all__ = [
    "AnalyzeInputs",
    "analyze_logs",
    "binding",
    "inputs_from_context",
    "run_from_context",
]

REPORT_FILE = "PatternReport.json"


@dataclass(frozen=True)
class AnalyzeInputs:
    source: str | None
    since: str | None
    thresholds: Thresholds
    nodes: Sequence[str] | None
    rules: tuple[str, ...]


def binding(ctx: StepContext, name: str) -> Any:
    """A state's `with` value, else the run's input of that name, else None."""
    if name in ctx.bindings and ctx.bindings[name] is not None:
        return ctx.bindings[name]
    return ctx.machine_inputs.get(name)


def _path(ctx: StepContext, value: str) -> str:
    if value.startswith(("http://", "https://")) or value == "-":
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else ctx.cwd / path)


def inputs_from_context(ctx: StepContext) -> AnalyzeInputs:
    """Read and check the analyzer's inputs; a bad one is a StepFailure naming it."""
    source = binding(ctx, "source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise StepFailure(f"analyze-logs: `source` must be a file path or URL, not {source!r}")
    since = binding(ctx, "since")
    if since is None:
        since = "24h"
    elif isinstance(since, int | float) and not isinstance(since, bool) and since > 0:
        since = f"{since:g}s"  # seconds
    elif isinstance(getattr(since, "text", None), str):
        since = since.text  # an mgt.expr Duration
    elif not isinstance(since, str) or not since.strip():
        raise StepFailure(f"analyze-logs: `since` must be a duration such as '24h', not {since!r}")

    query_type = binding(ctx, "query_type") or "all"
    try:
        rules = rules_for_query_type(str(query_type))
    except ValueError:
        known = " | ".join(QUERY_TYPES)
        raise StepFailure(
            f"analyze-logs: `query_type` must be one of {known}, not {query_type!r}"
        ) from None

    try:
        polecat = binding(ctx, "polecat")
        if polecat is not None:
            thresholds = load_thresholds(_path(ctx, str(polecat)))
        elif ctx.polecat is not None and ctx.polecat.thresholds is not None:
            thresholds = from_polecat_thresholds(ctx.polecat.thresholds, ctx.polecat.path)
        else:
            thresholds = load_thresholds(cwd=ctx.cwd)
        nodes_value = binding(ctx, "nodes")
        nodes: Sequence[str] | None = None
        if isinstance(nodes_value, list | tuple):
            nodes = [str(n) for n in nodes_value if str(n).strip()]
        elif isinstance(nodes_value, str) and nodes_value.strip():
            nodes = load_nodes(_path(ctx, nodes_value))
    except MgtError as err:
        raise StepFailure(f"analyze-logs: {err}") from None

    minimum = binding(ctx, "min_occurrences")
    if minimum is not None:
        if isinstance(minimum, str) and minimum.strip().isdigit():
            minimum = int(minimum)
        try:
            thresholds = thresholds.with_min_occurrences(minimum)
        except ValueError:
            raise StepFailure(
                f"analyze-logs: `min_occurrences` must be a whole number ≥ 1, not {minimum!r}"
            ) from None

    spec = _path(ctx, source) if isinstance(source, str) else None
    return AnalyzeInputs(spec, since.strip(), thresholds, nodes, rules)


def run_from_context(ctx: StepContext) -> tuple[Analysis, AnalyzeInputs]:
    """Run the analyzer on the context's inputs; source problems become a StepFailure."""
    inputs = inputs_from_context(ctx)
    ctx.progress(f"analyzing {inputs.source or '$GRAFANA_LOKI_URL'} (since {inputs.since})")
    try:
        analysis = analyze_source(
            inputs.source,
            since=inputs.since,
            thresholds=inputs.thresholds,
            nodes=inputs.nodes,
            rules=inputs.rules,
        )
    except MgtError as err:
        raise StepFailure(f"analyze-logs: {err}") from None
    return analysis, inputs


def analyze_logs(ctx: StepContext) -> dict[str, Any]:
    """The built-in `analyze-logs` step: a PatternReport of the bound source."""
    analysis, inputs = run_from_context(ctx)
    report = analysis.report
    if inputs.rules != RULES:
        report["summary"]["query_type"] = str(binding(ctx, "query_type"))
    try:
        ctx.attempt_dir.mkdir(parents=True, exist_ok=True)
        (ctx.attempt_dir / REPORT_FILE).write_text(  # a lone surrogate from a log: \\uXXXX
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8",
            errors="backslashreplace",
        )
    except OSError as err:
        raise StepFailure(f"analyze-logs: cannot write the report: {err.strerror or err}") from None
    s = report["summary"]
    ctx.progress(
        f"{s['events_analyzed']} events: {s['total_patterns']} patterns "
        f"({s['critical']} critical, {s['warning']} warning, {s['info']} info)"
    )
    return report
