"""The fast paths of reading event files agree with the general ones, line for line.

`parse_event_line` (the file reader's per-line parse) must give exactly what
`parse_event` gives, the canonical-timestamp shortcut exactly what the sliced
parse gives, and a file source the events and skipped count of parsing its
lines one by one. Lines are generated from event-like objects and then cut,
spliced and sprinkled with bytes, so the fast paths meet every kind of line
they must hand over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mgt.logs.events import (
    MAX_LINE_BYTES,
    MAX_TEXT,
    _parse_iso_fast,
    _parse_iso_sliced,
    parse_event,
    parse_event_line,
    parse_timestamp,
)
from mgt.logs.sources import open_source

# ------------------------------------------------------------------ timestamps

CANONICAL = "2026-01-15T10:30:59.120Z"
# Characters that keep a timestamp almost canonical, or break it in interesting ways.
TS_CHARS = "0123456789-:.TtZz +,\u0663\u00b2_"


@st.composite
def near_canonical(draw: st.DrawFn) -> str:
    """A canonical timestamp, or one with odd fields (some out of range) or changed characters."""
    if draw(st.booleans()):  # valid
        y, mo, d = (draw(st.integers(1970, 2400)), draw(st.integers(1, 12)),
                    draw(st.integers(1, 31)))
        h, mi, sec, ms = (draw(st.integers(0, 23)), draw(st.integers(0, 59)),
                          draw(st.integers(0, 60)), draw(st.integers(0, 999)))
        return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}.{ms:03d}Z"
    year = draw(st.sampled_from(["1969", "1970", "2026", "0000", "5138", "9999"]))
    month = draw(st.sampled_from(["00", "01", "02", "12", "13", "99"]))
    day = draw(st.sampled_from(["00", "01", "28", "29", "31", "32"]))
    hour = draw(st.sampled_from(["00", "23", "24"]))
    minute = draw(st.sampled_from(["00", "59", "60"]))
    second = draw(st.sampled_from(["00", "59", "60", "61"]))
    millis = draw(st.sampled_from(["000", "120", "999", "1", "12", "1234"]))
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}.{millis}Z"
    chars = list(text)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(chars) - 1))
        chars[at] = draw(st.sampled_from(TS_CHARS))
    return "".join(chars)


@settings(max_examples=1000, deadline=None)
@given(near_canonical())
@example(CANONICAL)
@example("1969-12-31T23:59:59.999Z")
@example("1970-01-01T00:00:00.000Z")
@example("5138-11-16T09:46:39.999Z")
@example("5138-11-16T09:46:40.000Z")
@example("2026-01-15T23:59:60.500Z")
@example("2026-02-31T00:00:00.000Z")
@example("2026-01-15t10:30:59.120Z")
@example("2026-01-15T10:30:59,120Z")
def test_canonical_timestamp_shortcut_agrees_with_the_sliced_parse(text: str) -> None:
    assume(len(text) >= 19 and text[4] == "-")  # what callers of _parse_iso_fast check
    assert _parse_iso_fast(text) == _parse_iso_sliced(text)


def test_canonical_timestamp_value() -> None:
    assert parse_timestamp(CANONICAL) == 1768473059_120_000_000
    assert parse_timestamp("1970-01-01T00:00:00.001Z") == 1_000_000
    assert parse_timestamp("1969-12-31T23:59:59.999Z") is None


# ----------------------------------------------------------------------- lines

KINDS = ["llm_call", "graph_transition", "error", "user_action", "effect_execution",
         "heartbeat", "LLMCallEvent", "", 5, None, ["llm_call"], {"a": 1}]
TIMES = [CANONICAL, "2026-01-15T10:30:59Z", "2026-01-15T12:30:59.120+02:00",
         "2026-13-15T10:30:59.120Z", "1969-12-31T23:59:59.999Z", 1768473059.12,
         1768473059120, "1768473059", "yesterday", "", None, True, [CANONICAL]]
SESSIONS = ["s-1", "", 42, True, None, ["s"], "x" * (MAX_TEXT + 5)]

json_leaves = (st.none() | st.booleans() | st.integers(-(10**20), 10**20)
               | st.floats(allow_nan=False) | st.text(max_size=20))
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=8,
)


@st.composite
def event_objects(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):  # an ordinary event, maybe with an odd value or two
        obj: dict[str, Any] = {
            "timestamp": draw(near_canonical() | st.sampled_from(TIMES)),
            "type": draw(st.sampled_from(KINDS[:5]) | st.sampled_from(KINDS)),
        }
        if draw(st.booleans()):
            obj["session_id"] = draw(st.sampled_from(["s-1", "dm-42"]) | st.sampled_from(SESSIONS))
        extra = draw(st.dictionaries(st.sampled_from(["node", "message", "latency_ms", "type",
                                                      "event", "ts", "session_id"]),
                                     json_values, max_size=3))
        obj.update(extra)
        return obj
    obj = {}
    keys = draw(st.permutations(["timestamp", "type", "session_id", "event_type", "ts",
                                 "event", "node", "message"]))
    for key in keys[: draw(st.integers(0, len(keys)))]:
        if key == "timestamp":
            obj[key] = draw(st.sampled_from(TIMES))
        elif key in ("type", "event_type"):
            obj[key] = draw(st.sampled_from(KINDS))
        elif key == "session_id":
            obj[key] = draw(st.sampled_from(SESSIONS))
        elif key == "ts":
            obj[key] = draw(st.sampled_from(TIMES))
        elif key == "event":
            obj[key] = draw(st.sampled_from([None, "x", {"type": "error", "message": "m"},
                                             {"type": "llm_call", "timestamp": CANONICAL}]))
        else:
            obj[key] = draw(json_values)
    return obj


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    """A JSON line of an event-like object, then maybe damaged."""
    obj = draw(event_objects())
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(", ", ": "), (",", ":")])))
    if draw(st.integers(0, 9)) == 0:
        text = text + " " * draw(st.integers(1, MAX_TEXT))  # around the size limit
    line = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "insert", "replace", "prefix",
                                                  "suffix"]))
    if damage == "cut" and line:
        line = line[: draw(st.integers(0, len(line) - 1))]
    elif damage in ("insert", "replace") and line:
        at = draw(st.integers(0, len(line) - 1))
        junk = draw(st.binary(min_size=1, max_size=3) | st.sampled_from(
            [b"}", b"{", b'"', b",", b"\\", b" ", b"\xff", b"\x00", b"\n"]))
        line = line[:at] + junk + line[at + (damage == "replace"):]
    elif damage == "prefix":
        line = draw(st.sampled_from([b" ", b"2026-01-15T10:30:59.120Z {a=\"b\"} ", b"\xef\xbb\xbf",
                                     b"x"])) + line
    elif damage == "suffix":
        line += draw(st.sampled_from([b" ", b"\r", b"\t\r", b"}", b" x", b"\x00", b"\xff"]))
    return line + draw(st.sampled_from([b"\n", b"\r\n", b""]))


def same(a: object, b: object) -> bool:
    # repr: events compare field by field, and NaN-free values compare as text too
    return repr(a) == repr(b)


@settings(max_examples=800, deadline=None)
@given(event_lines())
@example(b'{"timestamp": "2026-01-15T10:30:59.120Z", "type": "llm_call", "session_id": "s"}\n')
@example(b'{"type": "llm_call", "timestamp": "2026-01-15T10:30:59.120Z"} x\n')
@example(b'{ "type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "c": {"a": 1}} x\n')
@example(b'{"type": "llm_call", "timestamp": "2026-01-15T10:30:59.120Z"}\n\n')
@example(b'{"type": "llm_call", "timestamp": "2026-01-15T10:30:59.120Z", "session_id": 7}')
@example(b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "type": 3}')
@example(b'{"type": "error", "ts": 1768473059, "timestamp": "late"}')
def test_parse_event_line_agrees_with_parse_event(line: bytes) -> None:
    assert same(parse_event_line(line), parse_event(line))


def test_parse_event_line_of_an_ordinary_line() -> None:
    event = parse_event_line(b'{"timestamp": "2026-01-15T10:30:59.120Z", "type": "error", '
                             b'"session_id": "s-1", "message": "boom"}\n')
    assert event is not None
    assert (event.type, event.timestamp, event.session_id) == ("error", 1768473059_120_000_000,
                                                               "s-1")
    assert event.raw_type is None and event.fields["message"] == "boom"


# ---------------------------------------------------------------------- files


def reference_events(data: bytes) -> tuple[list[Any], int]:
    """What reading `data` line by line with `parse_event` gives: events and skipped count."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    events, skipped = [], 0
    parts = data.split(b"\n")
    for i, part in enumerate(parts):
        line = part + b"\n" if i < len(parts) - 1 else part
        if not line or line.isspace():
            continue
        event = parse_event(line)  # None for a line longer than MAX_LINE_BYTES, too
        if event is None:
            skipped += 1
        else:
            events.append(event)
    return events, skipped


@settings(max_examples=150, deadline=None)
@given(st.lists(event_lines(), max_size=30))
def test_file_source_agrees_with_parsing_line_by_line(tmp_path_factory: Any,
                                                      lines: list[bytes]) -> None:
    data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    assume(data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] != b"[")  # an array: another reader
    path = tmp_path_factory.mktemp("lines") / "e.jsonl"
    path.write_bytes(data)
    source = open_source(str(path))
    got = list(source.iter_events())
    events, skipped = reference_events(data)
    assert same(got, events)
    assert source.skipped == skipped


@pytest.mark.parametrize(("extra", "kept"), [(-1, 3), (0, 2), (1, 2), (2, 2)])
def test_lines_at_the_length_limit(tmp_path: Path, extra: int, kept: int) -> None:
    # A line of MAX_LINE_BYTES + extra bytes and its newline, between two ordinary ones.
    ok = json.dumps({"type": "error", "message": "m", "timestamp": CANONICAL}).encode()
    head = b'{"type": "error", "message": "'
    long = head + b"x" * (MAX_LINE_BYTES + extra - len(head) - 2) + b'"}'
    assert len(long) == MAX_LINE_BYTES + extra
    path = tmp_path / "e.jsonl"
    path.write_bytes(ok + b"\n" + long + b"\n" + ok + b"\n")
    source = open_source(str(path))
    got = list(source.iter_events())
    assert len(got) == kept and source.skipped == 3 - kept
    assert reference_events(path.read_bytes())[1] == 3 - kept
