"""Targets, compact nbits and difficulty (pool difficulty 1 = 0x00000000FFFF0000...)."""

from __future__ import annotations

from fractions import Fraction

DIFF1_TARGET = 0xFFFF << 208
MAX_TARGET = (1 << 256) - 1


def bits_to_target(nbits: int) -> int:
    """Expand compact nbits to the 256-bit target (negative or overflowing encodings rejected)."""
    if not 0 <= nbits <= 0xFFFFFFFF:
        raise ValueError(f"nbits out of 32-bit range: {nbits}")
    exponent, mantissa = nbits >> 24, nbits & 0x007FFFFF
    if nbits & 0x00800000 and mantissa:
        raise ValueError(f"nbits {nbits:08x} encodes a negative target")
    target = mantissa >> 8 * (3 - exponent) if exponent <= 3 else mantissa << 8 * (exponent - 3)
    if target > MAX_TARGET:
        raise ValueError(f"nbits {nbits:08x} overflows 256 bits")
    return target


def target_to_bits(target: int) -> int:
    """Compress a target to nbits, as Bitcoin Core's GetCompact does."""
    if not 0 <= target <= MAX_TARGET:
        raise ValueError("target out of 256-bit range")
    size = (target.bit_length() + 7) // 8
    mantissa = target >> 8 * (size - 3) if size > 3 else target << 8 * (3 - size)
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return size << 24 | mantissa


def difficulty_to_target(difficulty: float) -> int:
    """The share target for a pool difficulty; fractional difficulties give targets above diff 1."""
    if not difficulty > 0:
        raise ValueError(f"difficulty must be positive, got {difficulty!r}")
    return min(MAX_TARGET, int(Fraction(DIFF1_TARGET) / Fraction(difficulty)))


def target_to_difficulty(target: int) -> float:
    if target <= 0:
        raise ValueError("target must be positive")
    return DIFF1_TARGET / target


def bits_to_difficulty(nbits: int) -> float:
    return target_to_difficulty(bits_to_target(nbits))
