"""Impact verdicts of merged PRs: generated logs whose figures change at the real merge time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mgt.analyze.thresholds import DEFAULTS
from mgt.evolve.impact import ImpactSettings, judge, window_figures
from mgt.evolve.ledger import read_local
from mgt.evolve.ledger_step import read_ledger_step
from tests.evolve.conftest import MakeCtx, run_git
from tests.evolve.ledger_support import T, file_pr, ledger_ctx, logs, merge, report_of
from tests.evolve.loggen import Phase


def merged_pr(make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], source: Path,
              ids: list[str] | None = None) -> dict[str, Any]:
    """A PR filed from the logs before T and merged at T, as a reviewer would."""
    before_only = source.parent / "before.jsonl"
    split_ns = T.timestamp()
    lines = [line for line in source.read_text().splitlines()
             if datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
             .timestamp() < split_ns]
    before_only.write_text("\n".join(lines) + "\n")
    pr = file_pr(make_ctx, proposal, report_of(before_only), ids=ids)
    merge(repo, pr["branch_name"], T)
    return pr


def verdict_of(make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
               before: Phase, after: Phase, **kw: Any) -> dict[str, Any]:
    source = logs(tmp_path, before, after, **kw)
    merged_pr(make_ctx, repo, proposal, source)
    (pr,) = read_local(repo)
    b, a = window_figures(str(source), pr.merged_at or T, timedelta(hours=24), DEFAULTS)
    return judge(pr, b, a, DEFAULTS)


@pytest.mark.parametrize(("before", "after", "verdict"), [
    (0.5, 0.05, "improved"),
    (0.5, 0.48, "unchanged"),  # -4%: noise
    (0.3, 0.6, "regressed"),
])
def test_verdicts_compare_the_windows_around_the_merge(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
    before: float, after: float, verdict: str,
) -> None:
    meta = verdict_of(make_ctx, repo, proposal, tmp_path, Phase(slow_share=before),
                      Phase(slow_share=after))
    assert meta["verdict"] == verdict, meta["reason"]
    (p,) = meta["patterns"]
    assert p["metric"] == "slow_share"
    assert p["before"]["slow_share"] == pytest.approx(before, abs=0.01)
    assert p["after"]["slow_share"] == pytest.approx(after, abs=0.01)
    assert p["before"]["calls"] == p["after"]["calls"] == 288  # 24h of 5-minute steps each
    assert meta["merged_at"] == T.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert meta["window_seconds"] == 86400


def test_too_few_events_after_the_merge_is_pending(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    meta = verdict_of(make_ctx, repo, proposal, tmp_path, Phase(slow_share=0.5),
                      Phase(slow_share=0.0), hours_after=0.1)  # two calls after the merge
    assert meta["verdict"] == "pending"
    assert "2 calls after the merge; a verdict needs at least 3" in meta["reason"]


def test_an_after_window_still_open_is_pending(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.0))
    merged_pr(make_ctx, repo, proposal, source)
    (pr,) = read_local(repo)
    b, a = window_figures(str(source), T, timedelta(hours=24), DEFAULTS)
    meta = judge(pr, b, a, DEFAULTS, now=T + timedelta(hours=5))
    assert meta["verdict"] == "pending" and "after-window ends at" in meta["reason"]


def test_new_critical_pattern_on_a_touched_node_is_a_regression(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    meta = verdict_of(make_ctx, repo, proposal, tmp_path, Phase(slow_share=0.5),
                      Phase(slow_share=0.05, failing_node="dmScene"))
    assert meta["patterns"][0]["verdict"] == "improved"
    assert meta["verdict"] == "regressed"
    (new,) = meta["new_critical"]
    assert new["type"] == "failed_transition" and new["key"]["from"] == "dmScene"
    assert "new critical pattern" in meta["reason"]


def test_noise_floor_is_configurable(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.4))
    merged_pr(make_ctx, repo, proposal, source)
    (pr,) = read_local(repo)
    b, a = window_figures(str(source), T, timedelta(hours=24), DEFAULTS)
    assert judge(pr, b, a, DEFAULTS)["verdict"] == "improved"  # -20%, 0.1 absolute
    wide = ImpactSettings(relative_noise=0.5)
    assert judge(pr, b, a, DEFAULTS, wide)["verdict"] == "unchanged"


def test_read_ledger_records_a_verdict_once(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.05))
    merged_pr(make_ctx, repo, proposal, source)
    report = report_of(source)
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert [(v["pr"], v["verdict"], v["recorded"]) for v in out["verdicts"]] == \
        [(1, "improved", True)]
    record = json.loads((repo / ".git/mgt/prs/1.json").read_text())
    assert record["mgt_verdict"]["verdict"] == "improved"
    assert record["state"] == "open"  # the record is only added to; the state comes from git
    # An improved change no longer covers its pattern: it may show up again and be addressed.
    assert out["covered"] == []
    again = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert again["verdicts"] == []  # read back, not computed twice
    (pr,) = read_local(repo)
    assert pr.verdict is not None and pr.verdict["verdict"] == "improved"


def test_pending_verdict_is_not_recorded_and_keeps_covering(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5), hours_after=0.1)
    merged_pr(make_ctx, repo, proposal, source)
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report_of(source), source))
    assert [(v["verdict"], v["recorded"]) for v in out["verdicts"]] == [("pending", False)]
    assert "mgt_verdict" not in json.loads((repo / ".git/mgt/prs/1.json").read_text())
    assert [c["pr"] for c in out["covered"]] == [1] and out["actionable"] == 0
    run_git(repo, "log", "-1")  # the repository is intact


def test_unreadable_logs_are_a_note_not_a_failure(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.05))
    merged_pr(make_ctx, repo, proposal, source)
    report = report_of(source)
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, tmp_path / "missing.jsonl"))
    assert out["verdicts"] == [] and "no verdict for PR #1" in out["notes"][0]
    assert datetime.now(UTC) > T


def test_a_pr_whose_block_names_no_pattern_is_unchanged_not_pending_forever(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    from mgt.evolve.metadata import render_block

    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.05))
    merged_pr(make_ctx, repo, proposal, source)
    path = repo / ".git/mgt/prs/1.json"
    record = json.loads(path.read_text())
    record["body"] = "edited by hand\n" + render_block({"kind": "pr", "patterns": []})
    path.write_text(json.dumps(record))
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report_of(source), source))
    assert [(v["verdict"], v["recorded"]) for v in out["verdicts"]] == [("unchanged", True)]
