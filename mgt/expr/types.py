"""An expression node and a `Scope` of root-name types → its `ExprType` and diagnostics.

Types come from the machine's input declarations and from the JSON Schema of
each state's output, read lazily (a schema may refer to itself) and through
`$ref`. A field that an object schema with `properties` does not list is an
error naming the schema path and the nearest property, unless the schema allows
extra properties (`additionalProperties: true`, or no `properties` at all).

    typecheck(expr, scope)          -> (ExprType, [Diagnostic])
    typecheck_guard(expr, scope)    -> same, and the result must be a boolean
    fits_input(type, formula_input, registry)  -> None, or why the value cannot bind
    fits_declared(type, "duration", ())        -> None, or why (machine input defaults)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.errors import MgtError
from mgt.expr.durations import parse_duration
from mgt.expr.evaluate import FUNCTIONS, type_name
from mgt.expr.nodes import (
    Attr,
    Binary,
    Call,
    DurationLit,
    Expr,
    Index,
    ListExpr,
    Name,
    ObjectExpr,
    Unary,
)
from mgt.expr.nodes import (
    Literal as LiteralNode,
)
from mgt.span import Span

if TYPE_CHECKING:
    from referencing._core import Resolver

    from mgt.defs import FormulaInput, SchemaRegistry

__all__ = [
    "ANY",
    "BOOLEAN",
    "COMMAND_OUTPUT",
    "DURATION",
    "INTEGER",
    "NULL",
    "NUMBER",
    "STRING",
    "ExprType",
    "Kind",
    "Scope",
    "branches_result",
    "element_type",
    "fan_out_result",
    "fits_declared",
    "fits_input",
    "input_type",
    "list_of",
    "object_of",
    "schema_type",
    "state_type",
    "typecheck",
    "typecheck_guard",
]

Kind = Literal[
    "any", "null", "boolean", "integer", "number", "string", "duration", "list", "object"
]

_NUMERIC = ("integer", "number")
_MAX_DEPTH = 200


@dataclass(frozen=True)
class _SchemaNode:
    """A subschema plus what is needed to read inside it lazily."""

    node: Mapping[str, Any]
    resolver: Resolver[Any]
    registry: SchemaRegistry


@dataclass(frozen=True, eq=False)
class ExprType:
    """The static type of an expression.

    `label` says where a schema-derived type came from (`PatternReport.summary`);
    `values` are the possible values when known (an enum, or a literal's value);
    `schema_name` is set on the root type of a registry schema (what a `file`
    input with `schema = X` accepts).
    """

    kind: Kind
    label: str | None = None
    item: ExprType | None = None  # structural list element type
    fields: Mapping[str, ExprType] | None = None  # structural object fields
    open: bool = False  # structural object: other fields are allowed (type any)
    values: tuple[Any, ...] | None = None
    literal: bool = False  # values come from a literal in the expression
    schema_name: str | None = None
    schema: _SchemaNode | None = field(default=None, repr=False)
    role: Literal["value", "inputs", "state"] = "value"
    # May be null at run time although it has a kind: a schema field that is not
    # `required` (or allows null). `why` says so in a warning's words.
    optional: bool = False
    why: str | None = None

    def describe(self) -> str:
        """`integer`, `list`, or with the origin: `object PatternReport.summary`."""
        if self.kind in ("object", "list") and self.label:
            return f"{self.kind} {self.label}"
        return self.kind

    @property
    def is_any(self) -> bool:
        return self.kind == "any"


ANY = ExprType("any")
NULL = ExprType("null")
BOOLEAN = ExprType("boolean")
INTEGER = ExprType("integer")
NUMBER = ExprType("number")
STRING = ExprType("string")
DURATION = ExprType("duration")


def list_of(item: ExprType, label: str | None = None) -> ExprType:
    return ExprType("list", label=label, item=item)


def object_of(
    fields: Mapping[str, ExprType], label: str | None = None, open: bool = False
) -> ExprType:
    """A structural object type (e.g. a command's output)."""
    return ExprType("object", label=label, fields=dict(fields), open=open)


#: What `run command` produces.
COMMAND_OUTPUT = object_of(
    {"exit_code": INTEGER, "stdout": STRING, "stderr": STRING}, label="command output"
)


#: The outcome of one item of a fan-out (`cancelled`: never run, or stopped by the policy).
ITEM_OUTCOMES = ("done", "schema_invalid", "guardrail", "timeout", "error", "cancelled")


def fan_out_result(item_output: ExprType) -> ExprType:
    """A fan-out state's output: the list of its items' results, in input order."""
    outcome = ExprType("string", label="item outcome", values=ITEM_OUTCOMES)
    optional_text = replace(STRING, optional=True, why="only a failed item has an error")
    result = object_of(
        {"index": INTEGER, "key": ANY, "outcome": outcome,
         "output": replace(item_output, optional=True,
                           why="an item that did not finish with done has no output")
         if not item_output.is_any else item_output,
         "error": optional_text},
        label="item result",
    )
    return list_of(result, label="fan-out results")


def branches_result(outputs: Mapping[str, ExprType]) -> ExprType:
    """A state of branches' output: each branch's result, by branch name."""
    outcome = ExprType("string", label="branch outcome", values=ITEM_OUTCOMES)
    optional_text = replace(STRING, optional=True, why="only a failed branch has an error")
    return object_of({
        name: object_of({
            "outcome": outcome,
            "output": replace(t, optional=True,
                              why="a branch that did not finish with done has no output")
            if not t.is_any else t,
            "error": optional_text,
        }, label=f"branch {name}")
        for name, t in outputs.items()
    }, label="branch results")


def state_type(output: ExprType | None) -> ExprType:
    """The type of a state's name in an expression: `{output, attempts}`."""
    return ExprType(
        "object", fields={"output": output or ANY, "attempts": INTEGER}, role="state"
    )


_DECLARED: dict[str, ExprType] = {
    "str": STRING,
    "int": INTEGER,
    "float": NUMBER,
    "bool": BOOLEAN,
    "duration": DURATION,
    "path": ExprType("string", label="path"),
    "json": ANY,
}


def input_type(type_name: str, enum_values: tuple[str, ...] = ()) -> ExprType:
    """The type of a machine input declared `input NAME: TYPE` (unknown type names → any)."""
    if type_name == "enum":
        return ExprType("string", label="enum", values=tuple(enum_values))
    return _DECLARED.get(type_name, ANY)


def schema_type(registry: SchemaRegistry, name: str) -> ExprType:
    """The type of a value of registry schema `name` (its title is the label).

    Raises KeyError for a name the registry does not hold.
    """
    t = _from_schema(registry.get(name), registry.resolver(name), registry, registry.title(name))
    return replace(t, schema_name=name)


def _schema_kind(node: Mapping[str, Any]) -> Kind:
    declared = node.get("type")
    if isinstance(declared, list):
        kinds = [k for k in declared if k != "null"]
        declared = kinds[0] if len(kinds) == 1 else None
    mapping: dict[str, Kind] = {
        "integer": "integer", "number": "number", "string": "string", "boolean": "boolean",
        "null": "null", "array": "list", "object": "object",
    }
    if isinstance(declared, str):
        return mapping.get(declared, "any")
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node:
        return "list"
    values = node.get("enum")
    if "const" in node:
        values = [node["const"]]
    if isinstance(values, list) and values:
        value_kinds = {_value_kind(v) for v in values}
        if len(value_kinds) == 1:
            return value_kinds.pop()
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches:
            ks = {_schema_kind(b) for b in branches if isinstance(b, dict)} - {"null"}
            if len(ks) == 1:
                return ks.pop()
    return "any"


def _value_kind(value: Any) -> Kind:
    """The kind of a JSON value (a schema's `enum`/`const`); "any" for anything else."""
    name = type_name(value)
    return cast(Kind, name) if name in get_args(Kind) else "any"


def _from_schema(
    node: Any, resolver: Resolver[Any], registry: SchemaRegistry, label: str
) -> ExprType:
    try:
        node, resolver = registry.deref(node, resolver)
    except MgtError:  # a cycle of pure $refs: nothing is known about the value
        return ExprType("any", label=label)
    if not isinstance(node, dict):
        return ExprType("any", label=label)  # `true` / `{}` schemas accept anything
    kind = _schema_kind(node)
    values: tuple[Any, ...] | None = None
    if isinstance(node.get("enum"), list):
        values = tuple(node["enum"])
    elif "const" in node:
        values = (node["const"],)
    schema = _SchemaNode(node, resolver, registry) if kind in ("list", "object") else None
    declared = node.get("type")
    nullable = isinstance(declared, list) and "null" in declared and kind != "null"
    return ExprType(
        kind, label=label, values=values, schema=schema, optional=nullable,
        why=f"{label} may be null" if nullable else None,
    )  # fmt: skip


def _field(t: ExprType, name: str) -> ExprType | None:
    """The type of field `name` of object type `t`, or None when `t` has no such field."""
    if t.fields is not None:
        if name in t.fields:
            return t.fields[name]
        return ExprType("any") if t.open else None
    if t.schema is None:
        return ANY
    node = t.schema.node
    label = f"{t.label}.{name}" if t.label else name
    props = node.get("properties")
    if isinstance(props, dict) and name in props:
        found = _from_schema(props[name], t.schema.resolver, t.schema.registry, label)
        required = node.get("required")
        if not (isinstance(required, list) and name in required) and found.kind != "null":
            found = replace(found, optional=True, why=f"{label} is not a required field")
        return found
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and patterns:
        return ExprType("any", label=label)
    extra = node.get("additionalProperties")
    if extra is False:
        return None
    if isinstance(extra, dict) and extra:
        return _from_schema(extra, t.schema.resolver, t.schema.registry, label)
    if extra is None and isinstance(props, dict) and props:
        return None  # properties listed and extras not invited: a typo is more likely
    return ExprType("any", label=label)


def _field_names(t: ExprType) -> list[str]:
    if t.fields is not None:
        return list(t.fields)
    if t.schema is not None:
        props = t.schema.node.get("properties")
        if isinstance(props, dict):
            return list(props)
    return []


def element_type(t: ExprType) -> ExprType:
    """The element type of list type `t` (a fan-out's item)."""
    return _item(t)


def _item(t: ExprType) -> ExprType:
    """The element type of list type `t`."""
    if t.item is not None:
        return t.item
    if t.schema is None:
        return ANY
    items = t.schema.node.get("items")
    label = f"{t.label}[]" if t.label else None
    if isinstance(items, dict):
        return _from_schema(items, t.schema.resolver, t.schema.registry, label or "item")
    return ExprType("any", label=label)


@dataclass(frozen=True)
class Scope:
    """The types of the root names an expression may use.

    `output` is None where this state's output does not exist yet (in `with`
    bindings); `states` maps each state name to the type of its output; `it`
    is set inside count/any/all.
    """

    inputs: Mapping[str, ExprType] = field(default_factory=dict)
    output: ExprType | None = None
    states: Mapping[str, ExprType] = field(default_factory=dict)
    it: ExprType | None = None
    output_missing_reason: str = "'output' is only available in `on ... when` guards"
    present: frozenset[str] = frozenset()  # paths known not to be null here (`exists(p) and`)
    #: names bound by the state itself (a fan-out's item name, in its `with` bindings)
    locals: Mapping[str, ExprType] = field(default_factory=dict)
    #: names that exist elsewhere but not here, with why (an item name outside its body)
    hidden: Mapping[str, str] = field(default_factory=dict)

    def with_it(self, item: ExprType) -> Scope:
        return replace(self, it=item)

    def knowing(self, paths: frozenset[str]) -> Scope:
        return replace(self, present=self.present | paths) if paths else self


def typecheck(expr: Expr, scope: Scope) -> tuple[ExprType, list[Diagnostic]]:
    """The static type of `expr` and every problem found in it (errors, in source order)."""
    checker = _Checker()
    t = checker.check(expr, scope, 0)
    return t, checker.diagnostics


def typecheck_guard(expr: Expr, scope: Scope) -> tuple[ExprType, list[Diagnostic]]:
    """Like `typecheck`, and a result that cannot be a boolean is an error."""
    checker = _Checker()
    t = checker.check(expr, scope, 0)
    diagnostics = checker.diagnostics
    if t.kind not in ("boolean", "any"):
        diagnostics.append(
            Diagnostic.error(f"a guard must be true or false, but this is {t.describe()}",
                             expr.span)
        )
    else:
        checker.may_be_null(t, expr, "a guard must be true or false")
    return t, diagnostics


def _comparable(a: ExprType, b: ExprType) -> bool:
    if a.is_any or b.is_any:
        return True
    if a.kind in _NUMERIC and b.kind in _NUMERIC:
        return True
    return a.kind == b.kind


def _coalesce(a: ExprType, b: ExprType) -> ExprType:
    """The type of `a ?? b`: a's kind, null only when b may be null too."""
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    if a.is_any or b.is_any:
        return ANY
    plain = replace(a, values=None, literal=False, optional=b.optional, why=b.why)
    if a.kind == b.kind:
        return plain
    if a.kind in _NUMERIC and b.kind in _NUMERIC:
        return replace(NUMBER, optional=b.optional, why=b.why)
    return ANY


def path_text(expr: Expr) -> str | None:
    """`output.summary.total`, `it["x"]`: a path as written, or None for anything else."""
    match expr:
        case Name(id=name):
            return name
        case Attr(obj=obj, name=name):
            base = path_text(obj)
            return f"{base}.{name}" if base is not None else None
        case Index(obj=obj, index=LiteralNode(value=key)) if isinstance(key, str | int):
            base = path_text(obj)
            shown = f'"{key}"' if isinstance(key, str) else str(key)
            return f"{base}[{shown}]" if base is not None else None
    return None


def _paths_within(expr: Expr) -> frozenset[str]:
    """A path and every path it goes through: `a.b.c` → {a.b.c, a.b, a}."""
    found: set[str] = set()
    node: Expr | None = expr
    while isinstance(node, Attr | Index | Name):
        text = path_text(node)
        if text is None:
            break
        found.add(text)
        node = node.obj if isinstance(node, Attr | Index) else None
    return frozenset(found)


def _known_present(expr: Expr, negated: bool = False) -> frozenset[str]:
    """The paths that are not null wherever `expr` is true (or false, when `negated`).

    `exists(p)`, `p != null`, their `and` (or, negated, their `or`) and `not`: what a
    guard tests first, so `exists(output.x) and output.x > 3` is safe.
    """
    match expr:
        case Call(func="exists", args=(arg,)) if not negated:
            return _paths_within(arg)
        case Unary(op="not", operand=operand):
            return _known_present(operand, not negated)
        case Binary(op="and", left=left, right=right) if not negated:
            return _known_present(left) | _known_present(right)
        case Binary(op="or", left=left, right=right) if negated:
            return _known_present(left, True) | _known_present(right, True)
        case Binary(op="!=" | "==" as op, left=left, right=right) if (op == "!=") != negated:
            if isinstance(right, LiteralNode) and right.value is None:
                return _paths_within(left)
            if isinstance(left, LiteralNode) and left.value is None:
                return _paths_within(right)
    return frozenset()


class _Checker:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, message: str, span: Span) -> ExprType:
        self.diagnostics.append(Diagnostic.error(message, span))
        return ANY

    def may_be_null(self, t: ExprType, expr: Expr, what: str) -> None:
        """Warn where a value that may be null meets something that fails on null."""
        if not t.optional:
            return
        path = path_text(expr)
        shown = f"'{path}'" if path else "this value"
        why = f" ({t.why})" if t.why else ""
        hint = (
            f"test it first: 'exists({path}) and ...', or give a default: '{path} ?? DEFAULT'"
            if path
            else "give it a default: '(...) ?? DEFAULT'"
        )
        self.diagnostics.append(
            Diagnostic.warning(
                f"{shown} may be missing or null{why}, and {what}: it fails at run time "
                "when it is",
                expr.span,
                hint,
            )
        )

    def check(self, expr: Expr, scope: Scope, depth: int) -> ExprType:
        if depth > _MAX_DEPTH:
            return self.error("expression nested too deeply", expr.span)
        d = depth + 1
        match expr:
            case LiteralNode(value=value):
                kind = _value_kind(value)
                if kind in ("string", "boolean", "integer", "number"):
                    return ExprType(kind, values=(value,), literal=True)
                return NULL if value is None else ANY
            case DurationLit():
                return DURATION
            case ListExpr(items=items):
                types = [self.check(item, scope, d) for item in items]
                kinds = {t.kind for t in types}
                if len(kinds) == 1:
                    first = types[0]
                    return list_of(replace(first, values=None, literal=False)
                                   if first.literal else first)
                if kinds and kinds <= set(_NUMERIC):
                    return list_of(NUMBER)
                return list_of(ANY)
            case ObjectExpr(items=members):
                fields: dict[str, ExprType] = {}
                for key, member in members:
                    t = self.check(member, scope, d)
                    fields[key] = replace(t, values=None, literal=False) if t.literal else t
                return object_of(fields)
            case Name():
                return self.name(expr, scope)
            case Attr():
                return self.attr(expr, scope, d)
            case Index():
                return self.index(expr, scope, d)
            case Unary(op="not", operand=operand):
                t = self.check(operand, scope, d)
                if t.kind not in ("boolean", "any"):
                    self.error(f"'not' needs true or false, got {t.describe()}", operand.span)
                else:
                    self.may_be_null(t, operand, "'not' needs true or false")
                return BOOLEAN
            case Unary(op="-", operand=operand):
                t = self.check(operand, scope, d)
                if t.kind not in (*_NUMERIC, "any"):
                    return self.error(f"cannot negate {t.describe()}", operand.span)
                self.may_be_null(t, operand, "'-' needs a number")
                return replace(t, values=None, literal=False, optional=False, why=None)
            case Binary():
                return self.binary(expr, scope, d)
            case Call():
                return self.call(expr, scope, d)
        return self.error("unsupported expression", expr.span)

    # --- names and paths ---------------------------------------------------

    def name(self, expr: Name, scope: Scope) -> ExprType:
        name = expr.id
        if name == "input":
            return ExprType("object", fields=dict(scope.inputs), role="inputs")
        if name == "output":
            if scope.output is None:
                return self.error(scope.output_missing_reason, expr.span)
            return scope.output
        if name == "it":
            if scope.it is None:
                return self.error(
                    "'it' is only defined inside count(), any() and all()", expr.span
                )
            return scope.it
        if name in scope.locals:
            return scope.locals[name]
        if name in scope.states:
            return state_type(scope.states[name])
        if name in scope.hidden:
            return self.error(scope.hidden[name], expr.span)
        candidates = ["input", *scope.locals, *scope.states]
        if scope.output is not None:
            candidates.append("output")
        if scope.it is not None:
            candidates.append("it")
        hint = did_you_mean(name, candidates)
        return self.error(f"unknown name '{name}'" + (f" ({hint})" if hint else ""), expr.span)

    def attr(self, expr: Attr, scope: Scope, depth: int) -> ExprType:
        t = self.check(expr.obj, scope, depth)
        if t.kind in ("any", "null"):
            return t
        if t.kind != "object":
            return self.error(
                f"cannot read field '{expr.name}' of {t.describe()}", expr.name_span
            )
        found = _field(t, expr.name)
        if found is not None:
            if path_text(expr) in scope.present:
                return replace(found, optional=False, why=None)
            if t.optional and not found.optional:  # a missing parent makes a null child
                return replace(found, optional=True, why=t.why)
            return found
        hint = did_you_mean(expr.name, _field_names(t))
        tail = f" ({hint})" if hint else ""
        if t.role == "inputs":
            return self.error(f"unknown input '{expr.name}'{tail}", expr.name_span)
        if t.role == "state":
            state = expr.obj.id if isinstance(expr.obj, Name) else "state"
            return self.error(
                f"unknown field '{expr.name}' of state '{state}' "
                f"(a state has 'output' and 'attempts')",
                expr.name_span,
            )
        where = t.label or "this object"
        return self.error(f"unknown field '{expr.name}' in {where}{tail}", expr.name_span)

    def index(self, expr: Index, scope: Scope, depth: int) -> ExprType:
        t = self.check(expr.obj, scope, depth)
        key = self.check(expr.index, scope, depth)
        if t.kind in ("any", "null"):
            return t
        if t.kind in ("list", "string"):
            if key.kind not in ("integer", "any"):
                self.error(f"a {t.kind} index must be an integer, got {key.describe()}",
                           expr.index.span)
            return _item(t) if t.kind == "list" else STRING
        if t.kind == "object":
            if key.kind not in ("string", "any"):
                return self.error(f"an object key must be a string, got {key.describe()}",
                                  expr.index.span)
            if key.literal and key.values:
                found = _field(t, str(key.values[0]))
                if found is None:
                    hint = did_you_mean(str(key.values[0]), _field_names(t))
                    return self.error(
                        f"unknown field '{key.values[0]}' in {t.label or 'this object'}"
                        + (f" ({hint})" if hint else ""),
                        expr.index.span,
                    )
                return found
            return ANY
        return self.error(f"cannot index {t.describe()}", expr.obj.span)

    # --- operators -------------------------------------------------------

    def binary(self, expr: Binary, scope: Scope, depth: int) -> ExprType:
        op = expr.op
        a = self.check(expr.left, scope, depth)
        if op in ("and", "or"):
            # The right side runs only when the left is true (`and`) or false (`or`).
            b = self.check(expr.right, scope.knowing(_known_present(expr.left, op == "or")),
                           depth)
            for side, t in ((expr.left, a), (expr.right, b)):
                if t.kind not in ("boolean", "any"):
                    self.error(f"'{op}' needs true or false, got {t.describe()}", side.span)
                else:
                    self.may_be_null(t, side, f"'{op}' needs true or false")
            return BOOLEAN
        b = self.check(expr.right, scope, depth)
        if op == "??":
            return _coalesce(a, b)
        if op in ("==", "!="):
            if a.kind != "null" and b.kind != "null" and not _comparable(a, b):
                self.error(
                    f"cannot compare {a.describe()} with {b.describe()} "
                    f"(it is always {'false' if op == '==' else 'true'})",
                    expr.span,
                )
            else:
                self.enum_value(a, b, expr.right)
                self.enum_value(b, a, expr.left)
            return BOOLEAN
        if op in ("<", "<=", ">", ">="):
            if "null" in (a.kind, b.kind):
                side = expr.left if a.kind == "null" else expr.right
                self.error(f"cannot compare null using '{op}'", side.span)
            elif not _comparable(a, b) or (
                not a.is_any and a.kind not in (*_NUMERIC, "string", "duration")
            ) or (not b.is_any and b.kind not in (*_NUMERIC, "string", "duration")):
                self.error(
                    f"cannot compare {a.describe()} with {b.describe()} using '{op}'",
                    expr.span,
                )
            else:
                self.may_be_null(a, expr.left, f"'{op}' cannot compare null")
                self.may_be_null(b, expr.right, f"'{op}' cannot compare null")
            return BOOLEAN
        if op == "in":
            return self.contains(expr, a, b)
        return self.arith(expr, a, b)

    def enum_value(self, known: ExprType, other: ExprType, other_expr: Expr) -> None:
        """`output.status == "draftt"`: a literal that the enum can never equal."""
        if known.literal or not known.values or not (other.literal and other.values):
            return
        value = other.values[0]
        if value in known.values:
            return
        shown = ", ".join(str(v) for v in known.values)
        hint = did_you_mean(str(value), [str(v) for v in known.values])
        where = f" of {known.label}" if known.label else ""
        self.error(
            f"{_literal(value)} is not a possible value{where} (one of: {shown})"
            + (f"; {hint}" if hint else ""),
            other_expr.span,
        )

    def contains(self, expr: Binary, a: ExprType, b: ExprType) -> ExprType:
        if b.kind == "any":
            return BOOLEAN
        self.may_be_null(b, expr.right, "'in' needs a list, string or object")
        if b.kind == "list":
            if isinstance(expr.right, ListExpr) and a.values and not a.literal:
                for element in expr.right.items:  # `output.status in ["draft", "redy"]`
                    if isinstance(element, LiteralNode):
                        self.enum_value(a, ExprType("string", values=(element.value,),
                                                    literal=True), element)
                return BOOLEAN
            item = _item(b)
            if a.kind != "null" and not _comparable(a, item):
                self.error(
                    f"'in' looks for {a.describe()} in a list of {item.kind}", expr.span
                )
            elif item.values and not item.literal:
                self.enum_value(item, a, expr.left)
            return BOOLEAN
        if b.kind in ("string", "object"):
            if a.kind not in ("string", "any"):
                self.error(f"'in' {b.kind} needs a string on the left, got {a.describe()}",
                           expr.left.span)
            return BOOLEAN
        self.error(
            f"'in' needs a list, string or object on the right, got {b.describe()}",
            expr.right.span,
        )
        return BOOLEAN

    def arith(self, expr: Binary, a: ExprType, b: ExprType) -> ExprType:
        op = expr.op
        if "null" in (a.kind, b.kind):
            side = expr.left if a.kind == "null" else expr.right
            return self.error(f"cannot apply '{op}' to null", side.span)
        self.may_be_null(a, expr.left, f"'{op}' cannot use null")
        self.may_be_null(b, expr.right, f"'{op}' cannot use null")
        a = replace(a, optional=False, why=None) if a.optional else a
        b = replace(b, optional=False, why=None) if b.optional else b
        if a.is_any or b.is_any:
            return ANY
        if a.kind in _NUMERIC and b.kind in _NUMERIC:
            if op == "/" or "number" in (a.kind, b.kind):
                return NUMBER
            return INTEGER
        pair = (a.kind, b.kind)
        if op in ("+", "-") and pair == ("duration", "duration"):
            return DURATION
        if op == "*" and (pair in (("duration", "integer"), ("duration", "number"),
                                   ("integer", "duration"), ("number", "duration"))):
            return DURATION
        if op == "/" and a.kind == "duration" and b.kind in _NUMERIC:
            return DURATION
        if op == "+" and pair == ("string", "string"):
            return STRING
        if op == "+" and pair == ("list", "list"):
            ia, ib = _item(a), _item(b)
            return list_of(ia if ia.kind == ib.kind else ANY)
        return self.error(
            f"cannot apply '{op}' to {a.describe()} and {b.describe()}", expr.span
        )

    # --- functions -------------------------------------------------------

    def call(self, expr: Call, scope: Scope, depth: int) -> ExprType:
        name = expr.func
        if name not in FUNCTIONS:
            for arg in expr.args:
                self.check(arg, scope, depth)
            hint = did_you_mean(name, FUNCTIONS)
            return self.error(
                f"unknown function '{name}'" + (f" ({hint})" if hint else
                f"; the functions are {', '.join(FUNCTIONS)}"),
                expr.func_span,
            )
        low, high = FUNCTIONS[name]
        n = len(expr.args)
        if n < low or (high is not None and n > high):
            for arg in expr.args:
                self.check(arg, scope, depth)
            want = str(low) if low == high else f"at least {low}"
            return self.error(
                f"{name}() takes {want} argument{'s' * (want != '1')}, got {n}", expr.span
            )
        if name in ("count", "any", "all"):
            return self.quantifier(expr, scope, depth)
        args = [self.check(a, scope, depth) for a in expr.args]
        if name == "exists":
            return BOOLEAN
        if name == "len":
            if args[0].kind not in ("list", "string", "object", "any"):
                self.error(f"len() needs a list, string or object, got {args[0].describe()}",
                           expr.args[0].span)
            return INTEGER
        if name == "sum":
            if args[0].is_any:
                return ANY
            if args[0].kind != "list":
                return self.error(f"sum() needs a list, got {args[0].describe()}",
                                  expr.args[0].span)
            item = _item(args[0])
            if item.kind in (*_NUMERIC, "duration", "any"):
                return ExprType(item.kind)
            return self.error(f"sum() needs a list of numbers, got a list of {item.kind}",
                              expr.args[0].span)
        # min / max
        if n == 1:
            if args[0].is_any:
                return ANY
            if args[0].kind != "list":
                return self.error(
                    f"{name}() of one argument needs a list, got {args[0].describe()}",
                    expr.args[0].span,
                )
            values = [_item(args[0])]
        else:
            values = args
        kinds = {t.kind for t in values} - {"any"}
        if kinds and kinds <= set(_NUMERIC):
            return INTEGER if kinds == {"integer"} else NUMBER
        if not kinds:
            return ANY
        if len(kinds) == 1 and kinds <= {"string", "duration"}:
            return ExprType(kinds.pop())
        shown = ", ".join(sorted(kinds))
        return self.error(f"{name}() needs numbers, strings or durations, got {shown}",
                          expr.span)

    def quantifier(self, expr: Call, scope: Scope, depth: int) -> ExprType:
        name = expr.func
        items = self.check(expr.args[0], scope, depth)
        if items.kind == "list":
            item = _item(items)
        elif items.is_any:
            item = ANY
        else:
            self.error(f"{name}() needs a list as its first argument, got {items.describe()}",
                       expr.args[0].span)
            item = ANY
        body = self.check(expr.args[1], scope.with_it(item), depth)
        if body.kind not in ("boolean", "any"):
            self.error(
                f"the condition of {name}() must be true or false, got {body.describe()}",
                expr.args[1].span,
            )
        return INTEGER if name == "count" else BOOLEAN


def _literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


# --- binding checks ----------------------------------------------------------


def fits_input(
    t: ExprType, formula_input: FormulaInput, registry: SchemaRegistry | None = None
) -> str | None:
    """None when a value of type `t` can bind to `formula_input`; else the reason, a phrase
    such as "expects a PatternReport, got ProposedChanges"."""
    return _fits(
        t, formula_input.type, formula_input.values, formula_input.schema_name,
        formula_input.format, formula_input.items, registry,
    )


def _schema_label(name: str, registry: SchemaRegistry | None) -> str:
    if registry is not None and name in registry:
        return registry.title(name)
    return name


def _got(t: ExprType) -> str:
    if t.kind == "object" and t.schema_name:
        return t.label or t.schema_name
    if t.literal and t.values:
        return f"{t.kind} {_literal(t.values[0])}"
    return t.describe()


def _fits(
    t: ExprType,
    kind: str,
    values: tuple[str, ...],
    schema_name: str | None,
    fmt: str | None,
    items: str | None,
    registry: SchemaRegistry | None,
) -> str | None:
    if t.is_any:
        return None
    if t.kind == "null":
        return "got null"
    if kind == "duration":
        if t.kind == "duration":
            return None
        if t.kind == "string":
            if t.literal and t.values:
                try:
                    parse_duration(str(t.values[0]))
                except ValueError as e:
                    return str(e)
            return None
        return f"expects a duration such as 24h, got {_got(t)}"
    if kind == "enum":
        if t.kind != "string":
            return f"expects one of {', '.join(values)}, got {_got(t)}"
        if t.values:
            bad = [v for v in t.values if v not in values]
            if bad:
                hint = did_you_mean(str(bad[0]), values)
                return (
                    f"{_literal(bad[0])} is not one of {', '.join(values)}"
                    + (f" ({hint})" if hint else "")
                )
        return None
    if kind == "integer":
        return None if t.kind == "integer" else f"expects an integer, got {_got(t)}"
    if kind == "number":
        return None if t.kind in _NUMERIC else f"expects a number, got {_got(t)}"
    if kind == "boolean":
        return None if t.kind == "boolean" else f"expects true or false, got {_got(t)}"
    if kind == "string":
        return None if t.kind == "string" else f"expects a string, got {_got(t)}"
    if kind == "file":
        if schema_name:
            wanted = _schema_label(schema_name, registry)
            if t.kind == "string" or (t.kind == "object" and t.schema_name == schema_name):
                return None
            return f"expects a {wanted} (or a path to one), got {_got(t)}"
        if fmt == "diff":
            if t.kind == "string" or (t.kind == "object" and t.schema_name == "ProposedChanges"):
                return None
            return f"expects a diff (a ProposedChanges or a string), got {_got(t)}"
        return None
    if kind == "array":
        if t.kind != "list":
            return f"expects a list{f' of {items}' if items else ''}, got {_got(t)}"
        if items:
            problem = _fits(_item(t), items, (), None, None, None, registry)
            if problem:
                return f"list items: {problem}"
        return None
    return None


def fits_declared(t: ExprType, type_name: str, enum_values: tuple[str, ...] = ()) -> str | None:
    """None when a value of type `t` suits a machine input `input X: TYPE`; else the reason.

    For checking `input NAME: TYPE = DEFAULT` defaults.
    """
    formula_kind = {
        "str": "string", "int": "integer", "float": "number", "bool": "boolean",
        "duration": "duration", "enum": "enum", "path": "string",
    }.get(type_name)
    if formula_kind is None:  # json (or an unknown type, reported elsewhere)
        return None
    return _fits(t, formula_kind, enum_values, None, None, None, None)
