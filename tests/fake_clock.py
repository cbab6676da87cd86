"""The one fake clock of the tests: a stand-in for ``fleetd.clock.Clock`` that moves only when told."""

from __future__ import annotations

import asyncio

START_WALL = 1_700_000_000.0  # a fixed Unix time, so ntime and dates in tests are stable
START_MONOTONIC = 1_000.0


async def settle(rounds: int = 10) -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """``wall``, ``monotonic`` and ``sleep`` as ``fleetd.clock.Clock`` has them.

    ``sleep`` blocks until ``advance`` moves time past its deadline; ``tick`` moves time
    for code that only reads it.
    """

    def __init__(self, wall: float = START_WALL, monotonic: float = START_MONOTONIC) -> None:
        self.elapsed = 0.0
        self._wall0 = wall
        self._monotonic0 = monotonic
        self.sleeps: list[float] = []  # every delay asked for, in order
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def wall(self) -> float:
        return self._wall0 + self.elapsed

    def monotonic(self) -> float:
        return self._monotonic0 + self.elapsed

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future = asyncio.get_running_loop().create_future()
        entry = (self.elapsed + max(0.0, delay), future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def tick(self, seconds: float) -> None:
        """Move time forward without waking sleepers (for code that only reads the clock)."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self.elapsed += seconds

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline, in order."""
        if seconds < 0:
            raise ValueError("time does not go back")
        end = self.elapsed + seconds
        await settle()
        while True:
            pending = [wake for wake, future in self._sleepers if not future.done()]
            if not pending or min(pending) > end:
                break
            self.elapsed = max(self.elapsed, min(pending))
            for wake, future in list(self._sleepers):
                if wake <= self.elapsed and not future.done():
                    future.set_result(None)
            await settle()
        self.elapsed = end
        await settle()
