"""The JSON API on the HTTP listener: /api/v1/rigs, /api/v1/rigs/{rig}, /api/v1/summary,
/api/v1/economics, and /metrics (the journal's history: ``history_api``). Every error on the
listener is answered in JSON."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.rigs.registry import AVERAGE_WINDOWS, HASHES_PER_DIFFICULTY, Rig, RigRegistry
from fleetd.telemetry import curtailment_api, economics, exposition
from fleetd.telemetry.collector import DaemonCollector
from fleetd.telemetry.economics import SiteEconomicsView

RIGS_KEY = web.AppKey("rigs", RigRegistry)
COLLECTOR_KEY = web.AppKey("collector", DaemonCollector)
METRICS_REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
ECONOMICS_KEY = web.AppKey("economics", SiteEconomicsView)
CLOCK_KEY = web.AppKey("clock", Clock)


def setup(
    app: web.Application,
    rigs: RigRegistry,
    site_economics: SiteEconomicsView | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> DaemonCollector:
    """Mount the API and /metrics, answering at ``clock``'s time; the collector learns the
    server and source once they run."""
    collector = DaemonCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)  # process CPU and memory for the daemon dashboard
    PlatformCollector(registry=registry)
    app[CLOCK_KEY] = clock
    app[RIGS_KEY] = rigs
    app[COLLECTOR_KEY] = collector
    app[METRICS_REGISTRY_KEY] = registry
    app[ECONOMICS_KEY] = site_economics or SiteEconomicsView(None, rigs)
    app.middlewares.append(json_errors)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/rigs", list_rigs)
    # any name a rig logs in with: braces, slashes, spaces (sent percent-encoded, matched decoded);
    # after history_api's /api/v1/rigs/{rig}/history, which build_app mounts first
    app.router.add_get("/api/v1/rigs/{rig:.+}", one_rig)
    app.router.add_get("/api/v1/summary", summary)
    app.router.add_get("/api/v1/economics", economics_report)
    return collector


def _now(request: web.Request) -> float:
    """Wall time on the app's clock: every figure of one answer is taken at this moment."""
    return request.app[CLOCK_KEY].wall()


async def metrics(request: web.Request) -> web.Response:
    app, now = request.app, _now(request)
    service = app.get(curtailment_api.SERVICE_KEY)
    body = metrics_text(
        app[RIGS_KEY], app[METRICS_REGISTRY_KEY], now, app[ECONOMICS_KEY].snapshot(now), _upstream_workers(app),
        service.controller.held_off() if service is not None else (),
    )  # fmt: skip
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_text(
    rigs: RigRegistry, registry: CollectorRegistry, now: float, site=None, upstream=None, curtailed=()
) -> bytes:
    """The whole /metrics body: per-rig families (with ``upstream``, each rig's upstream
    results; ``curtailed`` rigs labelled so), economics, then the daemon's and the process's."""
    text = exposition.render(rigs, now, upstream, curtailed) + (economics.render(site) if site is not None else "")
    return text.encode() + generate_latest(registry)


def _upstream_workers(app: web.Application) -> Mapping | None:
    """Each worker's upstream results by name in upstream mode, else None."""
    server = app[COLLECTOR_KEY].server
    if server is None or server.forwarding is None:
        return None
    return server.upstream_workers


async def economics_report(request: web.Request) -> web.Response:
    """The site's economics now; ``?curtail_kw=N`` plans for shedding N kW instead of the configured target."""
    raw = request.query.get("curtail_kw")
    target = None
    if raw is not None:
        try:
            target = float(raw)
        except ValueError:
            target = -1.0
        if not 0 <= target < 1e9:  # also refuses nan and inf
            raise web.HTTPBadRequest(reason=f"curtail_kw must be a number of kW, 0 or more; got {raw!r}")
    snap = request.app[ECONOMICS_KEY].snapshot(_now(request), target)
    return web.json_response(economics.to_json(snap))


async def list_rigs(request: web.Request) -> web.Response:
    app, now = request.app, _now(request)
    rigs, by_rig, upstream = app[RIGS_KEY], _rig_economics(app, now), _upstream_workers(app)
    return web.json_response(
        {"rigs": [rig_json(rigs, rig, now, by_rig, upstream) for rig in sorted(rigs, key=lambda r: r.name)]}
    )


async def one_rig(request: web.Request) -> web.Response:
    rigs, name = request.app[RIGS_KEY], request.match_info["rig"]
    rig = rigs.get(name)
    if rig is None:
        raise web.HTTPNotFound(reason=f"no rig named {name!r}")
    now = _now(request)
    return web.json_response(rig_json(rigs, rig, now, _rig_economics(request.app, now), _upstream_workers(request.app)))


def _rig_economics(app: web.Application, now: float) -> dict[str, dict]:
    """Each priced rig's economics fields, with whether it should be curtailed."""
    snap = app[ECONOMICS_KEY].snapshot(now)
    losing = {e.rig_id for e in snap.unprofitable}
    return {e.rig_id: {**economics.rig_fields(e), "curtail_recommended": e.rig_id in losing} for e in snap.rigs}


async def summary(request: web.Request) -> web.Response:
    """Fleet totals; hash rates and power are those of the rigs that are up (as in the economics)."""
    totals = request.app[RIGS_KEY].totals(_now(request))
    accepted, rejected = totals.accepted, totals.rejected
    return web.json_response(
        {
            "rigs": totals.rigs,
            "rigs_up": totals.up,
            "rigs_hot": totals.hot,
            "rigs_connected": totals.connected,
            "hashrate": totals.hashrate,
            "reported_hashrate": totals.reported_hashrate,
            "power_watts": totals.watts,
            "efficiency_joules_per_terahash": totals.efficiency,
            "shares": {"accepted": accepted, "rejected": rejected},
            "reject_ratio": rejected / (accepted + rejected) if accepted + rejected else 0.0,
            "blocks_found": totals.blocks,
        }
    )


def rig_json(
    rigs: RigRegistry, rig: Rig, now: float, by_rig: dict[str, dict] | None = None, upstream: Mapping | None = None
) -> dict:
    watts, power_source = rig.power(now)
    state = rigs.state(rig, now)
    rejected = sum(rig.rejected.values())
    reading = rig.reading
    nominal_watts, nominal_rate = rig.nameplate()
    return {
        "rig": rig.name,
        "ip": rig.ip,
        "model": rig.model,
        "firmware": rig.firmware,
        "up": state != "down",
        "state": state,  # up, down, or hot: up with a chip above the critical temperature
        "connections": rig.connections,
        "hashrate": {window: rig.hashrate(window, now) for window in AVERAGE_WINDOWS},
        # by window: effective shares behind the rate, its 95 % interval (upper null: no share and
        # no difficulty yet) and relative standard error (null: no share)
        "hashrate_confidence": {
            window: {
                "shares": estimate.shares,
                "lower": estimate.lower,
                "upper": estimate.upper if estimate.upper < float("inf") else None,
                "relative_error": estimate.relative_error if estimate.shares > 0 else None,
            }
            for window in AVERAGE_WINDOWS
            for estimate in (rig.hashrate_estimate(window, now, rigs.credit_scale),)
        },
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
        "economics": (by_rig or {}).get(rig.name),  # null: no prices configured, rig down or no watts
        "upstream": None if upstream is None else upstream_json(upstream.get(rig.name)),  # null: not upstream mode
    }


def upstream_json(stats) -> dict:
    """What the upstream pool made of a rig's forwarded shares (``UpstreamWorkerStats``, or None: none yet)."""
    if stats is None:
        return {"forwarded": 0, "accepted": 0, "rejected": {}, "pending": 0, "accepted_work": 0.0,
                "hashes_total": 0.0, "last_accepted": None}  # fmt: skip
    return {
        "forwarded": stats.forwarded,
        "accepted": stats.accepted,
        "rejected": dict(stats.rejected),  # by reason, "lost" and "no_upstream" included
        "pending": stats.pending,  # forwarded and not answered yet
        "accepted_work": stats.accepted_work,  # sum of the upstream difficulties credited
        "hashes_total": stats.accepted_work * HASHES_PER_DIFFICULTY,
        "last_accepted": stats.last_accepted,
    }


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every error on the listener is JSON with the right status (unknown paths, methods and
    rigs, bad queries, crashes), never an HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, reason = exc.status, exc.reason
        allow = exc.headers.get("Allow")  # a 405 names the methods the path takes
        headers = {"Allow": allow} if allow else None
    except Exception:
        logging.get("fleetd.http").exception("http_handler_failed", path=request.path)
        status, reason, headers = 500, "Internal Server Error", None
    return web.json_response({"error": reason, "status": status, "path": request.path}, status=status, headers=headers)
