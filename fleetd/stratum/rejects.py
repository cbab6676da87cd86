"""Why a share or request is refused: Stratum error codes with machine-readable reasons.

Miners see ``[code, message, null]``; telemetry counts ``reason`` per rig.
"""

from __future__ import annotations

import enum


class Reject(enum.Enum):
    # value: (Stratum code, machine-readable reason, message sent to the miner)
    MALFORMED = (20, "malformed", "Malformed request")
    UNKNOWN_METHOD = (20, "unknown_method", "Unknown method")
    UNSUPPORTED = (20, "unsupported", "Method not supported")
    BAD_EXTRANONCE2_SIZE = (20, "bad_extranonce2_size", "Wrong extranonce2 size")
    NTIME_OUT_OF_RANGE = (20, "ntime_out_of_range", "ntime out of range")
    VERSION_BITS_OUTSIDE_MASK = (20, "version_bits_outside_mask", "Version bits outside the negotiated mask")
    VERSION_BITS_NOT_NEGOTIATED = (20, "version_bits_not_negotiated", "Version rolling not negotiated")
    UNKNOWN_JOB = (21, "unknown_job", "Job not found")
    STALE = (21, "stale", "Stale job")
    DUPLICATE = (22, "duplicate", "Duplicate share")
    LOW_DIFFICULTY = (23, "low_difficulty", "Low difficulty share")
    UNAUTHORIZED = (24, "unauthorized", "Unauthorized worker")
    NOT_SUBSCRIBED = (25, "not_subscribed", "Not subscribed")

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]

    def error(self) -> list:
        """The JSON-RPC ``error`` member as Stratum v1 miners expect it."""
        return [self.code, self.message, None]
