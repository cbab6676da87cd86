"""The poller against emulated rigs on loopback, read through unmodified pyasic.

The poller's clock, and so its deadlines, are the test's (``FakeClock``) except in the one
test of the real scheduler: a rig that answers is never failed for taking real time on a
loaded machine, and a hung one fails exactly when the test moves time past its deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from fleetd.rigs.models import (
    ANTMINER_S19_XP,
    BITAXE_GAMMA,
    CATALOGUE,
    WHATSMINER_M60S,
    FirmwareFamily,
)
from fleetd.rigs.poller import PollerConfig, PollState, RigPoller, load_pyasic, phase_of
from fake_clock import FakeClock
from rigs_support import TEST_BOUND_S, Collector, on_phase, wait_until

MAKE = {
    FirmwareFamily.ANTMINER_STOCK: "AntMiner",
    FirmwareFamily.WHATSMINER: "WhatsMiner",
    FirmwareFamily.AXEOS: "BitAxe",
}
REPORTS_WATTS = {FirmwareFamily.WHATSMINER, FirmwareFamily.AXEOS}
REPORTS_WORKER = {FirmwareFamily.WHATSMINER, FirmwareFamily.ANTMINER_STOCK}  # pyasic reads no pools from AxeOS
ONE_PER_FAMILY = [ANTMINER_S19_XP, WHATSMINER_M60S, BITAXE_GAMMA]
per_family = pytest.mark.parametrize("model", ONE_PER_FAMILY, ids=lambda m: m.name)

FAST = PollerConfig(interval=30.0, timeout=1.5)


def make_poller(config: PollerConfig = FAST, **kwargs) -> tuple[RigPoller, Collector, FakeClock]:
    collected, now = Collector(), FakeClock()
    poller = RigPoller(config, on_reading=collected.on_reading, on_failure=collected.on_failure, clock=now, **kwargs)
    return poller, collected, now


async def poll_round(poller: RigPoller, *ips: str) -> None:
    async with asyncio.timeout(TEST_BOUND_S):
        await poller.poll_round(ips or None)


@pytest.mark.parametrize("model", CATALOGUE, ids=lambda m: m.name)
async def test_each_model_is_read_in_base_units(start_rig, rig_clock, model):
    rig = await start_rig(model)
    rig_clock.tick(7200)
    state = rig.state
    poller, collected, now = make_poller()
    poller.add(rig.host)
    await poll_round(poller)

    assert collected.failures == []
    [reading] = collected.readings
    assert reading.ip == rig.host and reading.time == now.wall()
    assert reading.make == MAKE[model.firmware]
    assert reading.model == model.pyasic_model
    assert reading.firmware == "Stock"
    assert reading.hashrate == pytest.approx(state.hashrate(), rel=1e-4)  # H/s, not TH/s
    if model.firmware in REPORTS_WATTS:
        assert reading.watts == round(state.watts())
    else:  # stock Antminer firmware reports no power: None, never 0
        assert reading.watts is None
    boards = {f"board{i}": t for i, t in enumerate(state.board_temps())}
    chips = {f"chip{i}": t for i, t in enumerate(state.chip_temps())}
    assert {k: v for k, v in reading.temperatures.items() if k.startswith("board")} == pytest.approx(boards, abs=0.5)
    assert {k: v for k, v in reading.temperatures.items() if k.startswith("chip")} == pytest.approx(chips, abs=0.5)
    assert [reading.fans[str(i)] for i in range(model.fans)] == state.fan_rpms()
    assert reading.uptime == 7200
    assert reading.errors == ()
    assert reading.worker == (state.worker if model.firmware in REPORTS_WORKER else None)
    status = poller.status(rig.host)
    assert status.state is PollState.OK and status.consecutive_failures == 0 and status.last_error is None


@per_family
async def test_a_degraded_or_spiking_rig_reads_as_such(start_rig, model):
    rig = await start_rig(model)
    poller, collected, _ = make_poller()
    poller.add(rig.host)
    rig.state.degrade(0.5)
    rig.state.spike_power(1.3)
    await poll_round(poller)
    [reading] = collected.readings
    assert reading.hashrate == pytest.approx(0.5 * model.nominal_hashrate, rel=1e-4)
    if model.firmware in REPORTS_WATTS:
        assert reading.watts == round(rig.state.watts()) < model.nominal_watts * 1.3
    else:
        assert reading.watts is None


async def test_errors_are_read_then_carried_until_read_again(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    rig.state.add_error(530, "Slot 0 not found.")
    poller, collected, _ = make_poller(PollerConfig(interval=30, timeout=1.5, errors_every=3))
    poller.add(rig.host)
    await poll_round(poller)
    assert collected.readings[-1].errors == ("530: Slot 0 not found.",)
    rig.state.recover()  # the fault clears on the rig ...
    await poll_round(poller)
    await poll_round(poller)
    assert [r.errors for r in collected.readings[1:]] == [("530: Slot 0 not found.",)] * 2  # ... carried
    await poll_round(poller)
    assert collected.readings[-1].errors == ()  # the third poll after a read reads them again


async def test_stock_antminer_errors_are_messages(start_rig):
    rig = await start_rig(ANTMINER_S19_XP)
    rig.state.add_error(1, "PSU voltage out of range")
    poller, collected, _ = make_poller()
    poller.add(rig.host)
    await poll_round(poller)
    assert collected.readings[-1].errors == ("PSU voltage out of range",)


@per_family
async def test_a_rig_that_goes_away_backs_off_and_recovers(start_rig, model):
    rig = await start_rig(model)
    config = PollerConfig(interval=30, timeout=1.5, backoff_factor=2, backoff_max=100)
    identified: list[str] = []
    get_miner = load_pyasic().get_miner

    async def identify(ip):
        identified.append(ip)
        return await get_miner(ip)

    poller, collected, now = make_poller(config, identify=identify)
    poller.add(rig.host)
    await poll_round(poller)
    assert len(collected.readings) == 1 and identified == [rig.host]

    await rig.stop()  # the firmware's API daemon dies: connections are refused
    delays, states = [], []
    for _ in range(4):
        await poll_round(poller)
        status = poller.status(rig.host)
        delays.append(round(status.next_poll - now.wall(), 6))
        states.append(status.state)
    assert delays == [30, 60, 100, 100]  # interval, doubling, capped at backoff_max
    assert states == [PollState.FAILING, PollState.BACKOFF, PollState.BACKOFF, PollState.BACKOFF]
    assert poller.status(rig.host).consecutive_failures == 4
    assert len(collected.failures_of(rig.host)) == 4 and len(collected.readings) == 1
    assert poller.status(rig.host).last_error == collected.failures[-1][1]

    await rig.start()
    await poll_round(poller)
    status = poller.status(rig.host)
    assert status.state is PollState.OK and status.consecutive_failures == 0 and status.last_error is None
    assert len(collected.readings) == 2
    assert collected.readings[-1].hashrate == pytest.approx(model.nominal_hashrate, rel=1e-4)
    assert len(identified) >= 2  # identified again after the failures
    # back on its phase, at least half an interval on
    assert config.interval / 2 <= status.next_poll - now.wall() < 1.5 * config.interval
    due = status.next_poll - now.wall() + now.monotonic()  # phases are on monotonic time
    assert on_phase(due - phase_of(rig.host, config.interval), config.interval)


@per_family
async def test_a_hung_rig_does_not_stall_the_round(start_rig, model):
    healthy = [await start_rig(m, f"ok-{i}") for i, m in enumerate(ONE_PER_FAMILY)]
    hung = await start_rig(model, "hung")
    poller, collected, now = make_poller(PollerConfig(interval=30, timeout=1.0))
    for rig in (*healthy, hung):
        poller.add(rig.host)
    await poll_round(poller)  # identified while it answered
    assert len(collected.readings) == 4
    hung.state.go_offline()  # accepts connections, never answers
    round_ = asyncio.create_task(poll_round(poller))
    await wait_until(lambda: len(collected.readings) == 4 + 3)  # the others are read meanwhile
    await now.advance(0.5)
    assert not round_.done() and collected.failures == []  # the round waits for the hung rig ...
    await now.advance(0.5)
    await round_  # ... until its deadline: one timeout, not pyasic's unbounded wait
    assert len(collected.readings) == 4 + 3
    assert collected.failures == [(hung.host, "no answer within 1 s")]
    assert poller.status(hung.host).state is PollState.FAILING


async def test_a_rig_hung_before_identification_times_out_too(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    rig.state.go_offline()
    poller, collected, now = make_poller(PollerConfig(interval=30, timeout=1.0))
    poller.add(rig.host)
    round_ = asyncio.create_task(poll_round(poller))
    await wait_until(lambda: poller.status(rig.host).polling)
    await now.advance(0.5)
    assert not round_.done()  # pyasic would wait for the silent rig ...
    await now.advance(0.5)
    await round_  # ... but the poller's deadline covers identification too
    assert collected.readings == [] and collected.failures == [(rig.host, "no answer within 1 s")]
    assert poller.status(rig.host).state is PollState.FAILING


async def test_an_address_with_no_rig_fails_cleanly(allocator):
    poller, collected, _ = make_poller(PollerConfig(interval=30, timeout=2.0))
    ip = allocator.next()  # nothing listens there: refused at once
    poller.add(ip)
    await poll_round(poller)
    [(failed_ip, error)] = collected.failures
    assert failed_ip == ip and "could not identify" in error


async def test_concurrency_bound_is_respected(start_rig):
    rigs = [await start_rig(WHATSMINER_M60S, f"rig-{i}") for i in range(9)]
    get_miner = load_pyasic().get_miner
    in_flight, peak, done = 0, 0, 0
    changed = asyncio.Condition()

    class Counted:  # the real pyasic miner, its reads counted
        def __init__(self, miner):
            self.miner = miner

        async def get_data(self, **kwargs):
            nonlocal in_flight, peak, done
            async with changed:
                in_flight += 1
                peak = max(peak, in_flight)
                changed.notify_all()
                # Each read waits until the bound is full (or no rig is left to fill it), so
                # reaching it does not depend on how the real reads happen to overlap; a poller
                # that read one rig at a time would hang here, one without a bound overshoots.
                await changed.wait_for(lambda: in_flight >= 3 or done + in_flight == len(rigs))
            try:
                return await self.miner.get_data(**kwargs)
            finally:
                async with changed:
                    in_flight -= 1
                    done += 1
                    changed.notify_all()

    async def identify(ip):
        miner = await get_miner(ip)
        return Counted(miner) if miner else None

    poller, collected, _ = make_poller(PollerConfig(interval=30, timeout=2, concurrency=3), identify=identify)
    for rig in rigs:
        poller.add(rig.host)
    await poll_round(poller)
    assert len(collected.readings) == 9
    assert peak == 3


async def test_the_real_scheduler_polls_added_rigs_and_forgets_removed_ones(start_rig):
    """Real time, real sockets: a short interval, rigs added and removed while it runs.

    It waits for readings rather than for time, so a loaded machine only makes it slower; a
    poll that a loaded machine does make miss the real 0.9 s deadline is retried a second
    later (backoff_max = interval), so it delays the readings, never loses them.
    """
    a, b, c = [await start_rig(m, f"rig-{i}") for i, m in enumerate(ONE_PER_FAMILY)]
    collected = Collector()
    started: list[str] = []  # every poll begun (identify, or a read of the cached miner), by IP
    get_miner = load_pyasic().get_miner

    class Recorded:  # the real pyasic miner, its reads recorded
        def __init__(self, miner, ip):
            self.miner, self.ip = miner, ip

        async def get_data(self, **kwargs):
            started.append(self.ip)
            return await self.miner.get_data(**kwargs)

    async def identify(ip):
        started.append(ip)
        miner = await get_miner(ip)
        return Recorded(miner, ip) if miner else None

    config = PollerConfig(interval=1.0, timeout=0.9, backoff_max=1.0)
    poller = RigPoller(config, on_reading=collected.on_reading, identify=identify)
    async with asyncio.timeout(TEST_BOUND_S):
        async with poller:
            poller.add(a.host)
            poller.add(b.host)
            await wait_until(lambda: all(len(collected.readings_of(rig.host)) >= 2 for rig in (a, b)))
            poller.add(c.host)
            poller.remove(a.host)  # a poll of it in flight is cancelled and reports nothing
            count_a, polls_a = len(collected.readings_of(a.host)), started.count(a.host)
            # c's polls are an interval apart, so its third begins at least ~2 s after the
            # removal: a's phase came round meanwhile, and a poll of it would have begun
            await wait_until(lambda: len(collected.readings_of(c.host)) >= 3)
            assert len(collected.readings_of(a.host)) == count_a and started.count(a.host) == polls_a
            assert poller.status(a.host) is None and a.host not in poller
        assert not poller.running
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []
