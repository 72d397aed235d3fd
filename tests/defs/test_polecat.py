"""Polecat TOML → Polecat: the bundled files load unchanged; bad files fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgt.defs import load_polecat, load_polecats
from mgt.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
[polecat]
name = "p"

[model]
name = "claude-haiku-4-20250514"
"""


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(DefinitionError) as info:
        load_polecat(path)
    return str(info.value)


def test_bundled_polecats_load_keyed_by_name() -> None:
    polecats = load_polecats(ROOT / "polecats")
    assert sorted(polecats) == ["conditional-refiner", "log-analyzer", "pr-filer"]

    analyzer = polecats["log-analyzer"]
    assert analyzer.polecat.role == "observer"
    assert analyzer.model.name == "claude-haiku-4-20250514"
    assert analyzer.model.max_tokens == 4096
    assert analyzer.model.temperature == pytest.approx(0.3)
    assert analyzer.system_prompt.startswith("You are the Log Analyzer")
    assert analyzer.tool_names == ("sleeptime_logs_query", "pattern_classifier", "severity_scorer")
    assert analyzer.output.format == "json"
    assert analyzer.output_schema == "PatternReport"
    assert analyzer.thresholds is not None
    assert analyzer.thresholds.latency_warning_ms == 2000
    assert analyzer.thresholds.error_rate_critical == pytest.approx(0.15)
    assert analyzer.schedule is not None and analyzer.schedule.lookback == "24h"

    refiner = polecats["conditional-refiner"]
    assert refiner.output.format == "diff"
    assert refiner.output_schema is None
    assert refiner.output.include_rationale is True
    assert refiner.guardrails.max_files_changed == 5
    assert refiner.guardrails.max_lines_changed == 200
    assert refiner.guardrails.require_pattern_link is True
    assert refiner.guardrails.forbidden_paths == ("src/ExoMonad/Effect/", "deploy/src/handlers/")
    assert refiner.validation.require_typecheck is True

    filer = polecats["pr-filer"]
    assert filer.output.fields == ("pr_url", "branch_name", "commit_sha", "files_changed")
    assert filer.git is not None and filer.git.branch_prefix == "sleeptime/"
    assert filer.pr is not None and filer.pr.draft is True
    assert filer.pr.labels == ("sleeptime", "auto-generated")


def test_unknown_keys_are_kept_for_newer_files(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL + 'team = "ops"\n\n[budget]\nusd = 2\n')
    polecat = load_polecat(path)
    assert polecat.model.model_extra == {"team": "ops"}
    assert polecat.model_extra is not None and polecat.model_extra["budget"] == {"usd": 2}


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", '[polecat]\nname = "p"\ndescription = \n')
    message = error_of(path)
    assert message.startswith(f"{path}:3:15: invalid TOML: ")


def test_unterminated_string_at_end_of_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", '[polecat]\nname = "p')
    message = error_of(path)
    assert message.startswith(f"{path}:2:")
    assert "invalid TOML" in message


def test_binary_garbage_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "bin.toml", b"[polecat]\nname = \xff\xfe\x00\n")
    assert error_of(path) == f"{path}:2:8: not UTF-8 text (byte 0xff)"


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", '[polecat]\nname = "p"\n\n[model]\nprovider = "anthropic"\n')
    assert error_of(path) == f"{path}: [model].name: missing required key"


def test_missing_required_table(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", '[polecat]\nname = "p"\n')
    assert error_of(path) == f"{path}: [model]: missing required key"


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL + 'max_tokens = "lots"\n')
    message = error_of(path)
    assert message.startswith(f"{path}: [model].max_tokens: input should be a valid integer")
    assert message.endswith("(got 'lots')")


def test_wrong_type_in_a_list_names_the_index(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL + '\n[guardrails]\nforbidden_paths = ["a", 3]\n')
    assert error_of(path).startswith(f"{path}: [guardrails].forbidden_paths[1]: input should be")


def test_several_problems_are_counted(tmp_path: Path) -> None:
    text = '[polecat]\nname = "p"\n[model]\nname = "m"\nmax_tokens = "x"\ntemperature = "y"\n'
    path = write(tmp_path, "p.toml", text)
    assert error_of(path).endswith("(and 1 more problem)")


def test_misspelt_section_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL + "\n[guardrials]\nmax_files_changed = 1\n")
    assert error_of(path) == f"{path}: [guardrials]: unknown table (did you mean 'guardrails'?)"


def test_temperature_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL + "temperature = 7\n")
    assert "[model].temperature: input should be less than or equal to 2" in error_of(path)


def test_empty_name_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", MINIMAL.replace('name = "p"', 'name = "  "'))
    assert error_of(path) == f"{path}: [polecat].name: must not be empty"


def test_directory_loader_skips_formulas_and_rejects_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", MINIMAL)
    write(tmp_path, "x.formula.toml", "not = toml = at all")
    assert list(load_polecats(tmp_path)) == ["p"]
    write(tmp_path, "b.toml", MINIMAL)
    with pytest.raises(DefinitionError) as info:
        load_polecats(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'b.toml'}: [polecat].name: 'p' is already defined in {tmp_path / 'a.toml'}"
    )


def test_missing_directory_and_file_instead_of_directory(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no such directory"):
        load_polecats(tmp_path / "nope")
    file = write(tmp_path, "a.toml", MINIMAL)
    with pytest.raises(DefinitionError, match="not a directory"):
        load_polecats(file)
    with pytest.raises(DefinitionError, match="is a directory, not a file"):
        load_polecat(tmp_path)
    with pytest.raises(DefinitionError, match="no such file"):
        load_polecat(tmp_path / "missing.toml")


def test_paths_inside_the_working_directory_are_shown_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "polecats/p.toml", "[polecat]\nname = 1\n")
    with pytest.raises(DefinitionError) as info:
        load_polecats(tmp_path / "polecats")
    assert str(info.value) == (
        "polecats/p.toml: [polecat].name: input should be a valid string (got 1)"
        " (and 1 more problem)"
    )
