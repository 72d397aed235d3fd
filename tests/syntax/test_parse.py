"""Parsing valid .mgt text: every declaration, clause and expression form, with exact spans."""

from __future__ import annotations

import pytest

from mgt import ast
from mgt.expr import nodes as ex
from mgt.span import Span
from mgt.syntax import parse_source

EVOLVE = '''\
machine evolve "Analyze production logs, refine the DSL, file a PR"

import polecats from "../polecats"     # dir of *.toml, keyed by [polecat].name
import formulas from "../formulas"
import schemas from "../schemas"

input since: duration = 24h
input query_type: enum("all", "transitions", "llm-calls", "errors", "sessions") = "all"
input min_occurrences: int = 3
input draft: bool = true
input repo: path = "."
input reviewer: str                    # no default: required at `mgt exec`

state analyze:
    run formula analyze
    with since = input.since, query_type = input.query_type,
         min_occurrences = input.min_occurrences
    output PatternReport
    timeout 120s
    retry 2 on schema_invalid with feedback
    on done when output.summary.total_patterns == 0 -> no_patterns
    on done when count(output.patterns, it.severity != "info") == 0 -> no_patterns
    on done -> refine
    on timeout -> failed

state refine:
    run formula refine
    with patterns = analyze.output
    retry 1 on schema_invalid, guardrail with feedback
    on done -> file_pr

state file_pr:
    run formula file-pr
    with changes = refine.output, evidence = analyze.output, draft = input.draft
    on done -> filed

final filed: succeed
final no_patterns: succeed "no actionable patterns"
final failed: fail
'''


def S(line: int, col: int, end_line: int, end_col: int) -> Span:
    return Span("m.mgt", line, col, end_line, end_col)


def guard(expr_text: str) -> ex.Expr:
    """Parse one guard expression in a minimal machine."""
    source = f"machine m\nstate a:\n    run command \"x\"\n    on done when {expr_text} -> b\n"
    machine = parse_source(source, "m.mgt")
    g = machine.states[0].transitions[0].guard
    assert g is not None
    return g


def test_design_example_parses_into_the_ast() -> None:
    m = parse_source(EVOLVE, "m.mgt")
    assert m.name == ast.Ident("evolve", S(1, 9, 1, 15))
    assert m.description == "Analyze production logs, refine the DSL, file a PR"
    assert [(i.kind.text, i.path) for i in m.imports] == [
        ("polecats", "../polecats"),
        ("formulas", "../formulas"),
        ("schemas", "../schemas"),
    ]
    assert m.imports[0].path_span == S(3, 22, 3, 35)
    assert [i.name.text for i in m.inputs] == [
        "since", "query_type", "min_occurrences", "draft", "repo", "reviewer",
    ]
    assert m.inputs[1].type.enum_values == ("all", "transitions", "llm-calls", "errors", "sessions")
    assert m.inputs[5].default is None
    assert m.start is None
    assert [s.name.text for s in m.states] == ["analyze", "refine", "file_pr"]
    assert [(f.name.text, f.status, f.message) for f in m.finals] == [
        ("filed", "succeed", None),
        ("no_patterns", "succeed", "no actionable patterns"),
        ("failed", "fail", None),
    ]
    assert m.source_path == "m.mgt"


def test_state_clauses() -> None:
    analyze = parse_source(EVOLVE, "m.mgt").states[0]
    assert analyze.run == ast.Run("formula", ast.Ident("analyze", S(15, 17, 15, 24)), None, None,
                                  S(15, 5, 15, 24))
    # `with` continues on the next line after a trailing comma
    assert [b.name.text for b in analyze.bindings] == ["since", "query_type", "min_occurrences"]
    assert analyze.bindings[2].span == S(17, 10, 17, 49)
    assert analyze.output == ast.Ident("PatternReport", S(18, 12, 18, 25))
    assert analyze.timeout == ex.DurationLit(120.0, "120s", S(19, 13, 19, 17))
    (retry,) = analyze.retries
    assert (retry.count, retry.feedback, retry.backoff) == (2, True, None)
    assert [e.text for e in retry.events] == ["schema_invalid"]
    assert retry.count_span == S(20, 11, 20, 12)
    assert [(t.event.text, t.target.text, t.guard is None) for t in analyze.transitions] == [
        ("done", "no_patterns", False),
        ("done", "no_patterns", False),
        ("done", "refine", True),
        ("timeout", "failed", True),
    ]
    assert analyze.span == S(14, 1, 24, 25)


def test_dashed_names_for_formulas_polecats_and_builtins() -> None:
    file_pr = parse_source(EVOLVE, "m.mgt").states[2]
    assert file_pr.run is not None and file_pr.run.target is not None
    assert file_pr.run.target.text == "file-pr"
    source = (
        'machine m\nstate a:\n    run builtin analyze-logs\n    output Pattern-Report\n'
        '    on done -> b\nstate b:\n    run polecat log-analyzer prompt "go"\n'
        '    with output-format = "json"\n    on done -> c\nfinal c: succeed\n'
    )
    m = parse_source(source, "m.mgt")
    assert m.states[0].run == ast.Run("builtin", ast.Ident("analyze-logs", S(3, 17, 3, 29)),
                                      None, None, S(3, 5, 3, 29))
    assert m.states[0].output == ast.Ident("Pattern-Report", S(4, 12, 4, 26))
    assert m.states[1].run is not None
    assert m.states[1].run.prompt == "go"
    assert m.states[1].bindings[0].name.text == "output-format"


def test_run_kinds() -> None:
    source = (
        'machine m\nstate a:\n    run command "make test"\n    on done -> b\n'
        'state b:\n    run polecat p\n    on done -> c\nfinal c: fail "why"\n'
    )
    m = parse_source(source, "m.mgt")
    assert m.states[0].run == ast.Run("command", None, None, "make test", S(3, 5, 3, 28))
    # `prompt` may be left out by the grammar; the checker reports it
    assert m.states[1].run is not None and m.states[1].run.prompt is None
    assert m.finals[0].message == "why"


def test_retry_with_everything_and_negative_count() -> None:
    source = (
        "machine m\nstate a:\n    run command \"x\"\n"
        "    retry 3 on error, timeout with feedback backoff 500ms\n"
        "    retry -1 on guardrail\n    retry 0 on schema_invalid backoff 2m\n"
        "    on done -> b\nfinal b: succeed\n"
    )
    retries = parse_source(source, "m.mgt").states[0].retries
    assert retries[0].count == 3 and retries[0].feedback
    assert [e.text for e in retries[0].events] == ["error", "timeout"]
    assert retries[0].backoff == ex.DurationLit(0.5, "500ms", S(4, 53, 4, 58))
    assert retries[1].count == -1 and retries[1].count_span == S(5, 11, 5, 13)
    assert retries[2].count == 0 and not retries[2].feedback
    assert retries[2].backoff is not None and retries[2].backoff.seconds == 120


def test_start_and_final_order_is_free() -> None:
    source = (
        "machine m\nfinal b: succeed\nstart a\ninput x: int = -3\nstate a:\n"
        "    run command \"x\"\n    on done -> b\nimport schemas from \"s\"\n"
    )
    m = parse_source(source, "m.mgt")
    assert m.start == ast.Ident("a", S(3, 7, 3, 8))
    assert m.inputs[0].default == ex.Literal(-3, S(4, 16, 4, 18))
    assert len(m.imports) == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("24h", 86400), ("7d", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    g = guard(f"x < {text}")
    assert isinstance(g, ex.Binary) and isinstance(g.right, ex.DurationLit)
    assert g.right.seconds == seconds and g.right.text == text


def test_precedence() -> None:
    g = guard("a or b and not c == d + e * f")
    assert isinstance(g, ex.Binary) and g.op == "or"
    right = g.right
    assert isinstance(right, ex.Binary) and right.op == "and"
    negation = right.right
    assert isinstance(negation, ex.Unary) and negation.op == "not"
    comparison = negation.operand
    assert isinstance(comparison, ex.Binary) and comparison.op == "=="
    total = comparison.right
    assert isinstance(total, ex.Binary) and total.op == "+"
    assert isinstance(total.right, ex.Binary) and total.right.op == "*"


def test_not_binds_looser_than_comparison_and_tighter_than_and() -> None:
    g = guard("not a == b and c")
    assert isinstance(g, ex.Binary) and g.op == "and"
    assert isinstance(g.left, ex.Unary) and g.left.op == "not"
    assert isinstance(g.left.operand, ex.Binary) and g.left.operand.op == "=="


def test_unary_minus_binds_tightest() -> None:
    g = guard("-a * b == -(c)")
    assert isinstance(g, ex.Binary) and g.op == "=="
    assert isinstance(g.left, ex.Binary) and g.left.op == "*"
    assert isinstance(g.left.left, ex.Unary) and g.left.left.op == "-"
    assert g.left.left.span == S(4, 18, 4, 20)
    assert isinstance(g.right, ex.Unary) and g.right.span == S(4, 28, 4, 32)


def test_parenthesised_comparisons_may_be_compared() -> None:
    g = guard("(a < b) == true")
    assert isinstance(g, ex.Binary) and isinstance(g.left, ex.Binary) and g.left.op == "<"


def test_left_associative_arithmetic() -> None:
    g = guard("1 - 2 - 3 == 0")
    assert isinstance(g, ex.Binary)
    minus = g.left
    assert isinstance(minus, ex.Binary) and minus.op == "-"
    assert isinstance(minus.left, ex.Binary) and minus.left.op == "-"


def test_in_and_not_in() -> None:
    g = guard('x in ["a", "b"]')
    assert isinstance(g, ex.Binary) and g.op == "in" and isinstance(g.right, ex.ListExpr)
    g = guard('x not in ["a"]')
    assert isinstance(g, ex.Unary) and g.op == "not"
    assert isinstance(g.operand, ex.Binary) and g.operand.op == "in"


def test_paths_indexing_and_precise_spans() -> None:
    g = guard("analyze.output.patterns[0].severity == \"critical\"")
    assert isinstance(g, ex.Binary)
    attr = g.left
    assert isinstance(attr, ex.Attr) and attr.name == "severity"
    # line 4 is `    on done when <expr> -> b`; the expression starts at column 18
    assert attr.span == S(4, 18, 4, 53)
    assert attr.name_span == S(4, 45, 4, 53)
    index = attr.obj
    assert isinstance(index, ex.Index) and index.index == ex.Literal(0, S(4, 42, 4, 43))
    assert index.span == S(4, 18, 4, 44)
    patterns = index.obj
    assert isinstance(patterns, ex.Attr) and patterns.name_span == S(4, 33, 4, 41)
    root = patterns.obj
    assert isinstance(root, ex.Attr) and root.name == "output"
    assert root.obj == ex.Name("analyze", S(4, 18, 4, 25))


def test_calls_with_it_and_func_span() -> None:
    g = guard('count(output.patterns, it.severity != "info") == 0')
    assert isinstance(g, ex.Binary)
    call = g.left
    assert isinstance(call, ex.Call) and call.func == "count" and len(call.args) == 2
    assert call.func_span == S(4, 18, 4, 23)
    assert call.span == S(4, 18, 4, 63)
    assert isinstance(call.args[1], ex.Binary)
    assert call.args[1].left == ex.Attr(
        ex.Name("it", S(4, 41, 4, 43)), "severity", S(4, 41, 4, 52), S(4, 44, 4, 52)
    )
    g = guard("len(x) > 0 and exists(y) and max(1, 2) >= min([3]) and sum(z) > 0")
    assert isinstance(g, ex.Binary)


def test_literals() -> None:
    g = guard('[1, 2.5, -4, "s", true, false, null, 1e3, []] == x')
    assert isinstance(g, ex.Binary) and isinstance(g.left, ex.ListExpr)
    values = [item.value for item in g.left.items if isinstance(item, ex.Literal)]
    assert values == [1, 2.5, -4, "s", True, False, None, 1000.0]
    assert g.left.items[-1] == ex.ListExpr((), S(4, 60, 4, 62))


def test_parentheses_widen_the_span() -> None:
    g = guard("(a + b) * 2 > 0")
    assert isinstance(g, ex.Binary) and isinstance(g.left, ex.Binary)
    assert g.left.left.span == S(4, 18, 4, 25)


def test_keywords_are_names_inside_expressions() -> None:
    g = guard("output.output and input.state == run.timeout")
    assert isinstance(g, ex.Binary)


def test_newlines_inside_brackets_continue_the_line() -> None:
    source = (
        'machine m\ninput e: enum("a",\n   "b")\nstate a:\n    run command "x"\n'
        "    on done when x in [1,\n  2,\n      3] -> b\nfinal b: succeed\n"
    )
    m = parse_source(source, "m.mgt")
    assert m.inputs[0].type.enum_values == ("a", "b")
    assert m.states[0].transitions[0].target.text == "b"


def test_strings_escapes_and_block_strings() -> None:
    source = (
        'machine m "tab\\there \\"q\\" \\\\ \\u00e9"\nstate a:\n'
        '    run polecat p prompt """\n        Classify the ticket.\n'
        '          Reply in JSON.\n        """\n    on done -> b\nfinal b: succeed\n'
    )
    m = parse_source(source, "m.mgt")
    assert m.description == 'tab\there "q" \\ é'
    assert m.states[0].run is not None
    assert m.states[0].run.prompt == "Classify the ticket.\n  Reply in JSON.\n"
    assert m.states[0].span.end_line == 7


def test_inline_block_string_is_kept_as_written() -> None:
    source = 'machine m """one "quoted" line"""\n'
    assert parse_source(source, "m.mgt").description == 'one "quoted" line'


def test_comments_blank_lines_and_line_endings() -> None:
    source = (
        "# leading comment\r\n\r\nmachine m # trailing\r\nstate a:\r\n"
        "    run command \"x\"\r\n# a comment at column 1 inside a block\r\n"
        "        # and one indented deeper\r\n\r\n    on done -> b\r\nfinal b: succeed"
    )
    m = parse_source("\ufeff" + source, "m.mgt")
    assert m.states[0].transitions[0].span == S(9, 5, 9, 17)


def test_a_machine_with_only_a_header() -> None:
    m = parse_source("machine m", "m.mgt")
    assert m.states == () and m.finals == ()
