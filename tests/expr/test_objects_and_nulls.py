"""Object literals, the `??` default operator, and warnings where a value that may be null
(an optional schema field) meets an operator that fails on null, unless a guard tests it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgt.defs import SchemaRegistry
from mgt.errors import ExprError, ParseError
from mgt.expr import Scope, evaluate, evaluate_guard, input_type, schema_type, typecheck
from mgt.expr.types import typecheck_guard
from tests.expr.helpers import COL, parse_expr

ROOT = Path(__file__).resolve().parents[2]

SCOPE = Scope(
    inputs={"extra": input_type("json"), "n": input_type("int")},
    output=schema_type(SchemaRegistry.load_dir(ROOT / "schemas"), "PatternReport"),
)


def _warnings(text: str) -> list[str]:
    _, found = typecheck_guard(parse_expr(text), SCOPE)
    assert [d.message for d in found if d.is_error] == []
    return [d.message for d in found if not d.is_error]


# ------------------------------------------------------------------------ object literals


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{}", {}),
        ('{"a": 1, "b": "x"}', {"a": 1, "b": "x"}),
        ('{"list": [1, {"deep": null}], "n": input.n * 2}', {"list": [1, {"deep": None}], "n": 6}),
        ('{"a": 1}.a', 1),
        ('{"a": 1}["a"]', 1),
        ('{"a": {"b": true}}.a.b', True),
        ('"k" in {"k": 0}', True),
        ('{"a": [1, 2]} == {"a": [1, 2]}', True),
        ('len({"a": 1, "b": 2})', 2),
    ],
)
def test_object_literals_evaluate(text: str, value: Any) -> None:
    assert evaluate(parse_expr(text), {"input": {"n": 3}}) == value


def test_an_object_literal_has_its_fields_as_its_type() -> None:
    t, found = typecheck(parse_expr('{"a": 1, "b": [input.n]}'), SCOPE)
    assert found == []
    assert t.kind == "object" and t.fields is not None
    assert {k: v.kind for k, v in t.fields.items()} == {"a": "integer", "b": "list"}
    _, found = typecheck(parse_expr('{"a": 1}.b'), SCOPE)
    assert [d.message for d in found] == ["unknown field 'b' in this object"]


def test_a_key_written_twice_is_a_syntax_error_at_the_second() -> None:
    with pytest.raises(ParseError) as info:
        parse_expr('{"a": 1, "a": 2}')
    assert info.value.message == 'key "a" appears twice in this object (first at line 4, column 19)'
    assert info.value.span is not None and info.value.span.column == COL + 9


# ------------------------------------------------------------------------ ??


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null ?? 1", 1),
        ("0 ?? 1", 0),  # only null is replaced
        ("false ?? true", False),
        ('"" ?? "x"', ""),
        ("output.missing ?? 7", 7),
        ("output.missing.deeper[3] ?? [1]", [1]),
        ("output.nothing ?? 2 + 3", 5),  # ?? binds looser than +
        ("(output.nothing ?? 2) * 3", 6),
        ("output.nothing ?? 0 > 3", False),  # and tighter than comparisons
        ("output.n ?? 0 > 3", True),
        ("output.nothing ?? output.missing ?? 9", 9),
        ("1 ?? 1 / 0", 1),  # the right side only when needed
    ],
)
def test_the_default_operator(text: str, value: Any) -> None:
    assert evaluate(parse_expr(text), {"output": {"nothing": None, "n": 5}}) == value


def test_the_type_of_a_default() -> None:
    t, found = typecheck(parse_expr("output.summary.events_analyzed ?? 0"), SCOPE)
    assert (t.kind, t.optional, found) == ("integer", False, [])
    t, _ = typecheck(parse_expr("output.summary.events_analyzed ?? 0.5"), SCOPE)
    assert t.kind == "number"
    t, _ = typecheck(parse_expr("null ?? input.n"), SCOPE)
    assert t.kind == "integer"


# ------------------------------------------------------------------------ optional fields

OPTIONAL = "output.summary.events_analyzed"


def test_comparing_an_optional_field_warns_at_the_field_naming_it() -> None:
    _, found = typecheck_guard(parse_expr(f"{OPTIONAL} > 100"), SCOPE)
    (warning,) = found
    assert warning.severity == "warning"
    assert warning.message == (
        f"'{OPTIONAL}' may be missing or null (PatternReport.summary.events_analyzed is not "
        "a required field), and '>' cannot compare null: it fails at run time when it is"
    )
    assert warning.span is not None
    assert (warning.span.column, warning.span.end_column) == (COL, COL + len(OPTIONAL))
    assert warning.hint == (
        f"test it first: 'exists({OPTIONAL}) and ...', or give a default: '{OPTIONAL} ?? DEFAULT'"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"{OPTIONAL} > 100",
        f"{OPTIONAL} + 1 > 100",
        f"-{OPTIONAL} < 0",
        "output.metadata.generated_at > \"2026\"",  # an optional parent: its fields may be null
        'any(output.patterns, "x" in it.grafana_query)',
        f"output.summary.critical > 0 and {OPTIONAL} > 100",
    ],
)
def test_unsafe_uses_of_optional_fields_warn_and_do_fail_on_null(text: str) -> None:
    assert len(_warnings(text)) == 1
    env = {"output": {"summary": {"critical": 1}, "patterns": [{"id": "a"}], "metadata": None}}
    with pytest.raises(ExprError):
        evaluate_guard(parse_expr(text), env)


@pytest.mark.parametrize(
    "text",
    [
        f"exists({OPTIONAL}) and {OPTIONAL} > 100",
        f"{OPTIONAL} != null and {OPTIONAL} > 100",
        f"null != {OPTIONAL} and {OPTIONAL} > 100",
        f"not exists({OPTIONAL}) or {OPTIONAL} > 100",
        f"{OPTIONAL} == null or {OPTIONAL} > 100",
        f"{OPTIONAL} ?? 0 > 100",
        f"exists(output.summary.critical) and exists({OPTIONAL}) and {OPTIONAL} + 1 > 100",
        'exists(output.metadata.generated_at) and output.metadata.generated_at > "2026"',
        'any(output.patterns, exists(it.grafana_query) and "x" in it.grafana_query)',
        'any(output.patterns, "x" in it.grafana_query ?? "")',
        "output.summary.critical > 0",  # a required field
        f"{OPTIONAL} == 3",  # equality with null is just false
        f"exists({OPTIONAL})",
    ],
)
def test_tested_or_defaulted_optional_fields_do_not_warn_and_never_fail(text: str) -> None:
    assert _warnings(text) == []
    for summary in ({"critical": 1}, {"critical": 1, "events_analyzed": None},
                    {"critical": 1, "events_analyzed": 500}):  # fmt: skip
        env = {"output": {"summary": summary, "patterns": [{"id": "a"}], "metadata": None}}
        assert isinstance(evaluate_guard(parse_expr(text), env), bool)


def test_exists_is_false_for_missing_and_null_and_never_fails() -> None:
    for env in ({}, {"output": None}, {"output": {"a": None}}, {"output": {"a": {"b": None}}}):
        assert evaluate(parse_expr("exists(output.a.b.c[2])"), env) is False


def test_an_object_default_and_binding_reach_a_real_run(tmp_path: Path) -> None:
    (tmp_path / "m.mgt").write_text(
        'machine m "objects and defaults at run time"\n\n'
        'input settings: json = {"labels": ["logs", "llm"], "limits": {}}\n\n'
        "state show:\n"
        "    run command \"printf '%s' \\\"$config\\\"\"\n"
        '    with config = {"labels": input.settings.labels,\n'
        '                   "retries": input.settings.limits.retries ?? 2}\n'
        '    on done when output.stdout == "{\\"labels\\": [\\"logs\\", \\"llm\\"], '
        '\\"retries\\": 2}" -> ok\n'
        "    on done -> wrong\n    on error -> wrong\n    on timeout -> wrong\n\n"
        'final ok: succeed "as expected"\nfinal wrong: fail\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", "m.mgt", "--runs-dir", "runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "succeeded at 'ok': as expected" in proc.stdout + proc.stderr
