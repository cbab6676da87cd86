"""The poller's schedule in virtual time: spreading, backoff, adding and removing, stopping."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from fleetd.rigs.poller import LAUNCH_WINDOW_S, PollerConfig, PollState, RigPoller, phase_of
from fake_clock import FakeClock, settle
from rigs_support import TEST_BOUND_S, Collector, FakeFleet, on_phase

INTERVAL = 30.0


def ips(n: int, prefix: str = "10.0") -> list[str]:
    return [f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(n)]


@pytest.fixture
def now() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(now) -> FakeFleet:
    return FakeFleet(clock=now)


@pytest.fixture
async def running(now, fleet):
    """Start a poller in virtual time; it is stopped (and checked for leftovers) afterwards."""
    pollers: list[RigPoller] = []

    async def start(config: PollerConfig = PollerConfig(interval=INTERVAL, timeout=5), collected=None, *, start=True):
        collected = collected or Collector()
        poller = RigPoller(
            config, on_reading=collected.on_reading, on_failure=collected.on_failure, clock=now, identify=fleet.identify
        )
        if start:
            await poller.start()
        pollers.append(poller)
        return poller, collected

    yield start
    for poller in pollers:
        async with asyncio.timeout(TEST_BOUND_S):
            await poller.stop()
        assert not poller.running
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []


async def until_due(poller: RigPoller, now: FakeClock, ip: str) -> None:
    """Move time to the rig's next poll (which then starts), not past it: a read held up
    from there on fails only at its deadline."""
    await now.advance(poller.status(ip).next_poll - now.wall())


async def test_polls_are_spread_over_the_interval(running, now, fleet):
    poller, collected = await running()
    addresses = ips(600)
    start = now.monotonic()
    for ip in addresses:  # all at once, as after a restart
        poller.add(ip)
    await now.advance(INTERVAL)
    times = [fleet.miners[ip].reads for ip in addresses]
    assert all(len(t) == 1 for t in times)  # every rig once in its first interval
    buckets = Counter(int((t[0] - start) / (INTERVAL / 10)) for t in times)
    assert sorted(buckets) == list(range(10))
    assert max(buckets.values()) < 2 * 600 / 10  # no second of the interval takes the herd
    # polled on its phase (never late, at most the launch window early), again one interval on
    await now.advance(INTERVAL)
    for ip in addresses:
        slot = start + (phase_of(ip, INTERVAL) - start) % INTERVAL
        first, second = fleet.miners[ip].reads
        assert slot - LAUNCH_WINDOW_S <= first <= slot
        assert slot + INTERVAL - LAUNCH_WINDOW_S <= second <= slot + INTERVAL
    assert len(collected.readings) == 1200 and collected.failures == []


async def test_rigs_added_and_removed_while_running(running, now, fleet):
    poller, collected = await running()
    a, b, c = ips(3)
    poller.add(a)
    poller.add(b)
    await now.advance(INTERVAL)
    assert len(collected.readings_of(a)) == 1 and len(collected.readings_of(b)) == 1
    poller.add(c)  # e.g. a new Stratum connection
    poller.add(a)  # adding again changes nothing
    await now.advance(INTERVAL)
    assert [len(collected.readings_of(ip)) for ip in (a, b, c)] == [2, 2, 1]
    poller.remove(b)
    await now.advance(2 * INTERVAL)
    assert [len(collected.readings_of(ip)) for ip in (a, b, c)] == [4, 2, 3]
    assert poller.status(b) is None and sorted(poller.ips) == sorted([a, c])
    poller.update([c])
    await now.advance(INTERVAL)
    assert [len(collected.readings_of(ip)) for ip in (a, c)] == [4, 4]


async def test_removing_a_rig_mid_poll_cancels_it_silently(running, now, fleet):
    poller, collected = await running()
    ip = ips(1)[0]
    miner = fleet.miner(ip)
    miner.gate = asyncio.Event()  # the read hangs until released
    poller.add(ip)
    await until_due(poller, now, ip)
    assert len(miner.reads) == 1 and poller.status(ip).polling
    poller.remove(ip)
    await settle()
    miner.gate.set()
    await now.advance(INTERVAL)
    assert collected.readings == [] and collected.failures == []


async def test_a_hung_read_fails_at_its_deadline_on_the_injected_clock(running, now, fleet):
    poller, collected = await running(start=False)  # polled by hand: nothing else moves
    ip = ips(1)[0]
    fleet.miner(ip).gate = asyncio.Event()  # the read never ends by itself
    poller.add(ip)
    round_ = asyncio.create_task(poller.poll_round())
    await now.advance(4.5)
    assert not round_.done() and poller.status(ip).polling and collected.failures == []
    await now.advance(0.5)
    await round_
    assert collected.failures == [(ip, "no answer within 5 s")] and len(fleet.miner(ip).reads) == 1
    assert poller.status(ip).state is PollState.FAILING and poller.status(ip).next_poll == now.wall() + INTERVAL


async def test_by_default_the_deadline_is_real_time(fleet):
    collected = Collector()
    config = PollerConfig(interval=INTERVAL, timeout=0.05)
    poller = RigPoller(config, on_reading=collected.on_reading, on_failure=collected.on_failure, identify=fleet.identify)
    ip = ips(1)[0]
    fleet.miner(ip).gate = asyncio.Event()  # never released: only the deadline ends the read
    poller.add(ip)
    async with asyncio.timeout(TEST_BOUND_S):  # however late a loaded machine lets it fire
        await poller.poll_round()
    assert collected.failures == [(ip, "no answer within 0.05 s")]


async def test_a_rig_removed_before_its_deadline_is_cancelled_not_failed(running, now, fleet):
    poller, collected = await running(start=False)
    ip = ips(1)[0]
    fleet.miner(ip).gate = asyncio.Event()
    poller.add(ip)
    round_ = asyncio.create_task(poller.poll_round())
    await now.advance(1)
    poller.remove(ip)
    await round_
    await now.advance(10)  # past where the deadline was
    assert collected.readings == [] and collected.failures == [] and poller.status(ip) is None


async def test_a_slow_rig_holds_only_its_own_slot(running, now, fleet):
    poller, collected = await running(PollerConfig(interval=INTERVAL, timeout=5, concurrency=2))
    slow, *others = ips(20)
    fleet.miner(slow).gate = asyncio.Event()  # never released: the timeout ends it
    for ip in (slow, *others):
        poller.add(ip)
    await now.advance(INTERVAL)
    assert all(len(collected.readings_of(ip)) == 1 for ip in others)


async def test_backoff_grows_to_its_cap_and_recovery_returns_to_the_phase(running, now, fleet):
    config = PollerConfig(interval=10, timeout=5, backoff_factor=3, backoff_max=100)
    poller, collected = await running(config)
    ip = ips(1)[0]
    fleet.absent.add(ip)  # nothing identifies at this address
    poller.add(ip)
    await now.advance(10 + 7 * 100)
    assert collected.failures_of(ip)[0].startswith("no known miner API answered")
    assert len(collected.failures_of(ip)) == fleet.identified.count(ip) == poller.status(ip).consecutive_failures
    assert poller.status(ip).state is PollState.BACKOFF
    # the gaps between attempts: the interval, then x3 each time, capped at backoff_max
    assert _gaps(fleet, ip)[:6] == [10, 30, 90, 100, 100, 100]
    fleet.absent.clear()
    await now.advance(100)
    assert poller.status(ip).state is PollState.OK and len(collected.readings) >= 1
    reads = fleet.miners[ip].reads
    assert len(reads) >= 3
    assert all(round(b - a, 6) == config.interval for a, b in zip(reads[1:], reads[2:]))  # back on its phase
    assert on_phase(reads[1] - phase_of(ip, config.interval), config.interval)


def _gaps(fleet: FakeFleet, ip: str) -> list[float]:
    times = fleet.identify_times[ip]
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


async def test_a_failing_read_drops_the_cached_miner(running, now, fleet):
    poller, collected = await running()
    ip = ips(1)[0]
    poller.add(ip)
    await now.advance(INTERVAL)
    assert fleet.identified == [ip]
    fleet.miner(ip).fail = ConnectionResetError("reset by peer")
    await now.advance(INTERVAL)
    assert collected.failures == [(ip, "ConnectionResetError: reset by peer")]
    assert poller.status(ip).state is PollState.FAILING
    fleet.miner(ip).fail = None
    await now.advance(INTERVAL)
    assert fleet.identified == [ip, ip] and len(collected.readings) == 2


async def test_a_broken_callback_does_not_stop_the_poller(running, now, fleet):
    class Exploding(Collector):
        def on_reading(self, reading):
            super().on_reading(reading)
            raise RuntimeError("consumer bug")

    poller, collected = await running(collected=Exploding())
    a, b = ips(2)
    poller.add(a)
    poller.add(b)
    await now.advance(2 * INTERVAL)
    assert len(collected.readings) == 4 and poller.running


async def test_errors_are_requested_every_n_polls(running, now, fleet):
    poller, _ = await running(PollerConfig(interval=INTERVAL, timeout=5, errors_every=3))
    ip = ips(1)[0]
    poller.add(ip)
    await now.advance(6 * INTERVAL)
    asked = ["errors" in include for include in fleet.miners[ip].includes]
    assert asked == [True, False, False, True, False, False]


async def test_stop_cancels_polls_in_flight_and_start_resumes(running, now, fleet):
    poller, collected = await running()
    a, b = ips(2)
    fleet.miner(a).gate = asyncio.Event()
    poller.add(a)
    poller.add(b)
    await until_due(poller, now, a)
    assert poller.status(a).polling
    await poller.stop()
    assert not poller.running and not poller.status(a).polling
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    fleet.miner(a).gate = None
    await poller.start()
    await now.advance(2 * INTERVAL)
    assert len(collected.readings_of(a)) >= 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("interval", 0),
        ("interval", -5),
        ("timeout", 0),
        ("timeout", 30),  # not shorter than the interval
        ("concurrency", 0),
        ("concurrency", 2.5),
        ("backoff_factor", 0.5),
        ("backoff_max", 10),  # shorter than the interval
        ("errors_every", 0),
    ],
)
def test_config_names_the_bad_key(key, value):
    with pytest.raises(ValueError, match=rf"poller {key} .*got {value!r}"):
        PollerConfig(**{key: value})


def test_backoff_delays():
    config = PollerConfig(interval=30, backoff_factor=2, backoff_max=300)
    assert [config.backoff(k) for k in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert config.backoff(10_000) == 300
