"""Benchmark: rendering 8 000 diagnostics of one 8 000-line file as text, and as JSON.

Goal: text within a small factor of JSON (the source is split once per file, not
once per diagnostic). Prints figures; it is not a test and asserts nothing.

    python bench/bench_render.py [--errors N]
"""

from __future__ import annotations

import argparse
import json
import time

from mgt.check.cli import diagnostic_json
from mgt.diagnostics import Diagnostic, render_all
from mgt.span import Span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--errors", type=int, default=8000)
    n = parser.parse_args().errors
    source = "\n".join(f'state s{i}: run command "echo {i}"' for i in range(n))
    found = [Diagnostic.error(f"problem {i}", Span("m.mgt", i + 1, 7, i + 1, 9)) for i in range(n)]
    start = time.perf_counter()
    text = render_all(found, {"m.mgt": source})
    as_text = time.perf_counter() - start
    start = time.perf_counter()
    as_json = json.dumps([diagnostic_json(d) for d in found], indent=2)
    json_time = time.perf_counter() - start
    print(
        f"{n} diagnostics: text {as_text:.3f}s ({len(text)} chars), "
        f"JSON {json_time:.3f}s ({len(as_json)} chars)"
    )


if __name__ == "__main__":
    main()
