"""Loaded definitions → unresolved references between them, each naming file and key."""

from __future__ import annotations

from pathlib import Path

from mgt.defs import (
    SchemaRegistry,
    definition_problems,
    load_formula,
    load_formulas,
    load_polecat,
    load_polecats,
)

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_definitions_are_consistent() -> None:
    polecats = load_polecats(ROOT / "polecats")
    formulas = load_formulas(ROOT / "formulas")
    schemas = SchemaRegistry.load_dir(ROOT / "schemas")
    assert definition_problems(polecats, formulas, schemas) == []


def test_unresolved_references(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(
        '[polecat]\nname = "log-analyser"\n[model]\nname = "m"\n'
        '[output]\nschema = "PatternReprt"\n',
        encoding="utf-8",
    )
    (tmp_path / "f.formula.toml").write_text(
        '[formula]\nname = "f"\n[execution]\npolecat = "log-analyzer"\n'
        '[output]\ntype = "Proposed"\n'
        '[input]\nrequired = ["x"]\noptional = []\n[input.x]\ntype = "file"\nschema = "Other"\n',
        encoding="utf-8",
    )
    polecat = load_polecat(tmp_path / "p.toml")
    formula = load_formula(tmp_path / "f.formula.toml")
    schemas = SchemaRegistry.load_dir(ROOT / "schemas")
    problems = definition_problems({polecat.name: polecat}, {formula.name: formula}, schemas)
    p, f = tmp_path / "p.toml", tmp_path / "f.formula.toml"
    assert problems == [
        f"{p}: [output].schema: unknown schema 'PatternReprt' (did you mean 'PatternReport'?)",
        f"{f}: [execution].polecat: unknown polecat 'log-analyzer' "
        "(did you mean 'log-analyser'?)",
        f"{f}: [output].type: unknown schema 'Proposed' (did you mean 'ProposedChanges'?)",
        f"{f}: [input.x].schema: unknown schema 'Other'",
    ]
    # kinds that were not imported are not checked against
    assert definition_problems(None, {formula.name: formula}, None) == []
