"""The whole curtailment loop over real sockets: a fleetd acting on a simulated fleet.

fleetd (its Stratum server, rig poller, economics, curtailment service, journal and HTTP
API) and two emulated stock Antminers (an S19 XP on a $0.20 contract, where it loses money,
and an S21 on the site's $0.05) mine over loopback; unmodified pyasic polls the rigs and
switches them through their firmware's CGI. Everything lives on one FakeClock: the rigs'
share schedules, the poller's schedule and deadlines, the controller's cycles and its
verification, the firmware's warm-up. The clock moves a second at a time, and only once the
real I/O in flight (pyasic's calls, replies to shares) has finished, so a call's deadline on
the fake clock never runs out while loopback is merely slow. The rig APIs listen on ports 80
and 4028: these tests skip without root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from fake_clock import FakeClock
from prometheus_client.parser import text_string_to_metric_families
from pyasic_support import pyasic_settings

from fleetd import app as fleetd_app
from fleetd.config import Config, HostPort, JournalConfig, RigsConfig
from fleetd.curtailment.controller import QUIET_SECONDS, SHARE_GRACE_SECONDS
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.economics.prices import TouSchedule
from fleetd.economics.settings import EconomicsConfig, PowerOverride
from fleetd.rigs.models import ANTMINER_S19_XP, ANTMINER_S21, WHATSMINER_M60S
from fleetd.rigs.poller import load_pyasic
from fleetd.sim.fleet import Fleet, FleetConfig, model_slug
from fleetd.sim.firmware.whatsminer import factory_limit
from fleetd.telemetry import api
from server_support import make_config, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))  # the simulated fleet's test helpers
from sim_support import rig_network, running_fleet  # noqa: E402

TEST_BOUND_S = 120.0  # real seconds a whole test may take; it needs a few
LOSER, PAYER = "site.s19xp-01", "site.s21-02"
USER, PASSWORD = "operator", "grid-call"  # basic auth guards the whole listener, and enables the controls
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
# Every share at one difficulty (vardiff pinned), a few hundred hashes; the fleet grinds
# 3e-12 of its nominal work, so the S19 XP sends about a share a second and fleetd credits
# each share 1/3e-12 times: the pool-side rates read as the rigs' nominal ones.
DIFFICULTY = 1e-7
HASH_SCALE = 3e-12
CURTAILMENT = CurtailmentConfig(
    mode="act", cycle_seconds=10.0, min_shares=40.0, min_off_seconds=60.0, min_on_seconds=600.0,
    verify_seconds=60.0, resume_verify_seconds=300.0, retries=1,
)  # fmt: skip
# BTC at $77,000: about $35/PH/day. The S19 XP (140 TH/s, 3,010 W) earns $4.85 a day and
# costs $14.45 at $0.20; the S21 (200 TH/s, 3,500 W) earns $6.90 and costs $4.20 at $0.05.
ECONOMICS = EconomicsConfig(
    power_schedule=TouSchedule.flat(0.05),
    overrides=(PowerOverride(("*.s19xp-*",), TouSchedule.flat(0.20)),),
    btc_price_usd=77_000.0,
)
PYASIC = {"factory_get_timeout": 10, "factory_get_retries": 1, "api_function_timeout": 10, "get_data_retries": 1}


@pytest.fixture(autouse=True)
def patient_pyasic():
    with pyasic_settings(PYASIC):
        yield


def site_config(tmp_path: Path) -> Config:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    config = make_config(min_difficulty=DIFFICULTY, start_difficulty=DIFFICULTY, max_difficulty=DIFFICULTY)
    return dataclasses.replace(
        config,
        http=dataclasses.replace(config.http, web_config_file=str(tmp_path / "web.yml")),
        rigs=RigsConfig(poll=True, poll_interval_seconds=10.0, poll_timeout_seconds=5.0),
        journal=JournalConfig(path=str(tmp_path / "journal.sqlite3")),
        economics=ECONOMICS,
        curtailment=CURTAILMENT,
    )


class Fleetd:
    """One running fleetd on the site's clock, with the pyasic calls its curtailment makes."""

    def __init__(self, app, runner) -> None:
        self.app, self.runner = app, runner
        self.base = "http://%s:%d" % runner.addresses[0][:2]
        self.service = app[fleetd_app.CURTAILMENT_KEY]
        self.registry = app[api.RIGS_KEY]
        control = self.service.control  # the rig poller's, through its cached miner objects
        self.poller = control.__self__
        self.calls: list[tuple[str, str, bool]] = []
        self.in_flight = 0

        async def counted(ip: str, call: str, *args) -> tuple[bool, str]:
            self.in_flight += 1
            try:
                ok, detail = await control(ip, call, *args)
            finally:
                self.in_flight -= 1
            self.calls.append((ip, call, *args, ok))
            return ok, detail

        read_limit = self.service.power_limit

        async def read(ip: str) -> float | None:
            self.in_flight += 1
            try:
                return await read_limit(ip)
            finally:
                self.in_flight -= 1

        self.service.control, self.service.power_limit = counted, read

    @classmethod
    async def start(cls, config: Config, clock: FakeClock) -> Fleetd:
        app = fleetd_app.build_app(config, clock=clock)
        runner = await fleetd_app.start_http(app)
        fleetd = cls(app, runner)
        fleetd.registry.credit_scale = 1.0 / HASH_SCALE
        await wait_until(lambda: fleetd.server.current_job is not None)  # the demo chain's first job
        return fleetd

    @property
    def server(self):
        return self.app[fleetd_app.STRATUM_KEY]

    @property
    def controller(self):
        return self.service.controller

    def busy(self) -> bool:
        return self.in_flight > 0 or any(status.polling for status in self.poller.statuses())

    async def get(self, path: str) -> tuple[int, object]:
        async with aiohttp.ClientSession(headers=AUTH) as http, http.get(self.base + path) as response:
            body = await (response.json() if response.content_type == "application/json" else response.text())
            return response.status, body

    async def send(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.request(method, self.base + path, json=body) as response:
                return response.status, await response.json()

    async def curtailed(self) -> dict[tuple[str, str, str], float]:
        """``fleetd_rig_curtailed`` on /metrics: (rig, reason, state) -> value."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (s.labels["rig"], s.labels["reason"], s.labels["state"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "fleetd_rig_curtailed"
        }  # fmt: skip

    async def stop(self) -> None:
        await self.runner.cleanup()


@dataclasses.dataclass
class Site:
    clock: FakeClock
    fleet: Fleet
    fleetd: Fleetd
    config: Config

    def rig(self, worker: str):
        return self.fleet.rig(worker)

    def pool_shares(self, worker: str) -> int:
        return self.fleetd.registry.get(worker).accepted

    def held(self, worker: str):
        return self.fleetd.controller.curtailed.get(worker)

    async def settled(self) -> None:
        """Until the real I/O in flight is done: pyasic's polls and control calls, and the
        replies to the rigs' shares."""
        await wait_until(lambda: not self.fleetd.busy() and not any(rig.busy for rig in self.fleet.rigs))

    async def step(self, seconds: float = 1.0) -> None:
        await self.clock.advance(seconds)
        await self.settled()

    async def until(self, predicate: Callable[[], object], within: float, check: Callable[[], None] = lambda: None):
        """Move the clock a second at a time until ``predicate()`` holds, calling ``check()``
        after each second; the fake seconds it took (an AssertionError past ``within``)."""
        started = self.clock.elapsed
        while not predicate():
            assert self.clock.elapsed - started < within, f"not within {within:g} s of the site's time"
            await self.step()
            check()
        return self.clock.elapsed - started


@contextlib.asynccontextmanager
async def running_site(
    tmp_path: Path, *, deaf_loser: bool = False, models=(ANTMINER_S19_XP, ANTMINER_S21), curtailment=CURTAILMENT,
) -> AsyncIterator[Site]:  # fmt: skip
    """fleetd and its two rigs, mining; every rig polled once, so fleetd knows its model."""
    clock = FakeClock()
    config = dataclasses.replace(site_config(tmp_path), curtailment=curtailment)
    first, second = (f"site.{model_slug(model)}-0{i}" for i, model in enumerate(models, 1))
    fleetd = await Fleetd.start(config, clock)
    site = None
    try:
        host, port = fleetd.server.address
        fleet_config = FleetConfig(
            host, port, rigs=2, models=models, network=rig_network(),
            hash_scale=HASH_SCALE, share_interval=None, seed=7,
        )  # fmt: skip
        async with running_fleet(fleet_config, clock=clock) as fleet:
            fleet.rig(first).state.deaf_to_stop = deaf_loser
            listen = dataclasses.replace(config.stratum, listen=HostPort(host, port))  # a restart takes the same port
            site = Site(clock, fleet, fleetd, dataclasses.replace(config, stratum=listen))
            polled = site.fleetd.registry.get
            await site.until(lambda: all(polled(r) and polled(r).reading for r in (first, second)), within=30)
            yield site
    finally:
        await (site.fleetd if site is not None else fleetd).stop()  # the one running now: a test may restart it


def losing_by_its_bound(site: Site, worker: str) -> tuple[bool, float]:
    """(its revenue at the upper bound of its rate is below its power cost, shares behind the rate)."""
    inputs, rigs = site.fleetd.service.inputs(site.clock.wall())
    rig = rigs[worker]
    revenue = rig.rate_upper / 1e15 * inputs.hashprice_usd_per_ph_day
    return revenue < rig.watts / 1000 * 24 * rig.usd_per_kwh, rig.shares


async def mature_and_stopped(site: Site) -> float:
    """The losing rig is left alone while its estimate is young, then stopped through pyasic;
    the site's time it took."""
    fleetd, loser = site.fleetd, site.rig(LOSER)
    immature_but_losing = []

    def left_alone_while_young() -> None:
        losing, shares = losing_by_its_bound(site, LOSER)
        if shares < CURTAILMENT.min_shares:
            assert site.held(LOSER) is None and LOSER not in fleetd.controller.advice, shares
            assert fleetd.calls == [] and not loser.state.sleeping
            immature_but_losing.append(losing)

    took = await site.until(lambda: site.held(LOSER) is not None, within=120, check=left_alone_while_young)
    # its loss was plain by the upper bound long before the estimate was mature: the confidence
    # gate held it back, not the bound
    assert immature_but_losing.count(True) >= 10
    [stop] = [e for e in site.fleetd.service.recent if e.kind == "stop"]
    assert (stop.rig, stop.reason) == (LOSER, "unprofitable") and stop.detail["shares"] >= CURTAILMENT.min_shares
    assert stop.detail["usd_per_kwh"] == 0.20
    assert fleetd.calls == [(loser.host, "stop_mining", True)]  # pyasic's call on the rig's own address
    # the firmware took it (unless deaf to it), and says so to pyasic
    asleep = not loser.state.deaf_to_stop
    miner = await load_pyasic().get_miner(loser.host)
    assert loser.state.sleeping is asleep and await miner.is_mining() is not asleep
    return took


async def test_a_losing_rig_is_stopped_once_mature_and_a_demand_request_sheds_and_releases_the_other(tmp_path):
    async with asyncio.timeout(TEST_BOUND_S), running_site(tmp_path) as site:
        fleetd, loser, payer = site.fleetd, site.rig(LOSER), site.rig(PAYER)
        await mature_and_stopped(site)
        stopped_at = site.held(LOSER).action_at

        # its shares stop (those in flight are forgiven); then it is verified off
        await site.step(SHARE_GRACE_SECONDS)
        shares, submitted = site.pool_shares(LOSER), loser.submitted
        await site.until(lambda: site.held(LOSER).state == "off", within=CURTAILMENT.cycle_seconds + QUIET_SECONDS)
        assert site.clock.wall() - stopped_at >= SHARE_GRACE_SECONDS + QUIET_SECONDS
        assert (site.pool_shares(LOSER), loser.submitted) == (shares, submitted)
        assert site.pool_shares(PAYER) > 0 and not payer.state.sleeping
        assert await fleetd.curtailed() == {(LOSER, "unprofitable", "off"): 1.0}
        status, state = await fleetd.get("/api/v1/curtailment")
        assert status == 200 and state["mode"] == "act"
        assert [(r["rig"], r["reason"], r["state"]) for r in state["rigs"]] == [(LOSER, "unprofitable", "off")]
        assert [e["kind"] for e in state["recent_events"]] == ["stop", "acted", "verified"]

        # a grid operator asks for 5 kW for a quarter of an hour: the S19 XP's 3 kW count, the S21 goes too
        status, taken = await fleetd.send("POST", "/api/v1/curtailment", {"kw": 5, "duration_seconds": 900})
        assert status == 201 and taken["acting"]
        await site.until(lambda: site.held(PAYER) is not None, within=CURTAILMENT.cycle_seconds)
        assert site.held(PAYER).reason == "demand" and payer.state.sleeping
        took = await site.until(lambda: site.held(PAYER).state == "off", within=CURTAILMENT.verify_seconds + 10)
        assert site.clock.wall() < taken["until"]
        assert took <= CURTAILMENT.cycle_seconds + SHARE_GRACE_SECONDS + QUIET_SECONDS
        assert fleetd.controller.shed_kw() >= 5.0 and fleetd.controller.target_kw == 5.0
        assert await fleetd.curtailed() == {(LOSER, "unprofitable", "off"): 1.0, (PAYER, "demand", "off"): 1.0}

        # released: the S21 is switched on again, mines after its warm-up, and is verified on
        status, released = await fleetd.send("DELETE", "/api/v1/curtailment")
        assert (status, released) == (200, {"released": True})
        resuming = lambda: site.held(PAYER) is not None and site.held(PAYER).state == "resuming"  # noqa: E731
        await site.until(resuming, within=CURTAILMENT.cycle_seconds)
        assert not payer.state.sleeping and payer.state.mode() == "waking"
        resumed_at, shares = site.clock.monotonic(), site.pool_shares(PAYER)
        await site.until(lambda: site.pool_shares(PAYER) > shares, within=CURTAILMENT.resume_verify_seconds)
        assert site.clock.monotonic() - resumed_at >= payer.state.warmup()  # nothing before its boards were warm
        await site.until(lambda: site.held(PAYER) is None, within=CURTAILMENT.cycle_seconds)
        assert fleetd.calls == [(loser.host, "stop_mining", True), (payer.host, "stop_mining", True),
                                (payer.host, "resume_mining", True)]  # fmt: skip
        assert await fleetd.curtailed() == {(LOSER, "unprofitable", "off"): 1.0}  # the loser stays off
        assert loser.state.sleeping


async def test_a_rig_that_ignores_the_stop_is_retried_then_failed_and_alerted_on(tmp_path):
    async with asyncio.timeout(TEST_BOUND_S), running_site(tmp_path, deaf_loser=True) as site:
        fleetd, loser = site.fleetd, site.rig(LOSER)
        await mature_and_stopped(site)
        assert not loser.state.sleeping  # the firmware said yes, and hashes on
        shares = site.pool_shares(LOSER)
        await site.until(lambda: site.held(LOSER).state == "failed", within=2 * CURTAILMENT.verify_seconds + 20)
        assert site.pool_shares(LOSER) > shares  # it never stopped
        assert fleetd.calls == [(loser.host, "stop_mining", True)] * 2  # the first try, and the one retry
        kinds = [e.kind for e in fleetd.service.recent]
        assert kinds == ["stop", "acted", "retry", "acted", "failed"]
        assert fleetd.service.recent[-1].detail["mined"] is True
        # what FleetdCurtailmentActionFailed keys on
        assert await fleetd.curtailed() == {(LOSER, "unprofitable", "failed"): 1.0}
        await site.step(3 * CURTAILMENT.cycle_seconds)
        assert len(fleetd.calls) == 2  # left alone until released


async def test_a_restart_while_a_rig_is_held_off_knows_it_is_off_and_why(tmp_path):
    async with asyncio.timeout(TEST_BOUND_S), running_site(tmp_path) as site:
        loser, payer = site.rig(LOSER), site.rig(PAYER)
        await mature_and_stopped(site)
        await site.until(lambda: site.held(LOSER).state == "off", within=CURTAILMENT.cycle_seconds + 70)
        since = site.held(LOSER).since

        await site.fleetd.stop()  # the rigs lose the pool; the S19 XP sleeps on
        site.fleetd = await Fleetd.start(site.config, site.clock)  # the same journal, the same Stratum port
        held = site.held(LOSER)
        assert (held.reason, held.state, held.since) == ("unprofitable", "off", since)
        status, state = await site.fleetd.get("/api/v1/curtailment")
        assert [(r["rig"], r["reason"], r["state"]) for r in state["rigs"]] == [(LOSER, "unprofitable", "off")]
        assert await site.fleetd.curtailed() == {(LOSER, "unprofitable", "off"): 1.0}

        # the rigs dial the new fleetd; the S21 mines, the S19 XP stays asleep and held off
        shares = site.pool_shares(PAYER)
        await site.until(lambda: site.pool_shares(PAYER) > shares + 20, within=60)
        await site.step(3 * CURTAILMENT.cycle_seconds)
        assert site.fleetd.registry.get(LOSER).connections == 1 and loser.state.sleeping
        held = site.held(LOSER)
        assert (held.reason, held.state) == ("unprofitable", "off") and site.fleetd.controller.came_back == 0
        assert site.fleetd.calls == [] and not payer.state.sleeping


TUNABLE = "site.m60s-01"  # a Whatsminer: pyasic sets its power limit over the btminer API


async def test_a_demand_request_is_met_by_a_power_limit_kept_across_a_restart_and_released_to_the_limit_before(tmp_path):
    """An M60S (186 TH/s, 3,441 W) and an S21 on the site's $0.05, both paying. A request for
    1 kW is met by holding the Whatsminer to 70 % of its draw, which sheds about 1 kW: nothing is
    switched off. The firmware restarts mining to apply a limit (its 90 s warm-up), so the
    verification allows three minutes. fleetd restarts while the rig is limited, and the
    release after it still gives back the limit the rig had."""
    curtailment = dataclasses.replace(CURTAILMENT, verify_seconds=180.0, power_floor_fraction=0.7)
    async with asyncio.timeout(TEST_BOUND_S), running_site(
        tmp_path, models=(WHATSMINER_M60S, ANTMINER_S21), curtailment=curtailment
    ) as site:  # fmt: skip
        fleetd, tunable, payer = site.fleetd, site.rig(TUNABLE), site.rig(PAYER)
        assert fleetd.poller.tunable(tunable.host) and not fleetd.poller.tunable(payer.host)
        draw = fleetd.registry.get(TUNABLE).reading.watts
        assert draw == pytest.approx(WHATSMINER_M60S.nominal_watts, abs=1)
        status, taken = await fleetd.send("POST", "/api/v1/curtailment", {"kw": 1, "duration_seconds": 900})
        assert status == 201
        await site.until(lambda: site.held(TUNABLE) is not None, within=curtailment.cycle_seconds)
        held, target = site.held(TUNABLE), int(draw * 0.7)
        assert (held.reason, held.state, held.target_watts) == ("demand", "limiting", target)
        assert held.limit_before == factory_limit(tunable.state)  # what the firmware held before: its own
        assert tunable.state.power_limit_w == target and not tunable.state.sleeping
        assert fleetd.calls == [(tunable.host, "set_power_limit", target, True)]
        assert fleetd.controller.shed_kw() == pytest.approx((draw - target) / 1000) and fleetd.controller.shed_kw() >= 1

        # its reported draw falls to the target and its shares go on: verified, within the deadline
        shares = site.pool_shares(TUNABLE)
        took = await site.until(lambda: site.held(TUNABLE).state == "limited", within=curtailment.verify_seconds)
        assert site.pool_shares(TUNABLE) > shares and site.clock.wall() < taken["until"]
        assert fleetd.registry.get(TUNABLE).reading.watts <= target * 1.05
        assert took >= tunable.state.warmup()  # no share came while the firmware restarted
        assert site.held(PAYER) is None and not payer.state.sleeping and fleetd.controller.advice == {}
        assert await fleetd.curtailed() == {(TUNABLE, "demand", "limited"): 1.0}
        status, state = await fleetd.get("/api/v1/curtailment")
        [listed] = state["rigs"]
        assert (listed["rig"], listed["state"], listed["target_watts"]) == (TUNABLE, "limited", target)
        assert [e["kind"] for e in state["recent_events"]] == ["demand", "limit", "limit_before", "acted", "verified"]
        assert (state["advice"], state["limit_advice"]) == ({}, {TUNABLE: "demand"})
        # it hashes at the lower rate its limit allows, about 74 % of its 186 TH/s, as it reports
        reported = fleetd.registry.get(TUNABLE).reading.hashrate
        assert reported == pytest.approx(WHATSMINER_M60S.nominal_hashrate * 0.7**0.85, rel=0.01)

        # a restart: fleetd still knows the rig is limited, to what, and the limit to give back
        await fleetd.stop()
        site.fleetd = fleetd = await Fleetd.start(site.config, site.clock)
        held = site.held(TUNABLE)
        assert (held.reason, held.state, held.target_watts, held.limit_before) == (
            "demand", "limited", target, factory_limit(tunable.state))  # fmt: skip
        assert fleetd.controller.demand.kw == 1 and await fleetd.curtailed() == {(TUNABLE, "demand", "limited"): 1.0}
        shares = site.pool_shares(TUNABLE)
        await site.until(lambda: site.pool_shares(TUNABLE) > shares + 10, within=60)  # the rigs dial the new fleetd
        assert fleetd.calls == [] and site.held(TUNABLE).state == "limited"

        # released: the limit it had comes back, and once it mines again fleetd lets go of it
        status, released = await fleetd.send("DELETE", "/api/v1/curtailment")
        assert (status, released) == (200, {"released": True})
        await site.until(lambda: site.held(TUNABLE).state == "restoring", within=curtailment.cycle_seconds)
        assert fleetd.calls == [(tunable.host, "set_power_limit", factory_limit(tunable.state), True)]
        assert tunable.state.power_limit_w == factory_limit(tunable.state)
        await site.until(lambda: site.held(TUNABLE) is None, within=curtailment.resume_verify_seconds)
        await site.step(2 * curtailment.cycle_seconds)
        assert fleetd.registry.get(TUNABLE).reading.watts == pytest.approx(draw, abs=1)  # its full draw again
        assert len(fleetd.calls) == 1 and await fleetd.curtailed() == {}
        samples = {
            (s.labels["kind"], s.labels["result"]): s.value
            for family in text_string_to_metric_families((await fleetd.get("/metrics"))[1])
            for s in family.samples if s.name == "fleetd_curtailment_actions_total"
        }  # fmt: skip
        assert samples == {("restore", "ok"): 1.0}
        kinds = [(e.kind, e.detail.get("action")) for e in fleetd.service.recent]
        assert kinds == [("released", None), ("restore", None), ("acted", "restore"), ("verified", "restore")]
