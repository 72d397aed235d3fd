"""A checked `MachineDecl` and its loaded definitions → the plain `Machine` the runtime runs.

Lowering decides every default so the runtime has none left to decide:

    output schema   `output X`, else the formula's [output].type, else the polecat's
                    [output].schema; commands and builtins have none unless declared
    step            what the state runs, looked up: the formula and its polecat, the
                    polecat and its prompt, the command, the builtin's name
    timeout         `timeout D`, else the formula's [execution].timeout_seconds, else 300 s
    retries         the `retry` clauses; a formula state without any retries
                    [execution].retry_count times on schema_invalid, with feedback
    transitions     as declared, then an implicit one to the `fail` final for every
                    outcome that has no unguarded transition
    inputs          defaults evaluated to runtime values (a Duration for durations)

The input is assumed checked (`mgt.check`); a definition that is still missing
is reported as a `CheckError` rather than lowered into something half-built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt import ast
from mgt.compile.model import (
    EVENTS,
    IMPLICIT_FAIL,
    BuiltinStep,
    CommandStep,
    FanOutSpec,
    FinalSpec,
    FormulaStep,
    InputSpec,
    Machine,
    MachineStep,
    PolecatStep,
    RetrySpec,
    RunSpec,
    StateSpec,
    Step,
    TransitionSpec,
)
from mgt.diagnostics import Diagnostic
from mgt.errors import CheckError, ExprError, MgtError
from mgt.expr.durations import Duration, parse_duration
from mgt.expr.evaluate import evaluate
from mgt.span import Span

if TYPE_CHECKING:
    from mgt.defs import Formula, Polecat, SchemaRegistry

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "IMPLICIT_FAIL_MESSAGE",
    "definition_hashes",
    "input_value",
    "lower",
    "lower_checked",
    "source_hash",
]

#: Timeout of a state when neither the state nor its formula gives one.
DEFAULT_TIMEOUT_SECONDS = 300.0

#: The message of the implicit fail final; the runtime adds the state and the event.
IMPLICIT_FAIL_MESSAGE = "no transition handles this outcome"


def source_hash(text: str) -> str:
    """sha256 hex of a machine's source text (recorded in run.json to spot edits on resume)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lower_checked(result: Any) -> Machine:
    """Lower a `mgt.check.CheckResult`; raises CheckError if it holds errors.

    Reads `result.machine`, `result.diagnostics`, `result.polecats`, `result.formulas`,
    `result.schemas` and (when present) `result.source`.
    """
    diagnostics: list[Diagnostic] = list(getattr(result, "diagnostics", ()) or ())
    errors = [d for d in diagnostics if d.is_error]
    decl: ast.MachineDecl | None = getattr(result, "machine", None)
    source = getattr(result, "source", None)
    if errors or decl is None:
        path = getattr(result, "path", None)
        raise CheckError(  # the warnings too: the CLI shows what `mgt check` shows
            diagnostics if errors else [Diagnostic.error("the machine could not be checked",
                                                         None)],
            path=path, sources={path: source} if path and source is not None else None,
        )
    if source is None:
        source = _read_source(decl.source_path)
    return lower(
        decl,
        source=source,
        polecats=getattr(result, "polecats", None) or {},
        formulas=getattr(result, "formulas", None) or {},
        schemas=getattr(result, "schemas", None),
    )


def lower(
    decl: ast.MachineDecl,
    *,
    source: str,
    polecats: Mapping[str, Polecat],
    formulas: Mapping[str, Formula],
    schemas: SchemaRegistry | None,
) -> Machine:
    """The `Machine` for a checked declaration with every default filled in."""
    lowering = _Lowering(decl, source, polecats, formulas, schemas)
    return lowering.machine()


def definition_hashes(
    polecats: Mapping[str, Polecat], formulas: Mapping[str, Formula],
    schemas: SchemaRegistry | None,
) -> dict[str, str]:
    """Absolute path → sha256 of every definition file a machine loaded (a run pins them)."""
    files = {p.path for p in polecats.values() if p.path}
    files |= {f.path for f in formulas.values() if f.path}
    if schemas is not None:
        files |= {schemas.path(name) for name in schemas.names()}
    hashes: dict[str, str] = {}
    for name in sorted(files):
        path = Path(name)
        if not path.is_file():  # a schema given in memory has its name for a path
            continue
        try:
            hashes[str(path.resolve())] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return hashes


def _with_children(hashes: dict[str, str], states: Mapping[str, StateSpec]) -> dict[str, str]:
    """`hashes` plus the machine file of every `run machine` step (at any depth) and the
    definition files those machines loaded, so a run pins its children too."""
    for spec in states.values():
        for one in (spec, *(branch for _, branch in spec.branches)):
            if isinstance(one.step, MachineStep):
                hashes.update(one.step.machine.definitions)
                path = Path(one.step.path)
                try:
                    hashes[str(path.resolve())] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    continue
    return dict(sorted(hashes.items()))


def _read_source(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MgtError(f"{path}: cannot read the machine source again: {e}") from None


def input_value(type_name: str, value: Any) -> Any:
    """A declared input's default (already evaluated) → its runtime value.

    `duration` accepts a Duration or duration text (`"24h"`); `float` widens ints.
    Raises ValueError with a phrase when the value does not suit the type.
    """
    if value is None:
        return None
    if type_name == "duration":
        if isinstance(value, Duration):
            return value
        if isinstance(value, str):
            return parse_duration(value)
        raise ValueError(f"expected a duration such as 24h, got {value!r}")
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class _Lowering:
    def __init__(
        self,
        decl: ast.MachineDecl,
        source: str,
        polecats: Mapping[str, Polecat],
        formulas: Mapping[str, Formula],
        schemas: SchemaRegistry | None,
    ) -> None:
        self.decl = decl
        self.source = source
        self.lines = source.splitlines()
        self.polecats = polecats
        self.formulas = formulas
        self.schemas = schemas
        self.problems: list[Diagnostic] = []

    def fail(self, message: str, span: Span | None) -> None:
        self.problems.append(Diagnostic.error(message, span))

    def machine(self) -> Machine:
        decl = self.decl
        inputs = tuple(self.input(i) for i in decl.inputs)
        states = {s.name.text: self.state(s) for s in decl.states}
        finals = {
            f.name.text: FinalSpec(f.name.text, f.status, f.message, returns=f.returns)
            for f in decl.finals
        }
        if any(t.target == IMPLICIT_FAIL for s in states.values() for t in s.transitions):
            finals[IMPLICIT_FAIL] = FinalSpec(
                IMPLICIT_FAIL, "fail", IMPLICIT_FAIL_MESSAGE, implicit=True
            )
        if decl.start is not None:
            start = decl.start.text
        elif decl.states:
            start = decl.states[0].name.text
        else:
            start = ""
            self.fail("a machine needs at least one state", decl.span)
        if start and start not in states:
            where = decl.start.span if decl.start is not None else None
            self.fail(f"start state '{start}' is not a state", where)
        if self.problems:
            raise CheckError(self.problems)
        return Machine(
            name=decl.name.text,
            description=decl.description,
            source_path=decl.source_path,
            source_hash=source_hash(self.source),
            inputs=inputs,
            start=start,
            states=states,
            finals=finals,
            polecats=dict(self.polecats),
            formulas=dict(self.formulas),
            schemas=self.schemas,
            definitions=_with_children(
                definition_hashes(self.polecats, self.formulas, self.schemas), states),
        )

    # --- inputs ------------------------------------------------------------

    def input(self, decl: ast.InputDecl) -> InputSpec:
        type_name = decl.type.name.text
        default: Any = None
        if decl.default is not None:
            try:
                default = input_value(type_name, evaluate(decl.default, {}))
            except (ExprError, ValueError) as e:
                self.fail(f"input '{decl.name.text}': bad default: {e}", decl.default.span)
            if type_name == "path" and isinstance(default, str):
                default = self.machine_relative(default)
        return InputSpec(
            name=decl.name.text,
            type=type_name,
            enum_values=tuple(decl.type.enum_values),
            default=default,
            required=decl.default is None,
        )

    def machine_relative(self, value: str) -> str:
        """A path default is written relative to the machine file, like its imports.

        Values given at `mgt exec` stay as typed (relative to the caller's directory);
        URLs (`http://...`) are never paths and stay untouched.
        """
        if "://" in value or not value:
            return value
        path = Path(value).expanduser()
        if path.is_absolute():
            return value
        return str((Path(self.decl.source_path).resolve().parent / path).resolve())

    # --- states ------------------------------------------------------------

    def state(self, decl: ast.State) -> StateSpec:
        name = decl.name.text
        run = decl.run
        if decl.branches:  # each branch is lowered as a state of its own
            branches = tuple((b.name.text, self.state(ast.branch_state(decl, b)))
                             for b in decl.branches)
            return StateSpec(
                name=name, run=RunSpec(kind="builtin"), retries=(),
                transitions=self.transitions(decl), step=BuiltinStep(""),
                branches=branches, tolerate=decl.tolerate,
                cancel_on_failure=decl.cancel_on_failure,
            )
        if run is None:
            self.fail(f"state '{name}' has no `run` clause", decl.span)
            run_spec = RunSpec(kind="builtin", target="noop")
        else:
            run_spec = RunSpec(
                kind=run.kind,
                target=run.target.text if run.target is not None else None,
                prompt=run.prompt,
                command=run.command,
                machine=run.machine,
            )
        formula = self.formula_of(decl)
        polecat = self.polecat_of(decl)
        return StateSpec(
            name=name,
            run=run_spec,
            bindings=tuple((b.name.text, b.value) for b in decl.bindings),
            output_schema=self.output_schema(decl, formula, polecat),
            timeout_seconds=self.timeout(decl, formula),
            retries=self.retries(decl, formula),
            transitions=self.transitions(decl),
            step=self.step(run_spec, formula, polecat),
            fan_out=self.fan_out(decl),
        )

    def fan_out(self, decl: ast.State) -> FanOutSpec | None:
        fan_out = decl.fan_out
        if fan_out is None:
            return None
        return FanOutSpec(
            item=fan_out.item.text,
            items=fan_out.items,
            max=fan_out.max,
            tolerate=fan_out.tolerate,
            cancel_on_failure=fan_out.cancel_on_failure,
            items_source=self.text_of(fan_out.items.span),
        )

    def step(self, run: RunSpec, formula: Formula | None, polecat: Polecat | None) -> Step:
        """What the state runs, looked up once here so the runtime looks nothing up."""
        if run.kind == "machine" and run.machine is not None:
            return self.sub_machine(run.machine)
        if run.kind == "formula" and formula is not None:
            return FormulaStep(formula, polecat)
        if run.kind == "polecat":
            return PolecatStep(run.target or "", polecat, run.prompt or "")
        if run.kind == "command":
            return CommandStep(run.command or "")
        return BuiltinStep(run.target or "")

    def sub_machine(self, written: str) -> Step:
        """`run machine "x.mgt"`: the child compiled now (the checker has refused cycles)."""
        from mgt.check import check_file

        path = (Path(self.decl.source_path).resolve().parent / written).resolve()
        try:
            child = lower_checked(check_file(path))
        except CheckError:
            self.fail(f"machine \"{written}\" does not check; run: mgt check {written}", None)
            return BuiltinStep("")
        except MgtError as err:
            self.fail(f"machine \"{written}\": {err}", None)
            return BuiltinStep("")
        return MachineStep(str(path), child)

    def formula_of(self, decl: ast.State) -> Formula | None:
        run = decl.run
        if run is None or run.kind != "formula" or run.target is None:
            return None
        formula = self.formulas.get(run.target.text)
        if formula is None:
            self.fail(f"unknown formula '{run.target.text}'", run.target.span)
        return formula

    def polecat_of(self, decl: ast.State) -> Polecat | None:
        run = decl.run
        if run is None or run.target is None:
            return None
        if run.kind == "polecat":
            polecat = self.polecats.get(run.target.text)
            if polecat is None:
                self.fail(f"unknown polecat '{run.target.text}'", run.target.span)
            return polecat
        if run.kind == "formula":
            formula = self.formulas.get(run.target.text)
            return self.polecats.get(formula.polecat) if formula is not None else None
        return None

    def output_schema(
        self, decl: ast.State, formula: Formula | None, polecat: Polecat | None
    ) -> str | None:
        name: str | None
        if decl.output is not None:
            name = decl.output.text
        elif formula is not None:
            name = formula.output_schema or (polecat.output_schema if polecat else None)
        elif polecat is not None:
            name = polecat.output_schema
        else:
            return None
        if name is not None and self.schemas is not None and name not in self.schemas:
            span = decl.output.span if decl.output is not None else decl.name.span
            self.fail(f"unknown schema '{name}'", span)
        return name

    def timeout(self, decl: ast.State, formula: Formula | None) -> float:
        if decl.timeout is not None:
            return decl.timeout.seconds
        if formula is not None and formula.execution.timeout_seconds is not None:
            return formula.execution.timeout_seconds
        return DEFAULT_TIMEOUT_SECONDS

    def retries(self, decl: ast.State, formula: Formula | None) -> tuple[RetrySpec, ...]:
        if decl.retries:
            return tuple(
                RetrySpec(
                    count=r.count,
                    events=frozenset(e.text for e in r.events),
                    feedback=r.feedback,
                    backoff_seconds=r.backoff.seconds if r.backoff is not None else None,
                )
                for r in decl.retries
            )
        if formula is not None and formula.execution.retry_count > 0:
            return (
                RetrySpec(
                    count=formula.execution.retry_count,
                    events=frozenset({"schema_invalid"}),
                    feedback=True,
                ),
            )
        return ()

    def transitions(self, decl: ast.State) -> tuple[TransitionSpec, ...]:
        declared = tuple(
            TransitionSpec(
                event=on.event.text,
                target=on.target.text,
                guard=on.guard,
                guard_source=self.text_of(on.guard.span) if on.guard is not None else None,
            )
            for on in decl.transitions
        )
        covered = {t.event for t in declared if t.guard is None}
        implicit = tuple(
            TransitionSpec(event=event, target=IMPLICIT_FAIL, implicit=True)
            for event in EVENTS
            if event not in covered
        )
        return declared + implicit

    def text_of(self, span: Span) -> str:
        """The source text under `span`, on one line (a guard as written, for graphs and logs)."""
        lines = self.lines
        if not (1 <= span.line <= len(lines)) or span.end_line < span.line:
            return ""
        if span.line == span.end_line:
            text = lines[span.line - 1][span.column - 1 : span.end_column - 1]
        else:
            parts = [lines[span.line - 1][span.column - 1 :]]
            parts.extend(lines[span.line : span.end_line - 1])
            if span.end_line <= len(lines):
                parts.append(lines[span.end_line - 1][: span.end_column - 1])
            text = " ".join(p.strip() for p in parts)
        return " ".join(text.split())
