"""Per-connection variable difficulty: aim every miner at one share per target interval.

The controller estimates the miner's work rate (difficulty units per second) with an
exponentially decaying average of submitted work over decayed exposure time. Work, not
share count, is what it measures, so shares judged at an older difficulty still count
correctly and a difficulty change need not throw the estimate away (after a change its
weight is capped at ``memory_after_change`` so fresh shares soon outvote old ones; a
drop by more than half starts it afresh, since the old data then misled).

It never reads a clock: every call carries ``now`` (seconds, any monotonic origin). It
only *proposes* a difficulty; the driver applies it with the next job it sends. The one
exception is the miner's own ``mining.suggest_difficulty`` (``suggest``), which is in
force at once.

Two rules move the difficulty:

* quick jump (datum_gateway's "quickdiff"): shares arriving ``quick_ratio`` times too
  fast jump straight to the estimate, once ``quick_shares`` shares at the current
  difficulty back it (so a flushed backlog of old-difficulty shares moves it once);
* retarget: every ``retarget_interval`` (on a share or on ``on_idle``) the estimate is
  compared with the current difficulty. A change needs the gap to exceed both the
  hysteresis band and ``significance`` standard errors of the estimate had the current
  difficulty been right (1/sqrt of the shares it would have produced), so Poisson noise
  on a steady miner does not move it, while a miner that stopped is lowered within
  minutes and a real change of hash rate is followed in a few steps.

Going down is limited by what the shares seen prove: the aim is the upper 95 % bound
of the rate (as if ``SILENCE_SHARES`` = 3 more shares arrived now), never the bare
estimate, so a short silence, which is weak evidence, cannot cut deep. A miner that is
not known yet (fewer than ``probe_shares`` shares since its difficulty was last a guess)
steps down by at most ``probe_drop`` per retarget, keeping the evidence it has: a
start difficulty far too high halves every 30 s of silence, and once shares arrive the
estimate takes over.

Measured on simulated Poisson miners (tests/shares/test_vardiff.py, 200 seeds): from
1000x too low the difficulty is within a factor of 2 after two minutes; from 10x, 100x
and 1000x too high after a median of 1.5, 3 and 5 minutes (at most 6, 8 and 9); the
share interval over 10-minute windows then stays within +-50 % of the target. A miner
at 3.6 s a share at the start difficulty (target 5 s) is never lowered in > 99 % of
runs, and by at most 2x otherwise. A steady miner sees ~0.2 changes an hour after its
first five minutes; a 4x drop of hash rate is followed to within +-60 % in 20 minutes,
a 10x drop to within 2x in ten minutes (at most 15).

Every result is clamped to [max(min_difficulty, floor), ceiling], where the floor is what
the miner asked for (``mining.configure`` minimum-difficulty, raising only, or
``mining.suggest_difficulty``, which also sets the difficulty) and the ceiling is
max_difficulty or, lower, a cap the driver sets (``set_cap``: an upstream pool's
difficulty, above which a rig would skip shares the pool credits). The cap wins over
everything else, the floor and min_difficulty included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_DIFFICULTY = 1e-9  # the smallest difficulty fleetd accepts anywhere (CPU miners, tests)
_MIN_EXPOSURE = 1.0  # seconds; a burst of shares at one instant is not an infinite rate
SILENCE_SHARES = 3.0  # -ln(0.05): expected shares whose absence is 95 % evidence of a lower rate


@dataclass(frozen=True, slots=True)
class VardiffConfig:
    """Tuning knobs; defaults suit ASICs and CPU miners alike."""

    target_interval: float = 5.0  # seconds per share the pool aims at
    start_difficulty: float = 1024.0
    min_difficulty: float = 1e-4
    max_difficulty: float = 1e15
    retarget_interval: float = 30.0  # seconds between regular retarget decisions
    hysteresis: float = 0.2  # relative gap the estimate must exceed before a change
    significance: float = 2.25  # ...and how many standard errors it must exceed
    probe_significance: float = 1.0  # ...for a new miner, whose start difficulty is a guess
    decay_time: float = 600.0  # seconds; memory of the rate estimate
    memory_after_change: float = 180.0  # seconds of exposure the estimate keeps after a change
    quick_ratio: float = 8.0  # shares this many times too fast trigger a quick jump
    quick_shares: int = 16  # shares at the current difficulty backing a quick jump
    max_step: float = 16.0  # largest factor one change may apply (a flushed burst is not hash rate)
    probe_shares: int = 8  # shares since the estimate last started afresh after which a miner is known
    probe_drop: float = 2.0  # largest step down per retarget for a miner not known yet

    def __post_init__(self) -> None:
        for field in self.__dataclass_fields__:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"vardiff {field} must be a finite number, got {value!r}")
        for field in ("target_interval", "retarget_interval", "decay_time", "memory_after_change"):
            if not getattr(self, field) > 0:
                raise ValueError(f"vardiff {field} must be positive, got {getattr(self, field)!r}")
        for field in ("hysteresis", "significance", "probe_significance"):
            if getattr(self, field) < 0:
                raise ValueError(f"vardiff {field} must not be negative, got {getattr(self, field)!r}")
        for field in ("quick_ratio", "max_step", "probe_drop"):
            if not getattr(self, field) > 1:
                raise ValueError(f"vardiff {field} must be greater than 1, got {getattr(self, field)!r}")
        for field in ("quick_shares", "probe_shares"):
            if getattr(self, field) < 1:
                raise ValueError(f"vardiff {field} must be at least 1, got {getattr(self, field)!r}")
        lo, start, hi = self.min_difficulty, self.start_difficulty, self.max_difficulty
        if lo < MIN_DIFFICULTY:
            raise ValueError(f"vardiff min_difficulty must be at least {MIN_DIFFICULTY}, got {lo!r}")
        if not lo <= start <= hi:
            raise ValueError(
                "vardiff needs min_difficulty <= start_difficulty <= max_difficulty,"
                f" got {lo!r} <= {start!r} <= {hi!r}"
            )


class Vardiff:
    """The vardiff state of one connection. Methods return the new difficulty, or None.

    ``on_share`` is on the submit hot path: a few float operations and one ``exp``.
    """

    __slots__ = (
        "config",
        "difficulty",
        "floor",
        "ceiling",
        "_work",
        "_confirmed",
        "_exposure",
        "_updated",
        "_next_check",
        "_shares",
        "_band",
    )

    def __init__(self, config: VardiffConfig, now: float, *, floor: float | None = None) -> None:
        self.config = config
        self.floor = config.min_difficulty
        self.ceiling = config.max_difficulty
        self.difficulty = config.start_difficulty
        self._band = math.log1p(config.hysteresis)
        self._reset(now)
        if floor is not None:
            self.set_floor(floor, now)

    # -- events -----------------------------------------------------------------

    def on_share(self, now: float, share_difficulty: float | None = None) -> float | None:
        """Record an accepted share judged at ``share_difficulty`` (default: the current one)."""
        cfg = self.config
        d = self.difficulty if share_difficulty is None else share_difficulty
        self._decay(now)
        self._work += d
        self._shares += 1
        if d >= self.difficulty:
            self._confirmed += 1
        # Estimated ideal difficulty over the current one.
        ratio = self._work * cfg.target_interval / (max(self._exposure, _MIN_EXPOSURE) * self.difficulty)
        if ratio >= cfg.quick_ratio and self._confirmed >= cfg.quick_shares:
            return self._change(now, self.difficulty * ratio, reset=False)
        if now < self._next_check:
            return None
        return self._retarget(now, ratio)

    def on_idle(self, now: float) -> float | None:
        """Call now and then (say once a second): retargets a miner whose shares dried up."""
        if now < self._next_check:
            return None
        self._decay(now)
        ratio = self._work * self.config.target_interval / (max(self._exposure, _MIN_EXPOSURE) * self.difficulty)
        return self._retarget(now, ratio)

    def _retarget(self, now: float, ratio: float) -> float | None:
        # A regular decision: change only when the gap is wider than the hysteresis band
        # and than `significance` standard errors of the estimate, so Poisson noise on a
        # steady miner never moves it.
        cfg = self.config
        self._next_check = now + cfg.retarget_interval
        d = self.difficulty
        exposure = max(self._exposure, _MIN_EXPOSURE)
        gap = abs(math.log(ratio)) if ratio > 0.0 else math.inf
        # Standard error of ln(rate) if the current difficulty were right: 1/sqrt(shares expected).
        known = self._shares >= cfg.probe_shares
        z = cfg.significance if known else cfg.probe_significance
        if gap <= self._band or gap * gap * exposure <= z * z * cfg.target_interval:
            return None
        if ratio >= 1.0:
            return self._change(now, d * ratio, reset=False)
        # Going down, aim as if SILENCE_SHARES more shares arrived right now: the highest
        # rate the shares seen leave plausible. No share in T seconds at difficulty d
        # bounds the rate below 3 / T shares a second (the Poisson zero-count bound, 95 %),
        # so the right difficulty is below 3 * target_interval * d / T; a short silence is
        # weak evidence (11 s without a share at a 3.6 s mean happens 5 % of the time).
        ratio = (self._work + SILENCE_SHARES * d) * cfg.target_interval / (exposure * d)
        if known:
            if ratio * (1.0 + cfg.hysteresis) >= 1.0:
                return None
            # A big drop means the old estimate misled (a lucky share at a far too high
            # difficulty): start afresh. Small corrections keep what was learned.
            return self._change(now, d * ratio, reset=ratio < 0.5)
        # A miner not known yet (its difficulty is a guess, or the last guess was wrong)
        # steps down by at most probe_drop a retarget, keeping what it has seen: 2x per
        # 30 s of silence is what the bound allows even when the miner only takes up
        # a new difficulty with its next job, up to one retarget later.
        ratio = max(ratio, 1.0 / cfg.probe_drop)
        if ratio * (1.0 + cfg.hysteresis) >= 1.0:
            return None
        return self._change(now, d * ratio, reset=False, rescale=True)

    def set_floor(self, floor: float, now: float) -> float | None:
        """The miner's own minimum (BIP310 minimum-difficulty in mining.configure).

        Clamped to the configured range; returns the new difficulty if the current one is below it.
        """
        self.floor = self._clamp(floor)
        if self.difficulty < self.floor:
            return self._change(now, self.floor, reset=True)
        return None

    def suggest(self, difficulty: float, now: float) -> float | None:
        """The miner's mining.suggest_difficulty: the difficulty from now on, and its floor.

        Clamped to the configured range, not limited by ``max_step``: the miner knows its
        hash rate better than a guess does. Returns the new difficulty if it changed.
        """
        self.floor = self._clamp(difficulty)
        wanted = min(self.floor, self.ceiling)
        if wanted == self.difficulty:
            return None
        self.difficulty = wanted
        self._reset(now)  # the miner's word replaces the estimate so far
        return self.difficulty

    def set_cap(self, cap: float | None) -> float | None:
        """The most the difficulty may be from now on, whatever the estimate, the floor or
        min_difficulty say (None: max_difficulty again). Returns the new difficulty if the
        current one was above the cap and came down to it; the estimate is kept (it is a
        rate of work, whatever the difficulty).
        """
        cfg = self.config
        if cap is None:
            self.ceiling = cfg.max_difficulty
        else:
            if not (isinstance(cap, (int, float)) and math.isfinite(cap) and cap > 0):
                raise ValueError(f"difficulty cap must be a positive number, got {cap!r}")
            self.ceiling = min(max(float(cap), MIN_DIFFICULTY), cfg.max_difficulty)
        if self.difficulty <= self.ceiling:
            return None
        self.difficulty = self.ceiling
        return self.difficulty

    # -- internals ----------------------------------------------------------------

    def _clamp(self, floor: float) -> float:
        cfg = self.config
        if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0):
            raise ValueError(f"difficulty floor must be a positive number, got {floor!r}")
        return min(max(float(floor), cfg.min_difficulty), cfg.max_difficulty)

    def _reset(self, now: float) -> None:
        self._work = 0.0
        self._confirmed = 0
        self._exposure = 0.0
        self._shares = 0
        self._updated = now
        self._next_check = now + self.config.retarget_interval

    def _decay(self, now: float) -> None:
        # Exposure is the decayed integral of elapsed time, so work / exposure is an
        # unbiased rate for a steady miner from the very first second on.
        dt = now - self._updated
        if dt > 0:
            keep = math.exp(-dt / self.config.decay_time)
            self._work *= keep
            self._exposure = self._exposure * keep + self.config.decay_time * (1.0 - keep)
            self._updated = now

    def _change(self, now: float, wanted: float, *, reset: bool, rescale: bool = False) -> float | None:
        cfg = self.config
        current = self.difficulty
        wanted = min(max(wanted, current / cfg.max_step), current * cfg.max_step)
        wanted = min(max(wanted, self.floor), self.ceiling)
        if rescale:
            # The evidence in shares expected at the new difficulty: the rate estimate is
            # unchanged and the silence so far keeps counting.
            self._work *= wanted / current
            self._exposure *= wanted / current
        if reset:
            self._reset(now)
        else:
            self._next_check = now + cfg.retarget_interval
            self._confirmed = 0
            # Keep the estimate but cap its weight, so that after a real change of hash
            # rate fresh shares outvote the old ones within minutes, not a decay time.
            if self._exposure > cfg.memory_after_change:
                keep = cfg.memory_after_change / self._exposure
                self._work *= keep
                self._exposure = cfg.memory_after_change
        if wanted == current:
            return None
        self.difficulty = wanted
        return wanted
