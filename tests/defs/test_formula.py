"""Formula TOML → Formula: typed inputs with checked defaults, ordered steps, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgt.defs import load_formula, load_formulas
from mgt.errors import DefinitionError
from mgt.expr import Duration

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
[formula]
name = "f"
description = "does f"

[execution]
polecat = "p"
"""


def write(directory: Path, text: str, name: str = "f.formula.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def with_input(table: str, required: str = '["x"]', optional: str = "[]") -> str:
    return HEAD + f"\n[input]\nrequired = {required}\noptional = {optional}\n\n[input.x]\n{table}"


def error_of(path: Path) -> str:
    with pytest.raises(DefinitionError) as info:
        load_formula(path)
    return str(info.value)


def test_bundled_formulas_load_keyed_by_name() -> None:
    formulas = load_formulas(ROOT / "formulas")
    assert sorted(formulas) == ["analyze", "file-pr", "refine"]

    analyze = formulas["analyze"]
    assert analyze.formula.version == "0.1.0"
    assert analyze.formula.category == "observability"
    assert analyze.input_names == ("since", "query_type", "min_occurrences", "output_format")
    since = analyze.input("since")
    assert since is not None and since.type == "duration" and since.required
    assert since.default == "24h"
    assert since.default_value() == Duration(86400, "24h")
    query_type = analyze.input("query_type")
    assert query_type is not None and not query_type.required
    assert query_type.values == ("all", "transitions", "llm-calls", "errors", "sessions")
    assert analyze.output_schema == "PatternReport"
    assert analyze.polecat == "log-analyzer"
    assert analyze.execution.timeout_seconds == 120
    assert analyze.execution.retry_count == 2
    assert analyze.steps[0] == "Query graph transitions for failures"
    assert len(analyze.steps) == 5
    assert analyze.metrics is not None and "patterns_found" in analyze.metrics.track
    assert analyze.example is not None and '"slow_llm"' in (analyze.example.output or "")
    assert analyze.required_inputs == ()  # `since` has a default

    file_pr = formulas["file-pr"]
    changes, evidence = file_pr.input("changes"), file_pr.input("evidence")
    assert changes is not None and changes.type == "file" and changes.format == "diff"
    assert evidence is not None and evidence.schema_name == "PatternReport"
    assert evidence.describe_type() == "file(schema PatternReport)"
    labels = file_pr.input("labels")
    assert labels is not None and labels.items == "string"
    assert labels.default_value() == ["sleeptime", "auto-generated"]
    assert [i.name for i in file_pr.required_inputs] == ["changes", "evidence"]
    assert file_pr.git is not None
    assert file_pr.git.branch_format == "sleeptime/{date}-{pattern_type}"
    assert file_pr.pr is not None and "{pattern_table}" in (file_pr.pr.body_template or "")

    refine = formulas["refine"]
    assert refine.validation.must_pass == ("cabal build", "cabal test")
    assert refine.validation.forbidden_changes == ("*.cabal", "flake.nix", "deploy/wrangler.toml")
    assert refine.guardrails.max_lines_per_file == 50
    assert refine.guardrails.require_pattern_citation is True


def test_unknown_input_type_suggests_the_nearest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    original = (ROOT / "formulas" / "refine.formula.toml").read_text(encoding="utf-8")
    broken = original.replace('[input.patterns]\ntype = "file"', '[input.patterns]\ntype = "fiel"')
    assert broken != original
    write(tmp_path / "formulas", broken, "refine.formula.toml")
    with pytest.raises(DefinitionError) as info:
        load_formulas("formulas")
    assert str(info.value) == (
        "formulas/refine.formula.toml: [input.patterns].type: unknown type 'fiel' "
        "(did you mean 'file'?)"
    )


def test_unknown_type_without_a_near_miss_lists_the_types(tmp_path: Path) -> None:
    path = write(tmp_path, with_input('type = "xyzzy"\n'))
    assert error_of(path) == (
        f"{path}: [input.x].type: unknown type 'xyzzy'; expected one of duration, enum, "
        "integer, number, boolean, string, file, array"
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('type = "integer"\ndefault = "three"', "expected an integer, got 'three'"),
        ('type = "integer"\ndefault = true', "expected an integer, got true"),
        ('type = "integer"\ndefault = 2.5', "expected an integer, got 2.5"),
        ('type = "boolean"\ndefault = "yes"', "expected true or false, got 'yes'"),
        ('type = "string"\ndefault = 3', "expected a string, got 3"),
        ('type = "number"\ndefault = "x"', "expected a number, got 'x'"),
        ('type = "duration"\ndefault = 24', 'expected a duration string such as "24h", got 24'),
        (
            'type = "duration"\ndefault = "24 hours"',
            "invalid duration '24 hours': expected a number and a unit (ms, s, m, h, d), "
            "such as 500ms, 30s, 5m, 24h or 7d",
        ),
        (
            'type = "enum"\nvalues = ["all", "errors"]\ndefault = "erors"',
            "'erors' is not one of all, errors (did you mean 'errors'?)",
        ),
        ('type = "array"\nitems = "string"\ndefault = "a"', "expected an array, got 'a'"),
        (
            'type = "array"\nitems = "string"\ndefault = ["a", 1]',
            "item 1: expected a string, got 1",
        ),
        ('type = "file"\ndefault = 1', "expected a path string, got 1"),
    ],
)
def test_default_of_the_wrong_type(tmp_path: Path, table: str, problem: str) -> None:
    path = write(tmp_path, with_input(table + "\n"))
    assert error_of(path) == f"{path}: [input.x].default: {problem}"


def test_good_defaults_become_runtime_values(tmp_path: Path) -> None:
    text = HEAD + """
[input]
required = []
optional = ["d", "n", "ds"]

[input.d]
type = "duration"
default = "1h30m"

[input.n]
type = "number"
default = 3

[input.ds]
type = "array"
items = "duration"
default = ["5m", "2h"]
"""
    formula = load_formula(write(tmp_path, text))
    inputs = {i.name: i for i in formula.inputs}
    assert inputs["d"].default_value() == Duration(5400, "1h30m")
    assert inputs["n"].default_value() == 3
    assert inputs["ds"].default_value() == [Duration(300, "5m"), Duration(7200, "2h")]


@pytest.mark.parametrize(
    ("required", "optional", "tables", "problem"),
    [
        ('["x", "y"]', "[]", "[input.x]\ntype = \"string\"\n",
         "[input].required: 'y' is listed but has no [input.y] table"),
        ('["x"]', "[]", "[input.x]\ntype = \"string\"\n[input.z]\ntype = \"string\"\n",
         "[input.z]: is not listed in [input].required or [input].optional"),
        ('["x"]', '["x"]', "[input.x]\ntype = \"string\"\n",
         "[input].optional: 'x' is also listed as required"),
        ('["x", "x"]', "[]", "[input.x]\ntype = \"string\"\n",
         "[input].required: 'x' is listed twice"),
        ('"x"', "[]", "[input.x]\ntype = \"string\"\n",
         "[input].required: must be a list of input names"),
    ],
)
def test_input_lists_and_tables_must_agree(
    tmp_path: Path, required: str, optional: str, tables: str, problem: str
) -> None:
    text = HEAD + f"\n[input]\nrequired = {required}\noptional = {optional}\n\n{tables}"
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {problem}"


def test_misspelt_key_in_an_input_table(tmp_path: Path) -> None:
    path = write(tmp_path, with_input('type = "integer"\ndefualt = 3\n'))
    assert error_of(path) == (
        f"{path}: [input.x].defualt: unknown key 'defualt' (did you mean 'default'?)"
    )


def test_misspelt_list_name_in_input(tmp_path: Path) -> None:
    text = HEAD + '\n[input]\nrequired = []\noptinal = ["x"]\n'
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: [input].optinal: unknown key (did you mean 'optional'?)"


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('type = "enum"', "values", "an enum input needs a non-empty list of values"),
        ('type = "enum"\nvalues = ["a", "a"]', "values", "values must be distinct"),
        ('type = "string"\nvalues = ["a"]', "values",
         "only enum inputs take values (this is string)"),
        ('type = "array"\nitems = "strng"', "items",
         "unknown item type 'strng' (did you mean 'string'?)"),
        ('type = "string"\nitems = "string"', "items",
         "only array inputs take items (this is string)"),
        ('type = "string"\nschema = "X"', "schema",
         "only file inputs take schema (this is string)"),
        ('type = "file"\nschema = "X"\nformat = "diff"', "format",
         "a file input takes either schema or format, not both"),
    ],
)
def test_type_specific_keys(tmp_path: Path, table: str, key: str, problem: str) -> None:
    path = write(tmp_path, with_input(table + "\n"))
    assert error_of(path) == f"{path}: [input.x].{key}: {problem}"


def test_execution_is_required_and_strict(tmp_path: Path) -> None:
    path = write(tmp_path, '[formula]\nname = "f"\n')
    assert error_of(path) == f"{path}: [execution]: missing required key"
    path = write(tmp_path, '[formula]\nname = "f"\n[execution]\ntimeout_seconds = 5\n')
    assert error_of(path) == f"{path}: [execution].polecat: missing required key"
    path = write(tmp_path, HEAD + "timeout_secs = 5\n")
    assert error_of(path) == (
        f"{path}: [execution].timeout_secs: unknown key 'timeout_secs' "
        "(did you mean 'timeout_seconds'?)"
    )
    path = write(tmp_path, HEAD + "retry_count = -1\n")
    assert error_of(path).startswith(
        f"{path}: [execution].retry_count: input should be greater than or equal to 0"
    )


def test_steps_are_ordered_by_number(tmp_path: Path) -> None:
    text = HEAD + '\n[steps]\n2 = "second"\n10 = "tenth"\n1 = "first"\n' + "".join(
        f'{n} = "s{n}"\n' for n in range(3, 10)
    )
    formula = load_formula(write(tmp_path, text))
    assert formula.steps[:3] == ("first", "second", "s3")
    assert formula.steps[-1] == "tenth"


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ('1 = "a"\n3 = "c"\n', "[steps]: steps must be numbered 1..2 (missing 2)"),
        ('first = "a"\n', "[steps].first: step keys must be numbers 1, 2, 3, ..."),
        ("1 = 5\n", "[steps].1: must be a string"),
    ],
)
def test_bad_steps(tmp_path: Path, steps: str, problem: str) -> None:
    path = write(tmp_path, HEAD + "\n[steps]\n" + steps)
    assert error_of(path) == f"{path}: {problem}"


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "\n[input\n")
    assert error_of(path).startswith(f"{path}:8:7: invalid TOML: ")


def test_directory_loader_reads_only_formula_files(tmp_path: Path) -> None:
    write(tmp_path, HEAD)
    write(tmp_path, "this is not toml", "notes.toml")
    assert list(load_formulas(tmp_path)) == ["f"]
    write(tmp_path, HEAD, "g.formula.toml")
    with pytest.raises(DefinitionError, match="'f' is already defined in"):
        load_formulas(tmp_path)
