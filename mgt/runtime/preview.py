"""A `Machine` + inputs → the text `mgt exec --dry-run` prints: each state's prompt or command.

No model is called and nothing is written; only the checking built-ins named in
`mgt.extensions.DRY_RUN_BUILTINS` (the evolve preflight) run, and their failure
is the dry run's one-line error. Bindings that read only the inputs
are evaluated; bindings that read another state's output cannot be known yet
and are shown as the expression that will compute them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgt.compile.model import Machine, StateSpec
from mgt.errors import MgtError, UsageError
from mgt.expr.nodes import (
    Attr,
    Binary,
    Call,
    DurationLit,
    Expr,
    Index,
    ListExpr,
    Literal,
    Name,
    ObjectExpr,
    Unary,
)
from mgt.runtime.journal import jsonable
from mgt.runtime.prompt import Deferred

__all__ = ["Deferred", "expr_text", "preview_machine"]


def expr_text(expr: Expr) -> str:
    """An expression back as .mgt text (fully parenthesised where it matters)."""
    match expr:
        case Literal(value=value):
            return json.dumps(value)
        case DurationLit(text=text):
            return text
        case ListExpr(items=items):
            return "[" + ", ".join(expr_text(i) for i in items) + "]"
        case ObjectExpr(items=members):
            return "{" + ", ".join(f"{json.dumps(k)}: {expr_text(v)}" for k, v in members) + "}"
        case Name(id=ident):
            return ident
        case Attr(obj=obj, name=name):
            return f"{expr_text(obj)}.{name}"
        case Index(obj=obj, index=index):
            return f"{expr_text(obj)}[{expr_text(index)}]"
        case Unary(op=op, operand=operand):
            return f"not {expr_text(operand)}" if op == "not" else f"-{expr_text(operand)}"
        case Binary(op=op, left=left, right=right):
            return f"{_operand(left)} {op} {_operand(right)}"
        case Call(func=func, args=args):
            return f"{func}(" + ", ".join(expr_text(a) for a in args) + ")"
    return "?"


def _operand(expr: Expr) -> str:
    text = expr_text(expr)
    return f"({text})" if isinstance(expr, Binary) else text


def preview_bindings(spec: StateSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    from mgt.expr.evaluate import evaluate

    env = {"input": dict(inputs), "output": None}
    values: dict[str, Any] = {}
    for key, expr in spec.bindings:
        try:
            values[key] = evaluate(expr, env)
        except MgtError:
            values[key] = Deferred(expr_text(expr))
        else:
            if values[key] is None and _reads_state(expr):
                values[key] = Deferred(expr_text(expr))
    return values


def _reads_state(expr: Expr) -> bool:
    match expr:
        case Name(id=ident):
            return ident not in {"input", "it"}
        case Attr(obj=obj) | Index(obj=obj):
            return _reads_state(obj)
        case Unary(operand=operand):
            return _reads_state(operand)
        case Binary(left=left, right=right):
            return _reads_state(left) or _reads_state(right)
        case Call(args=args) | ListExpr(items=args):
            return any(_reads_state(a) for a in args)
        case ObjectExpr(items=members):
            return any(_reads_state(v) for _, v in members)
    return False


def preview_machine(machine: Machine, inputs: Mapping[str, Any]) -> str:
    """Every state, in declared order, as it would be sent (first attempt, no feedback)."""
    from mgt.runtime.interpreter import build_prompt

    out: list[str] = [f"# mgt exec --dry-run: {machine.name}", ""]
    if inputs:
        out.append("inputs: " + json.dumps(jsonable(dict(inputs)), ensure_ascii=False))
        out.append("")
    for state in machine.states.values():
        if state.branches:  # each branch is previewed like a state of its own
            out += [f"## state {state.name}: branches "
                    + ", ".join(name for name, _ in state.branches), ""]
        steps = [(f"{state.name} (branch {name})", branch) for name, branch in state.branches] \
            or [(state.name, state)]
        for label, spec in steps:
            out += _preview_step(machine, label, spec, inputs, build_prompt)
        spec = state
        routes = [
            f"on {t.event}" + (f" when {t.guard_source or '...'}" if t.guard is not None else "")
            + f" -> {t.target}"
            for t in spec.transitions
            if not t.implicit
        ]
        if any(t.implicit for t in spec.transitions):
            routes.append("(any other outcome fails the run)")
        if routes:
            out += ["", *routes]
        out.append("")
    return "\n".join(out)


def _preview_step(machine: Machine, label: str, spec: StateSpec, inputs: Mapping[str, Any],
                  build_prompt: Any) -> list[str]:
    """One step as it would be sent: a command, a builtin, a machine or a model prompt."""
    out: list[str] = []
    bindings = preview_bindings(spec, inputs)
    run = spec.run
    title = f"## state {label}: run {run.kind}"
    if run.kind in {"formula", "polecat", "builtin"}:
        title += f" {run.target}"
    out.append(title)
    fan = spec.fan_out
    if fan is not None:
        out.append(f"for each {fan.item} in {fan.items_source}"
                   + (f", {fan.max} at a time" if fan.max is not None else ""))
    if run.kind == "machine":
        shown = json.dumps(jsonable(bindings), ensure_ascii=False, indent=2)
        out += ["", f"machine {run.machine} with {shown}"]
    elif run.kind == "command":
        out += ["", f"$ {run.command}"]
        if bindings:
            shown = json.dumps(jsonable(bindings), ensure_ascii=False, indent=2)
            out += [f"with environment {shown}"]
    elif run.kind == "builtin":
        shown = json.dumps(jsonable(bindings), ensure_ascii=False, indent=2)
        out += ["", f"builtin {run.target} with {shown}"]
        out += _run_check(machine, spec, inputs, bindings)
    else:
        out += _model_preview(machine, spec, bindings, build_prompt)
    return out


def _run_check(
    machine: Machine, spec: StateSpec, inputs: Mapping[str, Any], bindings: dict[str, Any]
) -> list[str]:
    """Run a DRY_RUN_BUILTINS step (e.g. preflight) for real; its failure is the dry run's."""
    from mgt.extensions import BUILTINS, DRY_RUN_BUILTINS, resolve
    from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure

    if spec.run.target not in DRY_RUN_BUILTINS or spec.run.target not in BUILTINS:
        return []
    here = Path.cwd()
    ctx = StepContext(
        run_id="dry-run", run_dir=here, attempt_dir=here, state=spec.name, attempt=1,
        machine_inputs=dict(inputs),
        bindings={k: v for k, v in bindings.items() if not isinstance(v, Deferred)},
        outputs={}, cwd=here, schemas=machine.schemas,
    )
    try:
        result = resolve(BUILTINS[spec.run.target])(ctx)
    except (StepFailure, GuardrailFailure) as err:
        raise UsageError(f"state {spec.name}: {err}") from None
    return ["", "checked: " + json.dumps(jsonable(result), ensure_ascii=False)]


def _model_preview(
    machine: Machine, spec: StateSpec, bindings: dict[str, Any], build_prompt: Any
) -> list[str]:
    from mgt.executors.mapping import map_model, map_tools
    from mgt.runtime.prompt import InputProblem

    formula = machine.formulas.get(spec.run.target or "") if spec.run.kind == "formula" else None
    polecat = machine.polecats.get(
        formula.polecat if formula is not None else (spec.run.target or "")
    )
    lines: list[str] = []
    if polecat is not None:
        # The model line always names a model: as mapped, else as the polecat wrote it, with
        # the reason the run would refuse it on a line of its own (`mgt check` reports it too).
        problems: list[str] = []
        try:
            model = map_model(polecat.model.name)
        except MgtError as err:
            model = polecat.model.name
            problems.append(f"(the run would refuse this model: {err})")
        try:
            tools = ", ".join(map_tools(polecat.tools.available, polecat=polecat.name)) or "none"
        except MgtError as err:
            tools = ", ".join(polecat.tools.available)
            problems.append(f"(the run would refuse these tools: {err})")
        lines += ["", f"polecat {polecat.name} · model {model} · tools {tools}", *problems]
    try:
        prompt = build_prompt(machine, spec, bindings, None, None, [])
    except InputProblem as err:
        return [*lines, "", f"(cannot render the prompt: {err})"]
    if prompt.system_prompt:
        lines += ["", "### system prompt", "", prompt.system_prompt.strip()]
    lines += ["", "### prompt", "", prompt.text.rstrip()]
    if formula is not None:
        from mgt.extensions import PROMPT_CONTEXT

        refs = PROMPT_CONTEXT.get(formula.name, [])
        if refs:  # they may read logs or a repository: computed only when the state runs
            lines += ["", f"(plus context sections computed at run time by {', '.join(refs)})"]
    return lines
