"""`mgt prs` arguments → the target's sleeptime PRs as a table (or `--json`): the loop's ledger.

    mgt prs [--repo R] [--forge local|github] [--github-repo owner/name] [--json]

Each row: number, kind (pr or revert), state (open, merged, closed), the
patterns it addresses, its impact verdict and the figures behind it (the
primary figure before → after the merge; for a PR without a verdict, the
figure when it was filed). It only reads: verdicts and reverts are made by
the `read-ledger` step of a cycle.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mgt.errors import UsageError

__all__ = ["figures_text", "main"]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def figures_text(pr: Mapping[str, Any], patterns: Sequence[Mapping[str, Any]]) -> str:
    """`slow_share 0.5 → 0.05` per pattern from the verdict; else the figures at filing."""
    from mgt.evolve.impact import PRIMARY

    verdict = pr.get("verdict")
    parts: list[str] = []
    if pr.get("kind") == "revert":
        return ""  # its figures are in its body: the reverted PR's verdict
    if isinstance(verdict, Mapping) and verdict.get("patterns"):
        for p in verdict["patterns"]:
            metric = p.get("metric")
            if metric:
                parts.append(f"{metric} {_fmt(p.get('before', {}).get(metric))} → "
                             f"{_fmt(p.get('after', {}).get(metric))}")
        return "; ".join(parts)
    for p in patterns:
        metric = PRIMARY.get(str(p.get("type")), ("", ""))[0]
        value = p.get("figures", {}).get(metric)
        if metric and value is not None:
            parts.append(f"{metric} {_fmt(value)} at filing")
    return "; ".join(parts)


def _github_repo(args: argparse.Namespace, repo: Path) -> str:
    from mgt.errors import EvolveError
    from mgt.evolve.pr import github_repo_name
    from mgt.evolve.target import load_target_config

    target = load_target_config(repo)
    try:
        return github_repo_name(repo, target, target.remote or "origin", args.github_repo)
    except EvolveError as e:
        raise UsageError(f"{e}; or pass --github-repo owner/name") from None


def main(args: argparse.Namespace) -> int:
    from mgt.evolve.git import repo_root
    from mgt.evolve.ledger import read_ledger

    repo = repo_root(Path(args.repo).expanduser().absolute())
    github_repo = _github_repo(args, repo) if args.forge == "github" else None
    prs = read_ledger(repo, args.forge, github_repo=github_repo)
    rows = []
    for pr in prs:
        row = pr.to_json()
        row["figures"] = figures_text(row, pr.patterns)
        rows.append(row)
    if args.json:
        sys.stdout.write(json.dumps({"repo": str(repo), "forge": args.forge, "prs": rows},
                                    indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return 0
    from rich.markup import escape
    from rich.table import Table

    from mgt.analyze.cli import _console

    console = _console()
    if not rows:
        console.print(f"no sleeptime PRs on the {args.forge} forge of {escape(str(repo))}")
        return 0
    table = Table(title=f"sleeptime PRs — {repo} ({args.forge})", title_justify="left")
    for name in ("#", "kind", "state", "patterns", "verdict", "figures", "title"):
        table.add_column(name, overflow="fold")
    for row in rows:
        verdict = row["verdict"]["verdict"] if row["verdict"] else (
            "awaiting" if row["state"] == "merged" and row["kind"] == "pr" else "-")
        if row["revert_pr"]:
            verdict += f" (revert #{row['revert_pr']})"
        kind = row["kind"] if row["kind"] != "revert" else f"revert of #{row['reverts']}"
        table.add_row(str(row["number"]), kind, row["state"],
                      escape(", ".join(row["patterns"])), escape(verdict),
                      escape(row["figures"]), escape(row["title"]))
    console.print(table)
    return 0
