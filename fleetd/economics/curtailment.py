"""Curtailment advice: which rigs lose money, and which to switch off for a target power reduction."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce

from fleetd.economics.profitability import RigEconomics


def losing(economics: Iterable[RigEconomics]) -> tuple[RigEconomics, ...]:
    """Rigs whose margin is negative, worst efficiency (highest J/TH, no hash rate first) first."""
    return tuple(
        sorted(
            (e for e in economics if e.margin_usd_per_day < 0),
            key=lambda e: (
                -(math.inf if e.joules_per_terahash is None else e.joules_per_terahash),
                e.margin_usd_per_day,
                e.rig_id,
            ),
        )
    )


@dataclass(frozen=True)
class CurtailmentPlan:
    rig_ids: tuple[str, ...]  # rigs to switch off, in input order
    reduction_kw: float  # actual reduction (>= target when meets_target)
    lost_revenue_usd_per_day: float
    meets_target: bool  # False only when switching everything off is not enough (then all are listed)
    exact: bool  # the selection is proven optimal (every draw a multiple of granularity_watts)
    granularity_watts: float


def curtail_for_reduction(
    rigs: Sequence[RigEconomics], target_kw: float, *, max_units: int = 10_000, max_cells: int = 2_000_000
) -> CurtailmentPlan:
    """Rigs to switch off so that the power drawn falls by at least ``target_kw`` losing the least revenue.

    A 0/1 covering knapsack solved exactly by dynamic programming over watts in units of
    ``granularity_watts``: the gcd of the rigs' draws when they are whole watts (exact), coarsened
    so that the target is at most ``max_units`` units. A draw is counted rounded down to whole
    units, so the chosen set always reaches the target; the result is optimal when ``exact``.
    When rigs x units exceeds ``max_cells`` (a large site, a large target) the table would cost
    seconds of CPU, so the cheapest revenue per watt is taken first instead: then the plan
    loses at most about one rig's revenue more than the optimum, and says ``exact=False``.
    """
    if not math.isfinite(target_kw) or target_kw < 0:
        raise ValueError(f"target_kw must be finite and >= 0, got {target_kw!r}")
    if max_units < 1:
        raise ValueError("max_units must be >= 1")
    for r in rigs:
        if not (math.isfinite(r.watts) and r.watts >= 0 and math.isfinite(r.revenue_usd_per_day)
                and r.revenue_usd_per_day >= 0):
            raise ValueError(f"rig {r.rig_id}: watts and revenue must be finite and >= 0")
    target_w = target_kw * 1000
    candidates = [i for i, r in enumerate(rigs) if r.watts > 0]
    integral = all(float(rigs[i].watts).is_integer() for i in candidates)
    base = float(reduce(math.gcd, (int(rigs[i].watts) for i in candidates), 0) or 1) if integral else 1.0

    def plan(chosen: Iterable[int], exact: bool, granularity: float, meets: bool) -> CurtailmentPlan:
        chosen = sorted(chosen)
        return CurtailmentPlan(
            rig_ids=tuple(rigs[i].rig_id for i in chosen),
            reduction_kw=math.fsum(rigs[i].watts for i in chosen) / 1000,
            lost_revenue_usd_per_day=math.fsum(rigs[i].revenue_usd_per_day for i in chosen),
            meets_target=meets,
            exact=exact,
            granularity_watts=granularity,
        )

    if target_w == 0:
        return plan((), True, base, True)
    if math.fsum(rigs[i].watts for i in candidates) < target_w:
        return plan(candidates, True, base, False)

    granularity = base * max(1, math.ceil(target_w / (base * max_units)))
    if len(candidates) * math.ceil(target_w / granularity) > max_cells:
        return plan(_cheapest_per_watt(rigs, candidates, target_w), False, granularity, True)
    exact = integral and all(rigs[i].watts % granularity == 0 for i in candidates)
    units_needed = math.ceil(target_w / granularity)
    # best[j]: least revenue lost reaching a counted reduction of >= j units (j capped at units_needed).
    best = [0.0] + [math.inf] * units_needed
    took: list[bytes] = []
    for i in candidates:
        units = min(int(rigs[i].watts // granularity), units_needed)
        revenue = rigs[i].revenue_usd_per_day
        shifted = [best[0]] * units + best[: units_needed + 1 - units]
        with_rig = [v + revenue for v in shifted]
        took.append(bytes(a < b for a, b in zip(with_rig, best)))
        best = [min(a, b) for a, b in zip(with_rig, best)]
    if math.isinf(best[units_needed]):  # only reachable when coarse rounding lost too much: switch all off
        return plan(candidates, False, granularity, True)
    chosen = []
    j = units_needed
    for k in range(len(candidates) - 1, -1, -1):
        if took[k][j]:
            i = candidates[k]
            chosen.append(i)
            j = max(0, j - min(int(rigs[i].watts // granularity), units_needed))
    return plan(chosen, exact, granularity, True)


def _cheapest_per_watt(rigs: Sequence[RigEconomics], candidates: list[int], target_w: float) -> list[int]:
    """Greedy cover: least revenue per watt first, then drop any rig the target does not need."""
    chosen, reached = [], 0.0
    for i in sorted(candidates, key=lambda i: (rigs[i].revenue_usd_per_day / rigs[i].watts, i)):
        if reached >= target_w:
            break
        chosen.append(i)
        reached += rigs[i].watts
    for i in sorted(chosen, key=lambda i: -rigs[i].revenue_usd_per_day):  # costliest first
        if reached - rigs[i].watts >= target_w:
            chosen.remove(i)
            reached -= rigs[i].watts
    return chosen
