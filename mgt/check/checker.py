"""A .mgt file or text → `CheckResult`: parse, load the imports, run every check, collect it all.

Nothing stops at the first problem: a syntax error ends the parse (there is no
tree to check), but every other check runs and reports everything it finds,
sorted by position. Only an unreadable path raises (a `UsageError`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mgt.check.context import Check, Context
from mgt.check.imports import load_imports
from mgt.check.result import CheckResult
from mgt.diagnostics import Diagnostic, sort_key
from mgt.errors import MgtError, ParseError, SourceError

__all__ = ["ALL_CHECKS", "check_file", "check_source"]


def _all_checks() -> tuple[Check, ...]:
    from mgt.check import exprs, flow, machines, names, polecats, runs

    return (*names.CHECKS, *runs.CHECKS, *polecats.CHECKS, *flow.CHECKS, *exprs.CHECKS,
            *machines.CHECKS)


ALL_CHECKS: tuple[Check, ...] = _all_checks()


def check_file(path: str | os.PathLike[str]) -> CheckResult:
    """Check the machine in `path`. Raises `UsageError` if it cannot be read at all."""
    from mgt.syntax import normalize, read_source

    name = os.fspath(path)
    try:
        text = read_source(name)
    except ParseError as err:  # not UTF-8: report it like any other source error
        try:
            raw = Path(name).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            raw = ""
        return CheckResult(name, normalize(raw), None, [_as_diagnostic(err)])
    return check_source(text, name, base_dir=Path(name).parent)


def check_source(
    text: str, filename: str = "<source>", base_dir: str | os.PathLike[str] | None = None
) -> CheckResult:
    """Check .mgt text. Imports resolve against `base_dir` (default: the file's directory)."""
    from mgt.syntax import normalize, parse_errors, parse_source

    source = normalize(text)
    try:
        machine = parse_source(source, filename)
    except SourceError as err:
        # Report the syntax errors of the other declarations too, not just the first.
        more = [e for e in parse_errors(source, filename) if e.span != err.span]
        found = [_as_diagnostic(err), *(_as_diagnostic(e) for e in more)]
        return CheckResult(filename, source, None, _dedupe(sorted(found, key=sort_key)))
    if base_dir is None:
        base_dir = Path(filename).parent if filename and not filename.startswith("<") else "."
    defs, diagnostics = load_imports(machine, Path(base_dir))
    ctx = Context(machine, defs)
    diagnostics.extend(_run(ALL_CHECKS, ctx))
    return CheckResult(
        path=filename,
        source=source,
        machine=machine,
        diagnostics=_dedupe(sorted(diagnostics, key=sort_key)),
        polecats=defs.polecats,
        formulas=defs.formulas,
        schemas=defs.schemas,
    )


def _run(checks: Iterable[Check], ctx: Context) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for check in checks:
        try:
            found.extend(check(ctx))
        except MgtError as err:
            # A definition the loaders accepted but a check could not read: say so, go on.
            found.append(Diagnostic.error(f"{check.__name__}: {err}", ctx.machine.name.span))
    return found


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[Diagnostic] = set()
    unique: list[Diagnostic] = []
    for d in diagnostics:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def _as_diagnostic(err: SourceError) -> Diagnostic:
    return Diagnostic.error(err.message, err.span, err.hint)
