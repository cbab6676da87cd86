"""BIP310 ``mining.configure``: which extensions a miner gets, as pure functions.

A problem inside one extension's parameters answers that extension ``false``; only a
request whose shape is wrong (extensions not a list of names, parameters not a map) is
malformed as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetd.chain.byteorder import u32_from_hex, u32_to_hex

VERSION_ROLLING = "version-rolling"
MINIMUM_DIFFICULTY = "minimum-difficulty"
SUBSCRIBE_EXTRANONCE = "subscribe-extranonce"
FULL_MASK = 0xFFFFFFFF  # BIP310: a miner that sends no mask can roll any bit

_MASK_DIGITS = re.compile(r"[0-9a-fA-F]{1,8}").fullmatch


@dataclass(frozen=True, slots=True)
class VersionRolling:
    requested_mask: int
    min_bit_count: int
    mask: int | None  # the negotiated mask, None when rolling was refused


@dataclass(frozen=True, slots=True)
class Configuration:
    """One ``mining.configure`` request, decided. ``None`` fields were not requested (or invalid)."""

    result: dict
    version_rolling: VersionRolling | None
    minimum_difficulty: float | None
    subscribe_extranonce: bool


def negotiate_version_mask(pool_mask: int, requested_mask: int, min_bit_count: int) -> int | None:
    """The common bits, or None when they are fewer than the miner needs (or none at all)."""
    mask = pool_mask & requested_mask
    if mask == 0 or mask.bit_count() < min_bit_count:
        return None
    return mask


def parse_mask(value: object) -> int:
    """A BIP310 TMask (hex, up to 8 digits; shorter values tolerated); ValueError otherwise."""
    if not isinstance(value, str) or not _MASK_DIGITS(value):
        raise ValueError(f"version mask must be up to 8 hex digits, got {value!r}")
    return u32_from_hex(value.zfill(8), "version mask")


def configure(params: list, pool_mask: int) -> Configuration:
    """Decide a ``mining.configure`` request; ValueError when its shape is malformed."""
    if not params or len(params) > 2:
        raise ValueError("mining.configure takes [extensions, extension-parameters]")
    extensions = params[0]
    options = params[1] if len(params) == 2 else {}
    if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
        raise ValueError("mining.configure extensions must be a list of names")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValueError("mining.configure extension-parameters must be a map")

    result: dict = {}
    rolling = None
    minimum = None
    subscribe_extranonce = False
    for name in extensions:
        if name == VERSION_ROLLING:
            rolling = _version_rolling(options, pool_mask)
            result[name] = rolling.mask is not None
            if rolling.mask is not None:
                result["version-rolling.mask"] = u32_to_hex(rolling.mask)
        elif name == MINIMUM_DIFFICULTY:
            minimum = _minimum_difficulty(options)
            result[name] = minimum is not None
        elif name == SUBSCRIBE_EXTRANONCE:
            subscribe_extranonce = True
            result[name] = True
        else:
            result[name] = False  # unknown to us: unsupported, which is not an error
    return Configuration(result, rolling, minimum, subscribe_extranonce)


_UNREADABLE = VersionRolling(0, 0, None)  # parameters we cannot read: no rolling


def _version_rolling(options: dict, pool_mask: int) -> VersionRolling:
    try:
        requested = parse_mask(options.get("version-rolling.mask", "ffffffff"))
    except ValueError:
        return _UNREADABLE
    bits = options.get("version-rolling.min-bit-count", 0)
    if type(bits) is not int or bits < 0:
        return _UNREADABLE
    return VersionRolling(requested, bits, negotiate_version_mask(pool_mask, requested, bits))


def _minimum_difficulty(options: dict) -> float | None:
    value = options.get("minimum-difficulty.value")
    if type(value) not in (int, float) or not value >= 0:
        return None
    return float(value)
