"""When a schedule fires: cron expressions (croniter) and intervals, in a time zone, with DST handled once."""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from flowline.domain.definitions import parse_duration
from flowline.errors import ValidationFailed

Overlap = Literal["skip", "buffer_one", "allow", "cancel_previous"]
OVERLAP_POLICIES: tuple[Overlap, ...] = ("skip", "buffer_one", "allow", "cancel_previous")
# The named expressions croniter reads; ``@reboot`` has no time and is refused.
CRON_NICKNAMES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_FIELDS = re.compile(r"\S+")
_MICROSECOND = timedelta(microseconds=1)
MIN_INTERVAL_SECONDS = 1.0
# How many wall-clock times a search may step over (nonexistent local times) before it gives up on an hour.
_MAX_SKIPPED = 10_000


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule fires: exactly one of ``cron`` (in ``timezone``) and ``interval`` (from ``anchor``).

    Only times in [``start_at``, ``end_at``) count. An interval's times are ``anchor + k * interval`` for any
    whole ``k`` (a backfill may reach back before the anchor), the anchor being ``start_at`` or the schedule's
    creation: absolute time, untouched by DST.
    """

    cron: str | None
    interval: timedelta | None
    timezone: ZoneInfo
    anchor: datetime
    start_at: datetime | None = None
    end_at: datetime | None = None


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ValidationFailed: no such time zone (pointer ``/timezone``).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValidationFailed(f"timezone: unknown time zone {name!r}", pointer="/timezone") from err


def _seconds_first(expression: str) -> bool:
    return len(_FIELDS.findall(expression)) == 6


def check_cron(expression: str) -> str:
    """``expression`` when it is five cron fields, six with seconds first, or a nickname such as ``@daily``.

    Raises:
        ValidationFailed: anything else, or an expression that never fires (pointer ``/cron``).
    """
    expression = expression.strip()
    fields = len(_FIELDS.findall(expression))
    if expression.startswith("@"):
        if expression.lower() not in CRON_NICKNAMES:
            named = ", ".join(sorted(CRON_NICKNAMES))
            raise ValidationFailed(f"cron: unknown nickname {expression!r} (one of {named})", pointer="/cron")
    elif fields not in (5, 6):
        raise ValidationFailed(
            f"cron: {expression!r} has {fields} fields: give five (minute hour day month weekday), "
            "or six with seconds first",
            pointer="/cron",
        )
    try:
        croniter(expression, datetime(2000, 1, 1), second_at_beginning=_seconds_first(expression)).get_next(datetime)
    except CroniterBadDateError as err:
        raise ValidationFailed(f"cron: {expression!r} never fires", pointer="/cron") from err
    except (CroniterBadCronError, ValueError, KeyError) as err:
        raise ValidationFailed(f"cron: {expression!r} is not a cron expression: {err}", pointer="/cron") from err
    return expression


def check_interval(value: str) -> timedelta:
    """The duration ``value`` (``"2s"``, ``"15m"``, ``"1h30m"``), at least a second.

    Raises:
        ValidationFailed: not a duration, not positive, or under a second (pointer ``/interval``).
    """
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise ValidationFailed(f"interval: {err}", pointer="/interval") from err
    if seconds < MIN_INTERVAL_SECONDS:  # finer than the loop polls: runs would only pile up
        raise ValidationFailed("interval: must be at least 1s", pointer="/interval")
    return timedelta(seconds=seconds)


def format_interval(interval: timedelta) -> str:
    """An interval as the API shows it: the largest whole unit (``"15m"``), else milliseconds."""
    milliseconds = round(interval.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def _local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The instant of wall-clock time ``wall`` in ``zone``: the first when it happens twice, None when never.

    A time the clocks skip when DST starts does not round-trip: it is skipped. A time they repeat when DST
    ends is taken once, at its first occurrence (``fold=0``), so a schedule runs once for it.
    """
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


@functools.lru_cache(maxsize=4096)
def _parsed_cron(expression: str) -> croniter:
    """``expression`` parsed, to be copied for each search: parsing costs several times a fire time's search."""
    return croniter(expression, datetime(2000, 1, 1), second_at_beginning=_seconds_first(expression))


def _cron_times(timing: Timing, after: datetime) -> Iterator[datetime]:
    """The cron's fire times strictly after ``after`` (UTC), ascending, computed on the zone's wall clock."""
    assert timing.cron is not None
    # From the wall time of ``after``: an earlier wall time is an earlier instant (each is taken at its first
    # occurrence), and a later one whose instant is not later (the repeated hour, seen from its second pass)
    # is left out below.
    wall = after.astimezone(timing.timezone).replace(tzinfo=None)
    times = copy.copy(_parsed_cron(timing.cron))  # its own position; the parsed fields are only read
    times.set_current(wall, force=True)
    skipped = 0
    while True:
        try:
            candidate = times.get_next(datetime)
        except CroniterBadDateError:
            return
        instant = _local_to_utc(candidate, timing.timezone)
        if instant is None:
            skipped += 1
            if skipped > _MAX_SKIPPED:
                return
            continue
        if instant > after:
            yield instant


def _interval_times(timing: Timing, after: datetime) -> Iterator[datetime]:
    assert timing.interval is not None
    steps = math.floor((after - timing.anchor) / timing.interval) + 1  # negative before the anchor: a backfill
    while True:
        yield timing.anchor + steps * timing.interval
        steps += 1


def fire_times(timing: Timing, after: datetime) -> Iterator[datetime]:
    """The schedule's fire times strictly after ``after``, ascending, within [start_at, end_at); UTC."""
    if timing.start_at is not None and after < timing.start_at:
        after = timing.start_at - _MICROSECOND
    times = _cron_times(timing, after) if timing.cron is not None else _interval_times(timing, after)
    for instant in times:
        if timing.end_at is not None and instant >= timing.end_at:
            return
        yield instant


def next_fire_times(timing: Timing, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fire times strictly after ``after``."""
    found: list[datetime] = []
    for instant in fire_times(timing, after):
        found.append(instant)
        if len(found) >= count:
            break
    return found


def first_fire_time(timing: Timing, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, or None when the schedule never fires again."""
    return next(iter(fire_times(timing, after)), None)
