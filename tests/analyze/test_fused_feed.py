"""The analyzer's line loop (`Aggregates.feed_parts`) agrees with feeding parsed events.

A file source hands the analyzer blocks of raw lines; `feed_parts` decodes the
ordinary ones itself and feeds their dicts straight to the aggregates (no
event object), counting repeated quiet transitions and applying them at the end
of the block. Whatever the lines hold, the aggregates and the report must be
those of feeding, one by one, the events `parse_line_block` gives (itself the
events of `parse_line_part`, line by line), with the same skipped count and the
same stop at an event newer than the tail's guess. The reference feeds them
through `OracleAggregates` (`tests/analyze/oracle.py`): the handlers of before,
one call per event, with none of the loop's shortcuts.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mgt.analyze.aggregate import MAX_KEYS, Aggregates, _decode_line, _is_utf8
from mgt.analyze.analyzer import analyze_source
from mgt.analyze.report import build_report
from mgt.analyze.rules import find_patterns
from mgt.analyze.thresholds import Thresholds
from mgt.logs.events import (
    MAX_TEXT,
    block_event,
    has_long_digit_run,
    parse_event,
    parse_line_block,
    parse_line_part,
)
from tests.analyze.oracle import OracleAggregates
from tests.analyze.test_shapes import clean, reference
from tests.logs.test_fast_paths import event_lines

T = "2026-01-15T10:30:59.120Z"
LOW_BAR = Thresholds(min_occurrences=1)  # every pattern shows, with its samples


def line(**fields: Any) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


# Lines the loop must hand over, or read exactly as the general path does.
CRAFTED: list[bytes] = [
    # transitions: missing, wrong-typed, unhashable, long, equal-but-not-identical names
    line(timestamp=T, type="graph_transition", **{"from": "a", "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": "a", "to": "dmError"}),
    line(timestamp=T, type="graph_transition", **{"from": "a", "to": "FAILED"}),
    line(timestamp=T, type="graph_transition", **{"from": "a"}),
    line(timestamp=T, type="graph_transition", to="b"),
    line(timestamp=T, type="graph_transition", **{"from": "", "to": ""}),
    line(timestamp=T, type="graph_transition", **{"from": 1, "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": 1.0, "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": True, "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": "a", "to": ["b"]}),
    line(timestamp=T, type="graph_transition", **{"from": {"x": 1}, "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": "a" * 300, "to": "b"}),
    line(timestamp=T, type="graph_transition", **{"from": "a" * 199, "to": "e" * 250}),
    line(timestamp=T, type="graph_transition", **{"from": "ü→", "to": "Ｅrror"}),
    line(timestamp=T, type="graph_transition", **{"from": "a", "to": "b", "session_id": 5}),
    b'{"timestamp": "' + T.encode() + b'", "type": "graph_transition", "from": "a", '
    b'"to": "b", "from": "c"}',
    # llm calls: odd numbers and names
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2500, prompt_tokens=5000,
         completion_tokens=10),
    line(timestamp=T, type="llm_call", node="n", model="m2", latency_ms=2500.5,
         prompt_tokens=4000.0, completion_tokens=1),
    line(timestamp=T, type="llm_call", node="n", latency_ms=2**70, prompt_tokens=2**64,
         completion_tokens=0),
    line(timestamp=T, type="llm_call", node="n", latency_ms=-1, prompt_tokens="5",
         completion_tokens=True),
    line(timestamp=T, type="llm_call", node="n", latency_ms=1e300, prompt_tokens=None),
    line(timestamp=T, type="llm_call", model="only-model", latency_ms=9000),
    line(timestamp=T, type="llm_call", latency_ms=9000, prompt_tokens=9000, completion_tokens=1),
    line(timestamp=T, type="llm_call", node=["n"], model={"m": 1}, latency_ms=3000),
    line(timestamp=T, type="llm_call", node="n" * 300, latency_ms=3000),
    b'{"timestamp": "' + T.encode() + b'", "type": "llm_call", "node": "n", "latency_ms": NaN}',
    b'{"timestamp": "' + T.encode() + b'", "type": "llm_call", "node": "n", '
    b'"latency_ms": 1e400}',
    # errors
    line(timestamp=T, type="error", message="boom 42", context={"node": "x"}),
    line(timestamp=T, type="error", message="   "),
    line(timestamp=T, type="error", message=["boom"]),
    line(timestamp=T, type="error", message="ünïcode 7 \u2028", context="ctx"),
    # times: not canonical, out of range, out of order, elsewhere
    line(timestamp="2026-02-31T10:30:59.120Z", type="graph_transition", **{"from": "a", "to": "b"}),
    line(timestamp="2026-01-15T10:30:60.120Z", type="graph_transition", **{"from": "a", "to": "b"}),
    line(timestamp="2026-01-15T10:30:59.120+00:00", type="error", message="zone 1"),
    line(timestamp="2026-01-15T10:30:59.12Z", type="error", message="short 1"),
    line(timestamp="5138-11-16T09:46:40.000Z", type="error", message="far 1"),
    line(timestamp="1969-12-31T23:59:59.999Z", type="error", message="early 1"),
    line(timestamp="2026-01-16T00:00:00.000Z", type="llm_call", node="late", latency_ms=3000),
    line(timestamp="2026-01-14T00:00:00.000Z", type="llm_call", node="early", latency_ms=3000),
    line(timestamp=1768473059120, type="graph_transition", **{"from": "a", "to": "error"}),
    line(ts=T, type="graph_transition", **{"from": "a", "to": "b"}),
    line(type="graph_transition", **{"from": "a", "to": "b"}),
    line(timestamp=T, event={"type": "error", "message": "inner 1"}),
    # types and sessions
    line(timestamp=T, type="heartbeat"),
    line(timestamp=T, type="LLMCallEvent", node="n", latency_ms=3000),
    line(timestamp=T, event_type="error", message="event_type 1"),
    line(timestamp=T, type=7),
    line(timestamp=T, type="error", message="s", session_id=""),
    line(timestamp=T, type="error", message="s", session_id=["x"]),
    # not objects, not JSON
    b"[1, 2]", b"1", b'"x"', b"null", b"", b"   ", b"{", b"}{", b"\xff\xfe", b"\xef\xbb\xbf{}",
    b'{"type": "error", "message": "lone \\ud800"}',
    b'2026-01-15T10:30:59.120Z {app="x"} {"type": "error", "message": "prefixed 1"}',
    b'{"timestamp": "' + T.encode() + b'", "type": "error", "message": "' + b"x" * 9000 + b'"}',
    b'{"timestamp": "' + T.encode() + b'", "type": "graph_transition", "from": "a", "to": "b", '
    b'"deep": ' + b"[" * 200 + b"]" * 200 + b"}",
    # a known (node, model) with figures that are not plain ints: fed in order with the rest
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2500.0,
         prompt_tokens=5000.0, completion_tokens=10.0),
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=True, prompt_tokens=10,
         completion_tokens=1),
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2**70, prompt_tokens=10,
         completion_tokens=1),
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2500,
         prompt_tokens=2**53 + 1, completion_tokens=1),
]



def raw(body: str, kind: str = "llm_call") -> bytes:
    """An ASCII line of type `kind` at T with `body` (raw JSON members) after them."""
    return ('{"timestamp": "' + T + '", "type": "' + kind + '", ' + body + "}").encode("latin-1")


_CALL = '"node": "n", "model": "m", '
# Lines msgspec decodes (ASCII) into the loop's `_Line`, or refuses, where `json` might read
# them otherwise: duplicate keys of other types, containers or bools where a str or number
# is expected, numbers at and beyond the edges of floats and 64-bit ints, escaped keys,
# what msgspec accepts in a field it skips (1e400, invalid UTF-8) and what it refuses there.
MSGSPEC_LINES: list[bytes] = [
    raw(_CALL + '"latency_ms": 5, "latency_ms": "x", "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": "x", "latency_ms": 5, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 2500, "latency_ms": 3500, "prompt_tokens": 1, '
        '"completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 3500, "latency_ms": null, "prompt_tokens": 1'),
    raw('"node": ["n"], "node": "n", "model": "m", "latency_ms": 3000, "prompt_tokens": 9000,'
        ' "completion_tokens": 1'),
    raw('"node": "n", "model": "m", "model": {"m": 1}, "latency_ms": 3000'),
    raw('"from": "a", "to": "b", "to": "error"', "graph_transition"),
    raw('"from": "a", "to": "error", "to": ["b"]', "graph_transition"),
    raw('"from": {"x": 1}, "from": "a", "to": "dmError"', "graph_transition"),
    raw('"to": {"a": 1}, "from": "a"', "graph_transition"),
    raw('"type": "error", "message": "dup type 1", "from": "a", "to": "error"',
        "graph_transition"),
    raw('"type": "graph_transition", "from": "a", "to": "FAILED"', "error"),
    raw('"type": ["llm_call"], "node": "n"'),
    raw(f'"timestamp": 5, "timestamp": "{T}", "node": "n", "latency_ms": 3000'),
    raw(f'"timestamp": "{T}", "timestamp": ["x"], "node": "n", "latency_ms": 3000'),
    raw(_CALL + '"latency_ms": 1e400, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": -1e400, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 1.7976931348623157e309, "prompt_tokens": 1'),
    raw(_CALL + '"latency_ms": 4.9e-325, "prompt_tokens": 5e-324, "completion_tokens": 0.1'),
    raw(_CALL + '"latency_ms": -0, "prompt_tokens": -0.0, "completion_tokens": 0'),
    raw(_CALL + '"latency_ms": 2500.0, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 25E2, "prompt_tokens": 3000e0, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 2500, "prompt_tokens": 1.0, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": true, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 3000, "prompt_tokens": false, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 3000, "prompt_tokens": 9000, "completion_tokens": true'),
    raw(_CALL + '"latency_ms": "3000", "prompt_tokens": 9000, "completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 99999999999999999999999, "prompt_tokens": 1, '
        '"completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 3000, "prompt_tokens": 18446744073709551616, '
        '"completion_tokens": 1'),
    raw(_CALL + '"latency_ms": 9223372036854775807, "prompt_tokens": -9223372036854775808, '
        '"completion_tokens": 18446744073709551615'),
    raw(_CALL + '"latency_ms": 3000, "prompt_tokens": 9007199254740993, "completion_tokens": 1'),
    raw(_CALL + r'"l\u0061tency_ms": 4000, "prompt_tokens": 1, "completion_tokens": 1'),
    raw(r'"fr\u006fm": "a", "\u0074o": "dm\u0045rror"', "graph_transition"),
    raw(r'"from": "a\u0000", "to": "\u00e9rror"', "graph_transition"),
    raw(r'"from": "a", "to": "b\ud800"', "graph_transition"),
    raw(_CALL + r'"latency_ms": 3000, "note": "\udc00"'),
    raw(_CALL + '"latency_ms": 3000, "note": 1e400'),
    raw(_CALL + '"latency_ms": 3000, "note": NaN'),
    raw(_CALL + '"latency_ms": 3000, "note": [Infinity]'),
    raw(_CALL + '"latency_ms": 3000, "note": 99999999999999999999999'),
    raw(_CALL + r'"latency_ms": 3000, "note": "\x"'),
    raw(_CALL + r'"latency_ms": 3000, "note": "a\tb\/c"'),
    raw(_CALL + '"latency_ms": 3000, "note": "a\tb"'),  # a raw tab
    raw(_CALL + '"latency_ms": 3000, "note": [1, 2,]'),
    raw(_CALL + '"latency_ms": 3000, "note": 01'),
    raw('"message": "boom 1e400 9", "note": 1e400', "error"),
    raw('"message": "boom big 9", "note": 99999999999999999999999', "error"),
    raw('"message": "boom dup 9", "message": "boom dup 10"', "error"),
    raw(r'"from": "a", "to": "error", "note": "\u00ff"', "graph_transition"),
    raw('"heartbeat": true', "heartbeat"),
    raw('"node": "n"', "user_action"),
    # bytes that are not UTF-8: in a name msgspec reads, and in fields it skips unchecked
    raw(_CALL + '"latency_ms": 3000').replace(b'"m"', b'"m\xff"'),
    raw(_CALL + '"latency_ms": 3000, "note": "\xff"'),
    raw(_CALL + '"latency_ms": 3000, "note": "\xed\xa0\x80"'),
    raw('"from": "a", "to": "error", "note": "\xc0\x80"', "graph_transition"),
    # ... where `json` refuses the line and the general path reads the first '{"' in it
    raw('"from": "a", "to": "error", "note": "\xff"', "graph_transition").replace(b"{", b"{ "),
    raw('"from": "a", "to": "error", "x": {"y": 1}, "note": "\xff"',
        "graph_transition").replace(b'{"t', b'{ "t'),
    b" \t" + raw(_CALL + '"latency_ms": 3000') + b" \r",
    raw(_CALL + '"latency_ms": 3000') + b" x",
    raw(_CALL + '"latency_ms": 3000') + b"{}",
    b"[" + raw(_CALL + '"latency_ms": 3000') + b"]",
    raw(_CALL + '"latency_ms": 3000, "note": ' + "[" * 300 + "]" * 300),
    # valid UTF-8, which msgspec reads too: names, keys and skipped fields beyond ASCII
    line(timestamp=T, type="graph_transition", **{"from": "café", "to": "dmÉrror"}),
    line(timestamp=T, type="graph_transition", **{"from": "cafe\u0301", "to": "caf\u00e9"}),
    line(timestamp=T, type="llm_call", node="nœud 🚀", model="m", latency_ms=3000,
         prompt_tokens=9000, completion_tokens=1),
    line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=3000,
         nöte="\u2028\u2029", prompt_tokens=1, completion_tokens=1),
    line(timestamp=T, type="llm_call", node="n", model="m",
         **{"latency_ms": 9, "latency_m\u015b": 3000}),
    line(timestamp=T, type="llm_cаll", node="n", latency_ms=3000),  # a Cyrillic "а"
    line(timestamp="2026-01-15T10:30:59.120Ｚ", type="error", message="fullwidth Z 1"),
    "\ufeff".encode() + line(timestamp=T, type="graph_transition", **{"from": "a", "to": "error"}),
]
CRAFTED += MSGSPEC_LINES


def widened(raw_line: bytes, pad: int = 300) -> bytes:
    """The line with a member of `pad` characters first: past `_DEEP_BYTES`, as real lines
    (trace ids, attributes) often are."""
    return raw_line.replace(b"{", b'{"pad": "' + b"p" * pad + b'", ', 1)


# Lines longer than _DEEP_BYTES: the loop reads those that are not deep (at most
# _DEEP_OPENERS of "{" and "[") and fit MAX_TEXT as parse_line_part does, with orjson.
WIDE_LINES: list[bytes] = [widened(raw_line) for raw_line in CRAFTED if raw_line[:1] == b"{"]
WIDE_LINES += [
    widened(raw(_CALL + '"latency_ms": 3000, "note": ' + "[" * depth + "]" * depth), 250)
    # The object's own "{" counts: 127 is the last read. At 1010 levels orjson reads the
    # line where `json` (and msgspec) give up, at 2000 all three do.
    for depth in (126, 127, 128, 129, 1010, 2000)
]
# Lines of up to 512 bytes are not searched for "{" and "[": many of them, nested or in
# strings, in lines just inside and past that size.
WIDE_LINES += [raw(_CALL + '"latency_ms": 3000, "note": ' + "[" * 180 + "]" * 180),
               raw(_CALL + '"latency_ms": 3000, "note": "' + "{[" * 100 + '"'),
               raw(_CALL + '"latency_ms": 3000, "note": ' + "[" * 220 + "]" * 220)]
assert [len(wide) for wide in WIDE_LINES[-3:]] == [478, 320, 558]
# Integers longer than `json` reads (4,300 digits unless set otherwise): in a field the
# loop skips, a figure, a float, an exponent.
WIDE_LINES += [raw(_CALL + '"latency_ms": 3000, "note": ' + "9" * 5000),
               raw(_CALL + '"latency_ms": 3000, "note": ' + "9" * 700),  # past 640, the least
               raw(_CALL + '"latency_ms": ' + "9" * 5000),
               raw(_CALL + '"latency_ms": 3000, "note": 1' + "0" * 5000 + ".5"),
               raw(_CALL + '"latency_ms": 3000, "note": 1e' + "9" * 5000)]
# Sizes around MAX_TEXT (with the newline or not): past it, parse_event bounds the line's
# object to MAX_ITEMS keys, so that the "to" of a transition with 300 keys before it is lost.
_MANY_KEYS = raw('"from": "a", ' + ", ".join(f'"k{i}": 0' for i in range(300)) + ', "to": "error"',
                 "graph_transition")
WIDE_LINES += [widened(_MANY_KEYS, MAX_TEXT - len(widened(_MANY_KEYS, 0)) + size)
               for size in (-2, -1, 0, 1)]
CRAFTED += WIDE_LINES


def report_of(agg: Aggregates) -> dict[str, Any]:
    report = build_report(find_patterns(agg, LOW_BAR), agg, LOW_BAR,
                          rules=("slow_llm", "failed_transition", "repeated_error",
                                 "token_bloat", "dead_path"))
    report["metadata"].pop("generated_at")
    return report


def state(agg: Aggregates) -> dict[str, Any]:
    return {
        "events": agg.events, "by_type": sorted(agg.by_type.items()), "ignored": agg.ignored,
        "first": agg.first_ns, "last": agg.last_ns, "overflow": agg.overflow,
        "entered": agg.entered, "leaving": list(agg.leaving.items()),
        "failures": [(k, p.count, p.samples.items()) for k, p in agg.failures.items()],
        "llm": [(k, s.calls, s.models, s.latency.count, s.latency.min, s.latency.max,
                 s.latency.quantile(0.95), s.slow.min, s.slow.max, s.latency_sum, s.prompt_sum,
                 s.completion_sum, s.slow_sum, s.slow.count, s.bloat, s.bloat_prompt_max,
                 s.slow_samples.items(), s.bloat_samples.items()) for k, s in agg.llm.items()],
        "errors": [(k, e.count, e.first_ns, e.last_ns, e.contexts, e.samples.items())
                   for k, e in agg.errors.items()],
        "report": report_of(agg),
    }


def check_block(parts: list[bytes | None], digits_checked: bool, newline: bool,
                cutoff: int | None, guess: int | None, nodes: list[str]) -> None:
    fast = Aggregates(2000, nodes)
    slow = OracleAggregates(2000, nodes)
    for _ in range(2):  # the second time, the quiet transitions are remembered
        got = fast.feed_parts(parts, digits_checked, newline, cutoff, guess)
        items, times, skipped, newer = parse_line_block(parts, digits_checked, newline, cutoff,
                                                        guess)
        slow.feed_all([block_event(item, ts) for item, ts in zip(items, times, strict=True)])
        assert got == (skipped, newer)
        assert repr(state(fast)) == repr(state(slow))


@pytest.mark.parametrize("digits_checked", [False, True])
def test_the_parsed_block_is_the_events_of_its_lines_alone(digits_checked: bool) -> None:
    parts: list[bytes | None] = [*CRAFTED, None]
    if digits_checked:  # the reader hands over no line with a run of 19 digits
        parts = [p for p in parts if p is None or not has_long_digit_run(p)]
    items, times, skipped, newer = parse_line_block(parts, digits_checked, True)
    alone = [parse_line_part(p, digits_checked, True) for p in parts if p is not None]
    events = [e for e in alone if e is not None]
    assert repr([block_event(i, t) for i, t in zip(items, times, strict=True)]) == repr(events)
    assert skipped == 1 + sum(1 for p, e in zip(parts, alone, strict=False)
                              if e is None and p and not p.isspace())
    assert not newer


@pytest.mark.parametrize("seed", range(6))
def test_crafted_lines_in_any_order_feed_as_their_events(seed: int) -> None:
    rng = random.Random(seed)
    parts: list[bytes | None] = [rng.choice(CRAFTED) for _ in range(300)]
    if seed % 2 == 0:  # digits checked: the reader hands over no line with a run of 19 digits
        parts = [p for p in parts if p is None or not has_long_digit_run(p)]
    parts.insert(0, None)  # a first line longer than MAX_LINE_BYTES
    cutoff = rng.choice([None, 1768473059_120_000_000, 1768473059_120_000_001])
    guess = rng.choice([None, 1768473059_120_000_000, 1768521600_000_000_000])
    check_block(parts, seed % 2 == 0, seed % 3 != 0, cutoff if guess is None else
                guess - 10**9, guess, ["n", "b", "dead"])


@settings(max_examples=300, deadline=None)
@given(st.lists(event_lines() | st.sampled_from(CRAFTED) | st.none(), max_size=12),
       st.booleans(), st.booleans(),
       st.sampled_from([None, 0, 1768473059_120_000_000, 1768473059_120_000_001]),
       st.sampled_from([None, 1768473059_120_000_000, 1768521600_000_000_000]))
@example([CRAFTED[0], CRAFTED[6], CRAFTED[7], CRAFTED[8], CRAFTED[6]], True, True, None, None)
def test_any_block_feeds_as_its_events(
    lines: list[bytes | None], digits_checked: bool, newline: bool,
    cutoff: int | None, guess: int | None,
) -> None:
    parts = [None if raw is None else raw.split(b"\n")[0] for raw in lines]
    if digits_checked:
        parts = [p for p in parts if p is None or not has_long_digit_run(p)]
    if guess is not None and cutoff is None:
        cutoff = guess - 3600 * 10**9  # a guess comes with a cutoff
    check_block(parts, digits_checked, newline, cutoff, guess, ["b", "n"])


def test_sources_beyond_the_key_limit_overflow_the_same_way() -> None:
    # MAX_KEYS sources fill `leaving`; later sources overflow, event after event, also when
    # their (from, to) is counted through the remembered quiet transitions.
    parts: list[bytes | None] = [
        line(timestamp=T, type="graph_transition", **{"from": f"s{i}", "to": "b"})
        for i in range(MAX_KEYS + 50)
    ]
    parts += parts[-100:] * 3
    parts += [line(timestamp=T, type="graph_transition", **{"from": f"s{i}", "to": "error"})
              for i in range(MAX_KEYS + 5)]
    check_block(parts, True, True, None, None, [])
    agg = Aggregates(2000)
    agg.feed_parts(parts, True, True)
    assert agg.overflow["transition_sources"] == 50 * 4 + 5


def test_a_file_of_crafted_lines_gives_the_reference_report(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = [rng.choice(CRAFTED) for _ in range(4000)]  # several blocks
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for since in ("all", "2h"):
        report = clean(analyze_source(str(path), since=since).report)
        assert report == reference(lines, since, str(path))


def test_the_reference_reads_crafted_lines_as_parse_event_does() -> None:
    # the block parse's per-line reference is parse_event itself
    for raw in CRAFTED:
        assert repr(parse_line_part(raw, False, True)) == repr(parse_event(raw + b"\n"))


@pytest.mark.parametrize("seed", range(3))
def test_events_fed_as_events_feed_as_the_oracle_does(seed: int) -> None:
    rng = random.Random(seed)
    events = [e for e in (parse_event(rng.choice(CRAFTED)) for _ in range(700)) if e]
    fast, slow = Aggregates(2000, ["n", "b"]), OracleAggregates(2000, ["n", "b"])
    fast.feed_all(events)
    slow.feed_all(events)
    assert repr(state(fast)) == repr(state(slow))


def test_only_short_names_are_remembered_as_quiet_transitions() -> None:
    agg = Aggregates(2000)
    agg.feed_parts([CRAFTED[11], CRAFTED[12], CRAFTED[0], CRAFTED[9]], True, True)
    assert list(agg._quiet) == [("a", "b")]  # long names and a list are looked at each time


def test_calls_held_over_blocks_count_at_flush_as_fed_one_by_one() -> None:
    rng = random.Random(9)
    calls = [line(timestamp=T, type="llm_call", node=rng.choice(["n", "m"]),
                  model=rng.choice(["a", "b"]), latency_ms=rng.randint(0, 9000),
                  prompt_tokens=rng.randint(0, 9000), completion_tokens=rng.randint(0, 900))
             for _ in range(3000)]
    odd = [CRAFTED[17], CRAFTED[18], CRAFTED[19], CRAFTED[21], CRAFTED[22]]
    blocks = [[*calls[i:i + 300], rng.choice(odd)] for i in range(0, len(calls), 300)]
    held, oracle = Aggregates(2000, ["n"]), OracleAggregates(2000, ["n"])
    for block in blocks:
        held.feed_line_block(list(block), True, True, None, None)
        items, times, _, _ = parse_line_block(list(block), True, True)
        oracle.feed_all([block_event(i, t) for i, t in zip(items, times, strict=True)])
    assert held._pending > 0  # some calls wait for the flush
    held.flush()
    assert repr(state(held)) == repr(state(oracle))


def test_a_call_fed_one_by_one_comes_after_the_calls_of_its_group_pending_before_it() -> None:
    # The int 2500 waits (its node and model are known); the float 2500.0 after it is fed
    # at once. Fed in order, the minimum is the int seen first.
    parts: list[bytes | None] = [
        line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=3000,
             prompt_tokens=0, completion_tokens=1),
        line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2500,
             prompt_tokens=3, completion_tokens=1),
        line(timestamp=T, type="llm_call", node="n", model="m", latency_ms=2500.0,
             prompt_tokens=0.5, completion_tokens=1),
    ]
    check_block(parts, True, True, None, None, [])
    agg = Aggregates(2000)
    agg.feed_parts(parts, True, True)
    stats = agg.llm[("node", "n")]
    assert repr(stats.latency.min) == "2500"
    assert repr(stats.prompt_sum) == "3.5"


_READ = {"type": "type", "timestamp": "timestamp", "source": "from", "to": "to", "node": "node",
         "model": "model", "latency_ms": "latency_ms", "prompt_tokens": "prompt_tokens",
         "completion_tokens": "completion_tokens"}


def decoded_as_json(raw_line: bytes) -> bool:
    """Whether msgspec's `_Line` of a line holds what `json` reads (or msgspec refuses)."""
    try:
        got = _decode_line(raw_line)
    except (msgspec.DecodeError, RecursionError):
        return True  # the loop reads it as before
    value = json.loads(raw_line)
    return value.__class__ is dict and all(
        repr(getattr(got, attr)) == repr(value.get(key)) for attr, key in _READ.items()
    )


def test_msgspec_reads_the_fields_of_a_utf8_line_as_json_does() -> None:
    # the lines the loop decodes with msgspec: valid UTF-8, no longer than an integer `json`
    # reads (a longer one, msgspec reads and `json` refuses: the loop leaves those alone)
    ascii_lines = [raw_line for raw_line in CRAFTED
                   if _is_utf8(raw_line) and len(raw_line) <= sys.get_int_max_str_digits()]
    assert len(ascii_lines) > 60
    for raw_line in ascii_lines:
        assert decoded_as_json(raw_line), raw_line


def test_msgspec_accepts_bad_utf8_in_a_field_it_skips_so_the_loop_asks_for_ascii() -> None:
    # Why the loop decodes only ASCII lines with msgspec: `json` (and orjson) refuse these.
    for raw_line in MSGSPEC_LINES:
        if not raw_line.isascii() and b'"note"' in raw_line:
            _decode_line(raw_line)
            with pytest.raises(UnicodeDecodeError):
                raw_line.decode("utf-8")


_KEYS = ["type", "timestamp", "from", "to", "node", "model", "latency_ms", "prompt_tokens",
         "completion_tokens", "note", "l\\u0061tency_ms", "\\u0074o"]
_VALUES = st.sampled_from([
    '"llm_call"', '"graph_transition"', '"error"', '"user_action"', f'"{T}"', '"n"', '"m"',
    '"a"', '"error"', '""', '"\\ud800"', '"x\\u0000"', "null", "true", "false", "0", "-0",
    "-0.0", "1.0", "2500", "3000", "9000", "1e400", "-1e400", "4.9e-325", "1e12", "1000000000001",
    "99999999999999999999999", "18446744073709551616", "-9223372036854775809", "[]", '["n"]',
    '{"a": 1}', "NaN", "Infinity", "2.5E3",
]) | st.integers().map(str) | st.floats(allow_nan=False, allow_infinity=False).map(repr)


@st.composite
def ascii_lines_with_duplicates(draw: st.DrawFn) -> bytes:
    """An object of the keys the loop reads (some twice, some escaped), values of any type."""
    kind = draw(st.sampled_from(["llm_call", "graph_transition"]))
    members = [f'"type": "{kind}"', f'"timestamp": "{T}"']
    members += [f'"{draw(st.sampled_from(_KEYS))}": {draw(_VALUES)}'
                for _ in range(draw(st.integers(0, 8)))]
    order = draw(st.permutations(members))
    return ("{" + ", ".join(order) + "}").encode()


@settings(max_examples=400, deadline=None)
@given(st.lists(ascii_lines_with_duplicates(), min_size=1, max_size=12))
def test_lines_with_duplicate_keys_of_any_type_feed_as_their_events(lines: list[bytes]) -> None:
    for raw_line in lines:
        assert decoded_as_json(raw_line), raw_line
    parts: list[bytes | None] = [*lines, *lines]  # the second time, names are known
    check_block(parts, False, True, None, None, ["n", "b"])


@pytest.mark.parametrize("limit", [0, 640])
def test_wide_lines_feed_as_their_events_whatever_integer_limit_json_has(limit: int) -> None:
    # 0: `json` reads integers of any length; 640: the lowest limit Python allows
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(limit)
    try:
        rng = random.Random(limit)
        parts: list[bytes | None] = [rng.choice(WIDE_LINES) for _ in range(200)]
        check_block(parts, False, True, None, None, ["n", "b"])
    finally:
        sys.set_int_max_str_digits(before)
