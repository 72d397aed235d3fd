"""`mgt check FILE... [--json]` → rendered diagnostics (or a JSON list) and an exit code.

Exit 0 when every file is free of errors (warnings are printed), 1 when any file
has errors, 2 when a file cannot be read at all (one line on stderr each).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mgt.check.checker import check_file
from mgt.check.result import CheckResult
from mgt.diagnostics import Diagnostic, render, source_lines
from mgt.errors import UsageError

__all__ = ["diagnostic_json", "main"]


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    span = d.span
    return {
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "end_line": span.end_line if span else None,
        "end_column": span.end_column if span else None,
        "severity": d.severity,
        "message": d.message,
        "hint": d.hint,
    }


def main(args: argparse.Namespace) -> int:
    files: list[str] = list(args.files)
    as_json: bool = bool(getattr(args, "json", False))
    results: list[CheckResult] = []
    unreadable = False
    for name in files:
        try:
            results.append(check_file(name))
        except UsageError as err:
            print(f"mgt: {err}", file=sys.stderr)
            unreadable = True
    if as_json:
        found = [diagnostic_json(d) for r in results for d in r.sorted_diagnostics()]
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        for result in results:
            _print_result(result)
    if unreadable:
        return 2
    return 0 if all(r.ok for r in results) else 1


def _print_result(result: CheckResult) -> None:
    lines = {file: source_lines(text) for file, text in result.sources().items()}  # once each
    for d in result.sorted_diagnostics():
        print(render(d, lines.get(d.span.file) if d.span is not None else None))
    errors, warnings = len(result.errors), len(result.warnings)
    warned = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
    if errors:
        print(f"{result.path}: {errors} error{'s' * (errors != 1)}{warned}")
    else:
        states = len(result.machine.states) if result.machine is not None else 0
        print(f"ok: {result.path} ({states} state{'s' * (states != 1)}{warned})")
