"""Every syntax error over a sweep of broken sources speaks the language, never the grammar's
internals (`__operand_star_6`, `expr`, `__ANON_0`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mgt.errors import ParseError
from mgt.syntax import parse_source

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "machines" / "evolve.mgt",
    *sorted((ROOT / "tests" / "cases").glob("domain_*.mgt")),
]
NOISE = ["{", "}", "@", "?", "`", "$", ":", "=", ",", "(", ")", "[", "]", ".", "-", "!", "'", "|"]
# Grammar rules lark would name: lower-case words that are no keyword of the language.
RULES = re.compile(
    r"__|_star|_plus|\b(atom|postfix|operand|expr|arguments|binding|type_ref|final_status|"
    r"run_clause|with_clause|on_clause|retry_clause|anon_\d+)\b"
)


def _broken(source: str) -> list[str]:
    """The source cut short at every few characters, and with noise put at every few places."""
    step = max(1, len(source) // 150)
    out = [source[:at] for at in range(0, len(source), step)]
    for i, at in enumerate(range(0, len(source), step)):
        out.append(source[:at] + NOISE[i % len(NOISE)] + source[at:])
    return out


def _message(source: str) -> str | None:
    try:
        parse_source(source, "m.mgt")
    except ParseError as err:
        return err.message + (f" ({err.hint})" if err.hint else "")
    return None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_syntax_error_names_a_grammar_rule(path: Path) -> None:
    messages = {m for m in map(_message, _broken(path.read_text(encoding="utf-8"))) if m}
    assert len(messages) > 20  # the sweep does reach the parser's corners
    # what the user wrote is quoted ('count(output.patterns'): only the rest is ours
    leaks = sorted(m for m in messages if RULES.search(re.sub(r"'[^']*'", "''", m)))
    assert leaks == []
