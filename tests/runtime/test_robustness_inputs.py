"""Bad `--input` values and `--inputs` files, given to the real `python -m mgt exec`: every one
is a one-line `mgt:` message and exit 2, no run is created, and no value that is not JSON
(NaN, Infinity) ever reaches the journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.procs import mgt

MACHINE = """\
machine types "one input of each type"

input n: int = 1
input f: float = 1.0
input d: duration = 1h
input p: path = "."
input j: json = null

state a:
    run command "true"
    on done -> ok
    on error -> ok
    on timeout -> ok

final ok: succeed
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "types.mgt").write_text(MACHINE)
    return tmp_path


def refused(work: Path, *args: str) -> str:
    proc = mgt("exec", "types.mgt", "--runs-dir", "runs", *args, cwd=work)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mgt: "), proc.stderr
    assert not (work / "runs").exists() or not any((work / "runs").iterdir())
    return lines[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("n=" + "9" * 5000, "input 'n': expected an integer"),
        ("f=nan", "input 'f': expected a number, got 'nan' (not a finite number)"),
        ("f=inf", "input 'f': expected a number"),
        ("f=-1e999", "input 'f': expected a number"),
        ("j=NaN", "input 'j': expected a JSON value"),
        ("j=[1, Infinity]", "input 'j': expected a JSON value"),
        ("j=" + "[" * 50_000 + "]" * 50_000, "input 'j': expected a JSON value"),
    ],
    ids=["int-5000-digits", "nan", "inf", "minus-inf", "json-nan", "json-infinity", "json-deep"],
)
def test_a_bad_input_on_the_command_line(work: Path, value: str, expected: str) -> None:
    assert refused(work, "--input", value).startswith(f"mgt: {expected}")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("deep.json", '{"j": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("deep.toml", "j = " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("nan.json", '{"f": NaN}', "NaN"),
        ("inf.json", '{"j": {"x": [Infinity]}}', "Infinity"),
        ("nan.toml", "f = nan", "not a finite number"),
        ("nanjson.toml", "j = [1.0, inf]", "input 'j': expected a JSON value"),
        ("huge.json", '{"d": 1e400}', "input 'd': expected a duration"),
        ("negative.json", '{"d": -5}', "input 'd': expected a duration"),
        ("nul.json", '{"p": "a\\u0000b"}', "input 'p': expected a path"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "",
)
def test_a_bad_inputs_file(work: Path, name: str, text: str, expected: str) -> None:
    (work / name).write_text(text)
    line = refused(work, "--inputs", name)
    assert expected in line, line


def test_good_values_still_pass(work: Path) -> None:
    (work / "good.json").write_text('{"f": 2.5, "d": 90, "j": {"a": [1, 2.5, null]}}')
    proc = mgt("exec", "types.mgt", "--runs-dir", "runs", "--inputs", "good.json",
               "--input", "n=7", cwd=work)
    assert proc.returncode == 0, proc.stderr


def test_inputs_files_saved_with_a_byte_order_mark(work: Path) -> None:
    # "invalid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig)" / "invalid TOML: Invalid
    # statement" for files that look right in any editor
    (work / "in.json").write_bytes(b'\xef\xbb\xbf{"n": 2}')
    (work / "in.toml").write_bytes(b"\xef\xbb\xbfn = 3\n")
    for name in ("in.json", "in.toml"):
        proc = mgt("exec", "types.mgt", "--runs-dir", "runs", "--inputs", name, cwd=work)
        assert proc.returncode == 0, proc.stderr
