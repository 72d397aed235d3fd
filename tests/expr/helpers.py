"""Expression text → expression nodes, through the real .mgt parser (a guard of a tiny machine)."""

from __future__ import annotations

from mgt.expr.nodes import Expr
from mgt.syntax import parse_source

PREFIX = "machine t\nstate s:\n    run builtin noop\n    on done when "


def parse_expr(text: str, file: str = "t.mgt") -> Expr:
    """Parse `text` as a guard; its spans are on line 4, starting at column COL."""
    machine = parse_source(f"{PREFIX}{text} -> f\nfinal f: succeed\n", file)
    guard = machine.states[0].transitions[0].guard
    assert guard is not None
    return guard


#: Column where the expression text starts on line 4.
COL = len("    on done when ") + 1
