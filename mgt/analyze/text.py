"""Untrusted log text → bounded keys, error templates, id slugs and LogQL literals.

Everything that comes out of a log line is data. These helpers bound its size
(so a 10 MB message cannot grow memory or a report) and turn it into the few
shapes the analyzer needs: a grouping key, an error *template* (the message with
its varying numbers and ids masked), a `^[a-z0-9-]+$` slug for pattern ids, and
a quoted LogQL string.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_SAMPLE_STRING",
    "bounded_event",
    "error_template",
    "logql_regex_for_template",
    "logql_string",
    "short_hash",
    "slug",
    "truncate",
]

MAX_KEY_CHARS = 200  # node / model / transition names longer than this are cut
MAX_MESSAGE_CHARS = 2000  # only this much of an error message is templated
MAX_TEMPLATE_CHARS = 500  # templates are cut to this length after masking
MAX_SAMPLE_STRING = 300  # strings inside sample events
MAX_SAMPLE_FIELDS = 20  # fields kept per sample event

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b")
_HEX_PREFIXED = re.compile(r"\b0[xX][0-9a-fA-F]+\b")
# A bare hex id: at least 6 hex characters, at least one digit and one letter
# (so "facade" and "123456" are left to the word / digit rules).
_HEX_ID = re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_DIGITS = re.compile(r"[0-9]+")
_SPACE = re.compile(r"\s+")
_MASKS = re.compile(r"<(?:n|hex|uuid)>")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_REGEX_SPECIAL = re.compile(r"[.^$*+?()\[\]{}|\\]")  # RE2 metacharacters (LogQL uses RE2)

MAX_SLUG_CHARS = 64


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def error_template(message: str) -> str:
    """The message with uuids, hex ids and digit runs masked and whitespace collapsed.

    `Failed to parse X at offset 1234` → `Failed to parse X at offset <n>`.
    """
    text = message[:MAX_MESSAGE_CHARS]
    text = _UUID.sub("<uuid>", text)
    text = _HEX_PREFIXED.sub("<hex>", text)
    text = _HEX_ID.sub("<hex>", text)
    text = _DIGITS.sub("<n>", text)
    text = _SPACE.sub(" ", text).strip()
    return truncate(text, MAX_TEMPLATE_CHARS)


def short_hash(text: str) -> str:
    """Six hex digits that identify `text` (stable across runs and machines)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def slug(text: str, limit: int = MAX_SLUG_CHARS) -> str:
    """A `[a-z0-9-]` slug of `text`, cut at a word boundary to `limit` characters.

    Masks (`<n>`, `<hex>`, `<uuid>`) are dropped. Text with nothing sluggable
    (e.g. only punctuation or non-Latin letters) becomes `x` + a short hash.
    """
    base = _NON_SLUG.sub("-", _MASKS.sub(" ", text).lower()).strip("-")
    if len(base) > limit:
        cut = base[:limit]
        base = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return base or f"x{short_hash(text)}"


def logql_string(value: str) -> str:
    """`value` as a double-quoted LogQL (Go) string literal."""
    return json.dumps(value, ensure_ascii=False)


def logql_regex_for_template(template: str) -> str:
    """A regular expression matching the whole messages a template stands for.

    LogQL matches `=~` against the whole value, so a template cut short
    (ending in `…`) ends in `.*`.
    """
    cut = template.endswith("…")
    parts = re.split(r"(<n>|<hex>|<uuid>)", template[:-1] if cut else template)
    out: list[str] = []
    for part in parts:
        if part == "<n>":
            out.append("[0-9]+")
        elif part == "<hex>":
            out.append("(0[xX])?[0-9a-fA-F]+")
        elif part == "<uuid>":
            out.append("[0-9a-fA-F-]{36}")
        else:
            out.append(_REGEX_SPECIAL.sub(r"\\\g<0>", part))
    if cut:
        out.append(".*")
    return "".join(out)


def bounded_event(event_type: str, timestamp: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """A sample event in the `{"timestamp", "event"}` shape, every string and container bounded."""
    event: dict[str, Any] = {"type": event_type}
    for index, (key, value) in enumerate(fields.items()):
        if index >= MAX_SAMPLE_FIELDS:
            event["…"] = f"{len(fields) - MAX_SAMPLE_FIELDS} more fields"
            break
        event[truncate(str(key), 64)] = _bounded_value(value)
    sample: dict[str, Any] = {"event": event}
    if timestamp is not None:
        sample = {"timestamp": timestamp, "event": event}
    return sample


def _bounded_value(value: Any, depth: int = 2) -> Any:
    """A JSON-safe copy of `value` whose size is bounded whatever the input."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**63 else truncate(str(value), 40)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return truncate(value, MAX_SAMPLE_STRING)
    if isinstance(value, dict):
        if depth <= 0:
            return f"<object of {len(value)} fields>"
        items = list(value.items())[:10]
        out = {truncate(str(k), 64): _bounded_value(v, depth - 1) for k, v in items}
        if len(value) > 10:
            out["…"] = f"{len(value) - 10} more fields"
        return out
    if isinstance(value, list | tuple):
        if depth <= 0:
            return f"<array of {len(value)} items>"
        kept = [_bounded_value(v, depth - 1) for v in value[:10]]
        if len(value) > 10:
            kept.append(f"… {len(value) - 10} more items")
        return kept
    return truncate(repr(type(value).__name__), 40)
