"""The site page in a real browser: Debian's chromium, driven by playwright, against a real
``fleetd demo`` in a subprocess (``demo_support``) or, where a test needs a site the demo cannot
make, fleetd in this process on loopback. Every wait is bounded."""

from __future__ import annotations

import pytest
import pytest_asyncio

from demo_support import DemoError, running_demo
from fleetd.bench import page

STEP_TIMEOUT_MS = 20_000  # any one browser action or wait


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A ``fleetd demo`` of ``DEMO_RIGS`` rigs for a whole test module."""
    try:
        with running_demo(tmp_path_factory.mktemp("demo")) as running:
            yield running
    except DemoError as exc:
        pytest.fail(str(exc))


def _chromium_or_fail() -> None:
    try:
        page.chromium_path()
    except page.BenchError as exc:
        pytest.fail(str(exc))  # not a skip: the page's tests would pass without checking anything


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """Headless chromium for a whole test module, closed afterwards."""
    _chromium_or_fail()
    async with page.chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser):
    """A fresh browser context (cookies, cache, storage) per test."""
    new = await browser.new_context(viewport={"width": 1280, "height": 900})
    new.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield new
    finally:
        await new.close()
