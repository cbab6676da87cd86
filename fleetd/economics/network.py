"""Network economics: hash rate from difficulty, projected difficulty adjustment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.chain.network import RETARGET_INTERVAL_BLOCKS

TARGET_BLOCK_TIME_SECONDS = 600
HASHES_PER_DIFFICULTY_1 = 2**32
# Consensus clamps the epoch timespan to [1/4, 4x] of 2016 x 600 s, i.e. the average block time
# to [150 s, 2400 s]: the difficulty change is within [-75 %, +300 %].
MIN_AVERAGE_BLOCK_TIME_SECONDS = TARGET_BLOCK_TIME_SECONDS / 4
MAX_AVERAGE_BLOCK_TIME_SECONDS = TARGET_BLOCK_TIME_SECONDS * 4
# mempool.space shows an estimate only once 7.2 % of the epoch (146 blocks) is known.
DEFAULT_MIN_KNOWN_BLOCKS = 146


def _check_finite_nonnegative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def network_hashrate_hashes_per_second(difficulty: float) -> float:
    """Expected network hash rate: one block per 600 s at ``difficulty`` x 2^32 hashes per block."""
    _check_finite_nonnegative("difficulty", difficulty)
    return difficulty * HASHES_PER_DIFFICULTY_1 / TARGET_BLOCK_TIME_SECONDS


@dataclass(frozen=True)
class DifficultyProjection:
    """Projected next retarget, from the block times of the current epoch known so far."""

    change_ratio: float  # new difficulty / old - 1, clamped to [-0.75, +3.0]; -0.0431 for -4.31 %
    average_block_time_seconds: float  # observed, unclamped
    blocks_known: int  # timestamps the projection is based on
    blocks_remaining: int  # until next_retarget_height
    next_retarget_height: int
    estimated_retarget_time_seconds: float  # unix time: last block + remaining x average
    clamped: bool  # the consensus clamp applied


def projected_difficulty_change(
    block_times_seconds: Sequence[float],
    tip_height: int,
    min_known_blocks: int = DEFAULT_MIN_KNOWN_BLOCKS,
) -> DifficultyProjection | None:
    """Project the next difficulty adjustment as mempool.space does.

    ``block_times_seconds`` are the unix timestamps of consecutive blocks of the current epoch
    that are known (oldest first, the last one is the tip at ``tip_height``); they may start
    later than the epoch if only part of it was observed. The average block time is
    (last - first) / (count - 1); the change is 600 / average - 1 with the average clamped to
    [150 s, 2400 s] as consensus clamps the timespan. Returns None when fewer than
    ``min_known_blocks`` (and at least 2) timestamps are known.
    """
    if tip_height < 0:
        raise ValueError(f"tip_height must be >= 0, got {tip_height}")
    blocks_known = len(block_times_seconds)
    if blocks_known < max(2, min_known_blocks):
        return None
    for t in block_times_seconds:
        if not math.isfinite(t):
            raise ValueError(f"block time must be finite, got {t!r}")
    average = (block_times_seconds[-1] - block_times_seconds[0]) / (blocks_known - 1)
    effective = min(max(average, MIN_AVERAGE_BLOCK_TIME_SECONDS), MAX_AVERAGE_BLOCK_TIME_SECONDS)
    blocks_remaining = RETARGET_INTERVAL_BLOCKS - tip_height % RETARGET_INTERVAL_BLOCKS
    return DifficultyProjection(
        change_ratio=TARGET_BLOCK_TIME_SECONDS / effective - 1,
        average_block_time_seconds=average,
        blocks_known=blocks_known,
        blocks_remaining=blocks_remaining,
        next_retarget_height=tip_height + blocks_remaining,
        estimated_retarget_time_seconds=block_times_seconds[-1] + blocks_remaining * max(average, 0.0),
        clamped=effective != average,
    )
