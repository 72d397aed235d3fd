"""Recorded Temporal histories replayed against today's workflow code: a change that makes
`MachineWorkflow` decide differently (non-determinism) fails here, before it breaks runs
in flight. The machines are tests/engines/machines/*.mgt (pinned by hash in the histories).
Record them again, after a deliberate change, with MGT_RECORD_HISTORIES=1 (or a
comma-separated list of names: record those only)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.procs import mgt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HISTORIES = HERE / "histories"
MACHINES = ["retry", "guards", "slowpoke", "fanout"]
#: Paths of the machine that recorded a history, as they are written in the fixtures.
ROOT_MARK, WORK_MARK = "@ROOT@", "@WORK@"


def _rewrite(node: Any, old: str, new: str) -> Any:
    """The history JSON with `old` replaced by `new` inside every JSON payload."""
    if isinstance(node, list):
        return [_rewrite(item, old, new) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _rewrite(value, old, new) for key, value in node.items()}
    encoding = (node.get("metadata") or {}).get("encoding")
    if isinstance(node.get("data"), str) and encoding is not None \
            and base64.b64decode(encoding) == b"json/plain":
        text = base64.b64decode(node["data"]).decode("utf-8")
        # paths sit inside JSON strings: replace them as JSON-escaped text
        old_json, new_json = json.dumps(old)[1:-1], json.dumps(new)[1:-1]
        out["data"] = base64.b64encode(text.replace(old_json, new_json).encode()).decode()
    return out


if os.environ.get("MGT_RECORD_HISTORIES"):  # a maintenance tool, collected only when asked
    def test_record_histories(cluster: Any) -> None:
        from temporalio.client import Client

        cluster.worker("a")
        wanted = os.environ["MGT_RECORD_HISTORIES"]
        for name in MACHINES if wanted == "1" else wanted.split(","):
            proc = mgt("exec", HERE / "machines" / f"{name}.mgt", "--engine", "temporal",
                       "--temporal-address", cluster.address, "--runs-dir", cluster.work / "runs",
                       "--json", cwd=cluster.work,
                       env={"MGT_TEMPORAL_TASK_QUEUE": cluster.queue})
            assert proc.returncode in {0, 1}, proc.stderr
            run_id = json.loads(proc.stdout)["run_id"]

            async def fetch(run_id: str = run_id) -> str:
                client = await Client.connect(cluster.address)
                history = await client.get_workflow_handle(run_id).fetch_history()
                return history.to_json()

            raw = json.loads(asyncio.run(fetch()))
            raw = _rewrite(_rewrite(raw, str(ROOT), ROOT_MARK), str(cluster.work), WORK_MARK)
            (HISTORIES / f"{name}.json").write_text(json.dumps(raw, indent=1) + "\n")


@pytest.mark.parametrize("name", MACHINES)
def test_recorded_histories_replay_against_the_workflow_code(name: str, tmp_path: Path) -> None:
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from mgt.engines.temporal.workflow import MachineWorkflow

    raw = json.loads((HISTORIES / f"{name}.json").read_text())
    raw = _rewrite(_rewrite(raw, ROOT_MARK, str(ROOT)), WORK_MARK, str(tmp_path))
    history = WorkflowHistory.from_json(f"replay-{name}", raw)

    async def replay() -> None:
        await Replayer(workflows=[MachineWorkflow]).replay_workflow(history)

    asyncio.run(replay())
