"""One line / JSON value → LogEvent: shapes, types, timestamps, wrong types, bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.logs.events import (
    MAX_ITEMS,
    MAX_TEXT,
    LogEvent,
    format_timestamp,
    normalize_type,
    parse_event,
    parse_timestamp,
)

T0 = 1736937000120000000  # 2025-01-15T10:30:00.120Z


def test_flat_event_line() -> None:
    line = json.dumps({
        "timestamp": "2025-01-15T10:30:00.120Z", "type": "llm_call", "model": "haiku",
        "node": "classify", "prompt_tokens": 812, "completion_tokens": 64,
        "latency_ms": 1840, "session_id": "s-42",
    })
    event = parse_event(line)
    assert event is not None
    assert (event.type, event.timestamp, event.session_id) == ("llm_call", T0, "s-42")
    assert event.text("model") == "haiku"
    assert event.number("latency_ms") == 1840
    assert event.raw_type is None


def test_bytes_and_event_type_key() -> None:
    event = parse_event(b'{"event_type": "graph_transition", "from": "a", "to": "b"}')
    assert event is not None and event.type == "graph_transition"
    assert event.timestamp is None
    assert event.to_json() == {"timestamp": None,
                               "event": {"type": "graph_transition", "from": "a", "to": "b"}}


def test_sleeptime_json_element() -> None:
    element = {"timestamp": "1736937000120000000",
               "event": {"type": "error", "message": "boom", "context": {"n": 1}}}
    event = parse_event(element)
    assert event is not None
    assert (event.type, event.timestamp) == ("error", T0)
    assert event.text("message") == "boom"
    assert event.to_json()["event"] == {"type": "error", "message": "boom", "context": {"n": 1}}


def test_record_time_wins_over_loki_entry_time_and_labels_give_session() -> None:
    event = parse_event('{"type": "error", "message": "x", "timestamp": 1736937000.12}',
                        entry_ts=5, labels={"session_id": "from-label"})
    assert event is not None and event.timestamp == T0
    assert event.session_id == "from-label"
    event = parse_event('{"type": "error", "message": "x"}', entry_ts=5)
    assert event is not None and event.timestamp == 5


def test_unknown_type_is_kept_as_other() -> None:
    event = parse_event('{"type": "heartbeat", "n": 1}')
    assert event is not None
    assert (event.type, event.raw_type, event.type_name) == ("other", "heartbeat", "heartbeat")
    assert event.to_json()["event"]["type"] == "heartbeat"


@pytest.mark.parametrize(("name", "kind"), [
    ("llm_call", "llm_call"), ("LLMCallEvent", "llm_call"), ("LlmCall", "llm_call"),
    ("GraphTransition", "graph_transition"), ("llm-call", "llm_call"),
    ("ErrorEvent", "error"), ("EffectExecutionEvent", "effect_execution"),
    ("UserActionEvent", "user_action"), ("errors", "other"), ("", "other"),
])
def test_type_spellings(name: str, kind: str) -> None:
    assert normalize_type(name) == kind


@pytest.mark.parametrize("value", [
    "not json", "", "[]", "[1,2]", "42", "null", '"text"', '{"no_type": 1}',
    '{"type": 5}', '{"type": ""}', '{"type": null}', '{"event": "x"}', "{" * 50000,
    "[" * 100000, '{"type": "error", "message": ', b"\xff\xfe\x00garbage",
])
def test_not_an_event(value: Any) -> None:
    assert parse_event(value) is None


@pytest.mark.parametrize(("fields", "accessor", "name"), [
    ({"latency_ms": "slow"}, "number", "latency_ms"),
    ({"latency_ms": True}, "number", "latency_ms"),
    ({"latency_ms": None}, "number", "latency_ms"),
    ({"latency_ms": [1]}, "number", "latency_ms"),
    ({"latency_ms": float("nan")}, "number", "latency_ms"),
    ({"model": 3}, "text", "model"),
    ({"success": "yes"}, "flag", "success"),
])
def test_wrong_types_read_as_missing(fields: dict[str, Any], accessor: str, name: str) -> None:
    event = parse_event({"type": "llm_call", **fields})
    assert event is not None
    assert getattr(event, accessor)(name) is None


def test_numbers_that_are_numbers() -> None:
    event = parse_event('{"type": "llm_call", "latency_ms": 12.5, "success": false}')
    assert event is not None
    assert event.number("latency_ms") == 12.5 and event.flag("success") is False


def test_huge_fields_are_bounded() -> None:
    line = json.dumps({
        "type": "error", "message": "m" * (MAX_TEXT * 3),
        "context": {"list": list(range(MAX_ITEMS * 4)),
                    "keys": {f"k{i}": i for i in range(MAX_ITEMS * 2)}},
        "x" * (MAX_TEXT * 2): 1,
    })
    event = parse_event(line)
    assert event is not None
    message = event.text("message")
    assert message is not None and len(message) < MAX_TEXT + 40
    assert message.startswith("m" * 100) and "more chars" in message
    assert len(event.fields["context"]["list"]) == MAX_ITEMS + 1
    assert len(event.fields["context"]["keys"]) == MAX_ITEMS + 1
    assert all(len(k) <= MAX_TEXT for k in event.fields)


def test_deep_nesting_is_cut() -> None:
    value: Any = "leaf"
    for _ in range(100):
        value = {"d": value}
    event = parse_event({"type": "error", "context": value})
    assert event is not None
    depth, node = 0, event.fields["context"]
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert depth < 20 and "nested too deep" in node


def test_logcli_style_prefixed_line() -> None:
    event = parse_event('2025-01-15T10:30:00.120Z {app="tidepool"} {"type": "error", '
                        '"message": "x"}')
    assert event is not None and event.type == "error" and event.timestamp == T0


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-01-15T10:30:00.120Z", T0),
    ("2025-01-15T10:30:00.12Z", T0),
    ("2025-01-15T12:30:00.120+02:00", T0),
    ("2025-01-15T05:00:00.120-05:30", T0),
    ("2025-01-15T10:30:00.120", T0),
    ("2025-01-15 10:30:00.120000000Z", T0),
    ("2025-01-15T10:30:00.120000001Z", T0 + 1),
    (1736937000.12, T0),
    (1736937000120, T0),
    (1736937000120000, T0),
    (T0, T0),
    (str(T0), T0),
    ("1736937000.12", T0),
    ("2025-01-15", 1736899200 * 10**9),
])
def test_timestamps(value: Any, expected: int) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", [
    True, None, -1, "yesterday", "2025-13-01T00:00:00Z", "2025-01-15T25:00:00Z", [],
    {}, float("inf"), float("nan"), 10**30, "x" * 1000, "",
])
def test_bad_timestamps(value: Any) -> None:
    assert parse_timestamp(value) is None


def test_format_timestamp_sorts_as_text() -> None:
    times = [T0, T0 + 1, T0 + 500_000_000, T0 + 10**9]
    texts = [format_timestamp(t) for t in times]
    assert texts == sorted(texts)
    assert texts[0] == "2025-01-15T10:30:00.120000000Z"
    assert all(parse_timestamp(text) == t for text, t in zip(texts, times, strict=True))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["llm_call", "error", "graph_transition", "x", 3, None]),
    fields=st.dictionaries(
        st.sampled_from(["timestamp", "latency_ms", "session_id", "event", "message", "node",
                         "prompt_tokens", "success", "context"]),
        json_values,
    ),
)
def test_never_raises_on_any_json(kind: Any, fields: dict[str, Any]) -> None:
    obj = {"type": kind, **fields}
    for value in (obj, json.dumps(obj), {"timestamp": fields.get("timestamp"), "event": obj}):
        event = parse_event(value)
        if event is not None:
            assert isinstance(event, LogEvent)
            event.number("latency_ms"), event.text("message"), event.flag("success")
            json.dumps(event.to_json())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_never_raises_on_garbage(data: bytes | str) -> None:
    event = parse_event(data)
    assert event is None or isinstance(event, LogEvent)
