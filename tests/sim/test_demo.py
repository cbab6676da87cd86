"""`fleetd demo`: the whole site on loopback, as a newcomer first sees fleetd."""

from __future__ import annotations

import asyncio
import io
import re
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetd.config import HostPort
from fleetd.sim import demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_demo_fleet_shows_in_metrics_api_and_table():
    pytest.importorskip("pyasic")
    http_port = _free_port()
    config = demo.demo_config(stratum=HostPort("127.0.0.1", 0), http=HostPort("127.0.0.1", http_port))
    out = io.StringIO()
    try:
        task = asyncio.create_task(
            demo.run(config, rigs=5, faults=("3:invalid=0.5",), duration=24, out=out, every=4)
        )
    except PermissionError:
        pytest.skip("binding the rigs' ports 80 and 4028 needs root")
    await asyncio.sleep(18)  # a few polls (every 10 s) and plenty of shares
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{http_port}/metrics") as response:
            text = await response.text()
        async with http.get(f"http://127.0.0.1:{http_port}/api/v1/summary") as response:
            summary = await response.json()
    assert await asyncio.wait_for(task, 30) == 0

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
    margins = {labels["rig"] for labels, _ in samples["fleetd_rig_margin_usd_per_day"]}
    assert margins == set(power)
    [(_, hashprice)] = samples["fleetd_hashprice_usd_per_petahash_day"]
    assert hashprice == pytest.approx(1e15 * 86_400 / (1.4e14 * 2**32) * (3.125 + 0.025) * 77_000)  # about $35

    text_out = out.getvalue()
    assert "fleetd demo: 5 simulated rigs" in text_out and "/metrics" in text_out
    last_table = text_out.rsplit("height", 1)[1]
    rows = re.findall(r"^  (site\.\S+)\s+yes\s.*\s(-?\$[\d.,]+)\s+\$0\.\d{3}$", last_table, re.M)
    assert sorted(name for name, _ in rows) == sorted(power)  # every rig with its margin/day and breakeven
    assert re.search(r"breakeven power price \$0\.\d{3}/kWh", last_table)
    assert "next difficulty adjustment -4.31 % in 745 blocks" in last_table


async def test_demo_without_root_runs_the_fleet_without_firmware_apis(monkeypatch):
    from fleetd.sim.firmware.rig import EmulatedRig

    async def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(EmulatedRig, "start", refuse)
    config = demo.demo_config(stratum=HostPort("127.0.0.1", 0), http=HostPort("127.0.0.1", _free_port()))
    out = io.StringIO()
    assert await demo.run(config, rigs=2, faults=(), duration=5, out=out, every=5) == 0
    text = out.getvalue()
    assert "running without them" in text
    accepted = [int(n) for n in re.findall(r"^  site\.\S+\s+yes\s+\S+ \S*H/s\s+-\s+(\d+)", text, re.M)]
    assert len(accepted) == 2 and all(n > 0 for n in accepted)  # mining goes on; "up" means connected here


def test_demo_command_with_a_small_fleet_keeps_only_the_faults_it_can_place(capsys):
    from fleetd.cli import main

    assert main(["demo", "--rigs", "2", "--duration", "3", "--stratum", "127.0.0.1:0", "--http", "127.0.0.1:0"]) == 0
    out = capsys.readouterr().out
    assert "fleetd demo: 2 simulated rigs" in out and "faults: none" in out
