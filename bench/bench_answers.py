"""Benchmark: extracting the JSON of hostile model answers (fences, braces, deep nesting).

Goal: each well under a second for answers of about 300 KB, linear in their size.
Prints figures; it is not a test and asserts nothing.

    python bench/bench_answers.py
"""

from __future__ import annotations

import time

from mgt.executors.base import ExecResult
from mgt.runtime.outcome import classify

ANSWERS = {
    "320 KB of unclosed ```json fences": "```json " * 40_000,
    "fences each opening a brace": "```json\n{" * 30_000,
    "200 000 open braces": "{" * 200_000,
    "object nested 900 deep": '{"a": ' * 900 + "1" + "}" * 900,
    "object nested 60 000 deep, failing": '{"a": 1, "b": ' * 60_000 + "oops" + "}" * 60_000,
    "90 levels padded, failing at the end": (
        '{"pad": [' + "1," * 1500 + '1], "a": '
    ) * 90 + "oops" + "}" * 90,
}


def main() -> None:
    for name, text in ANSWERS.items():
        start = time.perf_counter()
        outcome = classify(ExecResult(text=text), schema=None, validate=None)
        took = time.perf_counter() - start
        print(f"{name:40} {len(text) / 1000:8.0f} KB {took:7.3f}s  {outcome.summary[:60]}")


if __name__ == "__main__":
    main()
