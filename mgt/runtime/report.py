"""A run record (+ its machine, when it still matches) → the human report: outputs and costs.

Outputs whose schema has a summary in `mgt.extensions.OUTPUT_SUMMARIES`
(PatternReport, ProposedChanges, PRResult) are shown as that summary; every
state's attempts, tokens and dollars are shown in one table with the run's
total, so a finished run says what it found, what it changed and what it cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from mgt.compile.model import Machine
    from mgt.runtime.journal import RunRecord

__all__ = ["output_schemas", "render_costs", "render_outputs"]


def output_schemas(record: RunRecord, machine: Machine | None = None) -> dict[str, str]:
    """State → output schema name, from the machine if given, else from the run's machine file.

    The machine file is only trusted while its hash still matches the run's.
    """
    if machine is None:
        machine = _machine_of(record)
    if machine is None:
        return {}
    return {
        name: spec.output_schema
        for name, spec in machine.states.items()
        if spec.output_schema is not None
    }


def render_outputs(
    record: RunRecord, schemas: Mapping[str, str], console: Console
) -> set[str]:
    """Print the summary of each output that has one, in path order; the states shown."""
    from rich.rule import Rule
    from rich.text import Text

    from mgt.extensions import OUTPUT_SUMMARIES, resolve

    shown: set[str] = set()
    for name in dict.fromkeys(record.path):
        state = record.states.get(name)
        schema = schemas.get(name)
        if state is None or state.output is None or schema not in OUTPUT_SUMMARIES:
            continue
        if not isinstance(state.output, dict):
            continue
        console.print(Rule(Text(f"{name} · {schema}"), align="left"))
        resolve(OUTPUT_SUMMARIES[schema])(state.output, console)
        shown.add(name)
    return shown


def render_costs(record: RunRecord, console: Console) -> None:
    """One row per state entered: attempts, last outcome, tokens and dollars; then the total."""
    from rich.table import Table

    table = Table(title=None, pad_edge=False, show_footer=True)
    table.add_column("state", footer="total")
    table.add_column("attempts", justify="right")
    table.add_column("outcome")
    table.add_column("tokens in", justify="right", footer=f"{record.input_tokens:,}")
    table.add_column("tokens out", justify="right", footer=f"{record.output_tokens:,}")
    table.add_column("cost", justify="right", footer=f"${record.cost_usd:.4f}")
    for name, state in record.states.items():
        table.add_row(
            name,
            str(len(state.attempts)),
            state.last_outcome or "—",
            f"{state.input_tokens:,}",
            f"{state.output_tokens:,}",
            f"${state.cost_usd:.4f}",
        )
    console.print(table)


def _machine_of(record: RunRecord) -> Machine | None:
    machine_info: Any = record.info.get("machine") or {}
    path, sha = machine_info.get("path"), machine_info.get("sha256")
    if not path:
        return None
    from mgt.compile import load_machine
    from mgt.errors import MgtError

    try:
        machine = load_machine(path)
    except MgtError:
        return None
    return machine if machine.source_hash == sha else None
