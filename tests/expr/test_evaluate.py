"""Expression + environment → value: operators, functions, missing paths, durations, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mgt.errors import ExprError, RunError
from mgt.expr import Duration, evaluate, evaluate_guard, parse_duration, to_jsonable
from mgt.expr.values import json_default
from tests.expr.helpers import COL, parse_expr

ENV: dict[str, Any] = {
    "input": {"since": parse_duration("24h"), "min": 3, "name": "dmScene", "draft": True},
    "output": {
        "patterns": [
            {"id": "a", "severity": "info", "occurrences": 4, "details": {"node": "x"}},
            {"id": "b", "severity": "warning", "occurrences": 12, "details": {}},
            {"id": "c", "severity": "critical", "occurrences": 7, "details": {}},
        ],
        "summary": {"total_patterns": 3, "critical": 1, "warning": 1, "info": 1},
        "tags": ["slow", "llm"],
        "ratio": 0.25,
        "nothing": None,
    },
    "analyze": {"output": {"summary": {"total_patterns": 0}}, "attempts": 2},
}


def ev(text: str, env: dict[str, Any] | None = None) -> Any:
    return evaluate(parse_expr(text), ENV if env is None else env)


def fails(text: str, env: dict[str, Any] | None = None) -> ExprError:
    with pytest.raises(ExprError) as info:
        ev(text, env)
    return info.value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 == 1", True),
        ("1 == 1.0", True),
        ('"a" == "a"', True),
        ("true == 1", False),  # booleans are not numbers
        ("null == null", True),
        ("output.nothing == null", True),
        ("output.missing == null", True),
        ("[1, 2] == [1, 2]", True),
        ("output.summary == analyze.output.summary", False),
        ("1 != 2", True),
        ('"1" != 1', True),
        ("2 < 3", True),
        ("3 <= 3", True),
        ("4 > 3.5", True),
        ("3 >= 4", False),
        ('"abc" < "abd"', True),
        ("1 + 2", 3),
        ("7 - 10", -3),
        ("3 * 2.5", 7.5),
        ("7 / 2", 3.5),
        ('"ab" + "cd"', "abcd"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("-output.ratio", -0.25),
        ("not false", True),
        ("true and false", False),
        ("false or true", True),
        ("1 + 2 * 3 == 7 and not (1 > 2)", True),
        ('"slow" in output.tags', True),
        ('"fast" in output.tags', False),
        ('"Sce" in input.name', True),
        ('"summary" in output', True),
        ('"gone" in output', False),
        ("2 in [1, 2.0]", True),
        ('"x" not in output.tags', True),
    ],
)
def test_operators(text: str, value: Any) -> None:
    result = ev(text)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("output.summary.total_patterns", 3),
        ("analyze.output.summary.total_patterns", 0),
        ("analyze.attempts", 2),
        ("input.min", 3),
        ("output.patterns[1].id", "b"),
        ("output.patterns[-1].id", "c"),
        ('output.summary["critical"]', 1),
        ("output.tags[0]", "slow"),
        ("input.name[0]", "d"),
        ("output.missing", None),
        ("output.missing.deeper[3].still", None),
        ("output.patterns[10]", None),
        ("output.patterns[10].id", None),
        ("refine.output", None),  # a state that has not run
        ("refine.attempts", None),
    ],
)
def test_paths_and_missing_values(text: str, value: Any) -> None:
    assert ev(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("len(output.patterns)", 3),
        ('len("abc")', 3),
        ("len(output.summary)", 4),
        ("exists(output.summary)", True),
        ("exists(output.missing)", False),
        ("exists(output.nothing)", False),
        ("exists(output.patterns[0].details.node)", True),
        ("min(3, 1, 2)", 1),
        ("max([1, 2.5, 2])", 2.5),
        ('max("a", "b")', "b"),
        ("min([])", None),
        ("sum([1, 2, 3])", 6),
        ("sum([0.5, 0.25])", 0.75),
        ("sum([])", 0),
        ('count(output.patterns, it.severity != "info")', 2),
        ("count(output.patterns, it.occurrences > 100)", 0),
        ("count([], true)", 0),
        ('any(output.patterns, it.severity == "critical")', True),
        ("any([], true)", False),
        ("all(output.patterns, it.occurrences >= 4)", True),
        ("all(output.patterns, it.occurrences > 4)", False),
        ("all([], false)", True),
        ("count(output.patterns, exists(it.details.node))", 1),
        # nested quantifiers: the inner `it` shadows the outer one
        ("count([[1, 2], [3]], any(it, it > 2))", 1),
        ('count(output.tags, it in ["llm", "x"])', 1),
    ],
)
def test_functions(text: str, value: Any) -> None:
    result = ev(text)
    assert result == value
    assert type(result) is type(value)


def test_it_is_restored_after_a_quantifier() -> None:
    env = {**ENV, "it": "outer"}
    assert ev('count([1, 2], it > 1) == 1 and it == "outer"', env) is True


def test_durations_compare_and_add() -> None:
    assert ev("input.since > 1h") is True
    assert ev("input.since == 1d") is True
    assert ev("input.since <= 23h") is False
    total = ev("input.since + 30m")
    assert total == Duration(88200, "1d30m")
    assert str(total) == "1d30m"
    assert ev("2h - 30m") == Duration(5400, "1h30m")
    assert ev("30s * 4") == Duration(120, "2m")
    assert ev("2 * 30s") == Duration(60, "1m")
    assert ev("1h / 4") == Duration(900, "15m")
    assert ev("max(5m, 1h, 30s)") == Duration(3600, "1h")
    assert ev("sum([5m, 10m])") == Duration(900, "15m")
    assert ev("500ms < 1s") is True


def test_null_in_an_ordering_names_the_side() -> None:
    error = fails("output.missing < 3")
    assert error.message == "cannot compare with '<': the left side is null"
    assert error.span is not None and (error.span.line, error.span.column) == (4, COL)
    error = fails("3 >= output.summary.nope")
    assert error.message == "cannot compare with '>=': the right side is null"
    assert error.span is not None and error.span.column == COL + 5
    assert str(error).startswith(f"t.mgt:4:{COL + 5}: ")
    assert isinstance(error, RunError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('1 < "2"', "cannot compare integer 1 with string \"2\" using '<'"),
        ("true > false", "cannot compare true with false using '>'"),
        ("1h < 3", "cannot compare duration 1h with integer 3 using '<'"),
        ('1 + "a"', "cannot apply '+' to integer 1 and string \"a\""),
        ("output.missing + 1", "cannot apply '+': the left side is null"),
        ("1 / 0", "division by zero"),
        ('-"x"', 'cannot negate string "x"'),
        ("not 1", "'not' needs true or false, got integer 1"),
        ("output.missing and true", "'and' needs true or false, got null"),
        ("false or output.tags", "'or' needs true or false, got a list"),
        ("output.tags.first", "cannot read field 'first' of a list"),
        ("input.min.x", "cannot read field 'x' of integer 3"),
        ('output.tags["x"]', 'a list index must be an integer, got string "x"'),
        ("output.summary[0]", "an object key must be a string, got integer 0"),
        ("input.min[0]", "cannot index integer 3"),
        ("1 in 3", "'in' needs a list, string or object on the right, got integer 3"),
        ("1 in output.missing", "'in' needs a list, string or object on the right, got null"),
        ("1 in input.name", "'in' a string needs a string on the left, got integer 1"),
        ("len(3)", "len() needs a list, string or object, got integer 3"),
        ("sum(output.tags)", 'sum() needs a list of numbers, found string "slow"'),
        ("sum(3)", "sum() needs a list, got integer 3"),
        ("max(1, \"a\")", "max() needs numbers, strings or durations, got number, string"),
        ("min(1, output.missing)", "min() of a null value"),
        ("count(output.summary, true)", "count() needs a list, got an object"),
        ("count(output.missing, true)", "count() needs a list, got null"),
        ("any(output.patterns, it.occurrences)", "the condition of any() must be true or false, "
         "got integer 4"),
        ("nosuch(1)", "unknown function 'nosuch'"),
        ("len(1, 2)", "len() takes 1 argument, got 2"),
        ("count(output.tags)", "count() takes 2 arguments, got 1"),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert fails(text).message == message


def test_guards_must_be_booleans() -> None:
    assert evaluate_guard(parse_expr("output.summary.total_patterns == 3"), ENV) is True
    with pytest.raises(ExprError, match="a guard must be true or false, got integer 3"):
        evaluate_guard(parse_expr("output.summary.total_patterns"), ENV)
    with pytest.raises(ExprError, match="got null"):
        evaluate_guard(parse_expr("output.missing"), ENV)


def test_short_circuit_skips_the_failing_side() -> None:
    assert ev("exists(output.missing) and output.missing > 3") is False
    assert ev("true or 1 / 0 == 1") is True


def test_values_serialise_with_durations_as_text() -> None:
    value = {"since": parse_duration("24h"), "list": (Duration(60, "1m"), 2)}
    assert to_jsonable(value) == {"since": "24h", "list": ["1m", 2]}
    assert json.dumps(value["since"], default=json_default) == '"24h"'
    with pytest.raises(TypeError):
        json_default(object())


def test_parse_duration() -> None:
    assert parse_duration("500ms") == Duration(0.5, "500ms")
    assert parse_duration(" 7d ").text == "7d"
    assert parse_duration("1h30m").seconds == 5400
    assert parse_duration("1.5h").seconds == 5400
    for bad in ("", "24", "h", "24 h", "1h 30m", "-5m", "5w", "1h30"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(24)  # type: ignore[arg-type]
    assert Duration(60, "60s") == Duration(60, "1m")
    assert hash(Duration(60, "60s")) == hash(Duration(60, "1m"))
    assert Duration(60, "1m") != 60


def test_out_of_range_arithmetic_is_an_expr_error() -> None:
    huge = {"input": {"n": 10**400, "inf": float("inf")}}
    assert fails("input.n / 3", huge).message == "'/': the result is out of range"
    assert fails("1s * input.n", huge).message == "'*': the result is out of range"
    assert fails("1s * input.inf", huge).message == "'*': the result is out of range"
    assert fails("sum([input.n, 0.5])", huge).message == "sum() is out of range"
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("9" * 400 + "s")
