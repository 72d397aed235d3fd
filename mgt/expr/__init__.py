"""Expressions of guards and bindings: nodes, evaluator, and static type checker."""
