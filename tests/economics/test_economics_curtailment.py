"""Curtailment advice: losing rigs by efficiency, and the least-revenue set for a power reduction."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetd.economics.curtailment import DP_CELL_BUDGET, curtail_for_reduction, losing
from fleetd.economics.profitability import RigPower, price_rigs
from fleetd.economics.profitability import RigEconomics, rig_economics


def econ(rig_id: str, watts: float, revenue: float) -> RigEconomics:
    # hash rate chosen so that revenue at a $1/PH/day hashprice is `revenue`
    return rig_economics(rig_id, revenue * 1e15, watts, 1.0, 0.05)


def test_unprofitable_rigs_worst_efficiency_first():
    rigs = [
        RigPower("good", 200e12, 3500),  # 17.5 J/TH: revenue $7, cost 84 kWh x 0.06 = $5.04
        RigPower("old", 100e12, 3250),  # 32.5 J/TH: revenue $3.5, cost $4.68
        RigPower("older", 14e12, 1372),  # 98 J/TH
        RigPower("dead", 0, 300),  # draws power, no hash rate
        RigPower("cheap", 100e12, 3250, usd_per_kwh=0.03),  # own contract: cost $2.34, profitable
        RigPower("mid", 100e12, 3000),  # 30 J/TH: cost $4.32, losing
    ]
    losing_rigs = losing(price_rigs(rigs, usd_per_kwh=0.06, hashprice_usd_per_ph_day=35.0))
    assert [r.rig_id for r in losing_rigs] == ["dead", "older", "old", "mid"]
    assert all(r.margin_usd_per_day < 0 for r in losing_rigs)
    assert losing_rigs[2].margin_usd_per_day == pytest.approx(3.5 - 3.25 * 24 * 0.06)


def test_curtailment_beats_greedy_by_revenue_per_watt():
    rigs = [econ("a", 3000, 3.0), econ("b", 2000, 2.4), econ("c", 2000, 2.4)]
    # greedy by revenue per watt takes a (0.0010/W) then b: $5.4; the optimum is b + c: $4.8
    plan = curtail_for_reduction(rigs, 4.0)
    assert plan.rig_ids == ("b", "c")
    assert plan.lost_revenue_usd_per_day == pytest.approx(4.8)
    assert plan.reduction_kw == pytest.approx(4.0)
    assert plan.meets_target and plan.exact and plan.granularity_watts == 1000


def test_curtailment_edge_cases():
    rigs = [econ("a", 3000, 3.0), econ("b", 2000, 2.4), econ("z", 0, 0.0)]
    none = curtail_for_reduction(rigs, 0)
    assert none.rig_ids == () and none.meets_target
    too_much = curtail_for_reduction(rigs, 6.0)
    assert too_much.rig_ids == ("a", "b") and not too_much.meets_target
    assert curtail_for_reduction(rigs, 2.5).rig_ids == ("a",)
    with pytest.raises(ValueError):
        curtail_for_reduction(rigs, -1)


def brute_force(rigs, target_w):
    best = None
    for n in range(len(rigs) + 1):
        for combo in itertools.combinations(rigs, n):
            if sum(r.watts for r in combo) >= target_w:
                lost = sum(r.revenue_usd_per_day for r in combo)
                best = lost if best is None else min(best, lost)
    return best


rig_lists = st.lists(
    st.tuples(st.integers(0, 2000), st.floats(0, 50, allow_subnormal=False)), min_size=0, max_size=9
).map(lambda xs: [econ(f"r{i}", w, rev) for i, (w, rev) in enumerate(xs)])


@settings(max_examples=300)
@given(rig_lists, st.integers(0, 10_000))  # whole watts, at most max_units of them: the exact table
def test_curtailment_is_optimal_against_brute_force(rigs, target_w):
    plan = curtail_for_reduction(rigs, target_w / 1000, max_cells=100_000)  # room for 9 rigs x 10,001 units
    best = brute_force(rigs, target_w)
    chosen = [r for r in rigs if r.rig_id in plan.rig_ids]
    assert len(chosen) == len(plan.rig_ids)
    if best is None:
        assert not plan.meets_target
        assert {r.rig_id for r in chosen} == {r.rig_id for r in rigs if r.watts > 0}
        return
    assert plan.meets_target and plan.exact
    assert sum(r.watts for r in chosen) >= target_w
    assert plan.lost_revenue_usd_per_day == pytest.approx(best, rel=1e-9, abs=1e-9)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.floats(1, 5000), st.floats(0, 50)), min_size=1, max_size=9).map(
        lambda xs: [econ(f"r{i}", w, rev) for i, (w, rev) in enumerate(xs)]
    ),
    st.floats(0, 1, allow_subnormal=False),  # a subnormal target underflows to 0 W on the way to kW
    st.integers(1, 50),
)
def test_coarse_granularity_still_reaches_the_target(rigs, fraction, max_units):
    target_w = min(fraction, 0.999) * math.fsum(r.watts for r in rigs)  # clear of float round-off at 100 %
    plan = curtail_for_reduction(rigs, target_w / 1000, max_units=max_units)
    assert plan.meets_target
    assert sum(r.watts for r in rigs if r.rig_id in plan.rig_ids) >= target_w - 1e-6
    best = brute_force(rigs, target_w)
    assert plan.lost_revenue_usd_per_day >= best - 1e-9
    if plan.exact:
        assert plan.lost_revenue_usd_per_day == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_a_large_fleet_is_fast_enough():
    rigs = [econ(f"r{i}", 3000 + 250 * (i % 7), 5 + (i % 11) * 0.5) for i in range(1000)]
    plan = curtail_for_reduction(rigs, 1000.0, max_cells=5_000_000)  # 1 MW of about 3.5 MW: 4,000 units
    assert plan.meets_target and plan.exact and plan.granularity_watts == 250
    assert plan.reduction_kw >= 1000
    assert not math.isinf(plan.lost_revenue_usd_per_day)


def test_beyond_max_cells_the_cheapest_revenue_per_watt_goes_first_within_one_rig_of_optimal():
    rng = random.Random(8)
    rigs = [econ(f"r{i}", rng.choice((3000, 3500, 3650, 3450)), rng.uniform(4, 14)) for i in range(300)]
    exact = curtail_for_reduction(rigs, 200.0, max_cells=2_000_000)  # 300 rigs x 4,001 units of 50 W
    greedy = curtail_for_reduction(rigs, 200.0, max_cells=1000)
    assert exact.exact and not greedy.exact and greedy.meets_target and greedy.reduction_kw >= 200
    worst_rig = max(r.revenue_usd_per_day for r in rigs)
    assert exact.lost_revenue_usd_per_day <= greedy.lost_revenue_usd_per_day <= exact.lost_revenue_usd_per_day + worst_rig
    # nothing in the greedy plan is surplus: dropping any rig misses the target
    chosen = [r for r in rigs if r.rig_id in greedy.rig_ids]
    assert all(sum(r.watts for r in chosen) - r.watts < 200_000 for r in chosen)


@pytest.mark.parametrize("count", [50, 200, 5000])
def test_the_default_solve_does_bounded_work_whatever_the_site(count):
    """The daemon solves on its event loop: a measured (fractional) draw per rig and a target of
    a third of the site made the table 2,000,000 cells (0.5 s for 200 rigs); the work is now
    bounded by DP_CELL_BUDGET cells plus one sort."""
    rng = random.Random(count)
    rigs = [econ(f"r{i}", rng.uniform(3000, 3600), rng.uniform(4, 14)) for i in range(count)]
    target_kw = sum(r.watts for r in rigs) / 3000
    plan = curtail_for_reduction(rigs, target_kw)
    assert plan.cells <= DP_CELL_BUDGET
    assert plan.meets_target and plan.reduction_kw >= target_kw
    chosen = [r for r in rigs if r.rig_id in plan.rig_ids]
    assert all(sum(r.watts for r in chosen) - r.watts < target_kw * 1000 for r in chosen)  # nothing surplus
    worst_rig = max(r.revenue_usd_per_day for r in rigs)
    if count <= 50:  # against the exact table, affordable in a test for a small site
        exact = curtail_for_reduction(rigs, target_kw, max_cells=10**6)
        assert exact.lost_revenue_usd_per_day <= plan.lost_revenue_usd_per_day <= exact.lost_revenue_usd_per_day + worst_rig


def test_a_small_site_with_whole_watt_draws_is_still_solved_exactly_by_default():
    rigs = [econ(f"r{i}", 3000 + 250 * (i % 3), 5 + (i % 7) * 0.5) for i in range(40)]
    plan = curtail_for_reduction(rigs, 20.0)  # 80 units of 250 W x 40 rigs: within the budget
    assert plan.exact and plan.cells <= DP_CELL_BUDGET and plan.reduction_kw >= 20
