"""Rendering many diagnostics: each file's source is split into lines once, not per diagnostic."""

from __future__ import annotations

from typing import Any

from mgt.check.cli import _print_result
from mgt.check.result import CheckResult
from mgt.diagnostics import Diagnostic, render_all
from mgt.span import Span


class CountingSource(str):
    """A source text that counts how often it is split (the renderer's only per-file cost)."""

    splits = 0

    def split(self, *args: Any, **kwargs: Any) -> list[str]:
        type(self).splits += 1
        return super().split(*args, **kwargs)


def _many(file: str, count: int) -> list[Diagnostic]:
    return [Diagnostic.error(f"problem {i}", Span.point(file, i + 1, 1)) for i in range(count)]


def test_render_all_splits_each_source_once() -> None:
    CountingSource.splits = 0
    text = CountingSource("\n".join(f"line {i}" for i in range(500)))
    out = render_all(_many("m.mgt", 500), {"m.mgt": text})
    assert CountingSource.splits == 1
    assert "m.mgt:500:1: error: problem 499\n 500 | line 499\n" in out
    assert out.endswith("500 errors, 0 warnings")


def test_check_output_splits_the_source_once(capsys: Any) -> None:
    CountingSource.splits = 0
    text = CountingSource("\n".join(f"line {i}" for i in range(300)))
    result = CheckResult("m.mgt", text, None, _many("m.mgt", 300))
    _print_result(result)
    out = capsys.readouterr().out
    assert CountingSource.splits == 1
    assert "m.mgt:300:1: error: problem 299\n 300 | line 299\n" in out
