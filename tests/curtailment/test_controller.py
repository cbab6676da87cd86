"""The curtailment controller on numbers alone: confidence, triggers, safety, verification, restarts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from fleetd.curtailment.controller import Controller, Demand, RigInput, SiteInput
from fleetd.curtailment.settings import CurtailmentConfig, Window

TH = 1e12
HASHPRICE = 35.0  # $/PH/day: a 100 TH/s rig earns $3.50 a day
PRICE = 0.06  # $/kWh


def rig(name, *, th=100.0, watts=3000.0, shares=1000.0, spread=0.05, last_share=None, reported=True, price=PRICE):
    rate = th * TH
    return RigInput(name, f"10.0.0.{abs(hash(name)) % 250 + 1}", watts, reported, rate, rate * (1 - spread),
                    rate * (1 + spread), shares, price, last_share, watts / th if th else None)  # fmt: skip


def site(price=PRICE, hashprice=HASHPRICE, local=None):
    return SiteInput(hashprice, price, local)


def act(**options):
    return Controller(CurtailmentConfig(**{"mode": "act", "min_on_seconds": 0.0, "min_off_seconds": 0.0, **options}))


def off(name, price=PRICE):
    """A rig that stopped: no hash rate, idle draw."""
    return rig(name, th=0.0, watts=60.0, price=price)


def by_name(*rigs):
    return {r.name: r for r in rigs}


# A 100 TH/s rig at 3,000 W costs $4.32 a day at 0.06 $/kWh and earns $3.50: it loses money.
# At 2,000 W it costs $2.88 and earns: it pays.


def test_a_losing_rig_is_switched_off_only_when_its_estimate_is_confident():
    controller = act(min_shares=100)
    young = rig("a", shares=50)  # loses money by its rate, but on 50 shares
    assert controller.cycle(0.0, site(), by_name(young)) == []
    assert "a" not in controller.advice
    # upper bound 3.50 x 1.3 = 4.55 > 4.32: it might pay, by what the shares can tell
    uncertain = rig("a", shares=400, spread=0.3)
    assert controller.cycle(60.0, site(), by_name(uncertain)) == []
    sure = rig("a", shares=400, spread=0.1)  # upper 3.85 < 4.32: it loses with confidence
    (action,) = controller.cycle(120.0, site(), by_name(sure))
    assert (action.rig, action.kind, action.reason, action.attempt) == ("a", "stop", "unprofitable", 1)
    paying = rig("b", watts=2000.0)
    assert controller.cycle(180.0, site(), by_name(sure, paying)) == []  # a stays held; b pays


def test_a_stop_is_verified_when_shares_stop_and_reported_watts_fall():
    controller = act()
    (stop,) = controller.cycle(0.0, site(), by_name(rig("a", last_share=0.0)))
    controller.done(stop, True, "stop_mining: ok", 1.0)
    # 30 s later no share came since the stop (one in flight at 10 s is forgiven), watts are idle
    controller.cycle(60.0, site(), by_name(rig("a", watts=90.0, last_share=10.0)))
    assert controller.curtailed["a"].state == "off" and controller.shed_kw() == 3.0
    kinds = [e.kind for e in controller.take_events()]
    assert kinds == ["stop", "acted", "verified"]


def test_a_stop_is_verified_only_after_a_quiet_spell_past_the_shares_in_flight():
    controller = act(cycle_seconds=10.0, verify_seconds=90.0)
    (stop,) = controller.cycle(0.0, site(), by_name(rig("a")))
    controller.done(stop, True, "ok", 0.0)
    # 30 s on, nothing can have come after the grace yet: that proves nothing
    assert controller.cycle(30.0, site(), by_name(rig("a", last_share=29.0, reported=False))) == []
    assert controller.curtailed["a"].state == "stopping"
    controller.cycle(50.0, site(), by_name(rig("a", last_share=45.0, reported=False)))  # it hashes on
    assert controller.curtailed["a"].state == "stopping"
    (retry,) = controller.cycle(90.0, site(), by_name(rig("a", last_share=88.0, reported=False)))
    assert (retry.kind, retry.attempt) == ("stop", 2)
    controller.done(retry, True, "ok", 90.0)
    controller.cycle(140.0, site(), by_name(rig("a", last_share=88.0, reported=False)))
    assert controller.curtailed["a"].state == "stopping"  # quiet for 20 s past the grace: not yet
    controller.cycle(150.0, site(), by_name(rig("a", last_share=88.0, reported=False)))
    assert controller.curtailed["a"].state == "off"


def test_a_rig_held_off_stays_held_while_the_figures_it_was_judged_on_are_unknown():
    controller = act(price_above_usd_per_kwh=0.10)
    controller.cycle(0.0, site(), by_name(rig("a"), rig("b", watts=2000.0)))  # a loses money
    controller.cycle(60.0, site(price=0.11), by_name(off("a"), rig("b", watts=2000.0, price=0.11)))  # b: price
    assert {n: (h.reason, h.state) for n, h in controller.curtailed.items()} == {
        "a": ("unprofitable", "off"), "b": ("price", "stopping")}  # fmt: skip
    controller.cycle(120.0, site(price=0.11), by_name(off("a"), off("b")))
    # the BTC price went stale (no hashprice) and the site's price is unknown: nothing says either pays now
    assert controller.cycle(180.0, site(price=None, hashprice=None), by_name(off("a", price=None), off("b"))) == []
    assert controller.advice == {"a": "unprofitable", "b": "price"}
    # the figures are back: a still loses, b's price has fallen
    (resume,) = controller.cycle(240.0, site(price=0.05), by_name(off("a"), off("b", price=0.05)))
    assert (resume.rig, resume.kind) == ("b", "resume")


def test_a_rig_that_keeps_mining_is_retried_then_failed():
    controller = act(verify_seconds=120.0, retries=2)
    (stop,) = controller.cycle(0.0, site(), by_name(rig("a")))
    controller.done(stop, True, "ok", 0.0)
    mining = lambda t: by_name(rig("a", last_share=t))  # noqa: E731 - it ignores the stop
    assert controller.cycle(60.0, site(), mining(60.0)) == []  # not yet due
    (retry,) = controller.cycle(120.0, site(), mining(120.0))
    assert (retry.kind, retry.attempt) == ("stop", 2)
    (retry,) = controller.cycle(240.0, site(), mining(240.0))
    assert retry.attempt == 3
    assert controller.cycle(360.0, site(), mining(360.0)) == []
    held = controller.curtailed["a"]
    assert held.state == "failed" and controller.shed_kw() == 0.0
    events = controller.take_events()
    assert [e.kind for e in events][-1] == "failed" and events[-1].detail["attempts"] == 3
    assert controller.cycle(480.0, site(), mining(480.0)) == []  # left alone until released
    assert controller.release("a", 500.0) and "a" not in controller.curtailed


def test_a_refused_call_is_retried_at_the_next_cycle():
    controller = act(retries=1)
    (stop,) = controller.cycle(0.0, site(), by_name(rig("a")))
    controller.done(stop, False, "ConnectionRefusedError", 0.5)
    (retry,) = controller.cycle(60.0, site(), by_name(rig("a")))
    assert (retry.kind, retry.attempt) == ("stop", 2)
    controller.done(retry, False, "timeout", 60.5)
    assert controller.cycle(120.0, site(), by_name(rig("a"))) == [] and controller.curtailed["a"].state == "failed"


def test_hysteresis_and_minimum_times_hold_a_rig_off_and_on():
    controller = Controller(CurtailmentConfig(mode="act", hysteresis=0.1, min_off_seconds=1800, min_on_seconds=3600))
    (stop,) = controller.cycle(0.0, site(), by_name(rig("a")))
    controller.cycle(60.0, site(), by_name(rig("a", th=0.0, watts=60.0)))  # verified off
    assert controller.curtailed["a"].state == "off"
    # the power price falls to 0.0495: the rig would earn $3.50 against $3.56 -- still held
    assert controller.cycle(120.0, site(price=0.0495), by_name(rig("a", th=0.0, price=0.0495))) == []
    # at 0.044 it clears the cost ($3.17) by 10 % -- but only after 30 minutes off
    assert controller.cycle(1000.0, site(price=0.044), by_name(rig("a", th=0.0, price=0.044))) == []
    (resume,) = controller.cycle(1800.0, site(price=0.044), by_name(rig("a", th=0.0, price=0.044)))
    assert (resume.kind, resume.reason) == ("resume", "unprofitable")
    controller.cycle(1900.0, site(price=0.044), by_name(rig("a", last_share=1850.0, price=0.044)))
    assert "a" not in controller.curtailed  # shares came back: verified on
    # the price is back up: it loses again, but it stays on for an hour after a resume
    assert controller.cycle(2000.0, site(), by_name(rig("a"))) == []
    (stop,) = controller.cycle(1900.0 + 3600.0, site(), by_name(rig("a")))
    assert stop.kind == "stop"


def test_a_resume_that_brings_no_shares_is_retried_then_failed():
    controller = act(resume_verify_seconds=300.0, retries=0)
    controller.cycle(0.0, site(), by_name(rig("a")))
    controller.cycle(60.0, site(), by_name(rig("a", th=0.0)))
    cheap = by_name(off("a", price=0.01))
    (resume,) = controller.cycle(120.0, site(price=0.01), cheap)
    assert resume.kind == "resume"
    assert controller.cycle(420.0, site(price=0.01), cheap) == []
    assert controller.curtailed["a"].state == "failed"


def test_the_ramp_limit_and_the_cap_move_the_site_in_steps():
    rigs = by_name(*(rig(f"r{i}") for i in range(10)))  # ten losing 3 kW rigs
    controller = act(ramp_kw_per_minute=7.0, cycle_seconds=60.0)
    assert len(controller.cycle(0.0, site(), rigs)) == 2  # 7 kW a minute: two rigs of 3 kW
    assert len(controller.cycle(60.0, site(), rigs)) == 2
    controller = act(ramp_kw_per_minute=1.0)  # smaller than one rig: one rig a cycle, never none
    assert len(controller.cycle(0.0, site(), rigs)) == 1
    controller = act(ramp_kw_per_minute=1000.0, max_rigs_per_cycle=3)
    assert len(controller.cycle(0.0, site(), rigs)) == 3


def test_a_demand_response_request_is_met_and_released():
    paying = by_name(*(rig(f"r{i}", watts=2000.0, th=100.0 + i) for i in range(6)))  # 12 kW, all pay
    controller = act(ramp_kw_per_minute=1000.0)
    controller.demand = Demand(kw=5.0, until=600.0, requested_at=0.0)
    stops = controller.cycle(0.0, site(), paying)
    assert sorted(a.rig for a in stops) == ["r0", "r1", "r2"] and {a.reason for a in stops} == {"demand"}
    assert controller.target_kw == 5.0
    off = {**paying, **{n: rig(n, th=0.0, watts=50.0) for n in ("r0", "r1", "r2")}}
    assert controller.cycle(60.0, site(), off) == []
    assert controller.shed_kw() == 6.0  # three 2 kW rigs: at least the 5 kW asked
    resumes = controller.cycle(600.0, site(), off)  # the request ended
    assert sorted(a.rig for a in resumes) == ["r0", "r1", "r2"] and controller.demand is None
    assert any(e.kind == "released" and e.reason == "demand" for e in controller.take_events())


def test_a_price_above_the_threshold_curtails_every_rig_but_the_pinned_ones():
    controller = act(price_above_usd_per_kwh=0.10, hysteresis=0.1, never=("lab-*",), ramp_kw_per_minute=1000.0)
    rigs = by_name(rig("a", watts=2000.0), rig("b", watts=2000.0), rig("lab-1", watts=2000.0))
    assert controller.cycle(0.0, site(price=0.09), rigs) == []
    stops = controller.cycle(60.0, site(price=0.11), rigs)
    assert sorted(a.rig for a in stops) == ["a", "b"] and {a.reason for a in stops} == {"price"}
    rigs_off = by_name(rig("a", th=0.0), rig("b", th=0.0), rig("lab-1", watts=2000.0))
    controller.cycle(120.0, site(price=0.11), rigs_off)
    assert controller.cycle(180.0, site(price=0.095), rigs_off) == []  # within the hysteresis
    assert len(controller.cycle(240.0, site(price=0.089), rigs_off)) == 2


def test_keep_off_pins_and_scheduled_windows():
    monday_4pm = dt.datetime(2026, 12, 7, 16, 0)
    sunday_4pm = dt.datetime(2026, 12, 6, 16, 0)
    peak = Window(dt.time(15), dt.time(18), frozenset(range(5)), above_joules_per_terahash=25.0)
    controller = act(keep_off=("rack9-*",), windows=(peak,), ramp_kw_per_minute=1000.0)
    rigs = by_name(*(rig(n, watts=w, th=th, price=0.03) for n, w, th in
                     (("rack9-1", 2000.0, 100.0), ("lean", 2000.0, 100.0), ("hungry", 2900.0, 110.0))))
    stops = controller.cycle(0.0, site(price=0.03, local=sunday_4pm), rigs)
    assert [(a.rig, a.reason) for a in stops] == [("rack9-1", "pinned")]
    stops = controller.cycle(60.0, site(price=0.03, local=monday_4pm), rigs)
    assert [(a.rig, a.reason) for a in stops] == [("hungry", "window")]  # 26.4 J/TH > 25


def test_a_window_past_midnight_is_active_after_midnight_on_the_next_day():
    night = Window(dt.time(22), dt.time(2), frozenset({0}), shed_kw=1.0)  # Monday 22:00 to Tuesday 02:00
    assert night.active(dt.datetime(2026, 12, 7, 23, 0)) and night.active(dt.datetime(2026, 12, 8, 1, 59))
    assert not night.active(dt.datetime(2026, 12, 8, 2, 0)) and not night.active(dt.datetime(2026, 12, 8, 23, 0))
    assert not night.active(dt.datetime(2026, 12, 7, 1, 0))  # Sunday night is not in it


def test_a_rig_that_mines_again_while_held_off_is_counted_and_treated_as_running():
    controller = act(min_on_seconds=3600.0)  # not fought over: it stays on at least that long
    controller.cycle(0.0, site(), by_name(rig("a")))
    controller.cycle(60.0, site(), by_name(off("a")))
    assert controller.curtailed["a"].state == "off"
    controller.cycle(300.0, site(), by_name(rig("a", last_share=290.0)))  # someone switched it on
    assert "a" not in controller.curtailed and controller.came_back == 1
    assert controller.take_events()[-1].kind == "came_back"


def test_advise_mode_computes_and_records_the_advice_but_touches_nothing():
    controller = Controller(CurtailmentConfig(mode="advise"))
    assert controller.cycle(0.0, site(), by_name(rig("a"), rig("b", watts=2000.0))) == []
    assert controller.advice == {"a": "unprofitable"} and controller.curtailed == {}
    controller.cycle(60.0, site(price=0.01), by_name(rig("a", price=0.01), rig("b", watts=2000.0, price=0.01)))
    assert controller.advice == {}
    assert [(e.rig, e.kind) for e in controller.take_events()] == [("a", "advise"), ("a", "advise_ended")]
    off = Controller(CurtailmentConfig(mode="off"))
    assert off.cycle(0.0, site(), by_name(rig("a"))) == [] and off.take_events() == []


def test_a_restart_keeps_the_rigs_held_off_and_why():
    controller = act(min_off_seconds=600.0, ramp_kw_per_minute=1000.0)
    controller.demand = Demand(kw=1.0, until=10_000.0, requested_at=0.0)
    paying = rig("b", watts=2000.0, th=120.0)
    controller.cycle(0.0, site(), by_name(rig("a"), paying, rig("c")))  # a sheds the 1 kW; c loses money
    controller.cycle(60.0, site(), by_name(off("a"), paying, off("c")))
    state = controller.state()

    again = act(min_off_seconds=600.0, ramp_kw_per_minute=1000.0)
    again.restore(state)
    assert again.curtailed == controller.curtailed and again.demand == controller.demand
    assert {n: h.reason for n, h in again.curtailed.items()} == {"a": "demand", "c": "unprofitable"}
    assert {h.state for h in again.curtailed.values()} == {"off"}
    assert again.cycle(120.0, site(), by_name(off("a"), paying, off("c"))) == []  # still held


@pytest.mark.parametrize("mode", ["off", "advise"])
def test_only_act_mode_acts(mode):
    controller = Controller(CurtailmentConfig(mode=mode, min_on_seconds=0))
    assert controller.cycle(0.0, site(), by_name(rig("a"))) == [] and controller.curtailed == {}


# -- a lower power target before switching off ------------------------------------------------


RICH = 100.0  # $/PH/day: every rig here pays, so only the demand sheds it


def tuned(name, **options):
    """A rig whose firmware pyasic can set a power target on."""
    return dataclasses.replace(rig(name, **options), tunable=True)


def limited(name, watts, last_share, **options):
    """A tuned rig holding ``watts``, with a share at ``last_share``."""
    return tuned(name, watts=watts, last_share=last_share, **options)


def test_a_demand_is_met_by_lower_power_targets_before_any_rig_goes_off():
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.7)
    controller.demand = Demand(kw=1.5, until=600.0, requested_at=0.0)
    rigs = by_name(tuned("t0"), tuned("t1"), tuned("t2", th=120.0), rig("n0", watts=2000.0), rig("n1", watts=2000.0))
    actions = controller.cycle(0.0, site(hashprice=RICH), rigs)
    # each 3 kW rig held to 2.1 kW sheds 0.9: two of them, the least revenue per watt, meet 1.5
    assert [(a.rig, a.kind, a.reason, a.watts) for a in actions] == [
        ("t0", "limit", "demand", 2100), ("t1", "limit", "demand", 2100)]  # fmt: skip
    for action in actions:
        controller.limited_from(action.rig, 3300.0, 1.0)  # the firmware's own limit, read first
        controller.done(action, True, "set_power_limit: True", 1.0)
    assert {n: h.state for n, h in controller.curtailed.items()} == {"t0": "limiting", "t1": "limiting"}
    assert controller.shed_kw() == pytest.approx(1.8)  # counted while it takes, as a stop is
    # both hold their targets and their shares go on: verified, and nothing else is touched
    now_limited = {**rigs, "t0": limited("t0", 2080.0, 45.0), "t1": limited("t1", 2100.0, 50.0)}
    assert controller.cycle(60.0, site(hashprice=RICH), now_limited) == []
    assert {n: h.state for n, h in controller.curtailed.items()} == {"t0": "limited", "t1": "limited"}
    kinds = [(e.rig, e.kind) for e in controller.take_events() if e.rig == "t0"]
    assert kinds == [("t0", "limit"), ("t0", "limit_before"), ("t0", "acted"), ("t0", "verified")]


def test_a_limit_is_verified_only_at_its_target_with_shares_going_on_then_retried_and_failed():
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.7, verify_seconds=120.0, retries=1)
    controller.demand = Demand(kw=0.5, until=6000.0, requested_at=0.0)
    (limit,) = controller.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0")))
    controller.done(limit, True, "ok", 0.0)
    # at its target but no share past the ones in flight (a firmware restarting to apply it): not yet
    assert controller.cycle(60.0, site(hashprice=RICH), by_name(limited("t0", 2100.0, 20.0))) == []
    assert controller.curtailed["t0"].state == "limiting"
    # shares, but the draw stays above the target and its tolerance: retried with the same target
    (retry,) = controller.cycle(120.0, site(hashprice=RICH), by_name(limited("t0", 2300.0, 110.0)))
    assert (retry.kind, retry.attempt, retry.watts) == ("limit", 2, 2100)
    controller.done(retry, True, "ok", 120.0)
    assert controller.cycle(240.0, site(hashprice=RICH), by_name(limited("t0", 2300.0, 230.0))) == []
    held = controller.curtailed["t0"]
    assert held.state == "failed" and controller.shed_kw() == 0.0 and controller.held_off() == set()
    assert controller.take_events()[-1].detail == {"action": "limit", "attempts": 2, "mined": True, "watts": 2300.0}


def test_a_target_beyond_what_limits_shed_switches_rigs_off_a_limited_one_too():
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.7)
    controller.demand = Demand(kw=1.5, until=6000.0, requested_at=0.0)
    rigs = by_name(tuned("t0", th=80.0), tuned("t1", th=80.0), rig("n0", watts=2000.0), rig("n1", watts=2000.0))
    for action in controller.cycle(0.0, site(hashprice=RICH), rigs):
        controller.limited_from(action.rig, None, 0.0)  # the firmware would not say: the draw before
        controller.done(action, True, "ok", 0.0)
    now_limited = {**rigs, "t0": limited("t0", 2100.0, 40.0, th=60.0), "t1": limited("t1", 2100.0, 40.0, th=60.0)}
    controller.cycle(60.0, site(hashprice=RICH), now_limited)
    assert controller.shed_kw() == pytest.approx(1.8)
    # a larger request: 1.8 kW are shed, 2.2 more need two rigs off; the limited ones earn least
    controller.demand = Demand(kw=4.0, until=6000.0, requested_at=60.0)
    stops = controller.cycle(120.0, site(hashprice=RICH), now_limited)
    assert sorted((a.rig, a.kind) for a in stops) == [("t0", "stop"), ("t1", "stop")]
    held = controller.curtailed["t0"]
    # switched off, it sheds all it drew before its limit; the limit it had is kept for later
    assert (held.state, held.watts_before, held.target_watts, held.limit_before) == ("stopping", 3000.0, None, 3000.0)
    assert controller.shed_kw() == pytest.approx(6.0)
    gone = {**now_limited, "t0": off("t0"), "t1": off("t1")}
    controller.cycle(180.0, site(hashprice=RICH), gone)
    assert {h.state for h in controller.curtailed.values()} == {"off"}
    # released: switched on, then given back the limit it had before fleetd's
    controller.demand = None
    resumes = controller.cycle(240.0, site(hashprice=RICH), gone)
    assert sorted((a.rig, a.kind) for a in resumes) == [("t0", "resume"), ("t1", "resume")]
    back = {**rigs, "t0": tuned("t0", watts=2100.0, last_share=250.0), "t1": tuned("t1", watts=2100.0, last_share=250.0)}
    restores = controller.cycle(300.0, site(hashprice=RICH), back)
    assert sorted((a.rig, a.kind, a.watts) for a in restores) == [("t0", "restore", 3000), ("t1", "restore", 3000)]
    assert controller.curtailed["t0"].state == "restoring"
    controller.cycle(360.0, site(hashprice=RICH), {**rigs, "t0": tuned("t0", last_share=340.0), "t1": tuned("t1", last_share=340.0)})
    assert controller.curtailed == {} and controller.resumed_at == {"t0": 360.0, "t1": 360.0}


def test_on_release_a_limited_rig_gets_back_the_limit_it_had():
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.8, min_off_seconds=300.0)
    controller.demand = Demand(kw=0.5, until=200.0, requested_at=0.0)
    (limit,) = controller.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0")))
    assert limit.watts == 2400
    controller.limited_from("t0", 3300.0, 0.0)
    controller.limited_from("t0", 2400.0, 60.0)  # a retry's reading would be fleetd's own limit: the first is kept
    controller.done(limit, True, "ok", 0.0)
    controller.cycle(60.0, site(hashprice=RICH), by_name(limited("t0", 2400.0, 50.0)))
    assert controller.curtailed["t0"].state == "limited"
    assert controller.cycle(240.0, site(hashprice=RICH), by_name(limited("t0", 2400.0, 230.0))) == []  # its minimum time
    assert controller.demand is None and controller.shed_kw() == pytest.approx(0.6)
    (restore,) = controller.cycle(300.0, site(hashprice=RICH), by_name(limited("t0", 2400.0, 290.0)))
    assert (restore.kind, restore.reason, restore.watts) == ("restore", "demand", 3300)
    controller.done(restore, True, "ok", 300.0)
    # a share in flight is no proof: one past the grace is
    controller.cycle(320.0, site(hashprice=RICH), by_name(tuned("t0", last_share=315.0)))
    assert controller.curtailed["t0"].state == "restoring" and controller.shed_kw() == 0.0
    controller.cycle(360.0, site(hashprice=RICH), by_name(tuned("t0", last_share=345.0)))
    assert "t0" not in controller.curtailed
    assert [e.kind for e in controller.take_events()][-3:] == ["restore", "acted", "verified"]


def test_limits_keep_to_the_ramp_and_the_cap():
    rigs = by_name(*(tuned(f"t{i}") for i in range(6)))  # a limit of each sheds 0.9 kW
    controller = act(ramp_kw_per_minute=2.0, power_floor_fraction=0.7)  # 2 kW a minute: two limits
    controller.demand = Demand(kw=5.0, until=6000.0, requested_at=0.0)
    assert [a.kind for a in controller.cycle(0.0, site(hashprice=RICH), rigs)] == ["limit", "limit"]
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.7, max_rigs_per_cycle=3)
    controller.demand = Demand(kw=5.0, until=6000.0, requested_at=0.0)
    assert len(controller.cycle(0.0, site(hashprice=RICH), rigs)) == 3


def test_losses_prices_and_a_floor_of_zero_switch_tunable_rigs_off():
    controller = act(price_above_usd_per_kwh=0.10, power_floor_fraction=0.7, ramp_kw_per_minute=1000.0)
    stops = controller.cycle(0.0, site(price=0.11), by_name(tuned("t0", price=0.11), tuned("t1", watts=2000.0, price=0.11)))
    assert sorted((a.rig, a.kind, a.reason) for a in stops) == [("t0", "stop", "price"), ("t1", "stop", "price")]
    (stop,) = act(power_floor_fraction=0.7).cycle(0.0, site(), by_name(tuned("t0")))  # it loses money
    assert (stop.kind, stop.reason) == ("stop", "unprofitable")
    untuned = act(power_floor_fraction=0.0, ramp_kw_per_minute=1000.0)
    untuned.demand = Demand(kw=0.5, until=6000.0, requested_at=0.0)
    (stop,) = untuned.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0", watts=2000.0)))
    assert (stop.kind, stop.reason) == ("stop", "demand")


def test_advice_names_the_rigs_it_would_limit_and_a_restart_keeps_them():
    advisor = Controller(CurtailmentConfig(mode="advise", power_floor_fraction=0.7))
    advisor.demand = Demand(kw=0.5, until=6000.0, requested_at=0.0)
    assert advisor.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0", watts=2000.0))) == []
    assert advisor.limit_advice == {"t0": "demand"} and advisor.advice == {}
    assert [(e.kind, e.detail["action"]) for e in advisor.take_events()] == [("advise", "limit")]

    controller = act(power_floor_fraction=0.7)
    controller.demand = Demand(kw=0.5, until=6000.0, requested_at=0.0)
    (limit,) = controller.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0", watts=2000.0)))
    controller.limited_from("t0", 2200.0, 0.0)
    again = act(power_floor_fraction=0.7)
    again.restore(json.loads(json.dumps(controller.state())))
    held = again.curtailed["t0"]
    assert (held.state, held.target_watts, held.limit_before) == ("limiting", 1400.0, 2200.0)


def test_a_kw_window_limits_tunable_rigs_and_a_j_per_th_window_switches_them_off():
    monday_4pm = dt.datetime(2026, 12, 7, 16, 0)
    peak = Window(dt.time(15), dt.time(18), frozenset(range(5)), shed_kw=0.8)
    controller = act(windows=(peak,), ramp_kw_per_minute=1000.0, power_floor_fraction=0.7)
    rigs = by_name(tuned("t0"), rig("n0", watts=2000.0))
    (limit,) = controller.cycle(0.0, site(hashprice=RICH, local=monday_4pm), rigs)
    assert (limit.rig, limit.kind, limit.reason, limit.watts) == ("t0", "limit", "window", 2100)
    inefficient = Window(dt.time(15), dt.time(18), frozenset(range(5)), above_joules_per_terahash=25.0)
    controller = act(windows=(inefficient,), ramp_kw_per_minute=1000.0, power_floor_fraction=0.7)
    (stop,) = controller.cycle(0.0, site(hashprice=RICH, local=monday_4pm), rigs)  # 30 J/TH: it should be gone
    assert (stop.rig, stop.kind, stop.reason) == ("t0", "stop", "window")


def test_a_limit_someone_lifts_counts_as_came_back_and_the_rig_as_running():
    controller = act(ramp_kw_per_minute=1000.0, power_floor_fraction=0.7)
    controller.demand = Demand(kw=0.5, until=6000.0, requested_at=0.0)
    (limit,) = controller.cycle(0.0, site(hashprice=RICH), by_name(tuned("t0")))
    controller.done(limit, True, "ok", 0.0)
    controller.cycle(60.0, site(hashprice=RICH), by_name(limited("t0", 2100.0, 50.0)))
    # a firmware overshooting its target a little is still held; 2,600 W is past halfway back to 3,000
    controller.cycle(120.0, site(hashprice=RICH), by_name(limited("t0", 2400.0, 110.0)))
    assert controller.curtailed["t0"].state == "limited" and controller.came_back == 0
    controller.demand = None  # so that nothing limits it again at once
    controller.cycle(180.0, site(hashprice=RICH), by_name(limited("t0", 2600.0, 170.0)))
    assert "t0" not in controller.curtailed and controller.came_back == 1
    event = controller.take_events()[-1]
    assert (event.kind, event.detail) == ("came_back", {"watts": 2600.0, "target_watts": 2100.0})
