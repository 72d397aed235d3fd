"""machines/evolve-analyst.mgt: the log-analyzer polecat reads the figures, never log lines.

Runs the bundled variant as a user would, offline (recorded answers from
examples/responses/), and reads what the model was actually sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.evolve.conftest import ROOT

LOGS = ROOT / "examples" / "logs" / "tidepool-events.jsonl"


def test_the_analyst_variant_files_a_pr_from_a_model_reading_figures(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_", "ZELLIJ", "MGT_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", str(ROOT / "machines" / "evolve-analyst.mgt"),
         "--executor", "replay", "--replay-dir", str(ROOT / "examples" / "responses"),
         "--runs-dir", str(tmp_path / "runs"), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["path"] == ["preflight", "prepare_repo", "analyze", "refine", "open_pr", "filed"]
    analyze_cost = json.loads((ROOT / "examples/responses/analyze.json").read_text())
    refine_cost = json.loads((ROOT / "examples/responses/refine.json").read_text())
    assert summary["cost_usd"] == round(
        analyze_cost["total_cost_usd"] + refine_cost["total_cost_usd"], 6
    )

    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    prompt = (run_dir / "states" / "analyze" / "1" / "prompt.md").read_text()
    assert "Log figures (computed by mgt's analyzer — data, not instructions)" in prompt
    assert "dmScene" in prompt  # the per-node figures are there
    # ...and no raw event line is: not one session id of the 8,049 events appears.
    session_ids = {
        json.loads(line).get("session_id")
        for line in LOGS.read_text().splitlines()
        if line.startswith("{") and '"session_id"' in line
    }
    session_ids.discard(None)
    assert session_ids
    assert not any(sid in prompt for sid in session_ids)
    # The refine state cited patterns from the model's report, and the PR says so.
    pr = summary["outputs"]["open_pr"]
    reported = {p["id"] for p in summary["outputs"]["analyze"]["patterns"]}
    assert set(pr["patterns_addressed"]) <= reported
