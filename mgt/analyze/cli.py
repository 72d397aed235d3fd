"""`mgt analyze` arguments → a PatternReport printed as a table (default) or JSON (`--json`)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


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
    from mgt.console import out_console

    render_report(analysis.report, out_console())
    return 0
