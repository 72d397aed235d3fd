"""Expression syntax nodes (frozen dataclasses with spans), shared by the AST and the runtime.

Guards and bindings are evaluated by `mgt.expr.evaluate`, never by Python `eval`.

    Literal      42, 1.5, "text", true, false, null
    DurationLit  500ms 30s 5m 24h 7d  (value in seconds, original text kept)
    ListExpr     [a, b, c]
    ObjectExpr   {"key": a, "other": b}
    Name         input | output | it | STATE  (the root of a path)
    Attr         obj.field
    Index        obj[expr]
    Unary        not x | -x
    Binary       == != < <= > >= + - * / and or in ??   (`a ?? b`: a, or b when a is null)
    Call         len(x) exists(x) min(..) max(..) sum(x) count(xs, e) any(xs, e) all(xs, e)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as TypingLiteral

from mgt.span import Span

__all__ = [
    "Attr",
    "Binary",
    "BinaryOp",
    "Call",
    "DurationLit",
    "Expr",
    "Index",
    "ListExpr",
    "Literal",
    "Name",
    "ObjectExpr",
    "Unary",
]

BinaryOp = TypingLiteral[
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "and", "or", "in", "??"
]


@dataclass(frozen=True, slots=True)
class Literal:
    value: int | float | str | bool | None
    span: Span


@dataclass(frozen=True, slots=True)
class DurationLit:
    seconds: float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ObjectExpr:
    """An object literal; `items` keep the written order, keys are unique."""

    items: tuple[tuple[str, Expr], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span  # the whole `obj.name`
    name_span: Span  # just `name`, for "unknown field" carets


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: TypingLiteral["not", "-"]
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinaryOp
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span
    func_span: Span


Expr = Literal | DurationLit | ListExpr | ObjectExpr | Name | Attr | Index | Unary | Binary | Call
