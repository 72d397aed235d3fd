"""What each state runs → diagnostics: unknown formulas, polecats, builtins and schemas; prompts,
commands, retries and timeouts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mgt import ast
from mgt.check.context import Check, Context
from mgt.diagnostics import Diagnostic, did_you_mean

__all__ = ["CHECKS", "MAX_RETRIES"]

#: The largest retry count accepted (each retry is a paid model call).
MAX_RETRIES = 10


def _unknown(
    ctx: Context, kind: str, name: ast.Ident, known: Iterable[str]
) -> Diagnostic | None:
    """`unknown formula 'x'` with a did-you-mean, or None when the name is defined or its
    file failed to load (that failure is already reported at the import)."""
    plural = f"{kind}s"
    if ctx.defs.is_broken(plural, name.text) or ctx.defs.is_broken(plural, "*"):
        return None
    if plural not in ctx.defs.imported:
        return Diagnostic.error(
            f"unknown {kind} '{name.text}': this machine imports no {plural}",
            name.span,
            f"add 'import {plural} from \"DIR\"' (a directory relative to this file)",
        )
    hint = did_you_mean(name.text, known)
    return Diagnostic.error(f"unknown {kind} '{name.text}'", name.span, hint)


def check_run_targets(ctx: Context) -> Iterator[Diagnostic]:
    from mgt.extensions import BUILTINS

    for state in ctx.step_states:
        run = state.run
        if run is None or run.target is None:
            continue
        name = run.target
        if run.kind == "formula" and name.text not in ctx.defs.formulas:
            problem = _unknown(ctx, "formula", name, ctx.defs.formulas)
        elif run.kind == "polecat" and name.text not in ctx.defs.polecats:
            problem = _unknown(ctx, "polecat", name, ctx.defs.polecats)
        elif run.kind == "builtin" and name.text not in BUILTINS:
            problem = Diagnostic.error(
                f"unknown builtin '{name.text}'; the builtins are {', '.join(sorted(BUILTINS))}",
                name.span,
                did_you_mean(name.text, BUILTINS),
            )
        else:
            continue
        if problem is not None:
            yield problem


def check_formula_polecats(ctx: Context) -> Iterator[Diagnostic]:
    """A formula runs on its [execution].polecat, which the machine must import."""
    for state in ctx.step_states:
        run = state.run
        if run is None or run.kind != "formula" or run.target is None:
            continue
        formula = ctx.defs.formulas.get(run.target.text)
        if formula is None or formula.polecat in ctx.defs.polecats:
            continue
        if ctx.defs.is_broken("polecats", formula.polecat) or ctx.defs.is_broken("polecats", "*"):
            continue
        hint: str | None
        if "polecats" not in ctx.defs.imported:
            hint = "add 'import polecats from \"DIR\"'"
        else:
            hint = did_you_mean(formula.polecat, ctx.defs.polecats)
        yield Diagnostic.error(
            f"formula '{formula.name}' is executed by polecat '{formula.polecat}', "
            "which this machine does not import",
            run.target.span,
            hint,
        )


def check_output_schemas(ctx: Context) -> Iterator[Diagnostic]:
    registry = ctx.defs.schemas
    known = list(registry) if registry is not None else []
    for state in ctx.step_states:
        schema = ctx.output_schema(state)
        if schema is None or (registry is not None and schema in registry):
            continue
        if ctx.defs.is_broken("schemas", schema) or ctx.defs.is_broken("schemas", "*"):
            continue
        if state.output is not None:
            where = state.output.span
            message = f"unknown schema '{schema}'"
        else:
            assert state.run is not None and state.run.target is not None
            where = state.run.target.span
            message = (
                f"{state.run.kind} '{state.run.target.text}' outputs schema '{schema}', "
                "which this machine does not import"
            )
        if "schemas" not in ctx.defs.imported:
            yield Diagnostic.error(
                f"{message}: this machine imports no schemas",
                where,
                "add 'import schemas from \"DIR\"' (a directory relative to this file)",
            )
        else:
            yield Diagnostic.error(message, where, did_you_mean(schema, known))


def check_prompts(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.step_states:
        run = state.run
        if run is None or run.kind != "polecat":
            continue
        if run.prompt is None:
            yield Diagnostic.error(
                "'run polecat' needs a prompt",
                run.span,
                f"write: run polecat {run.target.text if run.target else 'NAME'} prompt \"...\"",
            )
        elif not run.prompt.strip():
            yield Diagnostic.error("the prompt is empty", run.span)


def check_commands(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.step_states:
        run = state.run
        if run is not None and run.kind == "command" and not (run.command or "").strip():
            yield Diagnostic.error("'run command' needs a command; this one is empty", run.span)


def check_retries(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.step_states:
        claimed: dict[str, ast.Retry] = {}
        for retry in state.retries:
            if not 0 <= retry.count <= MAX_RETRIES:
                yield Diagnostic.error(
                    f"retry count must be between 0 and {MAX_RETRIES}, got {retry.count}",
                    retry.count_span,
                )
            for event in retry.events:
                if event.text == "done":
                    yield Diagnostic.error(
                        "'done' cannot be retried: it is the successful outcome",
                        event.span,
                        "retry schema_invalid, guardrail, timeout or error",
                    )
                    continue
                first = claimed.get(event.text)
                if first is not None and first is not retry:
                    yield Diagnostic.error(
                        f"'{event.text}' already has a retry on line {first.span.line}",
                        event.span,
                    )
                elif first is retry:
                    yield Diagnostic.error(f"'{event.text}' is listed twice", event.span)
                else:
                    claimed[event.text] = retry


def check_timeouts(ctx: Context) -> Iterator[Diagnostic]:
    for state in ctx.step_states:
        if state.timeout is not None and state.timeout.seconds <= 0:
            yield Diagnostic.error("timeout must be longer than 0", state.timeout.span)


CHECKS: tuple[Check, ...] = (
    check_run_targets,
    check_formula_polecats,
    check_output_schemas,
    check_prompts,
    check_commands,
    check_retries,
    check_timeouts,
)
