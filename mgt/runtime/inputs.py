"""`--input K=V` strings and `--inputs FILE` values → typed run inputs checked against `InputSpec`s.

Types: str int float bool duration path json enum. A value from the command line
is text and is parsed; a value from a JSON/TOML file (or a run's run.json on
resume) is already typed and only checked. Paths become absolute (relative to
the current directory, an inputs file's directory, or the machine file's
directory for defaults) so a resumed run reads the same files from anywhere.
A `path` given an http(s) URL keeps it as a URL (e.g. a Loki source), without
any `user:password@` (see `mgt.logs.credentials`).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mgt.compile.model import InputSpec, Machine
from mgt.diagnostics import did_you_mean
from mgt.errors import UsageError
from mgt.expr.durations import Duration, parse_duration
from mgt.runtime.strict_json import all_finite, loads

__all__ = ["coerce_input", "load_inputs_file", "parse_input_args", "resolve_inputs"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "duration": "a duration such as 30s, 5m or 24h",
    "path": "a path",
    "json": "a JSON value",
    "str": "a string",
}


def _bad(spec: InputSpec, value: Any, why: str | None = None) -> UsageError:
    expected = (
        "one of " + ", ".join(repr(v) for v in spec.enum_values)
        if spec.type == "enum"
        else _TYPE_WORDS.get(spec.type, spec.type)
    )
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    msg = f"input '{spec.name}': expected {expected}, got {shown!r}"
    if why:
        msg += f" ({why})"
    return UsageError(msg)


def coerce_input(
    spec: InputSpec, value: Any, *, base_dir: Path | None = None, from_text: bool = False
) -> Any:
    """Check one value for `spec` (parsing it when `from_text`); raise UsageError naming the input.

    Only a `json` input needs `from_text`: every other type parses text the same
    way wherever it comes from, but a JSON-typed file value is already JSON.
    """
    kind = spec.type
    text = value if isinstance(value, str) else None
    if kind == "str":
        if text is None:
            raise _bad(spec, value)
        return text
    if kind == "int":
        if isinstance(value, bool):
            raise _bad(spec, value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None and re.fullmatch(r"\s*[-+]?\d+\s*", text):
            try:
                return int(text)
            except ValueError:  # more digits than Python converts (4300)
                raise _bad(spec, value, "too many digits") from None
        raise _bad(spec, value)
    if kind == "float":
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = _float(value)
        elif text is not None:
            with contextlib.suppress(ValueError):
                number = float(text)
        if number is None:
            raise _bad(spec, value)
        if not math.isfinite(number):
            raise _bad(spec, value, "not a finite number")
        return number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if text is not None and text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise _bad(spec, value)
    if kind == "duration":
        if isinstance(value, Duration):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = _float(value)
            if seconds is None or not math.isfinite(seconds) or seconds < 0:
                raise _bad(spec, value, "a number of seconds must be 0 or more")
            return Duration.of(seconds)
        if text is not None:
            try:
                return parse_duration(text)
            except ValueError:
                raise _bad(spec, value) from None
        raise _bad(spec, value)
    if kind == "path":
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value or "\0" in value:
            raise _bad(spec, value)
        if value.lower().startswith(("http://", "https://")):  # a URL (a Loki source) stays one
            from mgt.logs.credentials import remember_credentials

            return remember_credentials(value)  # never recorded with user:password@ in it
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return str(path.resolve()) if base_dir is not None else str(path)
    if kind == "json":
        if text is not None and from_text:
            try:
                return loads(text)
            except ValueError as err:
                raise _bad(spec, value, str(err)) from None
        if not all_finite(value):  # NaN/inf from a TOML file: JSON has no such numbers
            raise _bad(spec, value, "JSON numbers are finite")
        return value
    if kind == "enum":
        if text is None or text not in spec.enum_values:
            hint = did_you_mean(text, spec.enum_values) if text is not None else None
            bad = _bad(spec, value)
            raise UsageError(f"{bad.message}; {hint}") if hint else bad
        return text
    raise _bad(spec, value, f"unknown input type {kind!r}")


def _float(value: int | float) -> float | None:
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None


def parse_input_args(pairs: Sequence[str]) -> dict[str, str]:
    """`["since=24h", "draft=false"]` → {"since": "24h", "draft": "false"}."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--input {pair!r}: expected NAME=VALUE")
        values[name] = value
    return values


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_inputs_file(path: Path | str) -> dict[str, Any]:
    """Read `--inputs FILE` (.json or .toml) into a mapping; malformed → `FILE:LINE:COL: ...`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8").removeprefix("\ufeff")  # a BOM, as editors save
    except OSError as err:
        raise UsageError(f"--inputs {file}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{file}: not UTF-8 text") from None
    suffix = file.suffix.lower()
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            msg = str(err)
            m = _TOML_POS.search(msg)
            where = f"{file}:{m.group(1)}:{m.group(2)}" if m else str(file)
            raise UsageError(f"{where}: invalid TOML: {_TOML_POS.sub('', msg).strip()}") from None
        except RecursionError:
            raise UsageError(f"{file}: invalid TOML: nested too deeply") from None
    elif suffix == ".json":
        try:
            data = loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"{file}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
        except ValueError as err:
            raise UsageError(f"{file}: invalid JSON: {err}") from None
    else:
        raise UsageError(f"--inputs {file}: expected a .json or .toml file")
    if not isinstance(data, dict):
        raise UsageError(f"{file}: expected an object of input names to values")
    return data


def resolve_inputs(
    machine: Machine,
    *,
    cli: Mapping[str, str] | None = None,
    file_values: Mapping[str, Any] | None = None,
    file_dir: Path | None = None,
    stored: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Every machine input's typed value: `--input` over `--inputs` over defaults.

    `stored` (a run's recorded inputs, on resume) replaces all three.
    Unknown names and missing required inputs are errors, named.
    """
    specs = {spec.name: spec for spec in machine.inputs}
    here = Path(cwd or Path.cwd())
    values: dict[str, Any] = {}

    def unknown(names: Iterable[str], where: str) -> None:
        for name in names:
            if name not in specs:
                hint = did_you_mean(name, specs)
                known = ", ".join(specs) or "none"
                raise UsageError(
                    f"unknown input '{name}'{where}: "
                    + (hint if hint else f"this machine's inputs are: {known}")
                )

    if stored is not None:
        unknown(stored, " in the run's inputs")
        for name, value in stored.items():
            values[name] = coerce_input(specs[name], value, base_dir=here)
    else:
        file_values = file_values or {}
        cli = cli or {}
        unknown(file_values, " in --inputs file")
        unknown(cli, "")
        machine_dir = Path(machine.source_path).resolve().parent
        for name, spec in specs.items():
            if name in cli:
                values[name] = coerce_input(spec, cli[name], base_dir=here, from_text=True)
            elif name in file_values:
                values[name] = coerce_input(spec, file_values[name], base_dir=file_dir or here)
            elif spec.default is not None:
                values[name] = coerce_input(spec, spec.default, base_dir=machine_dir)
    missing = [s.name for s in machine.inputs if s.name not in values and s.required]
    if missing:
        first = missing[0]
        more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise UsageError(
            f"missing required input '{first}'{more}: give it with --input {first}=..."
        )
    for spec in machine.inputs:  # optional, no default: null, so `exists(input.x)` is false
        values.setdefault(spec.name, None)
    from mgt.runtime.journal import jsonable

    for name, value in values.items():  # the run journals its inputs: they must fit
        try:
            jsonable(value)
        except ValueError as err:
            raise UsageError(f"input '{name}': {err}; the journal cannot keep it") from None
    return values
