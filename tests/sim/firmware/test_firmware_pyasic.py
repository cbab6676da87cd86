"""pyasic itself, unmodified, against each emulated rig on its own loopback address."""

from __future__ import annotations

import asyncio
import time

import pytest
from pyasic import get_miner
from pyasic_support import fast_pyasic_settings
from pyasic.device.firmware import MinerFirmware
from pyasic.device.makes import MinerMake

from fleetd.rigs.models import (
    ANTMINER_S19_XP,
    BITAXE_GAMMA,
    CATALOGUE,
    WHATSMINER_M60S,
    FirmwareFamily,
)
from firmware_support import TEST_BOUND_S, hashes_per_second, identify, read

GIVE_UP_GUARD_S = 10.0  # a hang guard for pyasic's own 1 s timeouts: ten times what they take unloaded

MAKE = {
    FirmwareFamily.ANTMINER_STOCK: MinerMake.ANTMINER,
    FirmwareFamily.WHATSMINER: MinerMake.WHATSMINER,
    FirmwareFamily.AXEOS: MinerMake.BITAXE,
}
ONE_PER_FAMILY = [ANTMINER_S19_XP, WHATSMINER_M60S, BITAXE_GAMMA]
REPORTS_WATTS = {FirmwareFamily.WHATSMINER, FirmwareFamily.AXEOS}
by_name = pytest.mark.parametrize("model", CATALOGUE, ids=lambda m: m.name)
per_family = pytest.mark.parametrize("model", ONE_PER_FAMILY, ids=lambda m: m.name)


@by_name
async def test_pyasic_identifies_make_model_and_firmware(start_rig, model):
    rig = await start_rig(model)
    miner = await identify(rig)
    assert miner.make == MAKE[model.firmware]
    assert str(miner.raw_model) == model.pyasic_model
    assert miner.firmware == MinerFirmware.STOCK
    assert miner.expected_hashboards == model.hashboards
    assert miner.expected_chips == model.chips_per_board
    assert miner.expected_fans == model.fans


@by_name
async def test_pyasic_reads_hashrate_watts_temperatures_fans_uptime(start_rig, clock, model):
    rig = await start_rig(model)
    clock.tick(3600)
    state = rig.state
    data = await read(await identify(rig))

    assert data.ip == rig.host
    assert hashes_per_second(data.hashrate) == pytest.approx(state.hashrate(), rel=1e-4)
    assert hashes_per_second(data.expected_hashrate) == pytest.approx(model.nominal_hashrate, rel=1e-3)
    if model.firmware in REPORTS_WATTS:
        assert data.wattage == round(state.watts()) == round(model.nominal_watts)
    else:  # stock Antminer firmware reports no power: pyasic leaves it unset
        assert data.wattage is None
    assert [b.temp for b in data.hashboards] == pytest.approx(state.board_temps(), abs=0.5)
    assert [b.chip_temp for b in data.hashboards] == pytest.approx(state.chip_temps(), abs=0.5)
    assert [hashes_per_second(b.hashrate) for b in data.hashboards] == pytest.approx(state.board_hashrates(), rel=1e-4)
    assert [b.chips for b in data.hashboards] == [model.chips_per_board] * model.hashboards
    assert [f.speed for f in data.fans] == state.fan_rpms()
    assert all(rpm > 0 for rpm in state.fan_rpms())
    assert data.uptime == state.uptime() == 3600
    assert data.errors == []
    assert data.mac == state.mac


@per_family
async def test_degraded_hashrate_reads_lower(start_rig, model):
    rig = await start_rig(model)
    miner = await identify(rig)
    rig.state.degrade(0.6)
    data = await read(miner)
    assert hashes_per_second(data.hashrate) == pytest.approx(0.6 * model.nominal_hashrate, rel=1e-4)
    if model.firmware in REPORTS_WATTS:
        assert data.wattage == round(rig.state.watts()) < model.nominal_watts


@per_family
async def test_overheat_reads_climbing_temperatures_and_faster_fans(start_rig, clock, model):
    rig = await start_rig(model)
    miner = await identify(rig)
    before = await read(miner)
    rig.state.overheat(rise_c=40, ramp_s=600)
    clock.tick(300)  # half way up the ramp
    halfway = await read(miner)
    clock.tick(300)
    hot = await read(miner)

    def chip_temps(data):
        return [b.chip_temp for b in data.hashboards]

    assert [t + 20 for t in chip_temps(before)] == pytest.approx(chip_temps(halfway), abs=1)
    assert [t + 40 for t in chip_temps(before)] == pytest.approx(chip_temps(hot), abs=1)
    assert min(f.speed for f in hot.fans) > max(f.speed for f in before.fans)
    if model.firmware is FirmwareFamily.AXEOS:
        assert hot.errors == []  # pyasic reads no errors from AxeOS
    else:
        assert len(hot.errors) >= 1
        assert before.errors == []


@per_family
async def test_power_spike_reads_higher_watts_except_on_stock_antminer(start_rig, model):
    rig = await start_rig(model)
    miner = await identify(rig)
    rig.state.spike_power(1.4)
    data = await read(miner)
    if model.firmware in REPORTS_WATTS:
        assert data.wattage == round(1.4 * model.nominal_watts)
    else:
        assert data.wattage is None  # the spike is real, but this firmware cannot say so
    assert hashes_per_second(data.hashrate) == pytest.approx(model.nominal_hashrate, rel=1e-4)


async def test_injected_errors_reach_pyasic(start_rig):
    whatsminer = await start_rig(WHATSMINER_M60S, "wm")
    antminer = await start_rig(ANTMINER_S19_XP, "am")
    whatsminer.state.add_error(530, "Slot 0 not found.")
    antminer.state.add_error(1, "PSU voltage out of range")
    wm_data = await read(await identify(whatsminer))
    am_data = await read(await identify(antminer))
    assert [e.error_code for e in wm_data.errors] == [530]
    assert [e.error_message for e in am_data.errors] == ["PSU voltage out of range"]


@per_family
async def test_offline_rig_is_not_identified_and_pyasic_gives_up_quickly(start_rig, model):
    rig = await start_rig(model)
    rig.state.go_offline()
    started = time.monotonic()
    with fast_pyasic_settings():  # factory_get_timeout = 1 s, which has to run out here
        async with asyncio.timeout(GIVE_UP_GUARD_S):  # pyasic gives up by itself long before
            assert await get_miner(rig.host) is None
    assert time.monotonic() - started >= 0.99  # held, not refused: it was the timeout that ended it
    rig.state.come_online()
    assert (await identify(rig)).make == MAKE[model.firmware]


async def test_identified_rig_going_offline_reads_nothing(start_rig):
    bitaxe = await start_rig(BITAXE_GAMMA, "bx")
    whatsminer = await start_rig(WHATSMINER_M60S, "wm")
    bitaxe_miner, whatsminer_miner = await identify(bitaxe), await identify(whatsminer)
    bitaxe.state.go_offline()
    whatsminer.state.go_offline()
    with fast_pyasic_settings():  # api_function_timeout = 1 s
        # the HTTP API honours pyasic's api_function_timeout and yields nothing
        async with asyncio.timeout(GIVE_UP_GUARD_S):
            assert await bitaxe_miner.get_hashrate() is None
        # pyasic's cgminer-API client sets no read timeout: a silent rig hangs it until the
        # caller's own deadline, which is why a poller needs a per-rig timeout of its own
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await whatsminer_miner.get_hashrate()
    whatsminer.state.come_online()
    async with asyncio.timeout(TEST_BOUND_S):
        assert hashes_per_second(await whatsminer_miner.get_hashrate()) == pytest.approx(
            WHATSMINER_M60S.nominal_hashrate, rel=1e-4
        )


@per_family
async def test_stopped_firmware_refuses_and_a_restart_is_read_again(start_rig, clock, model):
    rig = await start_rig(model)
    await rig.stop()
    # closed ports on loopback refuse at once: pyasic's timeouts (60 s here) never come into it
    async with asyncio.timeout(TEST_BOUND_S):
        assert await get_miner(rig.host) is None
    rig.state.come_online(rebooted=True)
    clock.tick(42)
    await rig.start()
    data = await read(await identify(rig))
    assert data.uptime == 42


async def test_rigs_on_distinct_addresses_are_told_apart(start_rig):
    rigs = [await start_rig(model, f"rig-{i}") for i, model in enumerate(CATALOGUE)]
    assert len({rig.host for rig in rigs}) == len(rigs)
    async with asyncio.timeout(TEST_BOUND_S):
        miners = await asyncio.gather(*(get_miner(rig.host) for rig in rigs))
    assert [str(m.raw_model) for m in miners] == [model.pyasic_model for model in CATALOGUE]
    macs = await asyncio.gather(*(m.get_mac() for m in miners))
    assert len(set(macs)) == len(rigs)
