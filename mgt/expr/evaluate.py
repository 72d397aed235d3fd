"""An expression node and an environment of JSON-like values → the expression's value.

A small tree-walking interpreter, never Python `eval`. The environment maps
root names to values:

    input            the run's inputs, by name
    output           this state's output (in `on ... when` guards)
    STATE            {"output": ..., "attempts": N} for a state that has run
    it               the current item inside count/any/all

Reading a field or index that is not there gives `null` (so `exists(output.x)`
works, and `output.x ?? 0` gives 0); using `null` where a value is needed
(ordering, arithmetic, `and`) is an `ExprError` whose span points at the
sub-expression that was null.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mgt.errors import ExprError
from mgt.expr.durations import Duration
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
from mgt.span import Span

__all__ = ["FUNCTIONS", "evaluate", "evaluate_guard", "type_name"]

#: Function name → (min args, max args or None for any). count/any/all take (list, expr).
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "len": (1, 1),
    "exists": (1, 1),
    "min": (1, None),
    "max": (1, None),
    "sum": (1, 1),
    "count": (2, 2),
    "any": (2, 2),
    "all": (2, 2),
}

_MAX_DEPTH = 200


def type_name(value: Any) -> str:
    """The JSON-ish name of a runtime value's type, as messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Duration):
        return "duration"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    """The value of `expr` in `env`. Raises ExprError (with the span) when it cannot be computed."""
    return _Evaluator(env).eval(expr, 0)


def evaluate_guard(expr: Expr, env: Mapping[str, Any]) -> bool:
    """Evaluate a `when` guard; anything but a boolean result is an ExprError."""
    value = evaluate(expr, env)
    if not isinstance(value, bool):
        raise ExprError(f"a guard must be true or false, got {_show(value)}", expr.span)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    name = type_name(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:39] + "…"
        return f'string "{text}"'
    if _is_number(value):
        return f"{name} {value}"
    if isinstance(value, Duration):
        return f"duration {value.text}"
    if name == "list":
        return "a list"
    return "an object" if name == "object" else name


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 == 1.0, lists/objects compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if type_name(a) != type_name(b):
        return False
    return bool(a == b)


class _Evaluator:
    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env
        self.its: list[Any] = []  # the items of the enclosing count/any/all, innermost last

    def eval(self, expr: Expr, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ExprError("expression nested too deeply", expr.span)
        d = depth + 1
        match expr:
            case Literal(value=value):
                return value
            case DurationLit(seconds=seconds, text=text):
                return Duration(seconds, text)
            case ListExpr(items=items):
                return [self.eval(item, d) for item in items]
            case ObjectExpr(items=members):
                return {key: self.eval(value, d) for key, value in members}
            case Name(id=name):
                if name == "it" and self.its:
                    return self.its[-1]
                return self.env.get(name)
            case Attr(obj=obj, name=name):
                return self.attr(self.eval(obj, d), name, expr)
            case Index(obj=obj, index=index):
                return self.index(self.eval(obj, d), self.eval(index, d), expr)
            case Unary(op="not", operand=operand):
                return not self.boolean(self.eval(operand, d), operand, "not")
            case Unary(op="-", operand=operand):
                value = self.eval(operand, d)
                if _is_number(value):
                    return -value
                raise ExprError(f"cannot negate {_show(value)}", operand.span)
            case Binary(op="and", left=left, right=right):
                if not self.boolean(self.eval(left, d), left, "and"):
                    return False
                return self.boolean(self.eval(right, d), right, "and")
            case Binary(op="or", left=left, right=right):
                if self.boolean(self.eval(left, d), left, "or"):
                    return True
                return self.boolean(self.eval(right, d), right, "or")
            case Binary(op="??", left=left, right=right):
                value = self.eval(left, d)  # the right side only when needed, like and/or
                return self.eval(right, d) if value is None else value
            case Binary(op=op, left=left, right=right):
                return self.binary(op, self.eval(left, d), self.eval(right, d), expr)
            case Call():
                return self.call(expr, d)
        raise ExprError(f"cannot evaluate {type(expr).__name__}", getattr(expr, "span", None))

    # --- paths -------------------------------------------------------------

    def attr(self, obj: Any, name: str, expr: Attr) -> Any:
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            return obj.get(name)
        raise ExprError(f"cannot read field '{name}' of {_show(obj)}", expr.name_span)

    def index(self, obj: Any, key: Any, expr: Index) -> Any:
        if obj is None:
            return None
        if isinstance(obj, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ExprError(
                    f"a {type_name(obj)} index must be an integer, got {_show(key)}",
                    expr.index.span,
                )
            if -len(obj) <= key < len(obj):
                return obj[key]
            return None
        if isinstance(obj, Mapping):
            if not isinstance(key, str):
                raise ExprError(
                    f"an object key must be a string, got {_show(key)}", expr.index.span
                )
            return obj.get(key)
        raise ExprError(f"cannot index {_show(obj)}", expr.obj.span)

    # --- operators -------------------------------------------------------

    @staticmethod
    def boolean(value: Any, expr: Expr, op: str) -> bool:
        if isinstance(value, bool):
            return value
        raise ExprError(f"'{op}' needs true or false, got {_show(value)}", expr.span)

    def binary(self, op: str, a: Any, b: Any, expr: Binary) -> Any:
        if op == "==":
            return _equal(a, b)
        if op == "!=":
            return not _equal(a, b)
        if op == "in":
            return self.contains(b, a, expr)
        if op in ("<", "<=", ">", ">="):
            return self.compare(op, a, b, expr)
        try:
            return self.arith(op, a, b, expr)
        except (OverflowError, ValueError):  # 10**400 / 3, a duration times infinity
            raise ExprError(f"'{op}': the result is out of range", expr.span) from None

    def _null_side(self, a: Any, b: Any, expr: Binary, what: str) -> None:
        if a is None:
            raise ExprError(f"{what}: the left side is null", expr.left.span)
        if b is None:
            raise ExprError(f"{what}: the right side is null", expr.right.span)

    def compare(self, op: str, a: Any, b: Any, expr: Binary) -> bool:
        self._null_side(a, b, expr, f"cannot compare with '{op}'")
        ok = (
            (_is_number(a) and _is_number(b))
            or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, Duration) and isinstance(b, Duration))
        )
        if not ok:
            raise ExprError(
                f"cannot compare {_show(a)} with {_show(b)} using '{op}'", expr.span
            )
        result: bool
        if op == "<":
            result = a < b
        elif op == "<=":
            result = a <= b
        elif op == ">":
            result = a > b
        else:
            result = a >= b
        return result

    def arith(self, op: str, a: Any, b: Any, expr: Binary) -> Any:
        self._null_side(a, b, expr, f"cannot apply '{op}'")
        if _is_number(a) and _is_number(b):
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if b == 0:
                raise ExprError("division by zero", expr.right.span)
            return a / b
        if isinstance(a, Duration) and isinstance(b, Duration) and op in ("+", "-"):
            return a + b if op == "+" else a - b
        if op == "*" and isinstance(a, Duration) and _is_number(b):
            return a.scaled(b)
        if op == "*" and _is_number(a) and isinstance(b, Duration):
            return b.scaled(a)
        if op == "/" and isinstance(a, Duration) and _is_number(b):
            if b == 0:
                raise ExprError("division by zero", expr.right.span)
            return a.scaled(1 / b)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if op == "+" and isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return [*a, *b]
        raise ExprError(f"cannot apply '{op}' to {_show(a)} and {_show(b)}", expr.span)

    def contains(self, container: Any, item: Any, expr: Binary) -> bool:
        if container is None:
            raise ExprError("'in' needs a list, string or object on the right, got null",
                            expr.right.span)
        if isinstance(container, str):
            if not isinstance(item, str):
                raise ExprError(
                    f"'in' a string needs a string on the left, got {_show(item)}",
                    expr.left.span,
                )
            return item in container
        if isinstance(container, list | tuple):
            return any(_equal(item, x) for x in container)
        if isinstance(container, Mapping):
            return isinstance(item, str) and item in container
        raise ExprError(
            f"'in' needs a list, string or object on the right, got {_show(container)}",
            expr.right.span,
        )

    # --- functions -------------------------------------------------------

    def call(self, expr: Call, depth: int) -> Any:
        name = expr.func
        if name not in FUNCTIONS:
            raise ExprError(f"unknown function '{name}'", expr.func_span)
        low, high = FUNCTIONS[name]
        n = len(expr.args)
        if n < low or (high is not None and n > high):
            want = str(low) if low == high else f"at least {low}"
            raise ExprError(
                f"{name}() takes {want} argument{'s' * (want != '1')}, got {n}", expr.span
            )
        if name in ("count", "any", "all"):
            return self.quantifier(expr, depth)
        args = [self.eval(a, depth) for a in expr.args]
        if name == "exists":
            return args[0] is not None
        if name == "len":
            value = args[0]
            if isinstance(value, str | list | tuple | Mapping):
                return len(value)
            raise ExprError(f"len() needs a list, string or object, got {_show(value)}",
                            expr.args[0].span)
        if name == "sum":
            items = self.list_arg(args[0], expr.args[0], name)
            try:
                return self.total(items, expr.args[0])
            except (OverflowError, ValueError):
                raise ExprError("sum() is out of range", expr.span) from None
        values, spans = self.extremum_args(args, expr)
        pick: Callable[..., Any] = min if name == "min" else max
        return self.extremum(pick, name, values, spans, expr)

    def list_arg(self, value: Any, arg: Expr, name: str) -> Sequence[Any]:
        if isinstance(value, list | tuple):
            return value
        raise ExprError(f"{name}() needs a list, got {_show(value)}", arg.span)

    def total(self, items: Sequence[Any], arg: Expr) -> Any:
        if items and all(isinstance(x, Duration) for x in items):
            return Duration.of(sum(x.seconds for x in items))
        for x in items:
            if not _is_number(x):
                raise ExprError(f"sum() needs a list of numbers, found {_show(x)}", arg.span)
        result = math.fsum(items) if any(isinstance(x, float) for x in items) else sum(items)
        return result

    def extremum_args(self, args: list[Any], expr: Call) -> tuple[list[Any], list[Span]]:
        if len(args) == 1:
            items = self.list_arg(args[0], expr.args[0], expr.func)
            return list(items), [expr.args[0].span] * len(items)
        return args, [a.span for a in expr.args]

    def extremum(
        self, pick: Callable[..., Any], name: str, values: list[Any], spans: list[Span],
        expr: Call,
    ) -> Any:
        if not values:
            return None
        for value, span in zip(values, spans, strict=True):
            if value is None:
                raise ExprError(f"{name}() of a null value", span)
        kinds = {"number" if _is_number(v) else type_name(v) for v in values}
        if len(kinds) != 1 or not kinds <= {"number", "string", "duration"}:
            shown = ", ".join(sorted(kinds))
            raise ExprError(f"{name}() needs numbers, strings or durations, got {shown}",
                            expr.span)
        return pick(values)

    def quantifier(self, expr: Call, depth: int) -> Any:
        name = expr.func
        items = self.list_arg(self.eval(expr.args[0], depth), expr.args[0], name)
        body = expr.args[1]
        matched = 0
        self.its.append(None)
        try:
            for item in items:
                self.its[-1] = item
                value = self.eval(body, depth)
                if not isinstance(value, bool):
                    raise ExprError(
                        f"the condition of {name}() must be true or false, got {_show(value)}",
                        body.span,
                    )
                if value:
                    matched += 1
                    if name == "any":
                        return True
                elif name == "all":
                    return False
        finally:
            self.its.pop()
        if name == "count":
            return matched
        return name == "all"
