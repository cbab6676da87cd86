"""Emulated rigs on their own loopback addresses, and pyasic patient unless a test wants it to give up."""

from __future__ import annotations

import random

import pytest
from fake_clock import FakeClock
from pyasic_support import pyasic_settings

from fleetd.sim.firmware import EmulatedRig, LoopbackAllocator, RigState

from firmware_support import PATIENT_PYASIC


@pytest.fixture(autouse=True)
def patient_pyasic():
    """A rig that answers is never given up on by a loaded machine; the tests of pyasic
    giving up on a silent rig put its shortest timeouts in force themselves."""
    with pyasic_settings(PATIENT_PYASIC):
        yield


@pytest.fixture
def allocator() -> LoopbackAllocator:
    # a random /24 per test, so suites running side by side on one machine rarely meet;
    # start_free skips any address another run already holds
    return LoopbackAllocator(f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_rig(allocator, clock):
    """Start an emulated rig of a catalogue model; every one started is stopped afterwards."""
    rigs: list[EmulatedRig] = []

    async def start(model, name: str = "rig-001") -> EmulatedRig:
        try:
            rig = await EmulatedRig.start_free(RigState(model, name=name, clock=clock), allocator)
        except PermissionError:
            pytest.skip("listening on port 80 needs root or CAP_NET_BIND_SERVICE")
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        await rig.stop()
