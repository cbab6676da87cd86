"""``fleetd bench page``: what the site page at ``/`` costs at 5,000 rigs against 50.

fleetd runs in this process on the demo chain, its registry filled as the scrape bench fills
it (every rig connected, sharing, polled and priced; no sockets per rig; each rig's latest
shares differing in number, so the rows differ as a site's do) and its journal
holding six hours of the fleet's minutes, so the page has a table and charts to draw. For
each size it measures:

- the payload: the page's HTML, scripts and styles and one ``/api/v1/site`` answer, raw and
  gzipped (what a browser on the LAN downloads on its first visit);
- the server time of ``/api/v1/site`` (wall time of the request over loopback);
- in headless Chromium: navigation to the table's first page rendered and the three fleet
  charts drawn, one live refresh (``/api/v1/site`` fetched and the page re-rendered), and
  one sort of every rig by watts.

Medians over ``repeats``; the verdict is the ratio of the large site to the small one,
measured in the same run on the same machine.

Chromium is Debian's (``apt-get install chromium``), driven by playwright's client without
its own browser download, with the flags of a closed network.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fleetd import app as fleetd_app
from fleetd import log as logs
from fleetd.bench.scrape import ECONOMICS, populate
from fleetd.config import Config, HostPort, HttpConfig, JournalConfig, RigsConfig, StratumConfig, parse
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.journal.store import MINUTE, FlushRows, JournalStore, Rollup
from fleetd.telemetry import api

# A closed site network: nothing to phone home to, no GPU, no sandbox in containers.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
INSTALL_HINT = "install Debian's chromium (apt-get install chromium; bash deploy/quickstart.sh test does)"
BROWSER_TIMEOUT_S = 60.0  # any one browser step; past this it is broken, not slow
HISTORY_HOURS = 6  # the page's default range
FLEET_CHARTS = ("chart-fleet-hashrate", "chart-fleet-power", "chart-fleet-margin")


class BenchError(RuntimeError):
    pass


def chromium_path() -> str:
    """Debian's chromium, or an error saying how to install it."""
    path = shutil.which("chromium")
    if path is None:
        raise BenchError(f"no chromium on PATH: {INSTALL_HINT}")
    return path


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    """A playwright Browser on Debian's chromium; playwright gives each launch a fresh profile
    directory of its own and removes it on close."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise BenchError(f"playwright is not installed ({exc}): pip install playwright (the test extra)") from None
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS), timeout=BROWSER_TIMEOUT_S * 1000
        )
        try:
            yield browser
        finally:
            await asyncio.wait_for(browser.close(), BROWSER_TIMEOUT_S)


# -- a site of N rigs ---------------------------------------------------------------------------


def _history(path: Path, rigs: int, now: float) -> None:
    """``HISTORY_HOURS`` of the fleet's minutes in a new journal at ``path``: the fleet's own rows
    (what the fleet history reads), a day-long swell of a tenth in its rate and draw."""
    store = JournalStore(path)
    store.open(now)
    rows = FlushRows()
    last = int(now) // MINUTE * MINUTE
    for start in range(last - HISTORY_HOURS * 3600, last, MINUTE):
        swell = 1.0 + 0.1 * math.sin(2 * math.pi * start / 86400)
        hashrate, watts = rigs * 150e12 * swell, rigs * 3300.0 * swell  # a mixed fleet's mean rig
        revenue = hashrate / 1e15 * 35.0 / 1440  # $35/PH/day, for a minute
        rollup = Rollup(
            accepted=rigs * 60, accepted_work=hashrate * MINUTE / 2**32, energy_joules=watts * MINUTE,
            revenue_usd=revenue, cost_usd=watts / 1000 / 60 * 0.06, watts=watts, reported_hashrate=hashrate,
        )  # fmt: skip
        rows.add_rollup("bench.fleet", start, rollup)
        rows.fleet_minute(start, rigs, hashrate)
    store.write_flush(rows)
    store.close()


def _vary(registry, now: float, seed: int = 1) -> None:
    """A few more shares for each rig, a different number each, in its last half minute: the
    scrape bench's rigs are alike, and a page of like rows would gzip better than a site's."""
    rng = random.Random(seed)
    for rig in list(registry):
        for t in sorted(now - 29 * rng.random() for _ in range(rng.randrange(40))):
            registry.share(rig.name, 65536.0 * (0.5 + rng.random()), t)


def site_config(
    workdir: Path, web_config_file: str = "", *, journal: bool = True, curtailment: CurtailmentConfig | None = None
) -> Config:
    """fleetd on loopback with the demo chain, no rig polls (the rigs are the registry's), the
    scrape bench's prices and a journal in ``workdir`` (unless ``journal`` is false)."""
    return Config(
        stratum=StratumConfig(listen=HostPort("127.0.0.1", 0)),
        http=HttpConfig(listen=HostPort("127.0.0.1", 0), web_config_file=web_config_file),
        rigs=RigsConfig(poll=False),
        journal=JournalConfig(enabled=journal, path=str(workdir / "journal.sqlite3")),
        economics=parse(ECONOMICS).economics,
        curtailment=curtailment or CurtailmentConfig(),
    )


@contextlib.asynccontextmanager
async def serve_site(
    rigs: int, workdir: Path, *, web_config_file: str = "", journal: bool = True,
    curtailment: CurtailmentConfig | None = None,
) -> AsyncIterator[str]:  # fmt: skip
    """fleetd in this process with ``rigs`` rigs in its registry (no sockets of theirs) and six
    hours of fleet history (or no journal); yields the HTTP listener's base URL."""
    now = time.time()
    config = site_config(workdir, web_config_file, journal=journal, curtailment=curtailment)
    if journal:
        _history(Path(config.journal.path), rigs, now)
    app = fleetd_app.build_app(config)
    populate(app[api.RIGS_KEY], rigs, now)
    _vary(app[api.RIGS_KEY], now)
    runner = await fleetd_app.start_http(app)
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# -- measurements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload:
    html: tuple[int, int]  # bytes raw, bytes as sent gzipped
    assets: tuple[int, int]  # every script and style the page links
    site: tuple[int, int]  # one /api/v1/site answer
    asset_count: int

    @property
    def total(self) -> tuple[int, int]:
        return tuple(a + b + c for a, b, c in zip(self.html, self.assets, self.site))


@dataclass(frozen=True, slots=True)
class PageTiming:
    rigs: int
    payload: Payload
    site_seconds: float  # median wall time of GET /api/v1/site over loopback
    table_seconds: float  # median, navigation to the table's first page rendered by the script
    charts_seconds: float  # median, navigation to the three fleet charts drawn
    refresh_seconds: float  # median, a live refresh's fetch started to the page re-rendered
    sort_seconds: float  # median, a sort of every rig by watts: the click's handler
    sort_frame_seconds: float  # ... and the click to the next frame drawn
    rows_shown: int  # rows in the DOM once loaded (the first page)


ASSET_URL = re.compile(r"""(?:src|href)="(/static/[^"]+\.(?:js|css))\"""")


async def _bytes(session: aiohttp.ClientSession, url: str, gzipped: bool) -> int:
    headers = {"Accept-Encoding": "gzip" if gzipped else "identity"}
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            raise BenchError(f"GET {url}: {response.status} {await response.text()}")
        return len(await response.read())


async def payload(base: str) -> Payload:
    async with aiohttp.ClientSession(base, auto_decompress=False, timeout=aiohttp.ClientTimeout(60)) as session:
        async with session.get("/", headers={"Accept-Encoding": "identity"}) as response:
            html = await response.text()
            if response.status != 200:
                raise BenchError(f"GET /: {response.status} {html[:200]}")
        assets = sorted(set(ASSET_URL.findall(html)))
        if not assets:
            raise BenchError("GET / links no script or style under /static/")
        sizes = {}
        for label, urls in (("html", ["/"]), ("assets", assets), ("site", ["/api/v1/site"])):
            raw = [await _bytes(session, url, False) for url in urls]
            sent = [await _bytes(session, url, True) for url in urls]
            sizes[label] = (sum(raw), sum(sent))
    return Payload(sizes["html"], sizes["assets"], sizes["site"], len(assets))


async def site_seconds(base: str, repeats: int) -> float:
    times = []
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(60)) as session:
        for _ in range(repeats + 1):  # the first warms the connection and the economics snapshot
            started = time.perf_counter()
            async with session.get("/api/v1/site") as response:
                await response.read()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


# Once the script has rendered the table (its count says "N of M") and uPlot the three charts,
# the times since navigation began
LOADED = """charts => {
    const count = document.querySelector('#rig-count')?.textContent || '';
    const rows = document.querySelectorAll('#rigs tbody tr[data-rig]').length;
    if (!/\\d+ of \\d+/.test(count) || !rows) return false;
    window.__tableAt ??= performance.now();
    const drawn = charts.every(id => document.querySelector(`#${id} canvas, #${id} .empty`));
    return drawn ? {table: window.__tableAt, charts: performance.now(), rows} : false;
}"""
# The next live refresh: from its fetch of /api/v1/site starting to #updated changing
REFRESH = """() => new Promise(resolve => {
    const updated = document.querySelector('time#updated');
    new MutationObserver((_, observer) => {
        const at = performance.now();
        observer.disconnect();
        const fetches = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/site'));
        resolve(at - fetches[fetches.length - 1].startTime);
    }).observe(updated, {attributes: true, attributeFilter: ['data-updated']});
})"""
# A sort of every rig by watts: the click's handler (sorting and rendering the page of rows),
# and the click to the next frame drawn
SORT = """async () => {
    const button = document.querySelector('#rigs thead button[data-sort="watts"]');
    const before = button.closest('th').getAttribute('aria-sort');
    const started = performance.now();
    button.click();
    const handled = performance.now();
    await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve)));
    const drawn = performance.now();
    if (button.closest('th').getAttribute('aria-sort') === before) throw new Error('aria-sort did not change');
    return [handled - started, drawn - started];
}"""


async def browser_times(browser, base: str, repeats: int) -> tuple[float, float, float, float, float, int]:
    """Medians in seconds: table, charts, refresh, sort (handler, frame); and the rows shown."""
    loads, refreshes, sorts, rows = [], [], [], 0
    for _ in range(repeats):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})  # a first visit: nothing cached
        context.set_default_timeout(BROWSER_TIMEOUT_S * 1000)
        try:
            page = await context.new_page()
            await page.goto(base + "/?refresh=1")
            loaded = await (await page.wait_for_function(LOADED, arg=list(FLEET_CHARTS))).json_value()
            loads.append((loaded["table"] / 1000, loaded["charts"] / 1000))
            rows = loaded["rows"]
            refreshes.append(await page.evaluate(REFRESH) / 1000)
            sorts.append([ms / 1000 for ms in await page.evaluate(SORT)])
        finally:
            await context.close()
    return (
        statistics.median(t for t, _ in loads), statistics.median(c for _, c in loads),
        statistics.median(refreshes), statistics.median(s for s, _ in sorts), statistics.median(f for _, f in sorts),
        rows,
    )  # fmt: skip


async def measure_site(browser, rigs: int, repeats: int) -> PageTiming:
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-page-") as workdir:
        async with serve_site(rigs, Path(workdir)) as base:
            size = await payload(base)
            server = await site_seconds(base, repeats)
            table, charts, refresh, sort, frame, shown = await browser_times(browser, base, repeats)
    return PageTiming(rigs, size, server, table, charts, refresh, sort, frame, shown)


async def measure(sizes: tuple[int, ...] = (5_000, 50), repeats: int = 5) -> tuple[PageTiming, ...]:
    async with chromium() as browser:
        return tuple([await measure_site(browser, rigs, repeats) for rigs in sizes])


def run(sizes: tuple[int, ...] = (5_000, 50), repeats: int = 5) -> tuple[PageTiming, ...]:
    logs.configure("error", "console", stream=sys.stderr)  # the daemon's own lines would fall between the report's
    return asyncio.run(measure(sizes, repeats))


def _kib(pair: tuple[int, int]) -> str:
    return f"{pair[0] / 1024:>9,.1f} KiB {pair[1] / 1024:>8,.1f} KiB"


def _ratio(large: float, small: float) -> str:
    return f"{large / small:>7.1f}x" if small > 0 else "      -"


def format_report(results: tuple[PageTiming, ...], repeats: int) -> str:
    large, small = results[0], results[-1]
    sites = (f"{large.rigs:,} rigs", f"{small.rigs:,} rigs")
    lines = [
        f"fleetd bench page: the site page at / for {' and '.join(f'{r.rigs:,}' for r in results)} rigs, "
        f"median of {repeats} first visits in headless Chromium",
        f"  {'payload (raw / gzipped as sent)':<40}{sites[0]:>26}  {sites[1]:>26}{'ratio':>8}",
    ]
    parts = (
        ("HTML", lambda p: p.html), (f"scripts and styles ({large.payload.asset_count} files)", lambda p: p.assets),
        ("/api/v1/site", lambda p: p.site), ("total", lambda p: p.total),
    )  # fmt: skip
    for label, pick in parts:
        lines.append(f"    {label:<38}{_kib(pick(large.payload))}  {_kib(pick(small.payload))}"
                     f"{_ratio(pick(large.payload)[1], pick(small.payload)[1])}")  # fmt: skip
    lines.append(f"  {'times (median)':<40}{sites[0]:>15}{sites[1]:>16}{'ratio':>8}")
    for label, pick in (
        ("/api/v1/site on the server", lambda t: t.site_seconds),
        ("navigation to the table's first page", lambda t: t.table_seconds),
        ("navigation to the fleet charts drawn", lambda t: t.charts_seconds),
        ("one live refresh (fetch to rendered)", lambda t: t.refresh_seconds),
        ("one sort of every rig by watts", lambda t: t.sort_seconds),
        ("... to the next frame drawn", lambda t: t.sort_frame_seconds),
    ):
        lines.append(f"    {label:<38}{pick(large) * 1e3:>12,.1f} ms{pick(small) * 1e3:>13,.1f} ms"
                     f"{_ratio(pick(large), pick(small))}")  # fmt: skip
    lines.append("  ratio: the large site's over the small one's (of the payload: the gzipped bytes)")
    lines.append(f"  rows in the DOM after loading: {large.rows_shown:,} of {large.rigs:,}, "
                 f"{small.rows_shown:,} of {small.rigs:,} (paged)")  # fmt: skip
    return "\n".join(lines)
