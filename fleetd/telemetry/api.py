"""The JSON API on the HTTP listener: /api/v1/rigs, /api/v1/rigs/{rig}, /api/v1/summary, /metrics."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from fleetd.rigs.registry import AVERAGE_WINDOWS, Rig, RigRegistry
from fleetd.telemetry import exposition
from fleetd.telemetry.collector import DaemonCollector

RIGS_KEY = web.AppKey("rigs", RigRegistry)
COLLECTOR_KEY = web.AppKey("collector", DaemonCollector)
METRICS_REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)


def setup(app: web.Application, rigs: RigRegistry) -> DaemonCollector:
    """Mount the API and /metrics; the collector learns the server and source once they run."""
    collector = DaemonCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # process CPU and memory for the daemon dashboard
    PlatformCollector(registry=registry)
    app[RIGS_KEY] = rigs
    app[COLLECTOR_KEY] = collector
    app[METRICS_REGISTRY_KEY] = registry
    app.middlewares.append(json_errors)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/rigs", list_rigs)
    app.router.add_get("/api/v1/rigs/{rig}", one_rig)
    app.router.add_get("/api/v1/summary", summary)
    return collector


async def metrics(request: web.Request) -> web.Response:
    body = metrics_text(request.app[RIGS_KEY], request.app[METRICS_REGISTRY_KEY], time.time())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_text(rigs: RigRegistry, registry: CollectorRegistry, now: float) -> bytes:
    """The whole /metrics body: per-rig families, then the daemon's and the process's."""
    return exposition.render(rigs, now).encode() + generate_latest(registry)


async def list_rigs(request: web.Request) -> web.Response:
    rigs, now = request.app[RIGS_KEY], time.time()
    return web.json_response({"rigs": [rig_json(rigs, rig, now) for rig in sorted(rigs, key=lambda r: r.name)]})


async def one_rig(request: web.Request) -> web.Response:
    rigs, name = request.app[RIGS_KEY], request.match_info["rig"]
    rig = rigs.get(name)
    if rig is None:
        raise web.HTTPNotFound(reason=f"no rig named {name!r}")
    return web.json_response(rig_json(rigs, rig, time.time()))


async def summary(request: web.Request) -> web.Response:
    rigs, now = request.app[RIGS_KEY], time.time()
    all_rigs = list(rigs)
    watts = [w for w, _ in (rig.power(now) for rig in all_rigs) if w is not None]
    rate_5m = sum(rig.hashrate("5m", now) for rig in all_rigs)
    accepted = sum(rig.accepted for rig in all_rigs)
    rejected = sum(sum(rig.rejected.values()) for rig in all_rigs)
    power_watts = sum(watts)
    return web.json_response(
        {
            "rigs": len(all_rigs),
            "rigs_up": sum(rigs.up(rig, now) for rig in all_rigs),
            "rigs_connected": sum(rig.connections > 0 for rig in all_rigs),
            "hashrate": {window: sum(rig.hashrate(window, now) for rig in all_rigs) for window in AVERAGE_WINDOWS},
            "reported_hashrate": sum(rig.reading.hashrate or 0.0 for rig in all_rigs if rig.reading),
            "power_watts": power_watts,
            "efficiency_joules_per_terahash": power_watts / (rate_5m / 1e12) if power_watts and rate_5m else None,
            "shares": {"accepted": accepted, "rejected": rejected},
            "reject_ratio": rejected / (accepted + rejected) if accepted + rejected else 0.0,
            "blocks_found": sum(rig.blocks for rig in all_rigs),
        }
    )


def rig_json(rigs: RigRegistry, rig: Rig, now: float) -> dict:
    watts, power_source = rig.power(now)
    rejected = sum(rig.rejected.values())
    reading = rig.reading
    nominal_watts, nominal_rate = rig.nameplate()
    return {
        "rig": rig.name,
        "ip": rig.ip,
        "model": rig.model,
        "firmware": rig.firmware,
        "up": rigs.up(rig, now),
        "connections": rig.connections,
        "hashrate": {window: rig.hashrate(window, now) for window in AVERAGE_WINDOWS},
        "reported_hashrate": reading.hashrate if reading else None,
        "nominal_hashrate": nominal_rate,
        "nominal_watts": nominal_watts,
        "difficulty": rig.difficulty,
        "shares": {"accepted": rig.accepted, "rejected": dict(rig.rejected)},
        "reject_ratio": rejected / (rig.accepted + rejected) if rig.accepted + rejected else 0.0,
        "hashes_total": rig.accepted_hashes,
        "last_share": rig.last_share,
        "blocks_found": rig.blocks,
        "power": {"watts": watts, "source": power_source},
        "energy_joules": rig.energy_joules,
        "efficiency_joules_per_terahash": rig.efficiency(now),
        "temperatures": dict(reading.temperatures) if reading else {},
        "fans": dict(reading.fans) if reading else {},
        "uptime": reading.uptime if reading else None,
        "errors": list(reading.errors) if reading else [],
        "poll": {"last_ok": rig.last_poll, "failures": rig.poll_failures},
    }


@web.middleware
async def json_errors(request: web.Request, handler):
    """API clients get errors as JSON with the right status, never an HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        return web.json_response({"error": exc.reason, "status": exc.status, "path": request.path}, status=exc.status)
