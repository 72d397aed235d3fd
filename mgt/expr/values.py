"""Runtime values (with `Duration`s, tuples, paths) → plain JSON values, durations as their text."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mgt.expr.durations import Duration

__all__ = ["json_default", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A copy of `value` that `json.dumps` accepts: Duration → "24h", tuple → list, path → str."""
    if isinstance(value, Duration):
        return value.text
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def json_default(value: Any) -> Any:
    """For `json.dumps(..., default=json_default)`."""
    if isinstance(value, Duration):
        return value.text
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
