"""Text → strict JSON values: NaN/Infinity refused, nesting too deep a ValueError.

Python's `json` accepts `NaN` and `Infinity`, which no other JSON reader does
and which mgt would then write into run files that are no longer JSON; and a
deep enough document raises RecursionError. Both the inputs of a run and the
answers of a model go through here.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["NotJSONConstant", "all_finite", "loads", "raw_decode"]


class NotJSONConstant(ValueError):
    """`NaN`, `Infinity` or `-Infinity` in the text; `name` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not a JSON number (use null or a number)")
        self.name = name


def _reject_constant(name: str) -> Any:
    raise NotJSONConstant(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str) -> Any:
    """Parse strict JSON; json.JSONDecodeError / NotJSONConstant / ValueError on bad text."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def raw_decode(text: str, start: int) -> tuple[Any, int]:
    """The strict JSON value starting at `start` and where it ends (json.JSONDecoder.raw_decode).

    RecursionError is left to the caller, which may skip to a nested value instead.
    """
    value, end = _DECODER.raw_decode(text, start)
    return value, end


def all_finite(value: Any) -> bool:
    """Whether every number in a JSON- or TOML-shaped value is finite."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True
