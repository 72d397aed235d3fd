"""What a built-in step or an output check sees of the run: `StepContext`.

Built-ins (`run builtin NAME`) and output checks (guardrails keyed by output
schema, see `mgt.extensions`) are plain functions of a `StepContext`. They never
see the AST or the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.errors import GuardrailFailure, StepFailure  # their home is the error tree

if TYPE_CHECKING:
    from mgt.defs import Formula, Polecat, SchemaRegistry

__all__ = ["GuardrailFailure", "StepContext", "StepFailure"]


@dataclass(frozen=True)
class StepContext:
    run_id: str
    run_dir: Path
    attempt_dir: Path
    state: str
    attempt: int
    # Values are JSON values, as journaled: a duration is its text ("24h"), a path an
    # absolute path string; guards, not builtins, see durations as Duration objects.
    machine_inputs: Mapping[str, Any]  # the run's inputs (e.g. `repo`, `source`, `forge`)
    bindings: Mapping[str, Any]  # this state's evaluated `with` values
    outputs: Mapping[str, Any]  # outputs of states finished so far, by state name
    cwd: Path
    timeout_seconds: float | None = None
    formula: Formula | None = None
    polecat: Polecat | None = None
    schemas: SchemaRegistry | None = None
    progress: Callable[[str], None] = field(default=lambda _msg: None)
