"""The network a job source mines on: block subsidy, retarget epochs, and the state a source reports."""

from __future__ import annotations

from dataclasses import dataclass

SATS_PER_BTC = 100_000_000
HALVING_INTERVAL_BLOCKS = 210_000
INITIAL_SUBSIDY_SATS = 50 * SATS_PER_BTC
RETARGET_INTERVAL_BLOCKS = 2016


def block_subsidy_sats(height: int) -> int:
    """Subsidy of the block at ``height`` in satoshis: 50 BTC >> (height // 210000), 0 after 64 halvings."""
    if height < 0:
        raise ValueError(f"height must be >= 0, got {height}")
    halvings = height // HALVING_INTERVAL_BLOCKS
    if halvings >= 64:
        return 0
    return INITIAL_SUBSIDY_SATS >> halvings


def block_subsidy_btc(height: int) -> float:
    """Subsidy of the block at ``height`` in BTC (computed exactly in satoshis)."""
    return block_subsidy_sats(height) / SATS_PER_BTC


def epoch_start_height(height: int) -> int:
    """First height of the retarget epoch that ``height`` is in."""
    return height - height % RETARGET_INTERVAL_BLOCKS


@dataclass(frozen=True)
class NetworkState:
    """What a job source knows of the network it mines on.

    ``height`` is the block being mined (the tip is ``height - 1``). ``block_times_seconds``
    are unix times of consecutive blocks of the tip's retarget epoch, oldest first, ending
    with the tip: header timestamps from a node, or the arrival times of new-block jobs
    fleetd observed (then usually far fewer than the epoch has).
    """

    difficulty: float
    height: int
    fees_btc_per_block: float | None = None  # averaged from templates; None: not known to the source
    block_times_seconds: tuple[float, ...] = ()
    block_times_origin: str = "observed"  # "headers" | "observed" | "modelled" | "restored" (by the journal)
    subsidy_btc: float | None = None  # None: mainnet's schedule at ``height`` (a test chain halves sooner)

    @property
    def block_subsidy_btc(self) -> float:
        return block_subsidy_btc(self.height) if self.subsidy_btc is None else self.subsidy_btc

    @property
    def tip_height(self) -> int:
        return max(0, self.height - 1)


class EpochBlockTimes:
    """Times of a consecutive run of blocks ending at the tip, all in the tip's retarget epoch.

    A source learns them one new tip at a time. A gap (a tip fleetd did not see), a reorg to
    a lower height or a new epoch starts the run again, so ``times()`` always suits a
    difficulty projection.
    """

    __slots__ = ("_first_height", "_times")

    def __init__(self) -> None:
        self._first_height: int | None = None
        self._times: list[float] = []

    def record(self, tip_height: int, time_seconds: float) -> None:
        """Block ``tip_height`` became the tip at (or has the timestamp) ``time_seconds``."""
        expected = None if self._first_height is None else self._first_height + len(self._times)
        if tip_height == (expected or 0) - 1 and self._times:  # the same tip again: keep the first time
            return
        if (
            expected is None
            or tip_height != expected
            or epoch_start_height(tip_height) != epoch_start_height(self._first_height)
        ):
            self._first_height, self._times = tip_height, []
        self._times.append(float(time_seconds))

    def times(self) -> tuple[float, ...]:
        return tuple(self._times)

    @property
    def tip_height(self) -> int | None:
        return None if self._first_height is None else self._first_height + len(self._times) - 1
