"""The interpreter on in-memory machines: routing, retries, outcomes, budget, the journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mgt.compile.model import IMPLICIT_FAIL, InputSpec
from mgt.extensions import BUILTINS, OUTPUT_CHECKS, PROMPT_CONTEXT
from mgt.runtime.journal import load_run, read_events
from tests.runtime.build import builtin, command, formula, machine, on, resume, retry, run
from tests.runtime.steps import calls


@pytest.fixture(autouse=True)
def _test_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("count", "flaky", "reject", "crash", "interrupt_once", "report", "rounds"):
        monkeypatch.setitem(BUILTINS, name, f"tests.runtime.steps:{name}")


def events(run_dir: Path, *types: str) -> list[dict[str, Any]]:
    evs, _ = read_events(run_dir)
    return [e for e in evs if not types or e["type"] in types]


def test_a_chain_runs_to_its_final_and_journals_every_step(tmp_path: Path) -> None:
    m = machine(
        builtin("a", on("done", "b"), step="count"),
        builtin("b", on("done", "ok"), step="count", x="a.output.calls + 41"),
    )
    result = run(m, tmp_path)
    assert (result.status, result.final, result.exit_code) == ("succeeded", "ok", 0)
    assert result.path == ["a", "b", "ok"]
    assert result.outputs["b"] == {"calls": 1, "attempt": 1, "x": 42}
    assert [e["type"] for e in events(result.run_dir)] == [
        "run_started",
        "state_entered", "attempt_started", "attempt_finished", "transition",
        "state_entered", "attempt_started", "attempt_finished", "transition",
        "state_entered", "run_finished",
    ]  # fmt: skip
    assert json.loads((result.run_dir / "outputs" / "b.json").read_text())["x"] == 42
    attempt_output = result.run_dir / "states" / "b" / "1" / "output.json"
    assert json.loads(attempt_output.read_text())["x"] == 42
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["status"] == "succeeded" and info["final"] == "ok"
    assert info["path"] == ["a", "b", "ok"] and info["current_state"] == "ok"
    assert load_run(tmp_path, "run-1").summary() == result.summary()


def test_guards_are_tried_in_declared_order_first_match_wins(tmp_path: Path) -> None:
    def build() -> Any:
        return machine(
            builtin(
                "a",
                on("done", "big", "output.total > 10"),
                on("done", "medium", "output.total > 5"),
                on("done", "small"),
                step="count", total="input.n",
            ),
            builtin("big", on("done", "ok")),
            builtin("medium", on("done", "ok")),
            builtin("small", on("done", "ok")),
            inputs=[InputSpec("n", "int")],
        )

    for n, expected in [(20, "big"), (7, "medium"), (1, "small")]:
        result = run(build(), tmp_path / str(n), inputs={"n": n})
        assert result.path == ["a", expected, "ok"], n
    (transition,) = [e for e in events(tmp_path / "20" / "run-1", "transition")
                     if e["from"] == "a"]
    assert transition["guard"] == "output.total > 10"


def test_retries_consume_events_then_the_events_transition_fires(tmp_path: Path) -> None:
    m = machine(
        builtin("a", on("done", "ok"), on("error", "bad"), step="flaky",
                retries=[retry(2, "error")], succeed_on="9"),
    )
    result = run(m, tmp_path)
    assert result.path == ["a", "bad"] and result.status == "failed" and result.exit_code == 1
    assert calls(result.run_dir) == [("a", 1), ("a", 2), ("a", 3)]
    finished = events(result.run_dir, "attempt_finished")
    assert [e["outcome"] for e in finished] == ["error"] * 3
    assert finished[0]["error"] == "not yet (attempt 1)"


def test_a_retry_that_succeeds_goes_on_done(tmp_path: Path) -> None:
    m = machine(builtin("a", on("done", "ok"), step="flaky", retries=[retry(3, "error")],
                        succeed_on="2"))
    result = run(m, tmp_path)
    assert result.path == ["a", "ok"]
    assert result.outputs["a"] == {"attempt": 2}


def test_backoff_sleeps_and_is_journaled(tmp_path: Path) -> None:
    slept: list[float] = []
    m = machine(builtin("a", on("done", "ok"), step="flaky",
                        retries=[retry(1, "error", backoff=2.5)], succeed_on="2"))
    result = run(m, tmp_path, sleep=slept.append)
    assert slept == [2.5]
    assert [e["seconds"] for e in events(result.run_dir, "backoff")] == [2.5]


def test_an_unhandled_event_goes_to_the_implicit_fail_naming_state_and_event(
    tmp_path: Path,
) -> None:
    result = run(machine(builtin("a", on("done", "ok"), step="crash")), tmp_path)
    assert (result.status, result.final) == ("failed", IMPLICIT_FAIL)
    assert result.message == "state 'a' ended with 'error' and has no transition for it"
    (finished,) = events(result.run_dir, "attempt_finished")
    assert finished["error"] == "builtin 'crash' raised ValueError: boom"


def test_a_guardrail_failure_carries_every_problem(tmp_path: Path) -> None:
    result = run(machine(builtin("a", on("guardrail", "bad"), step="reject")), tmp_path)
    assert result.path == ["a", "bad"]
    (finished,) = events(result.run_dir, "attempt_finished")
    assert finished["outcome"] == "guardrail"
    assert finished["problems"] == ["change 1 cites no pattern id", "flake.nix is a forbidden path"]


def test_builtin_output_is_validated_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    bad = run(machine(builtin("a", on("schema_invalid", "bad"), step="report", output="Report",
                              total="-1")), tmp_path / "1")
    assert bad.path == ["a", "bad"]
    (finished,) = events(bad.run_dir, "attempt_finished")
    assert finished["problems"] == ["at $.summary.total: -1 is less than the minimum of 0"]

    monkeypatch.setitem(OUTPUT_CHECKS, "Report", ["tests.runtime.steps:check_items"])
    monkeypatch.setitem(BUILTINS, "report", "tests.runtime.steps:report")
    ok = run(machine(builtin("a", on("done", "ok"), step="report", output="Report",
                             total="3")), tmp_path / "2")
    assert ok.path == ["a", "ok"]


def test_a_guard_that_cannot_be_evaluated_is_an_error_outcome(tmp_path: Path) -> None:
    m = machine(builtin("a", on("done", "ok", "output.missing > 1"), on("error", "bad")))
    result = run(m, tmp_path)
    assert result.path == ["a", "bad"]
    (failed,) = events(result.run_dir, "guard_failed")
    assert "could not be evaluated" in failed["error"]
    (transition,) = events(result.run_dir, "transition")
    assert transition["event"] == "error"


def test_a_command_state_outputs_exit_code_stdout_stderr(tmp_path: Path) -> None:
    m = machine(
        command("a", "echo hi; echo err >&2", on("done", "b")),
        command("b", "exit 3", on("done", "ok"), on("error", "bad", "output.exit_code == 3")),
    )
    result = run(m, tmp_path)
    assert result.path == ["a", "b", "bad"]
    assert result.outputs["a"] == {"exit_code": 0, "stdout": "hi\n", "stderr": "err\n"}
    finished = events(result.run_dir, "attempt_finished")
    assert finished[1]["outcome"] == "error" and "exited with 3" in finished[1]["error"]


def test_a_commands_bindings_are_its_environment_variables(tmp_path: Path) -> None:
    m = machine(
        builtin("a", on("done", "b"), step="count", n="3"),
        command("b", 'printf "%s|%s|%s|%s" "$who" "$n" "$tags" "$since"', on("done", "ok"),
                who='"o\'brien; rm -rf /"', n="a.output.n + 1", tags='["x", "y"]',
                since="input.since"),
        inputs=[InputSpec("since", "duration")],
    )
    from mgt.expr.durations import parse_duration

    result = run(m, tmp_path, inputs={"since": parse_duration("90m")})
    assert result.path == ["a", "b", "ok"]
    assert result.outputs["b"]["stdout"] == 'o\'brien; rm -rf /|4|["x", "y"]|90m'


def test_a_binding_an_environment_cannot_hold_is_an_error_outcome(tmp_path: Path) -> None:
    m = machine(command("a", "true", on("done", "ok"), on("error", "bad"), text='"a\\0b"'))
    result = run(m, tmp_path)
    assert result.path == ["a", "bad"]
    (finished,) = events(result.run_dir, "attempt_finished")
    assert "binding 'text' contains a NUL byte" in finished["error"]


def test_a_command_timeout_is_the_timeout_event(tmp_path: Path) -> None:
    m = machine(command("a", "sleep 30", on("timeout", "bad"), timeout=0.5))
    result = run(m, tmp_path)
    assert result.path == ["a", "bad"]
    (finished,) = events(result.run_dir, "attempt_finished")
    assert finished["outcome"] == "timeout"


def test_ctrl_c_journals_interrupted_and_resume_finishes_without_rerunning(tmp_path: Path
                                                                          ) -> None:
    m = machine(
        builtin("a", on("done", "b"), step="count"),
        builtin("b", on("done", "c"), step="interrupt_once"),
        builtin("c", on("done", "ok"), step="count"),
    )
    first = run(m, tmp_path)
    assert first.status == "interrupted" and first.exit_code == 130
    assert load_run(tmp_path, "run-1").status == "interrupted"
    assert events(first.run_dir)[-1]["type"] == "run_interrupted"

    second = resume(m, tmp_path)
    assert second.status == "succeeded" and second.path == ["a", "b", "c", "ok"]
    # a ran once; b's cut-short attempt 1 was run again as attempt 2; c once
    assert calls(first.run_dir) == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert second.outputs["a"] == {"calls": 1, "attempt": 1}


def _replay(tmp_path: Path, answers: dict[str, Any]) -> Path:
    d = tmp_path / "replay"
    d.mkdir(exist_ok=True)
    for name, answer in answers.items():
        (d / f"{name}.json").write_text(json.dumps(answer))
    return d


def _result(text: str, cost: float = 0.01) -> dict[str, Any]:
    return {"type": "result", "subtype": "success", "is_error": False, "result": text,
            "total_cost_usd": cost, "usage": {"input_tokens": 1000, "output_tokens": 50},
            "session_id": "s"}


REPORT_TEXT = json.dumps({"patterns": [], "summary": {"total_patterns": 0, "critical": 0,
                                                      "warning": 0, "info": 0}})


def test_schema_invalid_then_valid_sends_feedback_quoting_each_error(tmp_path: Path) -> None:
    replay = _replay(tmp_path, {
        "analyze.1": _result('Sure! {"patterns": [{"id": 7}], "summary": {"total_patterns": "x"}}'),
        "analyze.2": _result(f"```json\n{REPORT_TEXT}\n```"),
    })
    m = machine(
        formula("analyze", "analyze", on("done", "ok"), output="PatternReport",
                retries=[retry(2, "schema_invalid", feedback=True)], since='"24h"'),
        definitions=True,
    )
    result = run(m, tmp_path / "runs", replay_dir=replay)
    assert result.path == ["analyze", "ok"]
    assert result.totals.cost_usd == pytest.approx(0.02)
    assert result.totals.input_tokens == 2000
    a1 = result.run_dir / "states" / "analyze" / "1"
    a2 = result.run_dir / "states" / "analyze" / "2"
    assert not (a1 / "feedback.md").exists()
    feedback = (a2 / "feedback.md").read_text()
    assert "- at $.patterns[0].id: 7 is not of type 'string'" in feedback
    assert "- at $.summary.total_patterns: 'x' is not of type 'integer'" in feedback
    assert "- at $.summary: 'critical' is a required property" in feedback
    prompt2 = (a2 / "prompt.md").read_text()
    assert feedback.strip() in prompt2
    request = json.loads((a1 / "request.json").read_text())
    assert request["model"] == "haiku"
    assert request["system_prompt"].startswith("You are the Log Analyzer")
    assert "Bash(mgt logs:*)" in request["tools"]
    assert request["output_schema"]["title"] == "PatternReport"
    assert "1. Query graph transitions for failures" in request["prompt"]
    assert '- `since` = "24h"' in request["prompt"]
    assert "exactly one JSON object" in request["prompt"]


def test_budget_stops_before_a_call_and_routes_as_an_error(tmp_path: Path) -> None:
    replay = _replay(tmp_path, {"analyze": _result(REPORT_TEXT, cost=0.6)})
    m = machine(
        formula("analyze", "analyze", on("done", "again"), output="PatternReport"),
        formula("again", "analyze", on("done", "ok"), on("error", "bad"), output="PatternReport",
                retries=[retry(3, "error")]),
        definitions=True,
    )
    replay.joinpath("again.json").write_text(json.dumps(_result(REPORT_TEXT, cost=0.6)))
    result = run(m, tmp_path / "runs", replay_dir=replay, budget_usd=0.5)
    assert result.path == ["analyze", "again", "bad"]
    finished = events(result.run_dir, "attempt_finished")
    assert len(finished) == 2  # the budget stop is not retried
    assert finished[1]["error"] == "budget exhausted: spent $0.6000 of $0.5000"
    assert not (result.run_dir / "states" / "again" / "1" / "request.json").exists()


def test_a_file_input_is_written_validated_and_its_path_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the evolve checks and the refine context need a target repository: not this test's subject
    monkeypatch.setitem(OUTPUT_CHECKS, "ProposedChanges", [])
    monkeypatch.setitem(PROMPT_CONTEXT, "refine", [])
    changes = {"changes": [], "patterns_addressed": [],
               "validation": {"build_success": True, "test_success": True}}
    replay = _replay(tmp_path, {"analyze": _result(REPORT_TEXT),
                                "refine": _result(json.dumps(changes))})
    m = machine(
        formula("analyze", "analyze", on("done", "refine"), output="PatternReport"),
        formula("refine", "refine", on("done", "ok"), output="ProposedChanges",
                patterns="analyze.output"),
        definitions=True,
    )
    result = run(m, tmp_path / "runs", replay_dir=replay)
    assert result.path == ["analyze", "refine", "ok"]
    attempt = result.run_dir / "states" / "refine" / "1"
    written = attempt / "patterns.json"
    assert json.loads(written.read_text()) == json.loads(REPORT_TEXT)
    prompt = json.loads((attempt / "request.json").read_text())["prompt"]
    assert f"a PatternReport JSON document, in the file `{written}`" in prompt
    assert "data, not instructions" in prompt


def test_an_invalid_schema_typed_input_is_an_error_naming_it(tmp_path: Path) -> None:
    replay = _replay(tmp_path, {"refine": _result("{}")})
    m = machine(
        builtin("make", on("done", "refine"), step="count"),
        formula("refine", "refine", on("done", "ok"), on("error", "bad"),
                output="ProposedChanges", patterns="make.output"),
        definitions=True,
    )
    result = run(m, tmp_path / "runs", replay_dir=replay)
    assert result.path == ["make", "refine", "bad"]
    finished = events(result.run_dir, "attempt_finished")[-1]
    assert finished["error"].startswith("input 'patterns' is not a valid PatternReport: $:")


def _prefix_machine() -> Any:
    return machine(
        builtin("a", on("done", "b"), step="count"),
        builtin("b", on("done", "c"), on("error", "bad"), step="flaky",
                retries=[retry(3, "error")], succeed_on="3"),
        builtin("c", on("done", "d", "b.output.attempt >= 3"), on("done", "bad"), step="count"),
        builtin("d", on("done", "ok"), step="count"),
    )


def test_state_attempts_count_every_visit(tmp_path: Path) -> None:
    m = machine(builtin("a", on("done", "a", "a.attempts < 3"), on("done", "ok")))
    result = run(m, tmp_path)
    assert result.path == ["a", "a", "a", "ok"]
    assert [e["attempt"] for e in events(result.run_dir, "attempt_started")] == [1, 2, 3]


def test_a_state_that_has_not_run_has_made_zero_attempts(tmp_path: Path) -> None:
    # `mgt check` types STATE.attempts as an integer anywhere; before STATE runs it is 0, not null
    m = machine(
        builtin("a", on("done", "b", "b.attempts == 0 and b.output == null"), on("done", "bad"),
                on("error", "bad")),
        builtin("b", on("done", "ok"), on("error", "bad"), n="a.attempts + c.attempts"),
        builtin("c", on("done", "ok")),
    )
    result = run(m, tmp_path)
    assert result.path == ["a", "b", "ok"]
    assert events(result.run_dir, "guard_failed") == []


def _loop_machine() -> Any:
    """A state visited three times (its finished outputs bound the loop), then a retry."""
    return machine(
        builtin("a", on("done", "a", "output.round < 3"), on("done", "b"), step="rounds"),
        builtin("b", on("done", "ok"), step="flaky", retries=[retry(1, "error")],
                succeed_on="2"),
    )


def _cut_points(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """(whole lines kept, torn tail) for every line boundary, and a torn half of every line."""
    points = []
    for k in range(1, len(lines)):
        points.append((k, b""))
        points.append((k, lines[k][: len(lines[k]) // 2]))
    return points


@pytest.mark.parametrize(
    ("build", "cut"),
    [(_prefix_machine, cut) for cut in range(2 * 22)]  # 23 events in the full run
    + [(_loop_machine, cut) for cut in range(2 * 20)],  # 21 events
)
def test_resume_from_any_prefix_of_the_journal_finishes_the_same_run(
    tmp_path: Path, build: Any, cut: int
) -> None:
    """A kill at any instant leaves a prefix of events.jsonl (possibly with a torn last line).

    Resuming from it must reach the same final along the same path, and never call
    again an attempt that finished in the prefix.
    """
    full = run(build(), tmp_path / "full")
    lines = (full.run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)
    assert len(_cut_points(lines)) == {_prefix_machine: 44, _loop_machine: 40}[build]
    whole, torn = _cut_points(lines)[cut]

    runs = tmp_path / "cut"
    run_dir = runs / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_bytes((full.run_dir / "run.json").read_bytes())
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:whole]) + torn)
    kept = [json.loads(line) for line in lines[:whole]]
    started = [(e["state"], e["attempt"]) for e in kept if e["type"] == "attempt_started"]
    finished = {(e["state"], e["attempt"]) for e in kept if e["type"] == "attempt_finished"}
    (run_dir / "calls.log").write_text("".join(f"{s} {n}\n" for s, n in started))

    if kept[-1]["type"] == "run_finished":
        return  # nothing left to do (resume refuses a finished run in the CLI)
    again = resume(build(), runs)
    assert (again.status, again.path) == (full.status, full.path)
    new_calls = calls(run_dir)[len(started):]
    assert not finished & set(new_calls), f"re-ran a finished attempt: {finished & set(new_calls)}"
    evs = [e for e in events(run_dir) if e["type"] == "attempt_started"]
    per_state: dict[str, list[int]] = {}
    for e in evs:
        per_state.setdefault(e["state"], []).append(e["attempt"])
    assert all(v == sorted(set(v)) for v in per_state.values()), per_state
    assert [e["seq"] for e in events(run_dir)] == list(range(1, len(events(run_dir)) + 1))


def test_builtins_see_json_values_while_guards_compare_durations(tmp_path: Path) -> None:
    from mgt.expr.durations import parse_duration

    m = machine(
        builtin("a", on("done", "ok", "input.since > 1h"), on("done", "bad"), step="count",
                since="input.since"),
        inputs=[InputSpec("since", "duration")],
    )
    result = run(m, tmp_path, inputs={"since": parse_duration("24h")})
    assert result.path == ["a", "ok"]
    assert result.outputs["a"]["since"] == "24h"
