"""Hashprice, revenue, power cost, margin, breakeven and fleet totals against hand computations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.economics.network import network_hashrate_hashes_per_second
from fleetd.economics.profitability import (
    breakeven_usd_per_kwh,
    fleet_economics,
    fleet_margin_usd_per_mw_day,
    hashprice_btc_per_ph_day,
    hashprice_usd_per_ph_day,
    joules_per_terahash,
    margin_usd_per_day,
    power_cost_usd_per_day,
    revenue_btc_per_day,
    rig_economics,
)


DIFFICULTY = 1.4e14
SUBSIDY = 3.125


def test_hashprice_matches_share_of_network_times_144_blocks():
    # Independent route: 1 PH/s is a share 1e15 / N of the network, which finds 144 blocks a day.
    share = 1e15 / network_hashrate_hashes_per_second(DIFFICULTY)
    by_hand = share * 144 * (SUBSIDY + 0.02)
    assert hashprice_btc_per_ph_day(DIFFICULTY, SUBSIDY, 0.02) == pytest.approx(by_hand, rel=1e-12)
    # and the literal: 86400e15 / (1.4e14 * 4294967296) * 3.125 = 4.4903e-4 BTC/PH/day
    assert hashprice_btc_per_ph_day(DIFFICULTY, SUBSIDY, 0.0) == pytest.approx(4.49030e-4, rel=1e-5)
    assert revenue_btc_per_day(2e15, DIFFICULTY, SUBSIDY, 0.0) == pytest.approx(2 * 4.49030e-4, rel=1e-5)


def test_issue_example_35_dollar_hashprice_and_the_breakeven_of_a_17_5_j_per_th_rig():
    btc_usd = 35 / hashprice_btc_per_ph_day(DIFFICULTY, SUBSIDY, 0.0)
    assert btc_usd == pytest.approx(77_945.0, rel=1e-4)
    hashprice = hashprice_usd_per_ph_day(DIFFICULTY, SUBSIDY, 0.0, btc_usd)
    assert hashprice == pytest.approx(35.0)
    # By hand: 200 TH/s at 17.5 J/TH draws 3500 W. Revenue 0.2 PH x $35 = $7/day; energy 3.5 kW x 24 h
    # = 84 kWh/day; breakeven 7 / 84 = $0.08333/kWh (= 35 / (17.5 x 24) for any rig of 17.5 J/TH).
    rig = rig_economics("r1", 200e12, 3500, hashprice, usd_per_kwh=0.05)
    assert rig.joules_per_terahash == pytest.approx(17.5)
    assert rig.revenue_usd_per_day == pytest.approx(7.0)
    assert rig.breakeven_usd_per_kwh == pytest.approx(1 / 12)
    assert rig.power_cost_usd_per_day == pytest.approx(84 * 0.05)
    assert rig.margin_usd_per_day == pytest.approx(7.0 - 4.2)
    at_breakeven = rig_economics("r1", 200e12, 3500, hashprice, usd_per_kwh=1 / 12)
    assert at_breakeven.margin_usd_per_day == pytest.approx(0.0, abs=1e-12)


def test_small_formulas():
    assert power_cost_usd_per_day(1000, 0.1) == pytest.approx(2.4)
    assert margin_usd_per_day(5.0, 2.4) == pytest.approx(2.6)
    assert breakeven_usd_per_kwh(2.4, 1000) == pytest.approx(0.1)
    assert breakeven_usd_per_kwh(2.4, 0) is None
    assert joules_per_terahash(3000, 100e12) == pytest.approx(30.0)
    assert joules_per_terahash(3000, 0) is None
    assert fleet_margin_usd_per_mw_day(100.0, 500_000) == pytest.approx(200.0)
    assert fleet_margin_usd_per_mw_day(100.0, 0) is None
    for bad in (lambda: power_cost_usd_per_day(-1, 0.1), lambda: revenue_btc_per_day(1, 0, 1, 0),
                lambda: hashprice_usd_per_ph_day(1, 1, 0, float("nan"))):
        with pytest.raises(ValueError):
            bad()


def test_fleet_totals():
    a = rig_economics("a", 200e12, 3500, 35.0, 0.05)
    b = rig_economics("b", 100e12, 3000, 35.0, 0.07)
    f = fleet_economics([a, b])
    assert f.rig_count == 2
    assert f.hashrate_hps == 300e12 and f.watts == 6500
    assert f.revenue_usd_per_day == pytest.approx(7.0 + 3.5)
    assert f.power_cost_usd_per_day == pytest.approx(3.5 * 24 * 0.05 + 3.0 * 24 * 0.07)
    assert f.margin_usd_per_day == pytest.approx(10.5 - 4.2 - 5.04)
    assert f.margin_usd_per_mw_day == pytest.approx((10.5 - 9.24) / 0.0065)
    assert f.breakeven_usd_per_kwh == pytest.approx(10.5 / (6.5 * 24))
    assert f.joules_per_terahash == pytest.approx(6500 / 300)
    empty = fleet_economics([])
    assert empty.rig_count == 0 and empty.margin_usd_per_mw_day is None and empty.joules_per_terahash is None


@given(st.floats(1, 1e4), st.floats(1e12, 1e15), st.floats(1, 100), st.floats(0, 1))
def test_breakeven_depends_only_on_hashprice_and_efficiency(watts, hashrate, hashprice, price):
    rig = rig_economics("x", hashrate, watts, hashprice, price)
    assert rig.breakeven_usd_per_kwh == pytest.approx(hashprice / (rig.joules_per_terahash * 24), rel=1e-9)
    if price < rig.breakeven_usd_per_kwh * (1 - 1e-6):
        assert rig.margin_usd_per_day > 0
    elif price > rig.breakeven_usd_per_kwh * (1 + 1e-6):
        assert rig.margin_usd_per_day < 0
