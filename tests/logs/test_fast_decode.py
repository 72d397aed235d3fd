"""orjson on the hot path reads every line exactly as the standard library does, or hands it over.

`_fast_load` (orjson) must return the very value `_standard_load` (the `json`
module, which every result was computed with before) returns — same types,
same key order, same numbers — or `_MISS`, and then the standard path
decides. Everything after decoding is shared code, so equal values mean equal
events, reports and skipped counts; the file-level tests check that too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.analyze.analyzer import analyze_source
from mgt.logs import events as events_module
from mgt.logs.events import _MISS, _fast_load, _standard_load, parse_event, parse_event_line
from tests.logs.helpers import make_events


def same(a: Any, b: Any) -> bool:
    """Equal values of identical types all the way down, dict key order included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def agrees(line: bytes | str) -> None:
    fast = _fast_load(line)
    reference = _standard_load(line)
    assert fast is _MISS or same(fast, reference), (line, fast, reference)


CRAFTED = [
    b'{"type": "llm_call", "latency_ms": 18446744073709551616}',  # beyond 64 bits
    b'{"type": "llm_call", "latency_ms": 18446744073709551615}',
    b'{"type": "llm_call", "latency_ms": -9223372036854775809}',
    b'{"type": "llm_call", "latency_ms": 9223372036854775808}',
    b'{"type": "llm_call", "timestamp": 123456789012345678901234567890}',
    b'{"type": "llm_call", "latency_ms": 1e400}',
    b'{"type": "llm_call", "latency_ms": -1e400}',
    b'{"type": "llm_call", "latency_ms": NaN}',
    b'{"type": "llm_call", "latency_ms": Infinity}',
    b'{"type": "llm_call", "latency_ms": 1.5e-320}',
    b'{"type": "llm_call", "latency_ms": -0}',
    b'{"type": "llm_call", "latency_ms": -0.0}',
    b'{"type": "llm_call", "latency_ms": 1E2}',
    b'{"type": "llm_call", "latency_ms": 0.1000000000000000055511151231257827}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"type": "error", "message": "\\ud800 lone"}',
    b'{"type": "error", "message": "\\ud83d\\ude00 pair"}',
    b'{"type": "error", "message": "\\u0000 nul"}',
    b'{"type": "error", "message": "raw \x01 control"}',
    b'{"type": "error", "message": "bad \xff utf8"}',
    b'\xef\xbb\xbf{"type": "error", "message": "bom"}',
    b'  {"type": "error"}  \n',
    b'{"type": "error"}\r\n',
    b'{"type": "error"} trailing',
    b'2026-01-15T10:00:00Z {app="x"} {"type": "error", "message": "prefixed"}',
    b'[' * 5000 + b']' * 5000,
    b'{"a":' * 2000 + b'1' + b'}' * 2000,
    b'"just a string"',
    b'12',
    b'',
    b'{"type": "llm_call", "nested": {"deep": [1, 2.5, {"x": null, "y": true}]}}',
    '{"type": "error", "message": "caf\u00e9 \u2603"}'.encode(),
]


@pytest.mark.parametrize("line", CRAFTED, ids=range(len(CRAFTED)))
def test_crafted_lines_decode_as_the_standard_library_does(line: bytes) -> None:
    agrees(line)
    agrees(line.decode("utf-8", "surrogateescape"))
    assert parse_event_line(line + b"\n") == parse_event(line + b"\n")


def test_a_line_beyond_64_bit_integers_keeps_its_exact_integer() -> None:
    line = b'{"type": "llm_call", "timestamp": 18446744073709551616, "latency_ms": 5}\n'
    event = parse_event_line(line)
    assert event is not None
    assert event.fields["timestamp"] == 18446744073709551616
    assert type(event.fields["timestamp"]) is int


def test_str_lines_with_lone_surrogates_are_handed_over() -> None:
    line = '{"type": "error", "message": "\ud800"}'
    assert _fast_load(line) is _MISS
    event = parse_event(line)
    assert event is not None and event.fields["message"] == "\ud800"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from(["compact", "spaced", "ascii", "unicode"]))
def test_generated_json_decodes_as_the_standard_library_does(value: Any, style: str) -> None:
    if style == "compact":
        text = json.dumps(value, separators=(",", ":"))
    elif style == "spaced":
        text = json.dumps(value, indent=1)
    else:
        text = json.dumps(value, ensure_ascii=style == "ascii")
    agrees(text.encode("utf-8", "surrogatepass"))
    agrees(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(min_value=0, max_value=60))
def test_spliced_bytes_decode_as_the_standard_library_does(noise: bytes, at: int) -> None:
    base = b'{"timestamp": "2026-01-15T10:30:00.120Z", "type": "llm_call", "latency_ms": 12}'
    line = base[:at] + noise + base[at:]
    agrees(line)
    assert parse_event_line(line) == parse_event(line)


def write_shapes(path: Path, rows: list[dict[str, Any]], shape: str) -> None:
    lines = []
    for row in rows:
        if shape == "timestamp-last":
            row = {**{k: v for k, v in row.items() if k != "timestamp"},
                   "timestamp": row["timestamp"]}
        elif shape == "sleeptime-array-element":
            row = {"timestamp": row["timestamp"],
                   "event": {k: v for k, v in row.items() if k != "timestamp"}}
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("shape", ["timestamp-first", "timestamp-last",
                                   "sleeptime-array-element"])
def test_reports_are_the_same_with_and_without_orjson(
    tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = make_events(3000, seed=7)
    for i, row in enumerate(rows):
        if i % 97 == 0:
            row["latency_ms"] = 2**65  # read as an exact int by both paths
        if i % 89 == 0:
            row["latency_ms"] = 9000.5
    path = tmp_path / "events.jsonl"
    write_shapes(path, rows, shape)
    with path.open("a") as fh:
        fh.write('{"type": "llm_call", "latency_ms": NaN}\nnot json\n{"type": 1}\n')

    def report() -> dict[str, Any]:
        out = analyze_source(str(path), since="1h").report
        out["metadata"].pop("generated_at")
        out["metadata"].pop("query_duration_ms")
        return out

    fast = report()

    def refuse(line: Any) -> Any:
        raise ValueError("the standard path only")

    monkeypatch.setattr(events_module, "_orjson_loads", refuse)
    assert fast == report()
    assert fast["summary"]["events_analyzed"] > 0
