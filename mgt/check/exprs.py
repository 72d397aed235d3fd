"""Guards and `with` bindings → type diagnostics (via `mgt.expr.typecheck`), formula input matching,
and reads of `STATE.output` where that state may not have finished.

Guard paths are typed against the JSON Schema of the output they read, so
`output.summary.totl_patterns` is an error naming PatternReport; bindings are
typed the same way and must fit the formula input they bind.
"""

from __future__ import annotations

from collections.abc import Iterator

from mgt import ast
from mgt.check.context import Check, Context
from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.errors import MgtError
from mgt.expr import nodes as ex
from mgt.expr.types import ExprType, Scope, fits_input, typecheck, typecheck_guard
from mgt.span import Span

__all__ = ["CHECKS"]

_BINDING_OUTPUT = (
    "'output' is this state's own result and does not exist before it runs; "
    "read an earlier state's with STATE.output"
)


def _guard_scope(ctx: Context, state: ast.State, event: str) -> Scope:
    if event == "done":
        return Scope(ctx.input_types, ctx.output_type(state), ctx.state_types)
    return Scope(
        ctx.input_types,
        None,
        ctx.state_types,
        output_missing_reason=(
            f"'output' exists only after 'done'; this guard is on '{event}'"
        ),
    )


def _binding_scope(ctx: Context) -> Scope:
    return Scope(ctx.input_types, None, ctx.state_types, output_missing_reason=_BINDING_OUTPUT)


def _typed(
    expr: ex.Expr, scope: Scope, guard: bool
) -> tuple[ExprType | None, list[Diagnostic]]:
    try:
        if guard:
            return typecheck_guard(expr, scope)
        return typecheck(expr, scope)
    except (MgtError, RecursionError) as err:
        reason = err.message if isinstance(err, MgtError) else "it is nested too deeply"
        return None, [Diagnostic.error(f"cannot check this expression: {reason}", expr.span)]


def check_guards(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.states.values():
        for on in state.transitions:
            if on.guard is None:
                continue
            _, problems = _typed(on.guard, _guard_scope(ctx, state, on.event.text), guard=True)
            yield from problems


def check_binding_names(ctx: Context) -> Iterator[Diagnostic]:
    """Formula states: every binding names an input, every required input is bound."""
    for state in ctx.states.values():
        run = state.run
        if run is None or run.kind != "formula" or run.target is None:
            continue
        formula = ctx.defs.formulas.get(run.target.text)
        if formula is None:
            continue
        bound = {b.name.text for b in state.bindings}
        for binding in state.bindings:
            if formula.input(binding.name.text) is None:
                names = formula.input_names
                yield Diagnostic.error(
                    f"formula '{formula.name}' has no input '{binding.name.text}'",
                    binding.name.span,
                    did_you_mean(binding.name.text, names)
                    or (f"its inputs are {', '.join(names)}" if names else "it takes no inputs"),
                )
        for needed in formula.required_inputs:
            if needed.name not in bound:
                yield Diagnostic.error(
                    f"formula '{formula.name}' needs input '{needed.name}' "
                    f"({needed.describe_type()})",
                    run.target.span,
                    f"add 'with {needed.name} = ...'",
                )


def check_bindings(ctx: Context) -> Iterator[Diagnostic]:
    """Type every binding; for a formula, the value must fit the input's declared type."""
    scope = _binding_scope(ctx)
    for state in ctx.states.values():
        run = state.run
        formula = None
        if run is not None and run.kind == "formula" and run.target is not None:
            formula = ctx.defs.formulas.get(run.target.text)
        for binding in state.bindings:
            t, problems = _typed(binding.value, scope, guard=False)
            yield from problems
            if formula is None or t is None or any(p.is_error for p in problems):
                continue
            wanted = formula.input(binding.name.text)
            if wanted is None:
                continue
            reason = fits_input(t, wanted, ctx.defs.schemas)
            if reason is not None:
                yield Diagnostic.error(
                    f"input '{wanted.name}' of formula '{formula.name}': {reason}",
                    binding.value.span,
                )


def _output_reads(expr: ex.Expr) -> Iterator[tuple[str, Span]]:
    """Every `NAME.output` in `expr` (NAME may be a state)."""
    match expr:
        case ex.Attr(obj=ex.Name(id=name), name="output"):
            yield name, expr.span
        case ex.Attr(obj=obj):
            yield from _output_reads(obj)
        case ex.Index(obj=obj, index=index):
            yield from _output_reads(obj)
            yield from _output_reads(index)
        case ex.Unary(operand=operand):
            yield from _output_reads(operand)
        case ex.Binary(left=left, right=right):
            yield from _output_reads(left)
            yield from _output_reads(right)
        case ex.Call(args=args):
            for arg in args:
                yield from _output_reads(arg)
        case ex.ListExpr(items=items):
            for item in items:
                yield from _output_reads(item)
        case ex.ObjectExpr(items=members):
            for _, value in members:
                yield from _output_reads(value)


def check_output_availability(ctx: Context) -> Iterator[Diagnostic]:
    """A guard or binding may read `T.output` only where T has surely finished with done."""
    flow = ctx.flow
    for state in ctx.states.values():
        name = state.name.text
        if name not in flow.reachable:
            continue
        reads: list[tuple[ex.Expr, bool, str]] = [(b.value, False, "with") for b in state.bindings]
        reads += [(on.guard, on.event.text == "done", on.event.text)
                  for on in state.transitions if on.guard is not None]
        for expr, after_done, where in reads:
            for producer, span in _output_reads(expr):
                if producer not in ctx.states:
                    continue
                if flow.output_available(producer, name, after_done):
                    continue
                yield _unavailable(ctx, producer, name, where, span)


def _unavailable(ctx: Context, producer: str, reader: str, where: str, span: Span) -> Diagnostic:
    if producer == reader and where == "with":
        return Diagnostic.error(
            f"state '{reader}' reads its own output in a binding, before it has run",
            span,
            "bindings can read inputs and the outputs of states that ran earlier",
        )
    if producer == reader:
        return Diagnostic.error(
            f"'{producer}.output' does not exist after '{where}'; only 'on done' guards "
            "can read this state's output",
            span,
        )
    path = ctx.flow.path_without_output(producer, reader)
    return Diagnostic.error(
        f"'{producer}.output' may not exist here: state '{reader}' can be reached without "
        f"'{producer}' finishing with done ({path})",
        span,
    )


CHECKS: tuple[Check, ...] = (
    check_guards,
    check_binding_names,
    check_bindings,
    check_output_availability,
)
