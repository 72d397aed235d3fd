"""A directory of recorded answers + ExecRequest → ExecResult, with no model and no network.

For a state S at attempt N the executor reads, in this order:

    DIR/S.N.json      the answer recorded for that attempt (e.g. `refine.2.json`)
    DIR/S.json        the answer for every attempt of S

A file holds Claude Code's `--output-format json` result (what the `claude`
and `zellij-cc` executors save as `result.json` in each attempt directory), and
it goes through the same parser: `structured_output`, `result`, cost, tokens,
`is_error`. A JSON document that is not such a result (no `"type": "result"`)
is taken as the answer itself, so a demo can record a bare PatternReport. The
file is copied into the attempt directory as the raw result.

`MGT_REPLAY_DELAY=SECONDS` makes every answer take that long, as a model call
would (for trying the model call cap, and for benchmarks of many runs).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

from mgt.errors import UsageError
from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.claude import find_result_object, parse_claude_result
from mgt.executors.common import RESULT_FILE, prepare_attempt_dir

__all__ = ["ReplayExecutor", "replay_candidates"]


def _delay() -> float:
    text = os.environ.get("MGT_REPLAY_DELAY", "").strip()
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and 0 <= seconds <= 86400):
        raise UsageError(f"MGT_REPLAY_DELAY: expected seconds from 0 to 86400, got {text!r}")
    return seconds


def replay_candidates(directory: Path, state: str, attempt: int) -> tuple[Path, Path]:
    return directory / f"{state}.{attempt}.json", directory / f"{state}.json"


class ReplayExecutor:
    """Answers each request from the recorded file for its state (and attempt)."""

    name = "replay"

    def __init__(self, *, dir: Path | str) -> None:
        directory = Path(dir)
        if not directory.is_dir():
            raise UsageError(f"replay directory {directory} does not exist or is not a directory")
        self.dir = directory
        self.delay = _delay()

    def run(self, request: ExecRequest) -> ExecResult:
        if self.delay:
            time.sleep(self.delay)
        specific, general = replay_candidates(self.dir, request.state, request.attempt)
        path = specific if specific.is_file() else general
        if not path.is_file():
            return ExecResult(
                error=f"replay: no recorded answer for state '{request.state}' attempt "
                f"{request.attempt}: looked for {specific} and {general}"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return ExecResult(error=f"replay: cannot read {path}: {e}")
        raw = prepare_attempt_dir(request.attempt_dir) / RESULT_FILE
        shutil.copyfile(path, raw)
        if find_result_object(text.strip()) is not None or not text.strip():
            result = parse_claude_result(
                text, exit_code=0, raw_result_path=raw, source=f"replay {path.name}"
            )
        else:
            try:
                answer = json.loads(text)
            except json.JSONDecodeError as e:
                return ExecResult(
                    raw_result_path=raw,
                    error=f"replay {path}: not JSON ({e.msg} at line {e.lineno}): {text[:200]!r}",
                )
            except RecursionError:
                return ExecResult(
                    raw_result_path=raw, error=f"replay {path}: JSON nested too deeply"
                )
            result = ExecResult(text=json.dumps(answer), output=answer, raw_result_path=raw)
        result.details["replayed_from"] = str(path)
        return result
