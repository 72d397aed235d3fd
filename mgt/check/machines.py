"""`run machine "x.mgt"` states and `final ... returns EXPR` → diagnostics: the child checks,
its inputs are bound and fit, it does not run its parent again (a cycle), and what a machine
returns is typed (for the guards of a parent that reads it).

The child is checked with the same checker (`check_file`), once per path per check; the
chain of machines being checked is kept in a context variable, so A runs B runs A is
reported at the `run machine` that closes the cycle instead of recursing for ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from mgt import ast
from mgt.check.context import Check, Context
from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.errors import MgtError

if TYPE_CHECKING:
    from mgt.check.result import CheckResult
    from mgt.expr.types import ExprType

__all__ = ["CHECKS", "machine_path", "returns_type", "sub_machine"]

#: The machines being checked, outermost first (resolved paths), to find cycles.
_CHAIN: ContextVar[tuple[Path, ...]] = ContextVar("mgt_check_chain", default=())
#: Child check results, by resolved path, for the outermost check under way.
_CACHE: ContextVar[dict[Path, CheckResult | None] | None] = ContextVar(
    "mgt_check_children", default=None)


def machine_path(parent: str, written: str) -> Path:
    """A `run machine` path as written → the file, relative to the parent machine's file."""
    return (Path(parent).resolve().parent / written).resolve()


def sub_machine(ctx: Context, run: ast.Run) -> CheckResult | None:
    """The child's check result (None: missing, unreadable, or a cycle)."""
    from mgt.check.checker import check_file

    if run.machine is None:
        return None
    path = machine_path(ctx.machine.source_path, run.machine)
    chain = _CHAIN.get() or (Path(ctx.machine.source_path).resolve(),)
    if path in chain or not path.is_file():
        return None
    cache = _CACHE.get()
    token_cache = None
    if cache is None:
        cache = {}
        token_cache = _CACHE.set(cache)
    try:
        if path not in cache:
            token = _CHAIN.set((*chain, path))
            try:
                cache[path] = check_file(path)
            except MgtError:
                cache[path] = None
            finally:
                _CHAIN.reset(token)
        return cache[path]
    finally:
        if token_cache is not None:
            _CACHE.reset(token_cache)


def returns_type(ctx: Context) -> ExprType:
    """What the machine returns: the type of its first succeeding final's `returns`."""
    from mgt.expr.types import ANY, Scope, typecheck

    for final in ctx.machine.finals:
        if final.status == "succeed" and final.returns is not None:
            try:
                t, _ = typecheck(final.returns, Scope(ctx.input_types, None, ctx.state_types))
            except (MgtError, RecursionError):
                return ANY
            return t
    return ANY


def check_sub_machines(ctx: Context) -> Iterator[Diagnostic]:
    from mgt.check.exprs import binding_type
    from mgt.expr.types import fits_declared

    for state in ctx.step_states:
        run = state.run
        if run is None or run.kind != "machine" or run.machine is None:
            continue
        where = run.machine_span or run.span
        path = machine_path(ctx.machine.source_path, run.machine)
        chain = _CHAIN.get() or (Path(ctx.machine.source_path).resolve(),)
        if path in chain:
            names = " runs ".join(p.name for p in (*chain[chain.index(path):], path))
            yield Diagnostic.error(f"sub-machine cycle: {names}", where,
                                   "a machine cannot run itself, directly or through another")
            continue
        if not path.is_file():
            yield Diagnostic.error(f"no machine file \"{run.machine}\" (paths are relative to "
                                   "this file)", where)
            continue
        child = sub_machine(ctx, run)
        if child is None or child.machine is None or not child.ok:
            first = child.errors[0] if child is not None and child.errors else None
            at = ""
            if first is not None and first.span is not None:
                at = f" {Path(first.span.file).name}:{first.span.line}:{first.span.column}:"
            why = f" ({at.strip()} {first.message})" if first is not None else ""
            yield Diagnostic.error(f"machine \"{run.machine}\" does not check{why}", where,
                                   f"run: mgt check {run.machine}")
            continue
        inputs = {i.name.text: i for i in child.machine.inputs}
        bound = {b.name.text for b in state.bindings}
        for binding in state.bindings:
            decl = inputs.get(binding.name.text)
            if decl is None:
                yield Diagnostic.error(
                    f"machine '{child.machine.name.text}' has no input '{binding.name.text}'",
                    binding.name.span,
                    did_you_mean(binding.name.text, inputs)
                    or (f"its inputs are {', '.join(inputs)}" if inputs else
                        "it takes no inputs"))
                continue
            t = binding_type(ctx, state, binding)
            if t is None:
                continue
            reason = fits_declared(t, decl.type.name.text, decl.type.enum_values)
            if reason is not None:
                yield Diagnostic.error(
                    f"input '{decl.name.text}' of machine '{child.machine.name.text}': "
                    f"{reason}", binding.value.span)
        for name, decl in inputs.items():
            if decl.default is None and name not in bound:
                yield Diagnostic.error(
                    f"machine '{child.machine.name.text}' needs input '{name}' "
                    f"({decl.type.name.text})", where, f"add 'with {name} = ...'")


def check_returns(ctx: Context) -> Iterator[Diagnostic]:
    """A final's `returns` reads inputs and states' outputs, never `output`."""
    from mgt.expr.types import Scope, typecheck

    for final in ctx.machine.finals:
        if final.returns is None:
            continue
        scope = Scope(ctx.input_types, None, ctx.state_types,
                      output_missing_reason="a final has no 'output'; read STATE.output")
        try:
            _, problems = typecheck(final.returns, scope)
        except (MgtError, RecursionError) as err:
            reason = err.message if isinstance(err, MgtError) else "it is nested too deeply"
            yield Diagnostic.error(f"cannot check this expression: {reason}",
                                   final.returns.span)
            continue
        yield from problems


CHECKS: tuple[Check, ...] = (check_sub_machines, check_returns)
