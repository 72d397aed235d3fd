"""Metadata blocks (render, parse, hostile edits) and the local ledger of a real repository."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.ledger import read_local
from mgt.evolve.ledger_step import read_ledger_step, rejected_context
from mgt.evolve.metadata import (
    fingerprint,
    parse_blocks,
    pattern_metadata,
    render_block,
    strip_blocks,
)
from tests.evolve.conftest import MakeCtx, run_git
from tests.evolve.ledger_support import T, file_pr, ledger_ctx, logs, merge, report_of
from tests.evolve.loggen import Phase

# ------------------------------------------------------------------------ metadata


def test_fingerprint_is_type_and_key_not_counts() -> None:
    a = {"id": "slow-llm-dmscene", "type": "slow_llm", "severity": "critical",
         "details": {"node": "dmScene", "group_by": "node", "calls": 10, "slow_calls": 9,
                     "first_seen": "2026-01-01T00:00:00Z"}}
    b = {"id": "slow-llm-dmscene-2", "type": "slow_llm", "severity": "warning",
         "details": {"node": "dmScene", "group_by": "node", "calls": 999, "slow_calls": 3}}
    c = {"id": "x", "type": "token_bloat", "details": {"node": "dmScene", "group_by": "node"}}
    d = {"id": "y", "type": "slow_llm", "details": {"node": "dmIntake", "group_by": "node"}}
    fa, fb, fc, fd = (pattern_metadata(p)["fingerprint"] for p in (a, b, c, d))
    assert fa == fb
    assert len({fa, fc, fd}) == 3
    assert pattern_metadata(a)["figures"] == {"calls": 10.0, "slow_calls": 9.0,
                                              "slow_share": 0.9}


def test_block_round_trips_and_cannot_end_the_comment_early() -> None:
    meta = {"schema": 1, "kind": "pr", "run_id": "r1",
            "patterns": [pattern_metadata({"id": "e", "type": "repeated_error",
                                           "details": {"template": "a --> b <!-- c"}})]}
    body = "text\n\n" + render_block(meta) + "\n"
    assert body.count("-->") == 1  # only the block's own end
    (parsed,) = parse_blocks(body)
    assert parsed["patterns"][0]["key"] == {"template": "a --> b <!-- c"}
    assert strip_blocks(body) == "text"


HOSTILE = [
    '<!-- mgt:sleeptime {"kind": "pr", "patterns": "all of them"} -->',
    '<!-- mgt:sleeptime {"kind": "pr", "patterns": [{"id": 5, "type": []}, 7, null]} -->',
    '<!-- mgt:sleeptime {"kind": "pr", "schema": 1e999, "reverts": 1' + "0" * 500 + "} -->",
    '<!-- mgt:sleeptime {"kind": "pr", "patterns": [{"id": "a", "type": "slow_llm", '
    '"fingerprint": "covers-everything", "figures": {"calls": NaN, "x": {"y": [1]}, '
    '"big": 1e308}, "key": {"node": ["dmScene"], "evil": "x"}}]} -->',
    '<!-- mgt:sleeptime {"kind": "pr", "patterns": [{"id": "a", "type": "slow_llm", '
    '"fingerprint": "0123456789abcdef", "figures": {"x": {"y": [1]}, "big": 1e308, "t": true}, '
    '"key": {"node": ["dmScene"], "model": "m", "evil": "x"}}]} -->',
    "<!-- mgt:sleeptime " + "[" * 100_000 + "]" * 100_000 + " -->",
    "<!-- mgt:sleeptime " + '{"a":' * 5000 + "1" + "}" * 5000 + " -->",
    '<!-- mgt:sleeptime {"kind": "verdict", "verdict": "excellent", "pr": 1} -->',
    '<!-- mgt:sleeptime {"kind": "pr", "expected_impact": {"metrics": [{"metric": {"a": 1}, '
    '"improvement_percent": [1, 2]}, "junk"], "notes": 5}} -->',
    "<!-- mgt:sleeptime not json at all -->",
    "<!-- mgt:sleeptime {\"kind\": \"pr\"",
    '<!-- mgt:sleeptime {"kind": "pr", "changes": [{"path": "a", "added": -5, "removed": 1e300},'
    ' {"path": null}]} -->',
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_blocks_never_crash_and_keep_only_documented_fields(body: str) -> None:
    for meta in parse_blocks(body):
        assert meta["kind"] in ("pr", "revert", "verdict")
        assert isinstance(meta["schema"], int)
        for p in meta["patterns"]:
            assert isinstance(p["id"], str) and isinstance(p["type"], str)
            assert all(isinstance(v, str) for v in p["key"].values())
            assert set(p["key"]) <= {"group_by", "node", "model", "from", "to", "template"}
            assert p["fingerprint"] == fingerprint(p["type"], p["key"])
            assert all(isinstance(v, float) and abs(v) <= 1e15 for v in p["figures"].values())
        for c in meta.get("changes", []):
            assert isinstance(c["path"], str) and c["added"] >= 0 and c["removed"] >= 0
        assert json.dumps(meta)  # plain JSON, no NaN
    assert parse_blocks(None) == [] and parse_blocks(12) == []


# ------------------------------------------------------------------------ the local ledger


def test_local_ledger_open_merged_closed(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5))
    report = report_of(source)
    first = file_pr(make_ctx, proposal, report)
    second = file_pr(make_ctx, proposal, report)
    third = file_pr(make_ctx, proposal, report)
    assert [p.state for p in read_local(repo)] == ["open", "open", "open"]

    merged_at = T.replace(microsecond=0)
    merge_sha = merge(repo, first["branch_name"], merged_at)
    run_git(repo, "branch", "-D", second["branch_name"])  # a person closes it unmerged
    prs = read_local(repo)
    assert [(p.number, p.state) for p in prs] == [(1, "merged"), (2, "closed"), (3, "open")]
    assert prs[0].merge_sha == merge_sha and prs[0].merged_at == merged_at
    assert prs[0].meta is not None and prs[0].meta["run_id"] == "test-run"
    (pattern,) = prs[0].patterns
    assert pattern["id"] == "slow-llm-dmscene" and pattern["figures"]["slow_share"] == 0.5
    assert prs[2].head == third["branch_name"]


def test_fast_forward_merge_is_merged_at_the_commit(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    report = report_of(logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5)))
    pr = file_pr(make_ctx, proposal, report)
    merge(repo, pr["branch_name"], T, ff=True)
    (entry,) = read_local(repo)
    assert entry.state == "merged" and entry.merge_sha == pr["commit_sha"]
    assert entry.merged_at == T  # when main moved (its reflog), not when the commit was made


def test_hostile_records_never_crash_the_ledger(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5))
    report = report_of(source)
    file_pr(make_ctx, proposal, report)
    prs_dir = repo / ".git" / "mgt" / "prs"
    record = json.loads((prs_dir / "1.json").read_text())
    # A person edits the body's block: wrong types, huge numbers, nested junk.
    record["body"] = "\n".join(HOSTILE) + render_block({"kind": "pr", "patterns": [
        {"id": "x", "type": "slow_llm", "key": {"node": "elsewhere"}}]})
    record["commit_sha"] = {"evil": True}
    record["files_changed"] = "not a list"
    (prs_dir / "1.json").write_text(json.dumps(record))
    (prs_dir / "2.json").write_text("[1, 2, 3]")
    (prs_dir / "3.json").write_text("{not json")
    (prs_dir / "4.json").write_text(json.dumps({"head": ["x"], "mgt_verdict": {"kind": 5},
                                                "mgt_revert_pr": "7"}))
    (prs_dir / "5.json").write_bytes(b"\xff\xfe")
    prs = read_local(repo)
    assert [p.number for p in prs] == [1, 4]
    assert all(p["key"].get("node") != "dmScene" for p in prs[0].patterns)
    assert prs[1].verdict is None and prs[1].revert_pr is None
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert out["actionable"] >= 1  # the edited block no longer covers slow-llm-dmscene


# ------------------------------------------------------------------------ read-ledger


def test_open_pr_covers_its_pattern_by_fingerprint(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5, failure_rate=0.3),
                  Phase(slow_share=0.5, failure_rate=0.3))
    report = report_of(source)
    ids = {p["id"] for p in report["patterns"]}
    assert {"slow-llm-dmscene", "failed-transition-parseaction-errorhandler"} <= ids
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert out["covered"] == [] and out["actionable"] == 2

    file_pr(make_ctx, proposal, report)
    # Another day: the same pattern, other counts, another id order — still covered.
    later = logs(tmp_path, Phase(slow_share=0.7, failure_rate=0.3),
                 Phase(slow_share=0.7, failure_rate=0.3))
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report_of(later), later))
    assert [(c["pattern"], c["pr"]) for c in out["covered"]] == [("slow-llm-dmscene", 1)]
    assert [p["id"] for p in out["report"]["patterns"]] == [
        "failed-transition-parseaction-errorhandler"]
    assert out["report"]["summary"]["total_patterns"] == 1
    assert out["actionable"] == 1

    file_pr(make_ctx, proposal, report, ids=["failed-transition-parseaction-errorhandler"])
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report_of(later), later))
    assert out["actionable"] == 0
    assert "#1 (slow-llm-dmscene)" in out["message"] and "#2" in out["message"]


def test_closed_pr_is_rejected_context(
    make_ctx: MakeCtx, repo: Path, proposal: dict[str, Any], tmp_path: Path,
) -> None:
    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5))
    report = report_of(source)
    pr = file_pr(make_ctx, proposal, report)
    run_git(repo, "branch", "-D", pr["branch_name"])
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report, source))
    assert out["covered"] == [] and out["actionable"] == 1  # closed: the pattern is open again
    (rejected,) = out["rejected"]
    assert rejected["title"] == pr["title"] and rejected["patterns"] == ["slow-llm-dmscene"]
    assert sorted(c["path"] for c in rejected["changes"]) == pr["files_changed"]
    ctx = make_ctx({}, outputs={"ledger": out})
    text = rejected_context(ctx)
    assert "## Changes reviewers rejected" in text and f"Rejected PR #{1}" in text
    assert "templates/dm_scene.jinja" in text and pr["title"] in text
    assert rejected_context(make_ctx({})) == ""


def test_window_binding_is_checked(make_ctx: MakeCtx, repo: Path, tmp_path: Path) -> None:
    from mgt.runtime.context import StepFailure

    source = logs(tmp_path, Phase(slow_share=0.5), Phase(slow_share=0.5), hours=1)
    with pytest.raises(StepFailure, match="window"):
        read_ledger_step(ledger_ctx(make_ctx, repo, report_of(source), source, window="soon"))
    out = read_ledger_step(ledger_ctx(make_ctx, repo, report_of(source), source,
                                      window=str(int(timedelta(hours=2).total_seconds())) + "s"))
    assert out["verdicts"] == []


def test_a_pr_fingerprint_is_the_analyzers_own() -> None:
    """The fingerprint a PR records from its report pattern is the one the analyzer (and so
    the one-pass window figures of impact verdicts) keys the same pattern by."""
    from mgt.analyze.analyzer import analyze_source
    from mgt.evolve.metadata import fingerprint, pattern_key

    sample = Path(__file__).parents[2] / "examples" / "logs" / "tidepool-events.jsonl"
    analysis = analyze_source(str(sample), since="all")
    patterns = analysis.report["patterns"]
    assert {p["type"] for p in patterns} >= {"slow_llm", "failed_transition", "repeated_error"}
    for p in patterns:
        assert fingerprint(p["type"], pattern_key(p["type"], p["details"])) == \
            analysis.fingerprints[p["id"]], p["id"]
