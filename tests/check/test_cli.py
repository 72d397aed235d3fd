"""`mgt check` as a user runs it: a real `python -m mgt` process, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CASES = ROOT / "tests" / "cases"


def mgt(*args: str, cwd: Path = CASES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mgt", "check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )


def test_clean_file_prints_ok_and_exits_0() -> None:
    proc = mgt("domain_support_triage.mgt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok: domain_support_triage.mgt (4 states)\n"
    assert proc.stderr == ""


def test_warnings_are_printed_and_exit_0() -> None:
    proc = mgt("unhandled_events.mgt")
    assert proc.returncode == 0
    assert "warning: state 'test' has no transition for outcomes timeout, error" in proc.stdout
    assert proc.stdout.endswith("ok: unhandled_events.mgt (3 states, 3 warnings)\n")


def test_errors_are_rendered_exactly_and_exit_1() -> None:
    proc = mgt("syntax_missing_arrow.mgt")
    assert proc.returncode == 1
    assert proc.stdout == (
        "syntax_missing_arrow.mgt:5:13: error: expected '->' and a state name or 'when' "
        "after 'on done', found 'b'\n"
        "   5 |     on done b\n"
        "                   ^\n"
        "syntax_missing_arrow.mgt: 1 error\n"
    )
    assert proc.stderr == ""


def test_all_errors_of_a_file_at_once() -> None:
    proc = mgt("guard_types.mgt")
    assert proc.returncode == 1
    assert proc.stdout.count(": error: ") == 11
    assert proc.stdout.endswith("guard_types.mgt: 11 errors, 1 warning\n")


def test_several_files_exit_1_if_any_has_errors() -> None:
    proc = mgt("domain_nightly_quality.mgt", "retries.mgt", "domain_support_triage.mgt")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "ok: domain_nightly_quality.mgt (4 states)"
    assert lines[-1] == "ok: domain_support_triage.mgt (4 states)"
    assert "retries.mgt: 6 errors, 3 warnings" in lines


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.mgt", "mgt: missing.mgt: no such file\n"),
        ("support", "mgt: support: is a directory, not a .mgt file\n"),
    ],
)
def test_unreadable_paths_are_one_line_and_exit_2(path: str, message: str) -> None:
    proc = mgt("domain_support_triage.mgt", path)
    assert proc.returncode == 2
    assert proc.stderr == message
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == "ok: domain_support_triage.mgt (4 states)\n"


def test_no_file_is_a_usage_error() -> None:
    proc = mgt()
    assert proc.returncode == 2
    assert "the following arguments are required: FILE" in proc.stderr


def test_json_lists_every_diagnostic() -> None:
    proc = mgt("--json", "retries.mgt", "domain_support_triage.mgt")
    assert proc.returncode == 1
    found = json.loads(proc.stdout)
    assert len(found) == 9
    assert found[0] == {
        "file": "retries.mgt", "line": 9, "column": 11, "end_line": 9, "end_column": 13,
        "severity": "error", "message": "retry count must be between 0 and 10, got -1",
        "hint": None,
    }
    assert {d["severity"] for d in found} == {"error", "warning"}


def test_json_of_a_clean_file_is_an_empty_list() -> None:
    proc = mgt("--json", "domain_nightly_quality.mgt")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01\x02\xff\xfe garbage \x00" * 100,
        b"\xc3\x28 not utf-8",
        b"",
        b"machine m\nstate a:\n    on done when " + b"(" * 10_000 + b"x" + b")" * 10_000
        + b" -> b\n",
        b"machine m\nstate a:\n    run command \"" + b"x" * 1_000_000 + b"\n",
    ],
    ids=["binary", "utf8", "empty", "deep", "megabyte-line"],
)
def test_hostile_files_never_show_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "hostile.mgt"
    path.write_bytes(content)
    proc = mgt(str(path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{path}:")
    assert all(len(line) < 300 for line in proc.stdout.splitlines())


def test_bundled_machines_are_clean() -> None:
    machines = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "machines").glob("*.mgt"))
    assert "machines/analyze.mgt" in machines
    proc = mgt(*machines, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout
    assert ": error: " not in proc.stdout
