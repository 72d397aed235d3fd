"""A stream of numbers → bounded-memory summaries: `Quantiles` (p95) and `Samples` (top-k events).

`Quantiles` keeps the first `EXACT_LIMIT` values exactly (so small groups get an
exact nearest-rank p95) and then folds everything into a log-bucketed histogram
in the style of DDSketch: bucket `i` holds values in `(γ^(i-1), γ^i]` with
γ = (1 + α)/(1 − α), so any quantile it returns is within a relative error α
(1 %) of a true value of the stream. Its size is bounded by the number of
buckets that span the value range (≈ 1,400 for 1 ms … 10^12 ms), not by the
number of values.

`Samples` keeps the `k` best events seen under a ranking (e.g. the slowest
calls), or the first `k` when every rank is equal; ties go to the earlier event.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import truediv
from typing import Any

__all__ = ["EXACT_LIMIT", "RELATIVE_ERROR", "Quantiles", "Samples"]

EXACT_LIMIT = 256
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)


class Quantiles:
    """Nearest-rank quantiles of non-negative numbers in bounded memory."""

    __slots__ = ("_buckets", "_exact", "_zeros", "count", "max", "min")

    def __init__(self) -> None:
        self._exact: list[float] | None = []
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) > EXACT_LIMIT:
                self._exact = None
                for v in exact:
                    self._bucket(v)
        elif value > 0:  # _bucket(value), inlined: this runs for every value past the first 256
            index = math.ceil(math.log(value) / _LOG_GAMMA)
            buckets = self._buckets
            buckets[index] = buckets.get(index, 0) + 1
        else:
            self._zeros += 1

    def add_many(self, values: Sequence[float]) -> None:
        """`add` for each value in order, the histogram's part counted in one go."""
        exact = self._exact
        if not values:
            return
        if (exact is not None and len(exact) + len(values) > EXACT_LIMIT) or (
            exact is None and min(values) <= 0
        ):
            for value in values:
                self.add(value)
            return
        self.count += len(values)
        low, high = min(values), max(values)  # the first of equal values, as `add` keeps
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        if exact is not None:
            exact.extend(values)
            return
        buckets = self._buckets
        for index, n in Counter(
            map(math.ceil, map(truediv, map(math.log, values), repeat(_LOG_GAMMA)))
        ).items():
            buckets[index] = buckets.get(index, 0) + n

    def _bucket(self, value: float) -> None:
        if value <= 0:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / _LOG_GAMMA)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    @property
    def exact(self) -> bool:
        """True while every value is still kept (the quantiles are exact)."""
        return self._exact is not None

    def quantile(self, q: float) -> float | None:
        """The nearest-rank `q` quantile (0 < q ≤ 1), or None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        if self._exact is not None:
            return sorted(self._exact)[rank - 1]
        if rank <= self._zeros:
            return 0.0
        seen = self._zeros
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                return min(max(estimate, self.min), self.max)
        return self.max  # unreachable: the buckets hold every value


class Samples:
    """The `k` highest-ranked items of a stream (first seen wins ties), built lazily.

    `offer(rank, seq, make, *args)` calls `make(*args)` only when the item is
    kept, so a costly conversion (bounding a sample event) runs for few events.
    """

    __slots__ = ("_heap", "floor", "k")

    def __init__(self, k: int = 5) -> None:
        self.k = k
        # min-heap of (rank, -seq, item): the root is the weakest kept item;
        # among equal ranks the latest is weakest, so earlier events stay.
        self._heap: list[tuple[float, int, Any]] = []
        #: No item ranked below this is kept: a caller may skip `offer` for those (the
        #: weakest kept rank once k items are kept, -inf before).
        self.floor = -math.inf

    def would_keep(self, rank: float, seq: int) -> bool:
        heap = self._heap
        return len(heap) < self.k or (rank, -seq) > heap[0][:2]

    def offer(self, rank: float, seq: int, make: Callable[..., Any], *args: Any) -> None:
        """Keep `make(*args)` if (rank, seq) makes the top k; `make` is not called otherwise."""
        heap = self._heap
        if len(heap) < self.k:
            heapq.heappush(heap, (rank, -seq, make(*args)))
        elif (rank, -seq) > heap[0][:2]:
            heapq.heapreplace(heap, (rank, -seq, make(*args)))
        else:
            return
        if len(heap) >= self.k:
            self.floor = heap[0][0]

    def items(self) -> list[Any]:
        """Kept items, highest rank first, then earliest first."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]

    def __len__(self) -> int:
        return len(self._heap)
