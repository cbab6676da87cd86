"""The site page at ``/`` in headless Chromium, against a running ``fleetd demo``: the table
lists every rig, the charts draw from the journal, sorting, filtering, a rig's detail, the live
refresh, a screenshot with content, and the curtailment section without controls (basic auth
off). The page's elements are those of its DOM contract (ids, ``data-*`` attributes)."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse

import pytest

import pixels
from site_support import ROWS, column_values, every_listed_rig, row_names

pytestmark = pytest.mark.asyncio(loop_scope="module")

HISTORY_WAIT_S = 60.0  # the journal flushes every second: the first minute's point comes within a few
FLEET_CHARTS = ("chart-fleet-hashrate", "chart-fleet-power", "chart-fleet-margin")


async def open_page(context, demo):
    page = await context.new_page()
    await page.goto(demo.base + "/")
    await page.wait_for_selector(ROWS)
    return page


async def test_the_table_lists_every_rig_the_api_lists(demo, context):
    page = await open_page(context, demo)
    listed = sorted(rig["rig"] for rig in demo.get("/api/v1/rigs")["rigs"])
    assert sorted(await every_listed_rig(page)) == listed
    assert re.fullmatch(rf"\s*{len(listed)} of {len(listed)} rigs?\s*", await page.text_content("#rig-count"))
    assert await page.eval_on_selector_all("#rigs caption", "c => c.length") == 1
    # a rig's first cell links to its detail, the name percent-encoded
    first = (await row_names(page))[0]
    link = page.locator(f"{ROWS}[data-rig='{first}'] td:first-child a, {ROWS}[data-rig='{first}'] th a").first
    assert await link.get_attribute("href") == "#rig=" + urllib.parse.quote(first, safe="")
    assert (await link.text_content()).strip() == first


def _history_with_work(demo) -> bool:
    points = demo.get("/api/v1/fleet/history?from=" + str(int(time.time()) - 3600))["points"]
    return any(point["hashrate"] > 0 and point["watts"] for point in points)


async def wait_for_history(demo) -> None:
    """Until the journal's fleet history has a point with work and watts: a fresh demo has none."""
    deadline = time.monotonic() + HISTORY_WAIT_S
    while not await asyncio.to_thread(_history_with_work, demo):
        if time.monotonic() > deadline:
            pytest.fail(f"/api/v1/fleet/history had no point with work after {HISTORY_WAIT_S:.0f} s")
        await asyncio.sleep(0.5)


CANVAS_INK = """figure => {
    const canvas = figure.querySelector('canvas');
    if (!canvas || !canvas.width || !canvas.height) return null;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    let ink = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 0) { ink++; colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]); }
    }
    return {ink: ink / (data.length / 4), colours: colours.size};
}"""


async def test_the_fleet_charts_draw_from_the_journal(demo, context):
    await wait_for_history(demo)
    page = await open_page(context, demo)
    for chart in FLEET_CHARTS:
        figure = page.locator(f"figure#{chart}")
        assert (await figure.locator("figcaption").text_content()).strip(), chart
        await figure.locator("canvas").first.wait_for()
        # uPlot draws axes, grid and series into its canvas: a drawn plot has ink in a few colours
        await page.wait_for_function(f"() => {{ const r = ({CANVAS_INK})(document.getElementById('{chart}'));"
                                     f" return r && r.ink > 0.002 && r.colours >= 3; }}")  # fmt: skip
        ink = await figure.evaluate(CANVAS_INK)
        assert ink["ink"] > 0.002 and ink["colours"] >= 3, (chart, ink)
        # a text alternative for who cannot see the plot
        assert await figure.get_attribute("aria-label") or await figure.locator("[aria-label]").count(), chart


SORT_KEY = "watts"


async def aria_sorts(page) -> dict[str, str]:
    return await page.eval_on_selector_all(
        "#rigs thead th", "heads => Object.fromEntries(heads.map(th => [th.querySelector('button[data-sort]')"
        "?.dataset.sort, th.getAttribute('aria-sort')]))",
    )  # fmt: skip


def _direction(values: list[float | None]) -> str | None:
    known = [v for v in values if v is not None]
    if len(set(known)) < 2:
        return None  # cannot tell: the demo's rigs always differ in watts
    if known == sorted(known):
        return "ascending"
    if known == sorted(known, reverse=True):
        return "descending"
    return "unordered"


async def test_sorting_by_watts_orders_the_rows_both_ways_and_says_so(demo, context):
    page = await open_page(context, demo)
    assert set((await aria_sorts(page)).keys()) >= {"name", "state", "hashrate", "watts", "margin", "breakeven"}
    seen = []
    for _ in range(2):
        await page.click(f"#rigs thead button[data-sort='{SORT_KEY}']")
        values = await column_values(page, SORT_KEY)
        sorts = await aria_sorts(page)
        assert sorts[SORT_KEY] in ("ascending", "descending"), sorts
        assert _direction(values) == sorts[SORT_KEY], (sorts[SORT_KEY], values)
        # rigs without a figure go last either way: they are not ranked
        assert None not in values or values[values.index(None):] == [None] * (len(values) - values.index(None)), values
        assert all(v == "none" for k, v in sorts.items() if k != SORT_KEY), sorts
        seen.append(sorts[SORT_KEY])
    assert sorted(seen) == ["ascending", "descending"]


async def test_filtering_narrows_the_rows_and_the_count(demo, context):
    page = await open_page(context, demo)
    total = len(demo.rigs)
    one = demo.rigs[-1]
    await page.fill("#rig-filter", one)
    await page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length === 1")
    assert await row_names(page) == [one]
    assert re.fullmatch(rf"\s*1 of {total} rigs?\s*", await page.text_content("#rig-count"))
    await page.fill("#rig-filter", "no-such-rig-anywhere")
    await page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length === 0")
    assert re.fullmatch(rf"\s*0 of {total} rigs?\s*", await page.text_content("#rig-count"))
    await page.fill("#rig-filter", "")
    await page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length === {total}")
    # by state: every row shown is in it, and the count says how many
    await page.select_option("#state-filter", "up")
    await page.wait_for_function(f"() => [...document.querySelectorAll('{ROWS}')].every(r => r.dataset.state === 'up')")
    shown = await page.eval_on_selector_all(ROWS, "rows => rows.length")
    assert 0 < shown <= total
    assert re.fullmatch(rf"\s*{shown} of {total} rigs?\s*", await page.text_content("#rig-count"))
    options = await page.eval_on_selector_all("#state-filter option", "os => os.map(o => o.value)")
    assert {"up", "down", "curtailed", "hot"} <= set(options), options
    for control in ("rig-filter", "state-filter"):  # labelled
        assert await page.locator(f"label[for='{control}']").count() == 1, control


async def test_a_rig_link_opens_its_detail(demo, context):
    page = await open_page(context, demo)
    detail = page.locator("#rig-detail")
    assert not await detail.is_visible()
    rig = demo.rigs[0]
    await page.locator(f"{ROWS}[data-rig='{rig}'] a[href^='#rig=']").click()
    await detail.wait_for(state="visible")
    assert rig in await page.text_content("#rig-detail-title")
    assert urllib.parse.unquote(await page.evaluate("location.hash")) == f"#rig={rig}"
    assert await detail.locator("dl").count() >= 1
    # from the rig's own history: its hash rate has points from its first shares; its power only
    # once the journal has its energy (a young demo may not), and the figure then says so
    await detail.locator("figure#chart-rig-hashrate canvas").first.wait_for()
    await detail.locator("figure#chart-rig-power canvas, figure#chart-rig-power p.empty").first.wait_for()
    await page.click("#rig-detail-close")
    await detail.wait_for(state="hidden")
    # the same detail straight from a link someone was sent
    linked = await context.new_page()
    await linked.goto(f"{demo.base}/#rig={urllib.parse.quote(rig, safe='')}")
    await linked.locator("#rig-detail").wait_for(state="visible")
    assert rig in await linked.text_content("#rig-detail-title")


async def test_the_live_refresh_changes_the_page_without_reloading_it(demo, context):
    page = await open_page(context, demo)
    updated = page.locator("time#updated")
    await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
    first = float(await updated.get_attribute("data-updated"))
    assert abs(first - time.time()) < 60
    await page.evaluate("window.__stillTheSamePage = true")
    # the default refresh is 5 s: three of them are the bound
    await page.wait_for_function(
        "first => Number(document.querySelector('time#updated').dataset.updated) > first", arg=first, timeout=20_000
    )
    assert await page.evaluate("window.__stillTheSamePage") is True
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert await page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"
    assert (await updated.text_content()).strip()


async def test_a_screenshot_of_the_page_has_content(demo, context):
    await wait_for_history(demo)
    page = await open_page(context, demo)
    await page.locator(f"figure#{FLEET_CHARTS[0]} canvas").first.wait_for()
    shot = pixels.content(await page.screenshot())
    # a blank page is one colour; text, a table and plots are many, over a good part of the page
    assert shot.colours >= 50, shot
    assert shot.foreground_share > 0.05, shot


async def test_without_basic_auth_the_curtailment_section_says_how_to_enable_the_controls(demo, context):
    page = await open_page(context, demo)
    section = page.locator("section#curtailment")
    await section.wait_for()
    assert await section.get_attribute("aria-label") == "Curtailment"
    assert await page.locator("#demand-form").count() == 0
    assert await page.locator("button[data-release], #demand-release").count() == 0
    assert re.search(r"basic.?auth|web_config", await section.text_content(), re.I), await section.text_content()


FLEET_FIELDS = {"hashrate", "power", "efficiency", "hashprice", "revenue", "cost", "margin", "breakeven", "adjustment",
                "sources"}  # fmt: skip
SORT_KEYS = {"name", "state", "hashrate", "reported", "nominal", "rejects", "watts", "efficiency", "temperature",
             "margin", "breakeven"}  # fmt: skip


async def test_the_page_keeps_its_contract_and_loads_nothing_from_elsewhere(demo, context):
    requested = []
    context.on("request", lambda request: requested.append(request.url))
    page = await open_page(context, demo)
    await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
    # offline: every request went to fleetd, and the assets are versioned and cached for long
    assert requested and all(url.startswith(demo.base + "/") for url in requested), requested
    assets = [url for url in requested if "/static/" in url]
    assert assets and all(re.search(r"/static/[^/]+/.+", url) for url in assets), assets
    response = await context.request.get(assets[0])
    assert response.ok and "max-age=" in response.headers["cache-control"], response.headers
    assert await page.evaluate("document.documentElement.lang") == "en" and (await page.title()).strip()
    assert await page.locator("h1").count() == 1
    assert await page.locator("header").count() >= 1 and await page.locator("main").count() == 1
    fields = await page.eval_on_selector_all("section#fleet [data-field]", "els => els.map(e => e.dataset.field)")
    assert set(fields) == FLEET_FIELDS, fields
    for field in FLEET_FIELDS:  # each a term and its value
        entry = page.locator(f"section#fleet [data-field='{field}']")
        assert (await entry.locator("dt").text_content()).strip() and await entry.locator("dd").count() == 1, field
    assert set((await aria_sorts(page)).keys()) == SORT_KEYS
    assert await page.eval_on_selector_all("#page-size option", "os => os.map(o => o.value)") == ["50", "100", "500"]
    assert await page.input_value("#page-size") == "100"
    assert await page.eval_on_selector_all("#history-range option", "os => os.map(o => o.value)") == [
        "1h", "6h", "24h", "7d"]  # fmt: skip
    assert await page.locator("ol#curtailment-events").count() == 1
    assert re.search(r"page 1 of 1", await page.text_content("#page-info"))
