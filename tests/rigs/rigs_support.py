"""Helpers for the rig poller tests: virtual time, fake miners, pyasic unit conversion."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

TEST_BOUND_S = 30.0  # what a test's own asyncio deadlines allow
HARD_BOUND_S = 90.0  # past this a hung test ends the run (conftest's faulthandler)


class FakeTime:
    """Clock, sleep and deadlines for the poller: time moves only when a test advances it.

    ``advance`` wakes sleepers in deadline order, letting the loop run between wakes,
    so a scheduler sleeping toward its next poll sees exactly the times it asked for.
    A ``deadline`` expires the same way, so a poll of a real rig that hangs fails exactly
    when the test says, and one that answers never fails for taking real time.
    """

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._order), future))
        await future

    @contextlib.asynccontextmanager
    async def deadline(self, delay: float) -> AsyncIterator[None]:
        """``asyncio.timeout(delay)`` on this clock: past it, the body is cancelled and TimeoutError raised."""
        task = asyncio.current_task()
        inside, expired = True, False
        expiry = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._order), expiry))

        def expire(future: asyncio.Future) -> None:
            nonlocal expired
            if inside and not future.cancelled():
                expired = True
                task.cancel()

        expiry.add_done_callback(expire)
        try:
            yield
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:  # ours, and no one else's: as asyncio.timeout does
                raise TimeoutError from None
            raise
        finally:
            inside = False
            expiry.cancel()  # advance() drops it

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            await settle()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # cancelled: the scheduler woke for another reason
            if not self._sleepers or self._sleepers[0][0] > end:
                break
            deadline, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            future.set_result(None)
        self.now = end
        await settle()


def on_phase(offset: float, interval: float) -> bool:
    """Whether ``offset`` is a whole number of intervals (float-tolerant)."""
    rest = offset % interval
    return min(rest, interval - rest) < 1e-6


async def settle(rounds: int = 50) -> None:
    """Let every ready task run until nothing is left to do (no real I/O involved)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


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
    """A pyasic miner stand-in: records when and with what it was read."""

    def __init__(self, ip: str, clock=None, data=None) -> None:
        self.ip, self.clock = ip, clock
        self.data = data or fake_data()
        self.reads: list[float] = []
        self.includes: list[list[str]] = []
        self.gate: asyncio.Event | None = None  # set: reads wait for it (a slow rig)
        self.fail: Exception | None = None

    async def get_data(self, include=None):
        self.reads.append(self.clock() if self.clock else 0.0)
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
        self.identify_times.setdefault(ip, []).append(self.clock() if self.clock else 0.0)
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
