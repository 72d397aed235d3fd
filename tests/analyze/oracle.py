"""The analyzer's aggregation as it was before its line loop: one handler call per event.

The oracle for `tests/analyze/test_fused_feed.py`: `OracleAggregates.feed_all`
feeds events one at a time through straightforward handlers (the code
`Aggregates` had before `feed_parts` inlined them and began counting repeated
transitions in bulk), so the fast loop is checked against code that does not
share its shortcuts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mgt.analyze.aggregate import (
    BLOAT_MIN_PROMPT_TOKENS,
    BLOAT_RATIO,
    MAX_CONTEXTS,
    MAX_FIGURE,
    MAX_KEYS,
    MAX_TEMPLATES,
    Aggregates,
    ErrorStats,
    EventLike,
    PairStats,
    _context_name,
    _number,
)
from mgt.analyze.aggregate import _sample as _item_sample
from mgt.analyze.text import MAX_KEY_CHARS, error_template


def _sample(event: EventLike) -> dict[str, Any]:
    return _item_sample(event, event.timestamp)


class OracleAggregates(Aggregates):
    """`Aggregates` fed one event at a time by the handlers of before."""

    def __init__(self, latency_warning_ms: float, known_nodes: Iterable[str] | None = None
                 ) -> None:
        super().__init__(latency_warning_ms, known_nodes)
        self._handlers = {
            "llm_call": self._llm_call,
            "graph_transition": self._transition,
            "error": self._error_event,
        }

    def feed_all(self, events: Iterable[EventLike]) -> None:
        """`feed` for each event, with the per-event bookkeeping kept in locals (the hot loop)."""
        handlers = self._handlers
        by_type = self.by_type
        count = self.events
        first, last = self.first_ns, self.last_ns
        try:
            for event in events:
                count += 1
                kind = event.type
                by_type[kind] = by_type.get(kind, 0) + 1
                ts = event.timestamp
                if ts is not None:
                    if first is None or ts < first:
                        first = ts
                    if last is None or ts > last:
                        last = ts
                handler = handlers.get(kind)
                if handler is not None:
                    self.events = count  # handlers use it as the event's sequence number
                    handler(event)
        finally:
            self.events = count
            self.first_ns, self.last_ns = first, last

    def _llm_call(self, event: EventLike) -> None:
        fields = event.fields
        node = fields.get("node")  # _name(), inlined: this runs for every call
        if type(node) is not str or not node:
            node = None
        elif len(node) > MAX_KEY_CHARS:
            node = node[:MAX_KEY_CHARS]
        model = fields.get("model")  # _name(), inlined
        if type(model) is not str or not model:
            model = None
        elif len(model) > MAX_KEY_CHARS:
            model = model[:MAX_KEY_CHARS]
        stats = self._by_node.get(node) if node is not None else None  # the common case
        if stats is None:
            stats = self._llm_stats(node, model)
            if stats is None:
                self._overflowed("llm_keys")
                return
        if node is not None and node in self.entered:
            self.entered[node] += 1
        stats.calls += 1
        if model is not None:
            models = stats.models
            if model in models:
                models[model] += 1
            elif len(models) < MAX_CONTEXTS:
                models[model] = 1

        # JSON numbers in range take the fast test; anything else goes through _number.
        latency = fields.get("latency_ms")
        if not ((type(latency) is int or type(latency) is float) and 0 <= latency <= MAX_FIGURE):
            latency = _number(latency)
        prompt = fields.get("prompt_tokens")
        if not ((type(prompt) is int or type(prompt) is float) and 0 <= prompt <= MAX_FIGURE):
            prompt = _number(prompt)
        completion = fields.get("completion_tokens")
        if not (
            (type(completion) is int or type(completion) is float)
            and 0 <= completion <= MAX_FIGURE
        ):
            completion = _number(completion)
        if latency is None or prompt is None or completion is None:
            self.ignored += 1
        if prompt is not None:
            stats.prompt_n += 1
            stats.prompt_sum += prompt
        if completion is not None:
            stats.completion_n += 1
            stats.completion_sum += completion
        seq = self.events
        if latency is not None:
            stats.latency.add(latency)
            stats.latency_sum += latency
            if latency >= self.latency_warning_ms:
                stats.slow.add(latency)
                stats.slow_sum += latency
                if prompt is not None:
                    stats.slow_prompt_n += 1
                    stats.slow_prompt_sum += prompt
                if completion is not None:
                    stats.slow_completion_n += 1
                    stats.slow_completion_sum += completion
                stats.slow_samples.offer(latency, seq, _sample, event)
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
            stats.bloat_samples.offer(prompt, seq, _sample, event)

    def _transition(self, event: EventLike) -> None:
        fields = event.fields
        to = fields.get("to")  # _name(), inlined for both: this runs for every transition
        if type(to) is not str or not to:
            to = None
        elif len(to) > MAX_KEY_CHARS:
            to = to[:MAX_KEY_CHARS]
        source = fields.get("from")
        if type(source) is not str or not source:
            source = None
        elif len(source) > MAX_KEY_CHARS:
            source = source[:MAX_KEY_CHARS]
        if to is None or source is None:
            self.ignored += 1
        if to is not None and to in self.entered:
            self.entered[to] += 1
        if source is None:
            return
        # Every transition leaving `source` is in the rate's denominator, even one whose
        # `to` is unusable: it still left.
        leaving = self.leaving
        if source in leaving:
            leaving[source] += 1
        elif len(leaving) < MAX_KEYS:
            leaving[source] = 1
        else:
            self._overflowed("transition_sources")
            return
        if to is None:
            return
        failed = self._is_failure.get(to)
        if failed is None:
            lowered = to.lower()
            failed = "error" in lowered or "fail" in lowered
            if len(self._is_failure) < MAX_KEYS:
                self._is_failure[to] = failed
        if not failed:
            return
        pair = self.failures.get((source, to))
        if pair is None:
            if len(self.failures) >= MAX_KEYS:
                self._overflowed("failed_transitions")
                return
            pair = self.failures[(source, to)] = PairStats()
        pair.count += 1
        # The first five failures are the evidence (rank 0 for all: earliest wins).
        pair.samples.offer(0, self.events, _sample, event)

    def _error_event(self, event: EventLike) -> None:
        message = event.fields.get("message")
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
        ts = event.timestamp
        if ts is not None:
            if stats.first_ns is None or ts < stats.first_ns:
                stats.first_ns = ts
            if stats.last_ns is None or ts > stats.last_ns:
                stats.last_ns = ts
        context = _context_name(event.fields.get("context"))
        if context is not None:
            if context in stats.contexts or len(stats.contexts) < MAX_CONTEXTS:
                stats.contexts[context] = stats.contexts.get(context, 0) + 1
            else:
                stats.other_contexts += 1
        stats.samples.offer(0, self.events, _sample, event)
