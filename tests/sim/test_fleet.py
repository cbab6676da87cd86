"""The fleet simulator against a real fleetd on loopback: what the pool counts is what the rigs did.

Every fleet here runs for a few seconds at most; rig APIs need ports 80 and 4028 (root),
and tests that need them skip when binding is not permitted.

No test here depends on share luck or on how fast the machine is. Tests wait for what
they expect (``wait_until``) instead of sleeping and hoping; what the rigs' rates imply is
checked exactly on the simulator's own figures (``implied_shares``, ``implied_work``); and
share counts, which are Poisson, are only held to bounds of six standard deviations, which
a correct simulator misses about once in 500 million runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import math
import signal
import warnings

import aiohttp
import pytest
import structlog
from pyasic_support import pyasic_settings
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

with warnings.catch_warnings():  # pyasic's import trips deprecation warnings that are not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyasic import get_miner
    from pyasic.device.algorithm import MinerAlgo

from fleetd import cli
from fleetd.rigs.models import ANTMINER_S21, BITAXE_GAMMA, CATALOGUE, WHATSMINER_M60S, FirmwareFamily
from fleetd.sim.fleet import FleetConfig, auto_hash_scale, plan, run
from fleetd.sim.fleet_faults import FaultKind, FaultSpec, parse_fault
from fleetd.stratum.rejects import Reject
from server_support import make_config, start_fleetd
from sim_support import rig_network, running_fleet, wait_until

SHARE_INTERVAL = 0.05  # 20 shares a second per rig
FAST_SHARES = 0.01  # 100 a second (the Bitaxe stays at fleetd's floor, ~28): where counts are compared with rates
TEST_BOUND_S = 60.0  # a hang guard for a whole test; they take a few seconds
API_WAIT_S = 10.0  # for a rig API that answers; it normally takes milliseconds
PYASIC = {  # whole seconds; only a rig that does not answer would wait this long, and none is read here
    "factory_get_timeout": 10,
    "factory_get_retries": 1,
    "api_function_timeout": 10,
    "get_data_retries": 1,
}
SIGMAS = 6  # a correct simulator misses a 6-sigma bound about once in 500 million runs


def poisson_band(mean: float) -> float:
    """How far a Poisson count may be from its mean: 6 sigma, +2 for the share in progress at each end."""
    return SIGMAS * math.sqrt(mean) + 2


@pytest.fixture(autouse=True)
def quick_pyasic():
    with pyasic_settings(PYASIC):
        yield


@contextlib.asynccontextmanager
async def pool(stratum=None, **source):
    """A real fleetd whose vardiff agrees with the rigs' share interval, starting at the minimum
    difficulty so each rig's BIP310 minimum decides."""
    config = make_config()
    stratum = {"start_difficulty": 1e-9, "share_interval_seconds": SHARE_INTERVAL, **(stratum or {})}
    config = dataclasses.replace(
        config,
        stratum=dataclasses.replace(config.stratum, **stratum),
        source=dataclasses.replace(config.source, **source),
    )
    running = await start_fleetd(config)
    try:
        yield running
    finally:
        await running.runner.cleanup()


@contextlib.asynccontextmanager
async def fleet_on(running, **options):
    host, port = running.stratum
    options.setdefault("rigs", 5)
    options.setdefault("share_interval", SHARE_INTERVAL)
    async with running_fleet(FleetConfig(host, port, network=rig_network(), **options), timeout=TEST_BOUND_S) as fleet:
        yield fleet


async def settle(fleet, seconds: float = 0.0):
    """Mine for ``seconds`` more, then pause and let the replies in flight arrive.

    The counters then hold still. ``seconds`` only sets how much is mined: whatever is
    compared afterwards is compared with what the simulator says that time implied.
    """
    await asyncio.sleep(seconds)
    await fleet.pause(timeout=TEST_BOUND_S)
    snapshot = fleet.snapshot()
    assert all(rig.in_flight == 0 for rig in snapshot.rigs)
    return snapshot


async def scrape_metrics(running) -> dict[tuple[str, str], float]:
    """Per-rig samples from the real /metrics endpoint (accepted shares only, for shares_total)."""
    async with aiohttp.ClientSession() as session, session.get(running.http + "/metrics") as response:
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "rig" in sample.labels and sample.labels.get("result", "accepted") == "accepted":
                samples[(sample.name, sample.labels["rig"])] = sample.value
    return samples


def pool_side(running, worker):
    return running.server.workers[worker]


def peers(running) -> set[str]:
    return {connection.core.peer_ip for connection in running.server.connections}


def reason_counts(snapshot_rejects) -> dict[str, int]:
    """The simulator's (code, message) counts as fleetd's machine-readable reasons."""
    by_error = {(r.code, r.message): r.reason for r in Reject}
    return {by_error[key]: count for key, count in snapshot_rejects.items()}


def terahash(rate) -> float:
    return float(rate.into(MinerAlgo.SHA256.unit.H)) / 1e12


async def api_request(host: str, command: str, timeout: float = API_WAIT_S) -> dict:
    """One cgminer-style request on port 4028, as a poller sends it."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, 4028)
        try:
            writer.write(json.dumps({"command": command}).encode())
            await writer.drain()
            return json.loads((await reader.read()).rstrip(b"\x00"))
        finally:
            writer.close()


# -- Stratum side ------------------------------------------------------------------------------


async def test_each_rig_mines_from_its_own_address_at_the_rate_its_hash_rate_implies():
    async with (
        asyncio.timeout(TEST_BOUND_S),
        pool({"share_interval_seconds": FAST_SHARES}) as running,
        fleet_on(running, share_interval=FAST_SHARES) as fleet,
    ):
        assert peers(running) == {rig.host for rig in fleet.rigs}  # five rigs, five peer IPs
        snapshot = await settle(fleet, 3.0)  # ~300 shares a rig (~85 for the Bitaxe), however long 3 s takes
        metrics = await scrape_metrics(running)

    assert [rig.worker for rig in snapshot.rigs] == [
        "site.s19xp-01", "site.s21-02", "site.s21xp-03", "site.m60s-04", "site.bitaxe-05",
    ]  # fmt: skip
    for rig in snapshot.rigs:
        seen = pool_side(running, rig.worker)
        assert seen.ip == rig.host
        # the pool counted exactly what the simulator says it got accepted
        assert (seen.accepted, sum(seen.rejected.values())) == (rig.accepted, rig.rejected_total) == (rig.submitted, 0)
        assert seen.accepted_work == pytest.approx(rig.accepted_work, rel=1e-9)
        # and /metrics says the same: shares accepted x difficulty x 2^32 = fleetd_rig_hashes_total
        assert metrics[("fleetd_rig_hashes_total", rig.worker)] == pytest.approx(rig.accepted_work * 2**32, rel=1e-9)
        assert metrics[("fleetd_rig_shares_total", rig.worker)] == rig.accepted
        # the share schedule runs at exactly the simulated hash rate, however the loop was scheduled
        assert rig.simulated_hashrate == pytest.approx(rig.reported_hashrate * snapshot.hash_scale)
        assert rig.implied_work * 2**32 == pytest.approx(rig.simulated_hashrate * rig.mining_seconds, rel=1e-9)
        assert rig.implied_work == pytest.approx(rig.implied_shares * rig.difficulty, rel=1e-9)  # one difficulty
        # Poisson-timed shares: within 6 sigma of what the rate implied (+-20 % at ~300 shares)
        assert abs(rig.submitted - rig.implied_shares) < poisson_band(rig.implied_shares), rig.name
        # so the hash rate the pool credits is the simulated one, within the same band
        credited = rig.accepted_hashes / rig.mining_seconds
        assert abs(credited / rig.simulated_hashrate - 1) < poisson_band(rig.implied_shares) / rig.implied_shares
        assert rig.hashes > 0 and rig.skipped == 0 and rig.behind_shares == 0
    # the pool sees the fleet's proportions: an S21 XP does 225 times a Bitaxe's work
    xp, bitaxe = snapshot.rig("s21xp-03"), snapshot.rig("bitaxe-05")
    assert xp.implied_work / xp.mining_seconds == pytest.approx(225 * bitaxe.implied_work / bitaxe.mining_seconds)
    xp_band, bitaxe_band = (poisson_band(r.implied_shares) / r.implied_shares for r in (xp, bitaxe))
    ratio = (xp.accepted_work / xp.mining_seconds) / (bitaxe.accepted_work / bitaxe.mining_seconds)
    assert 225 * (1 - xp_band) / (1 + bitaxe_band) < ratio < 225 * (1 + xp_band) / (1 - bitaxe_band)


async def test_rigs_negotiate_version_rolling_and_ask_for_their_minimum_difficulty():
    async with asyncio.timeout(TEST_BOUND_S), pool() as running, fleet_on(running, rigs=5) as fleet:
        for rig in fleet.rigs:
            stats = rig.miner_stats
            assert stats.version_mask == 0x1FFFE000  # the pool's mask; a Bitaxe asked for all 32 bits
            wanted = rig.model.nominal_hashrate * fleet.hash_scale * SHARE_INTERVAL / 2**32
            assert rig.miner.job.difficulty == pytest.approx(wanted)  # the first job already has it
        agents = {c.core.peer_ip: c.core.session.user_agent for c in running.server.connections}
        assert agents[fleet.rig("bitaxe-05").host] == "bitaxe/BM1370/v2.6.1"
        assert agents[fleet.rig("m60s-04").host].startswith("btminer/")
        assert agents[fleet.rig("s21-02").host].startswith("bmminer/")


async def test_a_degraded_rig_submits_fewer_shares_and_reports_a_lower_hash_rate():
    degraded = FaultSpec(2, FaultKind.DEGRADE, 0.25)
    fast = {"share_interval_seconds": FAST_SHARES}
    async with asyncio.timeout(TEST_BOUND_S), pool(fast) as running:
        options = {"models": (WHATSMINER_M60S,), "faults": (degraded,), "share_interval": FAST_SHARES}
        async with fleet_on(running, rigs=2, **options) as fleet:
            await wait_until(lambda: sum(rig.accepted for rig in fleet.rigs) >= 500)  # ~4 s
            snapshot = await settle(fleet)
            miner = await get_miner(fleet.rig(2).host)
            reported = await miner.get_data()

    healthy, slow = snapshot.rigs
    assert slow.faults == ("degrade",)
    assert slow.reported_hashrate == 0.25 * healthy.reported_hashrate
    assert terahash(reported.hashrate) == pytest.approx(0.25 * WHATSMINER_M60S.nominal_hashrate / 1e12, rel=1e-3)
    # its share schedule runs at exactly a quarter of the healthy rig's rate ...
    slow_rate, healthy_rate = (rig.implied_work / rig.mining_seconds for rig in (slow, healthy))
    assert slow_rate == pytest.approx(0.25 * healthy_rate, rel=1e-9)
    # ... at the same difficulty (both ask for the M60S minimum), so a share is worth the same from either
    assert slow.difficulty == healthy.difficulty
    work = [pool_side(running, rig.worker).accepted_work for rig in snapshot.rigs]
    assert work == pytest.approx([rig.accepted_work for rig in snapshot.rigs], rel=1e-9)
    # Of the n shares the two found, the degraded rig's count is Binomial(n, p), p = its share of
    # the implied work (~0.2), whatever the time they took: within 6 sigma (+1 for the last share)
    n = healthy.accepted + slow.accepted
    p = slow.implied_shares / (slow.implied_shares + healthy.implied_shares)
    assert p == pytest.approx(0.2, abs=0.01)
    assert abs(slow.accepted - n * p) < SIGMAS * math.sqrt(n * p * (1 - p)) + 1
    assert 0.09 < work[1] / work[0] < 0.46  # a quarter of the healthy rig's work, as the pool counts it (6 sigma)


def fault_events(logs: list[dict], rig: str) -> list[tuple[str, str]]:
    return [(e["event"], e["fault"]) for e in logs if e["event"].startswith("fault_") and e.get("rig") == rig]


async def test_offline_rig_hangs_up_goes_silent_and_comes_back_from_the_same_address():
    # rig 1 goes offline on schedule and stays so until the test has seen it silent (a timed
    # return could come before a loaded machine got to look); rig 2's timed fault ends by itself
    offline = FaultSpec(1, FaultKind.OFFLINE, at=0.3)
    blip = FaultSpec(2, FaultKind.POWER, 1.2, at=0.0, duration=0.3)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # restored by conftest
    with capture_logs() as logs:
        async with asyncio.timeout(TEST_BOUND_S), pool() as running:
            options = {"models": (WHATSMINER_M60S,), "faults": (offline, blip)}
            async with fleet_on(running, rigs=2, **options) as fleet:
                rig, other = fleet.rig(1), fleet.rig(2)
                await wait_until(lambda: rig.state.offline and rig.host not in peers(running))  # it hung up
                assert rig.snapshot().faults == ("offline",) and other.host in peers(running)
                with pytest.raises(TimeoutError):  # the API accepts, then never answers
                    await api_request(rig.host, "summary", timeout=0.5)
                before = rig.accepted
                rig.clear(FaultKind.OFFLINE)
                await wait_until(lambda: rig.host in peers(running) and rig.accepted > before)
                await wait_until(lambda: ("fault_cleared", "power") in fault_events(logs, other.name))
                assert other.snapshot().faults == ()
                snapshot = await settle(fleet)  # the counters hold still while the API is asked
                summary = await api_request(rig.host, "summary")

    assert summary["SUMMARY"][0]["Accepted"] == rig.state.accepted == snapshot.rig(rig.name).accepted
    back = snapshot.rig(rig.name)
    assert back.sessions == 2 and back.accepted > before and back.faults == ()
    assert pool_side(running, rig.worker).accepted == back.accepted  # one rig, history kept across sessions
    assert fault_events(logs, rig.name) == [("fault_injected", "offline"), ("fault_cleared", "offline")]
    assert fault_events(logs, other.name) == [("fault_injected", "power"), ("fault_cleared", "power")]


def held_api_connections() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "CgminerApiServer._serve"]


async def test_a_fleet_stopped_while_a_rig_is_offline_logs_no_errors(caplog):
    offline = FaultSpec(1, FaultKind.OFFLINE)  # from the start until the fleet stops
    async with asyncio.timeout(TEST_BOUND_S), pool() as running:
        async with fleet_on(running, rigs=1, models=(WHATSMINER_M60S,), faults=(offline,)) as fleet:
            while not fleet.rig(1).state.offline:
                await asyncio.sleep(0.01)
            # a poller's request the silent rig holds unanswered while the fleet stops
            _reader, writer = await asyncio.open_connection(fleet.rig(1).host, 4028)
            writer.write(b'{"command":"summary"}')
            while not held_api_connections():
                await asyncio.sleep(0.01)
        writer.close()

    assert not held_api_connections()
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []  # e.g. "Exception in callback ... CancelledError" from asyncio


async def test_bad_submits_come_back_with_their_reject_codes_and_the_pool_counts_them_by_reason():
    faults = (
        FaultSpec(1, FaultKind.INVALID, 0.3),
        FaultSpec(2, FaultKind.DUPLICATE, 0.3),
        FaultSpec(3, FaultKind.STALE, 0.5),
    )
    # a block every 0.7 s, so there is old work to go stale
    async with asyncio.timeout(TEST_BOUND_S), pool(block_interval_seconds=0.7) as running:
        async with fleet_on(running, rigs=4, models=(ANTMINER_S21,), faults=faults) as fleet:
            bad_invalid, bad_duplicate, bad_stale, good = fleet.rigs
            duplicate_code = (Reject.DUPLICATE.code, Reject.DUPLICATE.message)
            await wait_until(
                lambda: bad_invalid.injected["invalid"] > 5
                and bad_duplicate.injected["duplicate"] > 5
                and bad_duplicate.rejected[duplicate_code] > 0  # not every one retired by a block in flight
                and bad_stale.injected["stale"] > 5  # after the first block
                and good.submitted >= 40  # ~2 s, ~3 blocks: enough to judge its share of stale ones
            )
            snapshot = await settle(fleet)

    invalid, duplicate, stale, clean = snapshot.rigs
    for rig in snapshot.rigs:  # the pool's reasons are exactly the simulator's reject codes
        assert dict(pool_side(running, rig.worker).rejected) == reason_counts(rig.rejected)
        assert pool_side(running, rig.worker).accepted == rig.accepted
    # any bad share whose job a block retires on its way is stale first: count those as possible
    low = invalid.rejected.get((Reject.LOW_DIFFICULTY.code, Reject.LOW_DIFFICULTY.message), 0)
    stale_too = invalid.rejected.get((Reject.STALE.code, Reject.STALE.message), 0)
    assert invalid.injected["invalid"] > 5
    assert low <= invalid.injected["invalid"] <= low + stale_too
    assert invalid.rejected_total == low + stale_too  # no other kind of reject
    dup = duplicate.rejected.get((Reject.DUPLICATE.code, Reject.DUPLICATE.message), 0)
    stale_too = duplicate.rejected.get((Reject.STALE.code, Reject.STALE.message), 0)
    assert duplicate.injected["duplicate"] > 5
    assert 0 < dup <= duplicate.injected["duplicate"] <= dup + stale_too
    assert stale.injected["stale"] > 5
    assert stale.rejected[Reject.STALE.code, Reject.STALE.message] >= stale.injected["stale"]
    # a good share in flight when a block lands may be stale too; nothing else is refused
    assert set(clean.rejected) <= {(Reject.STALE.code, Reject.STALE.message)}
    assert clean.rejected_total < 0.25 * clean.submitted


# -- the difficulty contract -------------------------------------------------------------------


async def test_a_pool_difficulty_beyond_the_cpu_is_skipped_and_reported_not_ground():
    # a pool that never goes below difficulty 0.001: 4.3 million hashes a share, over 2^21
    async with asyncio.timeout(TEST_BOUND_S), pool({"min_difficulty": 1e-3, "start_difficulty": 1e-3}) as running:
        # 2 GH/s simulated: ~470 shares a second due, none affordable (so none costs any CPU)
        async with fleet_on(running, rigs=1, models=(ANTMINER_S21,), hash_scale=1e-5, share_interval=None) as fleet:
            await wait_until(lambda: fleet.rig(1).skipped >= 300)
            snapshot = await settle(fleet)

    (rig,) = snapshot.rigs
    assert rig.difficulty == 1e-3
    assert rig.skipped >= 300 and rig.submitted == 0 and rig.hashes == 0
    # one skip per share due on the Poisson schedule: within 6 sigma (+-25 % here) of what the rate implied
    assert abs(rig.skipped - rig.implied_shares) < poisson_band(rig.implied_shares)


async def test_a_rig_the_cpu_cannot_keep_up_with_reports_how_far_behind_it_fell():
    async with asyncio.timeout(TEST_BOUND_S), pool() as running:
        # 20 MH/s of real grinding asked of one core, 40,000 hashes a share: far more than it has
        options = {"hash_scale": 1e-7, "share_interval": 0.002, "max_lag": 0.3}
        async with fleet_on(running, rigs=1, models=(ANTMINER_S21,), **options) as fleet:
            rig = fleet.rig(1)
            await wait_until(lambda: rig.behind_shares > 0 and rig.accepted > 0)  # 0.3 s behind: ~150 shares owed
            snapshot = await settle(fleet)

    (rig,) = snapshot.rigs
    assert rig.behind_shares > rig.submitted  # most of what 200 MH/s implies was never ground
    assert rig.accepted_hashes < 0.5 * rig.simulated_hashrate * rig.mining_seconds
    assert pool_side(running, rig.worker).accepted == rig.accepted  # what was submitted is still real


# -- firmware side, through pyasic -------------------------------------------------------------


async def test_pyasic_reads_every_rig_at_its_nominal_hash_rate_and_the_pool_counters_follow_stratum():
    async with asyncio.timeout(TEST_BOUND_S), pool() as running, fleet_on(running) as fleet:
        await wait_until(lambda: all(rig.accepted > 0 for rig in fleet.rigs))
        miners = await asyncio.gather(*(get_miner(rig.host) for rig in fleet.rigs))
        data = await asyncio.gather(*(miner.get_data() for miner in miners))
        antminer = next(rig for rig in fleet.rigs if rig.model.firmware is FirmwareFamily.ANTMINER_STOCK)
        pools = await api_request(antminer.host, "pools")

        for rig, miner, reading in zip(fleet.rigs, miners, data, strict=True):
            assert str(miner.raw_model) == rig.model.pyasic_model
            assert reading.ip == rig.host
            assert terahash(reading.hashrate) == pytest.approx(rig.model.nominal_hashrate / 1e12, rel=1e-3)
            if rig.model.firmware is FirmwareFamily.ANTMINER_STOCK:
                assert reading.wattage is None  # stock firmware reports no power
            else:
                assert reading.wattage == round(rig.model.nominal_watts)
        assert pools["POOLS"][0]["User"] == antminer.worker
        assert 0 < pools["POOLS"][0]["Accepted"] <= antminer.accepted  # counted from the Stratum side


async def test_power_spikes_and_overheating_show_in_what_pyasic_reads():
    faults = (FaultSpec(1, FaultKind.POWER, 1.4), FaultSpec(2, FaultKind.OVERHEAT, 40.0))
    async with asyncio.timeout(TEST_BOUND_S), pool() as running:
        async with fleet_on(
            running, rigs=2, models=(BITAXE_GAMMA, WHATSMINER_M60S), faults=faults, overheat_ramp=0.0
        ) as fleet:
            await wait_until(lambda: [r.faults() for r in fleet.rigs] == [("power",), ("overheat",)])
            spiked, hot = [await (await get_miner(rig.host)).get_data() for rig in fleet.rigs]
            rig = fleet.rig(2)
            shares_while_hot = rig.accepted
            await wait_until(lambda: rig.accepted > shares_while_hot)  # overheating alone does not stop hashing

    assert spiked.wattage == round(1.4 * BITAXE_GAMMA.nominal_watts)
    assert terahash(spiked.hashrate) == pytest.approx(BITAXE_GAMMA.nominal_hashrate / 1e12, rel=1e-3)
    assert min(board.temp for board in hot.hashboards) >= 25 + 35 + 40 - 2  # ambient + load + injected rise
    assert rig.state.hot_boards()  # chips past the firmware's limit
    assert fleet.snapshot().rig("m60s-02").faults == ("overheat",)


# -- configuration, names, CLI -----------------------------------------------------------------


def test_models_are_taken_in_turn_and_named_by_model_and_position():
    config = FleetConfig("127.0.0.1", 3333, rigs=12, models=(ANTMINER_S21, BITAXE_GAMMA))
    names = list(plan(config))
    assert names[:3] == ["s21-01", "bitaxe-02", "s21-03"] and names[-1] == "bitaxe-12"
    assert len(plan(dataclasses.replace(config, rigs=150))) == 150
    assert list(plan(dataclasses.replace(config, rigs=150)))[0] == "s21-001"


def test_the_automatic_hash_scale_is_a_power_of_ten_within_the_cpu_budget():
    scale = auto_hash_scale(CATALOGUE, 100_000)
    total = sum(model.nominal_hashrate for model in CATALOGUE) * scale
    assert math.log10(scale) == round(math.log10(scale))
    assert 10_000 < total <= 100_000


def test_fault_specs_parse_with_defaults_and_say_what_is_wrong():
    assert parse_fault("3:offline@20+30") == FaultSpec(3, FaultKind.OFFLINE, None, 20.0, 30.0)
    assert parse_fault("s21-02:degrade=0.6") == FaultSpec("s21-02", FaultKind.DEGRADE, 0.6)
    assert parse_fault("5:invalid").value == 0.2
    for bad, says in [
        ("3:melt", "unknown kind"),
        ("3:degrade=1.5", "within 0..1"),
        ("offline", "RIG:KIND"),
        ("3:offline=2", "no value"),
        ("3:stale@x", "numbers"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_fault(bad)


def test_fleet_config_refuses_a_pool_off_this_machine():
    with pytest.raises(ValueError, match="loopback"):
        FleetConfig("192.0.2.1", 3333)


def test_simulate_command_reports_bad_arguments(capsys):
    assert cli.main(["simulate", "--pool", "127.0.0.1:3333", "--fault", "1:melt"]) == 2
    assert "unknown kind 'melt'" in capsys.readouterr().err
    assert cli.main(["simulate", "--pool", "127.0.0.1:3333", "--models", "S9"]) == 2
    assert "unknown rig model 'S9'" in capsys.readouterr().err
    assert cli.main(["simulate", "--pool", "127.0.0.1:3333", "--rigs", "3", "--fault", "4:offline"]) == 2
    assert "no such rig in a fleet of 3; name one of 1..3 or s19xp-01..s21xp-03" in capsys.readouterr().err
    assert cli.main(["simulate", "--pool", "3333"]) == 2


def last_table(text: str) -> str:
    return text.rsplit("hash scale", 1)[-1]  # everything, before the first table


async def test_simulate_prints_the_rigs_and_a_table_of_what_they_did():
    out = io.StringIO()
    async with asyncio.timeout(TEST_BOUND_S), pool() as running:
        host, port = running.stratum
        config = FleetConfig(host, port, rigs=2, firmware=False, share_interval=SHARE_INTERVAL, network="127.9.9.0/24",
                             faults=(parse_fault("2:invalid=0.5"),))  # fmt: skip
        simulate = asyncio.create_task(run(config, duration=TEST_BOUND_S / 2, out=out, every=0.2))  # a backstop
        try:
            # Ctrl-C once a table shows rig 2's invalid shares refused (code 23), however long that took
            await wait_until(lambda: "23:" in last_table(out.getvalue()))
            signal.raise_signal(signal.SIGINT)  # run() handles it: the loop's handler, not KeyboardInterrupt
            assert await simulate == 0
        finally:
            simulate.cancel()
    text = out.getvalue()
    assert "fleetd simulate: 2 rigs mining" in text and "site.s19xp-01" in text
    table = last_table(text)  # printed once more after Ctrl-C
    assert "s19xp-01" in table and "23:" in table and "invalid" in table
