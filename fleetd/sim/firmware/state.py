"""The live state of one emulated rig, and the faults that can be injected into it.

A ``RigState`` is plain data plus figures derived from it on each read: the firmware APIs
render it in their own dialects, and the Stratum side of the simulator shares the same
object (it reads ``offline`` and the hash rate, and counts shares into it). Nothing here
touches a socket; time comes only from the injected ``clock``.

The thermal model is deliberately simple and deterministic: board temperature is ambient
plus a rise proportional to power draw relative to nameplate, chips run a little hotter
than their board, and fans follow board temperature along a linear curve.

Control, as the firmware's own commands set it (each firmware module maps its commands
onto these; see antminer.py, whatsminer.py, axeos.py):

* ``sleep()``: the hashboards stop. Hash rate 0, power falls to the family's idle draw
  (``SLEEP_POWER_SHARE`` of nameplate); the management API keeps answering and the Stratum
  side stays connected but submits nothing.
* ``wake()``: hashing comes back ``warmup()`` seconds later on the clock (boards
  re-initialising); until then hash rate 0 and idle draw. ``restart()`` is a reboot: uptime
  starts again, the same warm-up follows, and the Stratum side dials the pool afresh.
* ``deaf_to_stop``: a switch for tests of what verifies a stop. The firmware takes the
  command and says it worked, as stock Antminer firmware always does, and the rig hashes on.
* ``limit_power(watts)`` / ``set_clock(share)``: throttling. A rig held to a share p of its
  nameplate power hashes at p ** ``EFFICIENCY_EXPONENT`` of its nameplate rate (lower clocks
  allow lower voltages, so J/TH improves a little: at half power, 55 % of the hash rate,
  J/TH 10 % better); a chip clock share c hashes at c and draws c ** (1 / exponent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType

from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.rigs.models import FirmwareFamily, RigModel

BOARD_RISE_C = 35.0  # board above ambient at nameplate power
CHIP_OVER_BOARD_C = 10.0  # chips above their board at nameplate power
BOARD_SPREAD_C = (0.0, 1.5, -1.0)  # boards never read identical on real rigs
FAN_SPREAD_RPM = (0, 40, -30, 60)
FAN_CURVE_FROM_C, FAN_CURVE_TO_C = 40.0, 75.0  # fans idle below, flat out above
CHIP_HOT_C = 90.0  # firmware flags a board whose chips pass this
IDLE_POWER_SHARE = 0.1  # fans, control board and PSU losses draw this much even when hash rate falls
SLEEP_POWER_SHARE = MappingProxyType(  # draw of a rig that is not hashing, as a share of nameplate
    {
        # sleep (miner-mode 1): boards off; PSU, control board and fans at their floor stay on (S21: 70 W)
        FirmwareFamily.ANTMINER_STOCK: 0.02,
        # power_off: the PSU's output to the boards is cut; the control board's ~13 W remain (M60S: 14 W)
        FirmwareFamily.WHATSMINER: 0.004,
        # ASIC idle: the ESP32 with its Wi-Fi, the regulator and the fan (Gamma: 2.2 W)
        FirmwareFamily.AXEOS: 0.12,
    }
)
WARMUP_S = MappingProxyType(  # seconds from wake-up or restart to hashing again, unless a rig says otherwise
    {
        FirmwareFamily.ANTMINER_STOCK: 120.0,  # bmminer restarts and initialises the chains
        FirmwareFamily.WHATSMINER: 90.0,  # btminer powers the boards and ramps their frequency
        FirmwareFamily.AXEOS: 15.0,  # the ESP32 boots and initialises the ASIC
    }
)
EFFICIENCY_EXPONENT = 0.85  # hash share = power share ** this when throttled
MIN_POWER_SHARE = 0.3  # firmware throttles no lower: a tighter power limit holds the rig here


@dataclass(frozen=True, slots=True)
class FanCurve:
    min_rpm: int
    max_rpm: int


def fan_curve(family: FirmwareFamily) -> FanCurve:
    match family:
        case FirmwareFamily.ANTMINER_STOCK:
            return FanCurve(2000, 6000)
        case FirmwareFamily.WHATSMINER:
            return FanCurve(2500, 7000)
        case FirmwareFamily.AXEOS:
            return FanCurve(1500, 6000)
    raise ValueError(f"no fan curve for {family}")


@dataclass(frozen=True, slots=True)
class RigError:
    """A fault the firmware reports: ``code`` in the maker's numbering, ``message`` for humans."""

    code: int
    message: str


@dataclass(eq=False)
class RigState:
    model: RigModel
    name: str = "rig"  # stable identity: seeds the MAC and serial numbers
    clock: Clock = SYSTEM_CLOCK
    ambient_c: float = 25.0
    # pool side, filled in by whoever runs the rig's Stratum connection
    pool_host: str = "127.0.0.1"
    pool_port: int = 3333
    worker: str = "sim.rig"
    accepted: int = 0
    rejected: int = 0
    # injected faults
    offline: bool = False
    hashrate_factor: float = 1.0
    power_factor: float = 1.0
    overheat_c: float = 0.0  # how far temperatures climb once overheating
    overheat_ramp_s: float = 0.0
    overheat_since: float | None = None
    errors: list[RigError] = field(default_factory=list)
    # control, set through the firmware's own commands
    admin_password: str | None = None  # what the firmware's API asks for; None: its factory default
    warmup_s: float | None = None  # wake-up to hashing; None: the family's (WARMUP_S)
    deaf_to_stop: bool = False  # sleep and power-off are answered as done, and the rig hashes on
    asleep_since: float | None = None  # monotonic time the boards were stopped; None: awake
    hashing_from: float | None = None  # monotonic time hashing resumes after a wake-up or restart
    power_limit_w: float | None = None  # a cap on the draw; None: nameplate
    clock_share: float = 1.0  # chip clock as a share of stock
    restarts: int = 0  # reboots so far; the Stratum side hangs up and dials again on each
    booted_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.booted_at = self.clock.monotonic()
        if self.warmup_s is not None and self.warmup_s < 0:
            raise ValueError(f"warmup_s must not be negative, got {self.warmup_s}")

    # -- fault injection ------------------------------------------------------------

    def go_offline(self) -> None:
        """The management API stops answering (connections are accepted, never replied to)."""
        self.offline = True

    def come_online(self, *, rebooted: bool = False) -> None:
        self.offline = False
        if rebooted:
            self.booted_at = self.clock.monotonic()

    def degrade(self, factor: float) -> None:
        """Hash rate falls to ``factor`` of nominal (dead chips, a failing board)."""
        if not 0 <= factor <= 1:
            raise ValueError(f"degrade factor must be within 0..1, got {factor}")
        self.hashrate_factor = factor

    def spike_power(self, factor: float) -> None:
        """Power draw rises to ``factor`` times normal at the same hash rate (a bad PSU, a short)."""
        if factor <= 0:
            raise ValueError(f"power factor must be positive, got {factor}")
        self.power_factor = factor

    def overheat(self, rise_c: float = 30.0, ramp_s: float = 120.0) -> None:
        """Temperatures climb by ``rise_c`` over ``ramp_s`` seconds from now (a blocked intake)."""
        if rise_c < 0 or ramp_s < 0:
            raise ValueError("overheat rise and ramp must not be negative")
        self.overheat_c, self.overheat_ramp_s, self.overheat_since = rise_c, ramp_s, self.clock.monotonic()

    def add_error(self, code: int, message: str) -> None:
        self.errors.append(RigError(code, message))

    def recover(self) -> None:
        """Clear every injected fault; uptime goes on."""
        self.offline = False
        self.hashrate_factor = self.power_factor = 1.0
        self.overheat_c, self.overheat_ramp_s, self.overheat_since = 0.0, 0.0, None
        self.errors.clear()

    # -- control ----------------------------------------------------------------------

    def warmup(self) -> float:
        return WARMUP_S[self.model.firmware] if self.warmup_s is None else self.warmup_s

    @property
    def sleeping(self) -> bool:
        return self.asleep_since is not None

    def sleep(self) -> None:
        """Stop hashing; the API answers on and the pool connection stays up."""
        if not self.sleeping and not self.deaf_to_stop:
            self.asleep_since, self.hashing_from = self.clock.monotonic(), None

    def wake(self) -> None:
        """Hash again after the warm-up (a rig already awake is left as it is)."""
        if self.sleeping:
            self.asleep_since = None
            self.hashing_from = self.clock.monotonic() + self.warmup()

    def restart(self) -> None:
        """A reboot: uptime starts again and hashing resumes after the warm-up (unless asleep)."""
        now = self.clock.monotonic()
        self.booted_at, self.restarts = now, self.restarts + 1
        self.hashing_from = None if self.sleeping else now + self.warmup()

    def limit_power(self, watts: float | None, *, warm_up: bool = False) -> None:
        """Hold the draw to ``watts`` (None: no limit); ``warm_up``: the firmware restarts mining to apply it."""
        if watts is not None and not watts > 0:
            raise ValueError(f"a power limit must be positive watts, got {watts}")
        self.power_limit_w = watts
        if warm_up and not self.sleeping:
            self.hashing_from = self.clock.monotonic() + self.warmup()

    def set_clock(self, share: float) -> None:
        """Run the chips at ``share`` of their stock clock (above 1 is an overclock)."""
        if not share > 0:
            raise ValueError(f"a clock share must be positive, got {share}")
        self.clock_share = share

    def hashing(self) -> bool:
        """Awake and past any warm-up."""
        return not self.sleeping and (self.hashing_from is None or self.clock.monotonic() >= self.hashing_from)

    def mode(self) -> str:
        """``mining``, ``waking`` (warming up after a wake-up or restart) or ``sleeping``."""
        if self.sleeping:
            return "sleeping"
        return "mining" if self.hashing() else "waking"

    def performance(self) -> float:
        """Hash rate as a share of nameplate that throttling leaves (1.0: none)."""
        share = self.clock_share
        if self.power_limit_w is not None:
            cap = min(1.0, max(MIN_POWER_SHARE, self.power_limit_w / self.model.nominal_watts))
            share = min(share, cap**EFFICIENCY_EXPONENT)
        return share

    # -- figures the firmware reports ----------------------------------------------

    def uptime(self) -> int:
        return max(0, int(self.clock.monotonic() - self.booted_at))

    def hashrate(self) -> float:
        """Hashes per second the rig does now."""
        if not self.hashing():
            return 0.0
        return self.model.nominal_hashrate * self.hashrate_factor * self.performance()

    def board_hashrates(self) -> list[float]:
        boards = self.model.hashboards
        return [self.hashrate() / boards] * boards

    def watts(self) -> float:
        if not self.hashing():
            return self.model.nominal_watts * SLEEP_POWER_SHARE[self.model.firmware] * self.power_factor
        share = IDLE_POWER_SHARE + (1 - IDLE_POWER_SHARE) * self.hashrate_factor
        throttle = self.performance() ** (1 / EFFICIENCY_EXPONENT)
        return self.model.nominal_watts * share * throttle * self.power_factor

    def heat_c(self) -> float:
        """Extra degrees from an injected overheat, climbing linearly over its ramp."""
        if self.overheat_since is None:
            return 0.0
        if self.overheat_ramp_s == 0:
            return self.overheat_c
        progress = min(1.0, max(0.0, (self.clock.monotonic() - self.overheat_since) / self.overheat_ramp_s))
        return self.overheat_c * progress

    def board_temps(self) -> list[float]:
        load = self.watts() / self.model.nominal_watts
        base = self.ambient_c + BOARD_RISE_C * load + self.heat_c()
        return [round(base + BOARD_SPREAD_C[i % len(BOARD_SPREAD_C)], 1) for i in range(self.model.hashboards)]

    def chip_temps(self) -> list[float]:
        rise = CHIP_OVER_BOARD_C * self.watts() / self.model.nominal_watts
        return [round(t + rise, 1) for t in self.board_temps()]

    def fan_rpms(self) -> list[int]:
        curve = fan_curve(self.model.firmware)
        hottest = max(self.board_temps())
        duty = min(1.0, max(0.0, (hottest - FAN_CURVE_FROM_C) / (FAN_CURVE_TO_C - FAN_CURVE_FROM_C)))
        rpm = curve.min_rpm + (curve.max_rpm - curve.min_rpm) * duty
        return [min(curve.max_rpm, int(rpm + FAN_SPREAD_RPM[i % len(FAN_SPREAD_RPM)])) for i in range(self.model.fans)]

    def fan_duty(self) -> int:
        """Fan speed in percent of the curve's maximum, as firmware shows it."""
        curve = fan_curve(self.model.firmware)
        return round(100 * max(self.fan_rpms()) / curve.max_rpm)

    def hot_boards(self) -> list[int]:
        return [i for i, t in enumerate(self.chip_temps()) if t >= CHIP_HOT_C]

    # -- identity -------------------------------------------------------------------

    def _digest(self, salt: str) -> bytes:
        return hashlib.sha256(f"{salt}:{self.name}".encode()).digest()

    @property
    def mac(self) -> str:
        raw = bytearray(self._digest("mac")[:6])
        raw[0] = (raw[0] | 0x02) & 0xFE  # locally administered, unicast
        return ":".join(f"{b:02X}" for b in raw)

    def serial(self, part: str = "miner") -> str:
        return self._digest(f"sn:{part}").hex()[:16].upper()

    @property
    def pool_url(self) -> str:
        return f"stratum+tcp://{self.pool_host}:{self.pool_port}"
