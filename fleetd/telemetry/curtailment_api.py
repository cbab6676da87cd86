"""``/api/v1/curtailment``: the controller's state, demand-response requests and releases.

Reading is open like the rest of the API; the controls (POST, DELETE) need basic auth to be
configured, since without it anyone on the site's network could switch rigs off.
"""

from __future__ import annotations

import math

from aiohttp import web

SERVICE_KEY = web.AppKey("curtailment", object)
CONTROLS_KEY = web.AppKey("curtailment_controls", bool)
MAX_DEMAND_SECONDS = 7 * 86400.0


def setup(app: web.Application, service, *, controls_allowed: bool) -> None:
    app[SERVICE_KEY] = service
    app[CONTROLS_KEY] = controls_allowed
    app.router.add_get("/api/v1/curtailment", state)
    app.router.add_post("/api/v1/curtailment", request_demand)
    app.router.add_delete("/api/v1/curtailment", release_demand)
    app.router.add_delete("/api/v1/curtailment/rigs/{rig:.+}", release_rig)


async def state(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    controller = service.controller
    demand = controller.demand
    return web.json_response({
        "mode": service.config.mode,
        "min_shares": service.config.min_shares,
        "judged": judged(service, service.clock.wall()),
        "target_kw": controller.target_kw,
        "shed_kw": controller.shed_kw(),
        "demand": None if demand is None else {"kw": demand.kw, "until": demand.until,
                                               "requested_at": demand.requested_at},
        "rigs": [
            {"rig": name, **held.to_dict()} for name, held in sorted(controller.curtailed.items())
        ],
        "advice": dict(sorted(controller.advice.items())),
        "limit_advice": dict(sorted(controller.limit_advice.items())),
        "came_back": controller.came_back,
        "actions": [{"kind": k, "result": r, "count": n} for (k, r), n in sorted(service.actions.items())],
        "recent_events": [
            {"time": e.time, "rig": e.rig, "kind": e.kind, "reason": e.reason, "detail": dict(e.detail)}
            for e in service.recent
        ],
    })  # fmt: skip


def judged(service, now: float) -> list[dict]:
    """Each rig as the controller judges it now: its pool-side rate (H/s, over the economics'
    window or the shares of its current stretch of mining) with the 95 % interval (upper null:
    no share and no difficulty yet), the effective shares behind it, and its status:
    ``held`` (fleetd holds it off, for ``reason``), ``advised`` (the controller wants it off
    for ``reason``: in advise mode that is all it does, in act mode it has not got to it yet,
    held back by the ramp, the cap per cycle or the minimum on time), ``immature`` (fewer than
    ``min_shares`` shares: share luck could say anything, so a loss never switches it off), or
    ``ok``."""
    _, rigs = service.inputs(now)
    controller, min_shares = service.controller, service.config.min_shares
    curtailed, advice = controller.curtailed, controller.advice
    rows = []
    for name in sorted(rigs):
        rig, held = rigs[name], curtailed.get(name)
        if held is not None:
            status, reason = "held", held.reason
        elif name in advice:
            status, reason = "advised", advice[name]
        else:
            status, reason = ("immature" if rig.shares < min_shares else "ok"), None
        rows.append({
            "rig": name, "status": status, "reason": reason, "rate": rig.rate, "rate_lower": rig.rate_lower,
            "rate_upper": rig.rate_upper if rig.rate_upper < math.inf else None, "shares": rig.shares,
        })  # fmt: skip
    return rows


def _controls(request: web.Request):
    if not request.app[CONTROLS_KEY]:
        raise web.HTTPForbidden(
            reason="the curtailment controls need basic auth: set [http] web_config_file with basic_auth_users, "
            "or anyone on the network could switch rigs off"
        )
    return request.app[SERVICE_KEY]


async def request_demand(request: web.Request) -> web.Response:
    """``{"kw": 500, "duration_seconds": 3600}``: shed that much until then (one request at a time;
    a new one replaces it)."""
    service = _controls(request)
    if request.content_type != "application/json":
        # a form another site's page could post without asking first (CORS) is never a demand
        raise web.HTTPUnsupportedMediaType(
            reason='the body must be JSON sent as Content-Type: application/json: {"kw": 500, "duration_seconds": 3600}'
        )
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason='the body must be JSON: {"kw": 500, "duration_seconds": 3600}') from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason='the body must be a JSON object: {"kw": 500, "duration_seconds": 3600}')
    kw, seconds = body.get("kw"), body.get("duration_seconds")
    for name, value, high in (("kw", kw, 1e9), ("duration_seconds", seconds, MAX_DEMAND_SECONDS)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 < value <= high):
            raise web.HTTPBadRequest(reason=f"{name} must be a number greater than 0 and at most {high:g}; got {value!r}")
    demand = service.request(float(kw), float(seconds))
    return web.json_response(
        {"kw": demand.kw, "until": demand.until, "requested_at": demand.requested_at, "mode": service.config.mode,
         "acting": service.config.mode == "act"},
        status=201,
    )  # fmt: skip


async def release_demand(request: web.Request) -> web.Response:
    service = _controls(request)
    return web.json_response({"released": service.release_demand()})


async def release_rig(request: web.Request) -> web.Response:
    """Forget that fleetd holds a rig off (a failed one, or one an operator takes over)."""
    service, name = _controls(request), request.match_info["rig"]
    if not service.release_rig(name):
        raise web.HTTPNotFound(reason=f"fleetd does not hold the rig {name!r} off")
    return web.json_response({"released": name})
