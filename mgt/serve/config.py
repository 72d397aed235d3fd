"""`mgt.toml`'s `[[schedule]]` tables → validated `Schedule`s; each error one `mgt.toml:LINE:` line.

    [[schedule]]
    name = "nightly"                 # unique among the schedules
    machine = "machines/evolve.mgt"  # relative to this mgt.toml
    cron = "0 3 * * *"               # or: every = "24h" (exactly one of the two)
    timezone = "Europe/Paris"        # for cron; default UTC
    inputs = { repo = "../app", since = "24h" }
    executor = "claude"              # optional, as `mgt exec --executor`
    budget_usd = 2.0                 # optional, as `mgt exec --budget-usd`

Cron expressions are read by croniter (a maintained cron library), intervals
with mgt's duration syntax (`30m`, `24h`, `1h30m`).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mgt.errors import UsageError

__all__ = ["Schedule", "ScheduleError", "load_schedules"]

_HEADER = re.compile(r"^\s*\[\[\s*schedule\s*\]\]", re.MULTILINE)
_ANY_HEADER = re.compile(r"^\s*\[", re.MULTILINE)
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class ScheduleError(UsageError):
    """A bad `[[schedule]]` table or mgt.toml (exit 2)."""


@dataclass(frozen=True)
class Schedule:
    """One validated `[[schedule]]` table; `machine` is absolute."""

    name: str
    machine: Path
    cron: str | None
    every_seconds: float | None
    every_text: str | None
    timezone: str
    inputs: dict[str, Any] = field(default_factory=dict)
    executor: str | None = None
    budget_usd: float | None = None

    @property
    def when(self) -> str:
        """How the schedule is written, for messages: `cron 0 3 * * *` or `every 24h`."""
        return f"cron {self.cron}" if self.cron is not None else f"every {self.every_text}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    machine: str
    cron: str | None = None
    every: str | None = None
    inputs: dict[str, Any] = {}
    executor: str | None = None
    budget_usd: float | None = None
    timezone: str = "UTC"

    @field_validator("name", "machine", "executor")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"{value!r}: use letters, digits, '-', '_' and '.'")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not value.strip() or not croniter.is_valid(value):
            raise ValueError(
                f"invalid cron expression {value!r}: expected five fields "
                "(minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\""
            )
        return value.strip()

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from mgt.expr.durations import parse_duration

        seconds = parse_duration(value).seconds  # a ValueError says what is expected
        if not math.isfinite(seconds) or seconds < 1:
            raise ValueError(f"every = {value!r}: an interval must be at least 1s")
        return value.strip()

    @field_validator("budget_usd", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, float) and not (math.isfinite(value) and value > 0):
            raise ValueError("must be a positive number of US dollars")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/Paris"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> _Table:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron = \"...\" or every = \"...\"")
        return self


def load_schedules(config: Path) -> list[Schedule]:
    """The schedules of `config` (an mgt.toml), in file order; none is an empty list."""
    from mgt.defs.files import display_path

    shown = display_path(config)
    try:
        text = config.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except FileNotFoundError:
        raise ScheduleError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ScheduleError(f"{shown}: is a directory, not a file") from None
    except OSError as err:
        raise ScheduleError(f"{shown}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ScheduleError(f"{shown}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = _TOML_POS.search(str(err))
        where = f":{m.group(1)}" if m else ""
        message = _TOML_POS.sub("", str(err)).strip()
        raise ScheduleError(f"{shown}{where}: invalid TOML: {message}") from None
    tables = data.get("schedule", [])
    headers = [text.count("\n", 0, m.start()) + 1 for m in _HEADER.finditer(text)]
    if not isinstance(tables, list) or len(headers) != len(tables):
        raise ScheduleError(f"{shown}: 'schedule' must be written as [[schedule]] tables")
    lines = text.splitlines()
    schedules: list[Schedule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        header = headers[index]

        def fail(message: str, key: str | None = None, *, _header: int = header) -> ScheduleError:
            line = _key_line(lines, _header, key) if key else _header
            return ScheduleError(f"{shown}:{line}: [[schedule]]: {message}")

        try:
            model = _Table.model_validate(table)
        except ValidationError as err:
            first = err.errors()[0]
            loc = [str(part) for part in first["loc"]]
            key = loc[0] if loc else None
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "missing":
                raise fail(f"missing key '{key}'") from None
            if first["type"] == "extra_forbidden":
                raise fail(f"unknown key '{key}'", key) from None
            label = ".".join(loc)
            raise fail(f"{label}: {message}" if label else message, key) from None
        if model.name in seen:
            raise fail(
                f"duplicate schedule name '{model.name}' (first at line {seen[model.name]})",
                "name",
            )
        seen[model.name] = header
        machine = (config.parent / model.machine).resolve()
        if not machine.is_file():
            raise fail(f"machine: no such file: {model.machine}", "machine")
        bad_input = next((k for k, v in model.inputs.items() if not _input_text_ok(v)), None)
        if bad_input is not None:
            raise fail(f"inputs.{bad_input}: an input is a string, number, boolean, array "
                       "or table", "inputs")
        every_seconds = None
        if model.every is not None:
            from mgt.expr.durations import parse_duration

            every_seconds = parse_duration(model.every).seconds
        schedules.append(Schedule(
            name=model.name, machine=machine, cron=model.cron, every_seconds=every_seconds,
            every_text=model.every, timezone=model.timezone, inputs=dict(model.inputs),
            executor=model.executor, budget_usd=model.budget_usd,
        ))
    return schedules


def _input_text_ok(value: Any) -> bool:
    # TOML dates and times have no `--input` spelling that mgt reads back as the same value.
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_input_text_ok(v) for v in value)
    if isinstance(value, dict):
        return all(_input_text_ok(v) for v in value.values())
    return False


def _key_line(lines: list[str], header: int, key: str) -> int:
    """The line of `key = ...` inside the table starting at line `header` (else the header)."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number in range(header + 1, len(lines) + 1):
        line = lines[number - 1]
        if _ANY_HEADER.match(line):
            break
        if pattern.match(line):
            return number
    return header
