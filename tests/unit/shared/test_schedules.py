"""Fire times of cron and interval schedules: fields, nicknames, seconds, windows and DST edges."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flowline.domain.schedules import (
    Timing,
    check_cron,
    check_interval,
    check_timezone,
    first_fire_time,
    format_interval,
    next_fire_times,
)
from flowline.errors import ValidationFailed

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def cron(expression: str, zone: ZoneInfo = UTC_ZONE, **window: datetime) -> Timing:
    return Timing(cron=check_cron(expression), interval=None, timezone=zone, anchor=ANCHOR, **window)


def local(times: list[datetime], zone: ZoneInfo) -> list[str]:
    return [instant.astimezone(zone).isoformat() for instant in times]


def test_five_fields_fire_on_the_minute() -> None:
    times = next_fire_times(cron("*/15 * * * *"), datetime(2026, 5, 1, 10, 7, tzinfo=UTC), 3)
    assert times == [datetime(2026, 5, 1, 10, minute, tzinfo=UTC) for minute in (15, 30, 45)]


def test_six_fields_take_seconds_first() -> None:
    times = next_fire_times(cron("*/20 * * * * *"), datetime(2026, 5, 1, 10, 0, 1, tzinfo=UTC), 3)
    assert times == [datetime(2026, 5, 1, 10, 0, second, tzinfo=UTC) for second in (20, 40)] + [
        datetime(2026, 5, 1, 10, 1, tzinfo=UTC)
    ]


@pytest.mark.parametrize(
    ("nickname", "expected"),
    [
        ("@hourly", datetime(2026, 5, 1, 11, tzinfo=UTC)),
        ("@daily", datetime(2026, 5, 2, tzinfo=UTC)),
        ("@weekly", datetime(2026, 5, 3, tzinfo=UTC)),  # Sunday
        ("@monthly", datetime(2026, 6, 1, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_nicknames(nickname: str, expected: datetime) -> None:
    assert first_fire_time(cron(nickname), datetime(2026, 5, 1, 10, 30, tzinfo=UTC)) == expected


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "* * * * * * *", "@reboot", "@sometimes", "0 0 30 2 *"])
def test_bad_cron_expressions_name_the_field(expression: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_cron(expression)
    assert raised.value.pointer == "/cron"


def test_unknown_time_zone_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_timezone("Mars/Olympus_Mons")
    assert raised.value.pointer == "/timezone"
    assert check_timezone("Europe/Berlin").key == "Europe/Berlin"


@pytest.mark.parametrize("value", ["0s", "-5m", "soon", "", "0", "500ms"])
def test_bad_intervals_name_the_field(value: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_interval(value)
    assert raised.value.pointer == "/interval"


def test_a_local_time_that_does_not_exist_is_skipped() -> None:
    """Berlin, 29 March 2026: the clocks go from 02:00 to 03:00, so 02:30 does not happen that day."""
    times = next_fire_times(cron("30 2 * * *", BERLIN), datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert local(times, BERLIN) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_local_time_that_happens_twice_runs_once() -> None:
    """Berlin, 25 October 2026: the clocks go from 03:00 back to 02:00, so 02:30 happens twice; it runs once."""
    times = next_fire_times(cron("30 2 * * *", BERLIN), datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert local(times, BERLIN) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_frequent_runs_through_a_repeated_hour_run_each_wall_time_once() -> None:
    times = next_fire_times(cron("*/30 * * * *", NEW_YORK), datetime(2026, 11, 1, 4, 45, tzinfo=UTC), 5)
    assert local(times, NEW_YORK) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:30:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]


def test_after_the_second_occurrence_the_repeated_times_do_not_fire_again() -> None:
    second_130 = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK).replace(fold=1).astimezone(UTC)
    times = next_fire_times(cron("*/30 * * * *", NEW_YORK), second_130, 2)
    assert local(times, NEW_YORK) == ["2026-11-01T02:00:00-05:00", "2026-11-01T02:30:00-05:00"]


def test_intervals_are_absolute_time_from_their_anchor_through_dst() -> None:
    timing = Timing(cron=None, interval=check_interval("1h"), timezone=BERLIN, anchor=datetime(2026, 3, 29, tzinfo=UTC))
    times = next_fire_times(timing, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 3)
    assert [instant - times[0] for instant in times] == [timedelta(hours=hours) for hours in range(3)]
    assert times[0] == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_start_and_end_bound_the_fire_times() -> None:
    timing = Timing(
        cron=None,
        interval=check_interval("10m"),
        timezone=BERLIN,
        anchor=datetime(2026, 5, 1, 12, tzinfo=UTC),
        start_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        end_at=datetime(2026, 5, 1, 12, 30, tzinfo=UTC),
    )
    times = next_fire_times(timing, datetime(2026, 5, 1, tzinfo=UTC), 10)
    assert times == [datetime(2026, 5, 1, 12, minute, tzinfo=UTC) for minute in (0, 10, 20)]
    assert first_fire_time(timing, datetime(2026, 5, 1, 12, 20, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(2, "2s"), (900, "15m"), (5400, "90m"), (3600, "1h"), (1.5, "1500ms"), (86400 * 2, "2d")]
)
def test_intervals_show_in_their_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_interval(timedelta(seconds=seconds)) == text
