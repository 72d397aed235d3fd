""".mgt source text → lark tokens, with `_INDENT`/`_DEDENT` for blocks (a lark custom lexer).

Why not lark's own contextual lexer plus a post-lexer: on a 500-state machine
they spent most of the parse time per token. This lexer scans with one compiled
regular expression built from the terminals of `grammar/mgt.lark` (so the
grammar stays the single source of the syntax) and, like lark's contextual
lexer, asks the parser which terminals it accepts to decide whether a word is a
keyword, a plain name or a dashed definition name (`file-pr`).

Blocks work like Python's: a newline inside brackets or right after a comma
continues the line (a `with` clause may run over several lines); a deeper
indentation opens a block and a shallower one closes blocks back to a level
opened before. Tabs in indentation and brackets nested deeper than
`MAX_NESTING` are errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.lexer import Lexer, LexerState, PatternStr

from mgt.errors import ParseError
from mgt.span import Span

__all__ = ["MAX_NESTING", "MgtLexer"]

#: Deepest bracket nesting accepted; deeper expressions are refused before they are built.
MAX_NESTING = 100

# Terminals scanned by their grammar regex, in the order they are tried.
_SCANNED = ("_NL", "LONG_STRING", "STRING", "DURATION", "NUMBER", "REF", "COMPARE")
_OPEN = frozenset({"LPAR", "LSQB", "LBRACE"})
_CLOSE = frozenset({"RPAR", "RSQB", "RBRACE"})


class MgtLexer(Lexer):
    """A lark lexer (future interface 2: it sees the parser state) for .mgt text."""

    __future_interface__ = 2

    def __init__(self, conf: Any) -> None:
        by_name = {t.name: t for t in conf.terminals}
        self.keywords: dict[str, str] = {}
        self.punctuation: dict[str, str] = {}
        for t in conf.terminals:
            if isinstance(t.pattern, PatternStr):
                value = t.pattern.value
                if value.isidentifier():
                    self.keywords[value] = t.name
                else:
                    self.punctuation[value] = t.name
        groups = [
            f"(?P<{name.strip('_')}>{by_name[name].pattern.to_regexp()})" for name in _SCANNED
        ]
        # Blanks before a token are part of its match (one regex call per token); a
        # comment is skipped on its own.
        blanks = "|".join(by_name[n].pattern.to_regexp() for n in conf.ignore if n != "COMMENT")
        groups.insert(1, f"(?P<SKIP>{by_name['COMMENT'].pattern.to_regexp()})")
        marks = "|".join(re.escape(p) for p in sorted(self.punctuation, key=len, reverse=True))
        groups.append(f"(?P<PUNCT>{marks})")
        self.scanner = re.compile(f"(?:{blanks})?(?:{'|'.join(groups)})")
        self.blanks = re.compile(blanks)
        self.file = "<source>"

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text: str = lexer_state.text.text
        states = parser_state.parse_conf.states
        stack = parser_state.state_stack  # the parser's live stack: its top is where it is
        match_at = self.scanner.match
        punctuation = self.punctuation
        levels = [0]
        depth = 0
        previous = ""
        pos = 0
        line = 1
        line_start = 0
        end = len(text)
        while pos < end:
            m = match_at(text, pos)
            if m is None:
                blank = self.blanks.match(text, pos)
                if blank is not None and blank.end() == end:
                    break  # trailing blanks
                at = blank.end() if blank is not None else pos
                accepts = states[parser_state.position]
                raise self._bad_character(text, at, line, line_start, accepts)
            kind = m.lastgroup or ""
            value = m.group(kind)
            pos = m.start(kind)
            column = pos - line_start + 1
            if kind == "SKIP":
                pos = m.end()
                continue
            if kind == "NL":
                newlines = value.count("\n")
                last = value.rfind("\n")
                new_line = line + newlines
                new_start = pos + last + 1
                if depth == 0 and previous not in ("COMMA", ""):
                    yield Token("_NL", value, pos, line, column, new_line, 1, m.end())
                    previous = "_NL"
                    yield from self._indent(value[last + 1 :], levels, new_line, new_start)
                line, line_start, pos = new_line, new_start, m.end()
                continue
            if kind == "REF":
                kind = self._word(value, states[stack[-1]])
                if kind == "NAME" and "-" in value:
                    value = value[: value.index("-")]
            elif kind == "PUNCT":
                kind = punctuation[value]
                if kind in _OPEN:
                    depth += 1
                    if depth > MAX_NESTING:
                        raise ParseError(
                            f"brackets nested too deeply (more than {MAX_NESTING} levels); "
                            "split the expression up",
                            Span(self.file, line, column, line, column + 1),
                        )
                elif kind in _CLOSE and depth > 0:
                    depth -= 1
            elif kind == "LONG_STRING" and "\n" in value:
                start_line, start_column = line, column
                line += value.count("\n")
                line_start = pos + value.rfind("\n") + 1
                stop = pos + len(value)
                yield Token(
                    kind, value, pos, start_line, start_column, line, stop - line_start + 1, stop
                )
                previous = kind
                pos = stop
                continue
            stop = pos + len(value)
            if previous == "" and column != 1:
                raise ParseError(
                    "the first line must not be indented", Span(self.file, line, 1, line, column)
                )
            yield Token(kind, value, pos, line, column, line, column + len(value), stop)
            previous = kind
            pos = stop
        if previous not in ("_NL", "") and depth == 0:
            yield Token("_NL", "\n", pos, line, pos - line_start + 1, line + 1, 1, pos)
        while len(levels) > 1:
            levels.pop()
            yield Token("_DEDENT", "", pos, line, 1, line, 1, pos)

    def literals(self) -> dict[str, str]:
        """Terminal name → the text it stands for (`ARROW` → `->`), for error messages."""
        table = {name: value for value, name in self.keywords.items()}
        table.update({name: value for value, name in self.punctuation.items()})
        return table

    def _word(self, word: str, accepts: Any) -> str:
        keyword = self.keywords.get(word)
        if keyword is not None and keyword in accepts:
            return keyword
        if "REF" in accepts:
            return "REF"
        if "NAME" in accepts:
            return "NAME"
        # Nothing fits: report the keyword as a keyword, anything else as a name.
        return keyword or "NAME"

    def _indent(
        self, indentation: str, levels: list[int], line: int, offset: int
    ) -> Iterator[Token]:
        if "\t" in indentation:
            column = indentation.index("\t") + 1
            raise ParseError(
                "tabs are not allowed in indentation; indent with spaces (4 recommended)",
                Span(self.file, line, column, line, column + 1),
            )
        indent = len(indentation)
        here = offset + indent
        if indent > levels[-1]:
            levels.append(indent)
            yield Token("_INDENT", "", here, line, indent + 1, line, indent + 1, here)
            return
        if indent not in levels:
            choices = " or ".join(str(level) for level in reversed(levels))
            raise ParseError(
                f"this line is indented by {indent} spaces, which matches no enclosing block "
                f"(indent by {choices})",
                Span(self.file, line, 1, line, indent + 1),
            )
        while indent < levels[-1]:
            levels.pop()
            yield Token("_DEDENT", "", here, line, indent + 1, line, indent + 1, here)

    def _bad_character(
        self, text: str, pos: int, line: int, line_start: int, accepts: Any
    ) -> ParseError:
        from mgt.syntax.messages import unexpected_character

        return unexpected_character(
            text, line, pos - line_start + 1, set(accepts), self.file, self.literals()
        )
