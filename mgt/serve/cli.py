"""`mgt serve` arguments → mgt.toml's schedules run on time → exit 0 (1 a run failed, 130 stopped).

Progress goes to stdout, one line per run started, resumed, interrupted or
finished, with its run id, status and cost (`--json`: one JSON object a line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mgt.errors import UsageError

__all__ = ["serve_main"]

NOW_ENV = "MGT_SERVE_NOW"


def serve_main(args: argparse.Namespace) -> int:
    from mgt.runtime.project import find_project_file
    from mgt.serve.config import load_schedules
    from mgt.serve.runner import Clock, Server

    if args.config:
        config = Path(args.config)
    else:
        found = find_project_file(Path.cwd())
        if found is None:
            raise UsageError("no mgt.toml here or above: pass --config FILE")
        config = found
    schedules = load_schedules(config)
    emit = _json_line if args.json else _text_line
    if getattr(args, "engine", "file") == "temporal":  # the server fires them: mgt.serve.temporal
        from mgt.serve.temporal import serve_temporal

        # no table is fine: it deletes the schedules an earlier sync made
        return serve_temporal(args, config, schedules, emit)
    if not schedules:
        raise UsageError(f"{config}: no [[schedule]] tables: nothing to serve")
    clock = Clock(_start_time(args.now or os.environ.get(NOW_ENV)))
    runs_dir = Path(args.runs_dir)
    if not args.once:
        for s in schedules:
            emit({"event": "schedule", "schedule": s.name, "when": s.when,
                  "machine": str(s.machine)})
    server = Server(schedules, runs_dir, config.resolve().parent, clock=clock,
                    once=args.once, emit=emit)
    if args.ui is None:
        return server.run()
    from mgt.ui.cli import start_in_background

    url, stop_ui = start_in_background(runs_dir, args.ui_host, args.ui)
    emit({"event": "ui", "schedule": "-", "url": url})
    try:
        return server.run()
    finally:
        stop_ui()


def _start_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--now/{NOW_ENV}: not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_line(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _text_line(event: dict[str, Any]) -> None:
    kind, name = event["event"], event["schedule"]
    run = event.get("run_id") or "-"
    cost = event.get("cost_usd")
    spent = f" ${cost:.4f}" if isinstance(cost, int | float) else ""
    if kind == "ui":
        line = f"web view of the runs at {event['url']}"
    elif kind == "schedule":
        line = f"{name}: {event['when']} → {event['machine']}"
    elif kind == "started":
        line = f"{name}: started run {run}" + (f" (tick {event['tick']})" if event.get("tick")
                                               else "")
    elif kind in ("created", "updated", "unchanged"):
        line = f"{name}: Temporal schedule {event['schedule_id']} {kind} ({event['when']} → " \
               f"{event['machine']})"
    elif kind == "deleted":
        line = f"{name}: Temporal schedule {event['schedule_id']} deleted (its [[schedule]] " \
               "table is gone)"
    elif kind == "resumed":
        line = f"{name}: resumed run {run}"
    elif kind == "catching_up":
        line = f"{name}: looking again at {event['runs']} earlier run(s) of the schedule " \
               "(from an hour before its last run mirrored here)"
    elif kind == "interrupted":
        line = f"{name}: run {run} interrupted{spent}; the next mgt serve resumes it"
    elif kind == "finished":
        line = f"{name}: run {run} {event['status']}{spent}"
        if event.get("error"):
            line += f": {event['error']}"
    elif name == "-":
        line = str(event.get("message", kind))
    else:
        line = f"{name}: {event.get('message', kind)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
