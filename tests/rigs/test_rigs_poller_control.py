"""pyasic control calls through the poller's miner objects: answers, refusals, errors, timeouts."""

from __future__ import annotations

import asyncio

from fake_clock import FakeClock
from fleetd.rigs.poller import PollerConfig, RigPoller


class _Miner:
    def __init__(self, answer=True, error=None, hang=False):
        self.answer, self.error, self.hang, self.calls = answer, error, hang, []

    async def stop_mining(self):
        self.calls.append("stop_mining")
        if self.hang:
            await asyncio.Event().wait()
        if self.error:
            raise self.error
        return self.answer


def _poller(miner, clock=None):
    async def identify(ip):
        return miner

    return RigPoller(PollerConfig(interval=30, timeout=5), on_reading=lambda r: None, clock=clock or FakeClock(),
                     identify=identify)  # fmt: skip


async def test_a_call_the_miner_accepts_and_one_it_refuses():
    miner = _Miner()
    assert await _poller(miner).control("10.0.0.1", "stop_mining") == (True, "_Miner.stop_mining: True")
    miner.answer = False
    assert await _poller(miner).control("10.0.0.1", "stop_mining") == (False, "_Miner.stop_mining: False")


async def test_an_unknown_rig_a_missing_call_and_an_error_are_failures_that_say_why():
    assert await _poller(None).control("10.0.0.1", "stop_mining") == (
        False, "no known miner API answered (pyasic could not identify the rig)")  # fmt: skip
    assert await _poller(_Miner()).control("10.0.0.1", "set_power_limit", 1000) == (
        False, "_Miner has no set_power_limit")  # fmt: skip
    ok, detail = await _poller(_Miner(error=ConnectionRefusedError(111, "refused"))).control("10.0.0.1", "stop_mining")
    assert not ok and detail.startswith("ConnectionRefusedError")


async def test_a_call_that_never_answers_times_out_on_the_injected_clock():
    clock = FakeClock()
    call = asyncio.create_task(_poller(_Miner(hang=True), clock).control("10.0.0.1", "stop_mining"))
    await asyncio.sleep(0)
    await clock.advance(5.0)
    assert await asyncio.wait_for(call, 5) == (False, "no answer within 5 s")


def test_a_rig_is_tunable_where_pyasic_sets_a_power_target_on_its_firmware():
    import warnings

    from fleetd.rigs.poller import can_tune, load_pyasic

    load_pyasic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyasic.miners import backends
        from pyasic.miners.whatsminer.btminer.M6X.M60S import BTMinerM60SVK30

    tunable = {name: can_tune(getattr(backends, name)("127.0.0.1")) for name in (
        "BOSMiner", "LUXMiner", "VNish", "BTMinerV2", "BTMinerV3", "AntminerModern", "AvalonMiner", "BitAxe", "ePIC",
        "UnknownMiner")}  # fmt: skip
    assert tunable == {
        "BOSMiner": True, "LUXMiner": True, "VNish": True, "BTMinerV2": True, "BTMinerV3": True,
        # stock Antminer has power modes and no target; Avalon maps watts onto three work levels;
        # ePIC and AxeOS have no power limit in pyasic; an unknown rig's call does nothing
        "AntminerModern": False, "AvalonMiner": False, "BitAxe": False, "ePIC": False, "UnknownMiner": False,
    }  # fmt: skip
    # a Whatsminer's class is made when pyasic meets it: the API generation its firmware date picks
    assert can_tune(BTMinerM60SVK30("127.0.0.1", "20240627.16.Rel")) and can_tune(BTMinerM60SVK30("127.0.0.1", "20250101.16.Rel"))


class _Tunable(_Miner):
    supports_autotuning = True

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    async def set_power_limit(self, watts):
        self.limit = watts
        return True

    async def get_wattage_limit(self):
        if isinstance(self.limit, Exception):
            raise self.limit
        return self.limit


async def test_the_poller_says_which_rigs_it_can_tune_once_identified_and_reads_their_limit():
    poller = _poller(_Tunable(3785))
    assert not poller.tunable("10.0.0.1")  # not identified yet: nothing is known of its firmware
    poller.add("10.0.0.1")
    assert await poller.control("10.0.0.1", "set_power_limit", 2408) == (True, "_Tunable.set_power_limit: True")
    assert await poller.power_limit("10.0.0.1") == 2408.0
    assert poller.tunable("10.0.0.1") and not _poller(_Miner()).tunable("10.0.0.1")
    for unknown in (None, 0, ConnectionResetError("reset")):  # the firmware will not say: None, never an error
        assert await _poller(_Tunable(unknown)).power_limit("10.0.0.1") is None
