"""The site snapshot is computed at most once per interval on the app's clock and shared by
/metrics and the API; a curtailment plan is solved once per snapshot and target."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from fake_clock import FakeClock
from fleetd.config import parse
from fleetd.economics import site
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import RigRegistry
from fleetd.sources.demo import DemoChain
from fleetd.telemetry import api
from fleetd.telemetry import economics as view_module
from fleetd.telemetry.economics import SNAPSHOT_INTERVAL_SECONDS, SiteEconomicsView

ECONOMICS = """
[economics]
btc_price_usd = 77000
power_price_usd_per_kwh = 0.06
fees_btc_per_block = 0.025
curtail_target_kw = 10
"""


def populated(clock: FakeClock, count: int = 50) -> RigRegistry:
    registry, now = RigRegistry(poll_interval=30.0), clock.wall()
    for i in range(count):
        name, ip = f"rig{i:03d}", f"10.0.0.{i + 1}"
        registry.connected(name, ip, now - 600)
        for k in range(20):
            registry.share(name, 65536.0 * (1 + i % 5), now - 600 + 30 * k)
        registry.reading(RigReading(ip=ip, time=now, model="S19", firmware="stock", hashrate=95e12,
                                    watts=3000.0 + 7.3 * i, temperatures={}, fans={}))  # fmt: skip
    return registry


class Counting:
    """Wraps a function and counts its calls."""

    def __init__(self, monkeypatch, module, name: str) -> None:
        self.calls, inner = 0, getattr(module, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


@pytest.fixture
async def served():
    clock = FakeClock()
    registry = populated(clock)
    view = SiteEconomicsView(parse(ECONOMICS).economics, registry, DemoChain())
    app = web.Application()
    api.setup(app, registry, view, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> tuple[int, bytes]:
            async with session.get(base + path) as response:
                return response.status, await response.read()

        yield clock, get
    await runner.cleanup()


async def test_many_requests_share_one_snapshot_per_interval(served, monkeypatch):
    clock, get = served
    snapshots = Counting(monkeypatch, view_module, "site_economics")
    solves = Counting(monkeypatch, site, "curtail_for_reduction")
    for _ in range(10):  # 40 requests at one moment: one snapshot, one plan per target
        for path in ("/metrics", "/api/v1/rigs", "/api/v1/economics", "/api/v1/economics?curtail_kw=25"):
            status, _ = await get(path)
            assert status == 200
    assert snapshots.calls == 1
    assert solves.calls == 2  # the configured 10 kW (in the snapshot) and the 25 kW asked for

    clock.tick(SNAPSHOT_INTERVAL_SECONDS / 2)  # still the same snapshot
    for _ in range(10):
        await get("/api/v1/economics?curtail_kw=25")
    assert (snapshots.calls, solves.calls) == (1, 2)

    clock.tick(SNAPSHOT_INTERVAL_SECONDS / 2)  # a new interval: one new snapshot, plans solved again
    for _ in range(10):
        await get("/api/v1/economics?curtail_kw=25")
        await get("/metrics")
    assert (snapshots.calls, solves.calls) == (2, 4)


async def test_a_client_asking_for_every_target_pays_one_bounded_solve_each(served, monkeypatch):
    _, get = served
    snapshots = Counting(monkeypatch, view_module, "site_economics")
    solves = Counting(monkeypatch, site, "curtail_for_reduction")
    for kw in range(1, 201):
        status, _ = await get(f"/api/v1/economics?curtail_kw={kw}")
        assert status == 200
    assert snapshots.calls == 1 and solves.calls == 1 + 199  # 10 kW is the snapshot's own plan


def test_a_snapshot_follows_a_new_price_and_a_clock_that_went_back():
    clock = FakeClock()
    view = SiteEconomicsView(parse(ECONOMICS).economics, populated(clock), DemoChain())
    now = clock.wall()
    first = view.snapshot(now)
    assert view.snapshot(now + 0.5) is first
    assert view.snapshot(now - 5).now == now - 5  # wall time stepped back: never a snapshot from the future
    view.quote = lambda: site.BtcQuote(90_000.0, "configured")  # a new price is shown at once
    assert view.snapshot(now - 5).btc_usd == 90_000.0


def test_the_plan_for_another_target_is_that_of_a_full_snapshot():
    clock = FakeClock()
    view = SiteEconomicsView(parse(ECONOMICS).economics, populated(clock), DemoChain())
    now = clock.wall()
    cached = view.snapshot(now, 40.0)
    fresh = view.compute(now, 40.0)
    assert cached.curtail_plan == fresh.curtail_plan and cached.curtail_target_kw == 40.0
    assert view.snapshot(now, 0.0).curtail_plan is None
    assert view.snapshot(now).curtail_plan == view.compute(now).curtail_plan
