"""Name → implementation tables for built-in steps and per-schema output checks (lazy imports).

`run builtin NAME` looks NAME up in BUILTINS. After a state's output passes its
JSON Schema, every check in OUTPUT_CHECKS[schema] runs; a check returns a list
of problems (empty = accepted) and any problem makes the attempt a `guardrail`
outcome whose feedback lists them. Values are "module:function" strings so that
`mgt --help` imports none of them.

    builtin:        fn(ctx: StepContext) -> output (JSON-able); raises StepFailure/GuardrailFailure
    output check:   fn(ctx: StepContext, output) -> list[str]
    prompt context: fn(ctx: StepContext) -> str, a Markdown section added to a formula's prompt
                    (e.g. the analyzer's aggregated figures for the `analyze` formula, so the
                    model reads figures, not raw log lines)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "BUILTINS", "DRY_RUN_BUILTINS", "OUTPUT_CHECKS", "OUTPUT_SUMMARIES", "PROMPT_CONTEXT",
    "WORKSPACE_BUILTINS", "resolve",
]

BUILTINS: dict[str, str] = {
    "noop": "mgt.runtime.builtins:noop",
    # Filled in by the logs/analyze and evolve packages:
    "analyze-logs": "mgt.analyze.builtin:analyze_logs",
    "apply-diff": "mgt.evolve.builtins:apply_diff",
    "open-pr": "mgt.evolve.pr:open_pr",
    "preflight": "mgt.evolve.preflight:preflight",
    "prepare-repo": "mgt.evolve.builtins:prepare_repo",
    "read-ledger": "mgt.evolve.ledger_step:read_ledger_step",
    "scratch-repo": "mgt.evolve.builtins:scratch_repo",
}

#: Built-ins `mgt exec --dry-run` runs for real: they only check (read, ask a server whether it
#: answers) and write nothing. A failure ends the dry run with its one-line message.
DRY_RUN_BUILTINS: tuple[str, ...] = ("preflight",)

#: Built-ins that make a run's workspace, the files its later states work in (a scratch copy
#: of the target). On an engine that moves a run to another worker (Temporal, after a lost
#: worker), the finished states that ran one are made again there before anything else, and
#: their new outputs replace the old (the `workspace_restored` event).
WORKSPACE_BUILTINS: tuple[str, ...] = ("prepare-repo", "scratch-repo")

OUTPUT_CHECKS: dict[str, list[str]] = {
    "ProposedChanges": ["mgt.evolve.guardrails:check_proposed_changes"],
    "PRResult": ["mgt.evolve.pr:check_pr_result"],
}

PROMPT_CONTEXT: dict[str, list[str]] = {
    # keyed by formula name
    "analyze": ["mgt.analyze.prompt:analyzer_figures"],
    "refine": ["mgt.evolve.prompt:refine_context", "mgt.evolve.ledger_step:rejected_context"],
}


#: Human summaries of an output, keyed by schema name: fn(output, console) -> None.
#: `mgt exec` prints them when a run ends and `mgt show` in place of raw JSON.
OUTPUT_SUMMARIES: dict[str, str] = {
    "PatternReport": "mgt.analyze.render:render_report",
    "ProposedChanges": "mgt.evolve.summary:render_changes",
    "PRResult": "mgt.evolve.summary:render_pr",
    "LedgerReport": "mgt.evolve.ledger_step:render_ledger",
}


def resolve(ref: str) -> Callable[..., Any]:
    """Import "module:function" and return the function."""
    module_name, _, attr = ref.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return fn
