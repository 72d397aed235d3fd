"""Polecat model names and logical tools → Claude Code model aliases and tool/permission patterns.

Two tables, one place. A polecat says `name = "claude-haiku-4-20250514"` and
`available = ["sleeptime_logs_query", ...]`; Claude Code wants `--model haiku`
and `--tools Bash --allowedTools "Bash(mgt logs:*)"`.

Models (`map_model`), in order:
  1. `MGT_MODEL=ALIAS` forces one model for every polecat;
  2. `MGT_MODEL_MAP="name=alias,name2=alias2"` maps exact names;
  3. `MODEL_MAP` below, then any name containing "haiku" → `haiku`;
  4. otherwise the name itself.
Haiku-only is the default policy: a result that is not a Haiku model is
refused unless `MGT_ALLOW_NON_HAIKU=1`.

Tools (`map_tools`): each logical tool maps to zero or more Claude Code
patterns. Tools that are the model's own reasoning (classify, score, propose
a diff) map to nothing: the answer is the output. A Claude Code tool name or
pattern (`Read`, `Bash(npm test:*)`) passes through unchanged, so a new polecat
can name one directly. Anything else is an error naming the tool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from mgt.diagnostics import did_you_mean
from mgt.errors import DefinitionError, UsageError

__all__ = [
    "CLAUDE_CODE_TOOLS",
    "DEFAULT_MODEL",
    "MODEL_MAP",
    "TOOL_MAP",
    "builtin_tools",
    "is_haiku",
    "map_model",
    "map_tools",
]

DEFAULT_MODEL = "haiku"

MODEL_MAP: dict[str, str] = {
    # the originals' model, now retired: the alias always names the current Haiku
    "claude-haiku-4-20250514": "haiku",
}

READ_ONLY = ("Read", "Glob", "Grep")

TOOL_MAP: dict[str, tuple[str, ...]] = {
    # log-analyzer
    "sleeptime_logs_query": ("Bash(mgt logs:*)",),
    "pattern_classifier": (),
    "severity_scorer": (),
    "pattern_report": (),
    # conditional-refiner
    "read_template": READ_ONLY,
    "read_schema": READ_ONLY,
    "read_graph_def": READ_ONLY,
    "propose_diff": (),
    # pr-filer
    "git_branch": ("Bash(git:*)",),
    "git_apply": ("Bash(git:*)",),
    "git_commit": ("Bash(git:*)",),
    "gh_pr_create": ("Bash(gh pr create:*)",),
}

# Claude Code's built-in tools that a polecat may name directly.
CLAUDE_CODE_TOOLS = frozenset(
    {
        "Agent",
        "Bash",
        "Edit",
        "Glob",
        "Grep",
        "MultiEdit",
        "NotebookEdit",
        "Read",
        "Skill",
        "Task",
        "TodoWrite",
        "WebFetch",
        "WebSearch",
        "Write",
    }
)

_PATTERN = re.compile(r"^(?P<tool>[A-Z][A-Za-z]*)(?:\((?P<rule>.+)\))?$")


def is_haiku(model: str) -> bool:
    return "haiku" in model.lower()


def map_model(name: str | None, environ: Mapping[str, str] | None = None) -> str:
    """A polecat's `[model].name` → the model or alias to pass to Claude Code (`--model`)."""
    env = os.environ if environ is None else environ
    source = name or DEFAULT_MODEL
    forced = env.get("MGT_MODEL", "").strip()
    if forced:
        alias, why = forced, "MGT_MODEL"
    else:
        table = _parse_model_map(env.get("MGT_MODEL_MAP", ""))
        if source in table:
            alias, why = table[source], "MGT_MODEL_MAP"
        elif source in MODEL_MAP:
            alias, why = MODEL_MAP[source], "the model table"
        elif is_haiku(source):
            alias, why = DEFAULT_MODEL, "the model table"
        else:
            alias, why = source, "the polecat"
    if not is_haiku(alias) and env.get("MGT_ALLOW_NON_HAIKU", "") not in ("1", "true", "yes"):
        via = "" if alias == source else f" (from {why})"
        raise UsageError(
            f"model '{alias}'{via} is not a Haiku model and mgt is Haiku-only by default: "
            f"set MGT_ALLOW_NON_HAIKU=1 to allow it, or map it with "
            f"MGT_MODEL_MAP='{source}=haiku'"
        )
    return alias


def _parse_model_map(spec: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, alias = entry.partition("=")
        if not sep or not name.strip() or not alias.strip():
            raise UsageError(
                f"MGT_MODEL_MAP: bad entry '{entry}': expected NAME=ALIAS, e.g. "
                f"'claude-haiku-4-20250514=haiku'"
            )
        table[name.strip()] = alias.strip()
    return table


def map_tools(logical: Iterable[str], *, polecat: str | None = None) -> tuple[str, ...]:
    """A polecat's logical tools → Claude Code tool/permission patterns (deduplicated, in order)."""
    patterns: list[str] = []
    for tool in logical:
        mapped = TOOL_MAP.get(tool)
        if mapped is None:
            mapped = _passthrough(tool, polecat)
        for pattern in mapped:
            if pattern not in patterns:
                patterns.append(pattern)
    return tuple(patterns)


def _passthrough(tool: str, polecat: str | None) -> tuple[str, ...]:
    m = _PATTERN.match(tool)
    if m and m.group("tool") in CLAUDE_CODE_TOOLS:
        return (tool,)
    where = f"polecat '{polecat}': " if polecat else ""
    hint = did_you_mean(tool, [*TOOL_MAP, *CLAUDE_CODE_TOOLS])
    known = ", ".join(sorted(TOOL_MAP))
    raise DefinitionError(
        f"{where}unknown tool '{tool}' in [tools].available"
        + (f"; {hint}" if hint else "")
        + f" (known: {known}, or a Claude Code tool such as Read or 'Bash(cmd:*)')"
    )


def builtin_tools(patterns: Iterable[str]) -> str:
    """Patterns → the `--tools` value: the built-in tool names, comma-separated ("" for none)."""
    names: list[str] = []
    for pattern in patterns:
        m = _PATTERN.match(pattern)
        name = m.group("tool") if m else pattern
        if name not in names:
            names.append(name)
    return ",".join(names)
