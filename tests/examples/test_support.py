"""examples/support: the support-desk machine checks clean and runs its recorded answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.runtime.procs import mgt

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support"
MACHINE = EXAMPLE / "support.mgt"
TICKET = "ticket=Where is my order A-1001? It has been a week."

EMAIL = (
    "To: customer@example.com\nSubject: Your order A-1001\n\n"
    "Hi! Your order A-1001 has shipped with DHL. You can follow it with the tracking link in "
    "your shipping email; if it has not arrived in a few days, reply here and we will look "
    "into it.\n"
)


def exec_json(tmp_path: Path, replay: Path, *inputs: str) -> tuple[dict[str, Any], Path]:
    args = [arg for value in inputs for arg in ("--input", value)]
    proc = mgt("exec", MACHINE, "--executor", "replay", "--replay-dir", replay,
               "--runs-dir", tmp_path / "runs", "--json", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    return summary, tmp_path / "runs" / summary["run_id"]


def test_the_machine_checks_clean_and_draws_no_fail_path() -> None:
    proc = mgt("check", MACHINE, cwd=EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"ok: {MACHINE} (6 states)"
    assert proc.stderr == ""
    graph = mgt("graph", MACHINE, cwd=EXAMPLE)
    assert graph.returncode == 0, graph.stderr
    assert "review --done [any(output.issues, it.severity == \"blocker\") and " \
        "draft.attempts < 3]--> draft" in graph.stdout
    assert "implicit" not in graph.stdout  # every outcome is handled


def test_the_recorded_answers_retry_loop_back_once_and_draft_the_email(tmp_path: Path) -> None:
    summary, run_dir = exec_json(tmp_path, EXAMPLE / "responses", TICKET)
    assert summary["status"] == "succeeded" and summary["final"] == "drafted"
    assert summary["path"] == ["receive", "classify", "lookup_order", "draft", "review",
                               "draft", "review", "deliver", "drafted"]
    outputs = summary["outputs"]
    assert outputs["lookup_order"]["status"] == "shipped"
    assert outputs["review"]["approved"] is True
    assert outputs["deliver"]["stdout"] == EMAIL
    assert summary["tokens"] == {"input": 5549, "output": 328}
    assert round(summary["cost_usd"], 6) == 0.007189  # the six recorded results
    feedback = (run_dir / "states" / "classify" / "2" / "feedback.md").read_text()
    assert "at $.category: 'delivery' is not one of" in feedback
    request = json.loads((run_dir / "states" / "lookup_order" / "1" / "request.json").read_text())
    assert request["inputs"] == {"orders": str(EXAMPLE / "orders"), "order_id": "A-1001"}


def test_send_true_ends_at_sent(tmp_path: Path) -> None:
    summary, _ = exec_json(tmp_path, EXAMPLE / "responses", TICKET, "send=yes")
    assert summary["final"] == "sent"


def test_a_lost_order_is_handed_to_a_person(tmp_path: Path) -> None:
    summary, _ = exec_json(tmp_path, EXAMPLE / "responses" / "escalate",
                           "ticket=My order A-1002 never arrived")
    assert summary["final"] == "escalated"
    assert summary["path"] == ["receive", "classify", "lookup_order", "escalated"]
    assert summary["outputs"]["lookup_order"] == {"order_id": "A-1002", "status": "lost",
                                                  "carrier": "DHL"}


def test_dry_run_shows_the_order_lookup_environment(tmp_path: Path) -> None:
    proc = mgt("exec", MACHINE, "--dry-run", "--input", TICKET, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f'"orders": "{EXAMPLE / "orders"}"' in proc.stdout
    assert '"order_id": "<classify.output.order_id: computed at run time>"' in proc.stdout
    assert not (tmp_path / ".mgt").exists()
