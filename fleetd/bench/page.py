"""``fleetd bench page``: what the site page at ``/`` costs at 5,000 rigs against 50.

fleetd runs in this process on the demo chain, its registry filled as the scrape bench fills
it (every rig connected, sharing, polled and priced; no sockets per rig) and its journal
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
import dataclasses
import gzip
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fleetd import app as fleetd_app
from fleetd.bench.scrape import ECONOMICS, populate
from fleetd.config import Config, HostPort, HttpConfig, JournalConfig, RigsConfig, StratumConfig, parse
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
TABLE_ROWS = "#rigs tbody tr[data-rig]"


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
