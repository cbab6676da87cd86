"""/metrics and the JSON API checked against what miners and rigs actually did."""

from __future__ import annotations

import shutil
import subprocess

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fake_clock import FakeClock
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import HASHES_PER_DIFFICULTY, RateAverage, RigRegistry
from server_support import RawClient, grind, http_json, make_config, scrape, start_fleetd, wait_until


@pytest.fixture
async def fleetd_on_fake_clock():
    """fleetd on a clock only the test moves: a rig reading stamped at its time is one taken now."""
    running = await start_fleetd(make_config(), clock=FakeClock())
    yield running
    await running.runner.cleanup()


async def test_share_counters_match_what_the_miner_did(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.rig7")
    for n in range(5):
        assert (await client.request("mining.submit", grind(client, extranonce2=n.to_bytes(8, "big"))))["result"]
    duplicate = grind(client, extranonce2=(0).to_bytes(8, "big"))
    assert (await client.request("mining.submit", duplicate))["error"][0] == 22
    low = grind(client, valid=False, extranonce2=b"\xee" * 8)
    assert (await client.request("mining.submit", low))["error"][0] == 23

    samples, _ = await scrape(fleetd.http)
    rig = ("rig", "acct.rig7")
    assert samples[("fleetd_rig_hashes_total", (rig,))] == pytest.approx(5 * client.difficulty * HASHES_PER_DIFFICULTY)
    assert samples[("fleetd_rig_shares_total", (("reason", ""), ("result", "accepted"), rig))] == 5
    assert samples[("fleetd_rig_shares_total", (("reason", "duplicate"), ("result", "rejected"), rig))] == 1
    assert samples[("fleetd_rig_shares_total", (("reason", "low_difficulty"), ("result", "rejected"), rig))] == 1
    assert samples[("fleetd_rig_up", (rig,))] == 1
    assert samples[("fleetd_rig_difficulty", (rig,))] == pytest.approx(client.difficulty)
    assert samples[("fleetd_rig_info", (("firmware", ""), ("ip", "127.0.0.1"), ("model", ""), rig))] == 1
    assert samples[("fleetd_connections", ())] == 1
    assert samples[("fleetd_share_validation_seconds_count", ())] == 7  # every share that reached the C core path
    assert samples[("fleetd_source_up", (("kind", "demo"),))] == 1
    assert samples[("fleetd_jobs_total", ())] >= 1

    client.close()
    await wait_until(lambda: not fleetd.server.connections)
    samples, _ = await scrape(fleetd.http)
    assert samples[("fleetd_rig_up", (rig,))] == 0  # gone from Stratum, but its series stay
    assert samples[("fleetd_rig_hashes_total", (rig,))] > 0


async def test_metrics_pass_promtool_check(fleetd_on_fake_clock):
    fleetd = fleetd_on_fake_clock
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: bash deploy/quickstart.sh test installs Debian's prometheus package")
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.rig1")
    await client.request("mining.submit", grind(client))
    rigs = fleetd.server.rigs
    rigs.reading(RigReading(ip="127.0.0.1", time=fleetd.clock.wall(), model="S21", firmware="stock", hashrate=2e14,
                            watts=None, temperatures={"chip": 71.5, "board0": 60.0}, fans={"0": 4200, "1": 4100}))  # fmt: skip
    _, text = await scrape(fleetd.http)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    client.close()


async def test_json_api_rigs_summary_and_errors(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.api")
    assert (await client.request("mining.submit", grind(client)))["result"]

    status, body = await http_json(fleetd.http, "/api/v1/rigs")
    assert status == 200 and [r["rig"] for r in body["rigs"]] == ["acct.api"]
    status, rig = await http_json(fleetd.http, "/api/v1/rigs/acct.api")
    assert status == 200
    assert rig["shares"] == {"accepted": 1, "rejected": {}} and rig["up"] is True and rig["ip"] == "127.0.0.1"
    assert rig["hashes_total"] == pytest.approx(client.difficulty * HASHES_PER_DIFFICULTY)
    status, summary = await http_json(fleetd.http, "/api/v1/summary")
    assert status == 200 and summary["rigs"] == 1 and summary["shares"] == {"accepted": 1, "rejected": 0}

    for path, reason in (("/api/v1/rigs/nobody", "no rig named 'nobody'"), ("/api/v1/nothing", "Not Found")):
        status, error = await http_json(fleetd.http, path)
        assert status == 404 and error == {"error": reason, "status": 404, "path": path}
    client.close()


async def test_every_error_on_the_http_listener_is_json(fleetd):
    async with aiohttp.ClientSession() as session:
        for method, path, status in (
            ("GET", "/index.html", 404), ("GET", "/metricsx", 404), ("GET", "/api/v1/rigs/", 404), ("GET", "/healthz/", 404),
            ("POST", "/metrics", 405), ("DELETE", "/api/v1/rigs", 405), ("GET", "/api/v1/economics?curtail_kw=x", 400),
        ):  # fmt: skip
            async with session.request(method, fleetd.http + path) as response:
                assert (response.status, response.content_type) == (status, "application/json"), (method, path)
                error = await response.json()
            assert error["status"] == status and error["path"] == path.split("?")[0] and error["error"]
            if status == 405:
                assert "GET" in response.headers["Allow"]  # what the path does take
        async with session.get(fleetd.http + "/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"
    samples, _ = await scrape(fleetd.http)
    assert samples[("fleetd_source_up", (("kind", "demo"),))] == 1


async def test_a_handler_that_crashes_answers_json_500():
    from aiohttp import web

    from fleetd.telemetry.api import json_errors

    async def broken(request):
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        status, error = await http_json(f"http://127.0.0.1:{runner.addresses[0][1]}", "/broken")
        assert (status, error) == (500, {"error": "Internal Server Error", "status": 500, "path": "/broken"})
    finally:
        await runner.cleanup()


async def test_summary_totals_leave_out_rigs_that_are_down_and_hot_rigs_are_marked(fleetd_on_fake_clock):
    fleetd = fleetd_on_fake_clock
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.hot")
    assert (await client.request("mining.submit", grind(client)))["result"]
    chips = {"chip0": 80.0, "chip1": 96.0, "board0": 70.0}  # one chip past the critical-temperature alert
    fleetd.server.rigs.reading(RigReading(ip="127.0.0.1", time=fleetd.clock.wall(), model="M60S", hashrate=1.8e14,
                                          watts=3400.0, temperatures=chips))  # fmt: skip
    _, summary = await http_json(fleetd.http, "/api/v1/summary")
    assert (summary["rigs_up"], summary["rigs_hot"], summary["power_watts"], summary["reported_hashrate"]) == (
        1, 1, 3400.0, 1.8e14)  # fmt: skip
    assert summary["hashrate"]["5m"] > 0 and summary["efficiency_joules_per_terahash"] > 0
    _, rig = await http_json(fleetd.http, "/api/v1/rigs/acct.hot")
    assert (rig["state"], rig["up"], rig["temperatures"]) == ("hot", True, chips)

    client.close()
    await wait_until(lambda: not fleetd.server.connections)
    _, summary = await http_json(fleetd.http, "/api/v1/summary")
    assert (summary["rigs"], summary["rigs_up"], summary["rigs_hot"], summary["rigs_connected"]) == (1, 0, 0, 0)
    # its last power and rates are an outage now, not a draw; its shares stay counted
    assert (summary["power_watts"], summary["reported_hashrate"], summary["efficiency_joules_per_terahash"]) == (
        0.0, 0.0, None)  # fmt: skip
    assert summary["hashrate"] == {"1m": 0.0, "5m": 0.0, "1h": 0.0}
    assert summary["shares"] == {"accepted": 1, "rejected": 0}
    _, rig = await http_json(fleetd.http, "/api/v1/rigs/acct.hot")
    assert (rig["state"], rig["up"]) == ("down", False)


def test_power_is_reported_or_labelled_nameplate_and_energy_integrates():
    rigs = RigRegistry(poll_interval=30.0)
    rigs.connected("site.s21-01", "127.1.0.1", 0.0)
    rigs.connected("site.m60s-01", "127.1.0.2", 0.0)
    # stock Antminer: no watts reported; nameplate S21 (3500 W at 200 TH/s) scaled to 100 TH/s
    for t in (0.0, 30.0, 60.0):
        rigs.reading(RigReading(ip="127.1.0.1", time=t, model="S21", hashrate=1e14))
        rigs.reading(RigReading(ip="127.1.0.2", time=t, model="M60S", hashrate=1.8e14, watts=3400.0))
    antminer, whatsminer = rigs.get("site.s21-01"), rigs.get("site.m60s-01")
    assert antminer.power(60.0) == (pytest.approx(1750.0), "nameplate")
    assert whatsminer.power(60.0) == (3400.0, "reported")
    assert whatsminer.energy_joules == pytest.approx(3400.0 * 60)
    assert antminer.energy_joules == pytest.approx(1750.0 * 60)
    # a rig nobody could read for an hour is not assumed to have drawn power all along
    rigs.reading(RigReading(ip="127.1.0.2", time=3660.0, model="M60S", hashrate=1.8e14, watts=3400.0))
    assert whatsminer.energy_joules == pytest.approx(3400.0 * (60 + 60))


def test_reconnect_keeps_history_and_retention_removes_gone_rigs():
    rigs = RigRegistry(retention=600.0)
    rigs.connected("site.a", "127.1.0.9", 0.0)
    rigs.share("site.a", 2.0, 1.0)
    rigs.disconnected("site.a", 2.0)
    rigs.connected("site.a", "127.1.0.10", 100.0)  # back, from a new address
    assert rigs.get("site.a").accepted == 1 and rigs.by_ip("127.1.0.10").name == "site.a"
    assert rigs.by_ip("127.1.0.9") is None
    rigs.disconnected("site.a", 200.0)
    assert rigs.retire(700.0) == []
    assert rigs.retire(801.0) == ["site.a"] and len(rigs) == 0


def test_rate_average_follows_a_steady_rate_from_the_start():
    hour = RateAverage(3600.0)
    for second in range(1, 61):
        hour.add(1e12, float(second))  # 1 TH every second
        if second in (5, 30, 60):  # no slow ramp from zero for a rig that just connected
            assert hour.rate(float(second)) == pytest.approx(1e12, rel=0.05)
    minute = RateAverage(60.0)
    for second in range(1, 601):
        minute.add(1e12, float(second))
    assert minute.rate(600.0) == pytest.approx(1e12, rel=0.01)
    assert minute.rate(660.0) == pytest.approx(1e12 / 2.718281828, rel=0.01)  # one time constant of silence


def test_exposition_escapes_any_worker_name_and_parses_back():
    from fleetd.telemetry.exposition import render

    rigs = RigRegistry()
    odd = 'acct.a"b\\c\nd é'
    rigs.connected(odd, "127.0.0.5", 0.0)
    rigs.share(odd, 1.0, 1.0)
    rigs.reject(odd, "low_difficulty", 2.0)
    parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(render(rigs, 3.0))
        for s in family.samples
    }
    assert parsed[("fleetd_rig_hashes_total", (("rig", odd),))] == HASHES_PER_DIFFICULTY
    assert parsed[("fleetd_rig_shares_total", (("reason", "low_difficulty"), ("result", "rejected"), ("rig", odd)))] == 1
    assert parsed[("fleetd_rig_info", (("firmware", ""), ("ip", "127.0.0.5"), ("model", ""), ("rig", odd)))] == 1


async def test_inventory_rigs_are_known_before_they_connect(tmp_path):
    import dataclasses

    inventory = tmp_path / "rigs.csv"
    inventory.write_text(
        "ip,name,model,nominal_ths,nominal_watts\n"
        "127.1.9.1,acct.rack1-01,Antminer S19 XP,,\n"
        "127.1.9.2,acct.rack1-02,Custom Hydro X,250,5400\n"
    )
    config = make_config()
    config = dataclasses.replace(config, rigs=dataclasses.replace(config.rigs, inventory=str(inventory)))
    running = await start_fleetd(config)
    try:
        status, body = await http_json(running.http, "/api/v1/rigs")
        rigs = {rig["rig"]: rig for rig in body["rigs"]}
        assert set(rigs) == {"acct.rack1-01", "acct.rack1-02"}
        assert rigs["acct.rack1-01"]["nominal_hashrate"] == 140e12 and rigs["acct.rack1-01"]["up"] is False
        assert (rigs["acct.rack1-02"]["nominal_hashrate"], rigs["acct.rack1-02"]["nominal_watts"]) == (250e12, 5400)
        assert rigs["acct.rack1-02"]["ip"] == "127.1.9.2"
    finally:
        await running.runner.cleanup()
    # a broken inventory is a configuration problem named with its line
    inventory.write_text("ip,name,model,nominal_ths,nominal_watts\n127.1.9.1,acct.x,Mystery Box,,\n")
    from fleetd.config import ConfigError, parse

    with pytest.raises(ConfigError, match=r"\[rigs\] inventory = .*rigs.csv.*:2"):
        parse(f'[rigs]\ninventory = "{inventory}"\n')


def _confidence_registry() -> RigRegistry:
    """One rig with a share every 5 s for ten minutes, one that has a difficulty but no share
    yet, and one known only by its IP (no difficulty either)."""
    rigs = RigRegistry()
    for k in range(120):
        rigs.share("acct.steady", 2048.0, 5.0 * k)
    rigs.connected("acct.new", "10.0.0.2", 590.0).difficulty = 2048.0
    rigs.connected("acct.unknown", "10.0.0.3", 590.0)
    return rigs


def test_exposition_gives_each_rate_its_effective_shares_and_95_percent_bounds():
    from fleetd.telemetry.exposition import render

    rigs, now = _confidence_registry(), 600.0
    families = {family.name: family for family in text_string_to_metric_families(render(rigs, now))}
    for name in ("fleetd_rig_hashrate_shares", "fleetd_rig_hashrate_lower_hashes_per_second",
                 "fleetd_rig_hashrate_upper_hashes_per_second"):  # fmt: skip
        assert families[name].type == "gauge" and families[name].documentation
    sample = {
        (s.name, s.labels["rig"], s.labels["window"]): s.value
        for name in ("fleetd_rig_hashrate_shares", "fleetd_rig_hashrate_lower_hashes_per_second",
                     "fleetd_rig_hashrate_upper_hashes_per_second")  # fmt: skip
        for s in families[name].samples
    }
    assert {window for _, _, window in sample} == {"5m", "1h"}  # the windows revenue can be judged over
    for window in ("5m", "1h"):
        steady = rigs.get("acct.steady").hashrate_estimate(window, now)  # written to six digits
        assert sample[("fleetd_rig_hashrate_shares", "acct.steady", window)] == pytest.approx(steady.shares, rel=1e-5)
        assert sample[("fleetd_rig_hashrate_lower_hashes_per_second", "acct.steady", window)] == pytest.approx(
            steady.lower, rel=1e-5
        )
        assert sample[("fleetd_rig_hashrate_upper_hashes_per_second", "acct.steady", window)] == pytest.approx(
            steady.upper, rel=1e-5
        )
        assert steady.shares > 1
        assert steady.lower < steady.rate < steady.upper
        # no share yet: none behind the rate, a lower bound of 0, an upper one from the difficulty
        assert sample[("fleetd_rig_hashrate_shares", "acct.new", window)] == 0.0
        assert sample[("fleetd_rig_hashrate_lower_hashes_per_second", "acct.new", window)] == 0.0
        assert sample[("fleetd_rig_hashrate_upper_hashes_per_second", "acct.new", window)] > 0.0
        # nor a difficulty: no upper bound at all, so none is written
        assert ("fleetd_rig_hashrate_upper_hashes_per_second", "acct.unknown", window) not in sample
        assert sample[("fleetd_rig_hashrate_shares", "acct.unknown", window)] == 0.0
    assert len(sample) == 2 * (3 + 3 + 2)


def test_rig_json_gives_each_rate_its_confidence():
    from fleetd.telemetry.api import rig_json

    rigs, now = _confidence_registry(), 600.0
    steady = rig_json(rigs, rigs.get("acct.steady"), now)
    assert set(steady["hashrate_confidence"]) == set(steady["hashrate"]) == {"1m", "5m", "1h"}
    for window, confidence in steady["hashrate_confidence"].items():
        estimate = rigs.get("acct.steady").hashrate_estimate(window, now)
        assert confidence == {"shares": estimate.shares, "lower": estimate.lower, "upper": estimate.upper,
                              "relative_error": estimate.relative_error}  # fmt: skip
        assert confidence["lower"] < steady["hashrate"][window] < confidence["upper"]
        assert confidence["relative_error"] == pytest.approx(confidence["shares"] ** -0.5)
    assert steady["hashrate_confidence"]["1m"]["shares"] == pytest.approx(24, rel=0.01)  # 12 shares a minute
    new = rig_json(rigs, rigs.get("acct.new"), now)["hashrate_confidence"]["1m"]
    upper = pytest.approx(3.689 * 2048 * HASHES_PER_DIFFICULTY / 60, rel=1e-4)  # 3.7 shares in a minute
    assert new == {"shares": 0.0, "lower": 0.0, "upper": upper, "relative_error": None}
    unknown = rig_json(rigs, rigs.get("acct.unknown"), now)["hashrate_confidence"]["1m"]
    assert unknown == {"shares": 0.0, "lower": 0.0, "upper": None, "relative_error": None}
