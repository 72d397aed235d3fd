"""Event generators shared by the logs tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from mgt.logs.events import format_timestamp

T0 = 1736937000 * 10**9  # 2025-01-15T10:30:00Z
KINDS = ["llm_call", "graph_transition", "error", "user_action", "effect_execution"]


def make_events(n: int, *, seed: int = 0, start: int = T0, step_s: float = 1.0,
                message_size: int = 0) -> list[dict[str, Any]]:
    """`n` events of every type, one per `step_s` seconds, with an `i` field (their index)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        event: dict[str, Any] = {
            "timestamp": format_timestamp(start + int(i * step_s * 10**9)),
            "type": kind, "i": i, "session_id": f"s{i % 7}",
        }
        if kind == "llm_call":
            event.update(model="haiku", node=rng.choice(["classify", "dmscene"]),
                         prompt_tokens=rng.randint(10, 5000),
                         completion_tokens=rng.randint(1, 400),
                         latency_ms=rng.randint(50, 6000))
        elif kind == "graph_transition":
            event.update({"from": "start", "to": rng.choice(["next", "error"]), "trigger": "t"})
        elif kind == "error":
            event.update(message="boom " + "x" * message_size, context={"node": "n"})
        elif kind == "user_action":
            event.update(action_type="click", node_context="n")
        else:
            event.update(effect_type="fetch", success=bool(i % 2), latency_ms=5)
        events.append(event)
    return events


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def as_array(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"timestamp": e["timestamp"], "event": e} for e in events]
