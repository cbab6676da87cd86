"""The site page at / on a running fleetd: the server's first render, /api/v1/site, the static
assets and their caching, basic auth, the journal switched off, and writes from other sites.

fleetd runs as ``fleetd serve`` serves it (``start_fleetd``) on a FakeClock, over loopback; its
registry is filled as the Stratum server and the poller fill it, so every figure is known
exactly and nothing rests on share luck. The page's behaviour in a browser is tested under
tests/browser.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from html.parser import HTMLParser

import aiohttp
import bcrypt
import orjson
import pytest
from multidict import CIMultiDict

from fake_clock import FakeClock
from fleetd.config import parse
from fleetd.curtailment.controller import Curtailed
from fleetd.rigs.reading import RigReading
from fleetd.telemetry import api, curtailment_api
from fleetd.telemetry.site import page
from http_support import basic
from server_support import make_config, start_fleetd

HOSTILE = '<script>alert("x")</script>&"rig'
USER, PASSWORD = "operator", "s3cret"
ECONOMICS = """
[economics]
btc_price_usd = 77000
power_price_usd_per_kwh = 0.06
fees_btc_per_block = 0.025
"""
FIELDS = ("hashrate", "power", "efficiency", "hashprice", "revenue", "cost", "margin", "breakeven", "adjustment", "sources")
SORT_KEYS = ("name", "state", "hashrate", "reported", "nominal", "rejects", "watts", "efficiency", "temperature",
             "margin", "breakeven")  # fmt: skip


class Elements(HTMLParser):
    """Every start tag as (tag, attributes), and the text of each element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in ("input", "meta", "link", "br"):
            self._open.append(attributes.get("id"))
            if attributes.get("id"):
                self.text[attributes["id"]] = ""

    def handle_endtag(self, tag):
        if tag not in ("input", "meta", "link", "br") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for opened in self._open:
            if opened:
                self.text[opened] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def _config(tmp_path, *, economics: bool = True, auth: bool = False, journal: bool = True):
    config = make_config()
    http = config.http
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        http = dataclasses.replace(http, web_config_file=str(tmp_path / "web.yml"))
    return dataclasses.replace(
        config,
        http=http,
        economics=parse(ECONOMICS).economics if economics else None,
        journal=dataclasses.replace(config.journal, enabled=journal),
    )


def _fleet(running) -> None:
    """Four rigs as the server and the poller leave them: one up, one hot, one gone, one
    fleetd holds off; and one named to break out of HTML."""
    rigs, now = running.app[api.RIGS_KEY], running.clock.wall()
    for n, (name, chip) in enumerate((("site.a", 70.0), ("site.hot", 97.0), ("site.gone", 60.0), ("site.off", 65.0), (HOSTILE, 60.0))):
        ip = f"127.1.8.{n + 1}"
        rigs.connected(name, ip, now - 600)
        for k in range(30):
            rigs.share(name, 1000.0 * (n + 1), now - 600 + 20 * k)
        rigs.reject(name, "stale", now - 10)
        rigs.reading(RigReading(ip=ip, time=now, model="S21", firmware="stock", hashrate=200e12, watts=3500.0,
                                temperatures={"chip0": chip}, fans={}))  # fmt: skip
    rigs.disconnected("site.gone", now)
    service = running.app[curtailment_api.SERVICE_KEY]
    service.controller.curtailed["site.off"] = Curtailed("unprofitable", "off", now - 300, 3500.0, 200e12, now - 300)


async def _get(base: str, path: str, headers=None, *, raw: bool = False) -> tuple[int, dict, bytes]:
    """(status, headers, body); the body as sent with ``raw``, else decompressed."""
    async with aiohttp.ClientSession(auto_decompress=not raw) as session:
        async with session.get(base + path, headers=headers) as response:
            return response.status, CIMultiDict(response.headers), await response.read()


@pytest.fixture
async def running(tmp_path):
    running = await start_fleetd(_config(tmp_path), clock=FakeClock())
    _fleet(running)
    yield running
    await running.runner.cleanup()


async def test_the_first_render_has_the_header_and_every_rig_with_hostile_names_escaped(running):
    status, headers, body = await _get(running.http, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    html = body.decode()
    page_ = Elements(html)
    assert page_.find("html", lang="en") and page_.find("section", id="fleet", aria_label="Fleet")
    assert [a["data-field"] for a in page_.find("div") if "data-field" in a] == list(FIELDS)
    view = page.site_view(running.app, running.clock.wall())
    # the header says what /api/v1/site says, as the script would write it
    assert f"{view['fleet']['hashrate']:,.1f} TH/s" in html and view["fleet"]["hashrate"] > 0
    assert page_.find("time", id="updated")[0]["data-updated"] == str(int(running.clock.wall()))
    rows = {a["data-rig"]: a["data-state"] for a in page_.find("tr") if "data-rig" in a}
    assert rows == {"site.a": "up", "site.hot": "hot", "site.gone": "down", "site.off": "curtailed", HOSTILE: "up"}
    # a name is data, never markup: escaped in text and attributes, percent-encoded in the link
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#34;rig" in html
    assert page_.find("a", href="#rig=%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%26%22rig")
    assert [a["data-sort"] for a in page_.find("button") if "data-sort" in a] == list(SORT_KEYS)
    assert page_.find("th", aria_sort="ascending") and len(page_.find("th", scope="col")) == len(SORT_KEYS)
    assert page_.text["rig-count"] == "5 of 5 rigs" and page_.text["page-info"] == "page 1 of 1"
    assert page_.text["fleet-counts"].split() == "5 rigs: 4 up, 1 down, 1 curtailed, 1 hot.".split()
    for control in ("rig-filter", "state-filter", "page-size", "history-range"):
        assert page_.find("label", **{"for": control}), control  # every control labelled
    for figure in ("chart-fleet-hashrate", "chart-fleet-power", "chart-fleet-margin", "chart-rig-hashrate", "chart-rig-power"):
        assert page_.find("figure", id=figure)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from elsewhere: it works offline


async def test_the_site_json_has_one_array_per_column_and_the_figures_of_the_registry(running):
    status, headers, body = await _get(running.http, "/api/v1/site", {"Accept-Encoding": "gzip"}, raw=True)
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Cache-Control"] == "no-store"
    view = orjson.loads(gzip.decompress(body))
    assert set(view) == {"time", "fleet", "rigs", "curtailment", "journal"} and view["journal"] is True
    rigs = view["rigs"]
    assert list(rigs) == list(page.COLUMNS) and {len(column) for column in rigs.values()} == {5}
    assert rigs["name"] == sorted(rigs["name"])
    assert dict(zip(rigs["name"], rigs["state"])) == {
        "site.a": "up", "site.hot": "hot", "site.gone": "down", "site.off": "curtailed", HOSTILE: "up"}
    at = rigs["name"].index("site.a")
    registry, now = running.app[api.RIGS_KEY], running.clock.wall()
    rig = registry.get("site.a")
    estimate = rig.hashrate_estimate("5m", now)
    assert rigs["hashrate"][at] == round(estimate.rate / 1e12, 3) and rigs["reported"][at] == 200.0
    assert rigs["ci"][at] is None  # 30 shares: fewer than the controller judges on, "immature"
    assert rigs["watts"][at] == 3500 and rigs["nameplate"][at] == 0 and rigs["temperature"][at] == 70.0
    assert rigs["rejects"][at] == round(100 / 31, 2) and rigs["model"][at] == "S21" and rigs["ip"][at] == "127.1.8.1"
    snap = running.app[api.ECONOMICS_KEY].snapshot(now)
    priced = {e.rig_id: e for e in snap.rigs}["site.a"]
    assert rigs["margin"][at] == round(priced.margin_usd_per_day, 2)
    assert rigs["breakeven"][at] == round(priced.breakeven_usd_per_kwh, 4)
    assert rigs["hold"][rigs["name"].index("site.off")] == "off: unprofitable"
    # the header is the registry's totals, summed in the rows' pass
    totals, fleet = registry.totals(now), view["fleet"]
    assert (fleet["rigs"], fleet["up"], fleet["hot"], fleet["down"], fleet["curtailed"]) == (5, 4, 1, 1, 1)
    assert fleet["hashrate"] == round(totals.hashrate["5m"] / 1e12, 3) and fleet["power"] == round(totals.watts / 1000, 3)
    assert fleet["efficiency"] == round(totals.efficiency, 2) and fleet["reported"] == 800.0
    assert fleet["margin"] == round(snap.fleet.margin_usd_per_day, 2) and fleet["hashprice"] == round(snap.hashprice_usd_per_ph_day, 4)
    assert ["source", "ok", "demo up"] in fleet["sources"] and ["journal", "ok", "journal on"] in fleet["sources"]
    curtailment = view["curtailment"]
    assert curtailment["held"] == [["site.off", "off", "unprofitable", now - 300, 3500.0, None]]
    assert curtailment["mode"] == "advise" and curtailment["controls"] is False


async def test_a_rig_with_enough_shares_has_the_half_width_of_its_interval(running):
    rigs, now = running.app[api.RIGS_KEY], running.clock.wall()
    for k in range(600):
        rigs.share("site.a", 1000.0, now - 300 + k * 0.5)
    view = page.site_view(running.app, now)
    at = view["rigs"]["name"].index("site.a")
    estimate = rigs.get("site.a").hashrate_estimate("5m", now)
    assert estimate.shares >= 100
    assert view["rigs"]["ci"][at] == round(50 * (estimate.upper - estimate.lower) / estimate.rate, 1) > 0


async def test_static_assets_carry_a_version_and_a_years_cache_and_nothing_else_is_served(running):
    status, _, body = await _get(running.http, "/")
    html = Elements(body.decode())
    urls = [a["src"] for a in html.find("script")] + [a["href"] for a in html.find("link", rel="stylesheet")]
    assert len(urls) == 4 and all(url.startswith(f"/static/{running.app[page.ASSETS_KEY].version}/") for url in urls)
    for url in urls:
        status, headers, body = await _get(running.http, url, {"Accept-Encoding": "identity"}, raw=True)
        assert status == 200 and headers["Cache-Control"] == page.CACHE_FOREVER, url
        assert headers["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript", "text/css")
        status, headers, gzipped = await _get(running.http, url, {"Accept-Encoding": "gzip"}, raw=True)
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(gzipped) == body
        status, _, _ = await _get(running.http, url, {"If-None-Match": headers["ETag"]})
        assert status == 304
    status, _, uplot = await _get(running.http, f"/static/{running.app[page.ASSETS_KEY].version}/vendor/uplot/uPlot.iife.min.js")
    assert uplot.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    status, headers, _ = await _get(running.http, "/static/0ld/site.js")  # a page from before an upgrade
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    for path in ("/static/x/nothing.js", "/static/x/../page.py", "/static/x/%2e%2e/page.py", "/static/x//etc/passwd"):
        status, _, _ = await _get(running.http, path)
        assert status == 404, path


async def test_a_bad_refresh_is_a_400_saying_what_it_takes(running):
    status, _, body = await _get(running.http, "/?refresh=0.1")
    assert status == 400 and b"refresh must be seconds from 1 to 3600" in body
    status, _, body = await _get(running.http, "/?refresh=10")
    assert status == 200 and b'data-refresh="10.0"' in body


async def test_basic_auth_covers_the_page_and_its_assets_and_shows_the_controls(tmp_path):
    running = await start_fleetd(_config(tmp_path, auth=True), clock=FakeClock())
    try:
        version = running.app[page.ASSETS_KEY].version
        for path in ("/", f"/static/{version}/site.js", "/api/v1/site"):
            status, _, _ = await _get(running.http, path)
            assert status == 401, path
        login = basic(USER, PASSWORD)
        status, _, body = await _get(running.http, "/", login)
        html = Elements(body.decode())
        assert status == 200 and html.find("form", id="demand-form") and html.find("button", id="demand-release")
        assert html.find("input", name="kw") and html.find("input", name="duration_minutes")
        assert html.find("label", **{"for": "demand-kw"}) and html.find("label", **{"for": "demand-minutes"})
        service = running.app[curtailment_api.SERVICE_KEY]
        now = running.clock.wall()
        service.controller.curtailed['a"rig'] = Curtailed("demand", "off", now, 3000.0, 1e14, now)
        running.clock.tick(1.0)  # past the shared view's second
        status, _, body = await _get(running.http, "/", login)
        assert [a["data-release"] for a in Elements(body.decode()).find("button") if "data-release" in a] == ['a"rig']
        # the controls answer the page's own origin, and refuse another site's form
        async with aiohttp.ClientSession() as session:
            demand = {"kw": 5, "duration_seconds": 600}
            async with session.post(running.http + "/api/v1/curtailment", json=demand,
                                    headers={**login, "Origin": "http://evil.example"}) as response:  # fmt: skip
                assert response.status == 403 and "another site" in (await response.json())["error"]
            async with session.delete(running.http + "/api/v1/curtailment",
                                      headers={**login, "Sec-Fetch-Site": "cross-site"}) as response:  # fmt: skip
                assert response.status == 403
            # the page's own origin; https too, as a proxy that ends TLS in front of fleetd sends it
            for origin in (running.http, running.http.replace("http:", "https:")):
                async with session.post(running.http + "/api/v1/curtailment", data=orjson.dumps(demand),
                                        headers={**login, "Origin": origin, "Content-Type": "application/json"}) as response:  # fmt: skip
                    assert response.status == 201, origin
    finally:
        await running.runner.cleanup()


async def test_without_auth_the_page_says_how_to_enable_the_controls(running):
    status, _, body = await _get(running.http, "/")
    html = body.decode()
    assert 'id="demand-form"' not in html and "data-release" not in html
    assert "The controls need basic auth" in html and "web_config_file" in html


async def test_with_the_journal_off_the_figures_say_so_and_the_events_are_a_404(tmp_path):
    running = await start_fleetd(_config(tmp_path, journal=False, economics=False), clock=FakeClock())
    try:
        status, _, body = await _get(running.http, "/")
        html = body.decode()
        assert status == 200 and 'data-journal="off"' in html
        for figure in ("chart-fleet-hashrate", "chart-fleet-power", "chart-fleet-margin"):
            assert re.search(rf'<figure id="{figure}">.*?<p class="empty">The journal is off', html, re.S), figure
        status, _, body = await _get(running.http, "/api/v1/site")
        view = orjson.loads(body)
        assert view["journal"] is False and ["journal", "off", "journal off"] in view["fleet"]["sources"]
        assert ["prices", "off", "no [economics]"] in view["fleet"]["sources"] and view["fleet"]["margin"] is None
        status, _, body = await _get(running.http, "/api/v1/curtailment/events")
        assert status == 404 and b"enabled = true" in body
    finally:
        await running.runner.cleanup()


def test_the_json_of_5000_rigs_stays_small():
    """One refresh of a 5,000-rig site: every row, in a few hundred kB raw and tens of kB gzipped."""
    from aiohttp import web

    from fleetd.bench.scrape import ECONOMICS as BENCH_ECONOMICS, populated_registry
    from fleetd.sources.demo import DemoChain
    from fleetd.telemetry import history_api
    from fleetd.telemetry.economics import SiteEconomicsView

    now = 1_700_000_000.0
    rigs = populated_registry(5000, now)
    app = web.Application()
    history_api.setup(app, None)
    api.setup(app, rigs, SiteEconomicsView(parse(BENCH_ECONOMICS).economics, rigs, DemoChain()), clock=FakeClock(wall=now))
    page.setup(app)
    body = orjson.dumps(page.site_view(app, now))
    view = orjson.loads(body)
    assert len(view["rigs"]["name"]) == 5000 and all(m is not None for m in view["rigs"]["margin"])
    assert len(body) < 700_000 and len(gzip.compress(body, 6)) < 60_000, (len(body), len(gzip.compress(body, 6)))
