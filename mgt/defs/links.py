"""Loaded polecats, formulas and schemas → the references between them that do not resolve.

Each file loads on its own; only together can one see that a formula names a
polecat that does not exist or an output schema that is not in the registry.
Each problem is a sentence naming the file and key, with a did-you-mean.
A kind that was not loaded (None) is not checked against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mgt.defs.formula import Formula
from mgt.defs.polecat import Polecat
from mgt.defs.schemas import SchemaRegistry
from mgt.diagnostics import did_you_mean

__all__ = ["definition_problems", "formula_problems", "polecat_problems"]


def _unknown(path: str, key: str, kind: str, name: str, known: Iterable[str]) -> str:
    hint = did_you_mean(name, known)
    return f"{path}: {key}: unknown {kind} '{name}'" + (f" ({hint})" if hint else "")


def polecat_problems(polecat: Polecat, schemas: SchemaRegistry | None) -> list[str]:
    """A polecat's `[output].schema` must be in the registry."""
    name = polecat.output.schema_name
    if schemas is None or name is None or name in schemas:
        return []
    return [_unknown(polecat.path, "[output].schema", "schema", name, schemas.names())]


def formula_problems(
    formula: Formula,
    polecats: Mapping[str, Polecat] | None,
    schemas: SchemaRegistry | None,
) -> list[str]:
    """A formula's polecat, output type and `file` input schemas must exist."""
    problems: list[str] = []
    if polecats is not None and formula.polecat not in polecats:
        problems.append(
            _unknown(formula.path, "[execution].polecat", "polecat", formula.polecat, polecats)
        )
    if schemas is not None:
        output = formula.output.type
        if output is not None and output not in schemas:
            problems.append(
                _unknown(formula.path, "[output].type", "schema", output, schemas.names())
            )
        for inp in formula.inputs:
            if inp.schema_name is not None and inp.schema_name not in schemas:
                problems.append(
                    _unknown(formula.path, f"[input.{inp.name}].schema", "schema",
                             inp.schema_name, schemas.names())
                )
    return problems


def definition_problems(
    polecats: Mapping[str, Polecat] | None,
    formulas: Mapping[str, Formula] | None,
    schemas: SchemaRegistry | None,
) -> list[str]:
    """Every unresolved reference among the loaded definitions, polecats first."""
    problems: list[str] = []
    for polecat in (polecats or {}).values():
        problems.extend(polecat_problems(polecat, schemas))
    for formula in (formulas or {}).values():
        problems.extend(formula_problems(formula, polecats, schemas))
    return problems
