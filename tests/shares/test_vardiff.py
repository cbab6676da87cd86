"""Vardiff against simulated miners: Poisson share arrivals on a simulated clock."""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
import time

import pytest

from fleetd.shares.vardiff import MIN_DIFFICULTY, Vardiff, VardiffConfig

TARGET = 5.0
IDEAL = 1000.0  # the difficulty at which the simulated miner hits TARGET seconds per share
SEEDS = range(6)


@dataclasses.dataclass
class Run:
    shares: list[tuple[float, float]]  # (time, difficulty the share was judged at)
    changes: list[tuple[float, float]]  # (time, difficulty vardiff proposed)
    final: float

    def difficulty_at(self, t: float, start: float) -> float:
        d = start
        for when, new in self.changes:
            if when > t:
                break
            d = new
        return d

    def intervals(self, start: float, stop: float, window: float) -> list[float]:
        """Mean seconds per share in consecutive windows."""
        times = [t for t, _ in self.shares]
        out = []
        while start + window <= stop:
            n = bisect.bisect(times, start + window) - bisect.bisect(times, start)
            out.append(window / n if n else math.inf)
            start += window
        return out


def simulate(
    config: VardiffConfig,
    *,
    rate: float,
    seed: int,
    duration: float = 3600.0,
    job_interval: float | None = None,
    rate_change: tuple[float, float] | None = None,
) -> Run:
    """A miner doing ``rate`` difficulty units per second (ideal difficulty = rate * TARGET).

    The driver calls on_idle once a second; a proposed difficulty reaches the miner at once
    or, with ``job_interval``, with the next job (shares until then are judged at the old
    one). ``rate_change`` is (time, new rate); a rate of 0 is a miner that stopped.
    """
    rng = random.Random(seed)

    def draw(t: float) -> float:
        return t + rng.expovariate(rate / active) if rate > 0 else math.inf

    vd = Vardiff(config, 0.0)
    active = vd.difficulty
    shares: list[tuple[float, float]] = []
    changes: list[tuple[float, float]] = []
    next_share = draw(0.0)
    next_idle = 1.0
    next_job = job_interval if job_interval else math.inf
    next_rate = rate_change[0] if rate_change else math.inf
    while True:
        t = min(next_share, next_idle, next_job, next_rate)
        if t >= duration:
            break
        new = None
        if t == next_share:
            shares.append((t, active))
            new = vd.on_share(t, active)
            next_share = draw(t)
        elif t == next_idle:
            new = vd.on_idle(t)
            next_idle += 1.0
        elif t == next_rate:
            rate, next_rate = rate_change[1], math.inf
            next_share = draw(t)  # memoryless: redraw at the new rate
        else:
            next_job += job_interval
        if new is not None:
            changes.append((t, new))
        if vd.difficulty != active and (job_interval is None or t == next_job - job_interval):
            active = vd.difficulty
            next_share = draw(t)
    return Run(shares, changes, vd.difficulty)


def config(**overrides) -> VardiffConfig:
    return VardiffConfig(**{"min_difficulty": MIN_DIFFICULTY, "target_interval": TARGET, **overrides})


def assert_settles(run: Run, start: float, *, ideal: float = IDEAL, by: float = 120.0) -> None:
    # Settled: within a factor of 2 of ideal at `by` and never outside it afterwards.
    at = run.difficulty_at(by, start)
    assert 0.5 <= at / ideal <= 2, f"difficulty {at:g} at {by:g} s, ideal {ideal:g}"
    later = [(t, d) for t, d in run.changes if t > by and not 0.5 <= d / ideal <= 2]
    assert not later, f"left the band after settling: {later}"


def assert_on_target(run: Run, *, after: float = 120.0, window: float = 600.0) -> None:
    intervals = run.intervals(after, 3600.0, window)
    assert len(intervals) >= 5
    for got in intervals:
        assert 0.5 * TARGET <= got <= 1.5 * TARGET, f"{window:g} s windows: {[round(i, 2) for i in intervals]}"


@pytest.mark.parametrize("job_interval", [None, 30.0], ids=["at-once", "next-job"])
@pytest.mark.parametrize(
    "factor, by",
    # Too low is fixed by the quick jump within seconds. Too high can only come down as
    # fast as silence proves it (2x per 30 s): over 200 seeds 100x and 1000x took at most
    # 8 and 9 minutes, a median of 3 and 5.
    [(1e-3, 120.0), (1e2, 600.0), (1e3, 600.0)],
    ids=["1000x-too-low", "100x-too-high", "1000x-too-high"],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_settles_in_bounded_time_then_holds_the_target_interval(factor, by, seed, job_interval):
    start = IDEAL * factor
    run = simulate(config(start_difficulty=start), rate=IDEAL / TARGET, seed=seed, job_interval=job_interval)
    assert_settles(run, start, by=by)
    assert_on_target(run, after=by)


BFG_START = 1024.0
BFG_RATE = BFG_START / 3.6  # one share per 3.6 s at the start difficulty, target 5 s: ideal ~1422


def test_a_late_first_share_does_not_cut_the_difficulty():
    # bfgminer against fleetd: the first share after 11 s, then one every 3.6 s, the idle
    # loop looking every 5 s. No share in 11 s at a 3.6 s mean happens 5 % of the time:
    # no evidence of a lower rate. (It used to drop 16x at 10 s.)
    vd = Vardiff(config(start_difficulty=BFG_START), 0.0)
    shares = [11.0 + 3.6 * i for i in range(200)]
    idles = [5.0 * i for i in range(1, 150)]
    events = sorted([(t, "share") for t in shares] + [(t, "idle") for t in idles])
    proposed = [vd.on_share(t) if kind == "share" else vd.on_idle(t) for t, kind in events]
    assert all(p is None or p >= BFG_START for p in proposed), proposed
    assert BFG_START < vd.difficulty <= 2 * BFG_RATE * TARGET  # raised towards ~1422, not past 2x


def test_silence_lowers_a_new_miner_by_at_most_what_it_proves():
    # No share at all for ten minutes, idle checks every 5 s, the miner taking each new
    # difficulty at once. At every change, the new difficulty is at or above the Poisson
    # zero-count bound of the silence so far (3 * target / X, X = integral of dt / d), and
    # no step is larger than probe_drop (2x), one a retarget (30 s).
    cfg = config(start_difficulty=BFG_START)
    vd = Vardiff(cfg, 0.0)
    changes, exposure, d, last = [], 0.0, BFG_START, 0.0
    for t in (5.0 * i for i in range(1, 121)):
        exposure += (t - last) / d
        last = t
        new = vd.on_idle(t)
        if new is not None:
            assert new >= 3.0 * TARGET / exposure * (1 - 1e-9), (t, new, d)
            assert new >= d / cfg.probe_drop * (1 - 1e-9), (t, new, d)
            changes.append((t, new))
            d = new
    assert changes[0][0] >= 30.0  # 30 s of silence to prove 2x: 3 * 5 s / 30 s = 1/2
    assert all(t1 - t0 >= cfg.retarget_interval for (t0, _), (t1, _) in zip(changes, changes[1:]))
    assert vd.difficulty < BFG_START / 2**18  # and it keeps going: 20 steps in 10 minutes


@pytest.mark.parametrize("job_interval", [None, 30.0], ids=["at-once", "next-job"])
def test_a_miner_a_little_faster_than_the_start_is_never_cut_deep(job_interval):
    # The same bfgminer at Poisson share times, 100 seeds, ten minutes each. Over 2000
    # seeds 99.6 % were never lowered and the deepest cut was 1.7x (before: 35 % cut 16x or
    # 256x). In its first two minutes it owes 120 s / 3.6 s = 33 shares; 62 is 5 sigma
    # above that (sqrt(33) = 5.8), while a 16x cut to be taken up with the next job meant
    # ~22x the target rate, 130 shares in 30 s.
    for seed in range(100):
        cfg = config(start_difficulty=BFG_START)
        run = simulate(cfg, rate=BFG_RATE, seed=seed, duration=600.0, job_interval=job_interval)
        assert all(d >= BFG_START / 2 for _, d in run.changes), (seed, run.changes)
        assert sum(1 for t, _ in run.shares if t < 120.0) <= 62, (seed, run.changes)
        # ...and it ends in the band around its right difficulty.
        assert 0.5 <= run.final / (BFG_RATE * TARGET) <= 2, (seed, run.changes)


@pytest.mark.parametrize("seed", SEEDS)
def test_quick_jump_lifts_a_far_too_low_difficulty_within_seconds(seed):
    # 1000x too low: 200 shares a second. The quick jump must not wait for a retarget.
    run = simulate(config(start_difficulty=1.0), rate=IDEAL / TARGET, seed=seed, duration=10.0)
    assert run.final >= IDEAL / 8
    assert len(run.shares) < 1000  # and the flood stops quickly


@pytest.mark.parametrize("seed", SEEDS)
def test_steady_miner_does_not_oscillate(seed):
    run = simulate(config(start_difficulty=IDEAL), rate=IDEAL / TARGET, seed=seed)
    later = [d for t, d in run.changes if t > 300]
    assert len(later) <= 3, run.changes
    assert all(0.7 <= d / IDEAL <= 1.4 for d in later), run.changes
    # No back-and-forth: consecutive changes never flip direction within a few minutes.
    for (t0, d0), (t1, d1), (t2, d2) in zip(run.changes, run.changes[1:], run.changes[2:]):
        if t0 > 300 and (d1 - d0) * (d2 - d1) < 0:
            assert t2 - t1 > 300, run.changes


def test_steady_miner_changes_rarely_across_many_seeds():
    # The statistical claim behind "no oscillation": over 40 miner-hours, hardly any changes
    # after the first five minutes.
    later = 0
    for seed in range(40):
        run = simulate(config(start_difficulty=IDEAL), rate=IDEAL / TARGET, seed=1000 + seed)
        later += sum(1 for t, _ in run.changes if t > 300)
    assert later <= 20


@pytest.mark.parametrize("seed", range(3))
def test_follows_a_real_change_of_hash_rate(seed):
    # A known miner at the right difficulty loses three quarters of its hash boards.
    run = simulate(
        config(start_difficulty=IDEAL), rate=IDEAL / TARGET, seed=seed, rate_change=(600.0, IDEAL / TARGET / 4)
    )
    assert 0.6 <= run.difficulty_at(1800.0, IDEAL) / (IDEAL / 4) <= 1.6, run.changes
    assert 0.6 <= run.final / (IDEAL / 4) <= 1.6, run.changes


@pytest.mark.parametrize("seed", range(3))
def test_follows_a_rig_that_lost_ninety_percent_of_its_hash_rate(seed):
    # A known miner at the right difficulty drops to a tenth at 10 minutes. Over 200 seeds
    # the difficulty was back within 2x of the new ideal after ten minutes (at most 15).
    slowed = (600.0, IDEAL / TARGET / 10)
    run = simulate(config(start_difficulty=IDEAL), rate=IDEAL / TARGET, seed=seed, rate_change=slowed, job_interval=30.0)
    assert_settles(run, IDEAL, ideal=IDEAL / 10, by=600.0 + 1200.0)


def test_a_miner_that_stops_is_lowered_towards_the_minimum():
    run = simulate(config(start_difficulty=IDEAL), rate=IDEAL / TARGET, seed=3, rate_change=(600.0, 0.0))
    assert run.final < IDEAL / 100
    # ... in bounded steps, never below min_difficulty.
    ds = [IDEAL] + [d for _, d in run.changes]
    assert all(b >= a / 16 for a, b in zip(ds, ds[1:]))
    assert run.final >= MIN_DIFFICULTY


@pytest.mark.parametrize("seed", range(3))
def test_honours_max_difficulty(seed):
    cfg = config(start_difficulty=10.0, max_difficulty=100.0)
    run = simulate(cfg, rate=IDEAL / TARGET, seed=seed, duration=600.0)
    assert run.changes and all(d <= 100.0 for _, d in run.changes)
    assert run.final == 100.0


@pytest.mark.parametrize("seed", range(3))
def test_honours_min_difficulty(seed):
    cfg = config(start_difficulty=1e5, min_difficulty=5e3, max_difficulty=1e6)
    run = simulate(cfg, rate=IDEAL / TARGET, seed=seed, duration=600.0)
    assert run.changes and all(d >= 5e3 for _, d in run.changes)
    assert run.final == 5e3


@pytest.mark.parametrize("seed", range(3))
def test_tiny_fractional_difficulties(seed):
    # A CPU miner worth 2e-8 difficulty per second: ideal 1e-7, start at the 1e-9 floor.
    ideal = 1e-7
    cfg = config(start_difficulty=MIN_DIFFICULTY)
    run = simulate(cfg, rate=ideal / TARGET, seed=seed)
    assert_settles(run, MIN_DIFFICULTY, ideal=ideal)
    assert_on_target(run)
    # And a miner far below the floor stays at the floor instead of going to zero.
    run = simulate(cfg, rate=1e-12, seed=seed, duration=600.0)
    assert run.final == MIN_DIFFICULTY


def test_floor_from_the_miner():
    cfg = config(start_difficulty=1.0, max_difficulty=1e4)
    vd = Vardiff(cfg, 0.0, floor=64.0)
    assert vd.difficulty == 64.0  # raised at once
    assert vd.set_floor(32.0, 1.0) is None  # a lower floor does not lower the difficulty
    assert vd.set_floor(1e9, 2.0) == 1e4  # clamped to the configured maximum
    # Silence never takes it below the floor.
    vd = Vardiff(cfg, 0.0, floor=0.5)
    for t in range(1, 600):
        vd.on_idle(float(t))
    assert vd.difficulty == 0.5
    with pytest.raises(ValueError, match="floor"):
        vd.set_floor(float("nan"), 700.0)


def test_a_suggestion_is_in_force_at_once_and_stays_the_floor():
    vd = Vardiff(config(start_difficulty=1024.0, max_difficulty=1e4), 0.0)
    assert vd.suggest(0.5, 0.0) == 0.5  # at once, though 2048 times under (max_step is 16)
    assert vd.suggest(0.5, 1.0) is None
    assert vd.suggest(1e9, 2.0) == 1e4 and vd.suggest(1e-12, 3.0) == MIN_DIFFICULTY  # clamped
    vd.suggest(0.5, 4.0)
    # A miner faster than it said: vardiff still raises it...
    t, proposed = 4.0, []
    for _ in range(40):
        t += 0.05
        proposed.append(vd.on_share(t))
    assert vd.difficulty > 0.5
    # ...and when it stops, silence brings it back to the suggestion, never below.
    for second in range(int(t) + 1, int(t) + 3600):
        proposed.append(vd.on_idle(float(second)))
    assert min(p for p in proposed if p is not None) == 0.5 and vd.difficulty == 0.5
    with pytest.raises(ValueError, match="floor"):
        vd.suggest(float("inf"), t)


def test_a_flushed_backlog_moves_it_once_and_at_most_max_step():
    # A proxy flushing 500 buffered shares at one instant is not hash rate.
    vd = Vardiff(config(start_difficulty=1.0), 0.0)
    proposed = [vd.on_share(0.0, 1.0) for _ in range(500)]
    assert [p for p in proposed if p is not None] == [16.0]


def test_old_difficulty_shares_count_their_own_work():
    # After a raise, shares still judged at the old difficulty must not look like
    # eight times the hash rate and trigger another jump.
    vd = Vardiff(config(start_difficulty=IDEAL), 0.0)
    t = 0.0
    for _ in range(60):  # a steady miner, known
        t += TARGET
        vd.on_share(t)
    vd.set_floor(IDEAL * 4, t)  # difficulty raised four-fold by the miner's own floor
    for _ in range(40):  # the miner still works on the old job: 4x the shares at the old difficulty
        t += TARGET / 4
        assert vd.on_share(t, IDEAL) is None


def test_never_reads_a_clock(monkeypatch):
    def clock():
        raise AssertionError("vardiff read the clock")

    for name in ("time", "monotonic", "time_ns", "monotonic_ns"):
        monkeypatch.setattr(time, name, clock)
    run = simulate(config(start_difficulty=IDEAL * 100), rate=IDEAL / TARGET, seed=0, duration=600.0)
    assert run.changes


def test_on_share_is_cheap():
    vd = Vardiff(config(start_difficulty=IDEAL), 0.0)
    begun = time.perf_counter()
    for i in range(20000):
        vd.on_share(i * TARGET)
    assert (time.perf_counter() - begun) / 20000 < 20e-6  # generous; about 1 µs on the reference machine


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"target_interval": 0.0}, "target_interval"),
        ({"min_difficulty": 1e-10}, "min_difficulty"),
        ({"start_difficulty": 1e16}, "start_difficulty"),
        ({"max_difficulty": float("inf")}, "max_difficulty must be a finite number"),
        ({"hysteresis": "0.2"}, "hysteresis"),
        ({"probe_shares": 0}, "probe_shares"),
        ({"max_step": 1.0}, "max_step"),
        ({"decay_time": -1.0}, "decay_time"),
    ],
)
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        VardiffConfig(**overrides)
