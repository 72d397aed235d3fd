"""Production events: log lines (Loki or files) → `LogEvent`s, and the `mgt logs` command.

    from mgt.logs import open_source
    with open_source("events.jsonl", since="24h") as source:
        for event in source.iter_events({"llm_call", "error"}):
            event.type, event.timestamp, event.session_id, event.number("latency_ms")
        source.skipped

`events` parses one line, `sources` opens a Loki URL or a file, `loki` is the
HTTP client, `settings` reads GRAFANA_LOKI_* from the environment or
`.tidepool.env`, `cli` is `mgt logs`.
"""

from mgt.logs.events import EVENT_TYPES, LogEvent, parse_event, parse_timestamp
from mgt.logs.sources import EventFilter, EventSource, open_source, parse_duration

__all__ = [
    "EVENT_TYPES",
    "EventFilter",
    "EventSource",
    "LogEvent",
    "open_source",
    "parse_duration",
    "parse_event",
    "parse_timestamp",
]
