"""Duration text (`500ms`, `30s`, `24h`, `1h30m`) → `Duration` values that compare and add.

A `Duration` keeps the text it was written as: `str()` gives that text back and
`to_jsonable` serialises it as the text, so run files and prompts show `24h`
rather than `86400.0`. Arithmetic and comparisons use the seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["UNITS", "Duration", "format_seconds", "parse_duration"]

#: Unit suffix → seconds, in the order the docs list them.
UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


@dataclass(frozen=True, slots=True, order=False)
class Duration:
    """A length of time: `seconds` for arithmetic, `text` as written (`24h`)."""

    seconds: float
    text: str

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Duration):
            return self.seconds == other.seconds
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.seconds)

    def __lt__(self, other: Duration) -> bool:
        return self.seconds < _seconds(other)

    def __le__(self, other: Duration) -> bool:
        return self.seconds <= _seconds(other)

    def __gt__(self, other: Duration) -> bool:
        return self.seconds > _seconds(other)

    def __ge__(self, other: Duration) -> bool:
        return self.seconds >= _seconds(other)

    def __add__(self, other: Duration) -> Duration:
        return Duration.of(self.seconds + _seconds(other))

    def __sub__(self, other: Duration) -> Duration:
        return Duration.of(self.seconds - _seconds(other))

    def scaled(self, factor: float) -> Duration:
        return Duration.of(self.seconds * factor)

    @classmethod
    def of(cls, seconds: float) -> Duration:
        """A duration of `seconds`, its text in the largest units (`1h30m`).

        Raises ValueError when `seconds` is not a finite number.
        """
        value = float(seconds)
        if not math.isfinite(value):
            raise ValueError("duration out of range")
        return cls(value, format_seconds(value))


def _seconds(other: Any) -> float:
    if isinstance(other, Duration):
        return other.seconds
    raise TypeError(f"expected a duration, got {type(other).__name__}")


def format_seconds(seconds: float) -> str:
    """Seconds → exact duration text in the largest units (`86400` → `1d`, `5400` → `1h30m`)."""
    if seconds < 0:
        return "-" + format_seconds(-seconds)
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6 * max(1.0, seconds):
        return f"{seconds:g}s"
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(UNITS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_duration(text: str) -> Duration:
    """`"24h"` → Duration(86400, "24h"). Accepts compound text (`1h30m`) and surrounding blanks.

    Raises ValueError with a message fit for a user when the text is not a duration.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 30s, 5m or 24h, got {text!r}")
    stripped = text.strip()
    pos = 0
    total = 0.0
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(stripped) or not math.isfinite(total):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit "
            "(ms, s, m, h, d), such as 500ms, 30s, 5m, 24h or 7d"
        )
    return Duration(total, stripped)
