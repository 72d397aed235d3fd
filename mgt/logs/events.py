"""One log line or JSON value → a `LogEvent` (type, timestamp in ns, session, bounded fields).

The event line shape (DESIGN §7) is one JSON object per line whose `type` (or
`event_type`) names the event, the other keys being its fields::

    {"timestamp": "2025-01-15T10:30:00.120Z", "type": "llm_call", "model": "haiku",
     "node": "classify", "prompt_tokens": 812, "completion_tokens": 64,
     "latency_ms": 1840, "session_id": "s-42"}

An element of the array that `sleeptime-logs --json` (and `mgt logs --json`)
prints is accepted too: `{"timestamp": ..., "event": {"type": ..., ...}}`.

Parsing never raises on bad data: a value that is not an event gives `None`,
a field of the wrong type is kept as it is and reads as missing through the
typed accessors (`LogEvent.number("latency_ms")` is `None` for `"slow"`), and
huge strings, lists and objects are cut down so one event stays small.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "EVENT_TYPES",
    "MAX_ITEMS",
    "MAX_LINE_BYTES",
    "MAX_TEXT",
    "LogEvent",
    "block_event",
    "format_timestamp",
    "has_long_digit_run",
    "normalize_type",
    "ordinary_time_text",
    "parse_event",
    "parse_event_line",
    "parse_line_block",
    "parse_line_part",
    "parse_timestamp",
    "shallow_bytes",
]

#: The event types of DESIGN §7; anything else is kept with type "other".
EVENT_TYPES: tuple[str, ...] = (
    "graph_transition",
    "llm_call",
    "user_action",
    "effect_execution",
    "error",
)
_KNOWN = frozenset(EVENT_TYPES)

#: Longest string kept in an event's fields (longer ones are cut, with a marker).
MAX_TEXT = 8192
#: Most items kept in any list or object inside an event.
MAX_ITEMS = 256
#: Deepest nesting kept; deeper values are replaced by a marker string.
MAX_DEPTH = 16
#: Longest line a file source reads; longer lines are skipped as malformed.
MAX_LINE_BYTES = 1 << 20

_NS = 1_000_000_000


@dataclass(slots=True)
class LogEvent:
    """One event (read-only by convention: not frozen, as that triples its construction cost).

    `type` is one of `EVENT_TYPES` or `"other"` (the original name is then in
    `raw_type`); `timestamp` is nanoseconds since the Unix epoch, or `None`
    when neither the record nor its Loki entry carried a usable time;
    `fields` is the event object as logged (bounded in size), including its
    `type` key. Read fields through `text`, `number` and `flag`, which return
    `None` for a missing field or one of the wrong JSON type.
    """

    type: str
    timestamp: int | None
    session_id: str | None
    fields: Mapping[str, Any]
    raw_type: str | None = None

    def text(self, name: str) -> str | None:
        """The field as a string, or None when missing or not a JSON string."""
        value = self.fields.get(name)
        return value if isinstance(value, str) else None

    def number(self, name: str) -> float | None:
        """The field as a finite number, or None (strings, booleans, NaN read as missing)."""
        value = self.fields.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    def flag(self, name: str) -> bool | None:
        """The field as a boolean, or None when missing or not a JSON boolean."""
        value = self.fields.get(name)
        return value if isinstance(value, bool) else None

    @property
    def type_name(self) -> str:
        """The type as logged: `type`, or the original name of an "other" event."""
        return self.raw_type if self.raw_type is not None else self.type

    @property
    def iso_time(self) -> str | None:
        """The timestamp as ISO 8601 UTC with nanoseconds, or None."""
        return None if self.timestamp is None else format_timestamp(self.timestamp)

    def to_json(self) -> dict[str, Any]:
        """The `{"timestamp", "event"}` element `mgt logs --json` prints (event includes type)."""
        event: dict[str, Any] = {"type": self.type_name}
        for key, value in self.fields.items():
            if key not in ("type", "event_type"):
                event[key] = value
        if self.session_id is not None and "session_id" not in event:
            event["session_id"] = self.session_id
        return {"timestamp": self.iso_time, "event": event}


# --------------------------------------------------------------------------- types

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ALIASES = {
    "transition": "graph_transition",
    "graph_transition_event": "graph_transition",
    "llm_call_event": "llm_call",
    "llmcall": "llm_call",
    "llmcall_event": "llm_call",
    "user_action_event": "user_action",
    "effect_execution_event": "effect_execution",
    "effect": "effect_execution",
    "error_event": "error",
}


def normalize_type(name: str) -> str:
    """An event type name → one of EVENT_TYPES, or "other".

    Accepts the logged spelling (`llm_call`) and close variants such as
    `LLMCallEvent`, `GraphTransition` or `llm-call`.
    """
    if name in _KNOWN:
        return name
    key = _CAMEL.sub("_", name.strip()).replace("-", "_").replace(" ", "_").lower()
    if key in _KNOWN:
        return key
    return _ALIASES.get(key, "other")


# ---------------------------------------------------------------------- timestamps

_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d\d(?::?\d\d)?)?"
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_SECOND_CACHE: dict[str, int] = {}


def _second_base(prefix: str) -> int | None:
    # "YYYY-MM-DDTHH:MM:SS" → seconds since the epoch; cached because log times cluster.
    base = _SECOND_CACHE.get(prefix)
    if base is not None:
        return base
    if prefix[13] != ":" or prefix[16] != ":" or prefix[10] not in "Tt " or prefix[7] != "-":
        return None
    try:
        year, month, day = int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10])
        hour, minute, second = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19])
    except ValueError:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59
            and second <= 60 and prefix[17:19].isdigit()):
        return None
    base = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if len(_SECOND_CACHE) >= 256:  # log times are mostly in order: a small cache hits
        _SECOND_CACHE.clear()
    _SECOND_CACHE[prefix] = base
    return base


# The canonical shape "YYYY-MM-DDTHH:MM:SS.mmmZ" (JavaScript's toISOString, most log
# shippers) is read with dict lookups: the second ("YYYY-MM-DDTHH:MM:SS") → ns since the
# epoch, cached as log times cluster (on a miss: the minute, cached too, plus ":SS"), and
# "mmm" → ns.
_CANONICAL_MINUTE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
_MINUTE_NS: dict[str, int | None] = {}
# Sizes of the two caches: a shuffled file of a day's events has 1,440 distinct minutes,
# which fit (parse_line_part reads canonical times through the minute cache); its 86,400
# seconds would take 17 MB, so that cache stays small. Both are cleared when full.
_MINUTES_KEPT = 1 << 12
_SECONDS_KEPT = 256
_SECOND_LIMIT = 10**20 - _NS  # a second at or past this has times beyond 10^20 ns
_SECOND_NS: dict[str, int] = {}
_SECONDS_NS = {f":{s:02d}": s * _NS for s in range(61)}
_MILLIS_NS = {f"{ms:03d}": ms * 1_000_000 for ms in range(1000)}
_MILLIS_Z_NS = {f".{ms:03d}Z": ms * 1_000_000 for ms in range(1000)}  # a canonical time's end


def _minute_ns(prefix: str) -> int | None:
    # A canonical minute "YYYY-MM-DDTHH:MM" → ns, or None when a field is out of range.
    ns = None
    if _CANONICAL_MINUTE.fullmatch(prefix) is not None:
        year, month, day = int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10])
        hour, minute = int(prefix[11:13]), int(prefix[14:16])
        if 1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59:
            days = _days_from_civil(year, month, day)
            ns = (days * 86400 + hour * 3600 + minute * 60) * _NS
    if len(_MINUTE_NS) >= _MINUTES_KEPT:
        _MINUTE_NS.clear()
    _MINUTE_NS[prefix] = ns
    return ns


def _second_ns(prefix: str) -> int | None:
    # A canonical second → ns, when every time in that second is in range (else None).
    key = prefix[:16]
    minute = _MINUTE_NS[key] if key in _MINUTE_NS else _minute_ns(key)
    second = _SECONDS_NS.get(prefix[16:])
    if minute is None or second is None:
        return None
    ns: int = minute + second
    if not 0 <= ns < _SECOND_LIMIT:
        return None
    if len(_SECOND_NS) >= _SECONDS_KEPT:
        _SECOND_NS.clear()
    _SECOND_NS[prefix] = ns
    return ns


def _parse_iso_fast(text: str) -> int | None:
    # The common shapes "2025-01-15T10:30:00Z" / "...:00.120Z" / "...:00.120+02:00",
    # by slicing instead of the regex; anything else returns None for the general path.
    # Callers check len(text) >= 19 and text[4] == "-".
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        prefix = text[:19]
        base = _SECOND_NS.get(prefix)
        if base is None:
            base = _second_ns(prefix)
        millis = _MILLIS_NS.get(text[20:23])
        if base is not None and millis is not None:
            return base + millis
    return _parse_iso_sliced(text)


def _parse_iso_sliced(text: str) -> int | None:
    # Every shape _parse_iso_fast reads; it answers the canonical one itself (the same way).
    base = _second_base(text[:19])
    if base is None:
        return None
    rest = text[19:]
    if rest == "Z":
        return base * _NS if base >= 0 else None
    offset = 0
    if rest[-1:] in ("Z", "z"):
        rest = rest[:-1]
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
        zone = rest[-6:]
        if not (zone[1:3].isdigit() and zone[4:6].isdigit()):
            return None
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (-1 if zone[0] == "-" else 1)
        rest = rest[:-6]
    nanos = 0
    if rest:
        digits = rest[1:]
        if rest[0] not in ".," or not digits.isdigit() or not digits.isascii():
            return None
        nanos = int(digits[:9].ljust(9, "0"))
    ns = (base - offset) * _NS + nanos
    return ns if 0 <= ns < 10**20 else None


def _parse_iso(text: str) -> int | None:
    if len(text) >= 19 and text[4] == "-":
        fast = _parse_iso_fast(text)
        if fast is not None:
            return fast
    m = _ISO.fullmatch(text.strip())
    if m is None:
        try:
            dt = datetime.fromisoformat(text.strip())
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        ns = (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000
        return ns if ns >= 0 else None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    frac = m.group(7) or ""
    nanos = int((frac + "000000000")[:9]) if frac else 0
    offset = 0
    zone = m.group(8)
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    ns = (seconds - offset) * _NS + nanos
    return ns if 0 <= ns < 10**20 else None


def _from_epoch(value: float) -> int | None:
    # The unit is guessed from the magnitude: seconds until the year 5138, then ms, µs, ns.
    if not math.isfinite(value) or value < 0:
        return None
    if value < 1e11:
        return round(value * _NS)
    if value < 1e14:
        return round(value * 1_000_000)
    if value < 1e17:
        return round(value * 1000)
    if value < 1e20:
        return int(value)
    return None


def parse_timestamp(value: Any) -> int | None:
    """A timestamp value → nanoseconds since the epoch, or None when unusable.

    ISO 8601 strings (with `Z`, an offset or none meaning UTC, any fraction
    digits) and epoch numbers or digit strings in s, ms, µs or ns (told apart
    by magnitude) are understood.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value < 0 or value >= 10**20:
            return None
        if value < 10**11:
            return value * _NS
        if value < 10**14:
            return value * 1_000_000
        if value < 10**17:
            return value * 1000
        return value
    if isinstance(value, float):
        return _from_epoch(value)
    if isinstance(value, str) and 0 < len(value) <= 64:
        if len(value) >= 19 and value[4] == "-":
            fast = _parse_iso_fast(value)
            if fast is not None:
                return fast
        text = value.strip()
        if text.isdigit():
            return parse_timestamp(int(text))
        if text[:1].isdigit() and "-" not in text[:5]:
            try:
                return _from_epoch(float(text))
            except ValueError:
                return None
        return _parse_iso(text)
    return None


def format_timestamp(ns: int) -> str:
    """Nanoseconds since the epoch → ISO 8601 UTC with 9 fraction digits (sorts as text)."""
    seconds, nanos = divmod(ns, _NS)
    dt = datetime.fromtimestamp(seconds, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


# ----------------------------------------------------------------------- bounding


def _bound(value: Any, depth: int = 0) -> Any:
    """A JSON value cut down to MAX_TEXT chars per string, MAX_ITEMS per container."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return value[:MAX_TEXT] + f"…[{len(value) - MAX_TEXT} more chars]"
        return value
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return "…[nested too deep]"
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"[{len(value) - MAX_ITEMS} more keys]"
                break
            out[k[:MAX_TEXT]] = _bound(v, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return "…[nested too deep]"
        items = [_bound(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…[{len(value) - MAX_ITEMS} more items]")
        return items
    return value


# ------------------------------------------------------------------------- parsing


_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

# orjson decodes a line about twice as fast as the standard library. It is trusted only
# where it gives the value `json` gives: on any line orjson rejects (NaN, Infinity, 1e400,
# a lone surrogate escape, a BOM, bad UTF-8, prefixed lines...) the standard path below
# runs exactly as before. Older orjson releases read an integer beyond 64 bits as a float
# where `json` keeps the int; with those, a line with a run of 19+ digits takes the
# standard path too (the probe below tells which kind is installed). And `json` gives up
# on nesting deeper than the interpreter's recursion limit allows (the line is then no
# event) where orjson reads on: a line that could nest that deep is handed over as well.
_orjson_loads = orjson.loads
_OrjsonError = orjson.JSONDecodeError
_MISS: Any = object()


def _widens_big_integers() -> bool:
    try:
        return _orjson_loads(b"[18446744073709551616]")[0].__class__ is not int
    except _OrjsonError:
        return False


_WIDENS = _widens_big_integers()
_DIGIT_MAP = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_LONG_DIGITS = b"0" * 19
# Nesting needs two bytes a level; `json` fails only hundreds of levels down.
_DEEP_BYTES, _DEEP_OPENERS = 256, 128
_SHALLOW_BYTES = 512  # see shallow_bytes


def shallow_bytes(newline: bool, wide: int) -> int:
    """How long a line a block reader may read with orjson (or msgspec) without counting its
    "{" and "[" first, where it reads lines of up to `wide` bytes that hold at most
    _DEEP_OPENERS of them.

    A line of at most `_SHALLOW_BYTES` nests at most 256 levels, which `json` follows
    (with Python's default recursion limit, 1,000 less the frames in use; later versions
    allow more): where the general path reads it with `json` (more than _DEEP_OPENERS of
    "{" and "["), the result is orjson's. Under a lower recursion limit, only the lines
    the general path reads with orjson itself, the short ones.
    """
    if sys.getrecursionlimit() >= 1000:
        return min(wide, _SHALLOW_BYTES)
    return _DEEP_BYTES - newline


def _fast_load(line: str | bytes, digits_checked: bool = False) -> Any:
    """orjson's value for `line`, or `_MISS` when the standard path must decide.

    `digits_checked`: the caller saw no run of 19 digits in the bytes holding `line`.
    """
    try:
        value = _orjson_loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError, or text no UTF-8 can hold
        return _MISS
    if len(line) > _DEEP_BYTES or (_WIDENS and not digits_checked):
        data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        if len(data) > _DEEP_BYTES and data.count(b"[") + data.count(b"{") > _DEEP_OPENERS:
            return _MISS
        if _WIDENS and not digits_checked and _LONG_DIGITS in data.translate(_DIGIT_MAP):
            return _MISS
    return value


def has_long_digit_run(data: bytes) -> bool:
    """Whether `data` holds a run of 19+ digits (where older orjson can misread integers)."""
    return _WIDENS and _LONG_DIGITS in data.translate(_DIGIT_MAP)


def _load(line: str | bytes) -> Any:
    value = _fast_load(line)
    return _standard_load(line) if value is _MISS else value


def _standard_load(line: str | bytes) -> Any:
    """The standard library's reading of a line (the reference `_fast_load` must agree with)."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        # The decoder's scanner directly: json.loads adds encoding detection and
        # whitespace handling that cost as much as the decoding of a short line.
        value, end = _scan_once(text, 0)
        if end == len(text) or text[end:].isspace():
            return value
    except (StopIteration, ValueError, RecursionError):
        pass
    return _load_tolerant(line)


def _load_tolerant(line: str | bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        pass
    # A line of `logcli` output ("<time> {labels} {json}") or another prefixed line:
    # decode the first JSON object in it.
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    start = text.find('{"')
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and "timestamp" not in value and "ts" not in value:
        prefix_time = parse_timestamp(text[:start].split(" ", 1)[0])
        if prefix_time is not None:
            value = {"timestamp": prefix_time, **value}
    return value


def _type_of(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("type")
    if not isinstance(value, str):
        value = obj.get("event_type")
    return value if isinstance(value, str) and value else None


def parse_event(
    value: Any,
    *,
    entry_ts: int | None = None,
    labels: Mapping[str, str] | None = None,
    size_hint: int | None = None,
) -> LogEvent | None:
    """A log line (str/bytes) or a decoded JSON value → a LogEvent, or None if it is no event.

    `entry_ts` is the Loki entry time in ns, used when the record has no
    usable `timestamp`; `labels` are the Loki stream labels (a `session_id`
    label is used when the record has none). `size_hint` is the encoded size
    of `value` when known: values shorter than `MAX_TEXT` skip the bounding
    walk, which is what keeps parsing fast for ordinary lines.
    """
    if isinstance(value, str | bytes | bytearray):
        if len(value) > MAX_LINE_BYTES:
            return None
        size_hint = len(value)
        value = _load(bytes(value) if isinstance(value, bytearray) else value)
    if not isinstance(value, dict):
        return None

    obj: dict[str, Any] = value
    outer: dict[str, Any] | None = None
    type_name = _type_of(obj)
    inner = obj.get("event")
    if type_name is None and isinstance(inner, dict):
        # The sleeptime-logs --json element: {"timestamp", "event": {...}}.
        outer, obj = obj, inner
        type_name = _type_of(obj)
    if type_name is None:
        return None

    if size_hint is None or size_hint > MAX_TEXT:
        obj = _bound(obj)
        if len(type_name) > MAX_TEXT:
            type_name = type_name[:MAX_TEXT]

    raw_time = obj.get("timestamp")
    timestamp = None
    if raw_time.__class__ is str and len(raw_time) >= 19 and raw_time[4] == "-":
        timestamp = _parse_iso_fast(raw_time)
    if timestamp is None:
        timestamp = parse_timestamp(raw_time)
    if timestamp is None and outer is not None:
        timestamp = parse_timestamp(outer.get("timestamp"))
    if timestamp is None and "ts" in obj:
        timestamp = parse_timestamp(obj.get("ts"))
    if timestamp is None:
        timestamp = entry_ts

    session = obj.get("session_id")
    if not isinstance(session, str) and outer is not None:
        session = outer.get("session_id")
    if isinstance(session, int) and not isinstance(session, bool):
        session = str(session)
    if not isinstance(session, str) or not session:
        session = labels.get("session_id") if labels else None
    if session is not None and len(session) > MAX_TEXT:
        session = session[:MAX_TEXT]

    kind = normalize_type(type_name)
    return LogEvent(
        type=kind,
        timestamp=timestamp,
        session_id=session,
        fields=obj,
        raw_type=type_name if kind == "other" else None,
    )


def parse_event_line(line: bytes) -> LogEvent | None:
    """`parse_event(line)` for one line of an event file, faster for the ordinary line.

    An ordinary line is a short (≤ `MAX_TEXT` bytes) flat event of a known type
    with a usable `timestamp` and a string `session_id` or none: it is decoded
    once and its event built directly. Any other line takes `parse_event`,
    which gives the same result for every line (tests/logs check it).
    """
    return parse_line_part(line, False)


def ordinary_time_text(line: bytes, digits_checked: bool) -> str | None:
    """The `timestamp` string of a line `parse_line_part` takes its fast path for, else None.

    That is a line of at most MAX_TEXT bytes decoding to an object of a known type
    whose `timestamp` is a string of 24 characters ending in Z and whose
    `session_id` is absent or a non-empty string: its event's time is the
    parse of that string whenever the string is a valid canonical time.
    """
    if len(line) + 1 > MAX_TEXT:
        return None
    value = _fast_load(line, digits_checked)
    if value is _MISS or value.__class__ is not dict:
        return None
    kind = value.get("type")
    raw_time = value.get("timestamp")
    session = value.get("session_id")
    if (kind.__class__ is str and kind in _KNOWN and raw_time.__class__ is str
            and len(raw_time) == 24 and raw_time[23] == "Z"
            and (session is None or (session.__class__ is str and session))):
        return raw_time
    return None


def parse_line_part(line: bytes, digits_checked: bool, newline: bool = False) -> LogEvent | None:
    """`parse_event_line(line + b"\n" if newline else line)`, without building that line
    unless needed; `digits_checked` as for `_fast_load` (the file reader checks its blocks)."""
    size = len(line) + newline
    if size > MAX_TEXT:
        return parse_event(line + b"\n" if newline else line)
    if size <= _DEEP_BYTES and (digits_checked or not _WIDENS):
        # _fast_load(line, digits_checked), inlined for the ordinary short line: neither
        # of its checks applies, and the call costs as much as a tenth of the line's work.
        try:
            value = _orjson_loads(line)
        except (ValueError, RecursionError):
            value = _MISS
    else:
        value = _fast_load(line, digits_checked)
    if value is _MISS:
        if newline:
            line += b"\n"
        try:
            text = line.decode("utf-8")
            value, end = _scan_once(text, 0)
        except (StopIteration, ValueError, RecursionError):
            return parse_event(line)
        if end != len(text) and not text[end:].isspace():
            return parse_event(line)
        if value.__class__ is not dict:
            return parse_event(line)
    elif value.__class__ is not dict:
        return None  # parse_event would decode the same value: no event
    kind = value.get("type")
    if kind.__class__ is str and kind in _KNOWN:
        raw_time = value.get("timestamp")
        timestamp = None
        if raw_time.__class__ is str:
            # The canonical "YYYY-MM-DDTHH:MM:SS.mmmZ" from the minute cache and two fixed
            # tables, as _parse_iso_fast would (_second_ns's sum and range check); a miss
            # takes _parse_iso_fast, which fills the cache. Keyed on the minute, not the
            # second, so that a shuffled day of events (1,440 minutes) hits it too.
            if len(raw_time) == 24 and raw_time[19] == "." and raw_time[23] == "Z":
                minute = _MINUTE_NS.get(raw_time[:16])
                second = _SECONDS_NS.get(raw_time[16:19])
                millis = _MILLIS_NS.get(raw_time[20:23])
                if minute is not None and second is not None and millis is not None:
                    base = minute + second
                    if 0 <= base < _SECOND_LIMIT:
                        timestamp = base + millis
            if timestamp is None and len(raw_time) >= 19 and raw_time[4] == "-":
                timestamp = _parse_iso_fast(raw_time)
        session = value.get("session_id")
        if timestamp is not None and (session is None or (session.__class__ is str and session)):
            return LogEvent(kind, timestamp, session, value, None)
    return parse_event(value, size_hint=size)


def parse_line_block(
    parts: list[bytes | None],
    digits_checked: bool,
    newline: bool,
    cutoff: int | None = None,
    guess: int | None = None,
) -> tuple[list[Any], list[int | None], int, bool]:
    """A block's lines → (items, times, skipped, newer): what a file source yields of them.

    For each line, in order, that `parse_line_part(part, digits_checked, newline)` makes
    an event of and whose time is not before `cutoff` (an event with no time is kept):
    `items` holds that event, or — for an ordinary line — just the dict the line
    decodes to, whose event is exactly `LogEvent(d["type"], time, d.get("session_id"),
    d)` (see `block_event`); `times` holds each item's time. The ordinary line is the
    one `parse_line_part` builds its event from directly: at most `MAX_TEXT` bytes and,
    past `_DEEP_BYTES`, not deep (at most `_DEEP_OPENERS` of "{" and "["), read by
    orjson where that is trusted, a known type, a canonical
    time whose minute is cached, a usable session; it is read here in one loop with
    everything it needs in local variables, and no `LogEvent` is built for it.
    `skipped` counts the lines that are no event (None parts, lines that do not parse;
    blank lines are neither). `newer`: an event kept was newer than `guess`; the block
    stops before it (the reader starts over with the exact scan). The analyzer reads
    its blocks with `Aggregates.feed_parts` instead, which feeds the same events.
    """
    loads, miss, known = _orjson_loads, _MISS, _KNOWN
    minutes, seconds, millis_of = _MINUTE_NS, _SECONDS_NS, _MILLIS_NS
    limit, direct = _SECOND_LIMIT, digits_checked or not _WIDENS
    # parse_line_part reads with orjson the short lines and the longer ones that are not
    # deep, up to the size it reads with parse_event
    wide = MAX_TEXT - newline
    shallow = shallow_bytes(newline, wide)
    low: float = -math.inf if cutoff is None else cutoff
    high: float = math.inf if guess is None else guess
    items: list[Any] = []
    times: list[int | None] = []
    add_item, add_time = items.append, times.append
    skipped = 0
    ts: int | None
    for part in parts:
        if part is None:
            skipped += 1
            continue
        size = len(part)
        if direct and (size <= shallow or (
            size <= wide and part.count(b"{") + part.count(b"[") <= _DEEP_OPENERS
        )):
            try:
                value = loads(part)
            except (ValueError, RecursionError):
                value = miss
            if value.__class__ is dict:
                kind = value.get("type")
                raw_time = value.get("timestamp")
                if (kind.__class__ is str and kind in known and raw_time.__class__ is str
                        and len(raw_time) == 24 and raw_time[19] == "." and raw_time[23] == "Z"):
                    minute = minutes.get(raw_time[:16])
                    second = seconds.get(raw_time[16:19])
                    millis = millis_of.get(raw_time[20:23])
                    if minute is not None and second is not None and millis is not None:
                        base = minute + second
                        session = value.get("session_id")
                        if 0 <= base < limit and (
                            session is None or (session.__class__ is str and session)
                        ):
                            ts = base + millis
                            if ts < low:
                                continue
                            if ts > high:
                                return items, times, skipped, True
                            add_item(value)
                            add_time(ts)
                            continue
        event = parse_line_part(part, digits_checked, newline)
        if event is None:
            if part and not part.isspace():
                skipped += 1
            continue
        ts = event.timestamp
        if ts is not None:
            if ts < low:
                continue
            if ts > high:
                return items, times, skipped, True
        add_item(event)
        add_time(ts)
    return items, times, skipped, False


def block_event(item: Any, ts: int | None) -> LogEvent:
    """The event of an item of `parse_line_block` (an ordinary line's dict, or an event)."""
    if item.__class__ is dict:
        return LogEvent(item["type"], ts, item.get("session_id"), item, None)
    event: LogEvent = item
    return event
