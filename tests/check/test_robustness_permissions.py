"""`mgt check` on definitions a user cannot read: the unreadable directory is named, never
reported as if it were empty (every formula in it 'unknown')."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent.parent / "cases"


def as_unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("mode", [0o000, 0o311], ids=["no-access", "no-listing"])
def test_an_unreadable_import_directory_is_named(tmp_path: Path, mode: int) -> None:
    shutil.copytree(CASES / "support", tmp_path / "support")
    shutil.copy(CASES / "domain_support_triage.mgt", tmp_path / "triage.mgt")
    formulas = tmp_path / "support" / "formulas"
    formulas.chmod(mode)
    try:
        proc = subprocess.run(
            [*as_unprivileged(), sys.executable, "-m", "mgt", "check", "triage.mgt"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(CASES.parent.parent)},
        )
    finally:
        formulas.chmod(0o755)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "formulas" in proc.stdout and "Permission denied" in proc.stdout, proc.stdout
    assert "unknown formula" not in proc.stdout, proc.stdout
