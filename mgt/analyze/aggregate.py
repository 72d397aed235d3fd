"""A stream of LogEvents → per-key aggregates (counts, sums, p95 sketches, ≤ 5 samples each).

`Aggregates.feed(event)` is the analyzer's hot path: it looks at one event,
updates a few numbers for its key and forgets it. Memory is bounded by the
number of keys, never by the number of events: each table holds at most
`MAX_KEYS` keys (error templates: `MAX_TEMPLATES`) and the events of any key
beyond that are counted in `overflow` instead (the report says so). Strings
used as keys are cut to `MAX_KEY_CHARS`.

Fields are read strictly: a number must be a JSON number (finite, ≥ 0,
≤ `MAX_FIGURE`), a name a non-empty JSON string. An event of a known type
whose fields do not qualify for a rule is counted in `ignored` and otherwise
left out — it never raises.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, Literal, Protocol

import msgspec

from mgt.analyze.sketch import Quantiles, Samples
from mgt.analyze.text import MAX_KEY_CHARS, bounded_event, error_template, truncate
from mgt.logs.events import (  # the ordinary line's reading, shared with parse_line_part
    _DEEP_OPENERS,
    _KNOWN,
    _MILLIS_Z_NS,
    _MINUTE_NS,
    _MISS,
    _SECOND_LIMIT,
    _SECONDS_NS,
    MAX_TEXT,
    _orjson_loads,
    parse_line_part,
    shallow_bytes,
)

__all__ = [
    "BLOAT_MIN_PROMPT_TOKENS",
    "BLOAT_RATIO",
    "MAX_KEYS",
    "MAX_TEMPLATES",
    "Aggregates",
    "ErrorStats",
    "EventLike",
    "LlmStats",
    "PairStats",
]

MAX_KEYS = 1000
MAX_TEMPLATES = 5000
MAX_CONTEXTS = 10  # distinct `context` values counted per error template
MAX_FIGURE = 1e12  # latencies / token counts above this are nonsense, not data
_MAX_INT_FIGURE = int(MAX_FIGURE)  # the same, for ints (compared faster with an int)
SAMPLES = 5

BLOAT_MIN_PROMPT_TOKENS = 3000
BLOAT_RATIO = 10
_BATCH = 256  # events fed to feed_parts at a time by feed_all
_QUIET_KEYS = 4 * MAX_KEYS  # (from, to) pairs remembered as only adding to counts
_PENDING_CALLS = 1024  # calls left pending (each holds its line's dict) before they count


class _Line(msgspec.Struct, gc=False):
    """The fields of an ordinary line the rules read, as msgspec decodes them (the rest skipped).

    Typed so that msgspec refuses what the loop would not read as it is: a type
    or time that is no str, a name that is no str (or null), a figure that is no
    int or float (a bool, 1e400); a refused line is read as before. A missing
    name or figure is None, as `dict.get` gives it. Where msgspec and `json`
    agree (checked in `tests/analyze/test_fused_feed.py`): the last of duplicate
    keys wins, escaped keys match, ints of any size are exact ints, floats are
    the same floats; msgspec refuses lone surrogate escapes and NaN. It does not
    check the UTF-8 of strings it skips, where `json` refuses the line and the
    general path may find no event (it reads the first '{"' of the line), so only
    ASCII lines, and others checked to be UTF-8 (`_is_utf8`), are decoded by it.
    """

    type: Literal["graph_transition", "llm_call", "user_action", "effect_execution", "error"]
    timestamp: str
    source: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    node: str | None = None
    model: str | None = None
    latency_ms: int | float | None = None
    prompt_tokens: int | float | None = None
    completion_tokens: int | float | None = None


_decode_line = msgspec.json.Decoder(_Line).decode


class EventLike(Protocol):
    """What the analyzer reads of an event (`mgt.logs.events.LogEvent` is one)."""

    @property
    def type(self) -> str: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def fields(self) -> Mapping[str, Any]: ...


def _number(value: Any) -> float | None:
    # Strict: JSON numbers only (not bools, not numeric strings), finite, 0 ≤ x ≤ MAX_FIGURE.
    kind = type(value)
    if kind is int or kind is float:
        if 0 <= value <= MAX_FIGURE:  # NaN fails both comparisons
            return value  # type: ignore[no-any-return]
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if 0 <= value <= MAX_FIGURE else None  # subclasses of int/float
    return None


def _sum(total: float, values: Iterable[int]) -> float:
    """`total` plus each of the int `values` in turn, as `+=` one by one would give it."""
    if total.__class__ is int:
        return total + sum(values)  # ints add exactly, in any order
    for value in values:
        total += value
    return total


def _name(value: Any) -> str | None:
    if type(value) is str and value:
        return value if len(value) <= MAX_KEY_CHARS else value[:MAX_KEY_CHARS]
    return None


def _sample(item: Any, ts: int | None) -> dict[str, Any]:
    """The sample of an event of `Aggregates.feed_parts`: an event, or an ordinary line.

    An ordinary line (bytes) is parsed again by `parse_line_part`, whose event is
    the one the general path gives: its fields are those the loop read, but for
    integers beyond 64 bits that some orjson releases read as floats, which no
    rule tells apart (they are out of range either way) but a sample shows.
    """
    from mgt.logs.events import format_timestamp

    if item.__class__ is bytes:
        item = parse_line_part(item, False, True)
    kind, session, fields = item.type, item.session_id, item.fields
    # type and (when known) the timestamp are shown once, outside the fields
    dropped = ("type", "event_type", "timestamp") if ts is not None else ("type", "event_type")
    shown = {k: v for k, v in fields.items() if k not in dropped}
    if session is not None and "session_id" not in shown:
        shown["session_id"] = session
    return bounded_event(kind, None if ts is None else format_timestamp(ts), shown)


@dataclass(slots=True)
class LlmStats:
    """llm_call figures for one node (or model, when calls carry no node)."""

    group_by: str  # "node" | "model" | "none"
    calls: int = 0
    latency: Quantiles = field(default_factory=Quantiles)
    latency_sum: float = 0
    prompt_n: int = 0
    prompt_sum: float = 0
    completion_n: int = 0
    completion_sum: float = 0
    models: dict[str, int] = field(default_factory=dict)
    # slow_llm: calls with latency ≥ T.latency_warning_ms
    slow: Quantiles = field(default_factory=Quantiles)
    slow_sum: float = 0
    slow_prompt_n: int = 0
    slow_prompt_sum: float = 0
    slow_completion_n: int = 0
    slow_completion_sum: float = 0
    slow_samples: Samples = field(default_factory=lambda: Samples(SAMPLES))
    # token_bloat: prompt ≥ 3000 and prompt ≥ 10 × completion
    bloat: int = 0
    bloat_prompt_sum: float = 0
    bloat_prompt_max: float = 0
    bloat_completion_sum: float = 0
    bloat_samples: Samples = field(default_factory=lambda: Samples(SAMPLES))
    name: str = ""  # the node, model or "unknown"
    # Calls of the block being fed, not yet counted (see `Aggregates._flush_calls`).
    pending: list[tuple[Any, ...]] = field(default_factory=list, repr=False, compare=False)


@dataclass(slots=True)
class PairStats:
    """Transitions from one node to one failure node."""

    count: int = 0
    samples: Samples = field(default_factory=lambda: Samples(SAMPLES))


@dataclass(slots=True)
class ErrorStats:
    """Error events sharing one message template."""

    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    contexts: dict[str, int] = field(default_factory=dict)
    other_contexts: int = 0
    samples: Samples = field(default_factory=lambda: Samples(SAMPLES))


class Aggregates:
    """Everything the five rules need, built from one pass over the events."""

    def __init__(
        self, latency_warning_ms: float, known_nodes: Iterable[str] | None = None,
        failure_nodes: Iterable[str] = (),
    ) -> None:
        self.latency_warning_ms = latency_warning_ms
        self.failure_nodes: tuple[str, ...] = tuple(failure_nodes)
        # cut like event names, so a very long known name can still match its events
        self.known_nodes: tuple[str, ...] = tuple(
            dict.fromkeys(n[:MAX_KEY_CHARS] for n in known_nodes or ())
        )
        self.entered: dict[str, int] = dict.fromkeys(self.known_nodes, 0)
        self.events = 0
        self.by_type: dict[str, int] = {}
        self.ignored = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.overflow: dict[str, int] = {}
        self.llm: dict[tuple[str, str], LlmStats] = {}  # (group_by, name) → stats
        self._by_node: dict[str, LlmStats] = {}  # node → its entry in `llm` (a faster lookup)
        self.leaving: dict[str, int] = {}  # from → transitions leaving it
        self.failures: dict[tuple[str, str], PairStats] = {}  # (from, to) → stats
        self.errors: dict[str, ErrorStats] = {}  # template → stats
        self._is_failure: dict[str, bool] = {}
        # (node, model) as logged → their group and model name, for calls fed in bulk
        self._known_calls: dict[tuple[Any, Any], tuple[LlmStats, str | None]] = {}
        self._waiting: list[LlmStats] = []  # the groups with pending calls, and how many wait
        self._pending = 0
        # (from, to) as logged → their names, for transitions that only add to counts
        self._quiet: dict[tuple[Any, Any], tuple[str | None, str | None]] = {}

    # ------------------------------------------------------------------ feeding

    def feed_all(self, events: Iterable[EventLike]) -> None:
        """`feed` for each event, in order."""
        batch: list[EventLike] = []
        for event in events:
            batch.append(event)
            if len(batch) >= _BATCH:
                self.feed_parts(batch)
                batch = []
        self.feed_parts(batch)

    def feed(self, event: EventLike) -> None:
        self.feed_all((event,))

    def feed_line_block(
        self,
        parts: list[bytes | None],
        digits_checked: bool,
        newline: bool,
        cutoff: int | None,
        guess: int | None,
    ) -> tuple[list[Any], list[int | None], int, bool]:
        """A block of a file's lines fed in order: a block parser for `FileSource.event_blocks`.

        Feeds the events `parse_line_block(parts, ...)` gives and returns what it
        returns, less the events: ([], [], skipped, newer). Calls may be left
        pending: `flush` once the last block is fed.
        """
        skipped, newer = self.feed_parts(parts, digits_checked, newline, cutoff, guess,
                                         hold=True)
        return [], [], skipped, newer

    def flush(self) -> None:
        """Count the calls `feed_parts(..., hold=True)` left pending: due before reading."""
        for stats in self._waiting:
            self._flush_calls(stats)
        self._waiting.clear()
        self._pending = 0

    def is_failure_node(self, node: str) -> bool:
        """Whether a transition to `node` is a failure: its name holds "error" or "fail" (any
        case), or it is one of `failure_nodes` (names or shell-style patterns)."""
        lowered = node.lower()
        if "error" in lowered or "fail" in lowered:
            return True
        from fnmatch import fnmatchcase

        return any(fnmatchcase(node, pattern) for pattern in self.failure_nodes)

    def feed_parts(
        self,
        parts: Sequence[Any],
        digits_checked: bool = False,
        newline: bool = False,
        cutoff: int | None = None,
        guess: int | None = None,
        *,
        hold: bool = False,
    ) -> tuple[int, bool]:
        """Events and lines in order; the analyzer's hot loop. Returns (skipped, newer).

        A part is an event (`EventLike`), or a line of an event file as
        `parse_line_block` reads it (bytes without the newline, None for one too
        long; `digits_checked`, `newline`, `cutoff` and `guess` as there, and
        (skipped, newer) as it returns them, the events before a newer one fed).
        The ordinary line (as `parse_line_block` reads it) is fed from the `_Line`
        msgspec decodes a UTF-8 line to (or else from the dict orjson decodes it
        to), with its time read through the minute cache (and the previous line's
        second): no event object (but for a last line of exactly `MAX_TEXT` bytes,
        which `_sample` could not parse again as it was read). Any other line is parsed by
        `parse_line_part` and fed as that event, so the result is that of feeding
        the events `parse_line_block` gives. The ordinary line is read with orjson
        even where `digits_checked` is False: an integer beyond 64 bits that
        orjson reads as a float is out of every rule's range either way, and a
        sample is made from the line parsed again (see `_sample`); a reader
        can therefore skip the digit check of its blocks. The handlers of the three types the
        rules read are inlined, with the bookkeeping in local variables: per
        event, this loop is most of the analysis. Calls whose node and model were
        seen before are counted in bulk (`_flush_calls`), at the end, or with
        `hold`, when `_PENDING_CALLS` wait or at `flush`, so that the bulk is large.
        """
        loads, miss, known, decode_line = _orjson_loads, _MISS, _KNOWN, _decode_line
        minutes, seconds, millis_of, limit = _MINUTE_NS, _SECONDS_NS, _MILLIS_Z_NS, _SECOND_LIMIT
        # Lines parse_line_part reads with orjson: short ones, and longer ones that are not
        # deep, up to the size it reads with parse_event (less one: `_sample` parses a line
        # again as one that had its newline) and too short to hold an integer longer than
        # `json` reads (which msgspec reads, where the general path finds no event)
        digits = sys.get_int_max_str_digits()
        wide, openers = MAX_TEXT - 1, _DEEP_OPENERS
        if digits:
            wide = min(wide, digits)
        shallow = shallow_bytes(newline, wide)  # lines not searched for "{" and "[" first
        low: float = -math.inf if cutoff is None else cutoff
        high: float = math.inf if guess is None else guess
        windowed = cutoff is not None or guess is not None
        last_prefix, last_base = "", 0  # the previous ordinary line's second, and its time
        skipped = 0
        newer = False
        transitions = calls = actions = effects = 0  # by_type's counts of the types with no
        # handler but the error's, kept here until the end
        by_type = self.by_type
        count = self.events
        # no time yet: bounds every time passes (times are ints, any size)
        first = self.first_ns if self.first_ns is not None else math.inf
        last = self.last_ns if self.last_ns is not None else -math.inf
        entered, by_node = self.entered, self._by_node
        leaving, is_failure, failures = self.leaving, self._is_failure, self.failures
        warning = self.latency_warning_ms
        most = _MAX_INT_FIGURE
        quiet = self._quiet
        seen: dict[tuple[Any, Any], int] = {}  # transitions of `quiet` keys, applied at the end
        known_calls = self._known_calls
        waiting = self._waiting  # the groups with pending calls
        pending_calls = self._pending
        quick: tuple[LlmStats, str | None] | None
        stats: LlmStats | None
        key: tuple[Any, Any] | None
        item: Any
        fields: Any
        value: Any
        kind: Any
        raw_time: Any
        ts: int | None
        try:
            for part in parts:
                if part.__class__ is bytes:
                    # ---------------------------------------------------- a line
                    # An ordinary line (as parse_line_part reads it) is read here: `ts`
                    # is its time, else -1 and the line is left to parse_line_part.
                    ts = -1
                    size = len(part)
                    if size <= shallow or (
                        size <= wide and part.count(b"{") + part.count(b"[") <= openers
                    ):
                        # A line of UTF-8 (ASCII, or checked) is decoded by msgspec into a
                        # `_Line` (only the fields the rules read, a known type); one it
                        # refuses, or an error (whose handler reads every field), by orjson
                        # into a dict, as before.
                        value = None
                        if part.isascii() or _is_utf8(part):
                            try:
                                value = decode_line(part)
                            except (msgspec.DecodeError, RecursionError):
                                pass
                            else:
                                kind, raw_time = value.type, value.timestamp
                        if value is None:
                            try:
                                value = loads(part)
                            except (ValueError, RecursionError):
                                value = miss
                            if value.__class__ is dict:
                                kind = value.get("type")
                                raw_time = value.get("timestamp")
                                # a known type (a str: no other JSON value is in `known`,
                                # and an unhashable one raises TypeError) and a str time
                                try:
                                    if kind not in known or raw_time.__class__ is not str:
                                        value = None
                                except TypeError:
                                    value = None
                            else:
                                value = None
                        if value is not None:
                            # parse_line_part's ordinary line: a known type and a canonical
                            # time "...:SS.mmmZ" (".mmmZ" from a table, so that the time is
                            # a str of 24 characters), its second remembered from the line
                            # before. The session is not looked at: parse_line_part hands
                            # over a line whose session_id is not a non-empty string, but
                            # the analyzer reads the session of an event only for a
                            # sample, from its fields, where the line has it anyway.
                            millis = millis_of.get(raw_time[19:])
                            if millis is not None:
                                prefix = raw_time[:19]
                                if prefix == last_prefix:
                                    ts = last_base + millis
                                else:
                                    minute = minutes.get(raw_time[:16])
                                    second = seconds.get(raw_time[16:19])
                                    if minute is not None and second is not None:
                                        base = minute + second
                                        if 0 <= base < limit:
                                            last_prefix, last_base = prefix, base
                                            ts = base + millis
                    if ts >= 0:
                        fields, item = value, part  # the line, for a sample
                    else:
                        event = parse_line_part(part, digits_checked, newline)
                        if event is None:
                            if part and not part.isspace():  # a blank line is no event
                                skipped += 1
                            continue
                        item, fields, kind, ts = event, event.fields, event.type, event.timestamp
                    if windowed and ts is not None:
                        if ts < low:
                            continue
                        if ts > high:
                            newer = True
                            break
                elif part is None:  # a line longer than MAX_LINE_BYTES
                    skipped += 1
                    continue
                else:
                    item, fields, kind, ts = part, part.fields, part.type, part.timestamp
                # ---------------------------------------------------------- the event
                count += 1
                if ts is not None:
                    if ts < first:
                        first = ts
                    if ts > last:
                        last = ts
                if kind == "graph_transition":
                    transitions += 1
                    # A (from, to) met before whose transitions only add to counts (not a
                    # failure, see `_TransitionKeys`) is counted here, applied at the end.
                    if fields.__class__ is _Line:
                        source, to = fields.source, fields.to
                    else:
                        source, to = fields.get("from"), fields.get("to")
                    key = (source, to)
                    try:
                        seen[key] += 1
                        continue
                    except KeyError:
                        if key in quiet:
                            seen[key] = 1
                            continue
                    except TypeError:  # an unhashable name: never quiet
                        key = None
                    if to.__class__ is not str or not to:  # _name(), inlined for both
                        to = None
                    elif len(to) > MAX_KEY_CHARS:
                        to = to[:MAX_KEY_CHARS]
                    if source.__class__ is not str or not source:
                        source = None
                    elif len(source) > MAX_KEY_CHARS:
                        source = source[:MAX_KEY_CHARS]
                    if to is None or source is None:
                        self.ignored += 1
                    if to is not None and to in entered:
                        entered[to] += 1
                    if source is None:
                        if key is not None:
                            self._quiet_transition(key, source, to)
                        continue
                    # Every transition leaving `source` is in the rate's denominator,
                    # even one whose `to` is unusable: it still left.
                    if source in leaving:
                        leaving[source] += 1
                    elif len(leaving) < MAX_KEYS:
                        leaving[source] = 1
                    else:
                        self._overflowed("transition_sources")
                        if key is not None:
                            self._quiet_transition(key, source, to)
                        continue
                    if to is None:
                        if key is not None:
                            self._quiet_transition(key, source, to)
                        continue
                    failed = is_failure.get(to)
                    if failed is None:
                        failed = self.is_failure_node(to)
                        if len(is_failure) < MAX_KEYS:
                            is_failure[to] = failed
                    if not failed:
                        if key is not None:
                            self._quiet_transition(key, source, to)
                        continue
                    pair = failures.get((source, to))
                    if pair is None:
                        if len(failures) >= MAX_KEYS:
                            self._overflowed("failed_transitions")
                            continue
                        pair = failures[(source, to)] = PairStats()
                    pair.count += 1
                    # The first five failures are the evidence (rank 0, so the earliest
                    # win: no later one is kept).
                    if pair.count <= SAMPLES:
                        pair.samples.offer(0, count, _sample, item, ts)
                elif kind == "llm_call":
                    calls += 1
                    # A call of a (node, model) met before whose figures are plain numbers
                    # waits in its group's `pending` list, counted at the end.
                    if fields.__class__ is _Line:
                        node, model = fields.node, fields.model
                        latency, prompt = fields.latency_ms, fields.prompt_tokens
                        completion = fields.completion_tokens
                    else:
                        node, model = fields.get("node"), fields.get("model")
                        latency, prompt = fields.get("latency_ms"), fields.get("prompt_tokens")
                        completion = fields.get("completion_tokens")
                    key = (node, model)
                    try:
                        quick = known_calls[key]
                    except KeyError:
                        quick = None
                    except TypeError:  # an unhashable name: never quick
                        quick = key = None
                    if (quick is not None and latency.__class__ is int
                            and prompt.__class__ is int and completion.__class__ is int
                            and 0 <= latency <= most and 0 <= prompt <= most
                            and 0 <= completion <= most):
                        stats, model = quick
                        pending = stats.pending
                        if not pending:
                            waiting.append(stats)
                        pending.append((latency, prompt, completion, count, item, ts, model))
                        pending_calls += 1
                        if pending_calls >= _PENDING_CALLS:
                            self.flush()
                            pending_calls = 0
                        continue
                    if node.__class__ is not str or not node:
                        node = None
                    elif len(node) > MAX_KEY_CHARS:
                        node = node[:MAX_KEY_CHARS]
                    if model.__class__ is not str or not model:
                        model = None
                    elif len(model) > MAX_KEY_CHARS:
                        model = model[:MAX_KEY_CHARS]
                    stats = by_node.get(node) if node is not None else None
                    if stats is None:
                        stats = self._llm_stats(node, model)
                        if stats is None:
                            self._overflowed("llm_keys")
                            continue
                    if stats.pending:  # the group's earlier calls first, in order
                        self._flush_calls(stats)
                    if key is not None and len(known_calls) < _QUIET_KEYS and all(
                        v.__class__ is not str or len(v) <= MAX_KEY_CHARS for v in key
                    ):
                        known_calls[key] = (stats, model)
                    if node is not None and node in entered:
                        entered[node] += 1
                    stats.calls += 1
                    if model is not None:
                        models = stats.models
                        if model in models:
                            models[model] += 1
                        elif len(models) < MAX_CONTEXTS:
                            models[model] = 1
                    # JSON numbers in range take the fast test; others go through _number.
                    if not ((latency.__class__ is int or latency.__class__ is float)
                            and 0 <= latency <= MAX_FIGURE):
                        latency = _number(latency)
                    if not ((prompt.__class__ is int or prompt.__class__ is float)
                            and 0 <= prompt <= MAX_FIGURE):
                        prompt = _number(prompt)
                    if not ((completion.__class__ is int or completion.__class__ is float)
                            and 0 <= completion <= MAX_FIGURE):
                        completion = _number(completion)
                    if latency is None or prompt is None or completion is None:
                        self.ignored += 1
                    if prompt is not None:
                        stats.prompt_n += 1
                        stats.prompt_sum += prompt
                    if completion is not None:
                        stats.completion_n += 1
                        stats.completion_sum += completion
                    if latency is not None:
                        stats.latency.add(latency)
                        stats.latency_sum += latency
                        if latency >= warning:
                            stats.slow.add(latency)
                            stats.slow_sum += latency
                            if prompt is not None:
                                stats.slow_prompt_n += 1
                                stats.slow_prompt_sum += prompt
                            if completion is not None:
                                stats.slow_completion_n += 1
                                stats.slow_completion_sum += completion
                            samples = stats.slow_samples
                            if latency >= samples.floor:
                                samples.offer(latency, count, _sample, item, ts)
                    if (
                        prompt is not None
                        and completion is not None
                        and prompt >= BLOAT_MIN_PROMPT_TOKENS
                        and prompt >= BLOAT_RATIO * completion
                    ):
                        stats.bloat += 1
                        stats.bloat_prompt_sum += prompt
                        stats.bloat_completion_sum += completion
                        if prompt > stats.bloat_prompt_max:
                            stats.bloat_prompt_max = prompt
                        samples = stats.bloat_samples
                        if prompt >= samples.floor:
                            samples.offer(prompt, count, _sample, item, ts)
                elif kind == "user_action":
                    actions += 1
                elif kind == "effect_execution":
                    effects += 1
                else:
                    by_type[kind] = by_type.get(kind, 0) + 1
                    if kind == "error":
                        if fields.__class__ is _Line:  # the error's handler reads every field
                            event = parse_line_part(item, digits_checked, newline)
                            fields = event.fields if event is not None else {}
                        self._error(fields, ts, count, item)
        finally:
            self._pending = pending_calls
            if not hold:
                self.flush()
            for name, counted in (("graph_transition", transitions), ("llm_call", calls),
                                  ("user_action", actions), ("effect_execution", effects)):
                if counted:
                    by_type[name] = by_type.get(name, 0) + counted
            self.events = count
            if first != math.inf:
                self.first_ns = int(first)
            if last != -math.inf:
                self.last_ns = int(last)
            if seen:
                self._apply_quiet(seen)
        return skipped, newer

    def _flush_calls(self, stats: LlmStats) -> None:
        """The group's pending calls, fed as the loop would have fed them one by one.

        Each is a call whose node and model were seen before (the group and the
        model's place in `models` are settled) and whose three figures are ints
        in range: the counts and sums add up in one go (ints: exactly, in any
        order; a sum that is already a float adds them one by one, in order), the
        histograms take them in bulk, and samples are offered in order.
        """
        pending = stats.pending
        if not pending:
            return
        stats.pending = []
        n = len(pending)
        latencies, prompts, completions, seqs, items, times, models = zip(*pending, strict=True)
        stats.calls += n
        if stats.group_by == "node" and stats.name in self.entered:
            self.entered[stats.name] += n
        kept = stats.models
        for model, calls in Counter(models).items():
            if model is not None and model in kept:
                kept[model] += calls
        stats.prompt_n += n
        stats.prompt_sum = _sum(stats.prompt_sum, prompts)
        stats.completion_n += n
        stats.completion_sum = _sum(stats.completion_sum, completions)
        stats.latency.add_many(latencies)
        stats.latency_sum = _sum(stats.latency_sum, latencies)
        warning = self.latency_warning_ms
        slow = [latency >= warning for latency in latencies]
        if any(slow):
            slow_latencies = list(compress(latencies, slow))
            stats.slow.add_many(slow_latencies)
            stats.slow_sum = _sum(stats.slow_sum, slow_latencies)
            stats.slow_prompt_n += len(slow_latencies)
            stats.slow_prompt_sum = _sum(stats.slow_prompt_sum, compress(prompts, slow))
            stats.slow_completion_n += len(slow_latencies)
            stats.slow_completion_sum = _sum(stats.slow_completion_sum,
                                             compress(completions, slow))
            samples = stats.slow_samples
            if max(slow_latencies) >= samples.floor:
                rows = zip(latencies, seqs, items, times, strict=True)
                for latency, seq, item, ts in compress(rows, slow):
                    if latency >= samples.floor:
                        samples.offer(latency, seq, _sample, item, ts)
        bloat = [prompt >= BLOAT_MIN_PROMPT_TOKENS and prompt >= BLOAT_RATIO * completion
                 for prompt, completion in zip(prompts, completions, strict=True)]
        if any(bloat):
            bloat_prompts = list(compress(prompts, bloat))
            stats.bloat += len(bloat_prompts)
            stats.bloat_prompt_sum = _sum(stats.bloat_prompt_sum, bloat_prompts)
            stats.bloat_completion_sum = _sum(stats.bloat_completion_sum,
                                              compress(completions, bloat))
            top = max(bloat_prompts)  # the first of equal ones, as the loop keeps
            if top > stats.bloat_prompt_max:
                stats.bloat_prompt_max = top
            samples = stats.bloat_samples
            if top >= samples.floor:
                rows = zip(prompts, seqs, items, times, strict=True)
                for prompt, seq, item, ts in compress(rows, bloat):
                    if prompt >= samples.floor:
                        samples.offer(prompt, seq, _sample, item, ts)

    def _quiet_transition(self, key: tuple[Any, Any], source: str | None, to: str | None) -> None:
        """Remember a (from, to) as logged whose transitions only add to counts.

        That is one that is no failure: a transition with the same two values then
        does exactly what this one did (its names are the same, the source was
        taken into `leaving` or not for good), which `_apply_quiet` repeats. Only
        names as long as a key are remembered, and `_QUIET_KEYS` of them.
        """
        if len(self._quiet) < _QUIET_KEYS and all(
            v.__class__ is not str or len(v) <= MAX_KEY_CHARS for v in key
        ):
            self._quiet[key] = (source, to)

    def _apply_quiet(self, seen: dict[tuple[Any, Any], int]) -> None:
        """What the `seen` transitions of remembered (from, to) do, n times each; then empty."""
        entered, leaving = self.entered, self.leaving
        for key, n in seen.items():
            source, to = self._quiet[key]
            if to is None or source is None:
                self.ignored += n
            if to is not None and to in entered:
                entered[to] += n
            if source is None:
                continue
            if source in leaving:
                leaving[source] += n
            else:
                self.overflow["transition_sources"] = (
                    self.overflow.get("transition_sources", 0) + n)
        seen.clear()

    def _overflowed(self, table: str) -> None:
        self.overflow[table] = self.overflow.get(table, 0) + 1

    def _llm_stats(self, node: str | None, model: str | None) -> LlmStats | None:
        """The stats of a call's group (node, else model), created on first sight; None if full."""
        if node is not None:
            key = ("node", node)
        elif model is not None:
            key = ("model", model)
        else:
            key = ("none", "unknown")
        stats = self.llm.get(key)
        if stats is None:
            if len(self.llm) >= MAX_KEYS:
                return None
            stats = self.llm[key] = LlmStats(group_by=key[0], name=key[1])
        if node is not None:
            self._by_node[node] = stats
        return stats

    def _error(self, fields: Mapping[str, Any], ts: int | None, seq: int, item: Any) -> None:
        message = fields.get("message")
        if type(message) is not str or not message.strip():
            self.ignored += 1
            return
        template = error_template(message)
        stats = self.errors.get(template)
        if stats is None:
            if len(self.errors) >= MAX_TEMPLATES:
                self._overflowed("error_templates")
                return
            stats = self.errors[template] = ErrorStats()
        stats.count += 1
        if ts is not None:
            if stats.first_ns is None or ts < stats.first_ns:
                stats.first_ns = ts
            if stats.last_ns is None or ts > stats.last_ns:
                stats.last_ns = ts
        context = _context_name(fields.get("context"))
        if context is not None:
            if context in stats.contexts or len(stats.contexts) < MAX_CONTEXTS:
                stats.contexts[context] = stats.contexts.get(context, 0) + 1
            else:
                stats.other_contexts += 1
        stats.samples.offer(0, seq, _sample, item, ts)


def _is_utf8(line: bytes) -> bool:
    """Whether `line` is valid UTF-8: msgspec checks only the strings it reads, not those it
    skips, where `json` refuses the whole line."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _context_name(value: Any) -> str | None:
    """An error's `context` as a short label: the string, or an object's node/state."""
    if isinstance(value, str) and value:
        return truncate(value, 80)
    if isinstance(value, dict):
        for key in ("node", "state", "node_context", "where"):
            inner = value.get(key)
            if isinstance(inner, str) and inner:
                return truncate(inner, 80)
    return None
