"""A ProposedChanges or PRResult output → a short human summary on a rich console.

Used by `mgt exec` (at the end of a run) and `mgt show` through
`mgt.extensions.OUTPUT_SUMMARIES`. Model- and log-derived strings are printed
as plain text, never as rich markup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["render_changes", "render_pr"]

_DIFF_LINES = 40  # per file; the full diff is in the run directory


def render_changes(output: dict[str, Any], console: Console) -> None:
    """Files changed with their line counts and rationale, then each diff (bounded)."""
    from rich.syntax import Syntax
    from rich.text import Text

    changes = output.get("changes") or []
    cited = ", ".join(str(p) for p in output.get("patterns_addressed") or []) or "none"
    console.print(Text(f"{len(changes)} file(s) changed, addressing {cited}"))
    for change in changes:
        if not isinstance(change, dict):
            continue
        added, removed = change.get("lines_added"), change.get("lines_removed")
        counts = f" (+{added} -{removed})" if added is not None and removed is not None else ""
        console.print(Text(f"  {change.get('path')}{counts}", style="bold"))
        rationale = " ".join(str(change.get("rationale", "")).split())
        if rationale:
            console.print(Text(f"    {rationale[:300]}"))
        diff_lines = str(change.get("diff", "")).splitlines()
        shown = "\n".join(diff_lines[:_DIFF_LINES])
        if shown:
            console.print(Syntax(shown, "diff", theme="ansi_dark", background_color="default"))
        if len(diff_lines) > _DIFF_LINES:
            console.print(Text(f"    … {len(diff_lines) - _DIFF_LINES} more diff lines"))
    impact = output.get("expected_impact") or {}
    for metric in impact.get("metrics") or []:
        if isinstance(metric, dict):
            console.print(Text(
                f"  expected: {metric.get('metric')} {metric.get('before')} → "
                f"{metric.get('after_estimate')} ({metric.get('improvement_percent', '?')})"
            ))


def render_pr(output: dict[str, Any], console: Console) -> None:
    """Branch, commit, PR link, and for a local forge where its record lives."""
    from rich.text import Text

    title = output.get("title")
    if title:
        console.print(Text(str(title), style="bold"))
    rows = [
        ("branch", output.get("branch_name")),
        ("base", output.get("base_branch")),
        ("commit", output.get("commit_sha")),
        ("status", output.get("status")),
        ("files", ", ".join(str(f) for f in output.get("files_changed") or [])),
        ("patterns", ", ".join(str(p) for p in output.get("patterns_addressed") or [])),
        ("PR", output.get("pr_url")),
    ]
    for label, value in rows:
        if value:
            console.print(Text(f"  {label:<9}{value}"))
    record = _local_record(output.get("pr_url"))
    if record is not None:
        console.print(Text(f"  record   {record}"))
        body = record.with_suffix(".md")
        if body.is_file():
            console.print(Text(f"  body     {body}"))


def _local_record(url: Any) -> Path | None:
    """The PR record file of the local forge (`file://…/.git/mgt/prs/N.json`), if readable."""
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    path = Path(unquote(urlparse(url).path))
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return path
