"""An executor's `ExecResult` → an `Outcome` (done | schema_invalid | guardrail | timeout | error).

The steps, in order: the executor's own failure (timeout, error, a builtin's
guardrail) decides first; then the output is extracted (`structured_output`,
else the JSON object in the answer text, fenced or bare); then it is validated
against the state's JSON Schema; then the output checks registered for that
schema (`mgt.extensions.OUTPUT_CHECKS`) run. The first problem found names the
event; every problem found at that step is kept, each a sentence, so the retry
feedback can quote all of them.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mgt.executors.base import ExecResult
from mgt.runtime.strict_json import NotJSONConstant, all_finite, loads, raw_decode

__all__ = [
    "STRUCTURED_RETRIES_EXHAUSTED",
    "Outcome",
    "classify",
    "extract_json",
    "feedback_text",
    "format_json_path",
    "structured_output_problems",
]

OutputChecker = Callable[[Any], list[str]]


@dataclass
class Outcome:
    """What an attempt ended with, and why."""

    event: str  # one of mgt.compile.model.EVENTS
    output: Any = None
    problems: list[str] = field(default_factory=list)  # each a sentence, quoted in feedback
    error: str | None = None  # one line for the journal and the progress display
    retryable: bool = True  # False for a budget stop: retrying cannot help

    @property
    def summary(self) -> str:
        if self.event == "done":
            return "done"
        detail = self.error or (self.problems[0] if self.problems else "")
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.event}: {detail}{more}" if detail else self.event


# --------------------------------------------------------------------------- extraction

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|```)", re.DOTALL)


def extract_json(text: str | None) -> tuple[Any, str | None]:
    """The JSON value an answer carries, or (None, reason).

    The whole text if it is JSON; else the last fenced ```json block (or unlabelled
    fence) that parses; else the largest balanced `{...}` in the text that parses
    (the last of equals), so prose around a bare object is ignored. Only strict JSON
    counts: NaN and Infinity (which Python's json module accepts) do not parse, nor
    does nesting too deep to parse. The search is linear in the text however its braces
    are arranged.
    """
    if text is None or not text.strip():
        return None, "the answer was empty; expected one JSON object"
    stripped = text.strip()
    constant: list[str] = []  # NaN/Infinity met while parsing: the likely reason nothing parsed
    try:
        return loads(stripped), None
    except ValueError as err:
        _note_constant(err, constant)
    fenced: list[Any] = []
    for match in _FENCE.finditer(text):
        lang = match.group(1).lower()
        if lang not in {"", "json", "jsonc", "json5"}:
            continue
        try:
            fenced.append(loads(match.group(2)))
        except ValueError as err:
            _note_constant(err, constant)
            continue
    objects = [v for v in fenced if isinstance(v, dict)]
    if objects:
        return objects[-1], None
    if fenced:
        return fenced[-1], None
    best: tuple[int, Any] | None = None
    skip_until = -1
    ends = _BraceEnds(text)
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        if start < skip_until:
            continue  # inside an object that parsed: anything here is smaller
        end = ends.end(start)
        if end is None:
            continue
        try:
            value, stop = raw_decode(text, start)
        except ValueError as err:
            _note_constant(err, constant)
            continue  # try the objects nested inside it
        except RecursionError:
            continue
        if stop != end:
            continue
        skip_until = end
        if best is None or end - start >= best[0]:
            best = (end - start, value)
    if best is not None:
        return best[1], None
    if constant:
        return None, (
            f"the answer's JSON contains {constant[0]}, which is not a JSON number "
            "(use null or a number)"
        )
    if "{" in text:
        return None, "the answer contains no valid JSON object (the braces found do not parse)"
    return None, "the answer contains no JSON object"


def _note_constant(err: ValueError, seen: list[str]) -> None:
    if isinstance(err, NotJSONConstant) and not seen:
        seen.append(err.name)


class _BraceEnds:
    """Where the balanced `{...}` starting at each `{` ends (exclusive), or None.

    A scan from one `{` (taken to be outside a string) settles every `{` it passes
    outside a string: their ends are where the scan's stack pops them. A `{` is only
    scanned afresh when no earlier scan passed it outside a string, so a text of
    100 000 `{` costs one scan, not 100 000.
    """

    UNKNOWN, UNMATCHED = -1, 0

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends = array("i", [self.UNKNOWN]) * len(text)

    def end(self, start: int) -> int | None:
        if self.ends[start] == self.UNKNOWN:
            self._scan(start)
        found = self.ends[start]
        return None if found == self.UNMATCHED else found

    def _scan(self, start: int) -> None:
        text, ends = self.text, self.ends
        stack = array("i")
        in_string = escape = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                stack.append(i)
            elif ch == "}" and stack:
                ends[stack.pop()] = i + 1
                if not stack:
                    return
        for open_at in stack:
            ends[open_at] = self.UNMATCHED


# --------------------------------------------------------------------------- classification


def format_json_path(path: Any) -> str:
    """`("patterns", 0, "id")` → `$.patterns[0].id`; a string path is taken as written."""
    if isinstance(path, str):
        if path.startswith("$"):
            return path
        return "$" if path in {"", "/"} else "$." + path.strip("/").replace("/", ".")
    out = "$"
    for part in path or ():
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def classify(
    result: ExecResult,
    *,
    schema: str | None,
    validate: Callable[[str, Any], Sequence[Any]] | None,
    checks: OutputChecker | None = None,
    parse_text: bool = True,
    default_output: Callable[[ExecResult], Any] | None = None,
) -> Outcome:
    """Classify one attempt's result.

    `validate(schema, instance)` returns issues with `.path` and `.message`
    (mgt.defs.SchemaRegistry.validate). `checks(output)` returns guardrail
    problems. With `parse_text` False (commands, builtins) the executor's
    `output` is the output as is. `default_output` supplies the output when the
    state has no schema and the answer carries no JSON (e.g. `{"text": ...}`).
    """
    # A failed step keeps what output it has (a command's exit code and streams) for guards.
    if result.timed_out:
        return Outcome("timeout", output=result.output,
                       error=_one_line(result.error or "the step timed out"))
    if result.guardrail:
        return Outcome("guardrail", output=result.output, problems=list(result.guardrail),
                       error=result.guardrail[0])
    if result.details.get("subtype") == STRUCTURED_RETRIES_EXHAUSTED:
        # Claude Code checked --json-schema itself and gave up: a schema failure, not a crash.
        problems = structured_output_problems(result)
        return Outcome("schema_invalid", problems=problems, error=problems[0])
    if result.error:
        return Outcome("error", output=result.output, error=_one_line(result.error))

    if result.output is not None or not parse_text:
        output, reason = result.output, None
        if parse_text and not all_finite(output):  # structured output read leniently upstream
            reason = "the answer contains NaN or Infinity, which are not JSON numbers"
    else:
        output, reason = extract_json(result.text)
    if reason is not None:
        if schema is None and default_output is not None:
            output, reason = default_output(result), None
        else:
            return Outcome("schema_invalid", problems=[reason], error=reason)

    if schema is not None and validate is not None:
        issues = validate(schema, output)
        if issues:
            problems = [
                f"at {format_json_path(getattr(i, 'path', ''))}: {getattr(i, 'message', i)}"
                for i in issues
            ]
            return Outcome("schema_invalid", output=output, problems=problems, error=problems[0])

    if checks is not None:
        problems = checks(output)
        if problems:
            return Outcome("guardrail", output=output, problems=problems, error=problems[0])
    return Outcome("done", output=output)


#: Claude Code's result subtype when its own --json-schema retries ran out.
STRUCTURED_RETRIES_EXHAUSTED = "error_max_structured_output_retries"

_SCHEMA_MISMATCH = re.compile(r"does not match required schema:\s*(.*)$", re.DOTALL)


def structured_output_problems(result: ExecResult) -> list[str]:
    """The schema errors Claude Code reported (`/summary/total: must be integer`), as problems.

    They are in the result's `errors` list; the executor keeps the raw result file.
    """
    errors = result.details.get("errors")
    if not isinstance(errors, list) and result.raw_result_path is not None:
        try:
            raw = json.loads(result.raw_result_path.read_text(encoding="utf-8"))
            errors = raw.get("errors") if isinstance(raw, dict) else None
        except (OSError, ValueError):
            errors = None
    problems: list[str] = []
    for message in errors if isinstance(errors, list) else []:
        match = _SCHEMA_MISMATCH.search(str(message))
        if match is None:
            problems.append(_one_line(str(message)))
            continue
        for part in re.split(r",\s+(?=/|:)", match.group(1).strip()):
            pointer, sep, why = part.partition(": ")
            if sep and (pointer.startswith("/") or pointer == ""):
                steps = [int(p) if p.isdigit() else p for p in pointer.strip("/").split("/") if p]
                problems.append(f"at {format_json_path(steps)}: {why.strip()}")
            else:
                problems.append(part.strip())
    return problems or [
        "the answer did not match the output schema (Claude Code's structured output retries "
        "ran out)"
    ]


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------- feedback


def feedback_text(
    outcome: Outcome, attempt: int, *, timeout_seconds: float | None = None, schema: str | None
) -> str:
    """The retry feedback for the next attempt: what was wrong, quoted exactly, and what to do."""
    lines = [f"## Your previous answer (attempt {attempt}) was rejected: `{outcome.event}`", ""]
    if outcome.event == "schema_invalid":
        target = f"the {schema} schema" if schema else "the output schema"
        lines.append(f"It did not match {target}. Every problem, with its JSON path:")
        lines += [f"- {p}" for p in outcome.problems]
    elif outcome.event == "guardrail":
        lines.append("A guardrail rejected it. Every problem, exactly as reported:")
        lines += [f"- {p}" for p in outcome.problems]
    elif outcome.event == "timeout":
        limit = f" of {timeout_seconds:g}s" if timeout_seconds else ""
        lines.append(f"It did not finish within the time limit{limit}. Answer sooner and directly.")
    else:
        lines.append(f"It failed: {outcome.error or 'unknown error'}")
    lines += [
        "",
        "Answer again with exactly one JSON object that fixes every problem above"
        + (" and matches the output schema." if schema else "."),
    ]
    return "\n".join(lines) + "\n"
