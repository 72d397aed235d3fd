"""Mutated definition files → a DefinitionError or a loaded model, never any other exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mgt.defs import SchemaRegistry, load_formula, load_polecat
from mgt.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]
ORIGINALS = [
    *sorted((ROOT / "formulas").glob("*.formula.toml")),
    *sorted((ROOT / "polecats").glob("*.toml")),
]
SCHEMAS = sorted((ROOT / "schemas").glob("*.json"))
NOISE = ['"', "=", "[", "]", "\n", "x", "1", "-", ".", "{", "}", ",", "true", "\x00", "é"]


@st.composite
def mutated(draw: st.DrawFn, originals: list[Path]) -> tuple[Path, str]:
    original = draw(st.sampled_from(originals))
    text = original.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw(st.integers(min_value=0, max_value=20))
        text = text[:at] + draw(st.sampled_from(NOISE)) + text[at + cut :]
    return original, text


def _load(original: Path, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / original.name
        path.write_text(text, encoding="utf-8")
        try:
            if original.suffix == ".json":
                SchemaRegistry.load_dir(tmp)
            elif original.name.endswith(".formula.toml"):
                load_formula(path)
            else:
                load_polecat(path)
        except DefinitionError as error:
            assert str(error).startswith(str(path)) or str(error).startswith(tmp)
            assert "\n" not in str(error).strip() or "invalid TOML" in str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(ORIGINALS))
def test_mutated_toml_files(case: tuple[Path, str]) -> None:
    _load(*case)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(SCHEMAS))
@example(  # a mutation once found: urllib's ValueError escaped from jsonschema
    case=(SCHEMAS[0], SCHEMAS[0].read_text(encoding="utf-8").replace("http://", "http://[", 1))
)
def test_mutated_schema_files(case: tuple[Path, str]) -> None:
    _load(*case)


@settings(max_examples=150, deadline=None)
@given(data=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["type", "properties", "items", "$ref", "enum", "required", "a"]),
            inner, max_size=4,
        ),
    ),
    max_leaves=12,
))
def test_arbitrary_json_as_a_schema(data: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "S.json").write_text(json.dumps(data), encoding="utf-8")
        try:
            registry = SchemaRegistry.load_dir(tmp)
        except DefinitionError:
            return
        registry.validate("S", {"a": [1, "x", None]})
