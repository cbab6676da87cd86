"""Economics in a running fleetd: /api/v1/economics, per-rig fields, /metrics and a stale price feed.

Rigs mine real shares over loopback Stratum; their watts are nameplate estimates from the
inventory (so each rig's J/TH is its nameplate's whatever luck does to its hash rate), and
every expected figure is computed here by hand from the issue's formulas.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest
from aiohttp import web

from fake_clock import FakeClock
from fleetd.config import parse
from fleetd.telemetry.api import ECONOMICS_KEY
from server_support import RawClient, grind, http_json, make_config, scrape, start_fleetd, wait_until

DIFFICULTY = 1.4e14  # the demo chain's mainnet-sized network
SUBSIDY_BTC = 3.125  # at its height 975,000
FEES_BTC = 0.025
BTC_USD = 77_000.0
USD_PER_KWH = 0.06
HASHPRICE_USD = 1e15 * 86_400 / (DIFFICULTY * 2**32) * (SUBSIDY_BTC + FEES_BTC) * BTC_USD  # ≈ $34.85
# (name, nominal TH/s, nominal W): 17.5 J/TH earns its power at $0.06/kWh, 30 J/TH does not
RIGS = (("acct.good", 200, 3500), ("acct.bad", 100, 3000))
ECONOMICS = f"""
[economics]
btc_price_usd = {BTC_USD}
power_price_usd_per_kwh = {USD_PER_KWH}
fees_btc_per_block = {FEES_BTC}
ai_hosting_usd_per_mw_day = 2500
"""


def _config(tmp_path, economics: str):
    inventory = tmp_path / "rigs.csv"
    inventory.write_text(
        "ip,name,model,nominal_ths,nominal_watts\n"
        + "".join(f"127.1.9.{n},{name},Test Rig,{ths},{watts}\n" for n, (name, ths, watts) in enumerate(RIGS, 1))
    )
    config = make_config()
    return dataclasses.replace(
        config,
        rigs=dataclasses.replace(config.rigs, inventory=str(inventory)),
        economics=parse(economics).economics if economics else None,
    )


async def _mine(running, shares: int = 3) -> list[RawClient]:
    running.server.rigs.credit_scale = 1e13  # tiny test shares stand for an ASIC's work, as in the demo
    clients = []
    for name, _, _ in RIGS:
        client = await RawClient.connect(running.stratum)
        await client.login(name)
        for n in range(shares):
            reply = await client.request("mining.submit", grind(client, extranonce2=n.to_bytes(8, "big")))
            assert reply["result"] is True
        clients.append(client)
    return clients


async def test_economics_report_per_rig_fields_and_metrics(tmp_path):
    running = await start_fleetd(_config(tmp_path, ECONOMICS))
    clients = await _mine(running)
    try:
        status, report = await http_json(running.http, "/api/v1/economics")
        assert status == 200
        network = report["network"]
        assert network["difficulty"] == DIFFICULTY and network["height"] == 975_000
        assert network["hashrate_hashes_per_second"] == pytest.approx(1.0022e21, rel=1e-4)  # just over 1 ZH/s
        assert (network["block_subsidy_btc"], network["block_fees_btc"], network["block_fees_origin"]) == (
            SUBSIDY_BTC, FEES_BTC, "configured")  # fmt: skip
        assert report["hashprice"]["usd_per_petahash_day"] == pytest.approx(HASHPRICE_USD)
        assert report["btc_price"] == {"usd": BTC_USD, "origin": "configured", "age_seconds": None, "stale": False}
        projection = report["difficulty_adjustment"]["projection"]
        assert projection["percent"] == pytest.approx(-4.31, abs=0.01)  # 600 / 627 - 1
        assert report["difficulty_adjustment"]["block_times_origin"] == "modelled"

        status, body = await http_json(running.http, "/api/v1/rigs")
        rigs = {rig["rig"]: rig for rig in body["rigs"]}
        for name, ths, watts in RIGS:
            econ = rigs[name]["economics"]
            joules_per_th = watts / ths
            hashrate = econ["hashrate_hashes_per_second"]
            assert econ["efficiency_joules_per_terahash"] == pytest.approx(joules_per_th)
            assert econ["revenue_usd_per_day"] == pytest.approx(hashrate / 1e15 * HASHPRICE_USD)
            assert econ["power_cost_usd_per_day"] == pytest.approx(econ["watts"] / 1000 * 24 * USD_PER_KWH)
            assert econ["breakeven_power_price_usd_per_kwh"] == pytest.approx(HASHPRICE_USD / (joules_per_th * 24))
            assert econ["curtail_recommended"] is (HASHPRICE_USD / (joules_per_th * 24) < USD_PER_KWH)
        assert rigs["acct.bad"]["economics"]["curtail_recommended"] and not rigs["acct.good"]["economics"]["curtail_recommended"]

        fleet = report["fleet"]  # the totals of the report's own rigs, worst margin first
        assert [r["rig"] for r in report["rigs"]] == ["acct.bad", "acct.good"]
        revenue = sum(r["revenue_usd_per_day"] for r in report["rigs"])
        watts_total = sum(r["watts"] for r in report["rigs"])
        assert fleet["rigs"] == 2 and fleet["revenue_usd_per_day"] == pytest.approx(revenue)
        assert fleet["breakeven_power_price_usd_per_kwh"] == pytest.approx(
            fleet["revenue_usd_per_day"] / (fleet["watts"] / 1000 * 24))
        assert fleet["margin_usd_per_megawatt_day"] == pytest.approx(fleet["margin_usd_per_day"] / (fleet["watts"] / 1e6))
        assert watts_total == pytest.approx(fleet["watts"])
        assert [r["rig"] for r in report["curtailment"]["unprofitable"]] == ["acct.bad"]
        assert report["curtailment"]["plan"] is None  # no target configured

        # a target on the query: shedding 1 W switches off whichever rig earns less, and says so
        status, planned = await http_json(running.http, "/api/v1/economics?curtail_kw=0.001")
        cheapest = min(planned["rigs"], key=lambda r: r["revenue_usd_per_day"])["rig"]
        assert planned["curtailment"]["plan"]["rigs"] == [cheapest] and planned["curtailment"]["plan"]["meets_target"]
        for bad in ("-1", "lots", "nan", "inf"):
            status, error = await http_json(running.http, f"/api/v1/economics?curtail_kw={bad}")
            assert status == 400 and "curtail_kw" in error["error"]

        samples, text = await scrape(running.http)
        assert samples[("fleetd_rig_curtail_recommended", (("rig", "acct.bad"),))] == 1
        assert samples[("fleetd_rig_curtail_recommended", (("rig", "acct.good"),))] == 0
        assert samples[("fleetd_hashprice_usd_per_petahash_day", ())] == pytest.approx(HASHPRICE_USD)
        assert samples[("fleetd_btc_price_usd", (("origin", "configured"),))] == BTC_USD
        assert samples[("fleetd_btc_price_stale", ())] == 0
        assert samples[("fleetd_power_price_usd_per_kwh", ())] == USD_PER_KWH
        assert samples[("fleetd_ai_hosting_offer_usd_per_megawatt_day", ())] == 2500
        assert samples[("fleetd_difficulty_adjustment_projected_ratio", ())] == pytest.approx(600 / 627 - 1)
        assert samples[("fleetd_rig_margin_usd_per_day", (("rig", "acct.bad"),))] < 0
        promtool = shutil.which("promtool")
        assert promtool, "promtool not found: bash deploy/quickstart.sh test installs Debian's prometheus package"
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        for client in clients:
            client.close()
        await running.runner.cleanup()


async def test_without_economics_only_network_figures_are_exported(tmp_path):
    running = await start_fleetd(_config(tmp_path, ""))
    clients = await _mine(running, shares=1)
    try:
        status, report = await http_json(running.http, "/api/v1/economics")
        assert status == 200 and report["network"]["difficulty"] == DIFFICULTY
        assert report["network"]["block_fees_btc"] is None and report["hashprice"]["usd_per_petahash_day"] is None
        assert report["fleet"] is None and report["btc_price"]["stale"] is False
        _, body = await http_json(running.http, "/api/v1/rigs")
        assert [rig["economics"] for rig in body["rigs"]] == [None, None]
        samples, _ = await scrape(running.http)
        names = {name for name, _ in samples}
        assert {"fleetd_network_difficulty", "fleetd_block_subsidy_btc", "fleetd_difficulty_adjustment_projected_ratio"} <= names
        assert not names & {"fleetd_btc_price_stale", "fleetd_rig_margin_usd_per_day", "fleetd_hashprice_usd_per_petahash_day"}
    finally:
        for client in clients:
            client.close()
        await running.runner.cleanup()


async def test_a_stale_price_feed_is_flagged_and_its_price_never_used(tmp_path):
    healthy = True

    async def price(request: web.Request) -> web.Response:
        if not healthy:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"data": [{"symbol": "BTC", "price": str(BTC_USD)}]})

    price_app = web.Application()
    price_app.router.add_get("/price", price)
    price_runner = web.AppRunner(price_app)
    await price_runner.setup()
    price_site = web.TCPSite(price_runner, "127.0.0.1", 0)
    await price_site.start()
    url = f"http://127.0.0.1:{price_runner.addresses[0][1]}/price"
    interval, max_age = 60.0, 180.0
    economics = f"""
[economics]
power_price_usd_per_kwh = {USD_PER_KWH}
fees_btc_per_block = {FEES_BTC}
[economics.price_feed]
url = "{url}"
json_path = "data.0.price"
interval_seconds = {interval}
max_age_seconds = {max_age}
"""
    # The feed fetches over real HTTP but waits and stamps its prices on this clock, so a
    # price's age is exactly the time the test moves it by.
    clock = FakeClock()
    running = await start_fleetd(_config(tmp_path, economics), clock=clock)
    clients = await _mine(running, shares=1)
    feed = running.app[ECONOMICS_KEY].feed

    async def economics_report() -> dict:
        return (await http_json(running.http, "/api/v1/economics"))[1]

    try:
        await wait_until(lambda: feed.latest() is not None)  # the first fetch, at start
        fresh = await economics_report()
        assert fresh["btc_price"] == {"usd": BTC_USD, "origin": "feed", "age_seconds": 0.0, "stale": False}
        assert fresh["hashprice"]["usd_per_petahash_day"] == pytest.approx(HASHPRICE_USD)
        assert fresh["fleet"]["rigs"] == 2

        healthy = False  # the source goes down: the next fetch fails and its last price ages
        await clock.advance(interval)
        await wait_until(lambda: feed.failures == 1)
        clock.tick(max_age - interval)  # to the last moment the price is still fresh
        aged = await economics_report()
        assert aged["btc_price"] == {"usd": BTC_USD, "origin": "feed", "age_seconds": max_age, "stale": False}
        clock.tick(1.0)
        stale = await economics_report()
        assert stale["btc_price"]["usd"] is None and stale["btc_price"]["age_seconds"] == max_age + 1
        assert stale["btc_price"]["stale"] and stale["btc_price"]["origin"] == "feed"
        assert stale["hashprice"]["usd_per_petahash_day"] is None and stale["fleet"] is None
        samples, _ = await scrape(running.http)
        names = {name for name, _ in samples}
        assert samples[("fleetd_btc_price_stale", ())] == 1 and samples[("fleetd_btc_price_age_seconds", ())] == max_age + 1
        assert not names & {"fleetd_btc_price_usd", "fleetd_rig_margin_usd_per_day", "fleetd_fleet_margin_usd_per_day"}
        assert samples[("fleetd_network_difficulty", ())] == DIFFICULTY  # what needs no price stays

        healthy = True
        await clock.advance(0.0)  # the feed's retry is overdue: let it run
        await wait_until(lambda: feed.consecutive_failures == 0)
        recovered = await economics_report()
        assert recovered["btc_price"] == {"usd": BTC_USD, "origin": "feed", "age_seconds": 0.0, "stale": False}
        assert recovered["fleet"] is not None
    finally:
        for client in clients:
            client.close()
        await running.runner.cleanup()
        await price_runner.cleanup()


def test_figures_are_shown_without_the_binary_noise_of_their_arithmetic():
    from fleetd.economics.profitability import rig_economics
    from fleetd.telemetry.economics import rig_fields

    e = rig_economics("site.a", 2e14, 3612.0, 34.85, 0.075)
    assert (e.revenue_usd_per_day, e.margin_usd_per_day) == (6.970000000000001, 0.4684000000000008)  # computed
    fields = rig_fields(e)
    assert (fields["revenue_usd_per_day"], fields["margin_usd_per_day"]) == (6.97, 0.4684)  # shown
    assert fields["breakeven_power_price_usd_per_kwh"] == pytest.approx(e.breakeven_usd_per_kwh, rel=1e-11)
