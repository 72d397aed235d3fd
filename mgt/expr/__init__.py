"""Expressions of guards and bindings: nodes → values (evaluator) and → types (type checker).

    evaluate(expr, env) -> value            env: input, output, STATE, it (never Python eval)
    evaluate_guard(expr, env) -> bool
    typecheck(expr, scope) -> (ExprType, [Diagnostic])
    fits_input(type, formula_input, registry) -> None | reason
    parse_duration("24h") -> Duration        duration values (compare, add, print as text)
"""

from mgt.expr.durations import Duration, format_seconds, parse_duration
from mgt.expr.evaluate import FUNCTIONS, evaluate, evaluate_guard, type_name
from mgt.expr.types import (
    ANY,
    COMMAND_OUTPUT,
    ExprType,
    Scope,
    fits_declared,
    fits_input,
    input_type,
    list_of,
    object_of,
    schema_type,
    state_type,
    typecheck,
    typecheck_guard,
)
from mgt.expr.values import to_jsonable

__all__ = [
    "ANY",
    "COMMAND_OUTPUT",
    "FUNCTIONS",
    "Duration",
    "ExprType",
    "Scope",
    "evaluate",
    "evaluate_guard",
    "fits_declared",
    "fits_input",
    "format_seconds",
    "input_type",
    "list_of",
    "object_of",
    "parse_duration",
    "schema_type",
    "state_type",
    "to_jsonable",
    "type_name",
    "typecheck",
    "typecheck_guard",
]
