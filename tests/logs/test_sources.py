"""File sources: JSON lines, the sleeptime array, gzip, stdin, malformed input, --since."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from mgt.errors import UsageError
from mgt.logs.events import MAX_LINE_BYTES
from mgt.logs.sources import FileSource, open_source, parse_duration

from .helpers import as_array, make_events, write_jsonl

NS = 10**9


def indices(source: FileSource, *args: object, **kwargs: object) -> list[int]:
    return [int(e.fields["i"]) for e in source.iter_events(*args, **kwargs)]  # type: ignore[arg-type]


def test_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", make_events(50))
    source = open_source(str(path))
    assert indices(source) == list(range(50))
    assert source.skipped == 0
    assert indices(source, "error") == list(range(2, 50, 5))
    assert indices(source, {"error", "llm_call"}) == sorted(
        [*range(0, 50, 5), *range(2, 50, 5)])


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    events = make_events(20)
    lines = [json.dumps(e) for e in events]
    lines[3] = "not json at all"
    lines[7] = '{"type": "llm_call", "latency_ms": '  # cut short
    lines[9] = json.dumps({"no": "type"})
    lines.insert(12, "")  # blank lines are not malformed
    lines.insert(12, "   ")
    lines.insert(15, "\x00\xff garbage")
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = open_source(str(path))
    got = indices(source)
    assert got == [i for i in range(20) if i not in (3, 7, 9)]
    assert source.skipped == 4
    indices(source)
    assert source.skipped == 4  # counts the latest pass, not a running total


def test_overlong_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    events = make_events(3)
    huge = json.dumps({"type": "error", "message": "x" * (MAX_LINE_BYTES + 10)})
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join([json.dumps(events[0]), huge, json.dumps(events[1])]) + "\n")
    source = open_source(str(path))
    assert indices(source) == [0, 1]
    assert source.skipped == 1


def test_wrong_field_types_do_not_stop_filters(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [
        {"type": "llm_call", "latency_ms": "slow", "i": 0},
        {"type": "llm_call", "latency_ms": 2500, "i": 1},
        {"type": "llm_call", "latency_ms": None, "i": 2},
        {"type": "llm_call", "latency_ms": 1999.9, "i": 3},
    ]))
    source = open_source(str(path))
    assert indices(source, "llm_call", min_latency_ms=2000) == [1]


@pytest.mark.parametrize("pretty", [False, True])
def test_sleeptime_array(tmp_path: Path, pretty: bool) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(as_array(make_events(40)), indent=2 if pretty else None))
    source = open_source(str(path))
    assert indices(source) == list(range(40))
    assert source.skipped == 0


def test_array_elements_across_chunk_edges(tmp_path: Path) -> None:
    # Elements of ~50 KiB cross the 64 KiB read chunks at many different offsets.
    events = make_events(60, message_size=50_000)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(as_array(events)))
    assert indices(open_source(str(path))) == list(range(60))


def test_array_with_malformed_elements(tmp_path: Path) -> None:
    elements = [json.dumps(e) for e in as_array(make_events(10))]
    elements[2] = '{"timestamp": tru, "event": {"type": "error"}}'
    elements[5] = '"just a string"'
    elements[7] = '{"timestamp": 1, "event": {"no": "type"}}'
    path = tmp_path / "e.json"
    path.write_text("[" + ",\n".join(elements) + "]")
    source = open_source(str(path))
    assert indices(source) == [0, 1, 3, 4, 6, 8, 9]
    assert source.skipped == 3


def test_array_cut_short(tmp_path: Path) -> None:
    text = json.dumps(as_array(make_events(10)))
    path = tmp_path / "e.json"
    path.write_text(text[: len(text) - 40])
    source = open_source(str(path))
    assert indices(source) == list(range(9))
    assert source.skipped == 1


def test_several_arrays_in_a_row_and_a_bom(tmp_path: Path) -> None:
    a, b = as_array(make_events(6)[:3]), as_array(make_events(6)[3:])
    path = tmp_path / "e.json"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(a) + "\n" + json.dumps(b) + "\n").encode())
    assert indices(open_source(str(path))) == list(range(6))


@pytest.mark.parametrize("name", ["e.jsonl.gz", "e.jsonl", "no-extension"])
def test_gzip_is_recognised_by_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with gzip.open(path, "wt") as fh:
        for event in make_events(30):
            fh.write(json.dumps(event) + "\n")
    assert indices(open_source(str(path))) == list(range(30))


def test_gzip_array(tmp_path: Path) -> None:
    path = tmp_path / "e.json.gz"
    path.write_bytes(gzip.compress(json.dumps(as_array(make_events(30))).encode()))
    assert indices(open_source(str(path))) == list(range(30))


def test_truncated_gzip_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps(e) + "\n" for e in make_events(2000)).encode())
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    source = open_source(str(path))
    got = indices(source)
    assert 0 < len(got) < 2000 and got == list(range(len(got)))
    assert source.notes and "stopped reading" in source.notes[0]
    assert source.skipped >= 1


def test_since_counts_back_from_the_newest_event_in_the_file(tmp_path: Path) -> None:
    # 100 events one minute apart, written out of order; the newest is i=99.
    events = make_events(100, step_s=60)
    path = write_jsonl(tmp_path / "e.jsonl", events[50:] + events[:50])
    got = indices(open_source(str(path), since="10m"))
    assert sorted(got) == list(range(89, 100))
    assert len(indices(open_source(str(path), since="all"))) == 100
    assert len(indices(open_source(str(path), since=None))) == 100


def test_since_keeps_events_without_a_time(tmp_path: Path) -> None:
    events = make_events(10, step_s=3600)
    events[0].pop("timestamp")
    path = write_jsonl(tmp_path / "e.jsonl", events)
    assert indices(open_source(str(path), since="2h")) == [0, 7, 8, 9]


def test_since_uses_the_real_newest_when_timestamps_are_not_first(tmp_path: Path) -> None:
    # The quick first pass reads a leading "timestamp"; other shapes take the full parse.
    events = [
        {"type": "error", "i": 0, "timestamp": "2025-01-15T10:00:00Z"},
        {"i": 1, "type": "error", "timestamp": "2025-01-15T12:00:00Z"},
        {"timestamp": "2025-01-15T11:59:00Z", "event": {"type": "error", "i": 2}},
        {"timestamp": "2099-01-01T00:00:00Z", "type": "not json"},
    ]
    lines = [json.dumps(e) for e in events[:3]]
    lines.append(json.dumps(events[3])[:-1])  # malformed: must not count as newest
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert indices(open_source(str(path), since="5m")) == [1, 2]


def test_latest_takes_the_newest_with_bounded_memory(tmp_path: Path) -> None:
    events = make_events(500)
    path = write_jsonl(tmp_path / "e.jsonl", events[250:] + events[:250])
    latest = open_source(str(path)).latest(7, "llm_call")
    assert [e.fields["i"] for e in latest] == [495, 490, 485, 480, 475, 470, 465]
    with pytest.raises(UsageError):
        open_source(str(path)).latest(0)


def test_session_filter(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", make_events(50))
    assert indices(open_source(str(path)), session_id="s3") == list(range(3, 50, 7))


def test_stdin_is_read_twice_through_a_spool(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", make_events(100, step_s=60))
    code = (
        "from mgt.logs.sources import open_source\n"
        "s = open_source('-', since='30m')\n"
        "print([e.fields['i'] for e in s.iter_events()][:3], len(list(s.iter_events())))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], stdin=path.open("rb"),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[69, 70, 71] 31"


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such event file"):
        open_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UsageError, match="directory"):
        open_source(str(tmp_path))
    with pytest.raises(UsageError, match="unknown event type 'llm_calls'"):
        open_source(str(write_jsonl(tmp_path / "e", []))).iter_events("llm_calls")
    assert list(open_source(str(write_jsonl(tmp_path / "empty", []))).iter_events()) == []


@pytest.mark.parametrize(("text", "ns"), [
    ("30s", 30 * NS), ("30m", 1800 * NS), ("24h", 86400 * NS), ("7d", 7 * 86400 * NS),
    ("1w", 7 * 86400 * NS), ("1h30m", 5400 * NS), ("500ms", NS // 2), ("1.5h", 5400 * NS),
    ("all", None),
])
def test_durations(text: str, ns: int | None) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "5x", "h", "-1h", "0h", "1h 30m", "24hours"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def _peak_bytes(path: Path) -> int:
    tracemalloc.start()
    try:
        source = open_source(str(path), since="24h")
        count = sum(1 for _ in source.iter_events())
        assert count > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("array", [False, True])
def test_memory_does_not_grow_with_the_number_of_events(tmp_path: Path, array: bool) -> None:
    peaks = []
    for n in (1_000, 10_000):
        path = tmp_path / f"e{n}"
        events = make_events(n, step_s=0.5)
        if array:
            path.write_text(json.dumps(as_array(events)))
        else:
            write_jsonl(path, events)
        peaks.append(_peak_bytes(path))
    # Ten times the events, about the same peak (chunk buffers, not event lists).
    assert peaks[1] < peaks[0] * 1.5 + 256 * 1024, peaks
