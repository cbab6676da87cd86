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
