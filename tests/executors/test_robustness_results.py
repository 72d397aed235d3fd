"""Recorded results a user (or a broken model) hands mgt: huge, negative, deeply nested numbers
and documents, replayed through the real `python -m mgt exec`; never a traceback or a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mgt.executors.claude import parse_claude_result

SCHEMA = {
    "type": "object",
    "required": ["verdict"],
    "properties": {"verdict": {"type": "string"}},
}

MACHINE = """\
machine judge "one model state"

import polecats from "polecats"
import formulas from "formulas"
import schemas from "schemas"

state judge:
    run formula judge
    with text = "hello"
    on done -> ok
    on error -> failed
    on timeout -> failed
    on schema_invalid -> failed
    on guardrail -> failed

final ok: succeed
final failed: fail
"""

POLECAT = """\
[polecat]
name = "judge"
description = "judges"
role = "observer"

[model]
provider = "anthropic"
name = "claude-haiku-4-20250514"

[prompt.system]
content = "Judge the text."

[output]
format = "json"
schema = "Verdict"
"""

FORMULA = """\
[formula]
name = "judge"
description = "Judge a text"

[input]
required = ["text"]

[input.text]
type = "string"

[output]
type = "Verdict"

[execution]
polecat = "judge"
timeout_seconds = 60
retry_count = 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for sub in ("polecats", "formulas", "schemas", "answers"):
        (tmp_path / sub).mkdir()
    (tmp_path / "judge.mgt").write_text(MACHINE)
    (tmp_path / "polecats" / "judge.toml").write_text(POLECAT)
    (tmp_path / "formulas" / "judge.formula.toml").write_text(FORMULA)
    (tmp_path / "schemas" / "Verdict.json").write_text(json.dumps(SCHEMA))
    return tmp_path


def run(
    project: Path, answer: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    (project / "answers" / "judge.json").write_text(answer)
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", "judge.mgt", "--executor", "replay:answers",
         "--runs-dir", "runs", "--json", *extra],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc, summary


def result(**fields: object) -> dict[str, object]:
    return {"type": "result", "is_error": False, "result": '{"verdict": "fine"}', **fields}


def test_a_cost_or_token_count_too_big_for_a_float_counts_as_zero(project: Path) -> None:
    huge = "1" + "0" * 400  # a JSON integer: Python reads it exactly, float() overflows
    answer = json.dumps(result()).replace(
        '"is_error"', f'"total_cost_usd": {huge}, "usage": {{"input_tokens": {huge}}}, "is_error"'
    )
    proc, summary = run(project, answer)
    assert proc.returncode == 0, proc.stderr
    assert summary["cost_usd"] == 0 and summary["tokens"] == {"input": 0, "output": 0}


def test_a_negative_cost_cannot_refill_the_budget(project: Path) -> None:
    proc, summary = run(project, json.dumps(result(total_cost_usd=-100.0)), "--budget-usd", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert summary["cost_usd"] == 0


def test_negative_token_counts_count_as_zero() -> None:
    parsed = parse_claude_result(
        json.dumps(result(usage={"input_tokens": -5, "output_tokens": -1,
                                 "cache_read_input_tokens": -7})),
        exit_code=0,
    )
    assert (parsed.input_tokens, parsed.output_tokens) == (0, 0)


def test_a_result_file_nested_too_deeply_is_an_error_outcome(project: Path) -> None:
    deep = '{"type": "result", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    proc, summary = run(project, deep)
    assert proc.returncode == 1, proc.stderr
    assert summary["final"] == "failed"
    show = subprocess.run(
        [sys.executable, "-m", "mgt", "show", summary["run_id"], "--runs-dir", "runs", "--json"],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )
    [attempt] = json.loads(show.stdout)["states"][0]["attempts"]
    assert attempt["outcome"] == "error"
    assert "nested too deeply" in attempt["error"]


ZELLIJ_CC = """\
#!{python}
import json, sys
args = sys.argv[1:]
out = args[args.index("--output-file") + 1]
with open(out, "w") as fh:
    json.dump({{"type": "result", "is_error": False, "result": '{{"verdict": "fine"}}'}}, fh)
print({report!r})
"""


@pytest.mark.parametrize(
    "report",
    [
        # a report nested too deeply to parse: as if none was printed (the result file is read)
        "[" * 100_000 + "]" * 100_000,
        # fields of the wrong type are ignored, not used as paths or exit codes
        json.dumps({"exit_code": "zero", "output_file": ["a"], "stderr_file": 5}),
    ],
    ids=["nested-too-deeply", "wrong-types"],
)
def test_a_zellij_cc_that_prints_a_garbled_report(project: Path, report: str) -> None:
    program = project / "zellij-cc"
    program.write_text(ZELLIJ_CC.format(python=sys.executable, report=report))
    program.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "exec", "judge.mgt", "--executor", "zellij-cc",
         "--session", "s", "--runs-dir", "runs", "--json"],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "MGT_ZELLIJ_CC": str(program)},
    )
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["final"] == "ok"


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(result(result='{"verdict": NaN}')),
        json.dumps(result(result="[" * 100_000 + "]" * 100_000)),
        json.dumps(result(result="{" * 100_000)),
        json.dumps(result(structured_output={"verdict": "fine", "score": float("inf")})),
    ],
    ids=["nan", "nested-too-deeply", "100k-braces", "structured-infinity"],
)
def test_a_model_answer_that_is_not_json_is_schema_invalid(project: Path, answer: str) -> None:
    proc, summary = run(project, answer)
    assert "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1 and summary["final"] == "failed", proc.stderr
    assert "NaN" not in proc.stdout and "Infinity" not in proc.stdout
    events = (project / "runs" / summary["run_id"] / "events.jsonl").read_text()
    assert '"outcome":"schema_invalid"' in events


NEXT = """\
machine judge "one model state, then a command given its answer"

import polecats from "polecats"
import formulas from "formulas"
import schemas from "schemas"

input note: str = "-"

state judge:
    run formula judge
    with text = input.note
    on done -> echo
    on error -> failed
    on timeout -> failed
    on schema_invalid -> failed
    on guardrail -> failed

state echo:
    run formula judge
    with text = judge.output.verdict
    on done -> ok
    on error -> failed
    on timeout -> failed
    on schema_invalid -> failed
    on guardrail -> failed

final ok: succeed
final failed: fail
"""


def test_a_lone_surrogate_in_an_answer_or_input_is_kept_as_its_escape(project: Path) -> None:
    # "\ud800" is valid JSON text but no UTF-8 can hold it: writing the journal, the next
    # prompt and the --json summary crashed ('internal error', then the same on resume)
    (project / "judge.mgt").write_text(NEXT)
    answer = json.dumps(result(result='{"verdict": "fine \\ud800 done"}'))
    (project / "answers" / "echo.json").write_text(json.dumps(result()))
    proc, summary = run(project, answer, "--input", "note=caf\udcc3")
    assert proc.returncode == 0, proc.stderr
    assert summary["outputs"]["judge"] == {"verdict": "fine \ud800 done"}
    run_dir = project / "runs" / summary["run_id"]
    prompt = (run_dir / "states" / "echo" / "1" / "prompt.md").read_text()
    assert "fine \\ud800 done" in prompt
    for command in (["show", summary["run_id"]], ["show", summary["run_id"], "--json"],
                    ["runs", "--json"]):
        shown = subprocess.run(
            [sys.executable, "-m", "mgt", *command, "--runs-dir", "runs"],
            cwd=project, capture_output=True, timeout=60, check=False,
        )
        assert shown.returncode == 0 and b"Traceback" not in shown.stderr, shown.stderr
    data = json.loads(subprocess.run(
        [sys.executable, "-m", "mgt", "show", summary["run_id"], "--runs-dir", "runs", "--json"],
        cwd=project, capture_output=True, timeout=60, check=False).stdout)
    assert data["inputs"]["note"] == "caf\udcc3"
