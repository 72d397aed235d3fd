"""Which tick is due: the latest one at or before now, if later than the last one started."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mgt.serve.config import Schedule
from mgt.serve.timing import due_tick, latest_tick, next_tick


def cron(expr: str, zone: str = "UTC") -> Schedule:
    return Schedule(name="s", machine=Path("m.mgt"), cron=expr, every_seconds=None,
                    every_text=None, timezone=zone)


def every(seconds: float) -> Schedule:
    return Schedule(name="s", machine=Path("m.mgt"), cron=None, every_seconds=seconds,
                    every_text=f"{seconds}s", timezone="UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_tick_exactly_at_now_is_due_and_a_second_before_it_is_not() -> None:
    nightly = cron("0 3 * * *")
    last = utc("2026-01-14T03:00:00")
    assert due_tick(nightly, utc("2026-01-15T03:00:00"), last) == utc("2026-01-15T03:00:00")
    assert due_tick(nightly, utc("2026-01-15T02:59:59.999"), last) is None
    assert due_tick(nightly, utc("2026-01-15T03:00:00.5"), utc("2026-01-15T03:00:00")) is None


def test_many_missed_ticks_give_the_latest_one_only() -> None:
    hourly = cron("0 * * * *")
    tick = due_tick(hourly, utc("2026-01-20T10:30:00"), utc("2026-01-15T00:00:00"))
    assert tick == utc("2026-01-20T10:00:00")
    assert due_tick(hourly, utc("2026-01-20T10:59:00"), tick) is None


def test_cron_ticks_follow_the_time_zone_across_a_dst_change() -> None:
    paris = cron("0 3 * * *", "Europe/Paris")
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer (DST from 2026-03-29).
    assert latest_tick(paris, utc("2026-03-28T12:00:00"), None) == utc("2026-03-28T02:00:00")
    assert latest_tick(paris, utc("2026-03-30T12:00:00"), None) == utc("2026-03-30T01:00:00")
    assert next_tick(paris, utc("2026-03-30T12:00:00"), None) == utc("2026-03-31T01:00:00")


def test_every_counts_whole_intervals_from_the_last_tick() -> None:
    hourly = every(3600)
    last = utc("2026-01-15T10:20:00")
    assert due_tick(hourly, utc("2026-01-15T11:19:59"), last) is None
    assert due_tick(hourly, utc("2026-01-15T13:45:00"), last) == utc("2026-01-15T13:20:00")
    assert next_tick(hourly, utc("2026-01-15T13:45:00"), utc("2026-01-15T13:20:00")) == utc(
        "2026-01-15T14:20:00")


@pytest.mark.parametrize("schedule", [cron("*/5 * * * *"), every(300)], ids=["cron", "every"])
def test_a_schedule_that_never_ran_is_due_at_once(schedule: Schedule) -> None:
    assert due_tick(schedule, utc("2026-01-15T10:02:30"), None) is not None


def test_a_clock_set_back_runs_nothing_before_the_last_tick() -> None:
    assert due_tick(every(60), utc("2026-01-15T10:00:00"), utc("2026-01-16T10:00:00")) is None
