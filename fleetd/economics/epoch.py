"""Block times of the current retarget epoch, as a source learns them one new tip at a time."""

from __future__ import annotations

from fleetd.economics.network import epoch_start_height


class EpochBlockTimes:
    """Times of a consecutive run of blocks ending at the tip, all in the tip's retarget epoch.

    A gap (a tip fleetd did not see), a reorg to a lower height or a new epoch starts the
    run again, so ``times()`` always suits ``projected_difficulty_change``.
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
