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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mgt.executors.base import ExecResult
from mgt.runtime.strict_json import NotJSONConstant, all_finite, loads, raw_decode

__all__ = [
    "MAX_ANSWER_DEPTH",
    "STRUCTURED_RETRIES_EXHAUSTED",
    "Outcome",
    "classify",
    "extract_json",
    "feedback_text",
    "fenced_blocks",
    "format_json_path",
    "json_depth",
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

#: Deepest nesting of arrays and objects accepted in an answer. Output schemas are a few
#: levels deep; deeper answers are refused before anything recurses over them.
MAX_ANSWER_DEPTH = 100

#: How many characters the bare-object search may hand to the JSON decoder, as a multiple
#: of the answer's length: objects nested in objects that fail to parse are decoded again
#: from each `{`, and this keeps a crafted answer from making that quadratic.
_DECODE_BUDGET = 16

_JSON_LABELS = frozenset({"", "json", "jsonc", "json5"})
_LABEL = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """Each ```` ```label ```` … ```` ``` ```` block of `text` as (label, body), in order.

    A fence opens at ```` ``` ````, takes the rest of its line as the label line and
    closes at the next ```` ``` ```` (a newline and indentation before it are not part
    of the body). One pass with `str.find`, linear in the text whatever it holds: a
    regex with a lazy body is quadratic on an answer of 300 KB of unclosed fences.
    """
    at = 0
    while True:
        opening = text.find("```", at)
        if opening < 0:
            return
        newline = text.find("\n", opening + 3)
        if newline < 0:
            return  # no later fence has a body either
        closing = text.find("```", newline + 1)
        if closing < 0:
            return
        body = text[newline + 1 : closing]
        trimmed = body.rstrip(" \t")
        if trimmed.endswith("\n"):
            body = trimmed[:-1]
        label = _LABEL.match(text, opening + 3)
        yield (label.group(1) if label else ""), body
        at = closing + 3


def json_depth(value: Any, limit: int = MAX_ANSWER_DEPTH) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0), counted up to `limit` + 1.

    Iterative, so an answer nested thousands deep costs no recursion, and it stops at the
    first branch deeper than `limit`.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _too_deep_reason() -> str:
    return (
        f"the answer's JSON is nested more than {MAX_ANSWER_DEPTH} levels deep; "
        "answer with a flatter object that matches the output schema"
    )


def extract_json(text: str | None) -> tuple[Any, str | None]:
    """The JSON value an answer carries, or (None, reason).

    The whole text if it is JSON; else the last fenced ```json block (or unlabelled
    fence) that parses; else the largest balanced `{...}` in the text that parses
    (the last of equals), so prose around a bare object is ignored. Only strict JSON
    counts: NaN and Infinity (which Python's json module accepts) do not parse, nor
    does nesting deeper than MAX_ANSWER_DEPTH. Every step is linear in the text however
    its fences and braces are arranged (the bare-object search has a decoding budget).
    """
    if text is None or not text.strip():
        return None, "the answer was empty; expected one JSON object"
    stripped = text.strip()
    constant: list[str] = []  # NaN/Infinity met while parsing: the likely reason nothing parsed
    too_deep = False
    try:
        whole = loads(stripped)
    except ValueError as err:
        _note_constant(err, constant)
        too_deep = _is_depth_error(err)
    else:
        if json_depth(whole) <= MAX_ANSWER_DEPTH:
            return whole, None
        too_deep = True
    fenced: list[Any] = []
    for label, body in fenced_blocks(text):
        if label.lower() not in _JSON_LABELS:
            continue
        try:
            value = loads(body)
        except ValueError as err:
            _note_constant(err, constant)
            too_deep = too_deep or _is_depth_error(err)
            continue
        if json_depth(value) > MAX_ANSWER_DEPTH:
            too_deep = True
            continue
        fenced.append(value)
    objects = [v for v in fenced if isinstance(v, dict)]
    if objects:
        return objects[-1], None
    if fenced:
        return fenced[-1], None
    best: tuple[int, Any] | None = None
    skip_until = -1
    ends = _BraceEnds(text)
    budget = _DECODE_BUDGET * len(text)
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        if start < skip_until:
            continue  # inside an object that parsed: anything here is smaller
        end = ends.end(start)
        if end is None:
            continue
        if ends.depth(start) > MAX_ANSWER_DEPTH:
            # Refused whole: an object inside it is a part of it, not a separate answer.
            too_deep = True
            skip_until = end
            continue
        if budget <= 0:
            break
        try:
            value, stop = raw_decode(text, start)
        except ValueError as err:
            budget -= getattr(err, "pos", end) - start
            _note_constant(err, constant)
            continue  # try the objects nested inside it
        except RecursionError:  # not expected within MAX_ANSWER_DEPTH, but never a crash
            budget -= end - start
            too_deep = True
            skip_until = end
            continue
        budget -= stop - start
        if stop != end:
            continue
        skip_until = end
        if best is None or end - start >= best[0]:
            best = (end - start, value)
    if best is not None:
        return best[1], None
    if too_deep:
        return None, _too_deep_reason()
    if constant:
        return None, (
            f"the answer's JSON contains {constant[0]}, which is not a JSON number "
            "(use null or a number)"
        )
    if "{" in text:
        return None, "the answer contains no valid JSON object (the braces found do not parse)"
    return None, "the answer contains no JSON object"


def _is_depth_error(err: ValueError) -> bool:
    return str(err) == "nested too deeply"


def _note_constant(err: ValueError, seen: list[str]) -> None:
    if isinstance(err, NotJSONConstant) and not seen:
        seen.append(err.name)


class _BraceEnds:
    """Where the balanced `{...}` starting at each `{` ends (exclusive), or None, and how
    deeply arrays and objects nest inside it.

    A scan from one `{` (taken to be outside a string) settles every `{` it passes
    outside a string: their ends are where the scan's stack pops them. A `{` is only
    scanned afresh when no earlier scan passed it outside a string, so a text of
    100 000 `{` costs one scan, not 100 000.
    """

    UNKNOWN, UNMATCHED = -1, 0

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends = array("i", [self.UNKNOWN]) * len(text)
        self.depths = array("i", [0]) * len(text)

    def end(self, start: int) -> int | None:
        if self.ends[start] == self.UNKNOWN:
            self._scan(start)
        found = self.ends[start]
        return None if found == self.UNMATCHED else found

    def depth(self, start: int) -> int:
        """How deeply the balanced object at `start` nests (1 for `{}`); call end() first."""
        return self.depths[start]

    def _scan(self, start: int) -> None:
        text, ends, depths = self.text, self.ends, self.depths
        stack = array("i")  # where each open `{` is
        levels = array("i")  # the nesting level of each open `{`
        peaks = array("i")  # the deepest level reached inside each open `{`
        level = 0
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
                level += 1
                stack.append(i)
                levels.append(level)
                peaks.append(level)
            elif ch == "[":
                level += 1
                if level > peaks[-1]:
                    peaks[-1] = level
            elif ch == "]":
                if level > levels[-1]:  # a stray `]` does not leave the open object
                    level -= 1
            elif ch == "}":
                opened, at, peak = stack.pop(), levels.pop(), peaks.pop()
                ends[opened] = i + 1
                depths[opened] = peak - at + 1
                if not stack:
                    return
                level = at - 1
                if peak > peaks[-1]:
                    peaks[-1] = peak
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
        return Outcome(
            "timeout", output=result.output, error=_one_line(result.error or "the step timed out")
        )
    if result.guardrail:
        return Outcome(
            "guardrail",
            output=result.output,
            problems=list(result.guardrail),
            error=result.guardrail[0],
        )
    if result.details.get("subtype") == STRUCTURED_RETRIES_EXHAUSTED:
        # Claude Code checked --json-schema itself and gave up: a schema failure, not a crash.
        problems = structured_output_problems(result)
        return Outcome("schema_invalid", problems=problems, error=problems[0])
    if result.error:
        return Outcome("error", output=result.output, error=_one_line(result.error))

    if result.output is not None or not parse_text:
        output, reason = result.output, None
        if parse_text and json_depth(output) > MAX_ANSWER_DEPTH:  # checked before recursing
            output, reason = None, _too_deep_reason()
        elif parse_text and not all_finite(output):  # structured output read leniently upstream
            reason = "the answer contains NaN or Infinity, which are not JSON numbers"
    else:
        output, reason = extract_json(result.text)
    if reason is not None:
        # A state without a schema takes the answer's text instead of unparsable JSON, but
        # never a value too deep to journal: that one is refused like any hostile answer.
        if schema is None and default_output is not None and reason != _too_deep_reason():
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
