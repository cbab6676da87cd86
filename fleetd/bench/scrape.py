"""``fleetd bench telemetry`` (scrape part): /metrics for a site of N registered rigs.

Every rig is fully populated (shares, three reject reasons, a poll with temperatures and
fans, power) so each carries every per-rig series. The verdict is a ratio from the run:
the CPU share one scrape per 15 s interval costs the daemon's single core.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from fleetd.rigs.models import CATALOGUE
from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import RigRegistry
from fleetd.telemetry.api import metrics_text

SCRAPE_INTERVAL = 15.0  # seconds: a common Prometheus scrape_interval


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    rigs: int
    series: int
    bytes: int
    seconds_median: float
    seconds_p90: float

    @property
    def core_share(self) -> float:
        """Fraction of one core the daemon spends on scrapes at SCRAPE_INTERVAL."""
        return self.seconds_median / SCRAPE_INTERVAL


def populated_registry(rigs: int, now: float) -> RigRegistry:
    registry = RigRegistry(poll_interval=30.0)
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


def measure(rigs: int = 10_000, repeats: int = 7) -> ScrapeResult:
    now = time.time()
    registry, daemon = populated_registry(rigs, now), CollectorRegistry(auto_describe=False)
    body = metrics_text(registry, daemon, now)  # exactly what the /metrics handler sends
    times = []
    for _ in range(repeats):
        started = time.process_time()
        metrics_text(registry, daemon, now)
        times.append(time.process_time() - started)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return ScrapeResult(rigs, series, len(body), statistics.median(times), sorted(times)[int(0.9 * (repeats - 1))])


def format_scrape(result: ScrapeResult) -> str:
    return "\n".join(
        [
            f"scrape: /metrics for {result.rigs:,} registered rigs, median of CPU time over repeated scrapes",
            f"  series                                   {result.series:>12,}",
            f"  body                                     {result.bytes / 2**20:>12.1f} MiB",
            f"  CPU per scrape (median / p90)            {result.seconds_median:>12.3f} s / {result.seconds_p90:.3f} s",
            f"  CPU per rig                              {result.seconds_median / result.rigs * 1e6:>12.1f} µs",
            f"  one core's share at a {SCRAPE_INTERVAL:.0f} s scrape interval {result.core_share:>9.1%}",
        ]
    )
