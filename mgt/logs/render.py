"""LogEvents → what `mgt logs` prints: a rich table, a session timeline, or the JSON array.

Log text is untrusted: control characters are shown escaped (a logged
`\\x1b[2J` never reaches the terminal as an escape sequence), rich markup in
it is printed literally, and long values are cut for the table (the JSON
output keeps them as read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mgt.logs.events import LogEvent

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["CELL_MAX", "clean", "event_table", "json_array_lines", "summary", "timeline_table"]

CELL_MAX = 160
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any, limit: int = CELL_MAX) -> str:
    """A field value → one printable line: controls escaped, newlines as ⏎, cut to `limit`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = f"{value:g}" if isinstance(value, float) else str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\r\n", "⏎").replace("\n", "⏎").replace("\t", " ")
    text = _CONTROL.sub(_escape, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_time(event: LogEvent) -> str:
    """`2025-01-15 10:30:00.120` (UTC, milliseconds), or `—` when the event has no time."""
    if event.timestamp is None:
        return "—"
    seconds, nanos = divmod(event.timestamp, 1_000_000_000)
    dt = datetime.fromtimestamp(seconds, UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{nanos // 1_000_000:03d}"


def _num(event: LogEvent, name: str) -> str:
    value = event.number(name)
    if value is None:
        raw = event.fields.get(name)
        return "" if raw is None else f"?{clean(raw, 20)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def summary(event: LogEvent) -> str:
    """One line describing an event, in the spirit of sleeptime-logs' text output."""
    f = event.fields
    if event.type == "graph_transition":
        text = f"{clean(f.get('from'), 60)} → {clean(f.get('to'), 60)}"
        trigger = clean(f.get("trigger"), 60)
        return text + (f" (trigger: {trigger})" if trigger else "")
    if event.type == "llm_call":
        node = clean(f.get("node"), 40)
        return (
            f"{clean(f.get('model'), 40)}{' @ ' + node if node else ''}: "
            f"{_num(event, 'prompt_tokens')} prompt + {_num(event, 'completion_tokens')} "
            f"completion tokens, {_num(event, 'latency_ms')} ms"
        )
    if event.type == "user_action":
        return f"{clean(f.get('action_type'), 60)} (context: {clean(f.get('node_context'), 80)})"
    if event.type == "effect_execution":
        ok = event.flag("success")
        state = "success" if ok else "failed" if ok is False else "?"
        return f"{clean(f.get('effect_type'), 60)} ({state}), {_num(event, 'latency_ms')} ms"
    if event.type == "error":
        context = f.get("context")
        text = clean(f.get("message"), 120)
        return text + (f" (context: {clean(context, 80)})" if context not in (None, "", {}) else "")
    rest = {k: v for k, v in f.items() if k not in ("type", "event_type", "timestamp")}
    return clean(rest)


def _text(value: str) -> Any:
    from rich.text import Text

    return Text(value)


def event_table(events: Sequence[LogEvent], kind: str, title: str) -> Table:
    """The table for transitions, llm-calls or errors (one row per event)."""
    from rich.table import Table

    table = Table(title=_text(title), title_justify="left", show_lines=False, expand=False)
    table.add_column("time (UTC)", no_wrap=True)
    columns: list[tuple[str, bool]]
    if kind == "transitions":
        columns = [("from", False), ("to", False), ("trigger", False)]
    elif kind == "llm-calls":
        columns = [("model", False), ("node", False), ("prompt", True),
                   ("completion", True), ("latency ms", True)]
    else:
        columns = [("message", False), ("context", False)]
    for name, numeric in columns:
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    table.add_column("session", overflow="fold")
    for event in events:
        f = event.fields
        if kind == "transitions":
            cells = [clean(f.get("from"), 60), clean(f.get("to"), 60), clean(f.get("trigger"), 60)]
        elif kind == "llm-calls":
            cells = [clean(f.get("model"), 40), clean(f.get("node"), 40),
                     _num(event, "prompt_tokens"), _num(event, "completion_tokens"),
                     _num(event, "latency_ms")]
        else:
            cells = [clean(f.get("message")), clean(f.get("context"), 80)]
        row = [short_time(event), *cells, clean(event.session_id, 40)]
        table.add_row(*(_text(c) for c in row))
    return table


def timeline_table(events: Sequence[LogEvent], title: str) -> Table:
    """A session's events oldest first: offset from the first event, time, type, summary."""
    from rich.table import Table

    table = Table(title=_text(title), title_justify="left", expand=False)
    table.add_column("+s", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("what", overflow="fold")
    first = next((e.timestamp for e in events if e.timestamp is not None), None)
    for event in events:
        offset = ""
        if first is not None and event.timestamp is not None:
            offset = f"{(event.timestamp - first) / 1e9:.3f}"
        row = [offset, short_time(event), clean(event.type_name, 40), summary(event)]
        table.add_row(*(_text(c) for c in row))
    return table


def json_array_lines(events: Sequence[LogEvent]) -> Iterator[str]:
    """`[{"timestamp", "event"}, ...]` as text lines, one element per line; `[]` when empty."""
    if not events:
        yield "[]"
        return
    yield "["
    last = len(events) - 1
    for i, event in enumerate(events):
        element = json.dumps(event.to_json(), ensure_ascii=False)
        yield element + ("," if i < last else "")
    yield "]"
