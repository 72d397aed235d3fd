"""Random expressions and environments → only ExprError from evaluate, nothing from typecheck."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.defs import SchemaRegistry
from mgt.errors import ExprError
from mgt.expr import FUNCTIONS, Scope, evaluate, input_type, schema_type, typecheck
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
    Unary,
)
from mgt.span import Span
from tests.expr.test_types import REGISTRY

AT = Span.point("p.mgt", 1, 1)
NAMES = ["input", "output", "it", "analyze", "refine", "nobody"]
FIELDS = ["summary", "patterns", "total_patterns", "severity", "x", "since", "output", "attempts"]
OPS = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "and", "or", "in"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)

leaves: st.SearchStrategy[Expr] = st.one_of(
    scalars.map(lambda v: Literal(v, AT)),
    st.floats(min_value=0, max_value=1e9).map(lambda s: DurationLit(s, f"{s}s", AT)),
    st.sampled_from(NAMES).map(lambda n: Name(n, AT)),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.lists(children, max_size=3).map(lambda items: ListExpr(tuple(items), AT)),
        st.tuples(children, st.sampled_from(FIELDS)).map(lambda a: Attr(a[0], a[1], AT, AT)),
        st.tuples(children, children).map(lambda a: Index(a[0], a[1], AT)),
        st.tuples(st.sampled_from(["not", "-"]), children).map(
            lambda a: Unary(a[0], a[1], AT)  # type: ignore[arg-type]
        ),
        st.tuples(st.sampled_from(OPS), children, children).map(
            lambda a: Binary(a[0], a[1], a[2], AT)  # type: ignore[arg-type]
        ),
        st.tuples(
            st.sampled_from([*FUNCTIONS, "nope"]), st.lists(children, max_size=3)
        ).map(lambda a: Call(a[0], tuple(a[1]), AT, AT)),
    )


expressions = st.recursive(leaves, _extend, max_leaves=25)

json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    ),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(expr=expressions, env=st.dictionaries(st.sampled_from(NAMES), json_values, max_size=6))
def test_evaluate_raises_only_expr_errors(expr: Expr, env: dict[str, Any]) -> None:
    try:
        evaluate(expr, env)
    except ExprError as error:
        assert error.message
        assert error.span is not None


SCOPE = Scope(
    inputs={"since": input_type("duration"), "x": input_type("int")},
    output=schema_type(REGISTRY, "PatternReport"),
    states={
        "analyze": schema_type(REGISTRY, "PatternReport"),
        "refine": schema_type(REGISTRY, "ProposedChanges"),
    },
)


@settings(max_examples=400, deadline=None)
@given(expr=expressions)
def test_typecheck_never_raises(expr: Expr) -> None:
    t, diagnostics = typecheck(expr, SCOPE)
    assert t.kind
    assert all(d.is_error and d.message for d in diagnostics)


def test_registry_is_the_bundled_one() -> None:
    assert isinstance(REGISTRY, SchemaRegistry) and "PatternReport" in REGISTRY
