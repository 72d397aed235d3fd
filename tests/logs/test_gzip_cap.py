"""A .gz event file that expands far past its size (a gzip bomb) stops with one clear error."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mgt.errors import UsageError
from mgt.logs.sources import GZIP_MIN_CAP, FileSource, gzip_cap

from .helpers import make_events

ROOT = Path(__file__).resolve().parents[2]


def bomb(path: Path, size: int, head: bytes = b"") -> Path:
    """`head`, then one line of `size` zeros (skipped as overlong, read in large chunks)."""
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(head)
        chunk = b"0" * (1 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
    return path


def events_head(count: int) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in make_events(count))


def test_the_cap_is_a_ratio_of_the_compressed_size_with_a_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MGT_GZIP_MAX_BYTES", raising=False)
    assert gzip_cap(1000) == GZIP_MIN_CAP
    assert gzip_cap(10 << 20) == 200 * (10 << 20)


def test_a_gzip_bomb_stops_with_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MGT_GZIP_MAX_BYTES", raising=False)
    path = bomb(tmp_path / "bomb.jsonl.gz", GZIP_MIN_CAP + (8 << 20), events_head(3))
    assert path.stat().st_size * 200 < GZIP_MIN_CAP  # the floor is the cap here
    source = FileSource(str(path))
    seen = []
    with pytest.raises(UsageError) as caught:
        for event in source.iter_events():
            seen.append(event)
    assert len(seen) == 3  # what came before the cap was read
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"{path}: decompresses to more than {GZIP_MIN_CAP:,} bytes, far more than its size "
        "suggests (a gzip bomb?); stopped reading. Set MGT_GZIP_MAX_BYTES to a larger "
        "number of bytes if the file is genuine"
    )


def test_since_on_a_bomb_stops_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGT_GZIP_MAX_BYTES", str(1 << 20))
    path = bomb(tmp_path / "bomb.gz", 4 << 20)
    with pytest.raises(UsageError, match="decompresses to more than 1,048,576 bytes"):
        list(FileSource(str(path), since_ns=3600 * 10**9).iter_events())


def test_the_cap_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = bomb(tmp_path / "big.gz", 4 << 20, events_head(5))
    monkeypatch.setenv("MGT_GZIP_MAX_BYTES", str(8 << 20))
    assert len(list(FileSource(str(path)).iter_events())) == 5
    monkeypatch.setenv("MGT_GZIP_MAX_BYTES", str(2 << 20))
    with pytest.raises(UsageError):
        list(FileSource(str(path)).iter_events())
    monkeypatch.setenv("MGT_GZIP_MAX_BYTES", "lots")
    with pytest.raises(UsageError, match="MGT_GZIP_MAX_BYTES must be a number of bytes"):
        list(FileSource(str(path)).iter_events())


def test_an_ordinary_gzip_file_reads_whole(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MGT_GZIP_MAX_BYTES", raising=False)
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(events_head(500))
    assert len(list(FileSource(str(path)).iter_events())) == 500


def test_the_cli_prints_one_line_and_fails(tmp_path: Path) -> None:
    path = bomb(tmp_path / "bomb.jsonl.gz", 4 << 20, events_head(2))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MGT_GZIP_MAX_BYTES": str(1 << 20)}
    for stdin in (None, path):
        args = ["--source", "-" if stdin else str(path)]
        with open(stdin or os.devnull, "rb") as fh:
            result = subprocess.run(
                [sys.executable, "-m", "mgt", "logs", "errors", "--since", "all", *args],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=fh,
            )
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "decompresses to more than 1,048,576 bytes" in lines[0]
        assert "Traceback" not in result.stderr
