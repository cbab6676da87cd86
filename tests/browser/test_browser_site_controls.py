"""The site page in headless Chromium against fleetd in this process, for sites the demo does
not make: 250 rigs (paging, and sorting over every rig before paging) and basic auth (the
curtailment controls, which post to /api/v1/curtailment)."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import aiohttp
import bcrypt
import pytest
import pytest_asyncio

import axe_support
from fleetd.bench import page as bench_page
from fleetd.curtailment.settings import CurtailmentConfig
from site_support import ROWS, column_values, every_listed_rig, row_names

pytestmark = pytest.mark.asyncio(loop_scope="module")

MANY_RIGS = 250  # three pages of the default 100
USER, PASSWORD = "operator", "grid-call"
API_WAIT_S = 20.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def large_site(tmp_path_factory):
    async with bench_page.serve_site(MANY_RIGS, tmp_path_factory.mktemp("large")) as base:
        yield base


async def api(base: str, path: str, *, auth: bool = False) -> dict:
    headers = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()} if auth else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(10)) as session:
        async with session.get(base + path) as response:
            return await response.json()


async def test_a_large_site_is_paged_and_every_rig_is_on_a_page(large_site, context):
    page = await context.new_page()
    await page.goto(large_site + "/")
    await page.wait_for_selector(ROWS)
    listed = sorted(rig["rig"] for rig in (await api(large_site, "/api/v1/rigs"))["rigs"])
    assert len(listed) == MANY_RIGS
    assert len(await row_names(page)) == 100  # the default page size
    assert re.search(r"page 1 of 3", await page.text_content("#page-info"))
    assert sorted(await every_listed_rig(page)) == listed
    assert re.search(r"page 3 of 3", await page.text_content("#page-info"))
    await page.select_option("#page-size", "500")
    await page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length === {MANY_RIGS}")
    assert re.search(r"page 1 of 1", await page.text_content("#page-info"))


async def test_a_sort_orders_every_rig_before_paging(large_site, context):
    page = await context.new_page()
    await page.goto(large_site + "/")
    await page.wait_for_selector(ROWS)
    await page.click("#rigs thead button[data-sort='watts']")
    direction = await page.get_attribute("#rigs thead th:has(button[data-sort='watts'])", "aria-sort")
    assert direction in ("ascending", "descending")
    values = await column_values(page, "watts")
    for _ in range(2):  # pages 2 and 3 go on where page 1 stopped
        before = await page.text_content("#page-info")
        await page.click("#page-next")
        await page.wait_for_function("b => document.querySelector('#page-info').textContent !== b", arg=before)
        values += await column_values(page, "watts")
    known = [v for v in values if v is not None]
    assert len(values) == MANY_RIGS and len(set(known)) > 1
    assert known == sorted(known, reverse=direction == "descending"), known


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded_site(tmp_path_factory):
    """fleetd with basic auth, so the curtailment controls are allowed, acting every second; with
    no rig API to call, a rig it holds fails to stop at once and stays held, failed."""
    folder = tmp_path_factory.mktemp("auth")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap rounds: a test
    (folder / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    acting = CurtailmentConfig(mode="act", cycle_seconds=1.0, retries=0)
    async with bench_page.serve_site(3, folder, web_config_file=str(folder / "web.yml"), curtailment=acting) as base:
        yield base


async def wait_for_curtailment(base: str, ready) -> dict:
    deadline = time.monotonic() + API_WAIT_S
    while not ready(state := await api(base, "/api/v1/curtailment", auth=True)):
        if time.monotonic() > deadline:
            pytest.fail(f"/api/v1/curtailment never got there in {API_WAIT_S:.0f} s: demand {state['demand']}, "
                        f"held {state['rigs']}")  # fmt: skip
        await asyncio.sleep(0.2)
    return state


async def test_with_basic_auth_a_demand_request_is_posted_shown_and_released(guarded_site, browser):
    context = await browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    context.set_default_timeout(20_000)
    try:
        page = await context.new_page()
        await page.goto(guarded_site + "/")
        form = page.locator("form#demand-form")
        await form.wait_for()
        for name in ("kw", "duration_minutes"):  # each input has a label
            assert await form.locator(f"input[name='{name}']").evaluate("i => i.labels.length") >= 1, name
        result = await axe_support.run(page)
        assert not result["violations"], "with the controls:\n" + axe_support.describe(result["violations"])
        await form.locator("input[name='kw']").fill("7")
        await form.locator("input[name='duration_minutes']").fill("15")
        await form.locator("button[type='submit'], input[type='submit']").first.click()
        state = await wait_for_curtailment(guarded_site, lambda s: s["demand"] is not None)
        assert state["demand"]["kw"] == 7
        assert 14 * 60 < state["demand"]["until"] - time.time() <= 15 * 60
        section = page.locator("section#curtailment")
        await page.wait_for_function(
            "() => /\\b7(\\.0+)?\\s*kW/.test(document.querySelector('section#curtailment').textContent)"
        )
        # a rig the demand has it hold (failed, here) is released with its own button
        state = await wait_for_curtailment(guarded_site, lambda s: s["rigs"])
        rig = state["rigs"][0]["rig"]
        await page.click(f"button[data-release='{rig}']")
        await wait_for_curtailment(
            guarded_site, lambda s: any(e["kind"] == "released" and e["rig"] == rig for e in s["recent_events"])
        )
        await page.click("#demand-release")
        await wait_for_curtailment(guarded_site, lambda s: s["demand"] is None)
        await page.wait_for_function(
            "() => !/demand[^.]*\\b7(\\.0+)?\\s*kW/i.test(document.querySelector('section#curtailment').textContent)"
        )
        assert await section.is_visible()
    finally:
        await context.close()


async def test_without_the_login_the_page_is_refused(guarded_site, context):
    for path in ("/", "/api/v1/site"):
        response = await context.request.get(guarded_site + path)
        assert response.status == 401 and "Basic" in response.headers["www-authenticate"], path


async def test_with_the_journal_off_the_figures_say_so_instead_of_drawing(tmp_path, context):
    async with bench_page.serve_site(3, tmp_path, journal=False) as base:
        page = await context.new_page()
        await page.goto(base + "/")
        await page.wait_for_selector(ROWS)
        await page.wait_for_function("() => document.querySelector('time#updated')?.dataset.updated")
        for chart in bench_page.FLEET_CHARTS:
            figure = page.locator(f"figure#{chart}")
            assert re.search(r"journal", await figure.locator("p.empty").text_content(), re.I), chart
            assert await figure.locator("canvas").count() == 0, chart
