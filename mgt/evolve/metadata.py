"""A sleeptime PR's patterns and changes ↔ the machine-readable block in its body and record.

Every sleeptime PR body carries one block, an HTML comment GitHub does not show:

    <!-- mgt:sleeptime {"schema": 1, "kind": "pr", "run_id": "...", "patterns": [...], ...} -->

`kind` is `pr` (a change filed by the loop), `revert` (a revert PR, with
`reverts`: the number of the PR it reverts) or `verdict` (an impact verdict,
posted as a comment on GitHub and kept in the record for the local forge).

A human can edit a PR body, so the block is hostile input: `parse_blocks`
never raises, keeps only the documented fields with the documented types
(strings cut to a bounded length, numbers finite and bounded, lists bounded),
and drops everything else. A block that is not valid JSON is ignored.

A pattern's fingerprint is a hash of its type and its identifying key (the
node, the from/to pair, the error template), never of counts, times or
samples, so the same problem found on another day has the same fingerprint.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "KINDS",
    "MARKER",
    "SCHEMA_VERSION",
    "VERDICTS",
    "embed_metadata",
    "fingerprint",
    "parse_blocks",
    "pattern_key",
    "pattern_metadata",
    "pr_metadata",
    "render_block",
    "report_figures",
    "sanitize",
    "strip_blocks",
]

SCHEMA_VERSION = 1
MARKER = "mgt:sleeptime"
KINDS = ("pr", "revert", "verdict")
VERDICTS = ("improved", "unchanged", "regressed", "pending", "unknown")

MAX_BLOCK_CHARS = 200_000  # a longer block is not ours (or was padded): ignored
MAX_TEXT = 500
MAX_LIST = 50
MAX_NUMBER = 1e15
_BLOCK = re.compile(r"<!--\s*mgt:sleeptime\s(.*?)-->", re.DOTALL)
_KEY_FIELDS = ("group_by", "node", "model", "from", "to", "template")


# ------------------------------------------------------------------------ fingerprints


def pattern_key(pattern_type: str, details: Mapping[str, Any]) -> dict[str, str]:
    """The fields of `details` that identify what a pattern is about (no counts, no times)."""
    key: dict[str, str] = {}
    for name in _KEY_FIELDS:
        value = details.get(name)
        if isinstance(value, str):
            key[name] = value[:2000]
    if pattern_type in ("slow_llm", "token_bloat") and "group_by" not in key:
        key["group_by"] = "node" if "node" in key else "model" if "model" in key else "none"
    return key


def fingerprint(pattern_type: str, key: Mapping[str, str]) -> str:
    """A stable hash of a pattern's type and identifying key: the analyzer's own fingerprint.

    The key fields of a PatternReport pattern are put back into the grouping key the
    analyzer's rule used (`mgt.analyze.fingerprint`), so a fingerprint recorded in a PR
    is the one `analyze_windows` keys its figures by.
    """
    from mgt.analyze.fingerprint import pattern_fingerprint

    if pattern_type in ("slow_llm", "token_bloat"):
        group_by = key.get("group_by", "node")
        grouping = f"{group_by}:{key.get(group_by, 'unknown')}"
    elif pattern_type == "failed_transition":
        grouping = f"{key.get('from', '')}\x00{key.get('to', '')}"
    elif pattern_type == "repeated_error":
        grouping = key.get("template", "")
    elif pattern_type == "dead_path":
        grouping = key.get("node", "")
    else:  # a type this version does not know: its whole key, canonically
        grouping = json.dumps({k: key[k] for k in sorted(key)}, ensure_ascii=False,
                              separators=(",", ":"))
    return pattern_fingerprint(pattern_type, grouping)


def _share(part: Any, whole: Any) -> float | None:
    if isinstance(part, int | float) and isinstance(whole, int | float) and whole > 0:
        return round(float(part) / float(whole), 4)
    return None


def report_figures(pattern_type: str, details: Mapping[str, Any]) -> dict[str, float]:
    """The figures a PatternReport gives for a pattern, in the names impact verdicts compare."""
    raw: dict[str, Any] = {}
    if pattern_type == "slow_llm":
        raw = {"calls": details.get("calls"), "slow_calls": details.get("slow_calls"),
               "slow_share": _share(details.get("slow_calls"), details.get("calls")),
               "mean_latency_ms": details.get("all_calls_mean_latency_ms")}
    elif pattern_type == "token_bloat":
        raw = {"calls": details.get("calls"), "bloated_calls": details.get("bloated_calls"),
               "bloat_share": _share(details.get("bloated_calls"), details.get("calls"))}
    elif pattern_type == "failed_transition":
        raw = {"count": details.get("count"), "transitions_from": details.get("transitions_from"),
               "rate": details.get("rate")}
    elif pattern_type == "repeated_error":
        raw = {"count": details.get("count")}
    elif pattern_type == "dead_path":
        raw = {"entries": details.get("entries")}
    return {k: float(v) for k, v in raw.items() if _number(v) is not None}


def pattern_metadata(pattern: Mapping[str, Any]) -> dict[str, Any]:
    """One PatternReport pattern → its metadata entry (id, type, key, fingerprint, figures)."""
    ptype = str(pattern.get("type", ""))
    details = pattern.get("details")
    details = details if isinstance(details, Mapping) else {}
    key = pattern_key(ptype, details)
    return {
        "id": str(pattern.get("id", "")),
        "type": ptype,
        "severity": str(pattern.get("severity", "")),
        "key": key,
        "fingerprint": fingerprint(ptype, key),
        "figures": report_figures(ptype, details),
    }


# ------------------------------------------------------------------------ rendering


def render_block(meta: Mapping[str, Any]) -> str:
    """`<!-- mgt:sleeptime {json} -->`; `--` in strings is escaped: the comment cannot end early."""
    text = json.dumps(sanitize(meta) or {}, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True)
    # "--" occurs only inside JSON strings, where "\u002d" reads back the same.
    text = text.replace("--", "-\\u002d").replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<!-- {MARKER} {text} -->"


def strip_blocks(text: str) -> str:
    """`text` without its metadata blocks (for showing a body to a model or a person)."""
    return _BLOCK.sub("", text).strip()


def pr_metadata(
    *, run_id: str, patterns: Sequence[Mapping[str, Any]], proposal: Mapping[str, Any] | None,
    files: Iterable[Any] = (), created_at: str | None = None,
) -> dict[str, Any]:
    """The metadata of a PR filed for `patterns` with the ProposedChanges `proposal`."""
    changes: list[dict[str, Any]] = []
    rationale = {}
    for change in (proposal or {}).get("changes", []) or []:
        if isinstance(change, Mapping) and isinstance(change.get("path"), str):
            rationale[change["path"]] = str(change.get("rationale", ""))
    for fd in files:
        path = str(getattr(fd, "path", ""))
        changes.append({"path": path, "added": int(getattr(fd, "added", 0)),
                        "removed": int(getattr(fd, "removed", 0)),
                        "rationale": rationale.get(path, "")})
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": "pr",
        "run_id": run_id,
        "patterns": [pattern_metadata(p) for p in patterns],
        "changes": changes,
        "expected_impact": (proposal or {}).get("expected_impact") or {},
    }
    if created_at:
        meta["created_at"] = created_at
    return meta


def embed_metadata(
    body: str, *, run_id: str, patterns: Sequence[Mapping[str, Any]],
    proposal: Mapping[str, Any] | None, files: Iterable[Any] = (), created_at: str | None = None,
) -> str:
    """`body` with the PR's metadata block appended (the hook open-pr calls)."""
    meta = pr_metadata(run_id=run_id, patterns=patterns, proposal=proposal, files=files,
                       created_at=created_at)
    return body.rstrip("\n") + "\n\n" + render_block(meta) + "\n"


# ------------------------------------------------------------------------ parsing


def parse_blocks(text: Any) -> list[dict[str, Any]]:
    """Every well-formed metadata block in `text`, sanitized; never raises."""
    if not isinstance(text, str):
        return []
    found: list[dict[str, Any]] = []
    for match in _BLOCK.finditer(text[:2_000_000]):
        raw = match.group(1).strip()
        if len(raw) > MAX_BLOCK_CHARS:
            continue
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            continue
        meta = sanitize(value)
        if meta is not None:
            found.append(meta)
        if len(found) >= MAX_LIST:
            break
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        return None
    return number


def _int(value: Any) -> int | None:
    number = _number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _figures(value: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        for k, v in list(value.items())[:MAX_LIST]:
            number = _number(v)
            if isinstance(k, str) and number is not None:
                out[k[:64]] = number
    return out


def _key(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {k: v[:2000] for k, v in value.items() if k in _KEY_FIELDS and isinstance(v, str)}


def _pattern(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    pid, ptype = _text(value.get("id"), 200), _text(value.get("type"), 64)
    if not pid or not ptype:
        return None
    key = _key(value.get("key"))
    out: dict[str, Any] = {"id": pid, "type": ptype, "key": key,
                           "fingerprint": fingerprint(ptype, key),
                           "figures": _figures(value.get("figures"))}
    # The fingerprint is recomputed from type and key: an edited one cannot cover another pattern.
    severity = _text(value.get("severity"), 16)
    if severity:
        out["severity"] = severity
    for name in ("before", "after"):
        if name in value:
            out[name] = _figures(value.get(name))
    for name in ("verdict", "metric", "reason", "baseline"):
        text = _text(value.get(name))
        if text is not None:
            out[name] = text
    for name in ("change", "expected_percent"):
        number = _number(value.get(name))
        if number is not None:
            out[name] = number
    return out


def _expected(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, Any] = {}
    metrics = []
    raw = value.get("metrics")
    for item in (raw if isinstance(raw, list) else [])[:20]:
        if not isinstance(item, Mapping):
            continue
        metric: dict[str, Any] = {}
        for name in ("metric", "before", "after_estimate", "improvement_percent"):
            v = item.get(name)
            if _number(v) is not None:
                metric[name] = v
            elif isinstance(v, str):
                metric[name] = v[:200]
        if metric:
            metrics.append(metric)
    if metrics:
        out["metrics"] = metrics
    for name, limit in (("confidence", 16), ("notes", 2000)):
        text = _text(value.get(name), limit)
        if text is not None:
            out[name] = text
    return out


def _change(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
        return None
    return {"path": value["path"][:500],
            "added": max(0, _int(value.get("added")) or 0),
            "removed": max(0, _int(value.get("removed")) or 0),
            "rationale": _text(value.get("rationale")) or ""}


def sanitize(value: Any) -> dict[str, Any] | None:
    """The documented fields of a metadata block, with their documented types; None if not one."""
    if not isinstance(value, Mapping):
        return None
    kind = value.get("kind")
    if kind not in KINDS:
        return None
    out: dict[str, Any] = {"schema": _int(value.get("schema")) or SCHEMA_VERSION, "kind": kind}
    for name, limit in (("run_id", 200), ("created_at", 64), ("merged_at", 64),
                        ("reason", 2000), ("checked_at", 64)):
        text = _text(value.get(name), limit)
        if text is not None:
            out[name] = text
    raw_patterns = value.get("patterns")
    patterns = [p for p in (_pattern(v) for v in (raw_patterns if isinstance(raw_patterns, list)
                                                   else [])[:MAX_LIST]) if p is not None]
    out["patterns"] = patterns
    raw_changes = value.get("changes")
    if isinstance(raw_changes, list):
        out["changes"] = [c for c in (_change(v) for v in raw_changes[:MAX_LIST]) if c is not None]
    if "expected_impact" in value:
        out["expected_impact"] = _expected(value.get("expected_impact"))
    for name in ("reverts", "pr", "window_seconds", "revert_pr"):
        number = _int(value.get(name))
        if number is not None and number >= 0:
            out[name] = number
    if kind == "verdict":
        verdict = value.get("verdict")
        if verdict not in VERDICTS:
            return None
        out["verdict"] = verdict
        new = value.get("new_critical")
        if isinstance(new, list):
            out["new_critical"] = [p for p in (_pattern(v) for v in new[:MAX_LIST])
                                   if p is not None]
    return out
