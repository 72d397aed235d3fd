"""`since` on a time-ordered file takes the newest time from the file's end, and stays exact.

With `tail_first`, a file source trusts the newest time of its last lines and
raises `NewerThanTail` as soon as an event proves it wrong; `analyze_source`
then analyzes again with the exact scan. Whatever the order of the file, the
report is the one the exact scan gives.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from mgt.analyze.analyzer import analyze_source, run_analysis
from mgt.logs.sources import FileSource, NewerThanTail
from tests.logs.helpers import make_events

N = 6000  # about 0.9 MB: many 64 KiB blocks


def write(path: Path, rows: list[dict[str, Any]], *, key_last: bool = False) -> Path:
    with path.open("w") as fh:
        for row in rows:
            if key_last:
                row = {**{k: v for k, v in row.items() if k != "timestamp"},
                       "timestamp": row["timestamp"]}
            fh.write(json.dumps(row) + "\n")
    return path


def exact_report(path: Path, since: str) -> dict[str, Any]:
    from mgt.logs.sources import parse_duration

    with FileSource(str(path), parse_duration(since)) as source:
        assert source.tail_first is False
        report = run_analysis(source.iter_events(), skipped=lambda: source.skipped,
                              source=source.description).report
    return clean(report)


def clean(report: dict[str, Any]) -> dict[str, Any]:
    report["metadata"].pop("generated_at")
    report["metadata"].pop("query_duration_ms")
    return report


def shuffled(rows: list[dict[str, Any]], newest_at: int) -> list[dict[str, Any]]:
    rows = list(rows)
    newest = rows.pop()
    rows.insert(newest_at, newest)
    return rows


CASES = {
    "ordered": lambda rows: rows,
    "newest first": lambda rows: shuffled(rows, 0),
    "newest in the middle": lambda rows: shuffled(rows, N // 2),
    "newest just before the tail": lambda rows: shuffled(rows, N - 400),
    "shuffled": lambda rows: random.Random(3).sample(rows, len(rows)),
}


@pytest.mark.parametrize("key_last", [False, True], ids=["timestamp-first", "timestamp-last"])
@pytest.mark.parametrize("case", list(CASES))
def test_analyze_since_gives_the_exact_scans_report(
    tmp_path: Path, case: str, key_last: bool
) -> None:
    rows = CASES[case](make_events(N, seed=5))
    path = write(tmp_path / "events.jsonl", rows, key_last=key_last)
    for since in ("30m", "1h"):
        report = clean(analyze_source(str(path), since=since).report)
        assert report == exact_report(path, since)
        assert 0 < report["summary"]["events_analyzed"] < N


def test_the_tail_guess_is_the_newest_time_of_an_ordered_file(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", make_events(N, seed=1))
    source = FileSource(str(path), 3600 * 10**9)
    assert source.tail_newest() == source.newest_timestamp()
    source.tail_first = True
    events = list(source.iter_events())
    assert len(events) == 3601


def test_an_event_newer_than_the_tail_stops_the_iteration(tmp_path: Path) -> None:
    path = write(tmp_path / "events.jsonl", shuffled(make_events(N, seed=1), 10))
    source = FileSource(str(path), 3600 * 10**9)
    source.tail_first = True
    tail = source.tail_newest()
    assert tail is not None and tail < (source.newest_timestamp() or 0)
    with pytest.raises(NewerThanTail):
        list(source.iter_events())
    assert source.tail_first is False  # the next iteration is exact
    assert len(list(source.iter_events())) == 3601


def test_no_guess_for_small_gzip_array_or_untimed_tails(tmp_path: Path) -> None:
    import gzip

    rows = make_events(N, seed=2)
    small = write(tmp_path / "small.jsonl", rows[:50])
    assert FileSource(str(small)).tail_newest() is None
    big = write(tmp_path / "big.jsonl", rows)
    packed = tmp_path / "big.jsonl.gz"
    packed.write_bytes(gzip.compress(big.read_bytes()))
    assert FileSource(str(packed)).tail_newest() is None
    array = tmp_path / "array.json"
    array.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    assert FileSource(str(array)).tail_newest() is None
    untimed = write(tmp_path / "untimed.jsonl",
                    rows + [{"type": "error", "message": "no time"}] * 2000)
    assert FileSource(str(untimed)).tail_newest() is None
    for path in (packed, array, untimed):
        report = clean(analyze_source(str(path), since="1h").report)
        assert report == exact_report(path, "1h")


ODD_TEXTS = [
    "2026-01-15T10:30:59.120Z", "2026-01-15T10:30:59.999Z", "2026-01-15T10:59:60.500Z",
    "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "2026-02-30T10:00:00.000Z",
    "2026-13-01T10:00:00.000Z", "2026-01-15T24:00:00.000Z", "5138-11-16T09:46:39.999Z",
    "5138-11-16T09:46:40.000Z", "9999-12-31T23:59:59.999Z", "2026-01-15 10:30:59.120Z",
    "2026-01-15T10:30:59.12Z", "2026-01-15T10:30:59.1200Z", "2026-01-15t10:30:59.120Z",
    "2026-01-15T10:30:59+00:00", "\u0662026-01-15T10:30:59.120Z",
]


@pytest.mark.parametrize("seed", range(12))
def test_the_newest_of_lines_with_the_timestamp_last_is_exact(seed: int) -> None:
    from mgt.logs.events import parse_event_line
    from mgt.logs.sources import _newest_in_block

    rng = random.Random(seed)
    plain = seed % 3 == 0  # ordinary events only: every time is compared as text
    lines = []
    for i in range(300):
        row: dict[str, Any] = {"type": rng.choice(["llm_call", "error", "other_kind", 7]),
                               "i": i}
        pick = rng.random()
        if plain:
            row.update(type="error", timestamp=rng.choice(ODD_TEXTS[:-6]))
            lines.append((json.dumps(row) + "\n").encode())
            continue
        if pick < 0.6:
            row["session_id"] = rng.choice(["s1", "", 3, None])
        if pick < 0.9:
            row["timestamp"] = rng.choice([*ODD_TEXTS, 1768473000123, "", None])
        else:
            row["ts"] = rng.choice(ODD_TEXTS)
        if rng.random() < 0.02:
            row["big"] = 2**70
        lines.append((json.dumps(row) + "\n").encode())
    if seed % 2:
        lines[-1] = lines[-1].rstrip(b"\n")  # a last line without its newline
    times = [e.timestamp for e in map(parse_event_line, lines)
             if e is not None and e.timestamp is not None]
    assert _newest_in_block(b"\n" + b"".join(lines)) == max(times, default=None)
