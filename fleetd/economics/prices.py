"""Power price time-of-use schedules and price-source staleness."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400
ALL_WEEKDAYS = frozenset(range(7))  # 0 = Monday ... 6 = Sunday, as datetime.weekday()


@dataclass(frozen=True)
class TouEntry:
    """From ``start`` (local wall-clock time of day) on each of ``weekdays``, the price is ``usd_per_kwh``.

    A price holds until the next entry that applies, across midnight and across days.
    """

    start: dt.time
    usd_per_kwh: float
    weekdays: frozenset[int] = ALL_WEEKDAYS

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None:
            raise ValueError("start is a local wall-clock time; give the zone to price_at")
        if not math.isfinite(self.usd_per_kwh) or self.usd_per_kwh < 0:
            raise ValueError(f"usd_per_kwh must be finite and >= 0, got {self.usd_per_kwh!r}")
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        if not self.weekdays or not self.weekdays <= ALL_WEEKDAYS:
            raise ValueError(f"weekdays must be a non-empty subset of 0..6, got {sorted(self.weekdays)}")

    @property
    def start_seconds_of_day(self) -> float:
        s = self.start
        return s.hour * 3600 + s.minute * 60 + s.second + s.microsecond / 1e6


@dataclass(frozen=True)
class TouSchedule:
    """A weekly step function of the power price."""

    entries: tuple[TouEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        if not self.entries:
            raise ValueError("a time-of-use schedule needs at least one entry")
        seen: set[tuple[float, int]] = set()
        for e in self.entries:
            for day in e.weekdays:
                key = (e.start_seconds_of_day, day)
                if key in seen:
                    raise ValueError(f"two entries start at {e.start} on weekday {day}")
                seen.add(key)

    @classmethod
    def flat(cls, usd_per_kwh: float) -> TouSchedule:
        return cls((TouEntry(dt.time(0, 0), usd_per_kwh),))


def _as_tzinfo(tz: dt.tzinfo | int) -> dt.tzinfo:
    if isinstance(tz, dt.tzinfo):
        return tz
    return dt.timezone(dt.timedelta(seconds=tz))


def price_at(schedule: TouSchedule, timestamp_seconds: float, tz: dt.tzinfo | int) -> float:
    """$/kWh at unix time ``timestamp_seconds``; ``tz`` is a tzinfo (e.g. ZoneInfo) or a UTC offset in seconds.

    The entry that applies is the latest one starting at or before the local time of day on the
    local weekday; if none has started yet that day, the last one of the previous days.
    """
    local = dt.datetime.fromtimestamp(timestamp_seconds, _as_tzinfo(tz))
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    weekday = local.weekday()
    for days_back in range(8):
        day = (weekday - days_back) % 7
        limit = seconds if days_back == 0 else SECONDS_PER_DAY
        best: TouEntry | None = None
        for e in schedule.entries:
            if day in e.weekdays and e.start_seconds_of_day <= limit:
                if best is None or e.start_seconds_of_day > best.start_seconds_of_day:
                    best = e
        if best is not None:
            return best.usd_per_kwh
    raise AssertionError("unreachable: every entry applies to at least one weekday")


def price_age_seconds(updated_at_seconds: float, now_seconds: float) -> float:
    """Age of a price fetched at ``updated_at_seconds`` (negative if the source's clock is ahead)."""
    return now_seconds - updated_at_seconds


def price_is_stale(updated_at_seconds: float | None, now_seconds: float, max_age_seconds: float) -> bool:
    """True when the price was never obtained or is older than ``max_age_seconds`` (equal is fresh)."""
    if max_age_seconds < 0 or math.isnan(max_age_seconds):
        raise ValueError(f"max_age_seconds must be >= 0, got {max_age_seconds!r}")
    if updated_at_seconds is None or not math.isfinite(updated_at_seconds):
        return True
    return price_age_seconds(updated_at_seconds, now_seconds) > max_age_seconds


def schedule_from_pairs(pairs: Iterable[tuple[str, float]]) -> TouSchedule:
    """Daily schedule from ("HH:MM", $/kWh) pairs, e.g. [("00:00", 0.04), ("17:00", 0.12)]."""
    return TouSchedule(tuple(TouEntry(dt.time.fromisoformat(t), p) for t, p in pairs))
