"""What one poll of a rig's management API found: the rig-side truth."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RigReading:
    """One successful poll. Units are base units: H/s, watts, °C, rpm, seconds.

    ``watts`` is None when the firmware reports no power (stock Antminer); the
    telemetry layer then falls back to the nameplate table and labels it so.
    """

    ip: str
    time: float  # wall clock of the poll
    make: str | None = None  # as pyasic names it: "AntMiner", "WhatsMiner", "BitAxe"…
    model: str | None = None
    firmware: str | None = None
    hashrate: float | None = None  # what the rig says it does, H/s
    watts: float | None = None
    temperatures: dict[str, float] = field(default_factory=dict)  # sensor → °C: "chip", "board0", "inlet"…
    fans: dict[str, float] = field(default_factory=dict)  # fan → rpm: "0", "1"…
    uptime: float | None = None  # seconds
    errors: tuple[str, ...] = ()
    worker: str | None = None  # the pool user the rig is configured with, when the API tells
