"""A change point T + two behaviours → a JSONL event file whose figures change at T (for verdicts).

    write_events(path, split=T, before=Phase(slow_share=0.5), after=Phase(slow_share=0.05))

Every `step` from `split - hours` to `split + hours_after` there is one
llm_call at `node` (slow — `slow_ms` — for a `slow_share` of the calls, else
`fast_ms`), one graph_transition leaving `parseAction` (to `errorHandler` for a
`failure_rate` of them, else to `narrate`), and an error event for an
`error_share` of the steps; one heartbeat event at the end. Deterministic: the
k-th of n steps is slow when floor((k+1)·share) > floor(k·share), so a share is
met exactly over a window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["Phase", "write_events"]

ERROR = "Failed to parse SceneNarrative: missing field 'mood' at offset {n}"


@dataclass(frozen=True)
class Phase:
    slow_share: float = 0.0
    failure_rate: float = 0.0
    error_share: float = 0.0
    slow_ms: int = 6500
    fast_ms: int = 800
    failing_node: str | None = None  # every transition leaving it fails (a critical pattern)


def _hit(k: int, share: float) -> bool:
    return int((k + 1) * share) > int(k * share)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_events(
    path: Path, *, split: datetime, before: Phase, after: Phase, hours: float = 24,
    hours_after: float | None = None, step: timedelta = timedelta(minutes=5),
    node: str = "dmScene",
) -> Path:
    """Write the events around `split` to `path` (time order) and return it."""
    start = split - timedelta(hours=hours)
    end = split + timedelta(hours=hours if hours_after is None else hours_after)
    lines: list[str] = []
    when, k = start, 0
    while when < end:
        phase = before if when < split else after
        session = f"s-{k}"
        events: list[dict[str, Any]] = [
            {"timestamp": _iso(when), "type": "llm_call", "session_id": session,
             "model": "claude-sonnet", "node": node, "prompt_tokens": 900,
             "completion_tokens": 200,
             "latency_ms": phase.slow_ms if _hit(k, phase.slow_share) else phase.fast_ms},
            {"timestamp": _iso(when + timedelta(seconds=1)), "type": "graph_transition",
             "session_id": session, "from": "parseAction",
             "to": "errorHandler" if _hit(k, phase.failure_rate) else "narrate",
             "trigger": "success"},
        ]
        if _hit(k, phase.error_share):
            events.append({"timestamp": _iso(when + timedelta(seconds=2)), "type": "error",
                           "session_id": session, "message": ERROR.format(n=k % 300),
                           "context": node})
        if phase.failing_node:
            events.append({"timestamp": _iso(when + timedelta(seconds=3)),
                           "type": "graph_transition", "session_id": session,
                           "from": phase.failing_node, "to": "errorHandler",
                           "trigger": "failure"})
        lines += [json.dumps(e) for e in events]
        when += step
        k += 1
    # The system is still running at the end: an event there tells a verdict that the
    # file reaches the end of the after-window (else its figures would be partial).
    lines.append(json.dumps({"timestamp": _iso(end), "type": "heartbeat", "session_id": "end"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
