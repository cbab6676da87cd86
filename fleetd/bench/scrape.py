"""``fleetd bench telemetry`` (scrape part): /metrics for a site of N registered rigs.

Every rig is fully populated (shares, three reject reasons, a poll with temperatures and
fans, power) so each carries every per-rig series, economics included (a site price, a
rack on its own contract, a curtailment target). The verdict is a ratio from the run:
the CPU share one scrape per 15 s interval costs the daemon's single core.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from fleetd.config import parse
from fleetd.economics.curtailment import DP_CELL_BUDGET, curtail_for_reduction
from fleetd.rigs.models import CATALOGUE
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import RigRegistry
from fleetd.sources.demo import DemoChain
from fleetd.telemetry.api import metrics_text
from fleetd.telemetry import economics
from fleetd.telemetry.economics import SiteEconomicsView

SCRAPE_INTERVAL = 15.0  # seconds: a common Prometheus scrape_interval


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    rigs: int
    series: int
    bytes: int
    seconds_median: float
    seconds_p90: float
    economics_seconds_median: float  # of which the economics snapshot and its families
    plan_seconds_median: float = 0.0  # one ?curtail_kw= plan for a third of the site's draw
    plan_cells: int = 0  # dynamic-programming cells that plan computed (bounded by DP_CELL_BUDGET)

    @property
    def core_share(self) -> float:
        """Fraction of one core the daemon spends on scrapes at SCRAPE_INTERVAL."""
        return self.seconds_median / SCRAPE_INTERVAL


def populated_registry(rigs: int, now: float) -> RigRegistry:
    return populate(RigRegistry(poll_interval=30.0), rigs, now)


def populate(registry: RigRegistry, rigs: int, now: float) -> RigRegistry:
    """``registry`` with ``rigs`` more rigs, each connected, sharing and polled up to ``now``."""
    for i in range(rigs):
        model = CATALOGUE[i % len(CATALOGUE)]
        name, ip = f"site.rig{i:05d}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        registry.connected(name, ip, now - 600)
        for k in range(20):
            registry.share(name, 65536.0, now - 600 + 30 * k)
        for reason in ("stale", "duplicate", "low_difficulty"):
            registry.reject(name, reason, now - 60)
        for t in (now - 30, now):
            registry.reading(RigReading(
                ip=ip, time=t, model=model.name, firmware="stock", hashrate=model.nominal_hashrate,
                watts=None if i % 2 else model.nominal_watts,
                temperatures={"chip0": 71.0, "chip1": 70.5, "chip2": 72.0, "board0": 60.0, "board1": 61.0, "board2": 59.0},
                fans={"0": 4800.0, "1": 4750.0, "2": 4790.0, "3": 4810.0},
            ))  # fmt: skip
    return registry


ECONOMICS = """
[economics]
btc_price_usd = 77000
power_price_usd_per_kwh = 0.06
fees_btc_per_block = 0.025
curtail_target_kw = 500
[[economics.power_override]]
rigs = ["site.rig0*"]
usd_per_kwh = 0.05
"""


def measure(rigs: int = 10_000, repeats: int = 7) -> ScrapeResult:
    now = time.time()
    registry, daemon = populated_registry(rigs, now), CollectorRegistry(auto_describe=False)
    view = SiteEconomicsView(parse(ECONOMICS).economics, registry, DemoChain())
    # compute(): a new snapshot each time, as the handler's shared one is once per interval
    snap = view.compute(now)
    body = metrics_text(registry, daemon, now, snap)  # exactly what the /metrics handler sends
    target_kw = snap.fleet.watts / 3000 if snap.fleet is not None else 0.0
    times, economics_times, plan_times = [], [], []
    for _ in range(repeats):
        started = time.process_time()
        metrics_text(registry, daemon, now, view.compute(now))
        times.append(time.process_time() - started)
        started = time.process_time()
        economics.render(view.compute(now))
        economics_times.append(time.process_time() - started)
        started = time.process_time()
        plan = curtail_for_reduction(snap.rigs, target_kw)
        plan_times.append(time.process_time() - started)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return ScrapeResult(
        rigs, series, len(body), statistics.median(times), sorted(times)[int(0.9 * (repeats - 1))],
        statistics.median(economics_times), statistics.median(plan_times), plan.cells,
    )  # fmt: skip


def format_scrape(result: ScrapeResult) -> str:
    return "\n".join(
        [
            f"scrape: /metrics for {result.rigs:,} registered rigs, median of CPU time over repeated scrapes",
            f"  series                                   {result.series:>12,}",
            f"  body                                     {result.bytes / 2**20:>12.1f} MiB",
            f"  CPU per scrape (median / p90)            {result.seconds_median:>12.3f} s / {result.seconds_p90:.3f} s",
            f"  of which economics (snapshot + families) {result.economics_seconds_median:>12.3f} s",
            f"  CPU per rig                              {result.seconds_median / result.rigs * 1e6:>12.1f} µs",
            f"  curtailment plan for a third of the site {result.plan_seconds_median * 1e3:>12.2f} ms "
            f"({result.plan_cells:,} of {DP_CELL_BUDGET:,} table cells; once per snapshot and target)",
            f"  one core's share at a {SCRAPE_INTERVAL:.0f} s scrape interval {result.core_share:>9.1%}",
        ]
    )
