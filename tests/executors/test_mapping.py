"""The model table (aliases, env overrides, Haiku-only policy) and the tool table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mgt.errors import DefinitionError, UsageError
from mgt.executors.mapping import TOOL_MAP, builtin_tools, map_model, map_tools

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("claude-haiku-4-20250514", "haiku"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("HAIKU", "haiku"),
        (None, "haiku"),
        ("haiku", "haiku"),
    ],
)
def test_haiku_names_map_to_the_alias(name: str | None, alias: str) -> None:
    assert map_model(name, {}) == alias


def test_non_haiku_is_refused_by_default() -> None:
    with pytest.raises(
        UsageError, match=r"'claude-opus-4' is not a Haiku model.*MGT_ALLOW_NON_HAIKU"
    ):
        map_model("claude-opus-4", {})


def test_non_haiku_allowed_by_env() -> None:
    assert map_model("claude-opus-4", {"MGT_ALLOW_NON_HAIKU": "1"}) == "claude-opus-4"


def test_mgt_model_forces_one_model_for_every_polecat() -> None:
    env = {"MGT_MODEL": "claude-haiku-4-5"}
    assert map_model("claude-haiku-4-20250514", env) == "claude-haiku-4-5"
    assert map_model("anything-else", env) == "claude-haiku-4-5"


def test_mgt_model_is_still_subject_to_the_policy() -> None:
    with pytest.raises(UsageError, match="'sonnet' \\(from MGT_MODEL\\)"):
        map_model("claude-haiku-4-20250514", {"MGT_MODEL": "sonnet"})
    assert map_model("x", {"MGT_MODEL": "sonnet", "MGT_ALLOW_NON_HAIKU": "1"}) == "sonnet"


def test_mgt_model_map_overrides_the_table() -> None:
    env = {"MGT_MODEL_MAP": " claude-haiku-4-20250514 = claude-haiku-4-5 , other=haiku"}
    assert map_model("claude-haiku-4-20250514", env) == "claude-haiku-4-5"
    assert map_model("other", env) == "haiku"
    assert map_model("claude-3-haiku", env) == "haiku"  # unlisted names fall back to the table


@pytest.mark.parametrize("spec", ["justaname", "=haiku", "name=", "a=b,,c"])
def test_malformed_model_map_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="MGT_MODEL_MAP: bad entry"):
        map_model("x-haiku", {"MGT_MODEL_MAP": spec})


def test_empty_entries_in_model_map_are_ignored() -> None:
    assert map_model("m", {"MGT_MODEL_MAP": "m=haiku,", "MGT_MODEL": ""}) == "haiku"


def test_every_bundled_polecat_tool_is_mapped() -> None:
    for path in sorted((ROOT / "polecats").glob("*.toml")):
        polecat = tomllib.loads(path.read_text())
        available = polecat["tools"]["available"]
        map_tools(available, polecat=path.stem)  # raises on an unknown tool
        assert set(available) <= set(TOOL_MAP), path.name


def test_log_analyzer_tools() -> None:
    patterns = map_tools(["sleeptime_logs_query", "pattern_classifier", "severity_scorer"])
    assert patterns == ("Bash(mgt logs:*)",)
    assert builtin_tools(patterns) == "Bash"


def test_refiner_tools_are_read_only_and_deduplicated() -> None:
    patterns = map_tools(["read_template", "read_schema", "read_graph_def", "propose_diff"])
    assert patterns == ("Read", "Glob", "Grep")
    assert builtin_tools(patterns) == "Read,Glob,Grep"


def test_pr_filer_tools() -> None:
    patterns = map_tools(["git_branch", "git_apply", "git_commit", "gh_pr_create"])
    assert patterns == ("Bash(git:*)", "Bash(gh pr create:*)")
    assert builtin_tools(patterns) == "Bash"


def test_no_tools_means_an_empty_tools_flag() -> None:
    assert map_tools([]) == ()
    assert builtin_tools(()) == ""


def test_claude_code_tools_pass_through() -> None:
    assert map_tools(["Read", "Bash(npm test:*)", "read_schema"]) == (
        "Read",
        "Bash(npm test:*)",
        "Glob",
        "Grep",
    )


def test_unknown_tool_names_the_polecat_and_suggests() -> None:
    with pytest.raises(DefinitionError) as err:
        map_tools(["read_templat"], polecat="conditional-refiner")
    message = str(err.value)
    assert "polecat 'conditional-refiner'" in message
    assert "unknown tool 'read_templat'" in message
    assert "did you mean 'read_template'?" in message


@pytest.mark.parametrize("tool", ["Rm", "bash(ls)", "Bash(", "rm -rf /"])
def test_garbage_tools_are_rejected(tool: str) -> None:
    with pytest.raises(DefinitionError, match="unknown tool"):
        map_tools([tool])
