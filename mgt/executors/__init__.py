"""Executors: one request shape in, one result shape out, whatever runs the step.

`make_executor(name, **options)` builds one (zellij-cc, claude, tmux, replay,
command); `default_executor_name()` picks the model executor for this machine.
The `builtin` executor belongs to the runtime (`mgt.runtime`).
"""

from mgt.executors.base import ExecRequest, ExecResult, Executor
from mgt.executors.registry import (
    EXECUTOR_NAMES,
    default_executor_name,
    make_executor,
    model_credentials_configured,
)

__all__ = [
    "EXECUTOR_NAMES",
    "ExecRequest",
    "ExecResult",
    "Executor",
    "default_executor_name",
    "make_executor",
    "model_credentials_configured",
]
