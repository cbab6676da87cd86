"""The site page: ``GET /`` (rendered on the server, the header and the table's first page
filled in, so it shows numbers before any script runs), its assets under
``/static/{version}/...`` and ``GET /api/v1/site``, the one compact JSON the page's script
refreshes from.

Every figure comes from what the daemon computes already: the registry's states, rates and
totals, the shared economics snapshot, the curtailment controller's state. A rig's row is an
entry in each of a few arrays (``COLUMNS``), not an object per rig: the benchmark's 5,000
rigs are 550 kB, 26 kB gzipped. Sorting, filtering and paging run in the browser.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import math
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2
import orjson
from aiohttp import web

from fleetd import redact
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.rigs.registry import WATTS_DIGITS, RigRegistry, joules_per_terahash
from fleetd.telemetry import api, curtailment_api, history_api
from fleetd.telemetry.economics import SNAPSHOT_INTERVAL_SECONDS

HERE = Path(__file__).resolve().parent
WINDOW = "5m"  # the pool-side rate the table shows, as the demo's table does
FIRST_PAGE_ROWS = 100  # the page size the script starts with (the contract's default)
DEFAULT_REFRESH_SECONDS = 5.0
MAX_REFRESH_SECONDS = 3600.0
RECENT_EVENTS = 50  # of the service's, for the list when the journal is off
LOSING_NAMED = 50  # rigs losing money named in the answer; past that, counted
CACHE_FOREVER = "public, max-age=31536000, immutable"  # the version in the URL changes with the files
# The short keys of a rig's row, one array each in /api/v1/site's "rigs", in this order; null
# where unknown. hashrate (pool-side over WINDOW), reported and nominal: TH/s; ci: the half-width
# of the pool-side rate's 95 % interval in % of it (null: immature); rejects: % of its shares;
# watts (nameplate 1: an estimate); efficiency: J/TH; temperature: the hottest chip (else
# sensor), °C; margin: USD/day; breakeven: USD/kWh; hold: where fleetd holding it stands, or advice
COLUMNS = (
    "name", "state", "hold", "model", "ip", "hashrate", "ci", "reported", "nominal", "rejects", "watts",
    "nameplate", "efficiency", "temperature", "margin", "breakeven",
)  # fmt: skip
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ASSETS_KEY = web.AppKey("site_assets", object)
VIEW_KEY = web.AppKey("site_view", dict)
TEMPLATES_KEY = web.AppKey("site_templates", jinja2.Environment)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class Assets:
    """Every file under ``static/``, read once: a page can only ask for what is here, and the
    version (a hash of them all) changes whenever one does."""

    version: str
    files: Mapping[str, Asset]

    @classmethod
    def load(cls, root: Path) -> Assets:
        files, whole = {}, hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name, body = path.relative_to(root).as_posix(), path.read_bytes()
            kind = mimetypes.guess_type(name)[0] or "text/plain"
            digest = hashlib.sha256(body).hexdigest()
            files[name] = Asset(body, gzip.compress(body, 9, mtime=0), f"{kind}; charset=utf-8", f'"{digest[:20]}"')
            whole.update(f"{name}\0{digest}\0".encode())
        return cls(whole.hexdigest()[:12], files)


def setup(app: web.Application, *, static_root: Path = HERE / "static") -> None:
    """Mount ``/``, ``/static/{version}/{path}`` and ``/api/v1/site`` on the app that
    ``api.setup`` (and, for the curtailment section, ``curtailment_api.setup``) set up."""
    app[ASSETS_KEY] = Assets.load(static_root)
    app[VIEW_KEY] = {}  # "view": the latest, shared (the app itself is frozen once it runs)
    app[TEMPLATES_KEY] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name the template misspells is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[TEMPLATES_KEY].filters.update(FILTERS)
    app.middlewares.append(same_origin_writes)
    app.router.add_get("/", index)
    app.router.add_get("/api/v1/site", site)
    app.router.add_get("/static/{version}/{path:.+}", static)


# -- the answers ------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """The page, with the header and the first page of rigs (by name) filled in; ``?refresh=N``:
    seconds between the script's refreshes."""
    raw = request.query.get("refresh")
    refresh = DEFAULT_REFRESH_SECONDS
    if raw is not None:
        try:
            refresh = float(raw)
        except ValueError:
            refresh = math.nan
        if not 1 <= refresh <= MAX_REFRESH_SECONDS:  # also refuses nan
            raise web.HTTPBadRequest(reason=f"refresh must be seconds from 1 to {MAX_REFRESH_SECONDS:g}; got {raw!r}")
    app = request.app
    view = shared_view(app, app[api.CLOCK_KEY].wall())
    columns = view["rigs"]
    first = [dict(zip(COLUMNS, row)) for row in zip(*(columns[key][:FIRST_PAGE_ROWS] for key in COLUMNS))]
    html = app[TEMPLATES_KEY].get_template("site.html.j2").render(
        view=view, rows=first, refresh=refresh, static=f"/static/{app[ASSETS_KEY].version}",
        page_size=FIRST_PAGE_ROWS, pages=max(1, math.ceil(len(columns["name"]) / FIRST_PAGE_ROWS)),
    )  # fmt: skip
    return _gzipped(request, web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"}))


async def site(request: web.Request) -> web.Response:
    """What the page shows, as of now (see ``site_view``); gzipped for a client that takes it."""
    app = request.app
    body = orjson.dumps(shared_view(app, app[api.CLOCK_KEY].wall()))
    return _gzipped(request, web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-store"}))


def _gzipped(request: web.Request, response: web.Response) -> web.Response:
    """``response`` gzipped for a client that takes gzip (aiohttp would pick deflate first)."""
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        response.enable_compression(web.ContentCoding.gzip)
    return response


async def static(request: web.Request) -> web.Response:
    """A file of ``static/``: cached for a year when the URL's version is the current one (an
    older page's request gets today's file, revalidated each time)."""
    assets: Assets = request.app[ASSETS_KEY]
    asset = assets.files.get(request.match_info["path"])
    if asset is None:
        raise web.HTTPNotFound(reason=f"no static file {request.match_info['path']!r}")
    current = request.match_info["version"] == assets.version
    headers = {"Cache-Control": CACHE_FOREVER if current else "no-cache", "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        return web.Response(body=asset.gzipped, headers={**headers, "Content-Encoding": "gzip",
                                                          "Content-Type": asset.content_type})  # fmt: skip
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


@web.middleware
async def same_origin_writes(request: web.Request, handler):
    """A browser holding the basic-auth login for this page sends it along with a form another
    site posts here: a write (the curtailment controls) is taken only from this page's origin."""
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        # the host alone: behind a proxy that ends TLS, the page is https and fleetd sees http
        if request.headers.get("Sec-Fetch-Site") == "cross-site" or (
            origin is not None and urlsplit(origin).netloc != request.host
        ):
            raise web.HTTPForbidden(reason=f"a {request.method} from another site ({origin or 'cross-site'}) is refused")
    return await handler(request)


# -- what the page shows ---------------------------------------------------------------------


def shared_view(app: web.Application, now: float) -> dict:
    """``site_view``, taken at most ``SNAPSHOT_INTERVAL_SECONDS`` of the app's clock before
    ``now`` and shared, as the economics snapshot is: many open pages cost one view a second."""
    shared = app[VIEW_KEY]
    view = shared.get("view")
    if view is None or not view["time"] <= now < view["time"] + SNAPSHOT_INTERVAL_SECONDS:
        view = shared["view"] = site_view(app, now)
    return view


def site_view(app: web.Application, now: float) -> dict:
    """The fleet header, every rig's row (by name; one array per ``COLUMNS`` key) and the
    curtailment state, at wall time ``now``."""
    rigs: RigRegistry = app[api.RIGS_KEY]
    snap = app[api.ECONOMICS_KEY].snapshot(now)
    service = app.get(curtailment_api.SERVICE_KEY)
    controller = service.controller if service is not None else None
    held = controller.curtailed if controller is not None else {}
    held_off = controller.held_off() if controller is not None else set()  # as /metrics labels them curtailed
    advice = controller.advice if controller is not None else {}
    # a rate shown on fewer effective shares than the controller needs to judge one is
    # "immature", rather than a half-width of its 95 % interval that share luck still makes wide
    immature = (service.config if service is not None else CurtailmentConfig()).min_shares
    by_rig = {e.rig_id: e for e in snap.rigs}
    rows = []
    sums = _FleetSums()
    for rig in sorted(rigs, key=lambda r: r.name):
        state = rigs.state(rig, now)
        estimate = rig.hashrate_estimate(WINDOW, now, rigs.credit_scale)
        rate = estimate.rate
        watts, power_source = rig.power(now)
        reading = rig.reading
        sums.add(state, rate, reading.hashrate if reading is not None else None, watts)
        if state != "down" and rig.name in held_off:
            state = "curtailed"
            sums.curtailed += 1
        rejected = sum(rig.rejected.values())
        hottest = rig.hottest_chip()
        if hottest is None and reading is not None:
            hottest = max(reading.temperatures.values(), default=None)
        economics = by_rig.get(rig.name)
        hold = held.get(rig.name)
        rows.append((
            rig.name, state,
            f"{hold.state}: {hold.reason}" if hold is not None else (f"advised off: {advice[rig.name]}" if rig.name in advice else None),
            rig.model, rig.ip,
            _round(rate / 1e12, 3),
            None if estimate.shares < immature or rate <= 0 else _round(50 * (estimate.upper - estimate.lower) / rate, 1),
            _round(reading.hashrate / 1e12, 3) if reading is not None and reading.hashrate is not None else None,
            _round((rig.nameplate()[1] or math.nan) / 1e12, 3),
            _round(100 * rejected / (rig.accepted + rejected), 2) if rig.accepted + rejected else 0.0,
            _round(watts, 0),
            1 if power_source == "nameplate" else 0,
            _round(joules_per_terahash(watts, rate), 1),
            _round(hottest, 1),
            _round(economics.margin_usd_per_day, 2) if economics is not None else None,
            _round(economics.breakeven_usd_per_kwh, 4) if economics is not None else None,
        ))  # fmt: skip
    columns = zip(*rows) if rows else ((),) * len(COLUMNS)
    return {
        "time": now,
        "fleet": _fleet(app, rigs, snap, sums),
        "rigs": {key: list(column) for key, column in zip(COLUMNS, columns)},
        "curtailment": _curtailment(app, service, snap),
        "journal": history_api.JOURNAL_PATH_KEY in app,  # the charts need it
    }


class _FleetSums:
    """The registry's fleet totals (``RigRegistry.totals``: rates and power of the rigs up),
    summed in the pass that makes the rows: a second pass over 5,000 rigs took as long again."""

    __slots__ = ("rigs", "up", "hot", "curtailed", "hashrate", "reported", "watts", "powered_hashrate")

    def __init__(self) -> None:
        self.rigs = self.up = self.hot = self.curtailed = 0
        self.hashrate = self.reported = self.watts = self.powered_hashrate = 0.0

    def add(self, state: str, rate: float, reported: float | None, watts: float | None) -> None:
        self.rigs += 1
        if state == "down":
            return
        self.up += 1
        self.hot += state == "hot"
        self.hashrate += rate
        self.reported += reported or 0.0
        if watts is not None:
            self.watts += watts
            self.powered_hashrate += rate


def _fleet(app: web.Application, rigs: RigRegistry, snap, sums: _FleetSums) -> dict:
    fleet, projection = snap.fleet, snap.projection
    watts = round(sums.watts, WATTS_DIGITS)
    return {
        "rigs": sums.rigs, "up": sums.up, "hot": sums.hot, "down": sums.rigs - sums.up, "curtailed": sums.curtailed,
        "hashrate": _round(sums.hashrate / 1e12, 3),  # TH/s, of the rigs up
        "reported": _round(sums.reported / 1e12, 3),
        "power": _round(watts / 1000, 3),  # kW
        "efficiency": _round(joules_per_terahash(watts, sums.powered_hashrate), 2),
        "hashprice": _round(snap.hashprice_usd_per_ph_day, 4),  # USD per PH/s per day
        "btc": snap.btc_usd,
        "power_price": snap.site_usd_per_kwh,
        "revenue": _round(fleet.revenue_usd_per_day, 2) if fleet else None,
        "cost": _round(fleet.power_cost_usd_per_day, 2) if fleet else None,
        "margin": _round(fleet.margin_usd_per_day, 2) if fleet else None,
        "margin_mw": _round(fleet.margin_usd_per_mw_day, 2) if fleet else None,
        "breakeven": _round(fleet.breakeven_usd_per_kwh, 4) if fleet else None,
        "adjustment": None if projection is None else {
            "percent": round(projection.change_ratio * 100, 2),
            "blocks": projection.blocks_remaining,
            "time": projection.estimated_retarget_time_seconds,
        },
        "sources": _sources(app, rigs, snap),
    }  # fmt: skip


def _sources(app: web.Application, rigs: RigRegistry, snap) -> list[list]:
    """[what, "ok" | "warn" | "off", what it says]: the job source, the prices, the rigs'
    polls and the journal."""
    out = []
    source = app[api.COLLECTOR_KEY].source
    if source is not None:
        health = source.health()
        detail = f" ({redact.url(health.detail)})" if health.detail and not health.up else ""
        out.append(["source", "ok" if health.up else "warn", f"{health.kind} {'up' if health.up else 'down'}{detail}"])
    if snap.site_usd_per_kwh is None:
        out.append(["prices", "off", "no [economics]"])
    elif snap.btc_usd is None:
        out.append(["prices", "warn", "BTC price stale" if snap.price_stale else "BTC price unknown"])
    else:
        out.append(["prices", "ok", f"BTC price {snap.price_origin}"])
    if rigs.poll_interval is not None:
        polled = [rig for rig in rigs if rig.ip]
        failing = sum(1 for rig in polled if rig.poll_failures or rig.last_poll is None)
        out.append(["polls", "warn" if failing else "ok", f"{len(polled) - failing} of {len(polled)} rigs polled"])
    journal = history_api.JOURNAL_PATH_KEY in app
    out.append(["journal", "ok" if journal else "off", "journal on" if journal else "journal off"])
    return out


def _curtailment(app: web.Application, service, snap) -> dict | None:
    """The controller's state (None without a curtailment service) and the economics' plan."""
    if service is None:
        return None
    controller, plan = service.controller, snap.curtail_plan
    demand = controller.demand
    losing = [e.rig_id for e in snap.unprofitable]
    return {
        "mode": service.config.mode,
        "target_kw": controller.target_kw,
        "shed_kw": round(controller.shed_kw(), 3),
        "demand": None if demand is None else {"kw": demand.kw, "until": demand.until},
        # [rig, state, reason, since, watts it sheds now, the power limit it is held to (None: off)]
        "held": [[name, c.state, c.reason, c.since, round(c.shed_watts, 1), c.target_watts]
                 for name, c in sorted(controller.curtailed.items())],
        "advice": sorted(controller.advice.items()),
        "came_back": controller.came_back,
        "controls": bool(app.get(curtailment_api.CONTROLS_KEY)),
        "plan": None if plan is None else {
            "target_kw": snap.curtail_target_kw, "rigs": list(plan.rig_ids), "kw": round(plan.reduction_kw, 3),
            "lost_revenue": _round(plan.lost_revenue_usd_per_day, 2), "meets_target": plan.meets_target,
        },
        "losing": {"count": len(losing), "rigs": losing[:LOSING_NAMED]},
        "recent": [[e.time, e.rig, e.kind, e.reason] for e in service.recent[-RECENT_EVENTS:]],
    }  # fmt: skip


def _round(value: float | None, digits: int) -> float | None:
    """``value`` to ``digits`` decimals; None for unknown (and for nan or inf, which JSON has not)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits) if digits else float(round(value))


# -- formatting on the server: site.js formats the same way ------------------------------------


def _fixed(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    text = f"${abs(value):,.2f}"
    return "−" + text if value < 0 and text != "$0.00" else text  # no −$0.00 for a loss of nothing


def _price(value: float | None) -> str:
    return "–" if value is None else f"${value:.3f}/kWh"


def _hashrate_cell(row: dict) -> str:
    if row["hashrate"] is None:
        return "–"
    ci = "immature" if row["ci"] is None else f"±{row['ci']:.0f} %"
    return f"{row['hashrate']:,.2f} ({ci})"


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _data_value(value) -> str:
    """A cell's ``data-value``: the raw number (or text) it sorts by, empty when unknown."""
    return "" if value is None else str(value)


FILTERS = {
    "fixed": _fixed, "usd": _usd, "price": _price, "hashrate_cell": _hashrate_cell, "utc": _utc, "iso": _iso,
    "data_value": _data_value, "rig_href": lambda name: "#rig=" + quote(name, safe=""),
}  # fmt: skip
