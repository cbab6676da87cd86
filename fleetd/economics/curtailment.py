"""Curtailment advice: which rigs lose money, and which to switch off for a target power reduction."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import lt

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
    cells: int = 0  # dynamic-programming table cells computed: the solve's work, bounded by max_cells


# Work bound of the table when the caller gives none: the daemon solves on its event loop,
# and a cell costs about 0.1 µs, so the table costs at most about 1.5 ms whatever the site.
DP_CELL_BUDGET = 10_000
MIN_TABLE_UNITS = 16  # fewer units a rig: most draws round to nothing, and rows cost more than cells


def curtail_for_reduction(
    rigs: Sequence[RigEconomics], target_kw: float, *, max_units: int = 10_000, max_cells: int = DP_CELL_BUDGET
) -> CurtailmentPlan:
    """Rigs to switch off so that the power drawn falls by at least ``target_kw`` losing the least revenue.

    The least revenue per watt first (greedy), then every rig the target does not need is
    dropped again, costliest first; or the one rig earning least that sheds the target alone,
    when that loses less: O(n log n), and at most about one rig's revenue more than the
    optimum. When the table fits in ``max_cells`` (rigs x units), a 0/1 covering
    knapsack is also solved by dynamic programming over watts in units of ``granularity_watts``:
    the gcd of the rigs' draws when they are whole watts (exact), coarsened so that the target
    is at most ``max_units`` units and the table at most ``max_cells`` cells. A draw is counted
    rounded down to whole units, so the chosen set always reaches the target; the table's
    answer is optimal (``exact``) when every draw is a whole number of units. The cheaper of the
    two plans is returned. ``cells`` says how much table work was done: never more than
    ``max_cells``, so the cost is bounded whatever the site or the target.
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

    def plan(chosen: Iterable[int], exact: bool, granularity: float, meets: bool, cells: int = 0) -> CurtailmentPlan:
        chosen = sorted(chosen)
        return CurtailmentPlan(
            rig_ids=tuple(rigs[i].rig_id for i in chosen),
            reduction_kw=math.fsum(rigs[i].watts for i in chosen) / 1000,
            lost_revenue_usd_per_day=math.fsum(rigs[i].revenue_usd_per_day for i in chosen),
            meets_target=meets,
            exact=exact,
            granularity_watts=granularity,
            cells=cells,
        )

    if target_w == 0:
        return plan((), True, base, True)
    if math.fsum(rigs[i].watts for i in candidates) < target_w:
        return plan(candidates, True, base, False)

    greedy = _drop_surplus(rigs, _cheapest_per_watt(rigs, candidates, target_w), target_w)
    alone = [i for i in candidates if rigs[i].watts >= target_w]  # one rig sheds it all (a small target)
    if alone:
        cheapest = min(alone, key=lambda i: rigs[i].revenue_usd_per_day)
        if rigs[cheapest].revenue_usd_per_day < math.fsum(rigs[i].revenue_usd_per_day for i in greedy):
            greedy = [cheapest]
    units_cap = min(max_units, max_cells // len(candidates) - 1)  # a table row has units + 1 cells
    granularity = base * max(1, math.ceil(target_w / (base * max(1, units_cap))))
    units_needed = math.ceil(target_w / granularity)
    exact = integral and all(rigs[i].watts % granularity == 0 for i in candidates)
    if units_cap < 1 or (units_cap < MIN_TABLE_UNITS and not exact):
        return plan(greedy, False, granularity, True)
    table = _knapsack(rigs, candidates, granularity, units_needed)
    cells = len(candidates) * (units_needed + 1)
    if table is None:  # only reachable when coarse rounding lost too much
        return plan(greedy, False, granularity, True, cells)
    if exact:
        return plan(table, True, granularity, True, cells)
    table = _drop_surplus(rigs, table, target_w)
    lost = lambda chosen: math.fsum(rigs[i].revenue_usd_per_day for i in chosen)  # noqa: E731
    return plan(table if lost(table) <= lost(greedy) else greedy, False, granularity, True, cells)


def _knapsack(rigs: Sequence[RigEconomics], candidates: list[int], granularity: float, units_needed: int) -> list[int] | None:
    """The least-revenue set whose draws, counted in whole units, reach ``units_needed``; None: none does."""
    # best[j]: least revenue lost reaching a counted reduction of >= j units (j capped at units_needed).
    best = [0.0] + [math.inf] * units_needed
    took: list[bytes] = []
    for i in candidates:
        units = min(int(rigs[i].watts // granularity), units_needed)
        add = float(rigs[i].revenue_usd_per_day).__add__
        with_rig = list(map(add, [best[0]] * units + best[: units_needed + 1 - units]))
        took.append(bytes(map(lt, with_rig, best)))
        best = [a if a < b else b for a, b in zip(with_rig, best)]
    if math.isinf(best[units_needed]):
        return None
    chosen = []
    j = units_needed
    for k in range(len(candidates) - 1, -1, -1):
        if took[k][j]:
            i = candidates[k]
            chosen.append(i)
            j = max(0, j - min(int(rigs[i].watts // granularity), units_needed))
    return chosen


def _cheapest_per_watt(rigs: Sequence[RigEconomics], candidates: list[int], target_w: float) -> list[int]:
    """Greedy cover: least revenue per watt first (ties in input order), until the target is reached."""
    ratio = {i: rigs[i].revenue_usd_per_day / rigs[i].watts for i in candidates}
    chosen, reached = [], 0.0
    for i in sorted(candidates, key=ratio.__getitem__):  # a stable sort: candidates are in input order
        if reached >= target_w:
            break
        chosen.append(i)
        reached += rigs[i].watts
    return chosen


def _drop_surplus(rigs: Sequence[RigEconomics], chosen: list[int], target_w: float) -> list[int]:
    """``chosen`` without every rig the target does not need, costliest first (one pass, O(n log n))."""
    reached = math.fsum(rigs[i].watts for i in chosen)
    dropped = set()
    for i in sorted(chosen, key=lambda i: -rigs[i].revenue_usd_per_day):
        if reached - rigs[i].watts >= target_w:
            dropped.add(i)
            reached -= rigs[i].watts
    return [i for i in chosen if i not in dropped]
