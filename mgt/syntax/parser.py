""".mgt source text (or a file path) → `MachineDecl`, or a `ParseError` with a span and plain words.

The LALR parser is built once per process from `grammar/mgt.lark` (lark caches
the grammar analysis on disk, keyed by the grammar's hash) and builds AST nodes
while it parses. Every way reading or parsing can fail ends as an `MgtError`:
unreadable files as `UsageError`, bad text as `ParseError`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mgt.ast import MachineDecl
from mgt.errors import MgtError, ParseError, UsageError
from mgt.span import Span

if TYPE_CHECKING:
    from lark import Lark

    from mgt.syntax.builder import Builder
    from mgt.syntax.lexer import MgtLexer

__all__ = ["GRAMMAR_PATH", "decode_source", "parse_file", "parse_source", "read_source"]

GRAMMAR_PATH = Path(__file__).resolve().parent.parent.parent / "grammar" / "mgt.lark"
_PACKAGED_GRAMMAR = Path(__file__).resolve().parent.parent / "data" / "mgt.lark"

#: Larger files are refused before parsing (a machine is a page or two of text).
MAX_SOURCE_BYTES = 16 * 1024 * 1024

_lock = threading.Lock()
_parser: tuple[Lark, Builder, MgtLexer] | None = None


def _grammar_text() -> str:
    for path in (GRAMMAR_PATH, _PACKAGED_GRAMMAR):
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            continue
    raise MgtError(f"the .mgt grammar is missing (looked for {GRAMMAR_PATH}); reinstall mgt")


def _build() -> tuple[Lark, Builder, MgtLexer]:
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
    return lark, builder, lexer


def _get_parser() -> tuple[Lark, Builder, MgtLexer]:
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
        lark, builder, lexer = _get_parser()
        builder.reset(filename)
        lexer.file = filename
        try:
            machine: MachineDecl = lark.parse(source)  # type: ignore[assignment]
        except UnexpectedInput as err:
            raise describe_lark_error(err, source, filename, lexer.literals()) from None
        except RecursionError:
            raise ParseError(
                "the file nests too deeply to parse", Span.point(filename, 1, 1)
            ) from None
        finally:
            builder.reset("<source>")
    return machine


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
