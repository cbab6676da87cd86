"""The ``[economics]`` configuration: prices in, validated, every problem named by its key.

::

    [economics]
    btc_price_usd = 77000              # or a [economics.price_feed]; one of the two is needed
    power_price_usd_per_kwh = 0.06     # or [[economics.power_schedule]]; one of the two is needed
    fees_btc_per_block = 0.025         # used when the source has no templates (upstream, demo)
    timezone = "America/Chicago"       # the wall clock of the time-of-use schedule
    ai_hosting_usd_per_mw_day = 2400   # an offer to compare the fleet's margin per MW with
    curtail_target_kw = 500            # plan which rigs to switch off to shed this much

    [economics.price_feed]
    url = "https://api.example.com/btc"
    json_path = "bitcoin.usd"

    [[economics.power_schedule]]
    start = "00:00"
    usd_per_kwh = 0.045
    [[economics.power_schedule]]
    start = "17:00"
    usd_per_kwh = 0.11
    weekdays = ["mon", "tue", "wed", "thu", "fri"]

    [[economics.power_override]]        # other circuits, other contracts: first match wins
    rigs = ["acct.rack7-*"]
    usd_per_kwh = 0.052                 # or its own schedule = [{ start = "00:00", usd_per_kwh = ... }]
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetd import redact
from fleetd.economics.prices import TouEntry, TouSchedule, price_at

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HASHRATE_WINDOWS = ("5m", "1h")


@dataclass(frozen=True)
class PriceFeedConfig:
    url: str
    json_path: str
    interval_seconds: float = 300.0
    timeout_seconds: float = 10.0
    max_age_seconds: float = 1800.0  # an older price is stale: USD figures are withheld


@dataclass(frozen=True)
class PowerOverride:
    patterns: tuple[str, ...]  # worker-name globs: one rig, or a group such as a rack prefix
    schedule: TouSchedule

    def matches(self, rig: str) -> bool:
        return any(fnmatch.fnmatchcase(rig, p) for p in self.patterns)


@dataclass(frozen=True)
class EconomicsConfig:
    power_schedule: TouSchedule
    btc_price_usd: float | None = None
    price_feed: PriceFeedConfig | None = None
    fees_btc_per_block: float = 0.0
    timezone: str = "UTC"
    overrides: tuple[PowerOverride, ...] = ()
    ai_hosting_usd_per_mw_day: float | None = None
    curtail_target_kw: float = 0.0
    hashrate_window: str = "1h"  # pool-side average revenue is valued at: long enough to damp share luck

    def tzinfo(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)


class PowerPrices:
    """$/kWh for each rig at a moment: its override's schedule, else the site's. Matches are cached."""

    def __init__(self, config: EconomicsConfig) -> None:
        self.config = config
        self._tz = config.tzinfo()
        self._override_of: dict[str, int | None] = {}

    def site(self, now: float) -> float:
        return price_at(self.config.power_schedule, now, self._tz)

    def for_rigs(self, rigs: list[str], now: float) -> dict[str, float]:
        price = self.at(now)
        return {rig: price(rig) for rig in rigs}

    def at(self, now: float) -> Callable[[str], float]:
        """Each rig's $/kWh at ``now``: the schedules are read once, the rig's match from the cache."""
        site = self.site(now)
        by_override = [price_at(o.schedule, now, self._tz) for o in self.config.overrides]

        def price(rig: str) -> float:
            index = self._override_of.get(rig, -1)
            if index == -1:
                index = next((i for i, o in enumerate(self.config.overrides) if o.matches(rig)), None)
                if len(self._override_of) > 100_000:  # names churn on a misconfigured site: stay bounded
                    self._override_of.clear()
                self._override_of[rig] = index
            return site if index is None else by_override[index]

        return price


def parse(values: Mapping[str, Any], problems: list[str]) -> EconomicsConfig | None:
    """``[economics]`` into a config; each problem is appended as ``[economics] key = value: why``."""
    p = _Problems(problems)
    known = {
        "btc_price_usd", "price_feed", "power_price_usd_per_kwh", "power_schedule", "fees_btc_per_block",
        "timezone", "power_override", "ai_hosting_usd_per_mw_day", "curtail_target_kw", "hashrate_window",
    }  # fmt: skip
    for key in values:
        if key not in known:
            p.add("economics", key, None, "unknown key")
    btc = _number(p, "economics", values, "btc_price_usd", positive=True)
    feed = _price_feed(p, values.get("price_feed"))
    if "btc_price_usd" not in values and "price_feed" not in values:
        p.problems.append("[economics] needs btc_price_usd or an [economics.price_feed] table")
    elif "btc_price_usd" in values and "price_feed" in values:  # a stale feed must never fall back silently
        p.problems.append("[economics] btc_price_usd and [economics.price_feed]: give one, not both")
    flat = _number(p, "economics", values, "power_price_usd_per_kwh")
    schedule = _schedule(p, "economics.power_schedule", values.get("power_schedule"))
    if "power_price_usd_per_kwh" not in values and "power_schedule" not in values:
        p.problems.append("[economics] needs power_price_usd_per_kwh or [[economics.power_schedule]]")
    elif "power_price_usd_per_kwh" in values and "power_schedule" in values:
        p.problems.append("[economics] power_price_usd_per_kwh and [[economics.power_schedule]]: give one, not both")
    timezone = values.get("timezone", "UTC")
    try:
        if not isinstance(timezone, str):
            raise ValueError
        zoneinfo.ZoneInfo(timezone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        p.add("economics", "timezone", timezone, 'not a time zone name such as "UTC" or "Europe/Oslo"')
    window = values.get("hashrate_window", "1h")
    if window not in HASHRATE_WINDOWS:
        p.add("economics", "hashrate_window", window, f"must be one of {', '.join(HASHRATE_WINDOWS)}")
    fees = _number(p, "economics", values, "fees_btc_per_block")
    if fees is not None and fees > 50:
        p.add("economics", "fees_btc_per_block", fees, "more than a block subsidy has ever been; BTC, not sats?")
    offer = _number(p, "economics", values, "ai_hosting_usd_per_mw_day", positive=True)
    target = _number(p, "economics", values, "curtail_target_kw")
    overrides = _overrides(p, values.get("power_override"))
    if len(problems) > p.start:
        return None
    return EconomicsConfig(
        power_schedule=schedule or TouSchedule.flat(flat),
        btc_price_usd=btc,
        price_feed=feed,
        fees_btc_per_block=fees or 0.0,
        timezone=timezone,
        overrides=overrides,
        ai_hosting_usd_per_mw_day=offer,
        curtail_target_kw=target or 0.0,
        hashrate_window=window,
    )


class _Problems:
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.start = len(problems)

    def add(self, table: str, key: str, value: Any, why: str) -> None:
        shown = "" if value is None else f" = {redact.shown(key, value)}"  # no password, no URL credentials
        self.problems.append(f"[{table}]{' ' + key if key else ''}{shown}: {why}")


def _number(p: _Problems, table: str, values: Mapping[str, Any], key: str, *, positive: bool = False) -> float | None:
    if key not in values:
        return None
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        p.add(table, key, value, "must be a finite number")
        return None
    if value < 0 or (value == 0 and positive):
        p.add(table, key, value, "must be greater than 0" if positive else "must be 0 or more")
        return None
    return float(value)


def _price_feed(p: _Problems, values: Any) -> PriceFeedConfig | None:
    table = "economics.price_feed"
    if values is None:
        return None
    if not isinstance(values, dict):
        p.add("economics", "price_feed", values, "must be an [economics.price_feed] table")
        return None
    start = len(p.problems)
    _unknown_keys(p, table, values, ("url", "json_path", "interval_seconds", "timeout_seconds", "max_age_seconds"))
    url, path = values.get("url"), values.get("json_path")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        p.add(table, "url", url, "must be an http:// or https:// URL")
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        p.add(table, "json_path", path, 'must be a dotted path into the JSON, e.g. "bitcoin.usd" or "data.0.price"')
    numbers = {k: _number(p, table, values, k, positive=True) for k in ("interval_seconds", "timeout_seconds", "max_age_seconds")}
    if len(p.problems) > start:
        return None
    feed = PriceFeedConfig(url, path, **{k: v for k, v in numbers.items() if v is not None})
    if feed.timeout_seconds >= feed.interval_seconds:
        p.add(table, "timeout_seconds", feed.timeout_seconds, "must be shorter than interval_seconds")
    if feed.max_age_seconds < feed.interval_seconds:
        p.add(table, "max_age_seconds", feed.max_age_seconds, "must be at least interval_seconds, or every price goes stale")
    return feed


def _schedule(p: _Problems, table: str, entries: Any) -> TouSchedule | None:
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        p.add(table, "", entries, f"must be one or more [[{table}]] tables")
        return None
    start = len(p.problems)
    parsed = []
    for n, entry in enumerate(entries, start=1):
        where = f"{table} #{n}"
        _unknown_keys(p, where, entry, ("start", "usd_per_kwh", "weekdays"))
        try:
            at = dt.time.fromisoformat(entry.get("start")) if isinstance(entry.get("start"), str) else None
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:  # the schedule's zone is [economics] timezone
            at = None
        if at is None:
            p.add(where, "start", entry.get("start"), 'must be a time of day "HH:MM"')
        if "usd_per_kwh" not in entry:
            p.add(where, "usd_per_kwh", None, "required")
        price = _number(p, where, entry, "usd_per_kwh")
        days = _weekdays(p, where, entry.get("weekdays", list(WEEKDAYS)))
        if at is not None and price is not None and days is not None:
            parsed.append(TouEntry(at, price, days))
    if len(p.problems) > start:
        return None
    try:
        return TouSchedule(tuple(parsed))
    except ValueError as exc:
        p.add(table, "", None, str(exc))
        return None


def _unknown_keys(p: _Problems, where: str, values: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in values:
        if key not in known:
            p.add(where, key, None, f"unknown key (known: {', '.join(known)})")


def _weekdays(p: _Problems, where: str, days: Any) -> frozenset[int] | None:
    names = [d.lower()[:3] if isinstance(d, str) else d for d in days] if isinstance(days, list) else None
    if not names or not all(n in WEEKDAYS for n in names):
        p.add(where, "weekdays", days, f"must be a non-empty list of {', '.join(WEEKDAYS)}")
        return None
    return frozenset(WEEKDAYS.index(n) for n in names)


def _overrides(p: _Problems, entries: Any) -> tuple[PowerOverride, ...]:
    table = "economics.power_override"
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        p.add(table, "", entries, f"must be one or more [[{table}]] tables")
        return ()
    overrides = []
    for n, entry in enumerate(entries, start=1):
        where = f"{table} #{n}"
        _unknown_keys(p, where, entry, ("rigs", "usd_per_kwh", "schedule"))
        rigs = entry.get("rigs")
        if not isinstance(rigs, list) or not rigs or not all(isinstance(r, str) and r for r in rigs):
            p.add(where, "rigs", rigs, 'must be a list of worker names or globs, e.g. ["acct.rack7-*"]')
            continue
        flat = _number(p, where, entry, "usd_per_kwh")
        schedule = _schedule(p, f"{where} schedule", entry.get("schedule"))
        if ("usd_per_kwh" in entry) == ("schedule" in entry):
            p.add(where, "usd_per_kwh", None, "give usd_per_kwh or schedule (one of the two)")
        elif flat is not None or schedule is not None:
            overrides.append(PowerOverride(tuple(rigs), schedule or TouSchedule.flat(flat)))
    return tuple(overrides)
