"""The curtailment service in the daemon's terms: the registry's rigs, the site's prices, the
journal's audit trail and state, and the control calls it makes (recorded here)."""

from __future__ import annotations

import json

from fake_clock import FakeClock
from fleetd.chain.network import NetworkState
from fleetd.config import JournalConfig, parse
from fleetd.curtailment.service import CurtailmentService
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.journal import history
from fleetd.journal.writer import Journal
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry.economics import SiteEconomicsView

# Network difficulty 1.4e14 and 3.15 BTC a block at $90,000: about $42 per PH/s a day.
ECONOMICS = """
[economics]
btc_price_usd = 90000
fees_btc_per_block = 0.025
power_price_usd_per_kwh = 0.05
[[economics.power_override]]
rigs = ["expensive.*"]
usd_per_kwh = 0.12
"""


class _Node:
    def network_state(self):
        return NetworkState(1.4e14, 900_000, 0.025)


class _Rigs:
    """What the rigs' management APIs were asked, and what they answer."""

    def __init__(self):
        self.calls, self.answer = [], (True, "ok")

    async def control(self, ip, call, *args):
        self.calls.append((ip, call, *args))
        return self.answer


def _site(clock, rigs):
    """Two 100 TH/s S19-class rigs at 3,000 W: one on the 0.05 $/kWh contract (it earns $4.20
    against $3.60), one on the 0.12 one ($8.64: it loses money). Sixty shares a minute each."""
    for name, ip in (("cheap.rig1", "10.0.0.1"), ("expensive.rig1", "10.0.0.2")):
        rigs.connected(name, ip, clock.wall())
        rigs.reading(RigReading(ip=ip, time=clock.wall(), model="S19", firmware="stock", hashrate=100e12,
                                watts=3000.0, temperatures={}, fans={}))  # fmt: skip


def _mine(clock, rigs, seconds, names=("cheap.rig1", "expensive.rig1")):
    difficulty = 100e12 / 2**32  # one share a second of a 100 TH/s rig
    for _ in range(int(seconds)):
        clock.tick(1.0)
        for name in names:
            rigs.share(name, difficulty, clock.wall())


async def test_the_losing_rig_is_switched_off_once_its_estimate_is_mature_and_the_trail_is_kept(tmp_path):
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    journal = Journal(JournalConfig(path=str(tmp_path / "j.sqlite3")), rigs, clock=clock, economics=view)
    await journal.open()
    config = CurtailmentConfig(mode="act", min_shares=200.0, hysteresis=0.1)
    service = CurtailmentService(config, rigs, view, fleet.control, journal=journal, clock=clock)
    _site(clock, rigs)
    _mine(clock, rigs, 60)
    await service.cycle()  # a minute of shares: about 60 behind each rate, immature
    assert fleet.calls == [] and service.controller.advice == {}
    _mine(clock, rigs, 600)
    await service.cycle()
    assert fleet.calls == [("10.0.0.2", "stop_mining")]
    assert service.controller.curtailed["expensive.rig1"].reason == "unprofitable"
    assert service.actions == {("stop", "ok"): 1}
    # it stopped: no more shares, and its poll reads idle watts
    rigs.reading(RigReading(ip="10.0.0.2", time=clock.wall(), model="S19", firmware="stock", hashrate=0.0,
                            watts=60.0, temperatures={}, fans={}))  # fmt: skip
    _mine(clock, rigs, 60, names=("cheap.rig1",))
    await service.cycle()
    assert service.controller.curtailed["expensive.rig1"].state == "off"
    assert await journal.flush()
    events = history.events(journal.store.path, 0, clock.wall() + 1)["events"]
    assert [(e["rig"], e["kind"]) for e in events] == [
        ("expensive.rig1", "stop"), ("expensive.rig1", "acted"), ("expensive.rig1", "verified")]  # fmt: skip
    stop = events[0]["detail"]
    assert stop["shares"] >= 200 and stop["rate_upper"] < 110e12 and stop["usd_per_kwh"] == 0.12
    await journal.close()

    # a restart: the rig is still known to be held off, and why
    again = RigRegistry(poll_interval=30.0)
    view = SiteEconomicsView(parse(ECONOMICS).economics, again, _Node())
    journal = Journal(JournalConfig(path=str(tmp_path / "j.sqlite3")), again, clock=clock, economics=view)
    await journal.open()
    restarted = CurtailmentService(config, again, view, fleet.control, journal=journal, clock=clock)
    restarted.restore()
    held = restarted.controller.curtailed["expensive.rig1"]
    assert (held.reason, held.state) == ("unprofitable", "off")
    assert json.loads(journal.kept("curtailment"))["curtailed"]["expensive.rig1"]["state"] == "off"
    await journal.close()


async def test_a_refused_call_is_counted_and_retried(tmp_path):
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    config = CurtailmentConfig(mode="act", min_shares=200.0, retries=1)
    service = CurtailmentService(config, rigs, view, fleet.control, clock=clock)
    _site(clock, rigs)
    _mine(clock, rigs, 660)
    fleet.answer = (False, "BMMinerS19XP.stop_mining: False")
    await service.cycle()
    await service.cycle()
    assert fleet.calls == [("10.0.0.2", "stop_mining")] * 2
    assert service.actions == {("stop", "failed"): 2}
    await service.cycle()
    assert service.controller.curtailed["expensive.rig1"].state == "failed"
    assert [e.kind for e in service.recent][-1] == "failed"


async def test_advise_mode_calls_nothing_and_says_what_it_would_do():
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    service = CurtailmentService(CurtailmentConfig(min_shares=200.0), rigs, view, fleet.control, clock=clock)
    _site(clock, rigs)
    _mine(clock, rigs, 660)
    await service.cycle()
    assert fleet.calls == [] and service.controller.advice == {"expensive.rig1": "unprofitable"}


def test_the_rigs_held_off_carry_curtailed_true_on_every_series_and_a_failed_one_does_not():
    from prometheus_client.parser import text_string_to_metric_families

    from fleetd.curtailment.controller import Curtailed
    from fleetd.telemetry.exposition import render

    clock, rigs = FakeClock(), RigRegistry(poll_interval=30.0)
    _site(clock, rigs)
    rigs.connected("failed.rig1", "10.0.0.3", clock.wall())
    _mine(clock, rigs, 10, names=("cheap.rig1", "expensive.rig1", "failed.rig1"))
    service = CurtailmentService(CurtailmentConfig(mode="act"), rigs, None, _Rigs().control, clock=clock)
    service.controller.curtailed = {
        "expensive.rig1": Curtailed("unprofitable", "off", 0.0, 3000.0, 1e14, 0.0),
        "failed.rig1": Curtailed("unprofitable", "failed", 0.0, 3000.0, 1e14, 0.0),
    }
    text = render(rigs, clock.wall(), curtailed=service.controller.held_off())
    labelled = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labelled.setdefault(sample.labels["rig"], set()).add(sample.labels.get("curtailed"))
    assert labelled == {"cheap.rig1": {None}, "expensive.rig1": {"true"}, "failed.rig1": {None}}


async def test_a_rig_back_from_a_gap_is_judged_on_its_shares_since_not_on_a_window_the_gap_pulled_down():
    """Ten minutes of mining, fifty gone from Stratum, then back: the hour's average reads a
    third of the rig's rate on plenty of shares. The paying rig must not look like a loser."""
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    service = CurtailmentService(CurtailmentConfig(mode="act", min_shares=200.0), rigs, view, fleet.control, clock=clock)
    _site(clock, rigs)
    _mine(clock, rigs, 600, names=("cheap.rig1",))
    rigs.disconnected("cheap.rig1", clock.wall())
    clock.tick(3000.0)
    rigs.connected("cheap.rig1", "10.0.0.1", clock.wall())
    rigs.reading(RigReading(ip="10.0.0.1", time=clock.wall(), model="S19", firmware="stock", hashrate=100e12,
                            watts=3000.0, temperatures={}, fans={}))  # fmt: skip
    await service.cycle()  # the first cycle of its new stretch: counted from here
    _mine(clock, rigs, 600, names=("cheap.rig1",))
    window = rigs.get("cheap.rig1").hashrate_estimate("1h", clock.wall())
    assert window.upper < 60e12 and window.shares > 200  # a confident loser, by the window: $2.52 against $3.60
    await service.cycle()
    _, inputs = service.inputs(clock.wall())
    rig = inputs["cheap.rig1"]
    assert rig.rate_lower < 100e12 < rig.rate_upper and 550 <= rig.shares <= 601
    assert fleet.calls == [] and service.controller.advice == {}


async def test_a_rig_switched_back_on_is_judged_on_its_shares_since_and_does_not_flap():
    """The expensive contract drops to $0.03 at 23:00 (the fake clock starts at 22:13 UTC): the
    rig held off comes back, and stays on although the hour's average, which remembers the 35
    minutes it was off, puts it at a third of its rate."""
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    economics = ECONOMICS.replace('usd_per_kwh = 0.12', '''schedule = [{ start = "00:00", usd_per_kwh = 0.12 },
            { start = "23:00", usd_per_kwh = 0.03 }]''')
    view = SiteEconomicsView(parse(economics).economics, rigs, _Node())
    config = CurtailmentConfig(mode="act", min_shares=200.0, min_off_seconds=0.0, min_on_seconds=300.0)
    service = CurtailmentService(config, rigs, view, fleet.control, clock=clock)
    _site(clock, rigs)
    _mine(clock, rigs, 660)
    await service.cycle()
    rigs.reading(RigReading(ip="10.0.0.2", time=clock.wall(), model="S19", firmware="stock", hashrate=0.0,
                            watts=60.0, temperatures={}, fans={}))  # fmt: skip
    _mine(clock, rigs, 60, names=("cheap.rig1",))
    await service.cycle()
    assert service.controller.curtailed["expensive.rig1"].state == "off"
    _mine(clock, rigs, 2800 - 720, names=("cheap.rig1",))  # 23:00: $0.03, it would earn $4.20 against $2.16
    await service.cycle()
    assert fleet.calls == [("10.0.0.2", "stop_mining"), ("10.0.0.2", "resume_mining")]
    _mine(clock, rigs, 60)
    rigs.reading(RigReading(ip="10.0.0.2", time=clock.wall(), model="S19", firmware="stock", hashrate=100e12,
                            watts=3000.0, temperatures={}, fans={}))  # fmt: skip
    await service.cycle()  # its shares are back: verified on
    assert "expensive.rig1" not in service.controller.curtailed
    for _ in range(10):  # past its minimum time on
        _mine(clock, rigs, 60)
        await service.cycle()
    window = rigs.get("expensive.rig1").hashrate_estimate("1h", clock.wall())
    assert window.upper < 45e12 and window.shares > 200  # by the window, a confident loser: $1.89 against $2.16
    assert len(fleet.calls) == 2 and service.controller.advice == {}


async def test_a_demand_is_met_by_a_power_limit_read_first_and_given_back_on_release():
    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    config = CurtailmentConfig(mode="act", min_shares=200.0, min_off_seconds=0.0, verify_seconds=120.0)
    service = CurtailmentService(config, rigs, view, fleet.control, clock=clock)

    async def power_limit(ip):
        fleet.calls.append((ip, "get_wattage_limit"))
        return 3300.0

    service.tunable, service.power_limit = (lambda ip: ip == "10.0.0.1"), power_limit
    _site(clock, rigs)
    _mine(clock, rigs, 60, names=("cheap.rig1",))
    service.request(0.5, 3600.0)
    await service.cycle()
    # read before fleetd's own limit replaces it, then held to 70 % of its 3,000 W
    assert fleet.calls == [("10.0.0.1", "get_wattage_limit"), ("10.0.0.1", "set_power_limit", 2100)]
    held = service.controller.curtailed["cheap.rig1"]
    assert (held.state, held.target_watts, held.limit_before) == ("limiting", 2100.0, 3300.0)
    assert service.actions == {("limit", "ok"): 1}
    _mine(clock, rigs, 60, names=("cheap.rig1",))
    rigs.reading(RigReading(ip="10.0.0.1", time=clock.wall(), model="M60S", firmware="stock", hashrate=76e12,
                            watts=2095.0, temperatures={}, fans={}))  # fmt: skip
    await service.cycle()
    assert held.state == "limited" and service.controller.shed_kw() == 0.9
    service.release_demand()
    await service.cycle()
    assert fleet.calls[-1] == ("10.0.0.1", "set_power_limit", 3300) and held.state == "restoring"
    assert service.actions == {("limit", "ok"): 1, ("restore", "ok"): 1}


async def test_advise_mode_exports_the_rigs_it_would_hold_to_a_lower_power():
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from fleetd.curtailment.metrics import CurtailmentCollector

    clock, rigs, fleet = FakeClock(), RigRegistry(poll_interval=30.0), _Rigs()
    view = SiteEconomicsView(parse(ECONOMICS).economics, rigs, _Node())
    service = CurtailmentService(CurtailmentConfig(min_shares=200.0), rigs, view, fleet.control, clock=clock)
    service.tunable = lambda ip: ip == "10.0.0.1"
    _site(clock, rigs)
    _mine(clock, rigs, 60, names=("cheap.rig1",))
    service.request(0.5, 3600.0)
    await service.cycle()
    assert fleet.calls == [] and service.controller.limit_advice == {"cheap.rig1": "demand"}
    registry = CollectorRegistry()
    registry.register(CurtailmentCollector(service))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode()) for s in family.samples
    }  # fmt: skip
    assert samples[("fleetd_rig_curtailment_limit_advised", (("reason", "demand"), ("rig", "cheap.rig1")))] == 1.0
    assert not any(name == "fleetd_rig_curtailment_advised" for name, _ in samples)
