"""Faults a simulated rig can be given, and the ``RIG:KIND[=VALUE][@START[+DURATION]]`` syntax
(``describe()`` gives every kind, with examples).

A rig is named by its 1-based position in the fleet or by its name. Rig-side faults
(offline, overheat, degrade, power) go on the rig's ``RigState``, which both its firmware
API and its Stratum side read; submit faults (stale, invalid, duplicate) set the fraction
of the rig's submits that are bad on purpose.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class FaultKind(enum.StrEnum):
    OFFLINE = "offline"
    OVERHEAT = "overheat"
    DEGRADE = "degrade"
    POWER = "power"
    STALE = "stale"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


MEANING = {
    FaultKind.OFFLINE: "Stratum hangs up and the rig's API stops answering (takes no VALUE)",
    FaultKind.OVERHEAT: "temperatures climb VALUE degrees over a minute",
    FaultKind.DEGRADE: "hash rate falls to VALUE of nominal, in shares and as reported",
    FaultKind.POWER: "the rig draws VALUE times its power at the same hash rate",
    FaultKind.STALE: "VALUE of submits are for a job a new block retired: code 21",
    FaultKind.INVALID: "VALUE of submits miss the target: code 23",
    FaultKind.DUPLICATE: "VALUE of submits repeat an accepted share: code 22",
}
DEFAULT_VALUE = {
    FaultKind.OFFLINE: None,
    FaultKind.OVERHEAT: 30.0,
    FaultKind.DEGRADE: 0.5,
    FaultKind.POWER: 1.5,
    FaultKind.STALE: 0.2,
    FaultKind.INVALID: 0.2,
    FaultKind.DUPLICATE: 0.2,
}
SUBMIT_FAULTS = (FaultKind.STALE, FaultKind.INVALID, FaultKind.DUPLICATE)
SYNTAX = "RIG:KIND[=VALUE][@START[+DURATION]]"


def describe() -> str:
    """The fault syntax and every kind with its meaning and default, for ``--help``."""
    kinds = "\n".join(
        f"  {kind:<10} {MEANING[kind]}" + ("" if DEFAULT_VALUE[kind] is None else f" (default {DEFAULT_VALUE[kind]:g})")
        for kind in FaultKind
    )
    return (
        f"faults: --fault {SYNTAX}, repeatable. RIG is the rig's\n"
        "position (1..N) or its name; START and DURATION are seconds (default: from the start,\n"
        f"to the end). KIND is one of:\n{kinds}\n"
        "examples:\n"
        "  --fault 3:offline@20+30     rig 3 drops off 20 s in and comes back 30 s later\n"
        "  --fault s21-02:degrade=0.6  rig s21-02 hashes at 60 % of nominal throughout\n"
        "  --fault 5:invalid=0.2       a fifth of rig 5's submits miss the target"
    )

_SPEC = re.compile(r"^(?P<rig>[^:]+):(?P<kind>[a-z]+)(?:=(?P<value>[^@]+))?(?:@(?P<at>[^+]+)(?:\+(?P<for>.+))?)?$")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    rig: int | str  # 1-based position in the fleet, or the rig's name
    kind: FaultKind
    value: float | None = None  # None: the kind's default
    at: float = 0.0  # seconds after the fleet starts
    duration: float | None = None  # None: until the fleet stops

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.value is None:
            object.__setattr__(self, "value", DEFAULT_VALUE[self.kind])
        check_value(self.kind, self.value)
        if self.at < 0 or (self.duration is not None and not self.duration > 0):
            raise ValueError(f"fault {self.kind}: start must be >= 0 and duration > 0 seconds")


def check_value(kind: FaultKind, value: float | None) -> None:
    """ValueError naming the fault when ``value`` makes no sense for it."""
    match kind:
        case FaultKind.OFFLINE:
            ok = value is None
        case FaultKind.OVERHEAT:
            ok = value is not None and value >= 0
        case FaultKind.DEGRADE | FaultKind.STALE | FaultKind.INVALID | FaultKind.DUPLICATE:
            ok = value is not None and 0 <= value <= 1
        case FaultKind.POWER:
            ok = value is not None and value > 0
    if not ok:
        wanted = {
            FaultKind.OFFLINE: "no value",
            FaultKind.OVERHEAT: "degrees >= 0",
            FaultKind.POWER: "a factor > 0",
        }.get(kind, "a fraction within 0..1")
        raise ValueError(f"fault {kind}: value {value!r} is not {wanted}")


def parse_fault(text: str) -> FaultSpec:
    """``RIG:KIND[=VALUE][@START[+DURATION]]`` as a FaultSpec; ValueError says what is wrong."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"fault {text!r}: expected {SYNTAX}, e.g. 3:offline@20+30")
    try:
        kind = FaultKind(match["kind"])
    except ValueError:
        raise ValueError(f"fault {text!r}: unknown kind {match['kind']!r}; one of {', '.join(FaultKind)}") from None
    rig: int | str = int(match["rig"]) if match["rig"].isdigit() else match["rig"]
    try:
        value = None if match["value"] is None else float(match["value"])
        at = 0.0 if match["at"] is None else float(match["at"])
        duration = None if match["for"] is None else float(match["for"])
    except ValueError:
        raise ValueError(f"fault {text!r}: value, start and duration must be numbers") from None
    try:
        return FaultSpec(rig, kind, value, at, duration)
    except ValueError as exc:
        raise ValueError(f"fault {text!r}: {exc}") from None
