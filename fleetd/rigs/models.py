"""The catalogue of rig models fleetd knows, with their nameplate figures.

Nameplate figures are the maker's published specifications at stock settings:

=================  ========  =======  =====  ====================================
model              TH/s      W        J/TH   source of the figures
=================  ========  =======  =====  ====================================
Antminer S19 XP    140       3010     21.5   Bitmain spec sheet
Antminer S21       200       3500     17.5   Bitmain spec sheet
Antminer S21 XP    270       3645     13.5   Bitmain spec sheet
Whatsminer M60S    186       3441     18.5   MicroBT spec sheet (air-cooled M60S)
Bitaxe Gamma 601   1.2       18       15     OSMU / bitaxe.org (one BM1370 ASIC)
=================  ========  =======  =====  ====================================

Chip, board and fan counts are those pyasic expects for the same model, so a poller
comparing pyasic's ``expected_chips`` with ours sees the same numbers.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

TERA = 1e12


class FirmwareFamily(enum.Enum):
    """Which management API a rig's firmware speaks (what fleetd/sim/firmware emulates)."""

    ANTMINER_STOCK = "antminer-stock"  # bmminer cgminer API on 4028 + digest-auth CGI on 80; no watts
    WHATSMINER = "whatsminer"  # btminer API on 4028; reports watts in summary.Power
    AXEOS = "axeos"  # ESP-Miner HTTP JSON API on 80; reports watts in /api/system/info


@dataclass(frozen=True, slots=True)
class RigModel:
    name: str  # catalogue name, e.g. "Antminer S19 XP"
    vendor: str
    nominal_hashrate: float  # hashes per second at stock settings
    nominal_watts: float
    fans: int
    hashboards: int
    chips_per_board: int
    firmware: FirmwareFamily
    reported_model: str  # the model string the firmware itself reports (what pyasic keys on)
    pyasic_model: str  # the model name pyasic gives the rig once identified
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.nominal_hashrate > 0 and self.nominal_watts > 0):
            raise ValueError(f"{self.name}: nominal hash rate and watts must be positive")

    @property
    def joules_per_terahash(self) -> float:
        return self.nominal_watts / (self.nominal_hashrate / TERA)

    @property
    def chips(self) -> int:
        return self.hashboards * self.chips_per_board


ANTMINER_S19_XP = RigModel(
    name="Antminer S19 XP",
    vendor="Bitmain",
    nominal_hashrate=140 * TERA,
    nominal_watts=3010,
    fans=4,
    hashboards=3,
    chips_per_board=110,
    firmware=FirmwareFamily.ANTMINER_STOCK,
    reported_model="Antminer S19 XP",
    pyasic_model="S19 XP",
    aliases=("S19 XP",),
)
ANTMINER_S21 = RigModel(
    name="Antminer S21",
    vendor="Bitmain",
    nominal_hashrate=200 * TERA,
    nominal_watts=3500,
    fans=4,
    hashboards=3,
    chips_per_board=108,
    firmware=FirmwareFamily.ANTMINER_STOCK,
    reported_model="Antminer S21",
    pyasic_model="S21",
    aliases=("S21",),
)
ANTMINER_S21_XP = RigModel(
    name="Antminer S21 XP",
    vendor="Bitmain",
    nominal_hashrate=270 * TERA,
    nominal_watts=3645,
    fans=4,
    hashboards=3,
    chips_per_board=91,
    firmware=FirmwareFamily.ANTMINER_STOCK,
    reported_model="Antminer S21 XP",
    pyasic_model="S21 XP",
    aliases=("S21 XP",),
)
WHATSMINER_M60S = RigModel(
    name="Whatsminer M60S",
    vendor="MicroBT",
    nominal_hashrate=186 * TERA,
    nominal_watts=3441,
    fans=2,
    hashboards=3,
    chips_per_board=245,
    firmware=FirmwareFamily.WHATSMINER,
    reported_model="M60S_VK30",  # devdetails Model: series, underscore, hardware revision
    pyasic_model="M60S VK30",
    aliases=("M60S", "M60S VK30"),
)
BITAXE_GAMMA = RigModel(
    name="Bitaxe Gamma",
    vendor="Bitaxe",
    nominal_hashrate=1.2 * TERA,
    nominal_watts=18,
    fans=1,
    hashboards=1,
    chips_per_board=1,
    firmware=FirmwareFamily.AXEOS,
    reported_model="BM1370",  # AxeOS reports the ASIC (ASICModel); pyasic maps BM1370 to Gamma
    pyasic_model="Gamma",
    aliases=("Bitaxe", "Bitaxe Gamma 601", "Gamma", "BM1370"),
)

CATALOGUE: tuple[RigModel, ...] = (
    ANTMINER_S19_XP,
    ANTMINER_S21,
    ANTMINER_S21_XP,
    WHATSMINER_M60S,
    BITAXE_GAMMA,
)


class UnknownModelError(LookupError):
    pass


def _key(name: str) -> str:
    # "Antminer S19 XP", "antminer-s19xp" and "S19_XP" all name the same rig
    return re.sub(r"[\s_\-.]+", "", name).casefold()


def _index() -> Mapping[str, RigModel]:
    index: dict[str, RigModel] = {}
    for model in CATALOGUE:
        for name in (model.name, model.reported_model, model.pyasic_model, *model.aliases):
            index.setdefault(_key(name), model)
    return MappingProxyType(index)


_INDEX = _index()  # a read-only view built once from the frozen catalogue


@functools.lru_cache(maxsize=1024)  # every scrape and page view asks for each rig's model: the regex is the cost
def find_model(name: str) -> RigModel | None:
    """The catalogue model called ``name`` (case, spaces, '-', '_' and '.' ignored), or None."""
    return _INDEX.get(_key(name))


def get_model(name: str) -> RigModel:
    """Like find_model, but an unknown name raises UnknownModelError listing the known ones."""
    model = find_model(name)
    if model is None:
        known = ", ".join(m.name for m in CATALOGUE)
        raise UnknownModelError(f"unknown rig model {name!r}; known models: {known}")
    return model


def nameplate_watts(model: RigModel, measured_hashrate: float) -> float:
    """Estimated power draw: nameplate watts scaled by measured / nominal hash rate.

    The fallback for firmware that reports no power (stock Antminer). A rig hashing at
    half its nominal rate is taken to draw half its nameplate power; a negative or
    missing rate counts as zero.
    """
    if measured_hashrate != measured_hashrate or measured_hashrate <= 0:  # NaN or idle
        return 0.0
    return model.nominal_watts * measured_hashrate / model.nominal_hashrate
