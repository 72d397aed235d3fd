"""Expression + scope → static type and diagnostics (exact messages); binding fit checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgt.defs import FormulaInput, SchemaRegistry, load_formulas
from mgt.diagnostics import Diagnostic
from mgt.expr import (
    COMMAND_OUTPUT,
    ExprType,
    Scope,
    fits_declared,
    fits_input,
    input_type,
    list_of,
    schema_type,
    typecheck,
    typecheck_guard,
)
from mgt.expr.types import ANY, STRING
from tests.expr.helpers import COL, parse_expr

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = SchemaRegistry.load_dir(ROOT / "schemas")
FORMULAS = load_formulas(ROOT / "formulas")

SCOPE = Scope(
    inputs={
        "since": input_type("duration"),
        "min_occurrences": input_type("int"),
        "ratio": input_type("float"),
        "draft": input_type("bool"),
        "repo": input_type("path"),
        "reviewer": input_type("str"),
        "extra": input_type("json"),
        "query_type": input_type("enum", ("all", "errors")),
    },
    output=schema_type(REGISTRY, "PatternReport"),
    states={
        "analyze": schema_type(REGISTRY, "PatternReport"),
        "refine": schema_type(REGISTRY, "ProposedChanges"),
        "file_pr": schema_type(REGISTRY, "PRResult"),
        "build": COMMAND_OUTPUT,
        "noop": ANY,
    },
)


def check(text: str, scope: Scope = SCOPE) -> tuple[ExprType, list[str]]:
    """The type and the errors (warnings about values that may be null are tested apart)."""
    t, diagnostics = typecheck(parse_expr(text), scope)
    return t, [d.message for d in diagnostics if d.is_error]


def only_error(text: str, scope: Scope = SCOPE) -> Diagnostic:
    _, found = typecheck_guard(parse_expr(text), scope)
    diagnostics = [d for d in found if d.is_error]
    assert len(diagnostics) == 1, [d.message for d in diagnostics]
    return diagnostics[0]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("output.summary.total_patterns == 0", "boolean"),
        ("output.summary.total_patterns", "integer"),
        ("output.patterns", "list"),
        ("output.patterns[0].severity", "string"),
        ("output.patterns[0].details.anything.at.all", "any"),  # additionalProperties: true
        ("output.patterns[0].sample_events[0].whatever", "any"),
        ("output.metadata.generated_at", "string"),
        ('count(output.patterns, it.severity != "info")', "integer"),
        ("any(refine.output.changes, it.lines_added > 50)", "boolean"),
        ("refine.output.expected_impact.metrics[0].before + 1", "number"),
        ("file_pr.output.pr_number * 2", "integer"),
        ("analyze.attempts", "integer"),
        ("build.output.exit_code == 0", "boolean"),
        ('build.output.stdout + "x"', "string"),
        ("noop.output.anything", "any"),
        ("input.since + 1h", "duration"),
        ("input.since * 2", "duration"),
        ("input.ratio / 2", "number"),
        ("input.min_occurrences - 1", "integer"),
        ("input.extra.whatever[3]", "any"),
        ('input.repo + "/x"', "string"),
        ("len(output.patterns) / 2", "number"),
        ("sum([1, 2])", "integer"),
        ("sum([1h])", "duration"),
        ("max(1, 2.5)", "number"),
        ("min(output.patterns[0].occurrences, 3)", "integer"),
        ('max("a", "b")', "string"),
        ('output["summary"].critical', "integer"),
        ("[1, 2] + [3]", "list"),
        ("exists(output.metadata.generated_at) or true", "boolean"),
        ("-input.min_occurrences", "integer"),
        ("null == output.summary", "boolean"),
    ],
)
def test_types_of_valid_expressions(text: str, kind: str) -> None:
    t, errors = check(text)
    assert errors == []
    assert t.kind == kind


def test_unknown_field_names_schema_path_and_suggests() -> None:
    d = only_error("output.summary.totl_patterns == 0")
    assert d.message == (
        "unknown field 'totl_patterns' in PatternReport.summary (did you mean 'total_patterns'?)"
    )
    assert d.span is not None
    start = COL + len("output.summary.")
    assert (d.span.line, d.span.column, d.span.end_column) == (4, start, start + 13)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('count(output.patterns, it.severty != "info") == 0',
         "unknown field 'severty' in PatternReport.patterns[] (did you mean 'severity'?)"),
        ("refine.output.validation.build_sucess",
         "unknown field 'build_sucess' in ProposedChanges.validation "
         "(did you mean 'build_success'?)"),
        ("refine.output.expected_impact.metrics[0].befor > 1",
         "unknown field 'befor' in ProposedChanges.expected_impact.metrics[] "
         "(did you mean 'before'?)"),
        ("file_pr.output.url == \"x\"",
         "unknown field 'url' in PRResult (did you mean 'pr_url'?)"),
        ("output.summary.zzz", "unknown field 'zzz' in PatternReport.summary"),
        ('output["sumary"].critical == 1',
         "unknown field 'sumary' in PatternReport (did you mean 'summary'?)"),
        ("input.sinc > 1h", "unknown input 'sinc' (did you mean 'since'?)"),
        ("analyz.output.summary", "unknown name 'analyz' (did you mean 'analyze'?)"),
        ("analyze.outptu", "unknown field 'outptu' of state 'analyze' "
         "(a state has 'output' and 'attempts')"),
        ("build.output.exitcode == 0",
         "unknown field 'exitcode' in command output (did you mean 'exit_code'?)"),
        ("it.severity", "'it' is only defined inside count(), any() and all()"),
        ("lenn(output.patterns) > 0", "unknown function 'lenn' (did you mean 'len'?)"),
        ("frobnicate(1)", "unknown function 'frobnicate'; the functions are len, exists, min, "
         "max, sum, count, any, all"),
        ("len(output.patterns, 1) > 0", "len() takes 1 argument, got 2"),
        ("count(output.patterns) > 0", "count() takes 2 arguments, got 1"),
        ("count(output.summary, true) > 0",
         "count() needs a list as its first argument, got object PatternReport.summary"),
        ("all(output.patterns, it.occurrences)",
         "the condition of all() must be true or false, got integer"),
        ('output.summary.total_patterns == "0"',
         "cannot compare integer with string (it is always false)"),
        ('output.summary.total_patterns != "0"',
         "cannot compare integer with string (it is always true)"),
        ("output.metadata.generated_at < 3",
         "cannot compare string with integer using '<'"),
        ("output.patterns < 3",
         "cannot compare list PatternReport.patterns with integer using '<'"),
        ("output.summary.info > null", "cannot compare null using '>'"),
        ("input.since > 3", "cannot compare duration with integer using '>'"),
        ('output.patterns[0].severity == "critcal"',
         "\"critcal\" is not a possible value of PatternReport.patterns[].severity "
         "(one of: critical, warning, info); did you mean 'critical'?"),
        ('"hihg" == refine.output.expected_impact.confidence',
         "\"hihg\" is not a possible value of ProposedChanges.expected_impact.confidence "
         "(one of: high, medium, low); did you mean 'high'?"),
        ('input.query_type == "warnings"',
         "\"warnings\" is not a possible value of enum (one of: all, errors)"),
        ('file_pr.output.status in ["draft", "redy"]',
         "\"redy\" is not a possible value of PRResult.status "
         "(one of: draft, ready, merged, closed); did you mean 'ready'?"),
        ('"redy" in [file_pr.output.status]',
         "\"redy\" is not a possible value of PRResult.status "
         "(one of: draft, ready, merged, closed); did you mean 'ready'?"),
        ("input.draft and output.summary.total_patterns",
         "'and' needs true or false, got integer"),
        ("not output.summary", "'not' needs true or false, got object PatternReport.summary"),
        ('input.since + "x" == 1h', "cannot apply '+' to duration and string"),
        ("output.summary.info + null > 1", "cannot apply '+' to null"),
        ('-"x" == 1', "cannot negate string"),
        ("output.patterns.severity", "cannot read field 'severity' of list PatternReport.patterns"),
        ("output.summary.info.x", "cannot read field 'x' of integer"),
        ('output.patterns["a"].id == "x"', "a list index must be an integer, got string"),
        ("output.summary[0] == 1", "an object key must be a string, got integer"),
        ("input.draft[0]", "cannot index boolean"),
        ("1 in 2", "'in' needs a list, string or object on the right, got integer"),
        ("1 in output.patterns[0].id", "'in' string needs a string on the left, got integer"),
        ("1 in refine.output.patterns_addressed", "'in' looks for integer in a list of string"),
        ("len(1) > 0", "len() needs a list, string or object, got integer"),
        ("sum(output.patterns) > 0", "sum() needs a list of numbers, got a list of object"),
        ("sum(3) > 0", "sum() needs a list, got integer"),
        ("max(3) > 0", "max() of one argument needs a list, got integer"),
        ('min(1, "a") == 1', "min() needs numbers, strings or durations, got integer, string"),
        ("output.summary.total_patterns",
         "a guard must be true or false, but this is integer"),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    assert only_error(text).message == message


def test_output_is_unavailable_in_bindings() -> None:
    scope = Scope(inputs=SCOPE.inputs, states=SCOPE.states)
    _, errors = check("output.summary", scope)
    assert errors == ["'output' is only available in `on ... when` guards"]
    _, errors = check("outptu.x", scope)
    assert errors == ["unknown name 'outptu'"]


def test_errors_do_not_cascade() -> None:
    _, errors = check("analyz.output.summary.total_patterns > 1 and lenn(x) == 2")
    assert errors == [
        "unknown name 'analyz' (did you mean 'analyze'?)",
        "unknown name 'x'",
        "unknown function 'lenn' (did you mean 'len'?)",
    ]


def test_additional_properties_and_untyped_objects() -> None:
    registry = SchemaRegistry({
        "Open": {"type": "object", "properties": {"a": {"type": "integer"}},
                 "additionalProperties": True},
        "Closed": {"type": "object", "properties": {"a": {"type": "integer"}},
                   "additionalProperties": False},
        "Typed": {"type": "object", "additionalProperties": {"type": "string"}},
        "Bare": {"type": "object"},
        "Nullable": {"type": "object", "properties": {
            "n": {"type": ["integer", "null"]},
            "u": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "e": {"enum": [1, 2]},
            "self": {"$ref": "#"},
        }},
    })
    scope = Scope(states={name: schema_type(registry, name) for name in registry.names()})
    assert check("Open.output.zzz", scope)[1] == []
    assert check("Bare.output.zzz.yyy", scope)[1] == []
    assert check("Closed.output.zzz", scope)[1] == ["unknown field 'zzz' in Closed"]
    t, errors = check("Typed.output.zzz", scope)
    assert errors == [] and t.kind == "string"
    assert check("Nullable.output.n", scope)[0].kind == "integer"
    assert check("Nullable.output.u", scope)[0].kind == "string"
    assert check("Nullable.output.e", scope)[0].kind == "integer"
    # a recursive schema is read lazily
    t, errors = check("Nullable.output.self.self.self.n", scope)
    assert errors == [] and t.kind == "integer"
    assert check("Nullable.output.self.self.nn", scope)[1] == [
        "unknown field 'nn' in Nullable.self.self (did you mean 'n'?)"
    ]


def test_deeply_nested_expressions_are_refused_not_crashed() -> None:
    from mgt.expr.nodes import Unary

    expr = parse_expr("true")
    for _ in range(1000):
        expr = Unary("not", expr, expr.span)
    _, diagnostics = typecheck(expr, SCOPE)
    assert [d.message for d in diagnostics] == ["expression nested too deeply"]


# --- bindings ---------------------------------------------------------------


def fit(expr: str, formula: str, name: str) -> str | None:
    t, errors = check(expr)
    assert errors == []
    inp = FORMULAS[formula].input(name)
    assert inp is not None
    return fits_input(t, inp, REGISTRY)


@pytest.mark.parametrize(
    ("expr", "formula", "name", "reason"),
    [
        ("analyze.output", "refine", "patterns", None),
        ("input.repo", "refine", "patterns", None),  # a path to a PatternReport file
        ('"patterns.json"', "refine", "patterns", None),
        ("refine.output", "refine", "patterns",
         "expects a PatternReport (or a path to one), got ProposedChanges"),
        ("analyze.output.summary", "refine", "patterns",
         "expects a PatternReport (or a path to one), got object PatternReport.summary"),
        ("input.draft", "refine", "patterns",
         "expects a PatternReport (or a path to one), got boolean"),
        ("build.output", "refine", "patterns",
         "expects a PatternReport (or a path to one), got object command output"),
        ("refine.output", "file-pr", "changes", None),
        ("build.output.stdout", "file-pr", "changes", None),
        ("analyze.output", "file-pr", "changes",
         "expects a diff (a ProposedChanges or a string), got PatternReport"),
        ("input.since", "analyze", "since", None),
        ("24h", "analyze", "since", None),
        ('"7d"', "analyze", "since", None),
        ('"a week"', "analyze", "since", "invalid duration 'a week': expected a number and a "
         "unit (ms, s, m, h, d), such as 500ms, 30s, 5m, 24h or 7d"),
        ("24", "analyze", "since", "expects a duration such as 24h, got integer 24"),
        ('"errors"', "analyze", "query_type", None),
        ("input.query_type", "analyze", "query_type", None),
        ("input.reviewer", "analyze", "query_type", None),
        ('"eror"', "analyze", "query_type",
         "\"eror\" is not one of all, transitions, llm-calls, errors, sessions "
         "(did you mean 'errors'?)"),
        ("3", "analyze", "query_type",
         "expects one of all, transitions, llm-calls, errors, sessions, got integer 3"),
        ("input.min_occurrences", "analyze", "min_occurrences", None),
        ("analyze.attempts", "analyze", "min_occurrences", None),
        ("input.ratio", "analyze", "min_occurrences", "expects an integer, got number"),
        ("3.5", "analyze", "min_occurrences", "expects an integer, got number 3.5"),
        ('"3"', "analyze", "min_occurrences", 'expects an integer, got string "3"'),
        ("input.draft", "file-pr", "draft", None),
        ("true", "file-pr", "draft", None),
        ('"yes"', "file-pr", "draft", 'expects true or false, got string "yes"'),
        ('["a", "b"]', "file-pr", "labels", None),
        ("refine.output.patterns_addressed", "file-pr", "labels", None),
        ("[1, 2]", "file-pr", "labels", "list items: expects a string, got integer"),
        ('"a"', "file-pr", "labels", 'expects a list of string, got string "a"'),
        ("input.extra", "file-pr", "labels", None),
        ("null", "file-pr", "labels", "got null"),
    ],
)
def test_fits_input(expr: str, formula: str, name: str, reason: str | None) -> None:
    assert fit(expr, formula, name) == reason


def test_fits_a_plain_string_input() -> None:
    plain = FormulaInput(name="s", type="string")
    assert fits_input(STRING, plain) is None
    assert fits_input(input_type("int"), plain) == "expects a string, got integer"
    assert fits_input(list_of(STRING), FormulaInput(name="f", type="file")) is None


@pytest.mark.parametrize(
    ("expr", "declared", "values", "reason"),
    [
        ("24h", "duration", (), None),
        ('"24h"', "duration", (), None),
        ("3", "duration", (), "expects a duration such as 24h, got integer 3"),
        ("3", "int", (), None),
        ("3", "float", (), None),
        ("3.5", "int", (), "expects an integer, got number 3.5"),
        ("true", "bool", (), None),
        ('"."', "path", (), None),
        ('"x"', "str", (), None),
        ("[1]", "json", (), None),
        ('"all"', "enum", ("all", "errors"), None),
        ('"al"', "enum", ("all", "errors"),
         "\"al\" is not one of all, errors (did you mean 'all'?)"),
    ],
)
def test_fits_declared_defaults(
    expr: str, declared: str, values: tuple[str, ...], reason: str | None
) -> None:
    t, _ = typecheck(parse_expr(expr), Scope())
    assert fits_declared(t, declared, values) == reason
