"""pyasic, unmodified, stopping, resuming and power-limiting emulated rigs through their firmware.

What pyasic 0.79 sends, per firmware it picks for these rigs:

* stock Antminer (``AntminerModern``): ``stop_mining`` / ``resume_mining`` read
  ``/cgi-bin/get_miner_conf.cgi`` and post it back to ``/cgi-bin/set_miner_conf.cgi`` with
  ``miner-mode`` 1 / 0; ``send_config`` with ``MiningModeConfig.low()`` posts 3. It returns
  True without looking at the answer. ``set_power_limit`` is not implemented (False).
* Whatsminer (``BTMinerV2``): encrypted ``power_off`` / ``power_on`` / ``adjust_power_limit``
  over 4028 after ``get_token``; success is ``Msg == "API command OK"``.
* Bitaxe (``BitAxe``, AxeOS): ``stop_mining``, ``resume_mining`` and ``set_power_limit`` send
  nothing and answer False; ``web.update_settings`` PATCHes ``/api/system`` and ``reboot``
  POSTs ``/api/system/restart``.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from pyasic.config import MiningModeConfig
from pyasic.errors import APIError

from fleetd.rigs.models import ANTMINER_S19_XP, BITAXE_GAMMA, WHATSMINER_M60S
from fleetd.sim.firmware.antminer import LOW_POWER_SHARE
from fleetd.sim.firmware.btminer_auth import TOKENS_PER_CLIENT
from fleetd.sim.firmware.state import EFFICIENCY_EXPONENT, SLEEP_POWER_SHARE
from fleetd.sim.firmware.whatsminer import factory_limit
from firmware_support import TEST_BOUND_S, hashes_per_second, identify, read


def idle_watts(model) -> float:
    return model.nominal_watts * SLEEP_POWER_SHARE[model.firmware]


def board_rates(data) -> list[float]:
    return [hashes_per_second(board.hashrate) for board in data.hashboards]


async def api(host: str, request: dict) -> dict:
    """One request to the rig's 4028 API, as raw as a poller sends it."""
    async with asyncio.timeout(TEST_BOUND_S):
        reader, writer = await asyncio.open_connection(host, 4028)
        writer.write(json.dumps(request).encode())
        await writer.drain()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
    return json.loads(reply.rstrip(b"\x00"))


# -- stock Antminer ------------------------------------------------------------------------


async def test_antminer_sleeps_hashes_nothing_and_wakes_after_its_warm_up(start_rig, clock):
    rig = await start_rig(ANTMINER_S19_XP)
    miner = await identify(rig)
    assert await miner.is_mining() is True

    assert await miner.stop_mining() is True
    assert rig.state.mode() == "sleeping"
    asleep = await read(miner)
    assert hashes_per_second(asleep.hashrate) == 0 and board_rates(asleep) == [0, 0, 0]
    assert asleep.wattage is None  # stock firmware reports no power, asleep or not ...
    assert rig.state.watts() == pytest.approx(idle_watts(ANTMINER_S19_XP)) == pytest.approx(60.2)  # ... but draws it
    assert asleep.is_mining is False
    assert (await miner.get_config()).mining_mode.mode == "sleep"
    clock.tick(3600)
    assert hashes_per_second((await read(miner)).hashrate) == 0  # it sleeps until woken

    assert await miner.resume_mining() is True
    assert rig.state.mode() == "waking"
    waking = await read(miner)
    assert waking.is_mining is True and hashes_per_second(waking.hashrate) == 0  # boards initialising
    clock.tick(rig.state.warmup())
    awake = await read(miner)
    assert hashes_per_second(awake.hashrate) == pytest.approx(ANTMINER_S19_XP.nominal_hashrate, rel=1e-4)
    assert rig.state.watts() == pytest.approx(ANTMINER_S19_XP.nominal_watts)
    assert (await miner.get_config()).mining_mode.mode == "normal"


async def test_antminer_power_comes_down_only_through_low_power_mode(start_rig, clock):
    rig = await start_rig(ANTMINER_S19_XP)
    miner = await identify(rig)
    assert await miner.set_power_limit(2000) is False  # not in pyasic for stock Antminer: nothing is sent
    assert (rig.state.power_limit_w, rig.state.mode()) == (None, "mining")

    config = await miner.get_config()
    config.mining_mode = MiningModeConfig.low()
    await miner.send_config(config)  # posts miner-mode 3
    assert (await miner.get_config()).mining_mode.mode == "low"
    clock.tick(rig.state.warmup())  # bmminer restarted in the new mode
    low = await read(miner)
    share = LOW_POWER_SHARE**EFFICIENCY_EXPONENT
    assert hashes_per_second(low.hashrate) == pytest.approx(share * ANTMINER_S19_XP.nominal_hashrate, rel=1e-3)
    assert rig.state.watts() == pytest.approx(LOW_POWER_SHARE * ANTMINER_S19_XP.nominal_watts)
    assert low.is_mining is True


async def test_antminer_with_another_password_refuses_yet_pyasic_reports_success(start_rig):
    rig = await start_rig(ANTMINER_S19_XP)
    miner = await identify(rig)
    rig.state.admin_password = "changed-on-site"

    # lighttpd answers 401 to every digest pyasic makes with root/root; stop_mining does not look
    assert await miner.stop_mining() is True
    assert rig.state.mode() == "mining"
    assert await miner.web.set_miner_conf({"miner-mode": 1}) == {"success": False, "message": "Unknown error occurred"}
    assert await miner.is_mining() is None  # get_miner_conf.cgi is refused too: the way to tell
    data = await read(miner)  # the 4028 API needs no password
    assert hashes_per_second(data.hashrate) == pytest.approx(ANTMINER_S19_XP.nominal_hashrate, rel=1e-4)

    miner.web.pwd = "changed-on-site"
    assert await miner.stop_mining() is True and rig.state.sleeping


@pytest.mark.parametrize("mode", ["2", "x", True, None])
async def test_antminer_answers_a_bad_work_mode_as_an_illegal_request(start_rig, mode):
    rig = await start_rig(ANTMINER_S19_XP)
    miner = await identify(rig)
    answer = await miner.web.send_command("set_miner_conf", **{"miner-mode": mode})
    assert answer == {"stats": "error", "code": "M001", "msg": "Illegal request!"}
    assert rig.state.mode() == "mining"
    good = await miner.web.send_command("set_miner_conf", **{"miner-mode": "1"})  # a string works as well
    assert good == {"stats": "success", "code": "M000", "msg": "OK!"} and rig.state.sleeping


# -- Whatsminer ----------------------------------------------------------------------------


async def test_whatsminer_powers_off_to_its_control_board_and_back_on(start_rig, clock):
    rig = await start_rig(WHATSMINER_M60S)
    miner = await identify(rig)

    assert await miner.stop_mining() is True
    off = await read(miner)
    assert rig.state.mode() == "sleeping" and off.is_mining is False
    assert hashes_per_second(off.hashrate) == 0 and board_rates(off) == [0, 0, 0]
    assert off.wattage == round(idle_watts(WHATSMINER_M60S)) == 14
    status = await api(rig.host, {"command": "status"})
    assert status["Msg"]["mineroff"] == "true" and status["Msg"]["mineroff_time"] == "2023-11-14 22:13:20"

    assert await miner.resume_mining() is True
    waking = await read(miner)
    assert waking.is_mining is True and hashes_per_second(waking.hashrate) == 0
    clock.tick(rig.state.warmup())
    on = await read(miner)
    assert hashes_per_second(on.hashrate) == pytest.approx(WHATSMINER_M60S.nominal_hashrate, rel=1e-4)
    assert on.wattage == WHATSMINER_M60S.nominal_watts


async def test_whatsminer_power_limit_lowers_watts_and_a_little_less_hash_rate(start_rig, clock):
    rig = await start_rig(WHATSMINER_M60S)
    miner = await identify(rig)
    assert (await read(miner)).wattage_limit == factory_limit(rig.state) == 3785

    assert await miner.set_power_limit(2500) is True
    assert (await read(miner)).wattage_limit == 2500
    assert rig.state.mode() == "waking"  # btminer restarts to apply it
    clock.tick(rig.state.warmup())
    limited = await read(miner)
    assert limited.wattage == 2500
    share = (2500 / WHATSMINER_M60S.nominal_watts) ** EFFICIENCY_EXPONENT
    assert hashes_per_second(limited.hashrate) == pytest.approx(share * WHATSMINER_M60S.nominal_hashrate, rel=1e-4)
    nameplate_jth = WHATSMINER_M60S.nominal_watts / (WHATSMINER_M60S.nominal_hashrate / 1e12)
    assert 0.9 * nameplate_jth < limited.wattage / (hashes_per_second(limited.hashrate) / 1e12) < nameplate_jth
    assert (await miner.get_config()).mining_mode.mode == "power_tuning"

    assert await miner.set_power_limit(4000) is False  # above the factory limit: refused
    assert (await read(miner)).wattage_limit == 2500


async def test_whatsminer_with_another_password_cannot_read_the_command_and_pyasic_reports_failure(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    miner = await identify(rig)
    rig.state.admin_password = "s1te"

    assert await miner.stop_mining() is False
    assert await miner.set_power_limit(2000) is False
    assert (rig.state.mode(), rig.state.power_limit_w) == ("mining", None)
    miner.rpc.token = None
    with pytest.raises(APIError, match="enc json load err"):  # code 23, in plain JSON: the rig has no shared key
        await miner.rpc.power_off()

    miner.rpc.pwd, miner.rpc.token = "s1te", None
    assert await miner.stop_mining() is True and rig.state.sleeping


async def test_whatsminer_tokens_expire_after_30_minutes_and_32_is_the_most_one_client_holds(start_rig, clock):
    rig = await start_rig(WHATSMINER_M60S)
    miner = await identify(rig)
    assert await miner.stop_mining() is True
    clock.tick(30 * 60)
    assert await miner.resume_mining() is False  # pyasic reuses its token: "check token err"
    miner.rpc.token = None
    assert await miner.resume_mining() is True

    for _ in range(TOKENS_PER_CLIENT - 1):  # with the one pyasic holds, 32
        assert (await api(rig.host, {"command": "get_token"}))["Code"] == 134
    refused = await api(rig.host, {"command": "get_token"})
    assert (refused["STATUS"], refused["Code"]) == ("E", 136)
    clock.tick(30 * 60)
    assert (await api(rig.host, {"command": "get_token"}))["Code"] == 134


async def test_whatsminer_write_commands_in_plain_json_are_unknown(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    reply = await api(rig.host, {"command": "power_off", "respbefore": "true"})
    assert (reply["STATUS"][0]["STATUS"], reply["STATUS"][0]["Code"]) == ("E", 14)
    assert rig.state.mode() == "mining"


# -- Bitaxe (AxeOS) ------------------------------------------------------------------------


async def test_bitaxe_has_no_stop_or_power_limit_in_pyasic(start_rig):
    rig = await start_rig(BITAXE_GAMMA)
    miner = await identify(rig)
    assert await miner.stop_mining() is False
    assert await miner.resume_mining() is False
    assert await miner.set_power_limit(10) is False
    assert (rig.state.mode(), rig.state.power_limit_w, rig.state.clock_share) == ("mining", None, 1.0)
    assert await miner.is_mining() is None


async def test_bitaxe_frequency_takes_at_once_though_pyasic_cannot_parse_the_empty_answer(start_rig):
    rig = await start_rig(BITAXE_GAMMA)
    miner = await identify(rig)
    stock = (await miner.web.system_info())["frequency"]

    with pytest.raises(APIError, match="JSON decode error"):
        await miner.web.update_settings(frequency=stock / 2)
    slow = await read(miner)
    assert rig.state.clock_share == pytest.approx(0.5)
    assert hashes_per_second(slow.hashrate) == pytest.approx(BITAXE_GAMMA.nominal_hashrate / 2, rel=1e-3)
    assert hashes_per_second(slow.expected_hashrate) == pytest.approx(BITAXE_GAMMA.nominal_hashrate / 2, rel=1e-3)
    assert slow.wattage == round(BITAXE_GAMMA.nominal_watts * 0.5 ** (1 / EFFICIENCY_EXPONENT)) == 8

    async with asyncio.timeout(TEST_BOUND_S), aiohttp.ClientSession() as session:
        async with session.patch(f"http://{rig.host}/api/system", data=b"{frequency") as response:
            assert (response.status, await response.text()) == (400, "Invalid JSON")
        async with session.patch(f"http://{rig.host}/api/system", json={"frequency": stock}) as response:
            assert (response.status, await response.read()) == (200, b"")
    assert rig.state.clock_share == 1.0


async def test_bitaxe_restart_reboots_it_and_hashing_returns_after_the_warm_up(start_rig, clock):
    rig = await start_rig(BITAXE_GAMMA)
    miner = await identify(rig)
    clock.tick(600)
    with pytest.raises(APIError):  # "System will restart shortly." is text, not JSON
        await miner.reboot()
    assert (rig.state.restarts, rig.state.mode()) == (1, "waking")
    rebooted = await read(miner)
    assert rebooted.uptime == 0 and hashes_per_second(rebooted.hashrate) == 0
    assert rebooted.wattage == round(idle_watts(BITAXE_GAMMA)) == 2
    clock.tick(rig.state.warmup())
    assert hashes_per_second((await read(miner)).hashrate) == pytest.approx(BITAXE_GAMMA.nominal_hashrate, rel=1e-4)
