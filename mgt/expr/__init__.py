"""Expressions of guards and bindings: nodes, evaluator, and static type checker.

    parse_duration("24h") -> Duration        duration values (compare, add, print as text)
"""

from mgt.expr.durations import Duration, format_seconds, parse_duration

__all__ = ["Duration", "format_seconds", "parse_duration"]
