"""`mgt analyze` arguments → a PatternReport printed as a table (default) or JSON (`--json`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

PIPED_WIDTH = 200


def main(args: argparse.Namespace) -> int:
    from mgt.analyze.analyzer import analyze_source, load_nodes
    from mgt.analyze.thresholds import load_thresholds

    thresholds = load_thresholds(args.polecat)
    nodes = load_nodes(args.nodes) if args.nodes else None
    analysis = analyze_source(args.source, since=args.since, thresholds=thresholds, nodes=nodes)
    if args.json:
        sys.stdout.write(json.dumps(analysis.report, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return 0
    from mgt.analyze.render import render_report

    render_report(analysis.report, _console())
    return 0


def _console() -> Console:
    """The terminal's console; piped output gets a wide one, so no row is folded."""
    from mgt.console import out_console

    console = out_console()
    if console.is_terminal:
        return console
    from rich.console import Console

    return Console(width=PIPED_WIDTH, highlight=False, soft_wrap=True)
