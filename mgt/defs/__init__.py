"""Definition files → typed models: polecat TOML, formula TOML and the JSON Schema registry.

    load_polecats(dir)  -> {name: Polecat}     *.toml, keyed by [polecat].name
    load_formulas(dir)  -> {name: Formula}     *.formula.toml, keyed by [formula].name
    SchemaRegistry.load_dir(dir)               *.json, keyed by file stem

`definition_problems(polecats, formulas, schemas)` lists references between
them that do not resolve (a formula's polecat, output type, input schemas).

Every problem is a `DefinitionError` whose message names the file and the key
(`formulas/refine.formula.toml: [input.patterns].type: unknown type 'fiel'
(did you mean 'file'?)`), or `file:line:col` for malformed TOML/JSON.
"""

from mgt.defs.formula import (
    INPUT_TYPES,
    Execution,
    Formula,
    FormulaInput,
    load_formula,
    load_formulas,
)
from mgt.defs.links import definition_problems, formula_problems, polecat_problems
from mgt.defs.polecat import Polecat, Thresholds, load_polecat, load_polecats
from mgt.defs.schemas import SchemaRegistry, ValidationIssue, json_path

__all__ = [
    "INPUT_TYPES",
    "Execution",
    "Formula",
    "FormulaInput",
    "Polecat",
    "SchemaRegistry",
    "Thresholds",
    "ValidationIssue",
    "definition_problems",
    "formula_problems",
    "json_path",
    "load_formula",
    "load_formulas",
    "load_polecat",
    "load_polecats",
    "polecat_problems",
]
