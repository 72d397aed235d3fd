"""Diagnostics (severity, message, span, hint) → rendered `file:line:col: error: msg` blocks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mgt.span import Span

__all__ = ["Diagnostic", "did_you_mean", "render", "render_all", "sort_key", "source_lines"]

Severity = Literal["error", "warning"]

#: Longest source line shown in full under a diagnostic; longer lines are cut around the caret.
_MAX_SHOWN = 120


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span | None
    hint: str | None = None

    @classmethod
    def error(cls, message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
        return cls("error", message, span, hint)

    @classmethod
    def warning(cls, message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
        return cls("warning", message, span, hint)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def headline(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        return f"{where}{self.severity}: {self.message}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A `did you mean 'x'?` hint for the closest candidate, or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    if d.span is None:
        return ("", 0, 0, d.message)
    return (d.span.file, d.span.line, d.span.column, d.message)


def source_lines(source: str) -> list[str]:
    """A source split into lines the way spans count them (only \\n is a line break)."""
    return source.split("\n")


def render(d: Diagnostic, source: str | Sequence[str] | None) -> str:
    """Render one diagnostic: headline, the source line, a caret under the span, the hint.

    `source` is the file's text, or its `source_lines` when many diagnostics of one file
    are rendered (splitting a large file once per diagnostic is quadratic).
    """
    out = [d.headline()]
    if d.span is not None and source is not None:
        lines = source_lines(source) if isinstance(source, str) else source
        if 1 <= d.span.line <= len(lines):
            text = lines[d.span.line - 1].replace("\t", " ")
            gutter = f"{d.span.line:>4} | "
            out.append(f"{gutter}{text}")
            start = max(d.span.column, 1)
            if d.span.end_line == d.span.line and d.span.end_column > start:
                width = d.span.end_column - start
            else:
                width = 1
            width = max(1, min(width, max(1, len(text) - start + 1)))
            if len(text) > _MAX_SHOWN:
                # A very long line: show a window around the caret, not megabytes of text.
                first = max(0, min(start - 1 - _MAX_SHOWN // 3, len(text) - _MAX_SHOWN))
                shown = text[first : first + _MAX_SHOWN]
                lead = "..." if first > 0 else ""
                tail = "..." if first + _MAX_SHOWN < len(text) else ""
                out[-1] = f"{gutter}{lead}{shown}{tail}"
                start = start - first + len(lead)
                width = max(1, min(width, _MAX_SHOWN - (start - 1 - len(lead))))
            out.append(" " * len(gutter) + " " * (start - 1) + "^" * width)
    if d.hint:
        out.append(f"     = help: {d.hint}")
    return "\n".join(out)


def render_all(diagnostics: Sequence[Diagnostic], sources: Mapping[str, str]) -> str:
    """Render every diagnostic (sorted by position) and a count line; each file split once."""
    ordered = sorted(diagnostics, key=sort_key)
    split: dict[str, list[str]] = {}

    def lines_of(file: str) -> list[str] | None:
        if file not in split:
            text = sources.get(file)
            if text is None:
                return None
            split[file] = source_lines(text)
        return split[file]

    blocks = [render(d, lines_of(d.span.file) if d.span else None) for d in ordered]
    errors = sum(d.is_error for d in ordered)
    warnings = len(ordered) - errors
    if ordered:
        blocks.append(
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        )
    return "\n".join(blocks)
