"""Emulated rigs on loopback for the poller tests, and pyasic's own timeouts kept out of the way."""

from __future__ import annotations

import faulthandler
import random

import pytest
from fake_clock import FakeClock
from pyasic_support import FAST_PYASIC, pyasic_settings

from fleetd.sim.firmware import EmulatedRig, LoopbackAllocator, RigState

from rigs_support import HARD_BOUND_S

# Whole seconds, longer than any test waits: a rig that answers is never cut short on a
# loaded machine, and one that hangs is ended by the poller's own deadline (on the test's
# clock), never by pyasic's.
PATIENT_PYASIC = {key: 60 if key.endswith("_timeout") else value for key, value in FAST_PYASIC.items()}


@pytest.fixture(autouse=True)
def bounded():
    """A test that hangs despite its own deadlines ends the run with every thread's traceback."""
    faulthandler.dump_traceback_later(HARD_BOUND_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def patient_pyasic():
    with pyasic_settings(PATIENT_PYASIC):
        yield


@pytest.fixture
def allocator() -> LoopbackAllocator:
    # a random /24 per test (clear of the firmware tests' 100-250 range), so runs side by
    # side rarely meet; start_free skips any address another run holds
    return LoopbackAllocator(f"127.{random.randint(30, 99)}.{random.randint(0, 255)}.0/24")


@pytest.fixture
def rig_clock() -> FakeClock:
    """The emulated rigs' own clock (their uptime), apart from the poller's."""
    return FakeClock()


@pytest.fixture
async def start_rig(allocator, rig_clock):
    """Start an emulated rig of a catalogue model; every one started is stopped afterwards."""
    rigs: list[EmulatedRig] = []

    async def start(model, name: str = "rig-001") -> EmulatedRig:
        try:
            rig = await EmulatedRig.start_free(RigState(model, name=name, clock=rig_clock), allocator)
        except PermissionError:
            pytest.skip("listening on port 80 needs root or CAP_NET_BIND_SERVICE")
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        rig.state.come_online()  # release connections a hung rig still holds
        await rig.stop()
