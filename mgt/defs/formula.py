"""Formula TOML (`*.formula.toml`) → `Formula`: typed inputs, output, execution, steps, checks.

The `[input]` table mixes two things: the `required`/`optional` name lists and
one `[input.NAME]` table per input. They are merged here into ordered
`FormulaInput`s (required first), and each default is checked against its
input's type so a wrong default is reported at load time, naming file and key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mgt.defs.files import display_path, key_path, pydantic_error, read_toml, require_dir
from mgt.defs.polecat import GitConfig, NamedSection, PRConfig, Section, check_section_names
from mgt.diagnostics import did_you_mean
from mgt.errors import DefinitionError
from mgt.expr.durations import parse_duration

__all__ = [
    "INPUT_TYPES",
    "Example",
    "Execution",
    "Formula",
    "FormulaGuardrails",
    "FormulaInfo",
    "FormulaInput",
    "FormulaOutput",
    "FormulaValidation",
    "Metrics",
    "load_formula",
    "load_formulas",
]

#: Input types a formula may declare.
INPUT_TYPES: tuple[str, ...] = (
    "duration", "enum", "integer", "number", "boolean", "string", "file", "array",
)
#: Item types of an `array` input.
ITEM_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "duration")

InputType = Literal["duration", "enum", "integer", "number", "boolean", "string", "file", "array"]


class FormulaInfo(NamedSection):
    version: str = "0.0.0"
    category: str | None = None


class FormulaInput(BaseModel):
    """One typed input. Unknown keys are an error here: a misspelt `default` would vanish."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    type: InputType
    description: str = ""
    required: bool = False
    default: Any = None  # as written in TOML; `default_value()` gives the runtime value
    values: tuple[str, ...] = ()  # enum
    schema_name: str | None = Field(default=None, alias="schema")  # file holding JSON of a schema
    format: str | None = None  # file format, e.g. "diff"
    items: str | None = None  # array item type

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in INPUT_TYPES:
            hint = did_you_mean(value, INPUT_TYPES)
            raise ValueError(
                f"unknown type '{value}'"
                + (f" ({hint})" if hint else f"; expected one of {', '.join(INPUT_TYPES)}")
            )
        return value

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def default_value(self) -> Any:
        """The default as a runtime value (a `Duration` for duration inputs), or None."""
        if self.default is None:
            return None
        if self.type == "duration":
            return parse_duration(self.default)
        if self.type == "array" and self.items == "duration":
            return [parse_duration(v) for v in self.default]
        return self.default

    def describe_type(self) -> str:
        """The type as a user reads it: `enum(all, errors)`, `file(schema PatternReport)`."""
        if self.type == "enum":
            return f"enum({', '.join(self.values)})"
        if self.type == "file":
            if self.schema_name:
                return f"file(schema {self.schema_name})"
            if self.format:
                return f"file(format {self.format})"
        if self.type == "array" and self.items:
            return f"array of {self.items}"
        return self.type


class FormulaOutput(Section):
    type: str | None = None  # schema registry key
    description: str = ""


class Execution(BaseModel):
    """How the formula runs. Unknown keys are an error: a misspelt timeout would be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    polecat: str
    timeout_seconds: float | None = Field(default=None, gt=0)
    retry_count: int = Field(default=0, ge=0, le=100)


class FormulaValidation(Section):
    must_pass: tuple[str, ...] = ()
    forbidden_changes: tuple[str, ...] = ()


class FormulaGuardrails(Section):
    max_files_changed: int | None = Field(default=None, ge=0)
    max_lines_changed: int | None = Field(default=None, ge=0)
    max_lines_per_file: int | None = Field(default=None, ge=0)
    require_pattern_citation: bool = False
    require_expected_improvement: bool = False
    forbidden_paths: tuple[str, ...] = ()


class Metrics(Section):
    track: tuple[str, ...] = ()


class Example(Section):
    command: str | None = None
    output: str | None = None


class Formula(Section):
    """A skill: typed inputs, an output schema, the polecat that executes it, steps and checks."""

    formula: FormulaInfo
    inputs: tuple[FormulaInput, ...] = ()
    output: FormulaOutput = FormulaOutput()
    execution: Execution
    steps: tuple[str, ...] = ()
    validation: FormulaValidation = FormulaValidation()
    guardrails: FormulaGuardrails = FormulaGuardrails()
    git: GitConfig | None = None
    pr: PRConfig | None = None
    metrics: Metrics | None = None
    example: Example | None = None
    path: str = ""

    @property
    def name(self) -> str:
        return self.formula.name

    @property
    def description(self) -> str:
        return self.formula.description

    @property
    def polecat(self) -> str:
        return self.execution.polecat

    @property
    def output_schema(self) -> str | None:
        return self.output.type

    def input(self, name: str) -> FormulaInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def required_inputs(self) -> tuple[FormulaInput, ...]:
        """Inputs a binding must supply: required and without a default."""
        return tuple(i for i in self.inputs if i.required and not i.has_default)


_FORMULA_SECTIONS = (
    "formula", "input", "output", "execution", "steps", "validation", "guardrails",
    "git", "pr", "metrics", "example",
)
_INPUT_KEYS = tuple(
    (f.alias or name)
    for name, f in FormulaInput.model_fields.items()
    if name not in ("name", "required")
)
_EXECUTION_KEYS = tuple(Execution.model_fields)


def load_formula(path: str | Path) -> Formula:
    """Read one formula TOML file. Raises DefinitionError naming the file and key."""
    p = Path(path)
    data = read_toml(p)
    check_section_names(p, data, _FORMULA_SECTIONS)
    shown = display_path(p)
    raw = dict(data)
    raw["inputs"] = _inputs(p, raw.pop("input", {}))
    if "steps" in raw:
        raw["steps"] = _steps(p, raw["steps"])
    raw["path"] = shown
    try:
        formula = Formula.model_validate(raw)
    except ValidationError as e:
        raise pydantic_error(p, e, known_keys={("execution",): _EXECUTION_KEYS}) from None
    for inp in formula.inputs:
        _check_input(p, inp)
    return formula


def load_formulas(directory: str | Path) -> dict[str, Formula]:
    """Every `*.formula.toml` in `directory`, keyed by `[formula].name`."""
    d = require_dir(directory)
    found: dict[str, Formula] = {}
    for file in sorted(d.glob("*.formula.toml")):
        formula = load_formula(file)
        if formula.name in found:
            raise DefinitionError(
                f"{display_path(file)}: [formula].name: '{formula.name}' is already defined "
                f"in {found[formula.name].path}"
            )
        found[formula.name] = formula
    return found


def _fail(
    path: Path, loc: tuple[str | int, ...], message: str, table: bool = False
) -> DefinitionError:
    where = f"[{'.'.join(str(p) for p in loc)}]" if table else key_path(loc)
    return DefinitionError(f"{display_path(path)}: {where}: {message}")


def _names(path: Path, table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, ("input", key), "must be a list of input names")
    return value


def _inputs(path: Path, table: Any) -> list[dict[str, Any]]:
    """Merge `[input].required/optional` with the `[input.NAME]` tables, checking they agree."""
    if not isinstance(table, dict):
        raise _fail(path, ("input",), "must be a table")
    required = _names(path, table, "required")
    optional = _names(path, table, "optional")
    tables = {k: v for k, v in table.items() if k not in ("required", "optional")}
    for name in required:
        if name in optional:
            raise _fail(path, ("input", "optional"), f"'{name}' is also listed as required")
    seen: set[str] = set()
    for listed, key in ((required, "required"), (optional, "optional")):
        for name in listed:
            if name in seen:
                raise _fail(path, ("input", key), f"'{name}' is listed twice")
            seen.add(name)
            if name not in tables:
                raise _fail(
                    path, ("input", key), f"'{name}' is listed but has no [input.{name}] table"
                )
    for name, value in tables.items():
        if not isinstance(value, dict):
            hint = did_you_mean(name, ("required", "optional"))
            raise _fail(
                path, ("input", name),
                "unknown key" + (f" ({hint})" if hint else "; expected an [input.NAME] table"),
            )
        if name not in seen:
            raise _fail(
                path, ("input", name), "is not listed in [input].required or [input].optional",
                table=True,
            )
    out: list[dict[str, Any]] = []
    for name in [*required, *optional]:
        fields = tables[name]
        if "name" in fields or "required" in fields:
            bad = "name" if "name" in fields else "required"
            raise _fail(path, ("input", name, bad), f"unknown key '{bad}'")
        try:
            FormulaInput.model_validate({**fields, "name": name, "required": name in required})
        except ValidationError as e:
            raise pydantic_error(
                path, e, prefix=("input", name), known_keys={("input", name): _INPUT_KEYS}
            ) from None
        out.append({**fields, "name": name, "required": name in required})
    return out


def _steps(path: Path, table: Any) -> list[str]:
    """`[steps]` with keys "1".."N" → the steps in order."""
    if not isinstance(table, dict):
        raise _fail(path, ("steps",), "must be a table of numbered steps (1 = \"...\")")
    numbered: dict[int, str] = {}
    for key, text in table.items():
        if not key.isdigit():
            raise _fail(path, ("steps", key), "step keys must be numbers 1, 2, 3, ...")
        if not isinstance(text, str):
            raise _fail(path, ("steps", key), "must be a string")
        numbered[int(key)] = text
    expected = list(range(1, len(numbered) + 1))
    if sorted(numbered) != expected:
        missing = next(n for n in expected if n not in numbered)
        raise _fail(
            path, ("steps",), f"steps must be numbered 1..{len(numbered)} (missing {missing})"
        )
    return [numbered[n] for n in expected]


_SCALAR_CHECKS: dict[str, tuple[str, Any]] = {
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": (
        "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    ),
    "boolean": ("true or false", lambda v: isinstance(v, bool)),
    "string": ("a string", lambda v: isinstance(v, str)),
    "file": ("a path string", lambda v: isinstance(v, str)),
}


def _check_input(path: Path, inp: FormulaInput) -> None:
    """Type-specific keys and the default's type."""
    loc: tuple[str | int, ...] = ("input", inp.name)
    if inp.type == "enum":
        if not inp.values:
            raise _fail(path, (*loc, "values"), "an enum input needs a non-empty list of values")
        if len(set(inp.values)) != len(inp.values):
            raise _fail(path, (*loc, "values"), "values must be distinct")
    elif inp.values:
        raise _fail(path, (*loc, "values"), f"only enum inputs take values (this is {inp.type})")
    if inp.type == "array":
        if inp.items is not None and inp.items not in ITEM_TYPES:
            hint = did_you_mean(inp.items, ITEM_TYPES)
            raise _fail(
                path, (*loc, "items"),
                f"unknown item type '{inp.items}'"
                + (f" ({hint})" if hint else f"; expected one of {', '.join(ITEM_TYPES)}"),
            )
    elif inp.items is not None:
        raise _fail(path, (*loc, "items"), f"only array inputs take items (this is {inp.type})")
    if inp.type != "file":
        for key, value in (("schema", inp.schema_name), ("format", inp.format)):
            if value is not None:
                raise _fail(path, (*loc, key), f"only file inputs take {key} (this is {inp.type})")
    elif inp.schema_name is not None and inp.format is not None:
        raise _fail(path, (*loc, "format"), "a file input takes either schema or format, not both")
    if inp.default is None:
        return
    problem = default_problem(inp, inp.default)
    if problem:
        raise _fail(path, (*loc, "default"), problem)


def default_problem(inp: FormulaInput, value: Any) -> str | None:
    """Why `value` cannot be a value of `inp`'s type (None when it can)."""
    if inp.type == "duration":
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as e:
                return str(e)
            return None
        return f"expected a duration string such as \"24h\", got {_show(value)}"
    if inp.type == "enum":
        if value in inp.values:
            return None
        hint = did_you_mean(str(value), inp.values) if isinstance(value, str) else None
        return f"{_show(value)} is not one of {', '.join(inp.values)}" + (
            f" ({hint})" if hint else ""
        )
    if inp.type == "array":
        if not isinstance(value, list):
            return f"expected an array, got {_show(value)}"
        if inp.items:
            item = FormulaInput(name=inp.name, type=inp.items)  # type: ignore[arg-type]
            for i, v in enumerate(value):
                problem = default_problem(item, v)
                if problem:
                    return f"item {i}: {problem}"
        return None
    what, ok = _SCALAR_CHECKS[inp.type]
    return None if ok(value) else f"expected {what}, got {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return repr(value)
