"""Checked AST → python-statemachine chart and the plain `Machine` model the runtime runs."""
