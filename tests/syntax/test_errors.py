"""Syntax errors: each says what was expected, in the language's words, at the right place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mgt.diagnostics import Diagnostic, render
from mgt.errors import MgtError, ParseError, UsageError
from mgt.syntax import parse_file, parse_source

BASE = 'machine m\nstate a:\n    run formula x\n    on done -> b\nfinal b: succeed\n'


def rendered(source: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_source(source, "m.mgt")
    err = info.value
    return render(Diagnostic.error(err.message, err.span, err.hint), source)


def headline(source: str) -> str:
    return rendered(source).splitlines()[0]


def test_missing_arrow_names_what_comes_after_on_done() -> None:
    assert rendered(BASE.replace("on done -> b", "on done b")) == (
        "m.mgt:4:13: error: expected '->' and a state name or 'when' after 'on done', found 'b'\n"
        "   4 |     on done b\n"
        "                   ^"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("on done -> b", "on done",
         "m.mgt:4:12: error: expected '->' and a state name or 'when' after 'on done', "
         "found the end of the line"),
        ("on done -> b", "on done ->",
         "m.mgt:4:15: error: expected a state name after 'on done ->', found the end of the line"),
        ("on done ->", "on done when ->",
         "m.mgt:4:18: error: expected an expression after 'on done when', found '->'"),
        ("on done ->", "on done when (a ->",
         "m.mgt:4:21: error: expected ')' after 'on done when (a', found '->'"),
        ("on done ->", "on done when a b ->",
         "m.mgt:4:20: error: expected an operator or '->' and a state name after "
         "'on done when a', found 'b'"),
        ("run formula", "run formla",
         "m.mgt:3:9: error: expected formula, polecat, command, builtin or machine after 'run', "
         "found 'formla'"),
        ("run formula", "rn formula",
         "m.mgt:3:5: error: expected a clause (run, with, output, timeout, retry or on), "
         "found 'rn'"),
        ("state a:", "stat a:",
         "m.mgt:2:1: error: expected a declaration (import, input, start, state or final), "
         "found 'stat'"),
        ("succeed", "success",
         "m.mgt:5:10: error: expected 'fail' or 'succeed' after 'final b:', found 'success'"),
        ("state a:\n    run formula x", "state a: run formula x",
         "m.mgt:2:10: error: the clauses of a state go on the following lines, indented; "
         "found 'run' after 'state a:'"),
        ("    on done", "  on done",
         "m.mgt:4:1: error: this line is indented by 2 spaces, which matches no enclosing "
         "block (indent by 4 or 0)"),
        ("    on done", "\ton done",
         "m.mgt:4:1: error: tabs are not allowed in indentation; indent with spaces "
         "(4 recommended)"),
        ("run formula x", 'run command "abc',
         "m.mgt:3:17: error: this string is not closed on its line; close it with '\"' "
         "(use \"\"\" for text over several lines)"),
        ("run formula x", 'run command """abc',
         'm.mgt:3:17: error: this """ string is never closed'),
        ("on done", "on done @",
         "m.mgt:4:13: error: unexpected character '@'; expected '->' and a state name or 'when'"),
        ("run formula x", 'run command "a\\qb"',
         "m.mgt:3:17: error: unknown escape '\\q' in a string (known: \\n \\t \\r \\0 \\\\ \\\" "
         "\\uXXXX); write '\\\\' for a backslash"),
        ("    on done", "    timeout 5min\n    on done",
         "m.mgt:4:13: error: '5min' is not a number or a duration; durations are written "
         "500ms, 30s, 5m, 24h or 7d"),
        ("    on done", "    retry 1.5 on error\n    on done",
         "m.mgt:4:11: error: a retry count is a whole number, not '1.5'"),
        ("    on done", "    run formula y\n    on done",
         "m.mgt:4:5: error: state 'a' has a second 'run' clause (the first is on line 3); "
         "a state has at most one"),
        ("    on done", "    output A\n    output B\n    on done",
         "m.mgt:5:5: error: state 'a' has a second 'output' clause (the first is on line 4); "
         "a state has at most one"),
        ("final b: succeed\n", "final b: succeed\nstart a\nstart b\n",
         "m.mgt:7:1: error: a second 'start' declaration; the machine already starts at 'a' "
         "(line 6)"),
        ("state a:\n", "    state a:\n",
         "m.mgt:2:5: error: unexpected indentation (only the clauses of a state are indented)"),
        ("machine m", "  machine m", "m.mgt:1:1: error: the first line must not be indented"),
    ],
)
def test_messages(old: str, new: str, expected: str) -> None:
    assert headline(BASE.replace(old, new, 1)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("a < b < c", "comparisons cannot be chained; write 'a < b and b < c'"),
        ("a == b in c", "comparisons cannot be chained; write 'a == b and b in c'"),
        ("x not in a != b", "comparisons cannot be chained; write 'a not in b and b != c'"),
    ],
)
def test_chained_comparisons(expression: str, message: str) -> None:
    assert message in headline(BASE.replace("on done ->", f"on done when {expression} ->"))


def test_missing_block() -> None:
    assert headline("machine m\nstate a:\nfinal b: succeed\n") == (
        "m.mgt:3:1: error: expected an indented block of clauses (run, with, output, timeout, "
        "retry, on) after 'state a:'"
    )


def test_missing_input_type() -> None:
    assert headline("machine m\ninput x\n") == (
        "m.mgt:2:8: error: expected ':' after 'input x', found the end of the line"
    )


def test_unclosed_bracket_at_the_end_of_the_file() -> None:
    assert headline("machine m\ninput x: int = (1 +\n") == (
        "m.mgt:2:20: error: expected an expression after 'input x: int = (1 +', "
        "found the end of the file"
    )


def test_a_file_must_start_with_machine() -> None:
    assert headline("state a:\n  run formula x\n") == (
        "m.mgt:1:1: error: a machine file starts with 'machine NAME', found 'state'"
    )
    assert headline("# only a comment\n") == (
        "m.mgt:1:17: error: a machine file starts with 'machine NAME', found the end of the file"
    )


@pytest.mark.parametrize("source", ["", "   \n\n", "\ufeff"])
def test_empty_source(source: str) -> None:
    assert headline(source) == (
        "m.mgt:1:1: error: the file is empty; a machine starts with 'machine NAME'"
    )


def test_keyword_typos_get_a_suggestion() -> None:
    assert rendered(BASE.replace("state a:", "stat a:")).endswith("help: did you mean 'state'?")
    assert rendered(BASE.replace("run formula", "run formla")).endswith(
        "help: did you mean 'formula'?"
    )


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 10_000 + "x" + ")" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        "not " * 10_000 + "x",
        "- " * 10_000 + "x",
        "+".join(["x"] * 100_000),
        "x" + ".a" * 20_000,
        "x" + "[0]" * 20_000,
        "count(" * 200 + "x" + ", it)" * 200,
    ],
    ids=["parens", "brackets", "not", "minus", "sum", "fields", "indexes", "calls"],
)
def test_deep_nesting_is_an_error_not_a_crash(expression: str) -> None:
    message = headline(BASE.replace("on done ->", f"on done when {expression} ->"))
    assert "nested too deeply (more than 100 levels)" in message


def test_nesting_just_below_the_limit_parses() -> None:
    parse_source(BASE.replace("on done ->", f"on done when {'(' * 90}x{')' * 90} ->"), "m.mgt")


def test_a_one_megabyte_line() -> None:
    long_string = BASE.replace("run formula x", 'run command "' + "x" * 1_000_000 + '"')
    machine = parse_source(long_string, "m.mgt")
    assert machine.states[0].run is not None
    assert len(machine.states[0].run.command or "") == 1_000_000
    garbage = BASE.replace("on done", "on done " + "@" * 1_000_000)
    assert rendered(garbage).splitlines()[1].endswith("...")


def test_huge_numbers() -> None:
    assert "is too large" in headline(BASE.replace("on done ->", f"on done when {'9' * 5000} ->"))
    assert "is too large" in headline(BASE.replace("on done ->", "on done when 1e999 ->"))


def test_nul_bytes() -> None:
    assert headline("machine m\n\0\0") == (
        "m.mgt:2:1: error: this is not a text file (it contains NUL bytes)"
    )


# ---- files ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        parse_file(tmp_path / "nope.mgt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        parse_file(tmp_path)


def test_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.mgt"
    path.write_bytes(b"machine m\nstate a\xff:\n")
    with pytest.raises(ParseError) as info:
        parse_file(path)
    assert info.value.message == "this file is not valid UTF-8 text (byte 0xff at offset 17)"
    assert info.value.span is not None
    assert (info.value.span.line, info.value.span.column) == (2, 8)


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mgt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(MgtError):
        parse_file(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files of any mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.mgt"
    path.write_text(BASE)
    path.chmod(0)
    with pytest.raises(UsageError, match="cannot read"):
        parse_file(path)


# ---- every syntax error, not just the first ---------------------------------


def test_parse_errors_resumes_at_the_next_declaration() -> None:
    from mgt.syntax import parse_errors

    source = (
        "machine m\nstate a:\n    run command \"x\"\n    on done b\n"
        "state b:\n    run comand \"y\"\n    on done -> c\nfinal c succeed\n"
    )
    errors = parse_errors(source, "m.mgt")
    assert [(e.span.line, e.span.column) for e in errors if e.span] == [(4, 13), (6, 9), (8, 9)]


def test_parse_errors_of_valid_text_is_empty() -> None:
    from mgt.syntax import parse_errors

    assert parse_errors(BASE, "m.mgt") == []


def test_parse_errors_stops_at_an_unclosed_block_string() -> None:
    from mgt.syntax import parse_errors

    source = 'machine m\nstate a:\n    run command """x\n\nstate b:\n    oops\n'
    assert [e.message for e in parse_errors(source, "m.mgt")] == [
        'this """ string is never closed'
    ]
