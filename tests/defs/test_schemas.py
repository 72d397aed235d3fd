"""JSON Schema files → SchemaRegistry: checked schemas, $ref across files, JSON-path issues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mgt.defs import SchemaRegistry, ValidationIssue
from mgt.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundled() -> SchemaRegistry:
    return SchemaRegistry.load_dir(ROOT / "schemas")


def pattern(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "slow-llm-dmscene",
        "type": "slow_llm",
        "severity": "warning",
        "occurrences": 12,
        "details": {"node": "dmScene", "avg_latency_ms": 4200},
        "recommendation": "split the prompt",
    }
    return {**base, **overrides}


def report(*patterns: dict[str, Any]) -> dict[str, Any]:
    return {
        "patterns": list(patterns),
        "summary": {"total_patterns": len(patterns), "critical": 0, "warning": 1, "info": 0},
    }


def write_json(directory: Path, name: str, data: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_bundled_schemas_load_keyed_by_stem(bundled: SchemaRegistry) -> None:
    assert bundled.names() == ["LedgerReport", "PRResult", "PatternReport", "ProposedChanges"]
    assert bundled.title("PatternReport") == "PatternReport"
    assert bundled.get("PRResult")["required"][0] == "pr_url"
    assert "PatternReport" in bundled and "Nope" not in bundled
    assert len(bundled) == 4


def test_valid_instance_has_no_issues(bundled: SchemaRegistry) -> None:
    assert bundled.validate("PatternReport", report(pattern())) == []
    assert bundled.is_valid("PatternReport", report())


def test_issues_carry_json_paths_through_defs(bundled: SchemaRegistry) -> None:
    instance = report(pattern(), pattern(severity="bad", occurrences=0))
    del instance["summary"]["info"]
    issues = [str(i) for i in bundled.validate("PatternReport", instance)]
    assert issues == [
        "$.patterns[1].occurrences: 0 is less than the minimum of 1",
        "$.patterns[1].severity: 'bad' is not one of ['critical', 'warning', 'info']",
        "$.summary: 'info' is a required property",
    ]


def test_formats_uri_and_date_time_are_checked(bundled: SchemaRegistry) -> None:
    result = {
        "pr_url": "not a url",
        "branch_name": "sleeptime/2026-01-03-slow-llm",
        "commit_sha": "a" * 40,
        "files_changed": [],
        "status": "draft",
        "created_at": "yesterday",
    }
    issues = {i.path: i.message for i in bundled.validate("PRResult", result)}
    assert issues == {
        "$.created_at": "'yesterday' is not a 'date-time'",
        "$.pr_url": "'not a url' is not a 'uri'",
    }
    result.update(pr_url="https://github.com/o/r/pull/1", created_at="2026-01-03T10:00:00Z")
    assert bundled.validate("PRResult", result) == []


def test_long_instances_are_shortened_in_messages(bundled: SchemaRegistry) -> None:
    issues = bundled.validate("PatternReport", {"patterns": "x" * 500, "summary": {}})
    message = next(i.message for i in issues if i.path == "$.patterns")
    assert len(message) < 120
    assert message.endswith("… is not of type 'array'")


def test_walking_a_schema_through_refs(bundled: SchemaRegistry) -> None:
    assert bundled.property_schema("PatternReport", ["summary", "total_patterns"]) == {
        "type": "integer", "minimum": 0,
    }
    severity = bundled.property_schema("PatternReport", ["patterns", 0, "severity"])
    assert severity is not None and severity["enum"] == ["critical", "warning", "info"]
    assert bundled.property_schema("PatternReport", ["summary", "nope"]) is None
    summary = bundled.resolve("PatternReport", "/properties/summary")
    assert summary["required"][0] == "total_patterns"
    with pytest.raises(KeyError, match="no '/nope' in schema 'PatternReport'"):
        bundled.resolve("PatternReport", "/nope")


def test_unknown_name_suggests(bundled: SchemaRegistry) -> None:
    hint = r"unknown schema 'PatternReprt' \(did you mean 'PatternReport'\?\)"
    with pytest.raises(KeyError, match=hint):
        bundled.get("PatternReprt")
    assert bundled.suggest("PRResults") == "did you mean 'PRResult'?"


def test_cross_file_refs_by_id_and_by_relative_path(tmp_path: Path) -> None:
    write_json(tmp_path, "Item.json", {
        "$id": "https://example.test/schemas/Item.json",
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
        "$defs": {"Tag": {"type": "string", "maxLength": 3}},
    })
    write_json(tmp_path, "Basket.json", {
        "$id": "https://example.test/schemas/Basket.json",
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "Item.json"}},
            "tag": {"$ref": "https://example.test/schemas/Item.json#/$defs/Tag"},
        },
    })
    write_json(tmp_path, "Local.json", {  # no $id: relative refs resolve against the file
        "type": "object",
        "properties": {"first": {"$ref": "Unnamed.json#/$defs/Pos"}},
    })
    write_json(tmp_path, "Unnamed.json", {"$defs": {"Pos": {"type": "integer", "minimum": 1}}})
    registry = SchemaRegistry.load_dir(tmp_path)
    issues = registry.validate("Basket", {"items": [{"n": 1}, {"n": "two"}], "tag": "long"})
    assert [str(i) for i in issues] == [
        "$.items[1].n: 'two' is not of type 'integer'",
        "$.tag: 'long' is too long",
    ]
    assert [str(i) for i in registry.validate("Local", {"first": 0})] == [
        "$.first: 0 is less than the minimum of 1"
    ]
    assert registry.property_schema("Basket", ["items", 0, "n"]) == {"type": "integer"}


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "Bad.json"
    path.write_text('{\n  "type": "object",\n  "properties": {,}\n}\n', encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry.load_dir(tmp_path)
    assert str(info.value) == (
        f"{path}:3:18: invalid JSON: Expecting property name enclosed in double quotes"
    )
    assert info.value.span is not None and info.value.span.line == 3


def test_invalid_schema_names_file_and_place(tmp_path: Path) -> None:
    path = write_json(tmp_path, "Bad.json", {
        "type": "object", "properties": {"n": {"type": "integr"}},
    })
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry.load_dir(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: $.properties.n.type: invalid schema: 'integr' is not valid")


def test_unresolvable_ref_names_file_and_place(tmp_path: Path) -> None:
    path = write_json(tmp_path, "Bad.json", {
        "type": "object", "properties": {"s": {"$ref": "#/$defs/Sumary"}},
        "$defs": {"Summary": {"type": "object"}},
    })
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry.load_dir(tmp_path)
    assert str(info.value) == f"{path}: $.properties.s.$ref: cannot resolve '#/$defs/Sumary'"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"$schema": "http://[json-schema.org/draft-07/schema#", "type": "object"},
            "$.$schema: not a valid URI ('http://[json-schema.org/draft-07/schema#': "
            'Invalid IPv6 URL); write "http://json-schema.org/draft-07/schema#" or leave it out',
        ),
        (
            {"type": "object", "properties": {"s": {"$ref": "http://[x/S.json"}}},
            "$.properties.s.$ref: cannot resolve 'http://[x/S.json': not a valid URI "
            "(Invalid IPv6 URL)",
        ),
    ],
    ids=["schema-uri", "ref-uri"],
)
def test_a_malformed_uri_is_a_diagnostic_for_the_schema_file(
    tmp_path: Path, schema: dict[str, Any], expected: str
) -> None:
    # urllib raises ValueError("Invalid IPv6 URL") from inside jsonschema and referencing
    path = write_json(tmp_path, "Bad.json", schema)
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry.load_dir(tmp_path)
    assert str(info.value) == f"{path}: {expected}"


def test_a_schema_must_be_an_object(tmp_path: Path) -> None:
    path = write_json(tmp_path, "List.json", [1, 2])
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry.load_dir(tmp_path)
    assert str(info.value) == f"{path}: a schema must be a JSON object"


def test_in_memory_schemas(tmp_path: Path) -> None:
    registry = SchemaRegistry({"N": {"type": "integer"}})
    assert registry.validate("N", "x")[0].path == "$"
    assert registry.path("N") == "N"
    assert SchemaRegistry.empty().names() == []
    with pytest.raises(DefinitionError, match=r"^S: \$.type: invalid schema"):
        SchemaRegistry({"S": {"type": 5}})


def test_keys_that_are_not_identifiers_are_quoted_in_paths() -> None:
    registry = SchemaRegistry({"M": {
        "type": "object", "properties": {"a b": {"type": "integer"}},
    }})
    assert [str(i) for i in registry.validate("M", {"a b": "x"})] == [
        "$['a b']: 'x' is not of type 'integer'"
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://github.com/o/r/pull/1", True),
        ("file:///tmp/x", True),
        ("mailto:a@b.c", True),
        ("urn:isbn:123", True),
        ("not a url", False),
        ("github.com/o/r", False),
        ("://x", False),
        ("1http://x", False),
        (3, True),  # formats only judge strings; `type` judges the rest
    ],
)
def test_uri_format(value: object, ok: bool) -> None:
    from mgt.defs.schemas import is_uri

    assert is_uri(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-01-03T10:00:00Z", True),
        ("2026-01-03t10:00:00.123+02:00", True),
        ("2026-01-03 10:00:00-05:30", True),
        ("2026-01-03T10:00:00", False),  # RFC 3339 needs an offset
        ("2026-02-30T10:00:00Z", False),
        ("2026-01-03T25:00:00Z", False),
        ("2026-01-03", False),
        ("yesterday", False),
    ],
)
def test_date_time_format(value: str, ok: bool) -> None:
    from mgt.defs.schemas import is_date_time

    assert is_date_time(value) is ok


def test_a_cycle_of_pure_refs_is_refused_at_load() -> None:
    with pytest.raises(DefinitionError) as info:
        SchemaRegistry({"Loop": {
            "type": "object", "properties": {"a": {"$ref": "#/$defs/B"}},
            "$defs": {"B": {"$ref": "#/$defs/C"}, "C": {"$ref": "#/$defs/B"}},
        }})
    assert str(info.value) == (
        "Loop: $.properties.a.$ref: '#/$defs/B' only refers to other references (a cycle)"
    )


def test_recursive_schemas_load_and_validate() -> None:
    registry = SchemaRegistry({"Tree": {
        "type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
        "additionalProperties": False,
    }})
    assert registry.validate("Tree", {"kids": [{"kids": []}, {"kids": [{}]}]}) == []
    assert [str(i) for i in registry.validate("Tree", {"kids": [{"kid": 1}]})] == [
        "$.kids[0]: Additional properties are not allowed ('kid' was unexpected)"
    ]


def test_absurdly_deep_instances_do_not_crash_validation() -> None:
    registry = SchemaRegistry({"Tree": {
        "type": "object", "properties": {"k": {"$ref": "#"}},
    }})
    deep: dict[str, object] = {}
    for _ in range(5000):
        deep = {"k": deep}
    assert registry.validate("Tree", deep) == [
        ValidationIssue("$", "nested too deeply to validate")
    ]
    assert not registry.is_valid("Tree", deep)
