"""Helpers for the firmware emulation tests: a hand-driven clock and pyasic unit conversion."""

from __future__ import annotations

from pyasic.device.algorithm import MinerAlgo
from pyasic_support import FAST_PYASIC

TEST_BOUND_S = 15.0  # no single test may run longer than this
# pyasic's own timeouts (whole seconds) beyond TEST_BOUND_S: a call they would end has hung
PATIENT_PYASIC = {key: 60 if key.endswith("_timeout") else value for key, value in FAST_PYASIC.items()}


class FakeClock:
    """The injected clock: time moves only when a test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hashes_per_second(rate) -> float:
    """pyasic hash rates carry their unit (TH/s for SHA-256 by default); give plain H/s."""
    return float(rate.into(MinerAlgo.SHA256.unit.H))
