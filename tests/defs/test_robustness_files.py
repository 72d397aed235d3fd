"""Definition files as editors save them, checked by the real `python -m mgt check`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).resolve().parent.parent / "cases"
BOM = b"\xef\xbb\xbf"


def test_definitions_saved_with_a_byte_order_mark_load(tmp_path: Path) -> None:
    # Notepad and some IDEs start UTF-8 files with a BOM: a .mgt with one was accepted, but
    # its polecats, formulas and schemas failed as "invalid TOML: Invalid statement" at 1:1
    shutil.copytree(CASES / "support", tmp_path / "support")
    shutil.copy(CASES / "domain_support_triage.mgt", tmp_path / "triage.mgt")
    for path in (tmp_path / "support").rglob("*.*"):
        path.write_bytes(BOM + path.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "mgt", "check", "triage.mgt"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: triage.mgt")
