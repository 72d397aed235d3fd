"""A schedule, its last tick and the time now → the tick due now (or None), and the next one.

A tick is a moment the schedule names: for `cron`, each time the expression
matches (in the schedule's time zone); for `every`, the last tick plus whole
intervals. Only the LATEST tick at or before now can be due, so however many
ticks passed while `mgt serve` was down, they give one catch-up run. A schedule
that has never ticked is due at once (its latest tick never ran).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from mgt.serve.config import Schedule

__all__ = ["due_tick", "latest_tick", "next_tick"]


def latest_tick(schedule: Schedule, now: datetime, last: datetime | None) -> datetime:
    """The latest tick at or before `now` (for `every`, counted from `last`; `now` without one)."""
    if schedule.cron is not None:
        from croniter import croniter

        # croniter's get_prev is strictly before its start, and cron has whole seconds:
        # start one second past now (cut to the second) so a tick exactly at now counts.
        local = now.astimezone(schedule.zone).replace(microsecond=0) + timedelta(seconds=1)
        tick: datetime = croniter(schedule.cron, local).get_prev(datetime)
        return tick.astimezone(now.tzinfo)
    assert schedule.every_seconds is not None
    if last is None or last > now:
        return now.replace(microsecond=0)  # first run, or a clock set back: count from now
    intervals = math.floor((now - last).total_seconds() / schedule.every_seconds)
    return last + timedelta(seconds=intervals * schedule.every_seconds)


def due_tick(schedule: Schedule, now: datetime, last: datetime | None) -> datetime | None:
    """The tick to run now: the latest one, when it is later than `last` (the one that ran)."""
    tick = latest_tick(schedule, now, last)
    if last is None or tick > last:
        return tick
    return None


def next_tick(schedule: Schedule, now: datetime, last: datetime | None) -> datetime:
    """The first tick after `now` (for waiting until then)."""
    if schedule.cron is not None:
        from croniter import croniter

        local = now.astimezone(schedule.zone)
        tick: datetime = croniter(schedule.cron, local).get_next(datetime)
        return tick.astimezone(now.tzinfo)
    assert schedule.every_seconds is not None
    base = latest_tick(schedule, now, last)
    return base + timedelta(seconds=schedule.every_seconds)
