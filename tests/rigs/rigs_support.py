"""Helpers for the rig poller tests: fake miners and callbacks, phase checks, condition waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

TEST_BOUND_S = 30.0  # what a test's own asyncio deadlines allow
HARD_BOUND_S = 90.0  # past this a hung test ends the run (conftest's faulthandler)


def on_phase(offset: float, interval: float) -> bool:
    """Whether ``offset`` is a whole number of intervals (float-tolerant)."""
    rest = offset % interval
    return min(rest, interval - rest) < 1e-6


async def wait_until(predicate: Callable[[], object], timeout: float = TEST_BOUND_S) -> None:
    """Until ``predicate()`` holds, checked every 10 ms (real I/O may be involved). ``timeout``
    is a hang guard, not a measurement: a loaded machine only makes this slower."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def fake_data(hashrate_ths: float = 100.0, **overrides) -> SimpleNamespace:
    """What MinerData offers the poller, as plain attributes."""
    data = dict(
        hashrate=hashrate_ths,  # a bare number is TH/s, as pyasic documents
        wattage=3000,
        hashboards=[],
        env_temp=None,
        fans=[],
        fan_psu=None,
        uptime=60,
        errors=[],
        pools=[],
        make="AntMiner",
        model="S19 XP",
        firmware="Stock",
    )
    data.update(overrides)
    return SimpleNamespace(**data)


class FakeMiner:
    """A pyasic miner stand-in: records when (on ``clock``'s monotonic time) and with what it was read."""

    def __init__(self, ip: str, clock=None, data=None) -> None:
        self.ip, self.clock = ip, clock
        self.data = data or fake_data()
        self.reads: list[float] = []
        self.includes: list[list[str]] = []
        self.gate: asyncio.Event | None = None  # set: reads wait for it (a slow rig)
        self.fail: Exception | None = None

    async def get_data(self, include=None):
        self.reads.append(self.clock.monotonic() if self.clock else 0.0)
        self.includes.append(list(include or []))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.data


class FakeFleet:
    """``identify`` for the poller: a FakeMiner per IP, or None for IPs marked absent."""

    def __init__(self, clock=None) -> None:
        self.clock = clock
        self.miners: dict[str, FakeMiner] = {}
        self.absent: set[str] = set()
        self.identified: list[str] = []
        self.identify_times: dict[str, list[float]] = {}

    def miner(self, ip: str) -> FakeMiner:
        if ip not in self.miners:
            self.miners[ip] = FakeMiner(ip, self.clock)
        return self.miners[ip]

    async def identify(self, ip: str):
        self.identified.append(ip)
        self.identify_times.setdefault(ip, []).append(self.clock.monotonic() if self.clock else 0.0)
        await asyncio.sleep(0)
        return None if ip in self.absent else self.miner(ip)


class Collector:
    """The poller's callbacks, recorded."""

    def __init__(self) -> None:
        self.readings: list = []
        self.failures: list[tuple[str, str]] = []

    def on_reading(self, reading) -> None:
        self.readings.append(reading)

    def on_failure(self, ip: str, error: str) -> None:
        self.failures.append((ip, error))

    def readings_of(self, ip: str) -> list:
        return [r for r in self.readings if r.ip == ip]

    def failures_of(self, ip: str) -> list[str]:
        return [e for i, e in self.failures if i == ip]
