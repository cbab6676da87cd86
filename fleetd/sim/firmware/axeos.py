"""AxeOS (ESP-Miner), the firmware of the Bitaxe: a JSON API over plain HTTP on port 80.

What pyasic uses of it: ``GET /`` must serve the web UI, whose page names AxeOS (that is
how pyasic tells a Bitaxe from other HTTP miners); ``GET /api/system/info`` identifies the
ASIC (``ASICModel``) and carries every figure: ``hashRate`` in GH/s, ``power`` in watts,
``temp`` (ASIC) and ``vrTemp`` (voltage regulator) in °C, ``fanrpm``, ``uptimeSeconds``.
``GET /api/system/asic`` is asked for when ``asicCount`` is missing from the info.

Control: AxeOS has no sleep or power limit, and pyasic's ``stop_mining``, ``resume_mining``
and ``set_power_limit`` send nothing to a Bitaxe (they answer False). What there is:

* ``PATCH /api/system`` with settings as JSON (pyasic: ``miner.web.update_settings(**settings)``,
  and ``send_config``). ``frequency`` in MHz takes effect at once, as ESP-Miner's power
  management applies a new frequency without a restart: hash rate follows the clock, power
  a little faster (state.py), ``frequency`` and ``expectedHashrate`` in the info follow.
  Other keys are accepted and not modelled. The answer is 200 with an empty body, which
  pyasic cannot parse: ``update_settings`` raises APIError after the setting took. Bad JSON
  is 400 ``Invalid JSON``.
* ``POST /api/system/restart`` (pyasic ``reboot``): answers ``System will restart shortly.``
  as text (pyasic raises APIError parsing it), then the rig reboots: uptime from 0, the
  warm-up, and its Stratum connection is dialled afresh.

There is no password. Real ESP-Miner answers only clients in private address ranges; here
the loopback rig network stands in for the site LAN.
"""

from __future__ import annotations

import json
from types import MappingProxyType

from aiohttp import web

from fleetd.sim.firmware.state import RigState

AXEOS_VERSION = "v2.6.1"
SMALL_CORES = MappingProxyType({"BM1370": 2040, "BM1368": 1276, "BM1366": 894, "BM1397": 672})  # per ESP-Miner
DEVICE_MODEL = MappingProxyType({"BM1370": "Gamma", "BM1368": "Supra", "BM1366": "Ultra", "BM1397": "Max"})
BOARD_VERSION = MappingProxyType({"BM1370": "601", "BM1368": "401", "BM1366": "204", "BM1397": "102"})
INPUT_MV = 5100.0
INDEX_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>AxeOS</title><base href="/"></head>
<body><app-root></app-root></body>
</html>
"""


def stock_frequency_mhz(state: RigState) -> float:
    # ESP-Miner's expected hash rate is small cores x ASICs x MHz; pick the clock that makes
    # it the catalogue's nominal, so pyasic's expected_hashrate matches the nameplate.
    cores = SMALL_CORES[state.model.reported_model] * state.model.chips
    return round(state.model.nominal_hashrate / 1e6 / cores, 1)


def frequency_mhz(state: RigState) -> float:
    return round(stock_frequency_mhz(state) * state.clock_share, 1)


def update_settings(state: RigState, body: bytes) -> web.Response:
    """``PATCH /api/system``: what ESP-Miner answers, with ``frequency`` applied."""
    try:
        settings = json.loads(body)
    except ValueError:
        settings = None
    if not isinstance(settings, dict):
        return web.Response(status=400, text="Invalid JSON")
    frequency = settings.get("frequency")
    if isinstance(frequency, int | float) and not isinstance(frequency, bool) and frequency > 0:
        state.set_clock(frequency / stock_frequency_mhz(state))
    return web.Response(status=200)


def system_info(state: RigState) -> dict:
    asic = state.model.reported_model
    watts = state.watts()
    cores = SMALL_CORES[asic]
    frequency = frequency_mhz(state)
    return {
        "power": round(watts, 2),
        "voltage": INPUT_MV,
        "current": round(watts / (INPUT_MV / 1000) * 1000, 1),
        "temp": state.chip_temps()[0],
        "vrTemp": state.board_temps()[0],
        "maxPower": 40,
        "nominalVoltage": 5,
        "hashRate": round(state.hashrate() / 1e9, 3),
        "expectedHashrate": round(cores * state.model.chips * frequency / 1000, 1),
        "bestDiff": "0",
        "bestSessionDiff": "0",
        "poolDifficulty": 1000,
        "isUsingFallbackStratum": 0,
        "isPSRAMAvailable": 1,
        "freeHeap": 8_000_000,
        "coreVoltage": 1150,
        "coreVoltageActual": 1146,
        "frequency": frequency,
        "ssid": "site",
        "macAddr": state.mac,
        "hostname": f"bitaxe-{state.name}",
        "wifiStatus": "Connected!",
        "wifiRSSI": -50,
        "apEnabled": 0,
        "sharesAccepted": state.accepted,
        "sharesRejected": state.rejected,
        "sharesRejectedReasons": [],
        "uptimeSeconds": state.uptime(),
        "smallCoreCount": cores,
        "ASICModel": asic,
        "asicCount": state.model.chips,
        "stratumURL": state.pool_host,
        "stratumPort": state.pool_port,
        "stratumUser": state.worker,
        "stratumSuggestedDifficulty": 1000,
        "stratumExtranonceSubscribe": 0,
        "fallbackStratumURL": "",
        "fallbackStratumPort": 3333,
        "fallbackStratumUser": "",
        "version": AXEOS_VERSION,
        "axeOSVersion": AXEOS_VERSION,
        "idfVersion": "v5.4.1",
        "boardVersion": BOARD_VERSION[asic],
        "runningPartition": "ota_0",
        "overheat_mode": 1 if state.hot_boards() else 0,
        "overclockEnabled": 0,
        "display": "SSD1306 (128x32)",
        "rotation": 0,
        "invertscreen": 0,
        "displayTimeout": -1,
        "autofanspeed": 1,
        "fanspeed": state.fan_duty(),
        "temptarget": 60,
        "fanrpm": state.fan_rpms()[0],
        "statsFrequency": 0,
    }


def asic_info(state: RigState) -> dict:
    asic = state.model.reported_model
    frequency = stock_frequency_mhz(state)
    return {
        "ASICModel": asic,
        "deviceModel": DEVICE_MODEL[asic],
        "swarmColor": "purple",
        "asicCount": state.model.chips,
        "defaultFrequency": frequency,
        "frequencyOptions": [frequency],
        "defaultVoltage": 1150,
        "voltageOptions": [1150],
    }


def make_app(state: RigState) -> web.Application:
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=INDEX_HTML, content_type="text/html")

    async def info(_: web.Request) -> web.Response:
        return web.json_response(system_info(state))

    async def asic(_: web.Request) -> web.Response:
        return web.json_response(asic_info(state))

    async def swarm(_: web.Request) -> web.Response:
        return web.json_response([])

    async def patch_system(request: web.Request) -> web.Response:
        return update_settings(state, await request.read())

    async def restart(request: web.Request) -> web.StreamResponse:
        response = web.Response(text="System will restart shortly.")
        await response.prepare(request)
        await response.write_eof()
        state.restart()  # after the answer, as ESP-Miner restarts a second after sending it
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_patch("/api/system", patch_system)
    app.router.add_post("/api/system/restart", restart)
    app.router.add_get("/api/system/info", info)
    app.router.add_get("/api/system/asic", asic)
    app.router.add_get("/api/swarm/info", swarm)
    return app
