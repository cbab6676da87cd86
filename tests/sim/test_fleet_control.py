"""Simulated rigs switched off and on through their firmware, as the pool sees it on Stratum.

Each fleet here lives on a FakeClock: its share schedule moves only when the test moves the
clock, so "no share in ten minutes" is exact, not a matter of luck. The rigs mine against
the loopback test pool at a difficulty their CPU budget makes cheap; the firmware APIs need
ports 80 and 4028 (root), and these tests skip without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings

import pytest
from fake_clock import FakeClock
from pyasic_support import pyasic_settings

from fleetd.rigs.models import ANTMINER_S19_XP, BITAXE_GAMMA, WHATSMINER_M60S
from fleetd.sim.fleet import TICK_S, FleetConfig
from sim_support import WAIT_S, LoopbackPool, rig_network, running_fleet

with warnings.catch_warnings():  # pyasic's import trips deprecation warnings that are not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyasic import get_miner

HASH_SCALE = 1e-9  # an M60S grinds 186 kH/s of real work
DIFFICULTY = 1e-6  # ~4,300 hashes a share: ~40 shares per simulated second
PYASIC = {"factory_get_timeout": 10, "factory_get_retries": 1, "api_function_timeout": 10, "get_data_retries": 1}


@pytest.fixture(autouse=True)
def patient_pyasic():
    with pyasic_settings(PYASIC):
        yield


@contextlib.asynccontextmanager
async def one_rig(model, clock: FakeClock):
    """A fleet of one ``model`` rig on ``clock``, mining against a loopback pool."""
    async with LoopbackPool(difficulty=DIFFICULTY) as pool:
        config = FleetConfig(
            "127.0.0.1", pool.port, rigs=1, models=(model,), network=rig_network(),
            hash_scale=HASH_SCALE, share_interval=None, seed=7,
        )  # fmt: skip
        async with running_fleet(config, clock=clock) as fleet:
            yield pool, fleet.rig(1)


async def advance_until(clock: FakeClock, predicate, step: float = TICK_S) -> None:
    """Move the clock a tick at a time until ``predicate()`` holds (a hang guard bounds it)."""
    async with asyncio.timeout(WAIT_S):
        while not predicate():
            await clock.advance(step)


async def advance(clock: FakeClock, seconds: float, step: float = TICK_S) -> None:
    for _ in range(round(seconds / step)):
        await clock.advance(step)


def open_connections(pool: LoopbackPool) -> int:
    return sum(1 for connection in pool.connections if not connection.writer.is_closing())


@pytest.mark.parametrize("model", [ANTMINER_S19_XP, WHATSMINER_M60S], ids=lambda m: m.name)
async def test_a_rig_stopped_through_pyasic_stays_connected_submits_nothing_and_mines_again_once_warm(model):
    clock = FakeClock()
    async with one_rig(model, clock) as (pool, rig):
        await advance_until(clock, lambda: rig.accepted >= 20)
        session = rig.miner
        miner = await get_miner(rig.host)
        assert await miner.stop_mining() is True
        await advance_until(clock, lambda: not rig.busy)  # the replies in flight come back
        stopped = rig.submitted, len(pool.accepted)

        await advance(clock, 300)  # five minutes asleep
        assert (rig.submitted, len(pool.accepted)) == stopped
        assert rig.miner is session and session.connected and open_connections(pool) == 1  # still on the pool
        assert rig.snapshot().reported_hashrate == 0

        assert await miner.resume_mining() is True
        await advance(clock, rig.state.warmup() - 1)
        assert rig.submitted == stopped[0]  # warming up: still nothing
        await advance_until(clock, lambda: len(pool.accepted) >= stopped[1] + 20)
        assert rig.miner is session and rig.sessions == 1


async def test_a_power_limited_rig_submits_at_the_lower_rate_its_hash_rate_implies():
    clock = FakeClock()
    async with one_rig(WHATSMINER_M60S, clock) as (_pool, rig):
        await advance_until(clock, lambda: rig.accepted >= 5)
        full = rig.simulated_hashrate
        miner = await get_miner(rig.host)
        assert await miner.set_power_limit(2000) is True
        await advance(clock, rig.state.warmup())
        before = rig.implied_work, rig.mining_seconds
        await advance_until(clock, lambda: rig.mining_seconds - before[1] >= 5)
        rate = (rig.implied_work - before[0]) * 2**32 / (rig.mining_seconds - before[1])
        assert rate == pytest.approx(rig.simulated_hashrate, rel=1e-9)
        assert rig.simulated_hashrate == pytest.approx(full * (2000 / 3441) ** 0.85)


async def test_a_restarted_bitaxe_dials_the_pool_again_and_mines_after_its_warm_up():
    clock = FakeClock()
    async with one_rig(BITAXE_GAMMA, clock) as (pool, rig):
        await advance_until(clock, lambda: rig.accepted >= 5)
        miner = await get_miner(rig.host)
        with contextlib.suppress(Exception):  # pyasic cannot parse AxeOS's text answer
            await miner.reboot()
        await advance_until(clock, lambda: rig.sessions == 2 and rig.miner.connected and open_connections(pool) == 1)
        assert len(pool.connections) == 2  # the old one hung up, a new one dialled
        accepted = len(pool.accepted)
        await advance(clock, rig.state.warmup() - 1)
        assert len(pool.accepted) == accepted
        await advance_until(clock, lambda: len(pool.accepted) >= accepted + 5)
