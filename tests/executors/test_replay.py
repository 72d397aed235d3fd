"""The replay executor: lookup order, recorded results through the Claude Code parser, bad files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mgt.errors import UsageError
from mgt.executors import make_executor
from mgt.executors.base import ExecRequest

Build = Callable[..., ExecRequest]


def recorded(output: object, *, cost: float = 0.002, is_error: bool = False) -> dict[str, object]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": is_error,
        "result": json.dumps(output),
        "structured_output": output,
        "session_id": "sess-1",
        "total_cost_usd": cost,
        "usage": {
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 3,
        },
        "num_turns": 2,
    }


@pytest.fixture
def replay_dir(tmp_path: Path) -> Path:
    d = tmp_path / "answers"
    d.mkdir()
    return d


def test_attempt_file_wins_over_state_file(replay_dir: Path, make_request: Build) -> None:
    (replay_dir / "analyze.json").write_text(json.dumps(recorded({"n": "general"})))
    (replay_dir / "analyze.2.json").write_text(json.dumps(recorded({"n": "second"})))
    executor = make_executor("replay", dir=replay_dir)
    first = executor.run(make_request(attempt=1))
    second = executor.run(make_request(attempt=2))
    third = executor.run(make_request(attempt=3))
    assert [first.output, second.output, third.output] == [
        {"n": "general"},
        {"n": "second"},
        {"n": "general"},
    ]
    assert second.details["replayed_from"] == str(replay_dir / "analyze.2.json")


def test_recorded_result_goes_through_the_claude_parser(
    replay_dir: Path, make_request: Build
) -> None:
    (replay_dir / "analyze.json").write_text(json.dumps(recorded({"ok": True}, cost=0.25)))
    request = make_request()
    result = make_executor("replay", dir=replay_dir).run(request)
    assert result.error is None
    assert result.cost_usd == 0.25
    assert result.input_tokens == 110  # input + cache read + cache creation
    assert result.output_tokens == 20
    assert result.session_id == "sess-1"
    assert result.raw_result_path == request.attempt_dir / "result.json"
    assert json.loads(result.raw_result_path.read_text())["structured_output"] == {"ok": True}


def test_recorded_error_result_is_an_error(replay_dir: Path, make_request: Build) -> None:
    bad = recorded(None, is_error=True)
    bad.update(result="API Error: 400 prompt is too long", api_error_status=400)
    (replay_dir / "analyze.json").write_text(json.dumps(bad))
    result = make_executor("replay", dir=replay_dir).run(make_request())
    assert result.error == (
        "replay analyze.json reported an error (API status 400): API Error: 400 prompt is too long"
    )


def test_a_bare_json_document_is_the_answer_itself(replay_dir: Path, make_request: Build) -> None:
    (replay_dir / "analyze.json").write_text('{"patterns": [], "summary": {"total_patterns": 0}}')
    result = make_executor("replay", dir=replay_dir).run(make_request())
    assert result.error is None
    assert result.output == {"patterns": [], "summary": {"total_patterns": 0}}
    assert result.cost_usd == 0.0


def test_missing_file_names_what_was_looked_for(replay_dir: Path, make_request: Build) -> None:
    result = make_executor("replay", dir=replay_dir).run(make_request(state="refine", attempt=2))
    assert result.error == (
        f"replay: no recorded answer for state 'refine' attempt 2: looked for "
        f"{replay_dir / 'refine.2.json'} and {replay_dir / 'refine.json'}"
    )


@pytest.mark.parametrize("garbage", ["{not json", "", "   \n"])
def test_garbage_file_is_an_error_not_a_crash(
    replay_dir: Path, make_request: Build, garbage: str
) -> None:
    (replay_dir / "analyze.json").write_text(garbage)
    result = make_executor("replay", dir=replay_dir).run(make_request())
    assert result.error is not None
    assert result.output is None


def test_replay_needs_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        make_executor("replay", dir=tmp_path / "nowhere")
    with pytest.raises(UsageError, match="needs a directory"):
        make_executor("replay")


def test_replay_colon_dir_name(replay_dir: Path, make_request: Build) -> None:
    (replay_dir / "analyze.json").write_text('{"x": 1}')
    assert make_executor(f"replay:{replay_dir}").run(make_request()).output == {"x": 1}


def test_the_result_documented_in_executors_md_replays_as_documented(
    tmp_path: Path, make_request: Build
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "executors.md").read_text()
    section = doc.split("The fields of a result that mgt reads", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    answers = tmp_path / "documented"
    answers.mkdir()
    (answers / "analyze.json").write_text(example)
    result = make_executor("replay", dir=answers).run(make_request(state="analyze"))
    assert result.error is None
    assert result.output == {"summary": {"total": 3}, "patterns": []}
    assert result.cost_usd == 0.0123
    assert (result.input_tokens, result.output_tokens) == (1200 + 3000 + 500, 340)
    assert result.session_id == "a1b2c3"
    assert result.details["num_turns"] == 2


def _report(*ids: str) -> dict[str, object]:
    return {"summary": {"total_patterns": len(ids)}, "patterns": [{"id": i} for i in ids]}


def test_each_item_gets_its_own_answer_by_key(replay_dir: Path, make_request: Build) -> None:
    (replay_dir / "refine.json").write_text(json.dumps({"n": "general"}))
    (replay_dir / "refine.slow-a.json").write_text(json.dumps({"n": "a"}))
    (replay_dir / "refine.slow-b.json").write_text(json.dumps({"n": "b"}))
    (replay_dir / "refine.slow-b.2.json").write_text(json.dumps({"n": "b, second try"}))
    (replay_dir / "refine.2.json").write_text(json.dumps({"n": "second try"}))
    executor = make_executor("replay", dir=replay_dir)

    def answer(inputs: dict[str, object], attempt: int = 1) -> object:
        return executor.run(make_request(state="refine", attempt=attempt, inputs=inputs)).output

    # a one-pattern report (a sub-machine's input), an item object, an item that is text
    assert answer({"patterns": _report("slow-a")}) == {"n": "a"}
    assert answer({"item": {"id": "slow-b", "severity": "warning"}}) == {"n": "b"}
    assert answer({"pattern": "slow-a"}) == {"n": "a"}
    # the item's attempt file, then the item's file, before the state's attempt file
    assert answer({"patterns": _report("slow-b")}, attempt=2) == {"n": "b, second try"}
    assert answer({"patterns": _report("slow-a")}, attempt=2) == {"n": "a"}
    # a report of several patterns names no item: the state's answers, as before
    assert answer({"patterns": _report("slow-a", "slow-b")}) == {"n": "general"}
    assert answer({"patterns": _report("slow-a", "slow-b")}, attempt=2) == {"n": "second try"}
    assert answer({"pattern": "unrecorded"}) == {"n": "general"}


@pytest.mark.parametrize("key", ["../outside", "a/b", "..", ".hidden", "x" * 101, "a\nb", ""])
def test_a_key_that_is_not_a_file_name_word_is_never_used(
    replay_dir: Path, make_request: Build, key: str
) -> None:
    (replay_dir / "refine.json").write_text(json.dumps({"n": "general"}))
    (replay_dir / "outside.json").write_text(json.dumps({"n": "escaped"}))
    (replay_dir / "refine...json").write_text(json.dumps({"n": "dots"}))
    result = make_executor("replay", dir=replay_dir).run(
        make_request(state="refine", inputs={"patterns": _report(key)}))
    assert result.output == {"n": "general"}
    assert result.details["replayed_from"] == str(replay_dir / "refine.json")


def test_missing_item_answer_names_every_file_looked_for(
    replay_dir: Path, make_request: Build
) -> None:
    result = make_executor("replay", dir=replay_dir).run(
        make_request(state="refine", inputs={"patterns": _report("slow-a")}))
    assert result.error == (
        f"replay: no recorded answer for state 'refine' attempt 1: looked for "
        f"{replay_dir / 'refine.slow-a.1.json'}, {replay_dir / 'refine.slow-a.json'}, "
        f"{replay_dir / 'refine.1.json'} and {replay_dir / 'refine.json'}"
    )
