"""The whole site's economics at one moment, assembled from the pure pieces.

Inputs are plain values (the network a source reports, a BTC quote, each rig's hash rate,
watts and power price); the result is one frozen snapshot that /metrics, the JSON API and
the demo table all render, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from fleetd.economics.curtailment import CurtailmentPlan, curtail_for_reduction, losing
from fleetd.chain.network import NetworkState
from fleetd.economics.network import (
    DifficultyProjection,
    network_hashrate_hashes_per_second,
    projected_difficulty_change,
)
from fleetd.economics.prices import price_age_seconds, price_is_stale
from fleetd.economics.profitability import (
    FleetEconomics,
    RigEconomics,
    RigPower,
    fleet_economics,
    hashprice_btc_per_ph_day,
    price_rigs,
)


@dataclass(frozen=True)
class BtcQuote:
    usd: float
    origin: str  # "configured" | "feed"
    fetched_at: float | None = None  # None: a configured price, which never ages
    max_age_seconds: float | None = None

    def stale(self, now: float) -> bool:
        return self.fetched_at is not None and price_is_stale(self.fetched_at, now, self.max_age_seconds or 0.0)


@dataclass(frozen=True, slots=True)
class WorkPrices:
    """What work and energy are worth at one moment, for the journal to value each minute with."""

    btc_per_work: float | None  # expected BTC per unit of accepted work (difficulty 1): reward / difficulty
    btc_usd: float | None  # None while unknown or stale
    usd_per_kwh: Callable[[str], float]  # a rig's power price


def block_fees_btc(network: NetworkState, configured_fees_btc: float | None) -> tuple[float | None, str | None]:
    """(fees per block, where they come from): the node's templates, else the configured figure."""
    if network.fees_btc_per_block is not None:
        return network.fees_btc_per_block, "template"
    if configured_fees_btc is not None:
        return configured_fees_btc, "configured"
    return None, None


@dataclass(frozen=True)
class SiteEconomics:
    now: float
    network: NetworkState | None
    network_hashrate_hps: float | None
    subsidy_btc: float | None
    fees_btc_per_block: float | None
    fees_origin: str | None  # "template" | "configured"
    hashprice_btc_per_ph_day: float | None
    btc_usd: float | None  # None while unknown or stale: USD figures are withheld, never guessed
    price_origin: str | None
    price_age_seconds: float | None
    price_stale: bool
    hashprice_usd_per_ph_day: float | None
    site_usd_per_kwh: float | None
    rigs: tuple[RigEconomics, ...]  # every rig with hash rate and watts, by name
    rigs_without_power: tuple[str, ...]  # no watts reported or estimated: left out of every total
    fleet: FleetEconomics | None
    unprofitable: tuple[RigEconomics, ...]  # margin < 0, worst J/TH first
    curtail_target_kw: float
    curtail_plan: CurtailmentPlan | None
    ai_hosting_usd_per_mw_day: float | None
    projection: DifficultyProjection | None

    @property
    def reward_btc(self) -> float | None:
        if self.subsidy_btc is None or self.fees_btc_per_block is None:
            return None
        return self.subsidy_btc + self.fees_btc_per_block

    @property
    def priced(self) -> bool:
        return self.hashprice_usd_per_ph_day is not None and self.site_usd_per_kwh is not None


def site_economics(
    *,
    now: float,
    network: NetworkState | None,
    rigs: Sequence[RigPower] = (),
    rigs_without_power: Sequence[str] = (),
    quote: BtcQuote | None = None,
    site_usd_per_kwh: float | None = None,
    configured_fees_btc: float | None = None,
    curtail_target_kw: float = 0.0,
    ai_hosting_usd_per_mw_day: float | None = None,
) -> SiteEconomics:
    """Everything the site can know now; a missing input leaves what depends on it as None.

    ``rigs`` carry each rig's own power price (``usd_per_kwh``), already resolved.
    """
    subsidy = fees = fees_origin = hashrate = hashprice_btc = projection = None
    if network is not None and network.difficulty > 0:
        hashrate = network_hashrate_hashes_per_second(network.difficulty)
        subsidy = network.block_subsidy_btc
        fees, fees_origin = block_fees_btc(network, configured_fees_btc)
        if fees is not None:
            hashprice_btc = hashprice_btc_per_ph_day(network.difficulty, subsidy, fees)
        projection = projected_difficulty_change(network.block_times_seconds, network.tip_height)

    stale = False
    age = btc_usd = None
    if quote is not None:
        if quote.fetched_at is not None:
            age = price_age_seconds(quote.fetched_at, now)
        stale = quote.stale(now)
        btc_usd = None if stale else quote.usd
    hashprice_usd = None if hashprice_btc is None or btc_usd is None else hashprice_btc * btc_usd

    priced: tuple[RigEconomics, ...] = ()
    fleet = plan = None
    unprofitable: tuple[RigEconomics, ...] = ()
    if hashprice_usd is not None and site_usd_per_kwh is not None:
        priced = price_rigs(rigs, site_usd_per_kwh, hashprice_usd)
        fleet = fleet_economics(priced)
        unprofitable = losing(priced)
        if curtail_target_kw > 0:
            plan = curtail_for_reduction(priced, curtail_target_kw)
    return SiteEconomics(
        now=now,
        network=network,
        network_hashrate_hps=hashrate,
        subsidy_btc=subsidy,
        fees_btc_per_block=fees,
        fees_origin=fees_origin,
        hashprice_btc_per_ph_day=hashprice_btc,
        btc_usd=btc_usd,
        price_origin=None if quote is None else quote.origin,
        price_age_seconds=age,
        # configured economics without any quote: the feed has not answered yet
        price_stale=stale or (quote is None and site_usd_per_kwh is not None),
        hashprice_usd_per_ph_day=hashprice_usd,
        site_usd_per_kwh=site_usd_per_kwh,
        rigs=priced,
        rigs_without_power=tuple(rigs_without_power),
        fleet=fleet,
        unprofitable=unprofitable,
        curtail_target_kw=curtail_target_kw,
        curtail_plan=plan,
        ai_hosting_usd_per_mw_day=ai_hosting_usd_per_mw_day,
        projection=projection,
    )


def with_curtail_target(snap: SiteEconomics, curtail_target_kw: float) -> SiteEconomics:
    """``snap`` with its curtailment plan for ``curtail_target_kw`` instead: the same rigs and
    prices, only the plan solved again (none while the site is not priced, or for 0 kW)."""
    if curtail_target_kw == snap.curtail_target_kw:
        return snap
    plan = None
    if snap.fleet is not None and curtail_target_kw > 0:
        plan = curtail_for_reduction(snap.rigs, curtail_target_kw)
    return replace(snap, curtail_target_kw=curtail_target_kw, curtail_plan=plan)
