"""site_economics as a pure function, checked against figures worked out by hand."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from fleetd.economics.curtailment import DP_CELL_BUDGET

from fleetd.economics.profitability import RigPower
from fleetd.chain.network import NetworkState
from fleetd.economics.site import BtcQuote, SiteEconomics, site_economics

NOW = 1_750_000_000.0
DIFFICULTY = 1.4e14
HEIGHT = 975_000
TWO_32 = 4_294_967_296

# Worked out by hand, independently of the code under test:
#   network hash rate = difficulty x 2^32 / 600 s
#   subsidy at 975,000 = 50 BTC halved 975,000 // 210,000 = 4 times = 3.125 BTC
#   hashprice = blocks a PH/s finds per day x (subsidy + fees)
#             = 1e15 x 86,400 / (difficulty x 2^32) x (3.125 + 0.025)
NETWORK_HPS = DIFFICULTY * TWO_32 / 600
SUBSIDY = 3.125
FEES = 0.025
HASHPRICE_BTC = 1e15 * 86_400 / (DIFFICULTY * TWO_32) * (SUBSIDY + FEES)
BTC_USD_FOR_35 = 35 / HASHPRICE_BTC  # about $77,300
SITE_PRICE = 0.06


def network(**kw) -> NetworkState:
    return NetworkState(**{"difficulty": DIFFICULTY, "height": HEIGHT, **kw})


def configured(usd: float = BTC_USD_FOR_35) -> BtcQuote:
    return BtcQuote(usd, "configured")


def run(**kw) -> SiteEconomics:
    args = {
        "now": NOW,
        "network": network(),
        "quote": configured(),
        "site_usd_per_kwh": SITE_PRICE,
        "configured_fees_btc": FEES,
    }
    args.update(kw)
    return site_economics(**args)


def test_hand_computed_constants_are_the_issues_figures():
    assert NETWORK_HPS == pytest.approx(1.0022e21, rel=1e-4)  # about 1 ZH/s
    assert HASHPRICE_BTC == pytest.approx(4.5262e-4, rel=1e-4)
    assert BTC_USD_FOR_35 == pytest.approx(77_327, rel=1e-4)


def test_the_issues_situation():
    s = run(rigs=[RigPower("s21", 200e12, 3500)])
    assert s.network_hashrate_hps == pytest.approx(NETWORK_HPS, rel=1e-12)
    assert s.subsidy_btc == 3.125
    assert s.fees_btc_per_block == 0.025 and s.fees_origin == "configured"
    assert s.reward_btc == pytest.approx(3.15)
    assert s.hashprice_btc_per_ph_day == pytest.approx(HASHPRICE_BTC, rel=1e-12)
    assert s.btc_usd == BTC_USD_FOR_35 and s.price_origin == "configured"
    assert s.price_stale is False and s.price_age_seconds is None
    assert s.hashprice_usd_per_ph_day == pytest.approx(35.0, rel=1e-12)
    assert s.priced
    (rig,) = s.rigs
    # 200 TH/s = 0.2 PH/s at $35/PH/day: $7/day; 3.5 kW x 24 h = 84 kWh at $0.06: $5.04
    assert rig.rig_id == "s21"
    assert rig.joules_per_terahash == pytest.approx(17.5)
    assert rig.revenue_usd_per_day == pytest.approx(7.0)
    assert rig.power_cost_usd_per_day == pytest.approx(5.04)
    assert rig.margin_usd_per_day == pytest.approx(1.96)
    # breakeven: $0.035 per TH/s per day over 17.5 x 24 / 1000 = 0.42 kWh per TH/s per day
    assert rig.breakeven_usd_per_kwh == pytest.approx(0.035 / 0.42)
    assert rig.breakeven_usd_per_kwh == pytest.approx(0.083333, rel=1e-5)
    assert s.unprofitable == ()
    assert s.curtail_plan is None and s.curtail_target_kw == 0.0


def test_template_fees_take_precedence_over_configured_fees():
    s = run(network=network(fees_btc_per_block=0.1), configured_fees_btc=FEES)
    assert s.fees_btc_per_block == 0.1 and s.fees_origin == "template"
    assert s.reward_btc == pytest.approx(3.225)
    assert s.hashprice_btc_per_ph_day == pytest.approx(1e15 * 86_400 / (DIFFICULTY * TWO_32) * 3.225)
    # zero fees from templates are still the network's word
    zero = run(network=network(fees_btc_per_block=0.0), configured_fees_btc=FEES)
    assert zero.fees_btc_per_block == 0.0 and zero.fees_origin == "template"
    assert zero.hashprice_btc_per_ph_day == pytest.approx(1e15 * 86_400 / (DIFFICULTY * TWO_32) * 3.125)


def test_no_fees_at_all_leaves_reward_and_hashprice_unknown():
    s = run(configured_fees_btc=None, rigs=[RigPower("s21", 200e12, 3500)], curtail_target_kw=1)
    assert s.subsidy_btc == 3.125
    assert s.fees_btc_per_block is None and s.fees_origin is None
    assert s.reward_btc is None
    assert s.hashprice_btc_per_ph_day is None and s.hashprice_usd_per_ph_day is None
    assert s.btc_usd == BTC_USD_FOR_35  # the price itself is still known
    assert s.rigs == () and s.fleet is None and s.curtail_plan is None
    assert not s.priced


def test_a_stale_feed_quote_withholds_every_usd_figure():
    rigs = [RigPower("s21", 200e12, 3500), RigPower("old", 100e12, 3250)]
    stale = BtcQuote(BTC_USD_FOR_35, "feed", fetched_at=NOW - 1801, max_age_seconds=1800)
    s = run(quote=stale, rigs=rigs, curtail_target_kw=1)
    assert s.btc_usd is None
    assert s.price_stale is True
    assert s.price_origin == "feed"
    assert s.price_age_seconds == 1801
    assert s.hashprice_btc_per_ph_day == pytest.approx(HASHPRICE_BTC)  # BTC figures stay
    assert s.hashprice_usd_per_ph_day is None
    assert s.rigs == () and s.fleet is None and s.unprofitable == () and s.curtail_plan is None
    assert not s.priced


def test_a_fresh_feed_quote_gives_figures():
    rigs = [RigPower("s21", 200e12, 3500), RigPower("old", 100e12, 3250)]
    fresh = BtcQuote(BTC_USD_FOR_35, "feed", fetched_at=NOW - 1800, max_age_seconds=1800)  # exactly max_age: fresh
    s = run(quote=fresh, rigs=rigs, curtail_target_kw=1)
    assert s.btc_usd == BTC_USD_FOR_35 and s.price_stale is False and s.price_age_seconds == 1800
    assert s.hashprice_usd_per_ph_day == pytest.approx(35.0)
    assert [r.rig_id for r in s.rigs] == ["s21", "old"]
    assert s.fleet is not None and s.fleet.rig_count == 2
    assert s.curtail_plan is not None
    assert s.priced


def test_a_configured_quote_never_goes_stale():
    s = run(now=NOW + 10 * 365 * 86_400, quote=BtcQuote(50_000.0, "configured", max_age_seconds=1800))
    assert s.btc_usd == 50_000.0 and s.price_stale is False and s.price_age_seconds is None
    assert s.hashprice_usd_per_ph_day == pytest.approx(HASHPRICE_BTC * 50_000)


def test_configured_economics_without_a_quote_yet_is_stale():
    s = run(quote=None, rigs=[RigPower("s21", 200e12, 3500)])
    assert s.price_stale is True
    assert s.btc_usd is None and s.price_origin is None and s.price_age_seconds is None
    assert s.hashprice_usd_per_ph_day is None and s.rigs == () and s.fleet is None
    # without any economics configured (no power price either) nothing is claimed stale
    assert run(quote=None, site_usd_per_kwh=None).price_stale is False


FLEET = [
    RigPower("a", 200e12, 3500),  # 17.5 J/TH: $7 - 3.5 x 24 x 0.06 = 7 - 5.04
    RigPower("b", 100e12, 3250, usd_per_kwh=0.03),  # own contract: 3.5 - 3.25 x 24 x 0.03 = 3.5 - 2.34
    RigPower("c", 100e12, 3000),  # 30 J/TH: 3.5 - 4.32, losing
    RigPower("d", 14e12, 1372),  # 98 J/TH: 0.49 - 1.97568, losing
    RigPower("e", 0.0, 300),  # draws power, hashes nothing: 0 - 0.432
    RigPower("f", 100e12, 3250),  # 32.5 J/TH: 3.5 - 4.68, losing (b's draw at the site price)
]


def test_per_rig_power_prices_and_the_site_fallback():
    s = run(rigs=FLEET)
    by_id = {r.rig_id: r for r in s.rigs}
    assert [r.rig_id for r in s.rigs] == ["a", "b", "c", "d", "e", "f"]
    assert by_id["b"].usd_per_kwh == 0.03
    assert all(by_id[x].usd_per_kwh == SITE_PRICE for x in "acdef")
    assert by_id["b"].power_cost_usd_per_day == pytest.approx(3.25 * 24 * 0.03)
    assert by_id["b"].margin_usd_per_day == pytest.approx(3.5 - 2.34)
    assert by_id["f"].power_cost_usd_per_day == pytest.approx(3.25 * 24 * 0.06)
    assert by_id["f"].margin_usd_per_day == pytest.approx(3.5 - 4.68)
    assert by_id["e"].joules_per_terahash is None and by_id["e"].revenue_usd_per_day == 0


def test_unprofitable_rigs_worst_efficiency_first_and_idle_burners_before_all():
    s = run(rigs=FLEET)
    assert [r.rig_id for r in s.unprofitable] == ["e", "d", "f", "c"]
    assert all(r.margin_usd_per_day < 0 for r in s.unprofitable)
    assert [r.joules_per_terahash for r in s.unprofitable[1:]] == pytest.approx([98.0, 32.5, 30.0])


def test_fleet_totals():
    s = run(rigs=FLEET, rigs_without_power=["mystery"], ai_hosting_usd_per_mw_day=2400)
    f = s.fleet
    watts = 3500 + 3250 + 3000 + 1372 + 300 + 3250  # 14,672 W
    revenue = 7 + 3.5 + 3.5 + 0.49 + 0 + 3.5  # 17.99
    cost = 5.04 + 2.34 + 4.32 + 1.372 * 24 * 0.06 + 0.3 * 24 * 0.06 + 4.68
    assert f.rig_count == 6
    assert f.hashrate_hps == pytest.approx(514e12)
    assert f.watts == watts
    assert f.revenue_usd_per_day == pytest.approx(revenue)
    assert f.power_cost_usd_per_day == pytest.approx(cost)
    assert f.margin_usd_per_day == pytest.approx(revenue - cost)
    assert f.margin_usd_per_day == pytest.approx(-0.79768)
    assert f.margin_usd_per_mw_day == pytest.approx((revenue - cost) / (watts / 1e6))
    assert f.margin_usd_per_mw_day == pytest.approx(-54.367, rel=1e-4)
    assert f.breakeven_usd_per_kwh == pytest.approx(revenue / (watts / 1000 * 24))
    assert f.breakeven_usd_per_kwh == pytest.approx(0.051089, rel=1e-4)
    assert f.joules_per_terahash == pytest.approx(watts / 514)
    assert s.rigs_without_power == ("mystery",)
    assert s.ai_hosting_usd_per_mw_day == 2400


def test_curtailment_plan_only_with_a_target():
    assert run(rigs=FLEET).curtail_plan is None
    assert run(rigs=FLEET, curtail_target_kw=0.0).curtail_plan is None
    s = run(rigs=FLEET, curtail_target_kw=0.3)
    assert s.curtail_target_kw == 0.3
    # "e" alone sheds 300 W and loses nothing
    assert s.curtail_plan.rig_ids == ("e",) and s.curtail_plan.lost_revenue_usd_per_day == 0
    assert s.curtail_plan.meets_target


def brute_force(draws: list[tuple[int, float]], target_w: int) -> float:
    """Least revenue lost over every subset whose watts reach the target."""
    best = math.inf
    for n in range(len(draws) + 1):
        for combo in itertools.combinations(draws, n):
            if sum(w for w, _ in combo) >= target_w:
                best = min(best, sum(rev for _, rev in combo))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_curtailment_matches_the_brute_force_optimum(seed):
    rng = random.Random(20_250_000 + seed)
    n = rng.randint(1, 10)
    fleet = [
        RigPower(f"r{i}", rng.randint(5, 250) * 1e12, rng.randint(100, 3600), rng.choice([None, 0.03, 0.09]))
        for i in range(n)
    ]
    total_w = sum(int(r.watts) for r in fleet)
    target_w = rng.randint(1, min(total_w, DP_CELL_BUDGET // n - 1))  # 1 W units: the table fits its default budget
    s = run(rigs=fleet, curtail_target_kw=target_w / 1000)
    plan = s.curtail_plan
    # revenue by hand: PH/s x $/PH/day, whatever each rig pays for power
    hashprice = HASHPRICE_BTC * BTC_USD_FOR_35
    draws = [(int(r.watts), r.hashrate_hps / 1e15 * hashprice) for r in fleet]
    best = brute_force(draws, target_w)
    assert plan.meets_target and plan.exact
    assert plan.lost_revenue_usd_per_day == pytest.approx(best, rel=1e-9, abs=1e-9)
    chosen = [i for i, r in enumerate(fleet) if r.rig_id in plan.rig_ids]
    assert len(chosen) == len(plan.rig_ids)
    assert sum(draws[i][0] for i in chosen) >= target_w
    assert plan.reduction_kw == pytest.approx(sum(draws[i][0] for i in chosen) / 1000)


def block_times(count: int, spacing: float = 627.0) -> tuple[float, ...]:
    return tuple(NOW - (count - 1 - i) * spacing for i in range(count))


def test_projection_needs_146_known_block_times():
    assert run(network=network(block_times_seconds=block_times(145))).projection is None
    p = run(network=network(block_times_seconds=block_times(146))).projection
    assert p is not None
    assert p.blocks_known == 146
    assert p.average_block_time_seconds == pytest.approx(627.0)
    assert p.change_ratio == pytest.approx(600 / 627 - 1)
    assert p.change_ratio == pytest.approx(-0.0431, abs=5e-5)  # about -4.31 %
    assert not p.clamped
    # tip 974,999: the epoch began at 483 x 2016 = 973,728; the next retarget is 484 x 2016 = 975,744
    assert p.next_retarget_height == 975_744
    assert p.blocks_remaining == 975_744 - 974_999
    assert run(network=network()).projection is None  # no block times at all


def test_without_a_network_every_network_figure_is_none():
    s = run(network=None, rigs=FLEET, curtail_target_kw=1)
    assert s.network is None
    assert s.network_hashrate_hps is None
    assert s.subsidy_btc is None and s.fees_btc_per_block is None and s.fees_origin is None
    assert s.reward_btc is None
    assert s.hashprice_btc_per_ph_day is None and s.hashprice_usd_per_ph_day is None
    assert s.projection is None
    assert s.rigs == () and s.fleet is None and s.unprofitable == () and s.curtail_plan is None
    assert s.btc_usd == BTC_USD_FOR_35 and s.site_usd_per_kwh == SITE_PRICE  # what is known is still shown
    assert not s.priced


def test_zero_difficulty_is_treated_as_no_network():
    s = run(network=network(difficulty=0.0), rigs=FLEET)
    assert s.network_hashrate_hps is None and s.subsidy_btc is None and s.hashprice_btc_per_ph_day is None
    assert s.fleet is None


def test_nothing_at_all():
    s = site_economics(now=NOW, network=None)
    assert s.now == NOW
    assert s.btc_usd is None and s.price_stale is False and s.site_usd_per_kwh is None
    assert s.rigs == () and s.rigs_without_power == () and s.fleet is None and s.projection is None
