"""How sure a pool-side hash rate is: the effective number of shares behind it and its 95 %
interval, from shares fed at exact times (no share luck, no wall clock)."""

from __future__ import annotations

import math
import random

import pytest

from fake_clock import FakeClock
from fleetd.config import JournalConfig
from fleetd.journal.writer import Journal
from fleetd.rigs.registry import (
    AVERAGE_WINDOWS,
    CONFIDENCE_TAIL,
    HASHES_PER_DIFFICULTY,
    HashrateEstimate,
    RigRegistry,
    gamma_quantile,
    rate_interval,
)

# Garwood's exact 95 % interval for a Poisson count n, as published (e.g. Ulm 1990).
GARWOOD = {
    0: (0.0, 3.68888), 1: (0.0253178, 5.57164), 2: (0.242209, 7.22469), 3: (0.618672, 8.76727),
    5: (1.62349, 11.6683), 10: (4.79539, 18.3904), 20: (12.2165, 30.8884), 50: (37.1110, 65.9188),
    100: (81.3640, 121.627), 1000: (938.973, 1063.95),
}  # fmt: skip


def _poisson_cdf(n: int, mean: float) -> float:
    """P(X <= n) for X Poisson with ``mean``: a finite sum (its terms from logarithms)."""
    if mean == 0.0:
        return 1.0
    return sum(math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) for k in range(n + 1))


def _bisect(f, lo: float, hi: float) -> float:
    """The root of a decreasing ``f`` in [lo, hi]."""
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def _garwood(n: int) -> tuple[float, float]:
    """The exact interval by definition: the means under which n or more (n or fewer) events
    have a 2.5 % chance."""
    lower = 0.0 if n == 0 else _bisect(lambda m: _poisson_cdf(n - 1, m) - (1 - CONFIDENCE_TAIL), 0.0, 2 * n + 10)
    upper = _bisect(lambda m: _poisson_cdf(n, m) - CONFIDENCE_TAIL, 0.0, 2 * n + 50)
    return lower, upper


def _gamma_cdf(shape: float, x: float) -> float:
    """The regularized lower incomplete gamma function, from its power series."""
    term = total = 1.0 / shape
    n = 0
    while term > 1e-18 * total:
        n += 1
        term *= x / (shape + n)
        total += term
    return total * math.exp(shape * math.log(x) - x - math.lgamma(shape))


def _weights(times: list[float], now: float, tau: float) -> list[float]:
    return [math.exp(-(now - t) / tau) for t in times]


def test_equal_difficulties_rest_on_the_weighted_count_of_shares():
    rigs = RigRegistry()
    times = [1.0 + 2.5 * k for k in range(200)]  # 2.5 s apart: every share folds on its own
    for t in times:
        rigs.share("acct.rig", 1024.0, t)
    rig, now = rigs.get("acct.rig"), times[-1] + 7.0
    for window, tau in AVERAGE_WINDOWS.items():
        w = _weights(times, now, tau)
        estimate = rig.hashrate_estimate(window, now)
        assert estimate.shares == pytest.approx(sum(w) ** 2 / sum(x * x for x in w), rel=1e-12), window
        assert estimate.rate == pytest.approx(rig.hashrate(window, now), rel=1e-12)
        assert estimate.lower < estimate.rate < estimate.upper
    # a steady rig: an exponential average over a minute is as precise as a plain count over
    # two, here 48 shares (not the 24 a minute brings, nor the 22 of the decayed count)
    assert rig.hashrate_estimate("1m", now).shares == pytest.approx(2 * 60 / 2.5, rel=0.001)
    assert sum(_weights(times, now, 60.0)) == pytest.approx(21.8, abs=0.1)


def test_a_share_of_higher_difficulty_counts_for_more_of_the_rate_and_of_its_noise():
    rigs = RigRegistry()
    shares = [(1.0 + 2 * k, 1000.0 if k % 5 == 0 else 10.0) for k in range(100)]  # every fifth 100x
    for t, difficulty in shares:
        rigs.share("acct.rig", difficulty, t)
    now = 210.0
    for window, tau in AVERAGE_WINDOWS.items():
        wd = [w * d for w, (_, d) in zip(_weights([t for t, _ in shares], now, tau), shares)]
        shares_now = rigs.get("acct.rig").hashrate_estimate(window, now).shares
        assert shares_now == pytest.approx(sum(wd) ** 2 / sum(x * x for x in wd), rel=1e-12)
    # the hundred shares count for little more than the twenty big ones
    assert 20 < rigs.get("acct.rig").hashrate_estimate("1h", now).shares < 22


@pytest.mark.parametrize("count", sorted(GARWOOD))
def test_with_unit_weights_the_interval_is_garwoods_exact_one(count):
    estimate = rate_interval(float(count), float(count), 1.0, 1.0)  # count events in a unit of time
    exact = _garwood(count)
    assert exact == pytest.approx(GARWOOD[count], rel=1e-5, abs=1e-9)  # the test's own reference
    assert (estimate.rate, estimate.shares) == (count, count)
    assert estimate.lower == pytest.approx(exact[0], rel=5e-5, abs=1e-12)
    assert estimate.upper == pytest.approx(exact[1], rel=5e-5)


@pytest.mark.parametrize("shape", [0.3, 1.0, 2.5, 7.0, 17.3, 99.0, 150.7, 5000.0])
def test_gamma_quantiles_against_the_incomplete_gamma_function(shape):
    for p in (CONFIDENCE_TAIL, 1 - CONFIDENCE_TAIL):
        exact = _bisect(lambda x: p - _gamma_cdf(shape, x), 0.0, shape + 20 * math.sqrt(shape) + 20)
        assert gamma_quantile(p, shape) == pytest.approx(exact, rel=5e-5), p
    assert gamma_quantile(0.5, shape) == pytest.approx(
        _bisect(lambda x: 0.5 - _gamma_cdf(shape, x), 0.0, 3 * shape + 20), rel=1e-9
    )  # any other p: solved exactly


def test_the_interval_narrows_as_one_over_the_square_root_of_the_shares():
    widths = {}
    for count in (100, 400, 1600):
        estimate = rate_interval(float(count), float(count), 1.0, 1.0)
        widths[count] = (estimate.upper - estimate.lower) / estimate.rate
        assert estimate.relative_error == pytest.approx(1 / math.sqrt(count))
        # a little wider than the normal approximation's +-1.96 standard errors, less so with more
        assert 1 < widths[count] / (2 * 1.96 * estimate.relative_error) < 1 + 0.3 / math.sqrt(count)
    assert widths[100] / widths[400] == pytest.approx(2.0, rel=0.02)
    assert widths[400] / widths[1600] == pytest.approx(2.0, rel=0.01)


def test_no_share_yet_is_a_rate_of_zero_bounded_by_what_a_few_shares_would_mean():
    rigs = RigRegistry()
    rig = rigs.connected("acct.rig", "10.0.0.1", 0.0)
    for window in AVERAGE_WINDOWS:  # no difficulty yet: nothing bounds it
        assert rig.hashrate_estimate(window, 5.0) == HashrateEstimate(0.0, 0.0, 0.0, math.inf)
        assert rig.hashrate_estimate(window, 5.0).relative_error == math.inf
    rig.difficulty = 1024.0
    for window, tau in AVERAGE_WINDOWS.items():
        # -ln(0.025) = 3.69 shares over a full window: the two-sided interval's upper end at 0
        per_share = 1024.0 * HASHES_PER_DIFFICULTY / tau
        assert rig.hashrate_estimate(window, 5.0) == (0.0, 0.0, 0.0, pytest.approx(-math.log(0.025) * per_share))
        scaled = rig.hashrate_estimate(window, 5.0, credit_scale=1e6)  # the demo's share is worth more
        assert scaled.upper == pytest.approx(1e6 * -math.log(0.025) * per_share)


def test_a_rig_that_stopped_keeps_an_upper_bound_of_a_few_shares_per_window():
    rigs = RigRegistry()
    for k in range(120):
        rigs.share("acct.rig", 1024.0, 5.0 * k)
    rig, per_share = rigs.get("acct.rig"), 1024.0 * HASHES_PER_DIFFICULTY / 60.0
    steady = rig.hashrate_estimate("1m", 600.0)
    assert steady.lower < 12 * per_share < steady.upper  # a share every 5 s: 12 a minute
    silent = rig.hashrate_estimate("1m", 600.0 + 1800.0)  # half an hour without a share
    assert silent.rate < 1e-9 * steady.rate and silent.lower < silent.rate
    assert silent.shares == pytest.approx(steady.shares)  # the fading average rests on as many
    assert silent.upper == pytest.approx(-math.log(0.025) * per_share, rel=1e-6)  # as if none came


def test_credit_scale_scales_the_rate_and_its_bounds_but_not_the_shares():
    plain, demo = RigRegistry(), RigRegistry()
    demo.credit_scale = 1e6
    for k in range(300):
        difficulty = 512.0 if k < 150 else 2048.0  # vardiff raised it halfway
        plain.share("acct.rig", difficulty, 3.0 * k)
        demo.share("acct.rig", difficulty, 3.0 * k)
    for window in AVERAGE_WINDOWS:
        a = plain.get("acct.rig").hashrate_estimate(window, 900.0)
        b = demo.get("acct.rig").hashrate_estimate(window, 900.0)
        assert b.shares == pytest.approx(a.shares, rel=1e-12)
        assert (b.rate, b.lower, b.upper) == pytest.approx((1e6 * a.rate, 1e6 * a.lower, 1e6 * a.upper), rel=1e-12)


def test_shares_folded_together_count_as_the_shares_they_are():
    folded, apart, big = RigRegistry(), RigRegistry(), RigRegistry()
    for k in range(60):
        for j in range(4):  # four shares within a second: folded together
            folded.share("acct.rig", 64.0, 10.0 * k + 0.2 * j)
            apart.share("acct.rig", 64.0, 10.0 * k + 2.0 * j)  # a fold each
        big.share("acct.rig", 256.0, 10.0 * k)  # the same work in one share
    for window in AVERAGE_WINDOWS:
        a, b, c = (r.get("acct.rig").hashrate_estimate(window, 600.0) for r in (folded, apart, big))
        assert a.shares == pytest.approx(b.shares, rel=0.05), window
        assert a.shares == pytest.approx(4 * c.shares, rel=0.05), window


async def test_a_restart_restores_the_shares_behind_each_rate_to_minute_resolution(tmp_path):
    clock, rigs = FakeClock(), RigRegistry()
    config = JournalConfig(path=str(tmp_path / "j.sqlite3"))
    journal = Journal(config, rigs, clock=clock)
    await journal.open()
    for second in range(1200):  # twenty minutes, difficulty 100 then 400 (a share every 2 s, then 8 s)
        if second < 900 or second % 4 == 0:
            rigs.share("acct.rig", 100.0 if second < 900 else 400.0, clock.wall())
        clock.tick(1.0 if second < 900 else 2.0)
        await journal.flush()
    before = {w: rigs.get("acct.rig").hashrate_estimate(w, clock.wall()) for w in AVERAGE_WINDOWS}
    await journal.close()

    again = RigRegistry()
    journal = Journal(config, again, clock=clock)
    await journal.open()
    for window, expected in before.items():
        after = again.get("acct.rig").hashrate_estimate(window, clock.wall())
        assert after.shares == pytest.approx(expected.shares, rel=0.1), window
        assert (after.lower, after.upper) == pytest.approx((expected.lower, expected.upper), rel=0.1), window
    await journal.close()


def _coverage(rng: random.Random, trials: int, change_at: float | None = None) -> float:
    """How often the 1-minute interval holds the true hash rate, five time constants in: shares
    at difficulty 1024 every second on average (the difficulty quadrupled at ``change_at``)."""
    true, end, covered = 1024.0 * HASHES_PER_DIFFICULTY, 300.0, 0
    for _ in range(trials):
        rigs, t, difficulty = RigRegistry(), 0.0, 1024.0
        while True:
            t += rng.expovariate(1024.0 / difficulty)
            if t > end:
                break
            if change_at is not None and t > change_at:
                difficulty = 4096.0
            rigs.share("acct.rig", difficulty, t)
        estimate = rigs.get("acct.rig").hashrate_estimate("1m", end)
        covered += estimate.lower <= true <= estimate.upper
    return covered / trials


def test_the_interval_holds_the_true_rate_about_95_times_in_100():
    rng = random.Random(20240601)
    assert 0.92 <= _coverage(rng, 2000) <= 0.98
    assert 0.92 <= _coverage(rng, 1000, change_at=240.0) <= 0.98  # vardiff quadrupled it a minute ago
