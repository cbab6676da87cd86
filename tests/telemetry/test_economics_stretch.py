"""One valuation of a rig: the economics view, its metrics and curtailment value a rig that
fleetd just switched back on on the shares of its current stretch, not on an hour's average
that the time it was off pulls down."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock
from prometheus_client.parser import text_string_to_metric_families

from fleetd.chain.network import NetworkState
from fleetd.config import parse
from fleetd.curtailment.controller import Curtailed
from fleetd.curtailment.service import CurtailmentService
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry.economics import SiteEconomicsView, render

# Network difficulty 1.4e14 and 3.15 BTC a block at $90,000: about $42 per PH/s a day, so a
# 100 TH/s rig at 3,000 W earns about $4.10 a day against $3.60 of power at 0.05 $/kWh.
ECONOMICS = """
[economics]
btc_price_usd = 90000
fees_btc_per_block = 0.025
power_price_usd_per_kwh = 0.05
"""
RIG, IP = "site.rig1", "10.0.0.1"
RATE = 100e12


class _Node:
    def network_state(self):
        return NetworkState(1.4e14, 900_000, 0.025)


async def _no_call(ip, call, *args):
    return True, "ok"


def _read(clock, rigs, hashrate):
    rigs.reading(RigReading(ip=IP, time=clock.wall(), model="S19", firmware="stock", hashrate=hashrate,
                            watts=3000.0 if hashrate else 60.0, temperatures={}, fans={}))  # fmt: skip


def _mine(clock, rigs, seconds):
    for _ in range(int(seconds)):  # a share a second of a 100 TH/s rig
        clock.tick(1.0)
        rigs.share(RIG, RATE / 2**32, clock.wall())
    _read(clock, rigs, RATE)


async def test_right_after_a_resume_the_economics_margin_is_the_stretch_s_as_curtailment_judges_it():
    clock, rigs = FakeClock(), RigRegistry(poll_interval=30.0)
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node(), interval=0.0)
    service = CurtailmentService(CurtailmentConfig(mode="act", min_shares=200.0), rigs, view, _no_call, clock=clock)
    rigs.connected(RIG, IP, clock.wall())
    _mine(clock, rigs, 600)
    for _ in range(80):  # 40 minutes held off: connected and polled, no share
        clock.tick(30.0)
        _read(clock, rigs, 0.0)
    service.controller.resumed_at[RIG] = clock.wall()  # as the controller records a verified resume
    await service.cycle()
    _mine(clock, rigs, 600)
    now = clock.wall()

    window = rigs.get(RIG).hashrate_estimate("1h", now)
    assert window.rate < 50e12 and window.shares > 200  # the hour's average: a confident loser at under $2
    snap = view.snapshot(now)
    [valued] = snap.rigs
    assert valued.hashrate_hps == pytest.approx(RATE, rel=0.01)  # the ten minutes since it came back
    assert valued.revenue_usd_per_day == pytest.approx(RATE / 1e15 * snap.hashprice_usd_per_ph_day)
    assert valued.margin_usd_per_day > 0.4  # it pays, as it did before it was switched off
    metrics = {
        s.name: s.value for family in text_string_to_metric_families(render(view.snapshot(now)))
        for s in family.samples if s.labels.get("rig") == RIG
    }  # fmt: skip
    assert metrics["fleetd_rig_margin_usd_per_day"] > 0 and metrics["fleetd_rig_curtail_recommended"] == 0
    _, judged = service.inputs(now)
    assert judged[RIG].rate == valued.hashrate_hps  # one valuation: what curtailment judges it on
    assert 550 <= judged[RIG].shares <= 601


def test_a_stretch_ends_once_the_window_has_forgotten_the_time_before():
    clock, rigs = FakeClock(), RigRegistry()
    rigs.connected(RIG, IP, clock.wall())
    _mine(clock, rigs, 600)
    clock.tick(2400.0)
    rigs.resumed(RIG, clock.wall(), clock.wall())
    rig = rigs.get(RIG)
    _mine(clock, rigs, 60)
    assert rig.current_hashrate("1h", clock.wall()) == pytest.approx(RATE, rel=0.01)
    rigs.resumed(RIG, clock.wall() - 100.0, clock.wall())  # an older resume does not start it again
    assert rig.stretch_began == clock.wall() - 60.0
    _mine(clock, rigs, 3 * 3600)  # three time constants of the hour's window: it holds nothing else
    assert rig.current_estimate("1h", clock.wall()) == rig.hashrate_estimate("1h", clock.wall())


@pytest.mark.parametrize("state, valued", [("stopping", False), ("off", False), ("resuming", False),
                                           ("limited", True), ("failed", True)])  # fmt: skip
async def test_a_rig_fleetd_switched_off_is_not_valued_on_the_average_its_shares_left(state, valued):
    """Switched off, its hour's average fades for hours: valued on it, it would earn at no cost
    and head the plan's list of rigs to switch off. A limited rig mines, a failed one may."""
    clock, rigs = FakeClock(), RigRegistry(poll_interval=30.0)
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node(), interval=0.0)
    service = CurtailmentService(CurtailmentConfig(mode="act"), rigs, view, _no_call, clock=clock)
    view.switched_off = service.controller.switched_off
    rigs.connected(RIG, IP, clock.wall())
    _mine(clock, rigs, 600)
    service.controller.curtailed[RIG] = Curtailed("price", state, clock.wall(), 3000.0, RATE, clock.wall())
    clock.tick(60.0)
    _read(clock, rigs, 0.0)
    snap = view.snapshot(clock.wall())
    assert [rig.rig_id for rig in snap.rigs] == ([RIG] if valued else [])
    assert (snap.fleet is not None and snap.fleet.revenue_usd_per_day > 0) is valued
