"""`mgt logs transitions|llm-calls|errors|session ID` → the newest matching events, printed.

The commands of sleeptime-logs, over a Loki server or an event file:

- `transitions`, `llm-calls` (`--min-latency MS`), `errors`: the newest
  `--limit` (default 100) events of that type within `--since` (default
  24h), newest first, as Loki's default `backward` direction returns them.
- `session ID`: the newest `--limit` events of that session within `--since`
  (default 7d, as sleeptime-logs), shown as a timeline, oldest first.

`--json` prints `[{"timestamp", "event"}]` in the same order (timestamp ISO
8601 UTC, event the logged object with its `type`). `--source` is a Loki URL
or a file (see `mgt.logs.sources`); without it `GRAFANA_LOKI_URL` is used.
Skipped malformed lines are reported on stderr; `--verbose` shows the source,
the LogQL and each request there too.
"""

from __future__ import annotations

import argparse
import sys

from mgt.errors import UsageError
from mgt.logs.events import LogEvent, format_timestamp

__all__ = ["COMMAND_TYPES", "main"]

#: command → the event type it lists (None: every type, for `session`).
COMMAND_TYPES: dict[str, str | None] = {
    "transitions": "graph_transition",
    "llm-calls": "llm_call",
    "errors": "error",
    "session": None,
}
_NOUNS = {
    "transitions": "graph transitions",
    "llm-calls": "LLM calls",
    "errors": "errors",
}


def _check(args: argparse.Namespace) -> None:
    kind = args.kind
    if kind == "session" and not args.session_id:
        raise UsageError("`mgt logs session` needs a session id: mgt logs session ID")
    if kind != "session" and args.session_id:
        raise UsageError(
            f"unexpected argument {args.session_id!r}: only `mgt logs session` takes an ID"
        )
    if args.min_latency is not None:
        if kind != "llm-calls":
            raise UsageError("--min-latency applies to `mgt logs llm-calls` only")
        if args.min_latency < 0:
            raise UsageError(f"--min-latency must be 0 or more, not {args.min_latency}")
    if args.limit <= 0:
        raise UsageError(f"--limit must be a positive number, not {args.limit}")


def main(args: argparse.Namespace) -> int:
    """Run `mgt logs`; returns the exit code (errors are raised as MgtError)."""
    from mgt.logs.sources import FileSource, open_source

    _check(args)
    kind: str = args.kind
    since: str = args.since if args.since is not None else ("7d" if kind == "session" else "24h")
    err = _err
    on_request = err if args.verbose else None

    with open_source(args.source, since=since, on_request=on_request) as source:
        if args.verbose:
            where = "newest event in the file" if isinstance(source, FileSource) else "now"
            err(f"source: {source.description} (--since {since}, counted back from {where})")
        want = COMMAND_TYPES[kind]
        events = source.latest(
            args.limit,
            want,
            session_id=args.session_id if kind == "session" else None,
            min_latency_ms=args.min_latency,
        )
        query = getattr(source, "last_query", None)
        if args.verbose and query:
            err(f"LogQL: {query}")
        skipped, notes, description = source.skipped, list(source.notes), source.description

    if kind == "session":
        events.reverse()  # a timeline reads oldest first
    if args.json:
        _print_json(events)
    else:
        _print_human(events, kind, args, since, description)

    if args.verbose:
        err(f"{len(events)} event(s) shown from {description}")
    for note in notes:
        err(f"mgt: warning: {note}")
    if skipped:
        err(f"mgt: skipped {skipped} malformed line(s) in {description}")
    return 0


def _err(message: str) -> None:
    sys.stderr.write(message.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    sys.stderr.flush()


def _print_json(events: list[LogEvent]) -> None:
    from mgt.logs.render import json_array_lines

    out = sys.stdout.buffer
    for line in json_array_lines(events):
        # A lone surrogate read from a log becomes its \\uXXXX escape: still valid JSON.
        out.write(line.encode("utf-8", "backslashreplace") + b"\n")
    out.flush()


def _print_human(
    events: list[LogEvent], kind: str, args: argparse.Namespace, since: str, description: str
) -> None:
    from mgt.console import out_console
    from mgt.logs.render import event_table, timeline_table

    console = out_console()
    if not events:
        console.print("No results found.", markup=False)
        return
    if kind == "session":
        first, last = events[0].timestamp, events[-1].timestamp
        span = ""
        if first is not None and last is not None:
            span = f", {format_timestamp(first)[:19]} → {format_timestamp(last)[:19]}"
        title = f"session {args.session_id}: {len(events)} event(s){span} · {description}"
        table = timeline_table(events, title)
    else:
        floor = f" ≥ {args.min_latency} ms" if args.min_latency is not None else ""
        title = (
            f"{len(events)} {_NOUNS[kind]}{floor}, newest first · last {since} · {description}"
        )
        table = event_table(events, kind, title)
    if not console.is_terminal:
        # Piped or redirected: lay the table out wide instead of folding it into 80 columns.
        from rich.console import Console

        console = Console(highlight=False, width=max(console.width, 200))
    console.print(table)
