"""The ``[curtailment]`` configuration, validated, every problem named by its key.

::

    [curtailment]
    mode = "advise"                 # off | advise (compute and export, touch nothing) | act
    cycle_seconds = 60              # how often rigs are judged
    min_shares = 100                # effective shares behind a hash rate before it is judged
    hysteresis = 0.1                # switched back on only when the margin clears 10 % of the cost
    min_off_seconds = 1800          # a rig switched off stays off at least this long
    min_on_seconds = 1800           # ... and one switched on stays on (economic triggers only)
    ramp_kw_per_minute = 100        # the site's draw moves in steps of at most this much
    max_rigs_per_cycle = 20
    price_above_usd_per_kwh = 0.12  # every rig off while the power price is above this
    verify_seconds = 180            # watts fall and shares stop within this long of a stop (60 at least)
    resume_verify_seconds = 600     # shares return within this long of a resume
    retries = 2                     # further attempts before an action is marked failed
    power_floor_fraction = 0.7      # to shed kW, tunable rigs first go to 70 % of their draw (0: never tune)
    never = ["acct.lab-*"]          # worker globs fleetd never curtails
    keep_off = ["acct.rack9-*"]     # ... and ones it keeps off

    [[curtailment.window]]          # e.g. 4CP peak hours: shed 500 kW on summer weekdays
    start = "15:00"
    end = "18:00"
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    shed_kw = 500                   # or above_joules_per_terahash = 30
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetd.economics.settings import WEEKDAYS

MODES = ("off", "advise", "act")
_KEYS = (
    "mode", "cycle_seconds", "min_shares", "hysteresis", "min_off_seconds", "min_on_seconds", "ramp_kw_per_minute",
    "max_rigs_per_cycle", "price_above_usd_per_kwh", "verify_seconds", "resume_verify_seconds", "retries", "never",
    "keep_off", "window", "power_floor_fraction",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    """A scheduled window in the economics' time zone: from ``start`` to ``end`` on ``weekdays``
    (the day it starts), shed ``shed_kw``, or every rig above ``above_joules_per_terahash``."""

    start: dt.time
    end: dt.time  # at or before start: the window runs past midnight
    weekdays: frozenset[int]
    shed_kw: float | None = None
    above_joules_per_terahash: float | None = None

    def active(self, local: dt.datetime) -> bool:
        start = local.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        for begins in (start, start - dt.timedelta(days=1)):  # today's, or yesterday's past midnight
            ends = begins.replace(hour=self.end.hour, minute=self.end.minute)
            if ends <= begins:
                ends += dt.timedelta(days=1)
            if begins.weekday() in self.weekdays and begins <= local < ends:
                return True
        return False


@dataclass(frozen=True, slots=True)
class CurtailmentConfig:
    mode: str = "advise"
    cycle_seconds: float = 60.0
    min_shares: float = 100.0  # a 1/sqrt(100) = 10 % standard error
    hysteresis: float = 0.1
    min_off_seconds: float = 1800.0
    min_on_seconds: float = 1800.0
    ramp_kw_per_minute: float = 100.0
    max_rigs_per_cycle: int = 20
    price_above_usd_per_kwh: float | None = None
    verify_seconds: float = 180.0
    resume_verify_seconds: float = 600.0
    retries: int = 2
    # demand and kW windows hold tunable rigs to this share of their draw before switching any
    # off; 0: never tune (controller.py)
    power_floor_fraction: float = 0.7
    never: tuple[str, ...] = ()
    keep_off: tuple[str, ...] = ()
    windows: tuple[Window, ...] = ()

    def never_curtailed(self, rig: str) -> bool:
        return any(fnmatch.fnmatchcase(rig, p) for p in self.never)

    def kept_off(self, rig: str) -> bool:
        return any(fnmatch.fnmatchcase(rig, p) for p in self.keep_off)


def parse(values: Mapping[str, Any], problems: list[str]) -> CurtailmentConfig:
    """``[curtailment]`` into a config; each problem is appended as ``[curtailment] key = value: why``."""
    start = len(problems)

    def problem(key: str, value: Any, why: str, table: str = "curtailment") -> None:
        problems.append(f"[{table}] {key} = {value!r}: {why}")

    for key in values:
        if key not in _KEYS:
            problems.append(f"[curtailment] {key}: unknown key")
    options: dict[str, Any] = {}
    mode = values.get("mode", "advise")
    if mode not in MODES:
        problem("mode", mode, f"must be one of {', '.join(MODES)}")
    options["mode"] = mode
    bounds = {
        "cycle_seconds": (1.0, 86400.0), "min_shares": (1.0, 1e9), "hysteresis": (0.0, 10.0),
        "min_off_seconds": (0.0, 30 * 86400.0), "min_on_seconds": (0.0, 30 * 86400.0),
        "ramp_kw_per_minute": (0.001, 1e9), "max_rigs_per_cycle": (1, 1_000_000),
        # a stop is seen done no sooner than 60 s after it: 30 s for the shares in flight, then
        # 30 s without one (controller.py)
        "price_above_usd_per_kwh": (0.0, 1e6), "verify_seconds": (60.0, 86400.0),
        "resume_verify_seconds": (1.0, 86400.0), "retries": (0, 100),
        # below 1: a limit at the draw itself sheds nothing
        "power_floor_fraction": (0.0, 0.99),
    }  # fmt: skip
    for key, (low, high) in bounds.items():
        if key not in values:
            continue
        value = values[key]
        whole = isinstance(low, int)
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not (
            math.isfinite(value) and low <= value <= high
        ):
            problem(key, value, f"must be {'a whole number' if whole else 'a number'} from {low:g} to {high:g}")
            continue
        options[key] = value if whole else float(value)
    for key in ("never", "keep_off"):
        globs = values.get(key, [])
        if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
            problem(key, globs, "must be a list of worker names or globs")
        else:
            options[key] = tuple(globs)
    windows = values.get("window", [])
    if not isinstance(windows, list) or not all(isinstance(w, dict) for w in windows):
        problem("window", windows, "must be [[curtailment.window]] tables")
    else:
        options["windows"] = tuple(w for n, raw in enumerate(windows, 1) if (w := _window(raw, n, problems)))
    if len(problems) > start:
        return CurtailmentConfig()
    return CurtailmentConfig(**options)


def _window(raw: Mapping[str, Any], n: int, problems: list[str]) -> Window | None:
    table = f"curtailment.window #{n}"
    before = len(problems)
    for key in raw:
        if key not in ("start", "end", "weekdays", "shed_kw", "above_joules_per_terahash"):
            problems.append(f"[{table}] {key}: unknown key")
    times = {}
    for key in ("start", "end"):
        try:
            times[key] = dt.time.fromisoformat(raw[key])
        except (KeyError, TypeError, ValueError):
            problems.append(f"[{table}] {key} = {raw.get(key)!r}: must be a time of day such as \"15:00\"")
    days = raw.get("weekdays", list(WEEKDAYS))
    if not isinstance(days, list) or not days or not all(d in WEEKDAYS for d in days):
        problems.append(f"[{table}] weekdays = {days!r}: must be a list of {', '.join(WEEKDAYS)}")
    actions = [key for key in ("shed_kw", "above_joules_per_terahash") if key in raw]
    if len(actions) != 1:
        problems.append(f"[{table}]: give one of shed_kw or above_joules_per_terahash")
    for key in actions:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            problems.append(f"[{table}] {key} = {value!r}: must be a number greater than 0")
    if len(problems) > before:
        return None
    return Window(
        start=times["start"], end=times["end"], weekdays=frozenset(WEEKDAYS.index(d) for d in days),
        shed_kw=float(raw["shed_kw"]) if "shed_kw" in raw else None,
        above_joules_per_terahash=float(raw["above_joules_per_terahash"]) if "above_joules_per_terahash" in raw else None,
    )  # fmt: skip
