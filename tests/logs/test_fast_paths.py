"""The fast paths of reading event files agree with the general ones, line for line.

`parse_event_line` (the file reader's per-line parse) must give exactly what
`parse_event` gives, the canonical-timestamp shortcut exactly what the sliced
parse gives, a file source the events and skipped count of parsing its lines
one by one, and the first pass of `--since` (which decodes almost no line) the
newest time of the events the reading pass yields. Lines are generated from
event-like objects and then cut, spliced and sprinkled with bytes, so the fast
paths meet every kind of line they must hand over.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
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
    block_event,
    format_timestamp,
    has_long_digit_run,
    parse_event,
    parse_event_line,
    parse_line_block,
    parse_line_part,
    parse_timestamp,
)
from mgt.logs.sources import FileSource, _newest_in_block, open_source

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
@example("2026-01-15T24:00:00.000Z")
@example("2026-01-15T23:60:00.000Z")
@example("2026-01-15T23:59:61.000Z")
@example("2026-01-32T00:00:00.000Z")
@example("2026-01-00T00:00:00.000Z")
@example("2026-13-01T00:00:00.000Z")
@example("2026-00-01T00:00:00.000Z")
@example("2026-1-015T00:00:00.000Z")
@example("2026-01-15T10:30:59,120Z")
def test_canonical_timestamp_shortcut_agrees_with_the_sliced_parse(text: str) -> None:
    assume(len(text) >= 19 and text[4] == "-")  # what callers of _parse_iso_fast check
    assert _parse_iso_fast(text) == _parse_iso_sliced(text)


@settings(max_examples=500, deadline=None)
@given(near_canonical())
@example("5138-11-16T09:46:39.999Z")
@example("5138-11-16T09:46:40.000Z")
@example("0000-01-01T00:00:00.000Z")
@example("2026-02-31T00:00:60.000Z")
def test_line_times_through_the_minute_cache_agree_with_parse_event(text: str) -> None:
    line = b'{"type": "llm_call", "timestamp": ' + json.dumps(text).encode() + b"}"
    for _ in range(2):  # the second reading finds the minute the first one cached
        assert same(parse_event_line(line), parse_event(line))


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


@settings(max_examples=300, deadline=None)
@given(st.lists(event_lines() | st.none(), max_size=8), st.booleans(), st.booleans())
@example([b'{"type": "llm_call", "timestamp": "5138-11-16T09:46:40.000Z"}',
          b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "session_id": ""}',
          b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "session_id": 3}',
          b'{"type": "heartbeat", "timestamp": "2026-01-15T10:30:59.120Z"}', b"[1]", None,
          b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "n": 18446744073709551616}',
          b'{"type": "error", "timestamp": "2026-01-15T10:30:59.120Z", "x": "' + b"a" * 300
          + b'"}'], True, False)
def test_a_block_of_lines_parses_as_each_line_alone(
    lines: list[bytes | None], digits_checked: bool, newline: bool
) -> None:
    # what a block can hold: lines without their newline (None: an overlong one)
    parts = [None if line is None else line.split(b"\n")[0] for line in lines]
    if digits_checked:
        parts = [p for p in parts if p is None or not has_long_digit_run(p)]
    for _ in range(2):  # the second time, the first one's minutes are cached
        alone = [None if p is None else parse_line_part(p, digits_checked, newline)
                 for p in parts]
        items, times, skipped, newer = parse_line_block(parts, digits_checked, newline)
        events = [block_event(item, ts) for item, ts in zip(items, times, strict=True)]
        assert same(events, [e for e in alone if e is not None])
        assert same(times, [e.timestamp for e in alone if e is not None])
        assert skipped == sum(1 for p, e in zip(parts, alone, strict=True)
                              if p is None or (e is None and p and not p.isspace()))
        assert not newer


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
    assume(not data.startswith(b"\x1f\x8b"))  # gzip's magic: read as gzip, another reader
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


# ------------------------------------------------------- newest time (--since)

MAR1 = 1772323200 * 10**9  # 2026-03-01T00:00:00Z
MS = 10**6


def iso(ns: int, fraction: int = 3) -> str:
    """`ns` as a canonical UTC time with `fraction` digits (0: none)."""
    text = format_timestamp(ns)  # ...SS.nnnnnnnnnZ
    return text[:19] + ("." + text[20 : 20 + fraction] if fraction else "") + "Z"


def ordinary(ns: int, fraction: int = 3, kind: str = "llm_call", shape: str = "iso") -> bytes:
    return json.dumps({"timestamp": shaped(ns, fraction, shape), "type": kind,
                       "session_id": "s", "node": "n", "latency_ms": 12}).encode() + b"\n"


SHAPES = ["iso", "offset", "space", "epoch s", "epoch ms", "epoch ns", "epoch text",
          "epoch float"]


def shaped(ns: int, fraction: int, shape: str) -> object:
    """A timestamp value for `ns`, canonical ("iso") or in another shape the parser reads."""
    if shape == "offset":
        return iso(ns + 7200 * 10**9, fraction)[:-1] + "+02:00"
    if shape == "space":
        return iso(ns, fraction).replace("T", " ")
    if shape == "epoch s":
        return ns // 10**9
    if shape == "epoch ms":
        return ns // MS
    if shape == "epoch ns":
        return ns
    if shape == "epoch text":
        return str(ns // MS)
    if shape == "epoch float":
        return ns / 10**9
    return iso(ns, fraction)


def tricky(ns: int, low: int) -> list[bytes]:
    """Lines whose real time (if any) is `ns` though their text may say `low`, or nothing."""
    t, lo = iso(ns), iso(low)
    return [
        f'{{"timestamp": "{t}", "type": "error", "message": "cut'.encode(),  # not JSON
        f'{{"timestamp": "{t}", "no_type": 1}}'.encode(),  # not an event
        f'{{"timestamp": "{t}", "type": "error"}} trailing'.encode(),  # an event all the same
        f'{{"timestamp": "{lo}", "event": {{"type": "error", "timestamp": "{t}"}}}}'.encode(),
        f'{{"timestamp": "{lo}", "type": "error", "timestamp": "{t}"}}'.encode(),  # last wins
        f'{{"timestamp": "{lo}", "type": "error", "\\u0074imestamp": "{t}"}}'.encode(),
        f'{{"timestamp": "{t[:-1]}+00:00", "type": "error"}}'.encode(),
        f'{{"timestamp": "{t}", "type": "error", "session_id": 5}}'.encode(),
        f'{{"type": "error", "ts": "{t}"}}'.encode(),
        # a timestamp that does not parse leaves the event its "ts" field
        f'{{"timestamp": "1969-12-31T23:59:59.999Z", "type": "error", "ts": "{t}"}}'.encode(),
        f'{{"timestamp": "9999-12-31T23:59:59.5Z", "type": "error", "ts": "{t}"}}'.encode(),
        f'{{"timestamp": "2026-02-30T25:00:00.000Z", "type": "error", "ts": "{t}"}}'.encode(),
        f'{{"timestamp": {ns // MS}, "type": "error"}}'.encode(),  # epoch milliseconds
        f'  {{ "timestamp" : "{t}", "type": "error"}}\r'.encode(),
        # not JSON as a whole: the first '{"' starts the object read, here the inner one
        f'{{ "timestamp": "{lo}", "x": {{"type": "error", "ts": "{t}"}}}} x'.encode(),
        f'{{"timestamp": "{t}", "type": "error", "message": "{"x" * MAX_LINE_BYTES}"}}'.encode(),
        f'{{"timestamp": "{t[:19]}.{t[20:23]}0000001Z", "type": "error"}}'.encode(),
        f'{{"timestamp": "{t[:19]}\\u002e{t[20:]}", "type": "error"}}'.encode(),  # "."
        f'{{"timestamp": "\uff12\uff10{t[2:]}", "type": "error"}}'.encode(),  # "２０"
        b"WARN promtail: dropped 12 lines",
        b"   ",
        b"",
    ]


# Times later than 1 March's first 200 ms whose text sorts before it: 30 and 29 February
# 2026 are 2 and 1 March, a leap second is the next day's first second, and an offset
# west of UTC is later than it reads; then other shapes and times out of range.
ODD_TIMES = [
    b'{"timestamp": "2026-02-30T12:00:00.000Z", "type": "error"}',
    b'{"timestamp": "2026-02-29T12:00:00.000Z", "type": "error"}',
    b'{"timestamp": "2026-02-28T23:59:60.999Z", "type": "error"}',
    b'{"timestamp": "2026-02-28T23:00:00.000-05:00", "type": "error"}',
    b'{"timestamp": "2026-02-28T23:59:59.999-00:30", "type": "error"}',
    b'{"timestamp": "2026-03-01t00:00:00.999Z", "type": "error"}',
    b'{"timestamp": "9999-12-31T23:59:59Z", "type": "error"}',
    b'{"timestamp": "9999-12-31T23:59:59.5Z", "type": "error"}',
    b'{"timestamp": "1969-12-31T23:59:59.999Z", "type": "error"}',
]


@st.composite
def time_blocks(draw: st.DrawFn) -> list[bytes]:
    """Many ordinary lines up to 1 March, and a few tricky or odd ones."""
    # at least 64 lines: fewer are parsed line by line, without the scan
    offsets = draw(st.lists(st.integers(-86400 * 1000, 999), min_size=64, max_size=300))
    shape = draw(st.sampled_from(["iso"] * len(SHAPES) + SHAPES))  # one for most lines
    lines = [ordinary(MAR1 + ms * MS, draw(st.sampled_from([0, 1, 3, 3, 6, 9])),
                      shape=draw(st.sampled_from([shape] * 20 + SHAPES)))
             for ms in offsets]
    high = MAR1 + (max(offsets) + draw(st.integers(-1, 86400 * 1000))) * MS
    for _ in range(draw(st.integers(0, 4))):
        extra = draw(st.sampled_from(tricky(high, MAR1 - 86400 * 10**9) + ODD_TIMES))
        lines.insert(draw(st.integers(0, len(lines))), extra + b"\n")
    return lines


def newest_by_parsing(lines: list[bytes]) -> int | None:
    times = [e.timestamp for e in map(parse_event_line, lines)
             if e is not None and e.timestamp is not None]
    return max(times, default=None)


@settings(max_examples=250, deadline=None)
@given(time_blocks())
def test_newest_in_a_block_is_the_newest_event_time(lines: list[bytes]) -> None:
    assert _newest_in_block(b"\n" + b"".join(lines)) == newest_by_parsing(lines)


ONE_ODD_LINE = [*tricky(MAR1 + 10**12, MAR1), *ODD_TIMES]


@pytest.mark.parametrize("shape", ["iso", "epoch ms", "offset"])
@pytest.mark.parametrize("odd", ONE_ODD_LINE)
def test_newest_time_with_one_tricky_line(odd: bytes, shape: str) -> None:
    # 200 ordinary lines in 1 March's first 200 ms (a block the scan reads), then one
    # line of each tricky kind, placed first, in the middle and last.
    lines = [ordinary(MAR1 + i * MS, shape=shape) for i in range(200)]
    for at in (0, 100, 200):
        changed = [*lines[:at], odd + b"\n", *lines[at:]]
        assert _newest_in_block(b"\n" + b"".join(changed)) == newest_by_parsing(changed)


def write_lines(path: Path, lines: list[bytes], *, gz: bool = False, bom: bool = False) -> str:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def newest_by_reading(path: str) -> int | None:
    times = [e.timestamp for e in open_source(path).iter_events() if e.timestamp is not None]
    return max(times, default=None)


@pytest.mark.parametrize(("gz", "bom"), [(False, False), (True, False), (False, True)])
def test_newest_time_of_a_file_of_many_blocks(tmp_path: Path, gz: bool, bom: bool) -> None:
    # ~1.5 MB: many blocks; tricky lines (the newest among them) near block edges, an
    # overlong line, blank lines, and a last line without its newline.
    rng = random.Random(7)
    lines = [ordinary(MAR1 - rng.randrange(86400 * 10**9)) for _ in range(10_000)]
    for i, extra in enumerate(ONE_ODD_LINE):
        lines.insert(rng.randrange(len(lines)), extra + b"\n")
        lines.insert(437 * (i + 1), extra + b"\n")
    lines[-1] = lines[-1].rstrip(b"\n")
    path = write_lines(tmp_path / "e.jsonl", lines, gz=gz, bom=bom)
    newest = FileSource(path).newest_timestamp()
    assert newest == newest_by_reading(path)
    assert newest is not None and newest > MAR1


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.97])
@pytest.mark.parametrize("bom", [False, True])
def test_newest_time_of_a_truncated_gzip(tmp_path: Path, cut: float, bom: bool) -> None:
    # The reading pass yields what comes before the break; the first pass must see the
    # same lines, including those of the block it was reading when the file broke off.
    lines = [ordinary(MAR1 + i * 10**9) for i in range(20_000)]
    data = gzip.compress((b"\xef\xbb\xbf" if bom else b"") + b"".join(lines))
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    newest = FileSource(str(path)).newest_timestamp()
    assert newest is not None and newest == newest_by_reading(str(path))
    assert newest < MAR1 + 19_999 * 10**9


def test_newest_time_when_no_line_ends(tmp_path: Path) -> None:
    # One line longer than MAX_LINE_BYTES with no newline at all: no event, no time.
    path = tmp_path / "e.jsonl"
    path.write_bytes(ordinary(MAR1).rstrip() * (MAX_LINE_BYTES // 80))
    assert FileSource(str(path)).newest_timestamp() is None
    assert newest_by_reading(str(path)) is None


def test_newest_time_of_stdin(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "e.jsonl", [ordinary(MAR1 + i * 10**9) for i in range(3000)])
    code = ("from mgt.logs.sources import open_source\n"
            "print(open_source('-').newest_timestamp())\n")
    with open(path, "rb") as stdin:
        out = subprocess.run([sys.executable, "-c", code], stdin=stdin, capture_output=True,
                             text=True, check=True).stdout
    assert int(out) == MAR1 + 2999 * 10**9
