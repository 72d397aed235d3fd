"""Built-in steps that belong to the runtime itself (`noop`)."""

from __future__ import annotations

from typing import Any

from mgt.runtime.context import StepContext

__all__ = ["noop"]


def noop(ctx: StepContext) -> dict[str, Any]:
    """Do nothing and succeed with `{}` (for tests, benchmarks and placeholders in a design)."""
    return {}
