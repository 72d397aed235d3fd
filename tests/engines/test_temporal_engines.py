"""The same machines on both engines (file journal, Temporal): the same events, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import Cluster
from tests.runtime.procs import journal, mgt

ROOT = Path(__file__).resolve().parents[2]

RETRY = """\
machine retry "fails twice, then passes; a backoff between"

state flaky:
    run command "echo x >> tries.log; test $(wc -l < tries.log) -ge 3"
    retry 2 on error backoff 1s
    on done -> ok

final ok: succeed
"""

GUARDS = """\
machine guards "routes on the output and on attempts"

state count:
    run command "echo '{\\"n\\": 3}'"
    output schema_of_nothing
    on done -> decide

state decide:
    run builtin noop
    on done when count.output.exit_code == 0 and count.attempts == 1 -> big
    on done -> small

state big:
    run command "exit 4"
    on done -> ok

final ok: succeed
final small: fail "small"
"""

TIMEOUT = """\
machine slowpoke "a step past its timeout"

state wait:
    run command "sleep 5"
    timeout 1s
    on done -> ok
    on timeout -> late

final ok: succeed
final late: fail "too slow"
"""


def _model_machine(work: Path) -> Path:
    path = work / "an.mgt"
    path.write_text(f"""\
machine an

import polecats from "{ROOT / 'polecats'}"
import formulas from "{ROOT / 'formulas'}"
import schemas from "{ROOT / 'schemas'}"

state analyze:
    run formula analyze
    with since = 24h
    retry 1 on schema_invalid with feedback
    on done -> ok

final ok: succeed
""")
    return path


def _answer(text: str, cost: float) -> str:
    return json.dumps({"type": "result", "subtype": "success", "is_error": False,
                       "result": text, "total_cost_usd": cost,
                       "usage": {"input_tokens": 900, "output_tokens": 20}})


def _trace(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What both engines must agree on: the events without stamps and worker bookkeeping."""
    keep: list[tuple[Any, ...]] = []
    for e in events:
        kind = e["type"]
        if kind == "attempt_finished":
            keep.append((kind, e["state"], e["attempt"], e["outcome"], e.get("cost_usd")))
        elif kind == "transition":
            keep.append((kind, e["from"], e["event"], e["to"], e.get("guard")))
        elif kind in {"state_entered", "attempt_started", "backoff", "guard_failed"}:
            keep.append((kind, e.get("state"), e.get("attempt"), e.get("seconds")))
        elif kind == "run_finished":
            keep.append((kind, e["status"], e["final"], e.get("message")))
    return keep


def _exec(engine: str, work: Path, machine: Path, *extra: str | Path
          ) -> tuple[int, dict[str, Any], list[tuple[Any, ...]]]:
    proc = mgt("exec", machine, "--engine", engine, "--runs-dir", work / "runs", "--json",
               *extra, cwd=work)
    assert proc.stdout, proc.stderr
    summary = json.loads(proc.stdout)
    return proc.returncode, summary, _trace(journal(work / "runs" / summary["run_id"]))


@pytest.fixture(params=["file", "temporal"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def work(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if engine == "temporal":
        cluster: Cluster = request.getfixturevalue("cluster")
        cluster.worker("a")
        return cluster.work
    (tmp_path / "runs").mkdir()
    return tmp_path


def test_retries_with_backoff(engine: str, work: Path) -> None:
    (work / "retry.mgt").write_text(RETRY)
    code, summary, trace = _exec(engine, work, work / "retry.mgt")
    assert code == 0, summary
    assert trace == [
        ("state_entered", "flaky", None, None),
        ("attempt_started", "flaky", 1, None), ("attempt_finished", "flaky", 1, "error", 0.0),
        ("backoff", "flaky", None, 1.0),
        ("attempt_started", "flaky", 2, None), ("attempt_finished", "flaky", 2, "error", 0.0),
        ("backoff", "flaky", None, 1.0),
        ("attempt_started", "flaky", 3, None), ("attempt_finished", "flaky", 3, "done", 0.0),
        ("transition", "flaky", "done", "ok", None),
        ("state_entered", "ok", None, None),
        ("run_finished", "succeeded", "ok", None),
    ]


def test_guards_read_outputs_and_attempts_and_an_unhandled_error_fails(
        engine: str, work: Path) -> None:
    (work / "guards.mgt").write_text(GUARDS.replace("    output schema_of_nothing\n", ""))
    code, summary, trace = _exec(engine, work, work / "guards.mgt")
    assert code == 1, summary
    assert ("transition", "decide", "done", "big",
            "count.output.exit_code == 0 and count.attempts == 1") in trace
    assert trace[-3:] == [
        ("transition", "big", "error", "_fail", None),
        ("state_entered", "_fail", None, None),
        ("run_finished", "failed", "_fail", "state 'big' ended with 'error' and has no "
         "transition for it"),
    ]


def test_a_step_past_its_timeout(engine: str, work: Path) -> None:
    (work / "slow.mgt").write_text(TIMEOUT)
    code, summary, trace = _exec(engine, work, work / "slow.mgt")
    assert code == 1, summary
    assert ("attempt_finished", "wait", 1, "timeout", 0.0) in trace
    assert trace[-1] == ("run_finished", "failed", "late", "too slow")


def test_model_retry_with_feedback_costs_and_budget(engine: str, work: Path) -> None:
    replay = work / "recorded"
    replay.mkdir()
    empty = {"patterns": [], "summary": {"total_patterns": 0, "critical": 0, "warning": 0,
                                          "info": 0}}
    (replay / "analyze.1.json").write_text(_answer("nothing to report", 0.002))
    (replay / "analyze.2.json").write_text(_answer(json.dumps(empty), 0.003))
    machine = _model_machine(work)
    code, summary, trace = _exec(engine, work, machine, "--executor", "replay",
                                 "--replay-dir", replay)
    assert code == 0, summary
    assert summary["outputs"]["analyze"] == empty
    assert summary["cost_usd"] == pytest.approx(0.005)
    assert [t for t in trace if t[0] == "attempt_finished"] == [
        ("attempt_finished", "analyze", 1, "schema_invalid", 0.002),
        ("attempt_finished", "analyze", 2, "done", 0.003)]
    # over budget after the first answer: the second attempt is refused, the run fails
    code, summary, trace = _exec(engine, work, machine, "--executor", "replay",
                                 "--replay-dir", replay, "--budget-usd", "0.001")
    assert code == 1, summary
    assert [t for t in trace if t[0] == "attempt_finished"] == [
        ("attempt_finished", "analyze", 1, "schema_invalid", 0.002),
        ("attempt_finished", "analyze", 2, "error", 0.0)]


TYPED = """\
machine typed "guards read typed inputs"

input since: duration = 2h

state look:
    run command "echo $since"
    with since = input.since
    on done when input.since > 1h -> ok
    on done -> short

final ok: succeed
final short: fail "read as text"
"""


def test_guards_read_typed_inputs(engine: str, work: Path) -> None:
    (work / "typed.mgt").write_text(TYPED)
    code, summary, trace = _exec(engine, work, work / "typed.mgt")
    assert code == 0, summary
    assert ("transition", "look", "done", "ok", "input.since > 1h") in trace
    assert summary["outputs"]["look"]["stdout"] == "2h\n"


FAN = """\
machine fan "maps a command over a list, two at a time"

input items: json = ["a", "b", "c"]

state each:
    for n in input.items max 2
    run command "echo item-$n"
    with n = n
    on done when count(output, it.outcome == "done") == 3 -> ok
    on done -> short

final ok: succeed
final short: fail "an item is missing"
"""


def test_a_fan_out(engine: str, work: Path) -> None:
    (work / "fan.mgt").write_text(FAN)
    code, summary, _ = _exec(engine, work, work / "fan.mgt")
    assert (code, summary["final"]) == (0, "ok"), summary
    assert [i["output"]["stdout"] for i in summary["outputs"]["each"]] == \
        ["item-a\n", "item-b\n", "item-c\n"]
