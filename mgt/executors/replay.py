"""A directory of recorded answers + ExecRequest → ExecResult, with no model and no network.

For a state S at attempt N the executor reads the first file there is of:

    DIR/S.KEY.N.json  the answer recorded for one item, at that attempt
    DIR/S.KEY.json    the answer recorded for one item (e.g. `refine.slow-llm-dmscene.json`)
    DIR/S.N.json      the answer recorded for that attempt (e.g. `refine.2.json`)
    DIR/S.json        the answer for every attempt of S

KEY names the item a request is about, read from its inputs (the evaluated
`with` bindings), so that the items of a fan-out, or the child runs of a
sub-machine, each get their own answer: an input that is text or a number is
a key itself, an object gives its `key`, `id` or `name`, and a PatternReport
of exactly one pattern gives that pattern's `id`. A key that is not a plain
file-name word (letters, digits, `_ - .`, at most 100, no `..`) is never used.

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
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgt.errors import UsageError
from mgt.executors.base import ExecRequest, ExecResult
from mgt.executors.claude import find_result_object, parse_claude_result
from mgt.executors.common import RESULT_FILE, prepare_attempt_dir

__all__ = ["ReplayExecutor", "replay_candidates", "replay_keys"]

# A key becomes part of a file name: a word, never a path or a traversal.
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _delay() -> float:
    text = os.environ.get("MGT_REPLAY_DELAY", "").strip()
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and 0 <= seconds <= 86400):
        raise UsageError(f"MGT_REPLAY_DELAY: expected seconds from 0 to 86400, got {text!r}")
    return seconds


def _key_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Mapping):
        patterns = value.get("patterns")
        if isinstance(patterns, list) and len(patterns) == 1 and isinstance(patterns[0], Mapping):
            return _key_of(patterns[0].get("id"))
        for field in ("key", "id", "name"):
            found = value.get(field)
            if isinstance(found, str | int) and not isinstance(found, bool):
                return str(found)
    return None


def replay_keys(inputs: Mapping[str, Any]) -> list[str]:
    """The item keys a request's inputs name, in binding order, each once."""
    keys: list[str] = []
    for value in inputs.values():
        key = _key_of(value)
        if key is not None and _KEY.fullmatch(key) and ".." not in key and key not in keys:
            keys.append(key)
    return keys


def replay_candidates(directory: Path, state: str, attempt: int,
                      keys: list[str] | tuple[str, ...] = ()) -> tuple[Path, ...]:
    """The files that may hold the answer, most specific first."""
    per_item = [p for key in keys for p in (directory / f"{state}.{key}.{attempt}.json",
                                            directory / f"{state}.{key}.json")]
    return (*per_item, directory / f"{state}.{attempt}.json", directory / f"{state}.json")


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
        candidates = replay_candidates(self.dir, request.state, request.attempt,
                                       replay_keys(request.inputs))
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return ExecResult(
                error=f"replay: no recorded answer for state '{request.state}' attempt "
                f"{request.attempt}: looked for {', '.join(str(p) for p in candidates[:-1])} and "
                f"{candidates[-1]}"
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
