"""The site's economics as the daemon sees them now: the registry's rigs, the source's network
and the configured (or fetched) prices, turned into one ``SiteEconomics`` snapshot; and that
snapshot as Prometheus text and as JSON.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection

from fleetd.economics.profitability import RigPower
from fleetd.chain.network import NetworkState
from fleetd.economics.settings import EconomicsConfig, PowerPrices
from fleetd.economics.price_feed import PriceQuote
from fleetd.economics.site import (
    BtcQuote,
    SiteEconomics,
    WorkPrices,
    block_fees_btc,
    site_economics,
    with_curtail_target,
)
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry.exposition import escape, tidy, value


# A snapshot prices every rig (tens of ms for 5,000 rigs): /metrics, every API request and the
# demo table share one for this long. Hash rates are averages over minutes and prices change
# by the hour, so a figure a second old is as good as a new one, while a client asking in a
# loop costs at most one snapshot a second.
SNAPSHOT_INTERVAL_SECONDS = 1.0
MAX_PLANS_PER_SNAPSHOT = 64  # ?curtail_kw= targets kept per snapshot; the oldest goes first


class SiteEconomicsView:
    """Snapshots on demand (scrape, API call, demo table), each computed at most once per
    ``interval`` seconds of the time the callers give (the app's clock) and shared; a plan
    for another curtailment target is solved once per snapshot and target."""

    def __init__(
        self,
        config: EconomicsConfig | None,
        rigs: RigRegistry,
        source=None,
        feed=None,
        *,
        interval: float = SNAPSHOT_INTERVAL_SECONDS,
    ) -> None:
        self.config = config
        self.rigs = rigs
        self.source = source  # anything with network_state(); others give network-less snapshots
        self.feed = feed  # a PriceFeed when [economics.price_feed] is set
        self.interval = interval
        self._prices = PowerPrices(config) if config is not None else None
        # the last inputs the journal kept: used until the source and the feed report again
        self.restored_network: NetworkState | None = None
        self.restored_quote: PriceQuote | None = None
        self._latest: SiteEconomics | None = None
        self._quote: BtcQuote | None = None  # the quote _latest was priced at
        self.switched_off: Callable[[], Collection[str]] = tuple  # the rigs curtailment holds off
        self._plans: OrderedDict[float, SiteEconomics] = OrderedDict()  # by target kW, for _latest

    def network(self) -> NetworkState | None:
        report = getattr(self.source, "network_state", None)
        network = report() if report is not None else None
        return network if network is not None else self.restored_network

    def quote(self) -> BtcQuote | None:
        config = self.config
        if config is None:
            return None
        if config.price_feed is None:
            return BtcQuote(config.btc_price_usd, "configured")
        latest = self.feed.latest() if self.feed is not None else None
        latest = latest if latest is not None else self.restored_quote  # its age says if it still counts
        if latest is None:
            return None
        return BtcQuote(latest.usd, "feed", latest.fetched_at, config.price_feed.max_age_seconds)

    def work_prices(self, now: float) -> WorkPrices | None:
        """What a unit of work and a kWh are worth now; None without [economics]."""
        config = self.config
        if config is None:
            return None
        network, quote = self.network(), self.quote()
        btc_per_work = None
        if network is not None and network.difficulty > 0:
            fees, _ = block_fees_btc(network, config.fees_btc_per_block)
            if fees is not None:
                btc_per_work = (network.block_subsidy_btc + fees) / network.difficulty
        btc_usd = None if quote is None or quote.stale(now) else quote.usd
        return WorkPrices(btc_per_work, btc_usd, self._prices.at(now))

    def inputs(self) -> dict:
        """The network and the fetched BTC price, as the journal keeps them for a restart."""
        network = self.network()
        latest = self.feed.latest() if self.feed is not None else None
        latest = latest if latest is not None else self.restored_quote  # kept until the feed answers again
        return {
            "network": None if network is None else {
                "difficulty": network.difficulty, "height": network.height,
                "fees_btc_per_block": network.fees_btc_per_block, "subsidy_btc": network.subsidy_btc,
            },
            "btc_quote": None if latest is None else {"usd": latest.usd, "fetched_at": latest.fetched_at},
        }  # fmt: skip

    def restore(self, inputs: dict) -> None:
        """``inputs`` as ``inputs()`` gave them before a restart (a bad entry is ValueError or TypeError)."""
        network, quote = inputs.get("network"), inputs.get("btc_quote")
        if network is not None:
            self.restored_network = NetworkState(
                float(network["difficulty"]), int(network["height"]), network.get("fees_btc_per_block"),
                subsidy_btc=network.get("subsidy_btc"), block_times_origin="restored",
            )  # fmt: skip
        if quote is not None:
            self.restored_quote = PriceQuote(float(quote["usd"]), float(quote["fetched_at"]))

    def snapshot(self, now: float, curtail_target_kw: float | None = None) -> SiteEconomics:
        """The shared snapshot, taken at most ``interval`` seconds before ``now`` (a clock that
        went back, or a new BTC quote, takes a new one); with a target, its plan for that many
        kW instead."""
        latest, quote = self._latest, self.quote()
        if latest is None or not latest.now <= now < latest.now + self.interval or quote != self._quote:
            latest = self._latest = self.compute(now)
            self._quote = quote
            self._plans.clear()
        if curtail_target_kw is None or curtail_target_kw == latest.curtail_target_kw:
            return latest
        snap = self._plans.get(curtail_target_kw)
        if snap is None:
            snap = self._plans[curtail_target_kw] = with_curtail_target(latest, curtail_target_kw)
            if len(self._plans) > MAX_PLANS_PER_SNAPSHOT:
                self._plans.popitem(last=False)
        return snap

    def compute(self, now: float, curtail_target_kw: float | None = None) -> SiteEconomics:
        """A new snapshot, not cached (benchmarks, and ``snapshot`` once per interval)."""
        config, rigs = self.config, self.rigs
        if config is None:
            return site_economics(now=now, network=self.network())
        window = config.hashrate_window
        # a rig that is down is an outage, not a loss; one fleetd switched off earns nothing (its
        # fading average would say it does) and is not there to shed again: neither is valued
        off = self.switched_off()
        live = [rig for rig in rigs if rigs.up(rig, now) and rig.name not in off]
        prices = self._prices.for_rigs([rig.name for rig in live], now)
        powered, without_power = [], []
        for rig in live:
            watts, _ = rig.power(now, window)
            if watts is None:
                without_power.append(rig.name)
            else:
                # the current stretch's rate, as curtailment judges it: a rig just back is not
                # valued on an average the time it was off pulls down
                powered.append(RigPower(rig.name, rig.current_hashrate(window, now), watts, prices[rig.name]))
        return site_economics(
            now=now,
            network=self.network(),
            rigs=powered,
            rigs_without_power=without_power,
            quote=self.quote(),
            site_usd_per_kwh=self._prices.site(now),
            configured_fees_btc=config.fees_btc_per_block,
            curtail_target_kw=config.curtail_target_kw if curtail_target_kw is None else curtail_target_kw,
            ai_hosting_usd_per_mw_day=config.ai_hosting_usd_per_mw_day,
        )


# (name, help) of every family; all are gauges
SITE_FAMILIES = (
    ("fleetd_network_difficulty", "Network difficulty of the block being mined, as the job source reports it."),
    ("fleetd_network_height", "Height of the block being mined."),
    ("fleetd_network_hashrate_hashes_per_second", "Network hash rate implied by the difficulty: difficulty x 2^32 / 600."),
    ("fleetd_block_subsidy_btc", "Block subsidy at the current height."),
    ("fleetd_block_fees_btc", "Average fees per block: from the node's templates, or as configured."),
    ("fleetd_block_reward_btc", "Subsidy plus average fees per block."),
    ("fleetd_btc_price_usd", "BTC price in USD; absent while unknown or stale."),
    ("fleetd_btc_price_stale", "1 when the BTC price is older than its max age or was never fetched: USD figures are withheld."),
    ("fleetd_btc_price_age_seconds", "Age of the fetched BTC price."),
    ("fleetd_power_price_usd_per_kwh", "The site's power price now (time-of-use aware)."),
    ("fleetd_hashprice_btc_per_petahash_day", "Expected BTC per day of 1 PH/s."),
    ("fleetd_hashprice_usd_per_petahash_day", "Expected USD per day of 1 PH/s."),
    ("fleetd_fleet_revenue_usd_per_day", "Expected revenue per day of the rigs that are up, at their pool-side hash rate."),
    ("fleetd_fleet_power_cost_usd_per_day", "Power cost per day of the rigs that are up."),
    ("fleetd_fleet_margin_usd_per_day", "Revenue minus power cost per day of the rigs that are up."),
    ("fleetd_fleet_margin_usd_per_megawatt_day", "Fleet margin per MW drawn per day, to compare with an AI-hosting offer."),
    ("fleetd_fleet_breakeven_power_price_usd_per_kwh", "Flat power price at which the fleet's margin is zero."),
    ("fleetd_ai_hosting_offer_usd_per_megawatt_day", "The configured AI-hosting offer per MW per day."),
    ("fleetd_difficulty_epoch_blocks_known", "Blocks of the current retarget epoch whose times are known."),
    ("fleetd_difficulty_adjustment_projected_ratio", "Projected next difficulty change (-0.0434 for -4.34 %), clamped as consensus clamps."),
    ("fleetd_difficulty_adjustment_blocks_remaining", "Blocks until the next difficulty adjustment."),
    ("fleetd_difficulty_adjustment_estimated_timestamp_seconds", "Estimated unix time of the next difficulty adjustment."),
    ("fleetd_curtail_target_watts", "The power reduction the curtailment plan is for."),
    ("fleetd_curtail_plan_watts", "Power the planned rigs draw: switching them off sheds this much."),
    ("fleetd_curtail_plan_lost_revenue_usd_per_day", "Revenue per day the planned rigs earn: the least any plan meeting the target loses."),
)  # fmt: skip
RIG_FAMILIES = (  # in the order render() lists each rig's figures
    ("fleetd_rig_revenue_usd_per_day", "Expected revenue per day at the rig's pool-side hash rate."),
    ("fleetd_rig_power_cost_usd_per_day", "Power cost per day at the rig's watts and power price."),
    ("fleetd_rig_margin_usd_per_day", "Revenue minus power cost per day."),
    ("fleetd_rig_breakeven_power_price_usd_per_kwh", "Power price at which the rig's margin is zero."),
    ("fleetd_rig_power_price_usd_per_kwh", "The rig's power price now (its override, else the site's)."),
    ("fleetd_rig_curtail_recommended", "1 when the rig loses money at its power price now."),
    ("fleetd_rig_curtail_for_target", "1 when the rig is in the least-revenue set to switch off for the curtailment target."),
)  # fmt: skip


def render(snap: SiteEconomics) -> str:
    """Every economics family with a value now, in the text exposition format (0.0.4)."""
    site: dict[str, list[str]] = {name: [] for name, _ in SITE_FAMILIES}

    def put(name: str, number: float | None, labels: str = "") -> None:
        if number is not None:
            text = value(tidy(number))
            site[name].append(f"{name}{{{labels}}} {text}\n" if labels else f"{name} {text}\n")

    network = snap.network
    if network is not None:
        put("fleetd_network_difficulty", network.difficulty)
        put("fleetd_network_height", network.height)
        put("fleetd_difficulty_epoch_blocks_known", len(network.block_times_seconds), f'origin="{escape(network.block_times_origin)}"')
    put("fleetd_network_hashrate_hashes_per_second", snap.network_hashrate_hps)
    put("fleetd_block_subsidy_btc", snap.subsidy_btc)
    if snap.fees_origin is not None:
        put("fleetd_block_fees_btc", snap.fees_btc_per_block, f'origin="{snap.fees_origin}"')
    put("fleetd_block_reward_btc", snap.reward_btc)
    if snap.btc_usd is not None:
        put("fleetd_btc_price_usd", snap.btc_usd, f'origin="{snap.price_origin}"')
    if snap.site_usd_per_kwh is not None:  # economics configured
        put("fleetd_btc_price_stale", 1 if snap.price_stale else 0)
    put("fleetd_btc_price_age_seconds", snap.price_age_seconds)
    put("fleetd_power_price_usd_per_kwh", snap.site_usd_per_kwh)
    put("fleetd_hashprice_btc_per_petahash_day", snap.hashprice_btc_per_ph_day)
    put("fleetd_hashprice_usd_per_petahash_day", snap.hashprice_usd_per_ph_day)
    fleet = snap.fleet
    if fleet is not None:
        put("fleetd_fleet_revenue_usd_per_day", fleet.revenue_usd_per_day)
        put("fleetd_fleet_power_cost_usd_per_day", fleet.power_cost_usd_per_day)
        put("fleetd_fleet_margin_usd_per_day", fleet.margin_usd_per_day)
        put("fleetd_fleet_margin_usd_per_megawatt_day", fleet.margin_usd_per_mw_day)
        put("fleetd_fleet_breakeven_power_price_usd_per_kwh", fleet.breakeven_usd_per_kwh)
    put("fleetd_ai_hosting_offer_usd_per_megawatt_day", snap.ai_hosting_usd_per_mw_day)
    projection = snap.projection
    if projection is not None:
        put("fleetd_difficulty_adjustment_projected_ratio", projection.change_ratio)
        put("fleetd_difficulty_adjustment_blocks_remaining", projection.blocks_remaining)
        put("fleetd_difficulty_adjustment_estimated_timestamp_seconds", projection.estimated_retarget_time_seconds)
    plan = snap.curtail_plan
    if plan is not None:
        put("fleetd_curtail_target_watts", snap.curtail_target_kw * 1000)
        put("fleetd_curtail_plan_watts", plan.reduction_kw * 1000)
        put("fleetd_curtail_plan_lost_revenue_usd_per_day", plan.lost_revenue_usd_per_day)

    per_rig: dict[str, list[str]] = {name: [] for name, _ in RIG_FAMILIES}
    losing = {e.rig_id for e in snap.unprofitable}
    planned = set(plan.rig_ids) if plan is not None else set()
    for e in snap.rigs:
        label = f'rig="{escape(e.rig_id)}"'
        figures = (
            e.revenue_usd_per_day, e.power_cost_usd_per_day, e.margin_usd_per_day, e.breakeven_usd_per_kwh,
            e.usd_per_kwh, int(e.rig_id in losing), int(e.rig_id in planned) if plan is not None else None,
        )  # fmt: skip
        for (name, _), number in zip(RIG_FAMILIES, figures):
            if number is not None:
                per_rig[name].append(f"{name}{{{label}}} {value(tidy(number))}\n")
    out = []
    for families, lines in ((SITE_FAMILIES, site), (RIG_FAMILIES, per_rig)):
        for name, help_text in families:
            if lines[name]:
                out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
                out.extend(lines[name])
    return "".join(out)


def to_json(snap: SiteEconomics) -> dict:
    """The snapshot for ``GET /api/v1/economics``; figures that cannot be known now are null."""
    network, projection, fleet, plan = snap.network, snap.projection, snap.fleet, snap.curtail_plan
    return {
        "time": snap.now,
        "network": None if network is None else {
            "difficulty": network.difficulty,
            "height": network.height,
            "hashrate_hashes_per_second": snap.network_hashrate_hps,
            "block_subsidy_btc": snap.subsidy_btc,
            "block_fees_btc": snap.fees_btc_per_block,
            "block_fees_origin": snap.fees_origin,
            "block_reward_btc": snap.reward_btc,
        },
        "btc_price": {
            "usd": snap.btc_usd,
            "origin": snap.price_origin,
            "age_seconds": snap.price_age_seconds,
            "stale": snap.price_stale,
        },
        "hashprice": {"usd_per_petahash_day": tidy(snap.hashprice_usd_per_ph_day), "btc_per_petahash_day": tidy(snap.hashprice_btc_per_ph_day)},
        "power_price_usd_per_kwh": snap.site_usd_per_kwh,
        "difficulty_adjustment": {
            "blocks_known": 0 if network is None else len(network.block_times_seconds),
            "block_times_origin": None if network is None else network.block_times_origin,
            "projection": None if projection is None else {
                "ratio": projection.change_ratio,
                "percent": round(projection.change_ratio * 100, 2),
                "average_block_time_seconds": projection.average_block_time_seconds,
                "blocks_remaining": projection.blocks_remaining,
                "next_retarget_height": projection.next_retarget_height,
                "estimated_time": projection.estimated_retarget_time_seconds,
                "clamped": projection.clamped,
            },
        },
        "fleet": None if fleet is None else {
            "rigs": fleet.rig_count,
            "hashrate_hashes_per_second": fleet.hashrate_hps,
            "watts": tidy(fleet.watts),
            "revenue_usd_per_day": tidy(fleet.revenue_usd_per_day),
            "power_cost_usd_per_day": tidy(fleet.power_cost_usd_per_day),
            "margin_usd_per_day": tidy(fleet.margin_usd_per_day),
            "margin_usd_per_megawatt_day": tidy(fleet.margin_usd_per_mw_day),
            "breakeven_power_price_usd_per_kwh": tidy(fleet.breakeven_usd_per_kwh),
            "efficiency_joules_per_terahash": tidy(fleet.joules_per_terahash),
        },
        "ai_hosting_offer_usd_per_megawatt_day": snap.ai_hosting_usd_per_mw_day,
        "rigs": [rig_fields(e) for e in sorted(snap.rigs, key=lambda e: (e.margin_usd_per_day, e.rig_id))],
        "rigs_without_power": list(snap.rigs_without_power),
        "curtailment": {
            "unprofitable": [rig_fields(e) for e in snap.unprofitable],
            "target_kw": snap.curtail_target_kw,
            "plan": None if plan is None else {
                "rigs": list(plan.rig_ids),
                "reduction_kw": tidy(plan.reduction_kw),
                "lost_revenue_usd_per_day": tidy(plan.lost_revenue_usd_per_day),
                "meets_target": plan.meets_target,
                "exact": plan.exact,
            },
        },
    }  # fmt: skip


def rig_fields(e) -> dict:
    """One rig's economics as the API shows it."""
    return {
        "rig": e.rig_id,
        "hashrate_hashes_per_second": e.hashrate_hps,
        "watts": tidy(e.watts),
        "power_price_usd_per_kwh": e.usd_per_kwh,
        "revenue_usd_per_day": tidy(e.revenue_usd_per_day),
        "power_cost_usd_per_day": tidy(e.power_cost_usd_per_day),
        "margin_usd_per_day": tidy(e.margin_usd_per_day),
        "breakeven_power_price_usd_per_kwh": tidy(e.breakeven_usd_per_kwh),
        "efficiency_joules_per_terahash": tidy(e.joules_per_terahash),
    }
