"""Declarations → diagnostics about names: duplicates, unknown states and events, inputs, start.

Each function is one check. Messages name the offending thing and, where a near
miss exists, suggest it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from mgt import ast
from mgt.check.context import EVENTS, Check, Context
from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.expr import nodes as ex

_Named = TypeVar("_Named", ast.Binding, ast.InputDecl)

__all__ = ["CHECKS"]

#: Root names of expression paths and expression keywords: a state or final with one of
#: these names could never be read in an expression.
RESERVED = ("input", "output", "it", "true", "false", "null", "not", "and", "or", "in")

INPUT_TYPES = ("str", "int", "float", "bool", "duration", "path", "json", "enum")


def check_has_states(ctx: Context) -> Iterator[Diagnostic]:
    if not ctx.machine.states:
        yield Diagnostic.error(
            f"machine '{ctx.machine.name.text}' has no states",
            ctx.machine.name.span,
            "add a 'state NAME:' block with a run clause and transitions",
        )


def check_duplicate_states_and_finals(ctx: Context) -> Iterator[Diagnostic]:
    seen: dict[str, tuple[str, ast.Ident]] = {}
    declared = [("state", s.name) for s in ctx.machine.states]
    declared += [("final", f.name) for f in ctx.machine.finals]
    for kind, name in sorted(declared, key=lambda d: (d[1].span.line, d[1].span.column)):
        if name.text in seen:
            first_kind, first = seen[name.text]
            what = f"a {first_kind}" if first_kind != kind else f"{kind}"
            if first_kind == kind:
                message = f"{kind} '{name.text}' is already declared on line {first.span.line}"
            else:
                message = (
                    f"'{name.text}' is already declared as {what} on line {first.span.line}; "
                    "states and finals share one namespace"
                )
            yield Diagnostic.error(message, name.span)
        else:
            seen[name.text] = (kind, name)


def check_reserved_names(ctx: Context) -> Iterator[Diagnostic]:
    for name in [s.name for s in ctx.machine.states] + [f.name for f in ctx.machine.finals]:
        if name.text in RESERVED:
            yield Diagnostic.error(
                f"'{name.text}' cannot name a state or final: it is a reserved word in "
                f"expressions ({', '.join(RESERVED)})",
                name.span,
            )


def check_start(ctx: Context) -> Iterator[Diagnostic]:
    start = ctx.machine.start
    if start is None:
        return
    if start.text in ctx.states:
        return
    if start.text in ctx.finals:
        yield Diagnostic.error(
            f"'{start.text}' is a final; a machine must start in a state", start.span
        )
        return
    yield Diagnostic.error(
        f"start state '{start.text}' is not declared",
        start.span,
        did_you_mean(start.text, ctx.states),
    )


def check_run_present(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.machine.states:
        if state.run is None and not state.branches:
            yield Diagnostic.error(
                f"state '{state.name.text}' has no 'run' clause",
                state.name.span,
                "add one of: run formula NAME | run polecat NAME prompt \"...\" | "
                "run command \"...\" | run builtin NAME",
            )


def check_transition_targets(ctx: Context) -> Iterator[Diagnostic]:
    names = [*ctx.states, *ctx.finals]
    for state in ctx.machine.states:
        for on in state.transitions:
            target = on.target.text
            if target not in ctx.states and target not in ctx.finals:
                yield Diagnostic.error(
                    f"unknown state '{target}'", on.target.span, did_you_mean(target, names)
                )


def _unknown_event(event: ast.Ident) -> Diagnostic:
    hint = did_you_mean(event.text, EVENTS)
    return Diagnostic.error(
        f"unknown event '{event.text}'; the events are {', '.join(EVENTS)}", event.span, hint
    )


def check_event_names(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.machine.states:
        for on in state.transitions:
            if on.event.text not in EVENTS:
                yield _unknown_event(on.event)
        for retry in state.retries:
            for event in retry.events:
                if event.text not in EVENTS:
                    yield _unknown_event(event)


def check_shadowed_transitions(ctx: Context) -> Iterator[Diagnostic]:
    """A transition after an unguarded one for the same event can never fire."""
    for state in ctx.machine.states:
        catch_all: dict[str, ast.On] = {}
        for on in state.transitions:
            first = catch_all.get(on.event.text)
            if first is not None:
                yield Diagnostic.error(
                    f"this transition can never be taken: 'on {on.event.text} -> "
                    f"{first.target.text}' on line {first.span.line} has no guard and "
                    "always matches first",
                    on.span,
                )
            elif on.guard is None:
                catch_all[on.event.text] = on


def check_duplicate_bindings(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.step_states:
        for binding, first in _repeats(state.bindings):
            yield Diagnostic.error(
                f"'{binding.name.text}' is already bound on line {first.span.line}",
                binding.name.span,
            )


def check_duplicate_inputs(ctx: Context) -> Iterator[Diagnostic]:
    for decl, first in _repeats(ctx.machine.inputs):
        yield Diagnostic.error(
            f"input '{decl.name.text}' is already declared on line {first.span.line}",
            decl.name.span,
        )


def _repeats(items: Iterable[_Named]) -> Iterator[tuple[_Named, _Named]]:
    """(item, the first item of the same name) for each item whose name came before."""
    first: dict[str, _Named] = {}
    for item in items:
        earlier = first.setdefault(item.name.text, item)
        if earlier is not item:
            yield item, earlier


def check_input_types(ctx: Context) -> Iterator[Diagnostic]:
    for decl in ctx.machine.inputs:
        type_name = decl.type.name.text
        if type_name not in INPUT_TYPES:
            yield Diagnostic.error(
                f"unknown input type '{type_name}'; the types are "
                "str, int, float, bool, duration, path, json and enum(...)",
                decl.type.name.span,
                did_you_mean(type_name, INPUT_TYPES) or _type_alias(type_name),
            )
        seen: set[str] = set()
        for value in decl.type.enum_values:
            if value in seen:
                yield Diagnostic.error(
                    f"enum value \"{value}\" is listed twice", decl.type.span
                )
            seen.add(value)


def _type_alias(name: str) -> str | None:
    aliases = {
        "string": "str", "integer": "int", "number": "float", "boolean": "bool",
        "file": "path", "object": "json", "list": "json", "array": "json",
    }
    return f"did you mean '{aliases[name]}'?" if name in aliases else None


def _is_constant(expr: ex.Expr) -> bool:
    if isinstance(expr, ex.Literal | ex.DurationLit):
        return True
    if isinstance(expr, ex.ListExpr):
        return all(_is_constant(item) for item in expr.items)
    if isinstance(expr, ex.ObjectExpr):
        return all(_is_constant(value) for _, value in expr.items)
    return False


def check_input_defaults(ctx: Context) -> Iterator[Diagnostic]:
    from mgt.expr.types import Scope, fits_declared, typecheck

    for decl in ctx.machine.inputs:
        default = decl.default
        type_name = decl.type.name.text
        if default is None or type_name not in INPUT_TYPES:
            continue
        if not _is_constant(default):
            yield Diagnostic.error(
                "an input default must be a constant (a number, string, duration, "
                "true/false/null, or a list or object of them)",
                default.span,
            )
            continue
        t, _ = typecheck(default, Scope())
        problem = fits_declared(t, type_name, decl.type.enum_values)
        if problem is not None:
            shown = type_name
            if type_name == "enum":
                shown = f"enum({', '.join(decl.type.enum_values)})"
            yield Diagnostic.error(
                f"default of input '{decl.name.text}' does not fit {shown}: {problem}",
                default.span,
            )


CHECKS: tuple[Check, ...] = (
    check_has_states,
    check_duplicate_states_and_finals,
    check_reserved_names,
    check_start,
    check_run_present,
    check_transition_targets,
    check_event_names,
    check_shadowed_transitions,
    check_duplicate_bindings,
    check_duplicate_inputs,
    check_input_types,
    check_input_defaults,
)
