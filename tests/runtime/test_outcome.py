"""Outcome extraction, classification and retry feedback text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.executors.base import ExecResult
from mgt.runtime.outcome import (
    MAX_ANSWER_DEPTH,
    Outcome,
    classify,
    extract_json,
    feedback_text,
    fenced_blocks,
    format_json_path,
    json_depth,
)

SCHEMA = {
    "type": "object",
    "required": ["summary", "patterns"],
    "properties": {
        "summary": {
            "type": "object",
            "required": ["total"],
            "properties": {"total": {"type": "integer"}},
        },
        "patterns": {
            "type": "array",
            "items": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    },
}


@dataclass
class Issue:
    path: str
    message: str


def validate(name: str, instance: Any) -> list[Issue]:
    assert name == "Report"
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        Issue(format_json_path(tuple(e.absolute_path)), e.message)
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": 1}\n', {"a": 1}),
        ('Here it is:\n```json\n{"a": 1}\n```\nDone.', {"a": 1}),
        ('```\n{"a": 2}\n```', {"a": 2}),
        ('first ```json\n{"a": 1}\n``` then ```json\n{"a": 2}\n```', {"a": 2}),
        ('```json\n{"a": 1, broken\n``` but bare {"b": 2}', {"b": 2}),
        ('The answer is {"a": {"b": 1}} as asked.', {"a": {"b": 1}}),
        ('small {"x": 1} and larger {"y": [1, 2, 3], "z": "w"}', {"y": [1, 2, 3], "z": "w"}),
        ('{"s": "a } inside a string { "}', {"s": "a } inside a string { "}),
        ('not json {oops} but {"ok": true}', {"ok": True}),
        ('{"outer": {not json}, "x": {"inner": 1}}', {"inner": 1}),
    ],
)
def test_extract_json_finds_the_object(text: str, expected: Any) -> None:
    value, reason = extract_json(text)
    assert reason is None
    assert value == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("I could not do it.", "no JSON object"),
        ("{broken: yes}", "do not parse"),
        ('{"unterminated": ', "do not parse"),
    ],
)
def test_extract_json_explains_why_nothing_was_found(text: str | None, reason: str) -> None:
    value, why = extract_json(text)
    assert value is None
    assert why is not None and reason in why


def test_format_json_path() -> None:
    assert format_json_path(()) == "$"
    assert format_json_path(("patterns", 0, "id")) == "$.patterns[0].id"
    assert format_json_path(("weird key",)) == '$["weird key"]'
    assert format_json_path("$.a.b") == "$.a.b"
    assert format_json_path("/a/b") == "$.a.b"


# --------------------------------------------------------------------------- classification


def _classify(result: ExecResult, **kw: Any) -> Outcome:
    return classify(result, schema="Report", validate=validate, **kw)


def test_structured_output_wins_over_text() -> None:
    out = _classify(ExecResult(text="garbage", output={"summary": {"total": 0}, "patterns": []}))
    assert out.event == "done"
    assert out.output == {"summary": {"total": 0}, "patterns": []}


def test_no_json_is_schema_invalid() -> None:
    out = _classify(ExecResult(text="Sorry, I can't."))
    assert out.event == "schema_invalid"
    assert out.output is None
    assert "no JSON object" in out.problems[0]


def test_every_schema_error_is_kept_with_its_path() -> None:
    out = _classify(ExecResult(text='{"summary": {"total": "three"}, "patterns": [{"id": 7}]}'))
    assert out.event == "schema_invalid"
    assert out.problems == [
        "at $.patterns[0].id: 7 is not of type 'string'",
        "at $.summary.total: 'three' is not of type 'integer'",
    ]


def test_output_checks_run_only_after_the_schema_passes() -> None:
    seen: list[Any] = []

    def checks(output: Any) -> list[str]:
        seen.append(output)
        return ["change 1 cites no pattern id", "src/X.hs is a forbidden path"]

    bad = _classify(ExecResult(text='{"summary": {}}'), checks=checks)
    assert bad.event == "schema_invalid" and seen == []
    good = _classify(ExecResult(text='{"summary": {"total": 1}, "patterns": []}'), checks=checks)
    assert good.event == "guardrail"
    assert good.problems == ["change 1 cites no pattern id", "src/X.hs is a forbidden path"]
    assert good.output == {"summary": {"total": 1}, "patterns": []}


@pytest.mark.parametrize(
    ("result", "event"),
    [
        (ExecResult(timed_out=True, error="killed after 5s"), "timeout"),
        (ExecResult(error="claude exited with status 1: API Error 400"), "error"),
        (ExecResult(guardrail=["diff does not apply"]), "guardrail"),
        # the executor's failure decides even when some text came back
        (ExecResult(text='{"summary": {"total": 1}, "patterns": []}', timed_out=True), "timeout"),
    ],
)
def test_executor_failures_classify_first(result: ExecResult, event: str) -> None:
    assert _classify(result).event == event


def test_command_output_is_taken_as_is_without_a_schema() -> None:
    result = ExecResult(output={"exit_code": 0, "stdout": "{}", "stderr": ""})
    out = classify(result, schema=None, validate=None, parse_text=False)
    assert out.event == "done"
    assert out.output == {"exit_code": 0, "stdout": "{}", "stderr": ""}


def test_default_output_when_there_is_no_schema_and_no_json() -> None:
    out = classify(
        ExecResult(text="plain words"),
        schema=None,
        validate=None,
        default_output=lambda r: {"text": r.text},
    )
    assert out.event == "done" and out.output == {"text": "plain words"}


# --------------------------------------------------------------------------- feedback


def test_feedback_quotes_every_validation_error_with_its_path() -> None:
    out = _classify(ExecResult(text='{"summary": {"total": "three"}, "patterns": [{"id": 7}]}'))
    text = feedback_text(out, 1, schema="Report")
    assert "attempt 1" in text and "`schema_invalid`" in text
    assert "- at $.patterns[0].id: 7 is not of type 'string'" in text
    assert "- at $.summary.total: 'three' is not of type 'integer'" in text
    assert "Report schema" in text
    assert "exactly one JSON object" in text


def test_feedback_quotes_guardrail_problems_verbatim() -> None:
    out = Outcome("guardrail", problems=["the diff touches flake.nix, a forbidden path"])
    text = feedback_text(out, 2, schema="ProposedChanges")
    assert "- the diff touches flake.nix, a forbidden path\n" in text
    assert "attempt 2" in text


def test_feedback_for_timeout_names_the_limit() -> None:
    text = feedback_text(Outcome("timeout"), 1, timeout_seconds=30, schema=None)
    assert "30s" in text


def test_claude_codes_own_schema_retries_running_out_is_schema_invalid(tmp_path: Any) -> None:
    """With --json-schema Claude Code validates and retries itself; when it gives up, the
    errors it reports (JSON pointers) become the problems, with JSON paths."""
    message = (
        "Failed to provide valid structured output after 5 attempts — last StructuredOutput "
        "error: Output does not match required schema: /patterns/0: must have required "
        "property 'type', /patterns/0/id: must be string, /summary/total_patterns: must be integer"
    )
    raw = tmp_path / "result.json"
    raw.write_text(json.dumps({"type": "result", "is_error": True, "errors": [message]}))
    result = ExecResult(
        error="Claude Code reported an error: error_max_structured_output_retries",
        details={"subtype": "error_max_structured_output_retries"},
        raw_result_path=raw,
    )
    out = _classify(result)
    assert out.event == "schema_invalid"
    assert out.problems == [
        "at $.patterns[0]: must have required property 'type'",
        "at $.patterns[0].id: must be string",
        "at $.summary.total_patterns: must be integer",
    ]
    raw.unlink()  # no raw file and no details: still schema_invalid, with a general problem
    assert _classify(result).event == "schema_invalid"


# --------------------------------------------------------------------------- hostile answers


@pytest.mark.parametrize(
    "text",
    [
        '{"total": NaN}',
        'The result: {"total": Infinity} as computed',
        '```json\n{"total": -Infinity}\n```',
    ],
)
def test_nan_and_infinity_are_not_json(text: str) -> None:
    value, why = extract_json(text)
    assert value is None and why is not None
    assert "Infinity, which is not a JSON number" in why or "NaN, which is not" in why, why


def test_an_answer_nested_too_deeply_is_no_json_not_a_crash() -> None:
    value, why = extract_json("[" * 100_000 + "]" * 100_000)
    assert value is None and why is not None
    out = _classify(ExecResult(text='{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"))
    assert out.event == "schema_invalid"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{" * 200_000, None),
        ("{" * 100_000 + "}" * 100_000, None),  # too deep, and what is inside is part of it
        ('{"' * 100_000, None),
        ("x {" * 100_000 + "}", {}),
    ],
    ids=["open-braces", "nested-empty", "open-strings", "prose-braces"],
)
def test_a_huge_answer_made_of_braces_is_searched_in_one_pass(text: str, expected: Any) -> None:
    # the largest-balanced-object search used to rescan the rest of the text from every
    # '{': 30 000 of them took half a minute per attempt, 200 000 would take hours
    value, why = extract_json(text)
    assert value == expected
    assert (why is None) == (expected is not None)


def test_structured_output_with_nan_is_schema_invalid() -> None:
    out = _classify(ExecResult(output={"summary": {"total": float("nan")}, "patterns": []}))
    assert out.event == "schema_invalid" and "NaN" in out.problems[0]


# --------------------------------------------------------------------------- hostile answers

# The fence pattern extraction once used: right, but quadratic on unclosed fences.
_REGEX_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|```)", re.DOTALL)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="`\n \tjson{}1x", max_size=60))
def test_the_linear_fence_scan_finds_what_the_fence_regex_found(text: str) -> None:
    expected = [(m.group(1), m.group(2)) for m in _REGEX_FENCE.finditer(text)]
    assert list(fenced_blocks(text)) == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "```json " * 40_000,  # 320 KB of fences that never open a body
        "```json\n" * 40_000,
        "```json\n{" * 30_000,
        "``` " * 80_000 + "\n" + "{",
    ],
    ids=["unclosed-fences", "empty-fences", "fences-of-braces", "fences-then-newline"],
)
def test_an_answer_of_fences_is_an_ordinary_outcome(text: str) -> None:
    out = _classify(ExecResult(text=text))
    assert out.event == "schema_invalid"
    assert out.problems[0].startswith("the answer contains no")


def _nested(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


@pytest.mark.parametrize(
    "text",
    [
        _nested(900),
        "Here:\n```json\n" + _nested(900) + "\n```",
        "prose " + _nested(900) + " prose",
        '{"a": ' + "[" * 900 + "]" * 900 + "}",
        _nested(5000),
    ],
    ids=["bare", "fenced", "in-prose", "arrays", "beyond-the-recursion-limit"],
)
def test_an_answer_nested_900_deep_is_schema_invalid_with_a_clear_reason(text: str) -> None:
    out = _classify(ExecResult(text=text))
    assert out.event == "schema_invalid"
    assert out.output is None
    assert out.problems == [
        f"the answer's JSON is nested more than {MAX_ANSWER_DEPTH} levels deep; answer with a "
        "flatter object that matches the output schema"
    ]
    feedback = feedback_text(out, 1, schema="Report")
    assert f"nested more than {MAX_ANSWER_DEPTH} levels deep" in feedback


def test_an_answer_as_deep_as_allowed_is_accepted() -> None:
    value, why = extract_json(_nested(MAX_ANSWER_DEPTH - 1, "[]"))
    assert why is None and json_depth(value) == MAX_ANSWER_DEPTH


def test_deep_structured_output_is_schema_invalid() -> None:
    deep: Any = {}
    for _ in range(900):
        deep = {"a": deep}
    out = _classify(ExecResult(output=deep))
    assert out.event == "schema_invalid" and "nested more than" in out.problems[0]
    assert out.output is None


@pytest.mark.timeout(60)
def test_objects_nested_in_unparsable_objects_are_decoded_within_a_budget() -> None:
    # every '{' starts an object that parses up to the last moment, then fails: each is
    # decoded afresh (90 levels x 270 KB); the decoding budget caps that at a few passes
    pad = "[" + "1," * 1500 + "1]"
    text = ('{"pad": ' + pad + ', "a": ') * 90 + "oops" + "}" * 90
    out = _classify(ExecResult(text=text))
    assert out.event == "schema_invalid"
    assert out.problems == [
        "the answer contains no valid JSON object (the braces found do not parse)"
    ]


def test_json_depth_counts_arrays_and_objects() -> None:
    assert json_depth(1) == 0
    assert json_depth({}) == 1
    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth([[[[]]]], limit=2) == 3  # stops one past the limit
