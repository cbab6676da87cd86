"""Revenue, hashprice, power cost, margin, breakeven power price and efficiency, per rig and per fleet."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fleetd.economics.network import HASHES_PER_DIFFICULTY_1

SECONDS_PER_DAY = 86_400
HOURS_PER_DAY = 24
HASHES_PER_SECOND_PER_PETAHASH = 1e15
HASHES_PER_SECOND_PER_TERAHASH = 1e12


def _check(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be finite and {'>' if positive else '>='} 0, got {value!r}")


def revenue_btc_per_day(
    hashrate_hps: float, difficulty: float, subsidy_btc: float, fees_btc_per_block: float
) -> float:
    """Expected BTC/day: H x 86400 / (difficulty x 2^32) blocks/day x (subsidy + fees) per block."""
    _check("hashrate_hps", hashrate_hps)
    _check("difficulty", difficulty, positive=True)
    _check("subsidy_btc", subsidy_btc)
    _check("fees_btc_per_block", fees_btc_per_block)
    blocks_per_day = hashrate_hps * SECONDS_PER_DAY / (difficulty * HASHES_PER_DIFFICULTY_1)
    return blocks_per_day * (subsidy_btc + fees_btc_per_block)


def hashprice_btc_per_ph_day(difficulty: float, subsidy_btc: float, fees_btc_per_block: float) -> float:
    """Expected BTC/day of 1 PH/s."""
    return revenue_btc_per_day(HASHES_PER_SECOND_PER_PETAHASH, difficulty, subsidy_btc, fees_btc_per_block)


def hashprice_usd_per_ph_day(
    difficulty: float, subsidy_btc: float, fees_btc_per_block: float, btc_usd: float
) -> float:
    """Expected USD/day of 1 PH/s (Luxor's Hashrate Index definition)."""
    _check("btc_usd", btc_usd)
    return hashprice_btc_per_ph_day(difficulty, subsidy_btc, fees_btc_per_block) * btc_usd


def revenue_usd_per_day(hashrate_hps: float, hashprice_usd_per_ph_day: float) -> float:
    """Expected USD/day of ``hashrate_hps`` at a given hashprice."""
    _check("hashrate_hps", hashrate_hps)
    _check("hashprice_usd_per_ph_day", hashprice_usd_per_ph_day)
    return hashrate_hps / HASHES_PER_SECOND_PER_PETAHASH * hashprice_usd_per_ph_day


def power_cost_usd_per_day(watts: float, usd_per_kwh: float) -> float:
    """Cost of drawing ``watts`` for 24 h."""
    _check("watts", watts)
    _check("usd_per_kwh", usd_per_kwh)
    return watts / 1000 * HOURS_PER_DAY * usd_per_kwh


def margin_usd_per_day(revenue_usd_per_day: float, power_cost_usd_per_day: float) -> float:
    """Revenue minus power cost (negative: running at a loss)."""
    return revenue_usd_per_day - power_cost_usd_per_day


def breakeven_usd_per_kwh(revenue_usd_per_day: float, watts: float) -> float | None:
    """Power price at which the margin is zero: revenue / (kW x 24). None when ``watts`` is 0."""
    _check("revenue_usd_per_day", revenue_usd_per_day)
    _check("watts", watts)
    if watts == 0:
        return None
    return revenue_usd_per_day / (watts / 1000 * HOURS_PER_DAY)


def joules_per_terahash(watts: float, hashrate_hps: float) -> float | None:
    """Efficiency in J/TH (= W per TH/s). None when the hash rate is 0."""
    _check("watts", watts)
    _check("hashrate_hps", hashrate_hps)
    if hashrate_hps == 0:
        return None
    return watts / (hashrate_hps / HASHES_PER_SECOND_PER_TERAHASH)


@dataclass(frozen=True)
class RigEconomics:
    """One rig's daily economics at a hashprice and power price."""

    rig_id: str
    hashrate_hps: float
    watts: float
    usd_per_kwh: float
    revenue_usd_per_day: float
    power_cost_usd_per_day: float
    margin_usd_per_day: float
    breakeven_usd_per_kwh: float | None  # None when watts is 0
    joules_per_terahash: float | None  # None when the hash rate is 0


def rig_economics(
    rig_id: str, hashrate_hps: float, watts: float, hashprice_usd_per_ph_day: float, usd_per_kwh: float
) -> RigEconomics:
    """All per-rig figures from pool-side hash rate, measured watts, hashprice and the rig's power price."""
    revenue = revenue_usd_per_day(hashrate_hps, hashprice_usd_per_ph_day)
    cost = power_cost_usd_per_day(watts, usd_per_kwh)
    return RigEconomics(
        rig_id=rig_id,
        hashrate_hps=hashrate_hps,
        watts=watts,
        usd_per_kwh=usd_per_kwh,
        revenue_usd_per_day=revenue,
        power_cost_usd_per_day=cost,
        margin_usd_per_day=margin_usd_per_day(revenue, cost),
        breakeven_usd_per_kwh=breakeven_usd_per_kwh(revenue, watts),
        joules_per_terahash=joules_per_terahash(watts, hashrate_hps),
    )


@dataclass(frozen=True)
class RigPower:
    """A rig's pool-side hash rate and measured draw, with an optional power-price override."""

    rig_id: str
    hashrate_hps: float
    watts: float
    usd_per_kwh: float | None = None  # None: the site price applies


def price_rigs(
    rigs: Iterable[RigPower], usd_per_kwh: float, hashprice_usd_per_ph_day: float
) -> tuple[RigEconomics, ...]:
    """Each rig's economics at its own power price, or the site's when it has none."""
    return tuple(
        rig_economics(
            rig.rig_id,
            rig.hashrate_hps,
            rig.watts,
            hashprice_usd_per_ph_day,
            usd_per_kwh if rig.usd_per_kwh is None else rig.usd_per_kwh,
        )
        for rig in rigs
    )


def fleet_margin_usd_per_mw_day(margin_usd_per_day: float, watts: float) -> float | None:
    """Fleet margin per MW drawn, comparable with an AI-hosting offer per MW/day. None at 0 W."""
    _check("watts", watts)
    if watts == 0:
        return None
    return margin_usd_per_day / (watts / 1e6)


@dataclass(frozen=True)
class FleetEconomics:
    """Totals over rigs."""

    rig_count: int
    hashrate_hps: float
    watts: float
    revenue_usd_per_day: float
    power_cost_usd_per_day: float
    margin_usd_per_day: float
    margin_usd_per_mw_day: float | None
    breakeven_usd_per_kwh: float | None  # flat power price at which the whole fleet breaks even
    joules_per_terahash: float | None


def fleet_economics(rigs: Iterable[RigEconomics]) -> FleetEconomics:
    """Sum the rigs; ratios are of the sums (watt- and hash-weighted), not averages of ratios."""
    rigs = list(rigs)
    hashrate = math.fsum(r.hashrate_hps for r in rigs)
    watts = math.fsum(r.watts for r in rigs)
    revenue = math.fsum(r.revenue_usd_per_day for r in rigs)
    cost = math.fsum(r.power_cost_usd_per_day for r in rigs)
    margin = revenue - cost
    return FleetEconomics(
        rig_count=len(rigs),
        hashrate_hps=hashrate,
        watts=watts,
        revenue_usd_per_day=revenue,
        power_cost_usd_per_day=cost,
        margin_usd_per_day=margin,
        margin_usd_per_mw_day=fleet_margin_usd_per_mw_day(margin, watts),
        breakeven_usd_per_kwh=breakeven_usd_per_kwh(revenue, watts),
        joules_per_terahash=joules_per_terahash(watts, hashrate),
    )
