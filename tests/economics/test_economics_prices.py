"""Time-of-use power price boundaries and price-source staleness."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fleetd.economics.prices import (
    TouEntry,
    TouSchedule,
    price_at,
    price_is_stale,
    schedule_from_pairs,
)

WEEKDAYS = frozenset(range(5))
SCHEDULE = TouSchedule(
    (
        TouEntry(dt.time(0, 0), 0.04),
        TouEntry(dt.time(7, 0), 0.10, WEEKDAYS),
        TouEntry(dt.time(17, 0), 0.15, WEEKDAYS),
        TouEntry(dt.time(22, 0), 0.06, WEEKDAYS),
    )
)
UTC_PLUS_2 = 2 * 3600


def ts(y, mo, d, h, mi=0, s=0, us=0, tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=2))) -> float:
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("when", "price"),
    [
        ((2024, 6, 3, 6, 59, 59, 999_999), 0.04),  # Monday
        ((2024, 6, 3, 7, 0, 0), 0.10),
        ((2024, 6, 3, 16, 59, 59), 0.10),
        ((2024, 6, 3, 17, 0, 0), 0.15),
        ((2024, 6, 3, 21, 59, 59), 0.15),
        ((2024, 6, 3, 22, 0, 0), 0.06),
        ((2024, 6, 3, 23, 59, 59), 0.06),
        ((2024, 6, 4, 0, 0, 0), 0.04),  # midnight switches back
        ((2024, 6, 8, 7, 0, 0), 0.04),  # Saturday: weekday entries do not apply
        ((2024, 6, 8, 18, 0, 0), 0.04),
        ((2024, 6, 7, 23, 0, 0), 0.06),  # Friday night
    ],
)
def test_tou_switches_at_its_boundaries(when, price):
    assert price_at(SCHEDULE, ts(*when), UTC_PLUS_2) == price


def test_the_offset_is_applied():
    t = ts(2024, 6, 3, 7, 0, 0)  # 07:00 at UTC+2 is 05:00 UTC
    assert price_at(SCHEDULE, t, UTC_PLUS_2) == 0.10
    assert price_at(SCHEDULE, t, 0) == 0.04
    assert price_at(SCHEDULE, t, dt.timezone.utc) == 0.04


def test_zoneinfo_follows_local_wall_clock_across_dst():
    berlin = ZoneInfo("Europe/Berlin")
    # 2024-03-29 (Friday, CET, UTC+1) and 2024-04-01 (Monday, CEST, UTC+2): 07:00 local both times
    for day in (dt.datetime(2024, 3, 29, 7, tzinfo=berlin), dt.datetime(2024, 4, 1, 7, tzinfo=berlin)):
        t = day.timestamp()
        assert price_at(SCHEDULE, t, berlin) == 0.10
        assert price_at(SCHEDULE, t - 1, berlin) == 0.04


def test_schedule_wraps_to_the_previous_day_entry():
    s = schedule_from_pairs([("07:00", 0.10), ("19:00", 0.05)])
    assert price_at(s, ts(2024, 6, 3, 3), UTC_PLUS_2) == 0.05
    assert price_at(s, ts(2024, 6, 3, 19), UTC_PLUS_2) == 0.05
    assert price_at(s, ts(2024, 6, 3, 18, 59, 59), UTC_PLUS_2) == 0.10
    # an entry only on Mondays holds all week until the next Monday
    monday_only = TouSchedule((TouEntry(dt.time(12), 0.2, frozenset({0})), TouEntry(dt.time(0), 0.3, frozenset({0}))))
    assert price_at(monday_only, ts(2024, 6, 9, 23), UTC_PLUS_2) == 0.2  # Sunday
    assert price_at(monday_only, ts(2024, 6, 10, 11), UTC_PLUS_2) == 0.3  # next Monday morning
    assert price_at(TouSchedule.flat(0.07), ts(2024, 1, 1, 0), 0) == 0.07


def test_invalid_schedules_are_rejected():
    with pytest.raises(ValueError):
        TouSchedule(())
    with pytest.raises(ValueError):
        TouSchedule((TouEntry(dt.time(7), 0.1), TouEntry(dt.time(7), 0.2, frozenset({1}))))
    with pytest.raises(ValueError):
        TouEntry(dt.time(7), -0.1)
    with pytest.raises(ValueError):
        TouEntry(dt.time(7), 0.1, frozenset())
    with pytest.raises(ValueError):
        TouEntry(dt.time(7), 0.1, frozenset({7}))
    with pytest.raises(ValueError):
        TouEntry(dt.time(7, tzinfo=dt.timezone.utc), 0.1)


def test_stale_price_is_flagged():
    assert price_is_stale(None, 1000.0, 300)  # never fetched
    assert not price_is_stale(700.0, 1000.0, 300)  # exactly max age: fresh
    assert price_is_stale(699.9, 1000.0, 300)
    assert not price_is_stale(1010.0, 1000.0, 300)  # source clock slightly ahead
    assert price_is_stale(float("nan"), 1000.0, 300)
    with pytest.raises(ValueError):
        price_is_stale(1.0, 2.0, -1)
