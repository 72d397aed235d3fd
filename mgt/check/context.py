"""A parsed machine and its loaded definitions → `Context`, the tables every check reads.

Checks are small functions `check_x(ctx) -> Iterator[Diagnostic]`; the context
gives them the machine, its imports, name tables built once, and the output
type of each state (from its schema) for expression checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from mgt import ast
from mgt.check.imports import Definitions
from mgt.compile.model import EVENTS
from mgt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from mgt.check.flow import Flow
    from mgt.expr.types import ExprType

__all__ = ["EVENTS", "Check", "Context", "branch_state", "possible_events"]

Check = Callable[["Context"], Iterator[Diagnostic]]


def possible_events(state: ast.State) -> tuple[str, ...]:
    """The outcomes a state's run can end with, in EVENTS order.

    Model steps can end every way. A command can time out or fail; a builtin runs
    in-process (no timeout) and may reject its work as a guardrail. Either is
    schema-checked only when it declares `output SCHEMA`, and then the schema's
    output checks may answer `guardrail` too.
    """
    run = state.run
    if run is not None and run.kind == "machine":  # the child's own outcomes stay inside it
        return ("done", "error")
    if state.fan_out is not None or state.branches:  # items fail alone; the state fails
        return ("done", "error")                       # past the tolerance
    if run is None or run.kind in ("formula", "polecat"):
        return EVENTS
    events = {"done", "error"}
    if run.kind == "command":
        events.add("timeout")
    else:
        events.add("guardrail")
    if state.output is not None:
        events |= {"schema_invalid", "guardrail"}
    return tuple(e for e in EVENTS if e in events)


def run_label(state: ast.State) -> str:
    """`a command step`, `formula 'analyze'`: how messages name what a state runs."""
    run = state.run
    if run is None:
        return "a state without 'run'"
    if run.kind == "command":
        return "a command step"
    target = run.target.text if run.target else "?"
    return f"{run.kind} '{target}'"


branch_state = ast.branch_state


@dataclass
class Context:
    machine: ast.MachineDecl
    defs: Definitions
    _type_cache: dict[str, ExprType] = field(default_factory=dict)

    @cached_property
    def states(self) -> dict[str, ast.State]:
        """States by name (the first declaration wins; duplicates are reported)."""
        table: dict[str, ast.State] = {}
        for state in self.machine.states:
            table.setdefault(state.name.text, state)
        return table

    @cached_property
    def finals(self) -> dict[str, ast.Final]:
        table: dict[str, ast.Final] = {}
        for final in self.machine.finals:
            if final.name.text not in self.states:
                table.setdefault(final.name.text, final)
        return table

    @cached_property
    def inputs(self) -> dict[str, ast.InputDecl]:
        table: dict[str, ast.InputDecl] = {}
        for decl in self.machine.inputs:
            table.setdefault(decl.name.text, decl)
        return table

    @cached_property
    def start(self) -> ast.State | None:
        """The state the machine starts in (`start X`, else the first state)."""
        if self.machine.start is not None:
            return self.states.get(self.machine.start.text)
        return self.machine.states[0] if self.machine.states else None

    @cached_property
    def flow(self) -> Flow:
        from mgt.check.flow import Flow

        return Flow(self)

    # ---- types for expression checks -------------------------------------

    def schema_type(self, name: str) -> ExprType:
        """The expression type of a value of schema `name` (any when it is not loaded)."""
        from mgt.expr.types import ANY, schema_type

        if name in self._type_cache:
            return self._type_cache[name]
        registry = self.defs.schemas
        t = ANY
        if registry is not None and name in registry:
            try:
                t = schema_type(registry, name)
            except Exception:  # a schema the registry accepted but cannot walk: do not guess
                t = ANY
        self._type_cache[name] = t
        return t

    def output_schema(self, state: ast.State) -> str | None:
        """The schema a state's output is checked against (`output X`, formula, polecat)."""
        if state.output is not None:
            return state.output.text
        run = state.run
        if run is None or run.target is None:
            return None
        if run.kind == "formula":
            formula = self.defs.formulas.get(run.target.text)
            return formula.output_schema if formula else None
        if run.kind == "polecat":
            polecat = self.defs.polecats.get(run.target.text)
            return polecat.output_schema if polecat else None
        return None

    def output_type(self, state: ast.State) -> ExprType:
        from mgt.expr.types import branches_result, fan_out_result

        if state.fan_out is not None:
            return fan_out_result(self.step_output_type(state))
        if state.branches:
            return branches_result({
                b.name.text: self.step_output_type(branch_state(state, b))
                for b in state.branches})
        return self.step_output_type(state)

    def machine_output_type(self, run: ast.Run) -> ExprType:
        """What a `run machine` step returns: the child's `returns` type (any if unknown)."""
        from mgt.check.imports import Definitions
        from mgt.check.machines import returns_type, sub_machine
        from mgt.expr.types import ANY

        child = sub_machine(self, run)
        if child is None or child.machine is None:
            return ANY
        defs = Definitions(polecats=dict(child.polecats), formulas=dict(child.formulas),
                           schemas=child.schemas)
        return returns_type(Context(child.machine, defs))

    @cached_property
    def step_states(self) -> list[ast.State]:
        """Every step the machine runs, as a state: each state, or each branch of a state
        of branches (named as its state, so flow and messages find the state)."""
        steps: list[ast.State] = []
        for state in self.machine.states:
            if state.branches:
                steps += [branch_state(state, b) for b in state.branches]
            else:
                steps.append(state)
        return steps

    def step_output_type(self, state: ast.State) -> ExprType:
        """The output of the state's step (of each item's step, for a fan-out)."""
        from mgt.expr.types import ANY, COMMAND_OUTPUT

        schema = self.output_schema(state)
        if schema is not None:
            return self.schema_type(schema)
        if state.run is not None and state.run.kind == "command":
            return COMMAND_OUTPUT
        if state.run is not None and state.run.kind == "machine":
            return self.machine_output_type(state.run)
        return ANY

    @cached_property
    def state_types(self) -> dict[str, ExprType]:
        return {name: self.output_type(state) for name, state in self.states.items()}

    @cached_property
    def item_names(self) -> dict[str, str]:
        """Each fan-out item name → the state that binds it (for 'used outside' errors)."""
        names: dict[str, str] = {}
        for name, state in self.states.items():
            if state.fan_out is not None:
                names.setdefault(state.fan_out.item.text, name)
        return names

    def hidden_items(self, state: ast.State | None) -> dict[str, str]:
        """Why each item name of another fan-out (or of this one, in a guard) is not visible."""
        hidden: dict[str, str] = {}
        for item, owner in self.item_names.items():
            if item in self.states:
                continue
            hidden[item] = (
                f"'{item}' is the item name of the fan-out in state '{owner}' and exists "
                "only in that state's `with` bindings"
                + ("; a guard reads the list of item results as 'output'"
                   if state is not None and state.name.text == owner else "")
            )
        return hidden

    @cached_property
    def input_types(self) -> dict[str, ExprType]:
        from mgt.expr.types import input_type

        return {
            name: input_type(decl.type.name.text, decl.type.enum_values)
            for name, decl in self.inputs.items()
        }
