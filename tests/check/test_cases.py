"""Golden fixtures: each tests/cases/<stem>.mgt is checked and rendered exactly as <stem>.expected.

To re-record after an intended change of wording, run with MGT_UPDATE_GOLDENS=1 and
review the diff of the .expected files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mgt.check import check_file

CASES = Path(__file__).resolve().parent.parent / "cases"
STEMS = sorted(p.stem for p in CASES.glob("*.mgt"))


def render_case(stem: str) -> str:
    result = check_file(f"{stem}.mgt")
    text = result.render()
    if result.ok:
        states = len(result.machine.states) if result.machine else 0
        text = (text + "\n" if text else "") + f"ok ({states} states)"
    return text + "\n"


@pytest.mark.parametrize("stem", STEMS)
def test_case(stem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES)
    for policy in ("MGT_MODEL", "MGT_MODEL_MAP", "MGT_ALLOW_NON_HAIKU"):  # the default policy
        monkeypatch.delenv(policy, raising=False)
    actual = render_case(stem)
    expected_path = CASES / f"{stem}.expected"
    if os.environ.get("MGT_UPDATE_GOLDENS"):
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.exists(), f"no {expected_path.name}; record it with MGT_UPDATE_GOLDENS=1"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_every_expected_file_has_a_case() -> None:
    orphans = sorted(p.name for p in CASES.glob("*.expected") if p.stem not in STEMS)
    assert orphans == []


def test_there_are_cases_for_both_outcomes() -> None:
    texts = [(CASES / f"{stem}.expected").read_text(encoding="utf-8") for stem in STEMS]
    assert sum("error:" in t for t in texts) >= 15
    assert sum(t.rstrip().endswith("states)") for t in texts) >= 3
