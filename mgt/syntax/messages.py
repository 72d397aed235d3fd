"""lark's parse failures → a `ParseError` that says what was expected, in the user's words.

lark reports terminal names (`ARROW`, `_NL`, `__ANON_0`); a user wrote `on done`
and forgot the arrow. The message names what may come next ("'->' and a state
name"), what came instead, and the words before it on the line, so it reads
"expected '->' and a state name after 'on done', found 'failed'".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mgt.diagnostics import did_you_mean
from mgt.errors import ParseError
from mgt.span import Span

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lark import Token
    from lark.exceptions import UnexpectedInput

__all__ = ["describe_lark_error", "unexpected_character"]

_CLAUSES = ("RUN", "WITH", "OUTPUT", "TIMEOUT", "RETRY", "ON")
_DECLARATIONS = ("IMPORT", "INPUT", "START", "STATE", "FINAL")
_RUN_KINDS = ("FORMULA", "POLECAT", "COMMAND", "BUILTIN", "MACHINE")
_OPERAND = frozenset(
    {"NAME", "NUMBER", "STRING", "LONG_STRING", "DURATION", "LSQB", "LPAR", "LBRACE"}
)
_OPERATORS = frozenset({"PLUS", "STAR", "SLASH", "COMPARE", "AND", "OR", "COALESCE"})

# What each terminal is, in the words of the language reference.
_WORDS = {
    "NAME": "a name",
    "REF": "a name",
    "NUMBER": "a number",
    "DURATION": "a duration such as 30s, 5m or 24h",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "COMPARE": "a comparison (== != < <= > >=)",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "the end of the file",
    "ARROW": "'->' and a state name",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "DOT": "'.'",
}

# Names for what the user wrote instead.
_FOUND = {
    "_NL": "the end of the line",
    "_INDENT": "an indented line",
    "_DEDENT": "a line that is less indented",
    "$END": "the end of the file",
}


def describe_lark_error(
    err: UnexpectedInput, source: str, filename: str, literals: Mapping[str, str]
) -> ParseError:
    """Turn a lark parse failure into one `ParseError` positioned at the offending text.

    `literals` maps terminal names to their text (`ARROW` → `->`).
    """
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(err, UnexpectedToken):
        expected = _accepted(err) or set(err.expected)
        return _unexpected_token(err.token, expected, source, filename, literals)
    if isinstance(err, UnexpectedCharacters):
        accepted = _accepted(err) or set(err.allowed or ())
        return unexpected_character(source, err.line, err.column, accepted, filename, literals)
    if isinstance(err, UnexpectedEOF):
        lines = source.count("\n") or 1
        words = _expected_words(_accepted(err) or set(err.expected), literals)
        return ParseError(
            f"expected {words}, found the end of the file", Span.point(filename, lines, 1)
        )
    return ParseError(str(err).splitlines()[0], Span.point(filename, 1, 1))


def _accepted(err: UnexpectedInput) -> set[str]:
    """What the parser would really accept here (lark's `expected` is the lexer's wider set)."""
    interactive = getattr(err, "interactive_parser", None)
    if interactive is None:
        return set()
    try:
        accepted: set[str] = set(interactive.accepts())
    except Exception:  # the error report must not fail; fall back to lark's own set
        return set()
    return accepted


def _unexpected_token(
    token: Token, expected: set[str], source: str, filename: str, literals: Mapping[str, str]
) -> ParseError:
    lines = source.split("\n")
    if token.type == "$END" or not token.line:
        line = max(1, len(lines) - 1 if lines and lines[-1] == "" else len(lines))
        while line > 1 and not lines[line - 1].strip():
            line -= 1
        column = len(lines[line - 1]) + 1
        span = Span.point(filename, line, column)
        found = "the end of the file"
    else:
        line, column = token.line, token.column or 1
        if token.type in ("_NL", "_INDENT", "_DEDENT"):
            # lark puts a newline token where the newline is: the end of the line.
            span = Span.point(filename, line, column)
        else:
            end_line = token.end_line or line
            end_column = token.end_column or column + len(token.value)
            span = Span(filename, line, column, end_line, end_column)
        found = _found(token)
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    before = _code(text[: column - 1])
    if not before and token.type in ("_INDENT", "_DEDENT", "$END"):
        before = _previous_code_line(lines, line)

    message = _special_case(
        token, expected, before or _previous_code_line(lines, line), text[column - 1 :]
    )
    hint = None
    if message is None:
        message = f"expected {_expected_words(expected, literals)}"
        if before:
            message += f" after '{_shorten(before)}'"
        message += f", found {found}"
    if token.type in ("NAME", "REF"):
        keywords = [literals[t] for t in expected if t in literals]
        hint = did_you_mean(str(token), keywords)
    return ParseError(message, span, hint)


def _code(text: str) -> str:
    # lark's newline token swallows comments; keep the code only
    if "#" in text:
        text = text.split("#", 1)[0]
    return text.strip()


def _previous_code_line(lines: list[str], line: int) -> str:
    for number in range(line - 1, 0, -1):
        code = _code(lines[number - 1])
        if code:
            return code
    return ""


def _special_case(token: Token, expected: set[str], before: str, rest: str) -> str | None:
    """Messages for mistakes common enough to deserve their own words."""
    if token.type == "_INDENT":
        return "unexpected indentation (only the clauses of a state are indented)"
    if token.type == "NUMBER" and rest[len(str(token)) : len(str(token)) + 1].isalpha():
        word = rest.split()[0] if rest.split() else str(token)
        return (
            f"'{_shorten(word)}' is not a number or a duration; "
            "durations are written 500ms, 30s, 5m, 24h or 7d"
        )
    if str(token) == ">" and before.endswith("-") and "ARROW" not in expected:
        return f"expected an expression before '->', after '{_shorten(before[:-1].strip())}'"
    if expected == {"MACHINE"} or ("MACHINE" in expected and not before):
        return f"a machine file starts with 'machine NAME', found {_found(token)}"
    if expected == {"_INDENT"}:
        return (
            "expected an indented block of clauses (run, with, output, timeout, retry, on) "
            f"after '{_shorten(before)}'"
        )
    if expected == {"NAME"} and before.endswith("->"):
        return f"expected a state name after '{_shorten(before)}', found {_found(token)}"
    if "_NL" in expected and before.startswith("state ") and before.endswith(":"):
        return (
            "the clauses of a state go on the following lines, indented; "
            f"found {_found(token)} after '{_shorten(before)}'"
        )
    return None


def unexpected_character(
    source: str,
    line: int,
    column: int,
    accepted: set[str],
    filename: str,
    literals: Mapping[str, str],
) -> ParseError:
    """A character that starts no token at all (an unclosed string, `@`, a stray tab)."""
    lines = source.split("\n")
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    char = text[column - 1] if 0 < column <= len(text) else "\n"
    span = Span.point(filename, line, column)
    if char == '"':
        if text[: column - 1].endswith('""') or text[column - 1 :].startswith('"""'):
            start = text.rfind('"""', 0, column + 2) + 1 or column
            return ParseError('this """ string is never closed', Span.point(filename, line, start))
        return ParseError(
            "this string is not closed on its line; close it with '\"' "
            "(use \"\"\" for text over several lines)",
            span,
        )
    if char == "\t":
        return ParseError("tabs are not allowed in indentation; indent with spaces", span)
    shown = char if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"
    message = f"unexpected character '{shown}'"
    if accepted:
        message += f"; expected {_expected_words(accepted, literals)}"
    return ParseError(message, span)


def _is_user_terminal(name: str, literals: Mapping[str, str]) -> bool:
    """Whether `name` is a terminal a user can be told about.

    A parse-table row lists grammar rules too (`expr`, `atom`, `__operand_star_6`: lower
    case in lark), and lark names terminals it made itself `__ANON_n` and `__IGNORE_n`;
    none of these mean anything to a user. An anonymous terminal with a known text stays.
    """
    if name == "$END":
        return True
    if name.startswith("__"):
        return name.startswith("__ANON") and name in literals
    return name.lstrip("_")[:1].isupper()


def _expected_words(expected: set[str], literals: Mapping[str, str]) -> str:
    expected = {t for t in expected if _is_user_terminal(t, literals)}
    phrases: list[str] = []
    # "or the end of the block/file" is true after any complete clause or declaration,
    # and only distracts from what the user meant to write.
    if expected >= set(_DECLARATIONS):
        phrases.append("a declaration (import, input, start, state or final)")
        expected -= {*_DECLARATIONS, "$END"}
    if expected >= set(_CLAUSES):
        phrases.append("a clause (run, with, output, timeout, retry or on)")
        # the fan-out clauses are rarer; naming them here would bury the common ones
        expected -= {*_CLAUSES, "_DEDENT", "FOR", "TOLERATE", "CANCEL", "BRANCH"}
    if set(_RUN_KINDS) <= expected:
        phrases.append("formula, polecat, command, builtin or machine")
        expected -= set(_RUN_KINDS)
    if expected >= _OPERAND:
        phrases.append("an expression")
        expected -= _OPERAND | {"MINUS", "NOT", "TRUE", "FALSE", "NULL"}
    if expected >= _OPERATORS:
        phrases.append("an operator")
        # '(' and '.' and '[' after a name are calls, fields and indexing: too fine to list
        expected -= _OPERATORS | {"MINUS", "IN", "NOT", "DOT", "LSQB", "LPAR"}
    words = {_word(t, literals) for t in expected}
    words.discard("")
    phrases.extend(sorted(words - set(phrases), key=_order))
    if not phrases:
        return "something else"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _order(word: str) -> tuple[int, str]:
    # Quoted tokens first, then descriptions, then the end of the line/block/file.
    if word.startswith("'"):
        return (0, word)
    if word.startswith("the end"):
        return (2, word)
    return (1, word)


def _word(terminal: str, literals: Mapping[str, str]) -> str:
    if terminal in _WORDS:
        return _WORDS[terminal]
    literal = literals.get(terminal)
    return f"'{literal}'" if literal else terminal.lower()


def _found(token: Token) -> str:
    if token.type in _FOUND:
        return _FOUND[token.type]
    text = str(token)
    if token.type in ("STRING", "LONG_STRING"):
        return "a string"
    return f"'{_shorten(text)}'"


def _shorten(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]
