""".mgt source text (or a file path) → `MachineDecl`, or a `ParseError` with a span and plain words.

The LALR parser is built once per process from `grammar/mgt.lark` (lark caches
the grammar analysis on disk, keyed by the grammar's hash) and builds AST nodes
while it parses. Every way reading or parsing can fail ends as an `MgtError`:
unreadable files as `UsageError`, bad text as `ParseError`.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.ast import MachineDecl
from mgt.errors import MgtError, ParseError, UsageError
from mgt.span import Span

if TYPE_CHECKING:
    from lark import Lark

    from mgt.syntax.builder import Builder
    from mgt.syntax.lexer import MgtLexer

__all__ = [
    "GRAMMAR_PATH",
    "decode_source",
    "parse_errors",
    "parse_file",
    "parse_source",
    "read_source",
]

GRAMMAR_PATH = Path(__file__).resolve().parent.parent.parent / "grammar" / "mgt.lark"
# mgt/data/mgt.lark is a symlink to the grammar, so an installed wheel carries a copy.
_PACKAGED_GRAMMAR = Path(__file__).resolve().parent.parent / "data" / "mgt.lark"

#: Larger files are refused before parsing (a machine is a page or two of text).
MAX_SOURCE_BYTES = 16 * 1024 * 1024

_lock = threading.Lock()
_parser: tuple[Lark, Builder, MgtLexer, _Driver | None] | None = None


def _grammar_text() -> str:
    for path in (GRAMMAR_PATH, _PACKAGED_GRAMMAR):
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            continue
    raise MgtError(f"the .mgt grammar is missing (looked for {GRAMMAR_PATH}); reinstall mgt")


def _build() -> tuple[Lark, Builder, MgtLexer, _Driver | None]:
    from lark import Lark

    from mgt.syntax.builder import Builder
    from mgt.syntax.lexer import MgtLexer

    builder = Builder()
    text = _grammar_text()
    options: dict[str, object] = {
        "parser": "lalr",
        "lexer": MgtLexer,
        "transformer": builder,
        "maybe_placeholders": True,
    }
    try:
        lark = Lark(text, cache=True, **options)
    except OSError:  # an unwritable temp dir: build without the on-disk cache
        lark = Lark(text, **options)
    lexer: MgtLexer = lark.parser.lexer
    try:
        driver: _Driver | None = _Driver(lark)
    except Exception:  # a lark whose internals differ: its own loop is correct, just slower
        driver = None
    return lark, builder, lexer, driver


def _get_parser() -> tuple[Lark, Builder, MgtLexer, _Driver | None]:
    global _parser
    if _parser is None:
        _parser = _build()
    return _parser


def parse_source(text: str, filename: str = "<source>") -> MachineDecl:
    """Parse .mgt text into a `MachineDecl`; raise `ParseError` (with a span) if it is not valid."""
    from lark.exceptions import UnexpectedInput

    from mgt.syntax.messages import describe_lark_error

    source = normalize(text)
    if "\0" in source:
        line = source.count("\n", 0, source.index("\0")) + 1
        raise ParseError(
            "this is not a text file (it contains NUL bytes)", Span.point(filename, line, 1)
        )
    if not source.strip():
        raise ParseError(
            "the file is empty; a machine starts with 'machine NAME'", Span.point(filename, 1, 1)
        )
    with _lock:
        lark, builder, lexer, driver = _get_parser()
        builder.reset(filename)
        lexer.file = filename
        try:
            if driver is not None:
                machine: MachineDecl = driver.parse(source)
            else:
                machine = lark.parse(source)  # type: ignore[assignment]
        except UnexpectedInput as err:
            raise describe_lark_error(err, source, filename, lexer.literals()) from None
        except RecursionError:
            raise ParseError(
                "the file nests too deeply to parse", Span.point(filename, 1, 1)
            ) from None
        finally:
            builder.reset("<source>")
    return machine


class _Driver:
    """lark's LALR tables run by a tighter loop than lark's own (same tables, same callbacks).

    lark looks each reduction's callback up by hashing its `Rule` object and wraps
    every step in a method call; with the tables flattened once into plain tuples a
    500-state machine parses markedly faster. Errors are raised exactly as lark
    raises them (with an interactive parser), so messages come out the same.
    """

    def __init__(self, lark: Lark) -> None:
        from lark.parsers.lalr_analysis import Shift

        frontend = lark.parser
        self.frontend = frontend
        self.parser = frontend.parser.parser  # lark's _Parser: parse_table + callbacks
        table = self.parser.parse_table
        callbacks = self.parser.callbacks
        self.start_state: int = table.start_states["start"]
        self.end_state: int = table.end_states["start"]
        # state → terminal → (True, next state) or (False, (size, callback, rule name))
        self.actions: dict[int, dict[str, tuple[bool, Any]]] = {}
        self.gotos: dict[int, dict[str, int]] = {}
        for state, row in table.states.items():
            actions: dict[str, tuple[bool, Any]] = {}
            gotos: dict[str, int] = {}
            for symbol, (action, arg) in row.items():
                if action is Shift:
                    if symbol.isupper() or symbol.startswith("$"):
                        actions[symbol] = (True, arg)
                    else:
                        gotos[symbol] = arg
                else:
                    actions[symbol] = (False, (len(arg.expansion), callbacks[arg], arg.origin.name))
            self.actions[state] = actions
            self.gotos[state] = gotos
        if callbacks and any(isinstance(k, str) for k in callbacks):
            raise ValueError("terminal callbacks are not supported by the fast loop")

    def parse(self, text: str) -> Any:
        from lark import Token
        from lark.exceptions import UnexpectedToken
        from lark.lexer import LexerThread
        from lark.parsers.lalr_interactive_parser import InteractiveParser
        from lark.parsers.lalr_parser_state import ParseConf, ParserState

        thread = LexerThread.from_text(self.frontend.lexer, text)
        conf = ParseConf(self.parser.parse_table, self.parser.callbacks, "start")
        state = ParserState(conf, thread)
        states = state.state_stack
        values = state.value_stack
        actions = self.actions
        gotos = self.gotos

        def fail(token: Token) -> Exception:
            expected = set(actions[states[-1]])
            error: Exception = UnexpectedToken(  # type: ignore[no-untyped-call]
                token,
                expected,
                state=state,
                interactive_parser=InteractiveParser(self.parser, state, thread),
            )
            return error

        def reduce(rule: tuple[int, Any, str]) -> None:
            size, callback, origin = rule
            if size:
                children = values[-size:]
                del states[-size:]
                del values[-size:]
            else:
                children = []
            values.append(callback(children))
            states.append(gotos[states[-1]][origin])

        token: Token | None = None
        tokens: Any = thread.lex(state)  # type: ignore[no-untyped-call]
        for token in tokens:
            kind = token.type
            while True:
                entry = actions[states[-1]].get(kind)
                if entry is None:
                    raise fail(token)
                if entry[0]:
                    states.append(entry[1])
                    values.append(token)
                    break
                reduce(entry[1])
        end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
        while True:
            entry = actions[states[-1]].get("$END")
            if entry is None or entry[0]:
                raise fail(end)
            reduce(entry[1])
            if states[-1] == self.end_state:
                return values[-1]


_DECLARATION = re.compile(r"^(?:import|input|start|state|final)\b", re.MULTILINE)


def parse_errors(text: str, filename: str = "<source>", limit: int = 20) -> list[ParseError]:
    """Every syntax error in `text`, not just the first (empty when it parses).

    After an error, parsing starts again at the next line that begins a top-level
    declaration, with the lines before it blanked so positions stay the same. Each
    declaration is parsed at most once, so an error in one state does not hide an
    error in the next.
    """
    source = normalize(text)
    errors: list[ParseError] = []
    current = source
    while len(errors) < limit:
        try:
            parse_source(current, filename)
            break
        except ParseError as err:
            if any(e.message == err.message and e.span == err.span for e in errors):
                break
            errors.append(err)
            if err.span is None or "never closed" in err.message:
                break
            after = err.span.end_line if err.span.end_line > err.span.line else err.span.line
            resume = _next_declaration(source, after)
            if resume is None:
                break
            # Line 1 stays a machine header; blank lines keep every later position.
            current = "machine _" + "\n" * (resume - 1) + _from_line(source, resume)
    return errors


def _next_declaration(source: str, after_line: int) -> int | None:
    start = 0
    for _ in range(after_line):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    match = _DECLARATION.search(source, start)
    return source.count("\n", 0, match.start()) + 1 if match else None


def _from_line(source: str, line: int) -> str:
    start = 0
    for _ in range(line - 1):
        start = source.find("\n", start) + 1
    return source[start:]


def normalize(text: str) -> str:
    """The text as the parser sees it: no byte-order mark, `\\n` line ends, a final newline."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text


def read_source(path: str | os.PathLike[str]) -> str:
    """Read a .mgt file as text; unreadable or non-UTF-8 files raise an `MgtError`."""
    name = os.fspath(path)
    p = Path(name)
    try:
        if p.is_dir():
            raise UsageError(f"{name}: is a directory, not a .mgt file")
        if not p.exists():
            raise UsageError(f"{name}: no such file")
        size = p.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise UsageError(
                f"{name}: too large for a machine ({size} bytes; the limit is {MAX_SOURCE_BYTES})"
            )
        data = p.read_bytes()
    except UsageError:
        raise
    except OSError as err:
        raise UsageError(f"{name}: cannot read: {err.strerror or err}") from None
    return decode_source(data, name)


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 bytes → text; invalid UTF-8 is a `ParseError` pointing at the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        raise ParseError(
            f"this file is not valid UTF-8 text (byte 0x{data[err.start]:02x} at offset "
            f"{err.start})",
            Span.point(filename, line, column),
        ) from None


def parse_file(path: str | os.PathLike[str]) -> MachineDecl:
    """Read and parse a .mgt file (see `parse_source`)."""
    name = os.fspath(path)
    return parse_source(read_source(name), name)
