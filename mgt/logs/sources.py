"""A source spec (Loki URL, event file, `-`) → an `EventSource` that streams `LogEvent`s.

    source = open_source("events.jsonl.gz", since="24h")
    for event in source.iter_events({"llm_call"}):   # streaming, file order
        ...
    source.skipped                                    # malformed lines seen so far

Specs: `http://…`/`https://…` is a Loki server; `-` is stdin; anything else is
a file path. `None` means `GRAFANA_LOKI_URL` from the environment or
`.tidepool.env` (see `mgt.logs.settings`).

Files hold JSON lines of events, or the JSON array that `sleeptime-logs --json`
and `mgt logs --json` print (`[{"timestamp", "event"}]`, on one line or many);
gzip is recognised by its magic bytes. Both forms are streamed: lines are read
one at a time (a line longer than `MAX_LINE_BYTES` is skipped as malformed),
and the array is decoded element by element from 64 KiB chunks (an element
longer than `MAX_LINE_BYTES` is skipped likewise). Memory therefore stays
bounded by those limits, whatever the number of events.

`since` for a file counts back from the newest event *in the file*, not from
now, so yesterday's export analyses the same as it did yesterday. That takes
two passes: the first finds the newest timestamp (for ordinary lines it reads
only a leading `"timestamp"` field), the second yields the events. stdin is
first copied to an unnamed temporary file so it can be read twice. Events with
no usable timestamp are never dropped by `since`. For Loki, `since` counts
back from now.

Malformed lines, non-event JSON and events cut short are not fatal: each one
adds 1 to `skipped`; a file that cannot be read further (a truncated gzip)
stops the iteration and leaves a message in `notes`.
"""

from __future__ import annotations

import gzip
import heapq
import io
import json
import re
import shutil
import sys
import tempfile
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from mgt.errors import UsageError
from mgt.logs.events import (
    EVENT_TYPES,
    MAX_LINE_BYTES,
    LogEvent,
    _parse_iso_fast,
    parse_event,
    parse_event_line,
    parse_timestamp,
)

if TYPE_CHECKING:
    import httpx

    from mgt.logs.loki import LokiClient
    from mgt.logs.settings import LokiSettings

__all__ = [
    "EventFilter",
    "EventSource",
    "FileSource",
    "LokiSource",
    "open_source",
    "parse_duration",
]

_NS = 1_000_000_000
_UNITS = {"ms": 1_000_000, "s": _NS, "m": 60 * _NS, "h": 3600 * _NS, "d": 86400 * _NS,
          "w": 7 * 86400 * _NS}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
#: What `--since all` means for Loki, which needs a start time (Loki's default max range).
LOKI_ALL_NS = 30 * 86400 * _NS


def parse_duration(text: str) -> int | None:
    """A `--since` value (`30m`, `24h`, `7d`, `1h30m`, `all`) → nanoseconds, None for `all`."""
    cleaned = text.strip().lower()
    if cleaned in ("all", "0", "none"):
        return None
    pos, total = 0, 0.0
    while pos < len(cleaned):
        m = _DURATION.match(cleaned, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not cleaned or pos != len(cleaned) or total <= 0:
        raise UsageError(
            f"invalid duration {text!r}: use a number and a unit (s, m, h, d, w), "
            "e.g. 30m, 24h, 7d, or 'all'"
        )
    return int(total)


def _since_ns(since: str | int | None) -> int | None:
    if since is None or isinstance(since, int):
        return since
    return parse_duration(since)


@dataclass(frozen=True)
class EventFilter:
    """Which events a query wants: event types, one session, a latency floor for llm_call."""

    kinds: frozenset[str] | None = None
    session_id: str | None = None
    min_latency_ms: float | None = None

    @classmethod
    def build(
        cls,
        kinds: Iterable[str] | str | None = None,
        session_id: str | None = None,
        min_latency_ms: float | None = None,
    ) -> EventFilter:
        if isinstance(kinds, str):
            kinds = (kinds,)
        chosen = frozenset(kinds) if kinds is not None else None
        if chosen is not None:
            unknown = sorted(chosen - set(EVENT_TYPES) - {"other"})
            if unknown:
                raise UsageError(
                    f"unknown event type {unknown[0]!r}; expected one of "
                    + ", ".join((*EVENT_TYPES, "other"))
                )
        return cls(chosen or None, session_id, min_latency_ms)

    def matches(self, event: LogEvent) -> bool:
        if self.kinds is not None and event.type not in self.kinds:
            return False
        if self.session_id is not None and event.session_id != self.session_id:
            return False
        if self.min_latency_ms is not None:
            latency = event.number("latency_ms")
            if latency is None or latency < self.min_latency_ms:
                return False
        return True


class EventSource(ABC):
    """Events from somewhere; iterate with `iter_events`, or take the newest with `latest`.

    `skipped` counts the malformed lines or entries met by the latest iteration
    (they are not fatal);
    `notes` holds one-line messages about reading problems worth reporting;
    `description` names the source for messages (never with credentials).
    """

    description: str
    since_ns: int | None

    def __init__(self) -> None:
        self.skipped = 0
        self.notes: list[str] = []

    def iter_events(
        self,
        kinds: Iterable[str] | str | None = None,
        *,
        session_id: str | None = None,
        min_latency_ms: float | None = None,
    ) -> Iterator[LogEvent]:
        """Matching events, streamed oldest first for Loki and in file order for files."""
        return self._iterate(EventFilter.build(kinds, session_id, min_latency_ms))

    def latest(
        self,
        limit: int,
        kinds: Iterable[str] | str | None = None,
        *,
        session_id: str | None = None,
        min_latency_ms: float | None = None,
    ) -> list[LogEvent]:
        """The newest `limit` matching events, newest first (memory grows with `limit` only)."""
        if limit <= 0:
            raise UsageError(f"--limit must be a positive number, not {limit}")
        return self._latest(EventFilter.build(kinds, session_id, min_latency_ms), limit)

    @abstractmethod
    def _iterate(self, flt: EventFilter) -> Iterator[LogEvent]: ...

    @abstractmethod
    def _latest(self, flt: EventFilter, limit: int) -> list[LogEvent]: ...

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release what the source holds open (HTTP connections, spooled stdin)."""

    def __enter__(self) -> EventSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_EVERYTHING = EventFilter()

# ------------------------------------------------------------------------- files

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
_TS_PREFIX = re.compile(rb'\s*\{\s*"timestamp"\s*:\s*(?:"([^"\\]{1,64})"|(\d{1,20}))\s*,')


class FileSource(EventSource):
    """Events from a file of JSON lines or a JSON array (gzip or not), or stdin (`-`)."""

    def __init__(self, path: str, since_ns: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.since_ns = since_ns
        self.description = "stdin" if path == "-" else path
        self._spool: IO[bytes] | None = None
        if path != "-":
            p = Path(path)
            if not p.exists():
                raise UsageError(f"no such event file: {path}")
            if p.is_dir():
                raise UsageError(f"{path} is a directory, not an event file")
            try:
                with p.open("rb"):
                    pass
            except OSError as err:
                raise UsageError(f"cannot read {path}: {err.strerror or err}") from None

    # -- opening

    def _raw(self) -> io.RawIOBase:
        if self.path != "-":
            return io.FileIO(self.path, "rb")
        if self._spool is None:
            # stdin can be read only once; keep a copy on disk (not in memory) for re-reads.
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
            shutil.copyfileobj(sys.stdin.buffer, self._spool, _CHUNK)
        self._spool.seek(0)
        return _Unclosable(self._spool)

    def _open(self) -> io.BufferedReader[io.RawIOBase]:
        buffered = io.BufferedReader(self._raw(), _CHUNK)
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=buffered, mode="rb")
            return io.BufferedReader(cast(io.RawIOBase, gz), _CHUNK)
        return buffered

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    # -- reading

    def _is_array(self, fh: io.BufferedReader[io.RawIOBase]) -> bool:
        """Whether the file holds a JSON array (else JSON lines); skips a BOM."""
        head = fh.peek(_CHUNK)
        if head.startswith(_BOM):
            fh.read(len(_BOM))
            head = fh.peek(_CHUNK)
        return head.lstrip()[:1] == b"["

    def _units(self, fh: io.BufferedReader[io.RawIOBase]) -> Iterator[tuple[Any, int]]:
        """(line bytes or decoded array element, its size) for each unit; (None, 0) if malformed."""
        if self._is_array(fh):
            yield from _ArrayReader(fh)
        else:
            yield from _lines(fh)

    def _events(self) -> Iterator[LogEvent]:
        """Every event of the file in file order, `since` applied; malformed units counted."""
        self.skipped = 0
        cutoff = None
        if self.since_ns is not None:
            newest = self.newest_timestamp()
            cutoff = None if newest is None else newest - self.since_ns
        try:
            with self._open() as fh:
                if self._is_array(fh):
                    for unit, size in _ArrayReader(fh):
                        event = None if unit is None else parse_event(unit, size_hint=size)
                        if event is None:
                            self.skipped += 1
                        elif cutoff is None or event.timestamp is None \
                                or event.timestamp >= cutoff:
                            yield event
                    return
                # JSON lines, the common case: the loop of _lines and parse_event inlined.
                readline = fh.readline
                while True:
                    line = readline(MAX_LINE_BYTES + 1)
                    if not line:
                        break
                    if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                        _drop_rest_of_line(fh)
                        self.skipped += 1
                        continue
                    event = parse_event_line(line)
                    if event is None:
                        if not line.isspace():  # blank lines are no event, and not malformed
                            self.skipped += 1
                        continue
                    if cutoff is not None and event.timestamp is not None \
                            and event.timestamp < cutoff:
                        continue
                    yield event
        except (OSError, EOFError, zlib.error) as err:
            self.skipped += 1
            detail = str(err) or type(err).__name__
            self.notes.append(f"{self.description}: stopped reading: {detail}")

    def newest_timestamp(self) -> int | None:
        """The newest event timestamp in the file (a full pass; malformed units not counted)."""
        newest: int | None = None
        try:
            with self._open() as fh:
                for unit, size in self._units(fh):
                    ts = _quick_timestamp(unit, size)
                    if ts is not None and (newest is None or ts > newest):
                        newest = ts
        except (OSError, EOFError, zlib.error):
            pass  # reported by the pass that yields events
        return newest

    def _iterate(self, flt: EventFilter) -> Iterator[LogEvent]:
        if flt == _EVERYTHING:
            return self._events()  # no per-event filter call for the analyzer's pass
        return (event for event in self._events() if flt.matches(event))

    def _latest(self, flt: EventFilter, limit: int) -> list[LogEvent]:
        # A bounded min-heap on (time, position): the newest `limit` events; events with
        # no time count as oldest, later lines win ties.
        heap: list[tuple[int, int, LogEvent]] = []
        for seq, event in enumerate(self._iterate(flt)):
            key = (-1 if event.timestamp is None else event.timestamp, seq, event)
            if len(heap) < limit:
                heapq.heappush(heap, key)
            elif key[:2] > heap[0][:2]:
                heapq.heapreplace(heap, key)
        return [item[2] for item in sorted(heap, key=lambda k: k[:2], reverse=True)]


class _Unclosable(io.RawIOBase):
    """A view of the stdin spool that survives the reader being closed."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _drop_rest_of_line(fh: io.BufferedReader[io.RawIOBase]) -> None:
    """Read past the end of an overlong line without holding it."""
    while True:
        rest = fh.readline(_CHUNK)
        if not rest or rest.endswith(b"\n"):
            return


def _lines(fh: io.BufferedReader[io.RawIOBase]) -> Iterator[tuple[Any, int]]:
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            _drop_rest_of_line(fh)
            yield None, 0
            continue
        if line.isspace():
            continue
        yield line, len(line)


class _ArrayReader:
    """Decodes `[v, v, ...]` (possibly several arrays in a row) one element at a time.

    Text is read in 64 KiB chunks; an element cut by a chunk edge is retried
    with more text. An element is malformed when its decode error stays at the
    same place after more text arrived, at end of file, or when it grows past
    MAX_LINE_BYTES; reading then resumes at the next `, {`.
    """

    _RESYNC = re.compile(r",\s*(?=\{)")

    def __init__(self, fh: io.BufferedReader[io.RawIOBase]) -> None:
        self.text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.at_end = False

    def fill(self) -> bool:
        chunk = self.text.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def next_char(self) -> str:
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.fill():
                return ""

    def resync(self, at: int) -> bool:
        """Move past a malformed element to the next `, {`; False at end of input."""
        self.pos = max(self.pos, at) + 1
        while True:
            m = self._RESYNC.search(self.buf, self.pos)
            if m is not None:
                self.pos = m.end()
                return True
            # keep a little tail: the comma may be at the very end of this chunk
            self.pos = max(self.pos, len(self.buf) - 64)
            if not self.fill():
                return False

    def element(self) -> tuple[Any, int] | None:
        """Decode the element at `pos`: (value, size), or None when malformed (resynced)."""
        while True:
            start = self.pos
            try:
                value, end = self.decoder.raw_decode(self.buf, start)
            except json.JSONDecodeError as err:
                # A chunk edge shows up as an error at the very end of the text (or inside a
                # long string); anywhere else the element itself is broken.
                maybe_cut = err.pos >= len(self.buf) - 16 or err.msg.startswith("Unterminated")
                if not maybe_cut or self.eof or len(self.buf) - start > MAX_LINE_BYTES:
                    self.at_end = not self.resync(err.pos)
                    return None
                self.fill()
                continue
            except RecursionError:
                self.at_end = not self.resync(start)
                return None
            self.pos = end
            return value, end - start

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        in_array = False
        try:
            while True:
                ch = self.next_char()
                if not ch:
                    return
                if not in_array:
                    if ch != "[":
                        yield None, 0  # trailing garbage after the array
                        return
                    in_array = True
                    self.pos += 1
                elif ch == "]":
                    in_array = False
                    self.pos += 1
                else:
                    self.at_end = False
                    decoded = self.element()
                    yield decoded if decoded is not None else (None, 0)
                    if self.at_end:
                        return
        finally:
            self.text.detach()


def _quick_timestamp(unit: Any, size: int) -> int | None:
    """The timestamp of a unit for the `since` pass, reading as little as possible."""
    if unit is None:
        return None
    if isinstance(unit, bytes):
        m = _TS_PREFIX.match(unit)
        if m is not None and (b'"type"' in unit or b'"event_type"' in unit) \
                and unit.rstrip().endswith(b"}"):
            text = (m.group(1) if m.group(1) is not None else m.group(2)).decode("ascii", "replace")
            ts = None
            if len(text) >= 19 and text[4] == "-":
                ts = _parse_iso_fast(text)
            if ts is None:
                ts = parse_timestamp(text)
            if ts is not None:
                return ts
    event = parse_event(unit, size_hint=size)
    return None if event is None else event.timestamp


# -------------------------------------------------------------------------- Loki


class LokiSource(EventSource):
    """Events from a Loki server through `LokiClient` (paged, retried), within since..now."""

    def __init__(
        self,
        client: LokiClient,
        since_ns: int | None,
        now_ns: int | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.since_ns = since_ns
        self.end_ns = now_ns if now_ns is not None else time.time_ns()
        self.start_ns = self.end_ns - (since_ns if since_ns is not None else LOKI_ALL_NS)
        self.description = client.display_url
        self.last_query: str | None = None

    def _entries(self, flt: EventFilter, direction: str, page_size: int | None = None
                 ) -> Iterator[LogEvent]:
        from mgt.logs.loki import build_logql

        query = build_logql(flt.kinds, session_id=flt.session_id,
                            min_latency_ms=flt.min_latency_ms)
        self.last_query = query
        self.skipped = 0
        for entry in self.client.query_range(
            query, start_ns=self.start_ns, end_ns=self.end_ns, direction=direction,
            page_size=page_size,
        ):
            event = parse_event(entry.line, entry_ts=entry.timestamp, labels=entry.labels)
            if event is None:
                self.skipped += 1
                continue
            if flt.matches(event):
                yield event

    def _iterate(self, flt: EventFilter) -> Iterator[LogEvent]:
        return self._entries(flt, "forward")

    def _latest(self, flt: EventFilter, limit: int) -> list[LogEvent]:
        out: list[LogEvent] = []
        # Line filters are selective, so pages about the size of the answer waste little;
        # a type the LogQL cannot narrow just takes more pages.
        page = min(self.client.page_size, max(limit, 20))
        for event in self._entries(flt, "backward", page):
            out.append(event)
            if len(out) >= limit:
                break
        return out

    def close(self) -> None:
        self.client.close()


def open_source(
    spec: str | None,
    *,
    since: str | int | None = None,
    settings: LokiSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    now_ns: int | None = None,
    on_request: Callable[[str], None] | None = None,
) -> EventSource:
    """A source spec → an EventSource.

    `spec`: a Loki URL (http/https), a file path, `-` for stdin, or None for
    `GRAFANA_LOKI_URL` (environment, then `.tidepool.env`, then
    http://localhost:3100). `since`: a duration (`"24h"`, or nanoseconds as an
    int; None or `"all"` for everything). `settings` overrides the environment
    (credentials); `transport` is handed to httpx (tests); `on_request` is
    told about each Loki request (for `--verbose`).
    """
    since_ns = _since_ns(since)
    if spec is not None and not spec.startswith(("http://", "https://")):
        if not spec.strip():
            raise UsageError("empty --source: give a Loki URL or an event file")
        return FileSource(spec, since_ns)

    from mgt.logs.loki import LokiClient
    from mgt.logs.settings import load_settings

    if settings is None:
        settings = load_settings()
    url = spec if spec is not None else settings.url
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"GRAFANA_LOKI_URL must start with http:// or https://, not {url!r}")
    client = LokiClient(url, settings=settings, transport=transport, on_request=on_request)
    if spec is None and settings.url_from == "default":
        client.connect_hint = "set GRAFANA_LOKI_URL (or .tidepool.env) or pass --source URL|FILE"
    return LokiSource(client, since_ns, now_ns)
