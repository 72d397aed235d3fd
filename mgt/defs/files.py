"""Definition files on disk → parsed TOML/JSON data, with every failure a `DefinitionError`.

One funnel for the loaders: unreadable files, non-UTF-8 bytes, malformed TOML
(`file:line:col`), malformed JSON (`file:line:col`) and pydantic validation
errors (`file: [table].key: message`) all become one-line `DefinitionError`s.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mgt.diagnostics import did_you_mean
from mgt.errors import DefinitionError
from mgt.span import Span

__all__ = [
    "display_path",
    "key_path",
    "pydantic_error",
    "read_json",
    "read_text",
    "read_toml",
    "read_toml_table",
    "require_dir",
    "unknown_key_error",
]

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as a user should read it: relative to the working directory when inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)
    return os.path.normpath(str(p))


def read_text(path: Path) -> str:
    shown = display_path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DefinitionError(f"{shown}: is a directory, not a file") from None
    except FileNotFoundError:
        raise DefinitionError(f"{shown}: no such file") from None
    except OSError as e:
        raise DefinitionError(f"{shown}: cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM, as some editors save
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DefinitionError(
            f"{shown}:{line}:{col}: not UTF-8 text (byte 0x{data[e.start]:02x})",
            Span.point(shown, line, col),
        ) from None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names `file:line:col`."""
    text = read_text(path)
    shown = display_path(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        match = _TOML_POS.search(message)
        if match:
            line, col = int(match.group(1)), int(match.group(2))
            reason = message[: match.start()]
        else:
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            reason = _TOML_END.sub("", message)
        raise DefinitionError(
            f"{shown}:{line}:{col}: invalid TOML: {reason}", Span.point(shown, line, col)
        ) from None
    except RecursionError:
        raise DefinitionError(f"{shown}: invalid TOML: nested too deeply") from None


def read_toml_table(path: Path, table: str) -> dict[str, Any] | None:
    """The `[table]` of a TOML file (None when it has none); errors name `file:line:col`."""
    value = read_toml(path).get(table)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DefinitionError(f"{display_path(path)}: [{table}] must be a table")
    return value


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names `file:line:col`."""
    text = read_text(path)
    shown = display_path(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DefinitionError(
            f"{shown}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}",
            Span.point(shown, e.lineno, e.colno),
        ) from None
    except RecursionError:
        raise DefinitionError(f"{shown}: invalid JSON: nested too deeply") from None


def key_path(loc: Sequence[str | int]) -> str:
    """A location inside a TOML document as its reader sees it.

    ("input", "patterns", "type") → "[input.patterns].type";
    ("guardrails", "forbidden_paths", 0) → "[guardrails].forbidden_paths[0]";
    ("model",) → "[model]".
    """
    parts = list(loc)
    indexes: list[int] = []
    while parts and isinstance(parts[-1], int):
        indexes.insert(0, int(parts.pop()))
    names = [str(p) for p in parts]
    suffix = "".join(f"[{i}]" for i in indexes)
    if not names:
        return suffix or "(top level)"
    if len(names) == 1:
        return f"[{names[0]}]{suffix}"
    return f"[{'.'.join(names[:-1])}].{names[-1]}{suffix}"


def unknown_key_error(path: Path, loc: Sequence[str | int], known: Iterable[str]) -> str:
    """`file: [table].key: unknown key 'x' (did you mean 'y'?)` for a misspelt key."""
    key = str(loc[-1])
    hint = did_you_mean(key, known)
    return f"{display_path(path)}: {key_path(loc)}: unknown key '{key}'" + (
        f" ({hint})" if hint else ""
    )


def pydantic_error(
    path: Path,
    error: ValidationError,
    prefix: Sequence[str | int] = (),
    known_keys: dict[tuple[str | int, ...], Iterable[str]] | None = None,
) -> DefinitionError:
    """The first pydantic problem as `file: [table].key: message` (+ how many more there are)."""
    shown = display_path(path)
    problems: list[str] = []
    for item in error.errors():
        loc = (*prefix, *item["loc"])
        kind = item["type"]
        if kind == "missing":
            text = f"{key_path(loc)}: missing required key"
        elif kind == "extra_forbidden":
            table = tuple(loc[:-1])
            known = (known_keys or {}).get(table, ())
            hint = did_you_mean(str(loc[-1]), known)
            text = f"{key_path(loc)}: unknown key '{loc[-1]}'" + (f" ({hint})" if hint else "")
        else:
            msg = str(item["msg"])
            msg = msg.removeprefix("Value error, ")
            msg = msg[:1].lower() + msg[1:]
            value = item.get("input")
            if kind not in ("value_error", "assertion_error") and _is_scalar(value):
                msg += f" (got {value!r})"
            text = f"{key_path(loc)}: {msg}"
        problems.append(text)
    first = problems[0] if problems else "invalid definition"
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
    return DefinitionError(f"{shown}: {first}" + (more if len(problems) > 1 else ""))


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 60


def require_dir(directory: str | os.PathLike[str]) -> Path:
    """`directory` as a Path; DefinitionError when it is missing or not a directory."""
    d = Path(directory)
    if not d.exists():
        raise DefinitionError(f"{display_path(d)}: no such directory")
    if not d.is_dir():
        raise DefinitionError(f"{display_path(d)}: not a directory")
    return d
