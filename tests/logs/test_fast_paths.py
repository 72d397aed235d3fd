"""The fast paths of reading event files agree with the general ones.

The canonical-timestamp shortcut must give exactly what the sliced parse gives.
"""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mgt.logs.events import (
    _parse_iso_fast,
    _parse_iso_sliced,
    parse_timestamp,
)

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
