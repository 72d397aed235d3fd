"""Property tests: random and mutated machine sources never raise anything but mgt's own errors.

Mutations start from real machines (the bundled ones and the domain cases) so most
inputs get past the parser and exercise the checks, the type checker and the
dominator analysis with half-broken definitions of every kind.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mgt.check import check_source
from mgt.errors import MgtError
from mgt.syntax import parse_source

ROOT = Path(__file__).resolve().parent.parent.parent
CASES = ROOT / "tests" / "cases"
SOURCES = [
    (p.read_text(encoding="utf-8"), p.parent)
    for p in [*sorted((ROOT / "machines").glob("*.mgt")), *sorted(CASES.glob("domain_*.mgt"))]
]
VOCABULARY = [
    "machine", "import", "input", "start", "state", "final", "run", "formula", "polecat",
    "command", "builtin", "with", "output", "timeout", "retry", "on", "when", "->", "not",
    "and", "or", "in", "it", "true", "false", "null", "succeed", "fail", "feedback",
    "backoff", "prompt", ":", ",", ".", "=", "==", "<", "(", ")", "[", "]", "+", "-", "*",
    "/", "\n", "\n    ", "    ", "\t", '"', '"""', "#", "\\", "24h", "0", "-1", "1e999",
    "done", "error", "timeout", "schema_invalid", "guardrail", "count(", "len(", "exists(",
    "output.", "input.", "analyze.output", "PatternReport", "enum(", "\ufeff", "\x00", "é",
]
settings.register_profile("mgt", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mgt")


def check_never_raises(text: str, base: Path) -> None:
    result = check_source(text, "fuzz.mgt", base_dir=base)
    assert result.source  # always renderable
    result.render()
    for d in result.diagnostics:
        assert d.message and d.severity in ("error", "warning")
    if result.machine is None:
        assert not result.ok


def parse_raises_only_mgt_errors(text: str) -> None:
    with contextlib.suppress(MgtError):
        parse_source(text, "fuzz.mgt")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Path]:
    text, base = draw(st.sampled_from(SOURCES))
    level = draw(st.sampled_from(["token", "char"]))
    parts = re.split(r"(\s+)", text) if level == "token" else list(text)
    for _ in range(draw(st.integers(1, 5))):
        if not parts:
            break
        i = draw(st.integers(0, len(parts) - 1))
        op = draw(st.sampled_from(["delete", "insert", "swap", "duplicate"]))
        if op == "delete":
            del parts[i]
        elif op == "insert":
            parts.insert(i, draw(st.sampled_from(VOCABULARY)))
        elif op == "swap":
            j = draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
        else:
            parts.insert(i, parts[i])
    return "".join(parts), base


@given(mutated())
def test_mutated_machines_check_without_crashing(case: tuple[str, Path]) -> None:
    text, base = case
    check_never_raises(text, base)


@given(mutated())
def test_mutated_machines_parse_or_raise_mgt_errors(case: tuple[str, Path]) -> None:
    parse_raises_only_mgt_errors(case[0])


@given(st.lists(st.sampled_from(VOCABULARY) | st.text(max_size=3), max_size=60))
def test_random_token_soup(tokens: list[str]) -> None:
    text = "machine m\n" + " ".join(tokens)
    parse_raises_only_mgt_errors(text)
    check_never_raises(text, CASES)


@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    parse_raises_only_mgt_errors(text)
    check_never_raises(text, CASES)


@given(st.binary(max_size=300))
def test_random_bytes_through_the_file_reader(data: bytes) -> None:
    from mgt.syntax.parser import decode_source

    try:
        text = decode_source(data, "fuzz.mgt")
    except MgtError:
        return
    check_never_raises(text, CASES)
