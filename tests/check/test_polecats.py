"""Polecat models and tools: `mgt check` reports what the run would refuse, at the TOML file's
value, with a did-you-mean; `mgt exec --dry-run` names a model, never an error, in its place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mgt.check import check_file
from mgt.compile import load_machine
from mgt.defs.locate import toml_value_span
from mgt.runtime.preview import preview_machine

ROOT = Path(__file__).resolve().parent.parent.parent
CASES = ROOT / "tests" / "cases"
POLICY = ("MGT_MODEL", "MGT_MODEL_MAP", "MGT_ALLOW_NON_HAIKU")


@pytest.fixture(autouse=True)
def default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES)
    for name in POLICY:
        monkeypatch.delenv(name, raising=False)


def _found(path: str = "polecat_mistakes.mgt") -> list[tuple[str, int, int, str, str | None]]:
    result = check_file(path)
    return [
        (d.span.file, d.span.line, d.span.column, d.message, d.hint)
        for d in result.sorted_diagnostics()
        if d.span is not None and d.span.file.endswith(".toml")
    ]


def test_model_and_tool_mistakes_are_errors_at_the_polecat_file() -> None:
    summarizer = "polecat_mistakes/polecats/summarizer.toml"
    found = _found()
    assert [(f, line, col, hint) for f, line, col, _, hint in found] == [
        ("polecat_mistakes/polecats/drafter.toml", 8, 30, "did you mean 'git_commit'?"),
        (summarizer, 10, 8, "did you mean 'claude-haiku-4-20250514'?"),
        (summarizer, 18, 3, "did you mean 'sleeptime_logs_query'?"),
        (summarizer, 20, 3, "did you mean 'Grep'?"),
    ]
    assert found[1][3].startswith(
        "polecat 'summarizer': model 'claude-haku-4-20250514' is not a Haiku model"
    )
    assert found[2][3] == "polecat 'summarizer': unknown tool 'sleeptime_log_query'"
    assert not any("unused" in f for f, *_ in found)  # a polecat no state runs is not checked


def test_the_model_policy_is_the_one_the_run_will_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGT_ALLOW_NON_HAIKU", "1")
    assert not any("model" in message for *_, message, _ in _found())
    monkeypatch.delenv("MGT_ALLOW_NON_HAIKU")
    monkeypatch.setenv("MGT_MODEL_MAP", "claude-haku-4-20250514=haiku")
    assert not any("model" in message for *_, message, _ in _found())
    monkeypatch.setenv("MGT_MODEL", "sonnet")  # forces a non-Haiku model on every polecat
    models = [(f, hint) for f, _, _, message, hint in _found() if "model 'sonnet'" in message]
    assert [f.rsplit("/", 1)[1] for f, _ in models] == ["drafter.toml", "summarizer.toml"]
    assert all(hint is None for _, hint in models)


def test_the_bundled_polecats_map_cleanly() -> None:
    result = check_file(str(ROOT / "machines" / "evolve.mgt"))
    assert not [d for d in result.diagnostics if "polecat '" in d.message], result.render()


def test_check_shows_the_polecat_line_with_a_caret() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "check", "polecat_mistakes.mgt"],
        cwd=CASES, capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k not in POLICY},
    )  # fmt: skip
    assert proc.returncode == 1
    assert (
        "polecat_mistakes/polecats/summarizer.toml:18:3: error: polecat 'summarizer': "
        "unknown tool 'sleeptime_log_query'\n"
        '  18 |   "sleeptime_log_query",    # a typo\n'
        "         ^^^^^^^^^^^^^^^^^^^^^\n"
        "     = help: did you mean 'sleeptime_logs_query'?\n"
    ) in proc.stdout


def test_dry_run_refuses_the_machine_with_the_check_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", "polecat_mistakes.mgt", "--dry-run"],
        cwd=CASES, capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k not in POLICY},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "summarizer.toml:10:8: error: polecat 'summarizer': model" in proc.stderr
    assert "model (" not in proc.stdout + proc.stderr


def test_preview_names_the_model_and_gives_the_refusal_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "polecats").mkdir()
    (tmp_path / "polecats" / "p.toml").write_text(
        '[polecat]\nname = "p"\n[model]\nname = "claude-sonnet-4"\n[tools]\navailable = ["Read"]\n'
    )
    (tmp_path / "m.mgt").write_text(
        'machine m "one polecat"\nimport polecats from "polecats"\n\nstate ask:\n'
        '    run polecat p prompt "Say hi."\n    on done -> ok\n    on error -> ok\n'
        "    on schema_invalid -> ok\n    on guardrail -> ok\n    on timeout -> ok\n\n"
        "final ok: succeed\n"
    )
    monkeypatch.setenv("MGT_ALLOW_NON_HAIKU", "1")  # checked and compiled under one policy,
    machine = load_machine(tmp_path / "m.mgt")
    monkeypatch.delenv("MGT_ALLOW_NON_HAIKU")  # previewed under another
    text = preview_machine(machine, {})
    assert "polecat p · model claude-sonnet-4 · tools Read\n" in text
    assert "(the run would refuse this model: model 'claude-sonnet-4' is not a Haiku" in text


def test_locating_values_in_toml_text() -> None:
    text = (
        'model.name = "a"  # top-level dotted key\n'
        "[tools]\n"
        "available = [\n"
        '  "x",  # first\n'
        "  'y', \"z\"\n"
        "]\n"
        "[other]\n"
        'name = "not this one"\n'
    )
    span = toml_value_span("f.toml", text, "model", "name")
    assert (span.line, span.column, span.end_column) == (1, 14, 17)
    assert [
        (s.line, s.column, s.end_column)
        for s in (toml_value_span("f.toml", text, "tools", "available", i) for i in range(3))
    ] == [(4, 3, 6), (5, 3, 6), (5, 8, 11)]
    missing = toml_value_span("f.toml", text, "tools", "available", 7)
    assert (missing.line, missing.column) == (3, 1)  # the key, when the item is not found
    assert toml_value_span("f.toml", text, "nowhere", "name").line == 1
    assert toml_value_span("f.toml", "[a]\n[b]\nk = 1\n", "b", "x").line == 2  # the header


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]"\'=#,\n \\abmodeltoolsavailname.', max_size=120), st.integers(0, 3))
def test_locating_never_fails_on_any_text(text: str, index: int) -> None:
    lines = text.split("\n")
    for span in (
        toml_value_span("f.toml", text, "model", "name"),
        toml_value_span("f.toml", text, "tools", "available", index),
    ):
        assert 1 <= span.line <= len(lines)
        assert span.column >= 1 and span.end_column > span.column
