"""The Prometheus collector: metric families built from in-memory state at scrape time.

Hot paths only bump plain attributes on ``Rig`` and the server; nothing here runs
until Prometheus asks. Every per-rig family carries the ``rig`` label (the worker name);
series of a retired rig vanish with it, never on a mere reconnect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fleetd.rigs.registry import RigRegistry

SHARE_RESULTS = ("accepted", "rejected")


class FleetCollector(Collector):
    def __init__(self, rigs: RigRegistry, server=None, source=None, clock: Callable[[], float] = time.time) -> None:
        self.rigs = rigs
        self.server = server  # the StratumServer, once listening
        self.source = source
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        yield from self._rig_families(now)
        yield from self._daemon_families()

    def _rig_families(self, now: float) -> Iterator[Metric]:
        rig_label = ["rig"]
        hashes = CounterMetricFamily(
            "fleetd_rig_hashes", "Accepted share work in hashes (difficulty x 2^32 per share); rate() is the pool-side hash rate.", labels=rig_label
        )
        shares = CounterMetricFamily(
            "fleetd_rig_shares", "Shares answered, by result and reject reason.", labels=["rig", "result", "reason"]
        )
        power = GaugeMetricFamily(
            "fleetd_rig_power_watts", "Power draw: as the rig reports it, or its nameplate scaled by hash rate.", labels=["rig", "source"]
        )
        energy = CounterMetricFamily("fleetd_rig_energy_joules", "Energy drawn, integrated over polls.", labels=rig_label)
        reported = GaugeMetricFamily(
            "fleetd_rig_reported_hashrate_hashes_per_second", "Hash rate the rig itself reports.", labels=rig_label
        )
        nominal = GaugeMetricFamily(
            "fleetd_rig_nominal_hashrate_hashes_per_second", "Nameplate hash rate (inventory or model catalogue).", labels=rig_label
        )
        temperature = GaugeMetricFamily("fleetd_rig_temperature_celsius", "Rig temperatures by sensor.", labels=["rig", "sensor"])
        fan = GaugeMetricFamily("fleetd_rig_fan_rpm", "Fan speeds.", labels=["rig", "fan"])
        up = GaugeMetricFamily("fleetd_rig_up", "1 when the rig is connected and, if polled, polled recently.", labels=rig_label)
        last_share = GaugeMetricFamily(
            "fleetd_rig_last_share_timestamp_seconds", "Unix time of the rig's last accepted share.", labels=rig_label
        )
        difficulty = GaugeMetricFamily("fleetd_rig_difficulty", "Current share difficulty.", labels=rig_label)
        efficiency = GaugeMetricFamily(
            "fleetd_rig_efficiency_joules_per_terahash", "Watts over the pool-side 5-minute hash rate.", labels=rig_label
        )
        blocks = CounterMetricFamily("fleetd_rig_blocks_found", "Blocks found by the rig.", labels=rig_label)
        info = GaugeMetricFamily("fleetd_rig_info", "Rig identity.", labels=["rig", "model", "firmware", "ip"])

        for rig in self.rigs:
            name = rig.name
            hashes.add_metric([name], rig.accepted_hashes)
            shares.add_metric([name, "accepted", ""], rig.accepted)
            for reason, count in rig.rejected.items():
                shares.add_metric([name, "rejected", reason], count)
            watts, source = rig.power(now)
            if watts is not None:
                power.add_metric([name, source], watts)
            energy.add_metric([name], rig.energy_joules)
            reading = rig.reading
            if reading is not None:
                if reading.hashrate is not None:
                    reported.add_metric([name], reading.hashrate)
                for sensor, celsius in reading.temperatures.items():
                    temperature.add_metric([name, sensor], celsius)
                for fan_name, rpm in reading.fans.items():
                    fan.add_metric([name, fan_name], rpm)
            _, nominal_rate = rig.nameplate()
            if nominal_rate:
                nominal.add_metric([name], nominal_rate)
            up.add_metric([name], 1.0 if self.rigs.up(rig, now) else 0.0)
            if rig.last_share is not None:
                last_share.add_metric([name], rig.last_share)
            difficulty.add_metric([name], rig.difficulty)
            joules_per_th = rig.efficiency(now)
            if joules_per_th is not None:
                efficiency.add_metric([name], joules_per_th)
            blocks.add_metric([name], rig.blocks)
            info.add_metric([name, rig.model or "", rig.firmware or "", rig.ip or ""], 1.0)
        yield from (hashes, shares, power, energy, reported, nominal, temperature, fan, up, last_share, difficulty,
                    efficiency, blocks, info)  # fmt: skip

    def _daemon_families(self) -> Iterator[Metric]:
        server = self.server
        if server is not None:
            yield GaugeMetricFamily("fleetd_connections", "Open Stratum connections.", value=len(server.connections))
            histogram = server.validation_seconds
            yield HistogramMetricFamily(
                "fleetd_share_validation_seconds",
                "Time to validate one submitted share (registry, duplicates, C core).",
                buckets=histogram.cumulative(),
                sum_value=histogram.total,
            )
            yield CounterMetricFamily("fleetd_jobs", "Jobs published to miners.", value=server.jobs_published)
            yield CounterMetricFamily(
                "fleetd_blocks_found", "Blocks found and accepted by the job source.", value=server.blocks_accepted
            )
            yield CounterMetricFamily(
                "fleetd_blocks_submitted", "Blocks handed to the job source.", value=server.blocks_submitted
            )
            job = server.current_job
            if job is not None:
                yield GaugeMetricFamily(
                    "fleetd_job_timestamp_seconds", "ntime of the current job.", value=job.ntime
                )
        if self.source is not None:
            health = self.source.health()
            source_up = GaugeMetricFamily("fleetd_source_up", "1 when the job source is up.", labels=["kind"])
            source_up.add_metric([health.kind], 1.0 if health.up else 0.0)
            yield source_up
            if health.last_job_time is not None:
                last_job = GaugeMetricFamily(
                    "fleetd_source_last_job_timestamp_seconds", "Unix time of the source's last new job.", labels=["kind"]
                )
                last_job.add_metric([health.kind], health.last_job_time)
                yield last_job
