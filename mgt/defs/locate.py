"""TOML text + a table, key and optional array index → the `Span` of that value in the file.

tomllib gives values without positions; a check that finds a bad value in a
loaded definition (a model name, a tool) uses this to point at it, the way a
source diagnostic points into a .mgt file. It reads the common layout only: a
`[table]` header followed by `key = value` lines, or `table.key = value` at the
top; anything else falls back to the table's header, else the file's first line.
"""

from __future__ import annotations

import re

from mgt.span import Span

__all__ = ["toml_value_span"]

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\- \"']+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\- \"']+?)\s*=")


def _name(part: str) -> str:
    return ".".join(p.strip().strip("\"'") for p in part.split("."))


def toml_value_span(file: str, text: str, table: str, key: str, index: int | None = None) -> Span:
    """Where `[table].key` (or its `index`-th array item) is written in `text`."""
    lines = text.split("\n")
    current = ""
    header: Span | None = None
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("[") and not line.lstrip().startswith("[["):
            match = _HEADER.match(line)
            if match:
                current = _name(match.group(1))
                if current == table and header is None:
                    col = line.index("[") + 1
                    header = Span(file, number, col, number, len(line.rstrip()) + 1)
                continue
        match = _KEY.match(line)
        if match is None:
            continue
        written = _name(match.group(1))
        full = f"{current}.{written}" if current else written
        if full != f"{table}.{key}":
            continue
        start = match.end()
        if index is None:
            return _scalar_span(file, lines, number, start)
        found = _array_item_span(file, lines, number, start, index)
        if found is not None:
            return found
        return Span(file, number, match.start(1) + 1, number, match.end(1) + 1)
    return header or Span.point(file, 1, 1)


def _scalar_span(file: str, lines: list[str], number: int, start: int) -> Span:
    line = lines[number - 1]
    while start < len(line) and line[start] in " \t":
        start += 1
    end = _value_end(line, start)
    return Span(file, number, start + 1, number, max(end, start + 1) + 1)


def _value_end(line: str, start: int) -> int:
    """The end (exclusive) of the scalar starting at `start`: a string, or up to a comment."""
    if start < len(line) and line[start] in "\"'":
        quote = line[start]
        i = start + 1
        while i < len(line):
            if line[i] == "\\" and quote == '"':
                i += 2
                continue
            if line[i] == quote:
                return i + 1
            i += 1
        return len(line)
    end = line.find("#", start)
    return len((line if end < 0 else line[:end]).rstrip())


def _array_item_span(
    file: str, lines: list[str], number: int, start: int, index: int
) -> Span | None:
    """The `index`-th item of the array that opens at (number, start), across lines."""
    seen = -1
    opened = False
    row, col = number, start
    while row <= len(lines):
        line = lines[row - 1]
        while col < len(line):
            ch = line[col]
            if ch in " \t,":
                col += 1
            elif ch == "#":
                break
            elif ch == "[" and not opened:
                opened = True
                col += 1
            elif ch == "]" or not opened:
                return None
            else:
                end = _value_end(line, col)
                end = max(end, col + 1)
                seen += 1
                if seen == index:
                    return Span(file, row, col + 1, row, end + 1)
                col = end
        row += 1
        col = 0
    return None
