"""The polecats a machine runs → diagnostics at their TOML files: models and tools mgt cannot run.

The executors map a polecat's `[model].name` and `[tools].available` when a
state starts (mgt/executors/mapping.py); a name they refuse would fail the run
at that state, after the earlier states were paid for. These checks apply the
same mapping (and the same environment: MGT_MODEL, MGT_MODEL_MAP,
MGT_ALLOW_NON_HAIKU) ahead of time and point at the value in the polecat file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mgt.check.context import Check, Context
from mgt.defs.locate import toml_value_span
from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.errors import MgtError
from mgt.span import Span

if TYPE_CHECKING:
    from mgt.defs import Polecat

__all__ = ["CHECKS", "check_polecat_models", "check_polecat_tools"]


def _used_polecats(ctx: Context) -> list[Polecat]:
    """The polecats the machine's states run, directly or through a formula, once each."""
    found: dict[str, Polecat] = {}
    for state in ctx.step_states:
        run = state.run
        if run is None or run.target is None:
            continue
        name: str | None = None
        if run.kind == "polecat":
            name = run.target.text
        elif run.kind == "formula":
            formula = ctx.defs.formulas.get(run.target.text)
            name = formula.polecat if formula is not None else None
        polecat = ctx.defs.polecats.get(name) if name else None
        if polecat is not None:
            found.setdefault(polecat.name, polecat)
    return list(found.values())


def _file_text(polecat: Polecat) -> str:
    try:
        return Path(polecat.path).read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError):
        return ""


def _span(polecat: Polecat, table: str, key: str, index: int | None = None) -> Span:
    return toml_value_span(polecat.path, _file_text(polecat), table, key, index)


def check_polecat_models(ctx: Context) -> Iterator[Diagnostic]:
    """A model mgt would refuse (not Haiku, a bad MGT_MODEL_MAP) is an error at `[model].name`."""
    from mgt.executors.mapping import DEFAULT_MODEL, MODEL_MAP, map_model

    for polecat in _used_polecats(ctx):
        try:
            map_model(polecat.model.name)
        except MgtError as err:
            forced = bool(os.environ.get("MGT_MODEL", "").strip())  # then the name is not why
            hint = None if forced else did_you_mean(polecat.model.name, [*MODEL_MAP, DEFAULT_MODEL])
            yield Diagnostic.error(
                f"polecat '{polecat.name}': {err.message}",
                _span(polecat, "model", "name"),
                hint,
            )


def check_polecat_tools(ctx: Context) -> Iterator[Diagnostic]:
    """A tool that maps to no Claude Code tool is an error at its item of `[tools].available`."""
    from mgt.executors.mapping import CLAUDE_CODE_TOOLS, TOOL_MAP, map_tools

    for polecat in _used_polecats(ctx):
        for index, tool in enumerate(polecat.tools.available):
            try:
                map_tools([tool], polecat=polecat.name)
            except MgtError:
                hint = did_you_mean(tool, [*TOOL_MAP, *CLAUDE_CODE_TOOLS]) or (
                    f"the known tools are {', '.join(sorted(TOOL_MAP))}, or a Claude Code "
                    "tool such as Read or 'Bash(cmd:*)'"
                )
                yield Diagnostic.error(
                    f"polecat '{polecat.name}': unknown tool '{tool}'",
                    _span(polecat, "tools", "available", index),
                    hint,
                )


CHECKS: tuple[Check, ...] = (check_polecat_models, check_polecat_tools)
