"""Small constructors for `Machine` models, so chart and graph tests read like .mgt sources."""

from __future__ import annotations

from collections.abc import Iterable

from mgt.compile.model import (
    FinalSpec,
    Machine,
    RetrySpec,
    RunSpec,
    StateSpec,
    TransitionSpec,
)
from mgt.expr import nodes as ex
from mgt.span import Span

HERE = Span.point("test.mgt", 1, 1)


def path(text: str) -> ex.Expr:
    """`output.summary.total` → nested Attr nodes."""
    root, *fields = text.split(".")
    expr: ex.Expr = ex.Name(root, HERE)
    for name in fields:
        expr = ex.Attr(expr, name, HERE, HERE)
    return expr


def lit(value: int | float | str | bool | None) -> ex.Literal:
    return ex.Literal(value, HERE)


def binary(op: ex.BinaryOp, left: ex.Expr, right: ex.Expr) -> ex.Binary:
    return ex.Binary(op, left, right, HERE)


def on(event: str, target: str, guard: ex.Expr | None = None, source: str | None = None,
       *, implicit: bool = False) -> TransitionSpec:
    return TransitionSpec(event, target, guard, source, implicit)


def retry(count: int, *events: str, feedback: bool = False,
          backoff: float | None = None) -> RetrySpec:
    return RetrySpec(count, frozenset(events), feedback, backoff)


def state(name: str, *transitions: TransitionSpec, retries: Iterable[RetrySpec] = (),
          run: RunSpec | None = None) -> StateSpec:
    return StateSpec(
        name=name,
        run=run or RunSpec(kind="builtin", target="noop"),
        retries=tuple(retries),
        transitions=transitions,
    )


def machine(*states: StateSpec, finals: dict[str, str] | None = None,
            messages: dict[str, str] | None = None, start: str | None = None,
            name: str = "demo", description: str | None = None) -> Machine:
    finals = finals if finals is not None else {"ok": "succeed"}
    messages = messages or {}
    return Machine(
        name=name,
        description=description,
        source_path="test.mgt",
        source_hash="0" * 64,
        inputs=(),
        start=start or states[0].name,
        states={s.name: s for s in states},
        finals={
            n: FinalSpec(n, status, messages.get(n))  # type: ignore[arg-type]
            for n, status in finals.items()
        },
    )
