"""Helpers for the firmware emulation tests: time bounds, pyasic unit conversion, identify and read."""

from __future__ import annotations

import asyncio

from pyasic import get_miner
from pyasic.device.algorithm import MinerAlgo
from pyasic_support import FAST_PYASIC

TEST_BOUND_S = 15.0  # no single test may run longer than this
# pyasic's own timeouts (whole seconds) beyond TEST_BOUND_S: a call they would end has hung
PATIENT_PYASIC = {key: 60 if key.endswith("_timeout") else value for key, value in FAST_PYASIC.items()}


def hashes_per_second(rate) -> float:
    """pyasic hash rates carry their unit (TH/s for SHA-256 by default); give plain H/s."""
    return float(rate.into(MinerAlgo.SHA256.unit.H))


async def identify(rig):
    async with asyncio.timeout(TEST_BOUND_S):
        miner = await get_miner(rig.host)
    assert miner is not None, f"pyasic did not recognise the emulated {rig.state.model.name}"
    return miner


async def read(miner):
    async with asyncio.timeout(TEST_BOUND_S):
        return await miner.get_data()
