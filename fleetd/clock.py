"""The one clock: wall time, monotonic time and sleep, made once by the app and passed to
every part that reads time, so a test drives them all with one fake clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clock:
    wall: Callable[[], float] = time.time  # Unix seconds: timestamps, ntime, ages shown to people
    monotonic: Callable[[], float] = time.monotonic  # intervals: vardiff, timeouts, rates
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


SYSTEM_CLOCK = Clock()
