"""Quantiles (exact, then a 1 % log histogram) and Samples (bounded top-k) in isolation."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable

import pytest

from mgt.analyze.sketch import EXACT_LIMIT, RELATIVE_ERROR, Quantiles, Samples


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_empty() -> None:
    assert Quantiles().quantile(0.95) is None


@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 100, EXACT_LIMIT])
def test_exact_while_small(n: int) -> None:
    rng = random.Random(n)
    values = [rng.uniform(0, 10_000) for _ in range(n)]
    q = Quantiles()
    for v in values:
        q.add(v)
    assert q.exact
    assert q.quantile(0.95) == nearest_rank(values, 0.95)
    assert (q.min, q.max, q.count) == (min(values), max(values), n)


@pytest.mark.parametrize("seed", range(5))
def test_within_the_relative_error_when_large(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(7, 1.2) for _ in range(20_000)] + [0.0] * 50
    q = Quantiles()
    for v in values:
        q.add(v)
    assert not q.exact
    for quantile in (0.5, 0.9, 0.95, 0.99):
        true = nearest_rank(values, quantile)
        assert abs(q.quantile(quantile) - true) <= RELATIVE_ERROR * true + 1e-9  # type: ignore[operator]


def test_memory_does_not_grow_with_the_stream() -> None:
    q = Quantiles()
    rng = random.Random(1)
    for _ in range(200_000):
        q.add(rng.uniform(1, 100_000))
    # ≈ ln(1e5) / ln(1.0202) buckets at most, whatever the number of values
    assert len(q._buckets) < 600


def test_zeros_and_constant_streams() -> None:
    q = Quantiles()
    for _ in range(1000):
        q.add(0)
    assert q.quantile(0.95) == 0
    c = Quantiles()
    for _ in range(1000):
        c.add(2500)
    assert c.quantile(0.95) == 2500  # clamped to the observed range


def test_samples_keep_the_top_k_and_the_earliest_on_ties() -> None:
    s = Samples(3)
    made: list[int] = []

    def maker(seq: int) -> Callable[[], int]:
        def make() -> int:
            made.append(seq)
            return seq
        return make

    for seq, rank in enumerate([5, 1, 9, 9, 3, 9, 7]):
        s.offer(rank, seq, maker(seq))
    assert s.items() == [2, 3, 5]  # the three 9s, earliest first
    assert len(s) == 3
    assert made == [0, 1, 2, 3, 5]  # once full, an item that would not be kept is never built


def test_first_k_when_every_rank_is_equal() -> None:
    s = Samples(5)
    for seq in range(100):
        s.offer(0, seq, functools.partial(int, seq))
    assert s.items() == [0, 1, 2, 3, 4]
