"""Error templates, id slugs, LogQL literals and bounded samples."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mgt.analyze.text import (
    bounded_event,
    error_template,
    logql_regex_for_template,
    logql_string,
    slug,
)


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("Failed to parse SceneNarrative: missing field 'mood' at offset 1234",
         "Failed to parse SceneNarrative: missing field 'mood' at offset <n>"),
        ("retry 3 of 5 after 250ms", "retry <n> of <n> after <n>ms"),
        ("request 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed",
         "request <uuid> failed"),
        ("segfault at 0x7ffd5e8c", "segfault at <hex>"),
        ("commit a1b2c3d missing", "commit <hex> missing"),
        ("a facade of decades", "a facade of decades"),
        ("line\n  two\tthree ", "line two three"),
        ("dmScene2 failed", "dmScene<n> failed"),
    ],
)
def test_error_template(message: str, template: str) -> None:
    assert error_template(message) == template


def test_templates_are_bounded() -> None:
    assert len(error_template("x" * 1_000_000)) <= 500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dmScene", "dmscene"),
        ("dmAction dmError", "dmaction-dmerror"),
        ("Failed to parse <n> things", "failed-to-parse-things"),
        ("  --weird__Name!!  ", "weird-name"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
    ],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


def test_slug_is_cut_at_a_word_and_never_empty() -> None:
    long = slug("word " * 40)
    assert len(long) <= 64 and not long.endswith("-") and long.endswith("word")
    assert re.fullmatch(r"x[0-9a-f]{6}", slug("!!!"))
    assert slug("!!!") != slug("???")


@pytest.mark.parametrize(
    "message",
    [
        "Failed to parse SceneNarrative: missing field 'mood' at offset 1234",
        "cost $3.50 (approx.) [est] {x} a|b \\ c* d+ e? ^f",
        "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 at 0xBEEF took 12 ms",
    ],
)
def test_the_logql_regex_matches_the_messages_of_its_template(message: str) -> None:
    regex = logql_regex_for_template(error_template(message))
    assert re.fullmatch(regex, message)
    assert not re.fullmatch(regex, message + " and more")


def test_a_cut_template_matches_any_tail() -> None:
    message = "boom " * 200
    regex = logql_regex_for_template(error_template(message))
    assert regex.endswith(".*")
    assert re.fullmatch(regex, message.strip())


def test_logql_string_escapes() -> None:
    assert logql_string('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


def test_bounded_event() -> None:
    fields: dict[str, Any] = {f"k{i}": "v" * 1000 for i in range(50)}
    fields["k0"] = {"deep": {"deeper": {"deepest": list(range(1000))}}}
    sample = bounded_event("error", "2026-01-15T00:00:00Z", fields)
    assert sample["timestamp"] == "2026-01-15T00:00:00Z"
    event = sample["event"]
    assert event["type"] == "error"
    assert len(event) <= 22
    assert len(json.dumps(sample)) < 10_000
    assert event["k0"]["deep"]["deeper"] == "<object of 1 fields>"
    assert bounded_event("x", None, {"f": float("nan")}) == {"event": {"type": "x", "f": None}}
