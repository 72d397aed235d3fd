"""Helpers for the ledger tests: generated logs → a report, a PR filed by open-pr, a real merge."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mgt.analyze.analyzer import analyze_source
from mgt.evolve.pr import open_pr
from mgt.runtime.context import StepContext
from tests.evolve.conftest import MakeCtx
from tests.evolve.loggen import Phase, write_events

__all__ = ["T", "file_pr", "ledger_ctx", "logs", "merge", "report_of"]

#: The change point of the generated logs: long enough ago that both windows have ended.
T = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def logs(tmp: Path, before: Phase, after: Phase, **kw: Any) -> Path:
    return write_events(tmp / "events.jsonl", split=T, before=before, after=after, **kw)


def report_of(path: Path) -> dict[str, Any]:
    """The PatternReport of the whole file (what a cycle before the merge would have seen)."""
    return analyze_source(str(path), since=None).report


def file_pr(make_ctx: MakeCtx, proposal: dict[str, Any], report: dict[str, Any],
            ids: list[str] | None = None, **bindings: Any) -> dict[str, Any]:
    """open-pr for `proposal` citing `ids` (default: slow-llm-dmscene) of `report`."""
    changes = dict(proposal, patterns_addressed=ids or ["slow-llm-dmscene"])
    ctx = make_ctx({"changes": changes, "evidence": report, "validate": False, **bindings},
                   state="open_pr", with_report=False)
    # Each PR its own commit: the same change filed twice in one second would be one commit.
    _filed.append(1)
    stamp = (T - timedelta(days=1, seconds=len(_filed))).strftime("%Y-%m-%dT%H:%M:%S+0000")
    saved = {k: os.environ.get(k) for k in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE")}
    os.environ.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    try:
        return open_pr(ctx)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_filed: list[int] = []


def merge(repo: Path, branch: str, when: datetime, ff: bool = False) -> str:
    """Merge `branch` into the checked-out main as a person would, at `when`; the merge commit."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    env = {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    args = ["merge", "--ff-only"] if ff else ["merge", "--no-ff", "-m", f"Merge {branch}"]
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Reviewer",
                    "-c", "user.email=reviewer@example.com", *args, branch],
                   check=True, capture_output=True, env=env)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def ledger_ctx(make_ctx: MakeCtx, repo: Path, report: dict[str, Any], source: Path,
               **bindings: Any) -> StepContext:
    return make_ctx({"report": report, "repo": str(repo), "source": str(source),
                     "forge": "local", **bindings}, state="ledger", with_report=False)
