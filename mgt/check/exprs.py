"""Guards and `with` bindings → type diagnostics (via `mgt.expr.typecheck`), formula input matching,
and reads of `STATE.output` where that state may not have finished.

Guard paths are typed against the JSON Schema of the output they read, so
`output.summary.totl_patterns` is an error naming PatternReport; bindings are
typed the same way and must fit the formula input they bind.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

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
    hidden = ctx.hidden_items(state)
    if event == "done":
        return Scope(ctx.input_types, ctx.output_type(state), ctx.state_types, hidden=hidden)
    return Scope(
        ctx.input_types,
        None,
        ctx.state_types,
        output_missing_reason=(
            f"'output' exists only after 'done'; this guard is on '{event}'"
        ),
        hidden=hidden,
    )


def _binding_scope(ctx: Context, state: ast.State | None = None) -> Scope:
    """The names a `with` binding may read: a fan-out's bindings also see its item."""
    hidden = ctx.hidden_items(None)
    local: dict[str, ExprType] = {}
    if state is not None and state.fan_out is not None:
        item = state.fan_out.item.text
        hidden.pop(item, None)
        local[item] = item_type(ctx, state)
    return Scope(ctx.input_types, None, ctx.state_types, output_missing_reason=_BINDING_OUTPUT,
                 locals=local, hidden=hidden)


def binding_type(ctx: Context, state: ast.State, binding: ast.Binding) -> ExprType | None:
    """The type of a binding's value (None when it does not check: reported elsewhere)."""
    t, problems = _typed(binding.value, _binding_scope(ctx, state), guard=False)
    return None if t is None or any(p.is_error for p in problems) else t


def item_type(ctx: Context, state: ast.State) -> ExprType:
    """The type of a fan-out's item: the element type of its list (any when unknown)."""
    from mgt.expr.types import ANY, element_type

    fan_out = state.fan_out
    if fan_out is None:
        return ANY
    t, problems = _typed(fan_out.items, _binding_scope(ctx), guard=False)
    if t is None or any(p.is_error for p in problems) or t.kind != "list":
        return ANY
    return element_type(t)


def check_fan_out(ctx: Context) -> Iterator[Diagnostic]:
    """A fan-out's list is a list, its cap at least 1, its item name free and not shadowing."""
    for state in ctx.states.values():
        fan_out = state.fan_out
        if fan_out is None:
            continue
        if fan_out.max is not None and fan_out.max < 1:
            yield Diagnostic.error(
                f"a fan-out runs at least one item at a time; 'max {fan_out.max}' is below 1",
                fan_out.max_span, "write 'max 1' to run the items one after another")
        item = fan_out.item
        if item.text in ("input", "output", "it") or item.text in ctx.states:
            what = "a state" if item.text in ctx.states else "a name of the language"
            yield Diagnostic.error(
                f"item name '{item.text}' is already {what}; choose another name", item.span)
        t, problems = _typed(fan_out.items, _binding_scope(ctx), guard=False)
        yield from problems
        if t is not None and not any(p.is_error for p in problems) \
                and t.kind not in ("list", "any"):
            yield Diagnostic.error(
                f"a fan-out runs over a list; this is {t.describe()}", fan_out.items.span)
        if fan_out.tolerate and fan_out.tolerate_span is not None:
            length = fan_out.items
            if isinstance(length, ex.ListExpr) and fan_out.tolerate >= len(length.items) > 0:
                yield Diagnostic.warning(
                    f"tolerating {fan_out.tolerate} failures of {len(length.items)} items: "
                    "the state is done even when every item fails", fan_out.tolerate_span)


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
    for state in ctx.step_states:
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
    for state in ctx.step_states:
        scope = _binding_scope(ctx, state)
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
    for state in ctx.step_states:
        name = state.name.text
        if name not in flow.reachable:
            continue
        reads: list[tuple[ex.Expr, bool, str]] = [(b.value, False, "with") for b in state.bindings]
        if state.fan_out is not None:
            reads.append((state.fan_out.items, False, "with"))
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


#: `scheme://user:password@` or `scheme://:token@`: a credential written into a URL
_SECRET_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s@:]*:[^/\s@]+@", re.IGNORECASE)


def check_secrets(ctx: Context) -> Iterator[Diagnostic]:
    """A URL with a password in it, written in the machine: every run would record it (its
    run.json, events, prompts and requests); warn, and say where a credential belongs."""
    machine = ctx.machine
    # a `path` input's URL loses its credentials before anything is recorded
    exprs: list[ex.Expr] = [i.default for i in machine.inputs
                            if i.default is not None and i.type.name.text != "path"]
    texts: list[tuple[str, Span]] = []
    for state in machine.states:
        for step in (state, *(ast.branch_state(state, b) for b in state.branches)):
            exprs += [b.value for b in step.bindings]
            if step.run is not None:
                texts += [(t, step.run.span) for t in (step.run.command, step.run.prompt) if t]
        if state.fan_out is not None:
            exprs.append(state.fan_out.items)
        exprs += [on.guard for on in state.transitions if on.guard is not None]
    exprs += [f.returns for f in machine.finals if f.returns is not None]
    for expr in exprs:
        texts += [(str(lit.value), lit.span) for lit in _string_literals(expr)]
    for text, span in texts:
        if _SECRET_URL.search(text):
            yield Diagnostic.warning(
                "this URL carries a password or token: every run records it (run.json, "
                "events, prompts)", span,
                "pass the URL as an input of type path (its credentials are then kept in "
                "memory only) or set GRAFANA_LOKI_USER / GRAFANA_LOKI_TOKEN")


def _string_literals(expr: Any) -> Iterator[ex.Literal]:
    """Every text literal in `expr`, at any depth."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ex.Literal):
            if isinstance(node.value, str):
                yield node
        elif isinstance(node, tuple | list):
            stack.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node)
                         if f.name != "span")


CHECKS: tuple[Check, ...] = (
    check_guards,
    check_binding_names,
    check_bindings,
    check_fan_out,
    check_output_availability,
    check_secrets,
)
