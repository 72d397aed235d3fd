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
two passes: the first finds the newest timestamp of the events the second
will yield, exactly, while decoding almost no line (it scans blocks of lines
for a leading `"timestamp"` and decodes only the line with the greatest one;
see `_newest_in_block`), the second yields the events. A reader that can start
over (the analyzer) sets `tail_first`: the newest time is then taken from the
file's last lines, every event kept is checked against it, and the first newer
one raises `NewerThanTail` (the reader starts again with the exact pass), so a
time-ordered file is read once. stdin is
first copied to an unnamed temporary file so it can be read twice. Events with
no usable timestamp are never dropped by `since`. For Loki, `since` counts
back from now.

Malformed lines, non-event JSON and events cut short are not fatal: each one
adds 1 to `skipped`; a file that cannot be read further (a truncated gzip)
stops the iteration and leaves a message in `notes`. A gzip file that expands
to more than `GZIP_MAX_RATIO` times its size (and past `GZIP_MIN_CAP`), as a
crafted one can, is a UsageError instead: reading stops there
(`MGT_GZIP_MAX_BYTES` sets the cap in bytes).
"""

from __future__ import annotations

import gzip
import heapq
import io
import json
import os
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
from typing import IO, TYPE_CHECKING, Any

from mgt.errors import UsageError
from mgt.logs.events import (
    EVENT_TYPES,
    MAX_LINE_BYTES,
    LogEvent,
    block_event,
    has_long_digit_run,
    ordinary_time_text,
    parse_event,
    parse_event_line,
    parse_line_block,
    parse_line_part,
    parse_timestamp,
)

if TYPE_CHECKING:
    import httpx

    from mgt.logs.loki import LokiClient
    from mgt.logs.settings import LokiSettings

__all__ = [
    "BlockParser",
    "EventFilter",
    "EventSource",
    "FileSource",
    "LokiSource",
    "NewerThanTail",
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
_BLOCK = 1 << 16


#: (parts, digits checked, newline, cutoff, guess) → (items, times, skipped, newer): see
#: `parse_line_block`.
BlockParser = Callable[
    [list[bytes | None], bool, bool, int | None, int | None],
    tuple[list[Any], list[int | None], int, bool],
]


class FileSource(EventSource):
    """Events from a file of JSON lines or a JSON array (gzip or not), or stdin (`-`)."""

    def __init__(self, path: str, since_ns: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.since_ns = since_ns
        # Take `since`'s newest time from the file's last lines (see `tail_newest`) and raise
        # NewerThanTail from the iteration if an event proves it wrong; for a reader that
        # can start again (the analyzer), which then does, with the exact scan.
        self.tail_first = False
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
        raw = self._raw()
        buffered = io.BufferedReader(raw, _CHUNK)
        if buffered.peek(2)[:2] == _GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=buffered, mode="rb")
            capped = _CappedGzip(gz, gzip_cap(_size_of(raw)), self.description)
            return io.BufferedReader(capped, _CHUNK)
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

    def _events(self) -> Iterator[LogEvent]:
        """Every event of the file in file order, `since` applied; malformed units counted."""
        for items, times in self.event_blocks():
            for item, ts in zip(items, times, strict=True):
                yield item if item.__class__ is not dict else block_event(item, ts)

    def event_blocks(
        self, parse: BlockParser = parse_line_block, *, check_digits: bool = True
    ) -> Iterator[tuple[list[Any], list[int | None]]]:
        """The events `iter_events()` yields (no filter), a block of lines at a time.

        Each block is (items, times), as `parse_line_block` gives them: an item is
        a `LogEvent`, or the dict an ordinary line decodes to (its event is
        `block_event(item, time)`), so that a reader of every event need not
        build an object per line. `skipped`, `notes`, `since` and `tail_first`
        behave as for `iter_events`. `parse` reads a JSON-lines file's blocks in
        place of `parse_line_block`, with the same arguments and results: the
        analyzer's feeds its aggregates and returns no items. Without
        `check_digits`, blocks are not searched for long digit runs (they are
        said unchecked), for a parser that needs no such check.
        """
        self.skipped = 0
        cutoff = None
        guess = None  # the tail's newest time, trusted until an event is newer
        if self.since_ns is not None:
            if self.tail_first:
                guess = self.tail_newest()
            newest = guess if guess is not None else self.newest_timestamp()
            cutoff = None if newest is None else newest - self.since_ns
        try:
            with self._open() as fh:
                if self._is_array(fh):
                    yield from self._array_blocks(fh, cutoff, guess)
                    return
                # JSON lines, the common case: blocks of whole lines, each line parsed as
                # readline would cut it (see _line_parts), the digit check once a block.
                for parts, newline, digits_checked in _line_parts(fh, check_digits):
                    # A block's lines parsed in one call: the per-line call and lookups
                    # cost about a tenth of the reading, an event object per line more.
                    items, times, skipped, newer = parse(
                        parts, digits_checked, newline, cutoff, guess)
                    self.skipped += skipped
                    if items:
                        yield items, times
                    if newer:
                        self._not_ordered()
        except (OSError, EOFError, zlib.error) as err:
            self.skipped += 1
            detail = str(err) or type(err).__name__
            self.notes.append(f"{self.description}: stopped reading: {detail}")

    def _array_blocks(
        self, fh: io.BufferedReader[io.RawIOBase], cutoff: int | None, guess: int | None
    ) -> Iterator[tuple[list[Any], list[int | None]]]:
        """`event_blocks` for a JSON array file: one event at a time."""
        for unit, size in _ArrayReader(fh):
            event = None if unit is None else parse_event(unit, size_hint=size)
            if event is None:
                self.skipped += 1
            elif cutoff is None or event.timestamp is None or event.timestamp >= cutoff:
                if guess is not None and event.timestamp is not None \
                        and event.timestamp > guess:
                    self._not_ordered()
                yield [event], [event.timestamp]

    def _not_ordered(self) -> None:
        self.tail_first = False
        raise NewerThanTail(f"{self.description}: an event is newer than the file's last lines")

    def tail_newest(self) -> int | None:
        """The newest event time among the last lines of a plain JSON-lines file, or None.

        At most the newest time of the file (its last lines are events the reading
        pass yields too); equal to it when the file is in time order. None for gzip,
        arrays, stdin, small files (the exact scan is cheap there) and a tail with no
        timed event.
        """
        if self.path == "-":
            return None
        try:
            with self._open() as fh:
                if not isinstance(fh.raw, io.FileIO) or self._is_array(fh):
                    return None
                size = os.fstat(fh.raw.fileno()).st_size
                if size <= 4 * _BLOCK:
                    return None
                fh.seek(size - _BLOCK)
                data = fh.read(_BLOCK)
        except (OSError, ValueError):
            return None
        start = data.find(b"\n") + 1  # the first line may be cut: it is left out
        if start <= 0:
            return None
        newest: int | None = None
        for line in _split_lines(data[start:]):
            if not line.isspace():
                event = parse_event_line(line)
                newest = _later(newest, None if event is None else event.timestamp)
        return newest

    def newest_timestamp(self) -> int | None:
        """The newest timestamp of the events in the file (`since` aside), or None.

        Exactly the largest `timestamp` of the events an unfiltered iteration
        yields, found without decoding most lines (see `_newest_in_block`).
        """
        newest: int | None = None
        done = 0  # bytes (after a BOM, decompressed) of the lines accounted for
        try:
            with self._open() as fh:
                if self._is_array(fh):
                    return _newest_of_units(_ArrayReader(fh))
                for block, size in _line_blocks(fh):
                    newest = _later(newest, _newest_in_block(block))
                    done += size
        except (OSError, EOFError, zlib.error):
            # A file that breaks off (a truncated gzip): the reading pass still yields the
            # lines before the break, and the block being read may have held some of them.
            newest = _later(newest, self._newest_after(done))
        return newest

    def _newest_after(self, offset: int) -> int | None:
        """The newest event time of the lines after `offset` bytes, read up to an error."""
        try:
            with self._open() as fh:
                self._is_array(fh)  # skips a BOM
                while offset > 0 and (read := len(fh.read(min(offset, _BLOCK)))):
                    offset -= read
                return _newest_of_units(_lines(fh))
        except (OSError, EOFError, zlib.error):
            return None  # reported by the pass that yields events

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


#: A .gz source may decompress to GZIP_MAX_RATIO times its size, never capped below
#: GZIP_MIN_CAP bytes; the MGT_GZIP_MAX_BYTES environment variable sets the cap instead.
GZIP_MAX_RATIO = 200
GZIP_MIN_CAP = 64 << 20


def gzip_cap(compressed: int | None) -> int:
    """How many decompressed bytes a gzip file of `compressed` bytes may yield."""
    import os

    configured = os.environ.get("MGT_GZIP_MAX_BYTES", "").strip()
    if configured:
        try:
            return max(int(configured), 1)
        except ValueError:
            raise UsageError(
                f"MGT_GZIP_MAX_BYTES must be a number of bytes, not {configured!r}"
            ) from None
    return max(GZIP_MIN_CAP, (compressed or 0) * GZIP_MAX_RATIO)


def _size_of(raw: io.RawIOBase) -> int | None:
    """The compressed size: the file's, or the stdin spool's."""
    import os

    inner = raw._inner if isinstance(raw, _Unclosable) else raw
    try:
        return os.fstat(inner.fileno()).st_size
    except (OSError, ValueError):
        return None


class _CappedGzip(io.RawIOBase):
    """A gzip stream that stops with a UsageError past `cap` decompressed bytes (a bomb)."""

    def __init__(self, inner: gzip.GzipFile, cap: int, description: str) -> None:
        self._inner = inner
        self._left = cap
        self._cap = cap
        self._description = description

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = self._inner.readinto(buffer)
        self._left -= size
        if self._left < 0:
            raise UsageError(
                f"{self._description}: decompresses to more than {self._cap:,} bytes, far more "
                "than its size suggests (a gzip bomb?); stopped reading. Set "
                "MGT_GZIP_MAX_BYTES to a larger number of bytes if the file is genuine"
            )
        return size

    def close(self) -> None:
        self._inner.close()
        super().close()
class NewerThanTail(Exception):
    """An iteration with `tail_first` met an event newer than the file's last lines.

    The events yielded so far used a `since` cutoff that was too early: start the
    iteration again (`tail_first` is now off, so it takes the exact newest time).
    """


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


def _line_parts(
    fh: io.BufferedReader[io.RawIOBase], check_digits: bool = True
) -> Iterator[tuple[list[bytes | None], bool, bool]]:
    """The rest of the file as (lines without their newline, had a newline, digits checked).

    Cut exactly as `readline(MAX_LINE_BYTES + 1)` cuts them, a block at a time: a
    line longer than MAX_LINE_BYTES (newline aside) is None and the rest of it is
    dropped; the file's last line, when it has no newline, comes alone with False.
    "Digits checked": the block holds no run of 19 digits (see `has_long_digit_run`);
    always False without `check_digits`.
    `read1` takes what one read of the underlying file gives, so a read that fails
    (a truncated gzip) loses what a readline would lose: the line it was in.
    """
    rest = b""
    dropping = False  # inside an overlong line, already reported
    while True:
        data = fh.read1(_BLOCK)
        if not data:
            if rest:
                yield ([rest] if len(rest) <= MAX_LINE_BYTES else [None]), False, \
                    check_digits and not has_long_digit_run(rest)
            return
        if dropping:
            newline = data.find(b"\n")
            if newline < 0:
                continue
            data, dropping = data[newline + 1 :], False
        end = data.rfind(b"\n")
        if end < 0:
            rest += data
            if len(rest) > MAX_LINE_BYTES:
                yield [None], True, check_digits
                rest, dropping = b"", True
            continue
        chunk = rest + data[:end]
        rest = data[end + 1 :]
        parts: list[bytes | None] = list(chunk.split(b"\n"))
        first = parts[0]
        if first is not None and len(first) > MAX_LINE_BYTES:  # only it can hold `rest`
            parts[0] = None
        yield parts, True, check_digits and not has_long_digit_run(chunk)


def _lines(fh: io.BufferedReader[io.RawIOBase]) -> Iterator[tuple[Any, int]]:
    """(line, its size) for each line, as the reading pass cuts them; (None, 0) if overlong."""
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


def _later(a: int | None, b: int | None) -> int | None:
    return a if b is None or (a is not None and a >= b) else b


def _newest_of_units(units: Iterable[tuple[Any, int]]) -> int | None:
    """The newest event time of `_lines` or `_ArrayReader` units, read up to an error."""
    newest: int | None = None
    try:
        for unit, size in units:
            if unit is not None:
                event = (parse_event_line(unit) if isinstance(unit, bytes)
                         else parse_event(unit, size_hint=size))
                newest = _later(newest, None if event is None else event.timestamp)
    except (OSError, EOFError, zlib.error):
        pass  # reported by the pass that yields events
    return newest


def _line_blocks(fh: io.BufferedReader[io.RawIOBase]) -> Iterator[tuple[bytes, int]]:
    """The rest of the file as blocks of about 64 KiB of whole lines, with the bytes they cover.

    Each block starts with a newline (the end of the line before it, or one
    added) and ends with one; the file's last line, when it has no newline,
    is a block of its own without one. A line longer than MAX_LINE_BYTES with
    no end in sight is dropped (the reading pass skips it too), so a block
    stays under 2.1 MiB.
    """
    rest = b""
    while True:
        data = fh.read(_BLOCK)
        if not data:
            if rest:
                yield b"\n" + rest, len(rest)
            return
        end = data.rfind(b"\n") + 1
        if end == 0:
            rest += data
            if len(rest) > MAX_LINE_BYTES + 1:
                dropped = len(rest)
                rest = b""
                while (line := fh.readline(_CHUNK)) and not line.endswith(b"\n"):
                    dropped += len(line)
                yield b"\n", dropped + len(line)
            continue
        yield b"\n" + rest + data[:end], len(rest) + end
        rest = data[end:]


# A line that starts with a canonical UTC "timestamp" key: `\n{"timestamp": "<time>"` (no
# space after "{": a line that is not JSON is read from its first '{"'), where
# <time> is YYYY-MM-DDTHH:MM:SS[.fraction] of a real calendar day (no 29-31 February, no
# 31 April..., no leap second), then Z or ±00:00. For these, text order is time order,
# and a time from _CANONICAL_LOW up to (not including) _CANONICAL_HIGH (10^20 ns) parses.
_TS_CANONICAL = re.compile(
    rb'\n[ \t]*\{"timestamp"[ \t]*:[ \t]*"('
    rb"[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    rb"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    rb"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    rb')(?:Z|[+-]00:00)"'
)
_CANONICAL_LOW, _CANONICAL_HIGH = b"1970-01-01T00:00:00", b"5138-11-16T09:46:40"
# A line that starts with any "timestamp" key whose value is a string without escapes
# (printable ASCII) or an integer.
_TS_ANY = re.compile(
    rb'\n[ \t]*\{"timestamp"[ \t]*:[ \t]*'
    rb'(?:"([\x20\x21\x23-\x5b\x5d-\x7e]{1,64})"|([0-9]{1,20})[ \t]*[,}])'
)
# \u0060-\u007f: an escape that could spell a letter of "timestamp" in a key.
_ESCAPED_LOWER = re.compile(rb"\\u00[67][0-9a-fA-F]")
_SMALL_BLOCK = 64  # lines: below this, a block is simply parsed line by line
# The same canonical time as a str of 24 characters, "YYYY-MM-DDTHH:MM:SS.mmmZ".
_CANONICAL_TEXT = re.compile(
    r"[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z"
)
_CANONICAL_LOW_TEXT, _CANONICAL_HIGH_TEXT = _CANONICAL_LOW.decode(), _CANONICAL_HIGH.decode()


def _newest_in_block(block: bytes) -> int | None:
    """The newest event time among a block's lines (as `_line_blocks` cuts them), or None.

    Exactly `max(parse_event_line(line).timestamp)` over the lines, but the
    lines are not decoded when each one starts with a `"timestamp"` whose value
    parses (`_TS_ANY`) and names no other `timestamp` key (the word appears
    once a line, and no key can spell it with \\u escapes). Such a line's
    event, if it is one, has exactly the time its leading value parses to, so
    the newest is the greatest of those times, provided its line is an event,
    which is checked by parsing that one line. When every time is canonical
    UTC (`_TS_CANONICAL`), text order is time order and even the parsing of
    times is left to the greatest. Otherwise the block is split in two, down
    to blocks small enough to parse line by line; a block where no line starts
    with a `"timestamp"` (the key last, say) is parsed line by line at once.
    """
    lines = block.count(b"\n") - 1
    if lines < _SMALL_BLOCK or _TS_ANY.search(block) is None:
        return _newest_of_lines(block)
    if block.count(b'"timestamp"') == lines and (
        b"\\" not in block or _ESCAPED_LOWER.search(block) is None
    ):
        times = _TS_CANONICAL.findall(block)
        if len(times) == lines:
            top = max(times)
            if min(times) >= _CANONICAL_LOW and top < _CANONICAL_HIGH:
                top_line = _line_with_time(block, top)
                event = None if top_line is None else parse_event_line(top_line)
                if event is not None:
                    return event.timestamp
        else:
            values = _leading_times(block, lines)
            if values is not None:
                newest = max(values)
                event = parse_event_line(_split_lines(block[1:])[values.index(newest)])
                if event is not None:
                    return event.timestamp
    middle = block.rfind(b"\n", 0, len(block) // 2)
    if middle <= 0:  # a first line longer than half the block
        middle = block.find(b"\n", len(block) // 2)
    return _later(_newest_in_block(block[: middle + 1]), _newest_in_block(block[middle:]))


def _newest_of_lines(block: bytes) -> int | None:
    """`_newest_in_block` by decoding every line (the block's digit check done once).

    A line that is an ordinary event (see `ordinary_time_text`) with a canonical
    UTC time in the range that parses is only compared as text — text order is
    time order there — and the greatest such text is parsed once at the end; any
    other line is parsed in full.
    """
    digits_checked = not has_long_digit_run(block)
    parts = block[1:].split(b"\n")
    unterminated = parts.pop()  # b"" when the block ends with a newline
    newest = None
    top = ""
    for part in parts:
        if part and not part.isspace():  # a blank line is no event
            text = ordinary_time_text(part, digits_checked)
            if text is not None and _CANONICAL_TEXT.fullmatch(text) \
                    and _CANONICAL_LOW_TEXT <= text < _CANONICAL_HIGH_TEXT:
                if text > top:
                    top = text
                continue
            event = parse_line_part(part, digits_checked, True)
            newest = _later(newest, None if event is None else event.timestamp)
    if unterminated and not unterminated.isspace():
        event = parse_line_part(unterminated, digits_checked, False)
        newest = _later(newest, None if event is None else event.timestamp)
    return newest if not top else _later(newest, parse_timestamp(top))


def _leading_times(block: bytes, lines: int) -> list[int] | None:
    """The time each line's leading `"timestamp"` parses to; None unless all lines have one."""
    found = _TS_ANY.findall(block)
    if len(found) != lines:
        return None
    values = []
    for text, digits in found:
        value = parse_timestamp(text.decode("ascii") if text else int(digits))
        if value is None:
            return None  # the event's time would come from elsewhere ("ts")
        values.append(value)
    return values


def _split_lines(data: bytes) -> list[bytes]:
    """Lines split at \\n only, each keeping its \\n (as readline cuts them)."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _line_with_time(block: bytes, time: bytes) -> bytes | None:
    """The line of `block` whose leading canonical timestamp is `time` (with its newline)."""
    at = 0
    while (at := block.find(b'"' + time, at + 1)) >= 0:
        start = block.rfind(b"\n", 0, at)
        m = _TS_CANONICAL.match(block, start)
        if m is not None and m.start(1) == at + 1 and m.group(1) == time:
            end = block.find(b"\n", at)
            return block[start + 1 : end + 1 if end >= 0 else len(block)]
    return None


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
                            min_latency_ms=flt.min_latency_ms,
                            selector=self.client.settings.selector)
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
    if not (settings.user or settings.token or settings.bearer):
        from dataclasses import replace

        from mgt.logs.credentials import remembered_credentials

        given = remembered_credentials(url)  # taken out of the URL of a run input
        if given is not None:
            settings = replace(settings, user=given[0] or None, token=given[1])
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"GRAFANA_LOKI_URL must start with http:// or https://, not {url!r}")
    client = LokiClient(url, settings=settings, transport=transport, on_request=on_request)
    if spec is None and settings.url_from == "default":
        client.connect_hint = "set GRAFANA_LOKI_URL (or .tidepool.env) or pass --source URL|FILE"
    return LokiSource(client, since_ns, now_ns)
