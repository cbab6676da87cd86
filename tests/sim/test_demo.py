"""`fleetd demo`: the whole site on loopback, as a newcomer first sees fleetd.

The demo runs on real time; the tests poll its API until what they check has happened
(every rig polled, shares accepted) within a deadline, then stop it, so they take as long
as the site needs, not a fixed sleep. The last table is compared with the state it was
printed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetd import app as fleetd_app
from fleetd.config import HostPort
from fleetd.sim import demo

DEADLINE_S = 30.0  # what the tests wait for takes a few seconds; this much means it is not coming
# Each rig's first poll is due within one interval of fleetd learning its IP; a rig is up while
# polled within two, so a poll that a loaded machine slows to a few seconds still keeps it up.
POLL_INTERVAL_S = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_port(monkeypatch) -> int:
    monkeypatch.setattr(fleetd_app, "RIG_UPKEEP_SECONDS", 0.1)  # a rig's IP reaches the poller at once
    return _free_port()


def _config(http_port: int):
    config = demo.demo_config(stratum=HostPort("127.0.0.1", 0), http=HostPort("127.0.0.1", http_port))
    rigs = dataclasses.replace(config.rigs, poll_interval_seconds=POLL_INTERVAL_S, poll_timeout_seconds=3.5)
    return dataclasses.replace(config, rigs=rigs)


async def _wait_for_rigs(http: aiohttp.ClientSession, base: str, ready) -> dict[str, dict]:
    """/api/v1/rigs by name, read until ``ready(rigs)`` holds or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    rigs: dict[str, dict] = {}
    while not ready(rigs) and loop.time() < deadline:
        await asyncio.sleep(0.1)
        with contextlib.suppress(aiohttp.ClientConnectionError):  # the listener is not up yet
            rigs = {rig["rig"]: rig for rig in (await _get(http, base + "/api/v1/rigs"))["rigs"]}
    return rigs


async def _get(http: aiohttp.ClientSession, url: str):
    async with http.get(url) as response:
        return await (response.json() if response.content_type == "application/json" else response.text())


def _recording_render(monkeypatch) -> list:
    """Every economics snapshot the demo's tables were printed from, in order."""
    snapshots = []
    render = demo.render

    def recording(rigs, source, elapsed, now=None, site=None, curtailment=None):
        snapshots.append(site)
        return render(rigs, source, elapsed, now, site, curtailment)

    monkeypatch.setattr(demo, "render", recording)
    return snapshots


async def test_demo_fleet_shows_in_metrics_api_and_table(http_port, monkeypatch):
    pytest.importorskip("pyasic")
    snapshots = _recording_render(monkeypatch)
    out, stop, base = io.StringIO(), asyncio.Event(), f"http://127.0.0.1:{http_port}"
    # rig 2's chips climb 20 °C a second (past the critical 95 °C within two); rig 3 submits junk
    faults = ("3:invalid=0.5", "2:overheat=1200")
    task = asyncio.create_task(demo.run(_config(http_port), rigs=5, faults=faults, out=out, every=1.0, stop=stop))

    def ready(rigs: dict[str, dict]) -> bool:
        if "running without them" in out.getvalue():
            pytest.skip("binding the rigs' ports 80 and 4028 needs root")
        return (
            len(rigs) == 5
            and all(r["reported_hashrate"] and r["economics"] and r["shares"]["accepted"] for r in rigs.values())
            and rigs["site.s21xp-03"]["shares"]["rejected"].get("low_difficulty", 0) > 0
            and rigs["site.s21-02"]["state"] == "hot"
            and all(r["up"] for r in rigs.values())
        )

    try:
        async with aiohttp.ClientSession() as http:
            rigs = await _wait_for_rigs(http, base, ready)
            text = await _get(http, base + "/metrics")
            summary = await _get(http, base + "/api/v1/summary")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, DEADLINE_S) == 0
    assert ready(rigs), rigs

    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    power = {labels["rig"]: labels["source"] for labels, _ in samples["fleetd_rig_power_watts"]}
    # the catalogue in turn: S19 XP, S21, S21 XP, M60S, Bitaxe — stock Antminers report no power
    assert power == {
        "site.s19xp-01": "nameplate", "site.s21-02": "nameplate", "site.s21xp-03": "nameplate",
        "site.m60s-04": "reported", "site.bitaxe-05": "reported",
    }  # fmt: skip
    reported = {labels["rig"]: value for labels, value in samples["fleetd_rig_reported_hashrate_hashes_per_second"]}
    assert reported["site.s21-02"] == pytest.approx(200e12, rel=0.01)
    assert {labels["rig"] for labels, _ in samples["fleetd_rig_temperature_celsius"]} == set(power)
    up = {labels["rig"]: value for labels, value in samples["fleetd_rig_up"]}
    assert up == dict.fromkeys(power, 1.0)
    rejects = [(labels["rig"], labels["reason"]) for labels, value in samples["fleetd_rig_shares_total"]
               if labels["result"] == "rejected" and value > 0]  # fmt: skip
    assert ("site.s21xp-03", "low_difficulty") in rejects  # the injected invalid submits
    assert summary["rigs"] == 5 and summary["rigs_up"] == 5 and summary["power_watts"] > 10_000
    assert summary["rigs_hot"] == 1
    margins = {labels["rig"] for labels, _ in samples["fleetd_rig_margin_usd_per_day"]}
    assert margins == set(power)
    [(_, hashprice)] = samples["fleetd_hashprice_usd_per_petahash_day"]
    assert hashprice == pytest.approx(1e15 * 86_400 / (1.4e14 * 2**32) * (3.125 + 0.025) * 77_000)  # about $35

    text_out = out.getvalue()
    assert "fleetd demo: 5 simulated rigs" in text_out
    # curtailment acts, but no rig's loss rests on 200 shares yet; the S19 XP's contract has its off-peak hour
    assert re.search(r"^  curtailment: act every 10 s; a loss counts on 200 shares; a rig stays off 120 s, on 300 s$",
                     text_out, re.M)  # fmt: skip
    assert re.search(r"^    \*\.s19xp-\*: \$0\.040/kWh from \d\d:\d\d, \$0\.090/kWh from \d\d:\d\d \(UTC\)$", text_out,
                     re.M)  # fmt: skip
    last_table = text_out.rsplit("\n[", 1)[1]
    assert max(len(line) for line in re.findall(r"^  (?:rig|site\.|fleet) .*$", last_table, re.M)) <= demo.SCREEN_WIDTH
    rows = dict(re.findall(r"^  (site\.\S+)\s+(up|hot|down|immature)\s+[\d,.]+ +±\d+%\s.*\s-?\$[\d.,]+\s+\$0\.\d{3}$",
                           last_table, re.M))  # fmt: skip
    # every rig with its pool-side rate's interval, margin/day and breakeven; a few seconds in, a
    # rig is immature unless vardiff's first steps brought it 200 shares already
    assert {name: state.replace("immature", "up") for name, state in rows.items()} == {
        **dict.fromkeys(power, "up"), "site.s21-02": "hot"}  # fmt: skip
    assert "immature: on under 200 shares, too few for a loss to switch it off" in " ".join(last_table.split())
    assert re.search(r"^  fleet\s+[\d,.]+\s+[\d,.]+\s+\d+\s+\d+\s+[\d,.]+ kW\s+[\d.]+\s+-?\$[\d.,]+\s+\$0\.\d{3}$",
                     last_table, re.M)  # fmt: skip
    assert re.search(r"breakeven power price \$0\.\d{3}/kWh", last_table)
    assert "  curtailment (act): every rig on; 0.0 kW shed" in last_table
    # the projection moves when a demo block is found: expect the one the table was printed from
    projection = snapshots[-1].projection
    assert f"next difficulty adjustment {projection.change_ratio * 100:+.2f} % in {projection.blocks_remaining} blocks" in last_table
    [(_, remaining)] = samples["fleetd_difficulty_adjustment_blocks_remaining"]
    [(_, height)] = samples["fleetd_network_height"]
    assert remaining - projection.blocks_remaining == snapshots[-1].network.height - height  # blocks found since the scrape


async def test_demo_without_root_runs_the_fleet_without_firmware_apis(http_port, monkeypatch):
    from fleetd.sim.firmware.rig import EmulatedRig

    async def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(EmulatedRig, "start", refuse)
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(demo.run(_config(http_port), rigs=2, faults=(), out=out, every=1.0, stop=stop))
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{http_port}"
            rigs = await _wait_for_rigs(http, base, lambda rigs: len(rigs) == 2 and all(
                r["shares"]["accepted"] for r in rigs.values()))  # fmt: skip
            summary = await _get(http, base + "/api/v1/summary")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, DEADLINE_S) == 0
    text = out.getvalue()
    assert "running without them" in text and summary["rigs_up"] == 2 and len(rigs) == 2
    assert "curtailment only advises" in text and "curtailment advises (nothing is touched)" in text
    last_table = text.rsplit("\n[", 1)[1]
    accepted = [int(n) for n in re.findall(r"^  site\.\S+\s+(?:up|immature)\s+[\d,.]+ +±\d+%\s+-\s+(\d+)", last_table, re.M)]
    assert len(accepted) == 2 and all(n > 0 for n in accepted)  # mining goes on; "up" means connected here


def test_demo_command_with_a_small_fleet_keeps_only_the_faults_it_can_place(capsys):
    from fleetd.cli import main

    assert main(["demo", "--rigs", "2", "--duration", "0.5", "--stratum", "127.0.0.1:0", "--http", "127.0.0.1:0"]) == 0
    out = capsys.readouterr().out
    assert "fleetd demo: 2 simulated rigs" in out and "faults: none" in out
    served = {resource.canonical for resource in fleetd_app.build_app(demo.demo_config()).router.resources()}
    assert served == {path for _, path in demo.ENDPOINTS}  # the banner lists every endpoint, and only those
    assert all(re.search(rf"^  {label} +http://127\.0\.0\.1:\d+{re.escape(path)}$", out, re.M) for label, path in demo.ENDPOINTS)


def test_table_marks_hot_and_down_rigs_sums_the_rigs_up_and_fits_the_screen():
    from types import SimpleNamespace

    from fleetd.rigs.reading import RigReading
    from fleetd.rigs.registry import RigRegistry

    rigs = RigRegistry(poll_interval=10.0)
    for n, chip in enumerate((70.0, 96.0, 60.0), 1):  # a cool rig, a hot one, and one that will be gone
        name, ip = f"site.s21xp-{n:02}", f"127.1.0.{n}"
        rigs.connected(name, ip, 0.0)
        rigs.share(name, 1.0, 1.0)  # a few GH: the rig hardly hashes yet, its J/TH is huge
        rigs.reading(RigReading(ip=ip, time=1.0, model="S21 XP", hashrate=270e12, temperatures={"chip0": chip}))
    rigs.disconnected("site.s21xp-03", 2.0)
    table = demo.render(rigs, SimpleNamespace(height=7, found_blocks=()), 3.0, now=3.0)
    rows = dict(re.findall(r"^  (site\.\S+)\s+(\S+)\s", table, re.M))
    assert rows == {"site.s21xp-01": "up", "site.s21xp-02": "hot", "site.s21xp-03": "down"}
    assert "rigs up 2 of 3, hot 1" in table
    # the fleet: two rigs up at 270 TH/s and 3,645 W each; all three rigs' shares
    assert re.search(r"^  fleet\s+0\.0\s+540\.0\s+3\s+0\s+7\.3 kW\s+>999\s", table, re.M)
    assert max(len(line) for line in table.splitlines()) <= demo.SCREEN_WIDTH


def test_a_loss_under_a_cent_prints_as_zero_without_a_sign():
    assert (demo._usd(-0.004), demo._usd(-0.006), demo._usd(0.0), demo._usd(-1234.5)) == ("$0.00", "-$0.01", "$0.00", "-$1,234.50")


def _service(rigs, mode: str, now: float, **config):
    """The daemon's curtailment service over ``rigs``, without economics (nothing to act with)."""
    from fake_clock import FakeClock
    from fleetd.curtailment.service import CurtailmentService
    from fleetd.curtailment.settings import CurtailmentConfig
    from fleetd.telemetry.economics import SiteEconomicsView

    clock = FakeClock(wall=now)
    return CurtailmentService(CurtailmentConfig(mode=mode, **config), rigs, SiteEconomicsView(None, rigs), None, clock=clock)


def _held_table(mode: str):
    """A table of four rigs up, with the curtailment service in ``mode``: one rig stopping, one
    off and one failed for act; in advise, the controller would switch one off."""
    from types import SimpleNamespace

    from fleetd.curtailment.controller import Curtailed, Demand
    from fleetd.rigs.reading import RigReading
    from fleetd.rigs.registry import RigRegistry

    rigs = RigRegistry(poll_interval=10.0)
    for n in range(1, 5):
        name, ip = f"site.s19xp-{n:02}", f"127.1.0.{n}"
        rigs.connected(name, ip, 0.0)
        rigs.reading(RigReading(ip=ip, time=1.0, model="S19 XP", hashrate=140e12 if n == 4 else 0.0,
                                temperatures={"chip0": 60.0}))  # fmt: skip
        for _ in range(10):  # more than min_shares: none is immature
            rigs.share(name, 14e12 / 2**32, 1.0)
    service = _service(rigs, mode, 2.0, min_shares=5.0)
    controller = service.controller
    if mode == "act":
        for n, state, reason in ((1, "stopping", "demand"), (2, "off", "unprofitable"), (3, "off", "unprofitable")):
            controller.curtailed[f"site.s19xp-{n:02}"] = Curtailed(reason, state, 0.0, 3010.0, 140e12, 0.0)
        controller.demand = Demand(kw=3.0, until=600.0, requested_at=0.0)
    else:
        controller.advice = {"site.s19xp-04": "unprofitable"}
    return demo.render(rigs, SimpleNamespace(height=7, found_blocks=()), 3.0, now=2.0, curtailment=service)


def test_the_state_column_says_where_fleetd_holds_each_rig_and_the_line_under_the_table_why():
    table = _held_table("act")
    states = dict(re.findall(r"^  (site\.\S+)\s+(\S+)\s", table, re.M))
    assert states == {
        "site.s19xp-01": "stopping", "site.s19xp-02": "off", "site.s19xp-03": "off", "site.s19xp-04": "up"}  # fmt: skip
    line = " ".join(part.strip() for part in table.split("  curtailment (act): ", 1)[1].splitlines())
    # three rigs of 3,010 W stopping or off
    assert line == ("stopping site.s19xp-01 (demand); off site.s19xp-02, site.s19xp-03 (unprofitable); 9.0 kW shed; "
                    "demand response: 3 kW asked for 598 s more")  # fmt: skip
    assert max(len(line) for line in table.splitlines()) <= demo.SCREEN_WIDTH


def test_in_advise_mode_the_state_column_marks_the_rigs_it_would_switch_off():
    table = _held_table("advise")
    assert re.search(r"^  site\.s19xp-04 up \(off\) ", table, re.M)
    assert re.search(r"^  site\.s19xp-01 up\s", table, re.M)
    assert "  curtailment advises (nothing is touched): switch off site.s19xp-04 (unprofitable)" in table


def test_each_pool_side_rate_carries_its_95_interval_and_a_rig_on_too_few_shares_says_it_is_immature():
    from types import SimpleNamespace

    from fleetd.curtailment.controller import Curtailed
    from fleetd.rigs.reading import RigReading
    from fleetd.rigs.registry import RigRegistry

    rigs = RigRegistry(poll_interval=10.0)
    # 200 TH/s rigs at a share a second: five minutes of shares, one minute, none yet; an S19 XP held off
    mining = {"site.s21-01": 300, "site.s21-02": 60, "site.s21-03": 0, "site.s19xp-04": 300}
    for n, name in enumerate(mining, 1):
        ip = f"127.1.0.{n}"
        rigs.connected(name, ip, 0.0)
        rigs.reading(RigReading(ip=ip, time=299.0, model="S21", hashrate=200e12, temperatures={"chip0": 60.0}))
    for second in range(1, 301):
        for name, shares in mining.items():
            if second > 300 - shares:
                rigs.share(name, 200e12 / 2**32, float(second))
    service = _service(rigs, "act", 300.0, min_shares=200.0)
    service.controller.curtailed["site.s19xp-04"] = Curtailed("unprofitable", "off", 300.0, 3010.0, 140e12, 300.0)
    table = demo.render(rigs, SimpleNamespace(height=7, found_blocks=()), 300.0, now=300.0, curtailment=service)
    rows = {name: (state, rate) for name, state, rate in re.findall(r"^  (site\.\S+)\s+(\S+)\s+(\S+(?: +±\d+%)?) ", table, re.M)}
    # about 1.96/sqrt(N): ±12 % on the 270 effective shares five minutes of shares make in the
    # five minutes' average, ±26 % on a minute's 60
    assert rows == {
        "site.s21-01": ("up", "200.3  ±12%"), "site.s21-02": ("immature", "200.3  ±26%"),
        "site.s21-03": ("immature", "0.0"), "site.s19xp-04": ("off", "200.3  ±12%"),
    }  # fmt: skip
    assert "immature: on under 200 shares, too few for a loss to switch it off" in " ".join(table.split())
    assert max(len(line) for line in table.splitlines()) <= demo.SCREEN_WIDTH
    assert [demo._spread(rigs.get(name).hashrate_estimate("5m", 300.0)) for name in mining] == ["±12%", "±26%", "", "±12%"]


def test_the_xps_contract_has_its_off_peak_price_ten_minutes_after_the_demo_starts():
    from fleetd.economics.settings import PowerPrices

    started = 1_700_000_030.0  # 22:13:50 UTC: the off-peak price starts at 22:24, for twenty minutes
    prices = PowerPrices(demo.demo_economics(started))
    xp, site = "site.s19xp-01", "site.s21-02"
    assert [prices.at(t)(xp) for t in (started, started + 609, started + 610, started + 1809, started + 1810)] == [
        0.09, 0.09, 0.04, 0.04, 0.09]  # fmt: skip
    assert prices.at(started + 610)(site) == prices.site(started) == 0.07
    assert demo.demo_config(started=started).economics == demo.demo_economics(started)


def test_rigs_fleetd_held_off_when_the_demo_stopped_start_asleep():
    from types import SimpleNamespace

    from fleetd.curtailment.controller import Curtailed
    from fleetd.rigs.models import CATALOGUE
    from fleetd.sim.firmware.state import RigState
    from fleetd.sim.fleet import FleetConfig

    fleet = demo.Fleet(FleetConfig("127.0.0.1", 3333, rigs=3, firmware=False))
    fleet.rigs = tuple(SimpleNamespace(state=RigState(model)) for model in CATALOGUE[:3])  # their state; not started
    held = {"site.s19xp-01": "off", "site.s21-02": "resuming", "site.s19xp-06": "off"}  # rig 6: not in this fleet
    curtailed = {name: Curtailed("unprofitable", state, 0.0, 1.0, 1.0, 0.0) for name, state in held.items()}
    controller = SimpleNamespace(curtailed=curtailed)
    demo.keep_held_rigs_off(fleet, SimpleNamespace(controller=controller))
    assert [rig.state.sleeping for rig in fleet.rigs] == [True, False, False]
