"""Checking one machine file → `CheckResult` (its AST, diagnostics and loaded definitions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mgt.diagnostics import Diagnostic, render_all, sort_key

if TYPE_CHECKING:
    from mgt.ast import MachineDecl
    from mgt.defs import Formula, Polecat, SchemaRegistry

__all__ = ["CheckResult"]


@dataclass
class CheckResult:
    """Everything the checker learnt about one file; `ok` when no diagnostic is an error.

    `machine` is None only when the file could not be parsed. The definitions are
    those the file imports, loaded once here so that lowering reuses them.
    """

    path: str
    source: str
    machine: MachineDecl | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    polecats: Mapping[str, Polecat] = field(default_factory=dict)
    formulas: Mapping[str, Formula] = field(default_factory=dict)
    schemas: SchemaRegistry | None = None

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def sorted_diagnostics(self) -> list[Diagnostic]:
        return sorted(self.diagnostics, key=sort_key)

    def sources(self) -> dict[str, str]:
        """The text of every file a diagnostic points into: the machine's, and any definition
        file (a polecat's TOML) read from disk; a file that cannot be read is left out."""
        found = {self.path: self.source}
        for d in self.diagnostics:
            if d.span is None or d.span.file in found:
                continue
            try:
                text = Path(d.span.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            found[d.span.file] = text.removeprefix("\ufeff")
        return found

    def render(self) -> str:
        """Every diagnostic as `file:line:col: severity: message`, source line, caret, hint."""
        return render_all(self.diagnostics, self.sources())
