"""The daemon's own metric families, built from in-memory state at scrape time.

Hot paths only bump plain attributes; nothing here runs until Prometheus asks, and then
it reads a snapshot of the server's counters (``StratumServer.counters``). The per-rig families are written by ``exposition`` (thousands of rigs need a
faster writer than the generic one).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector


class DaemonCollector(Collector):
    def __init__(self, server=None, source=None) -> None:
        self.server = server  # the StratumServer, once listening
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon_families()

    def _daemon_families(self) -> Iterator[Metric]:
        if self.server is not None:
            counters = self.server.counters()
            yield GaugeMetricFamily("fleetd_connections", "Open Stratum connections.", value=counters.connections)
            yield HistogramMetricFamily(
                "fleetd_share_validation_seconds",
                "Time to check and answer one submitted share (job store, duplicates, C core, accounting).",
                buckets=counters.validation_buckets,
                sum_value=counters.validation_sum,
            )
            yield CounterMetricFamily("fleetd_jobs", "Jobs published to miners.", value=counters.jobs_published)
            yield CounterMetricFamily(
                "fleetd_blocks_found", "Blocks found and accepted by the job source.", value=counters.blocks_accepted
            )
            yield CounterMetricFamily(
                "fleetd_blocks_submitted", "Blocks handed to the job source.", value=counters.blocks_submitted
            )
            yield from _by_reason("fleetd_stratum_refused", "Stratum connections refused at once, by reason.",
                                  counters.refused)  # fmt: skip
            yield from _by_reason("fleetd_stratum_auth_failures", "mining.authorize calls refused, by reason.",
                                  counters.auth_failures)  # fmt: skip
            yield from _by_reason("fleetd_stratum_disconnects", "Stratum connections ended, by reason.",
                                  counters.disconnects)  # fmt: skip
            yield from _by_reason("fleetd_unattributed_rejects",
                                  "Shares and requests rejected from worker names with no rig record, by reason.",
                                  counters.unattributed_rejects)  # fmt: skip
            yield CounterMetricFamily(
                "fleetd_stratum_bans", "Source addresses banned for failed logins.", value=counters.bans
            )
            yield GaugeMetricFamily(
                "fleetd_stratum_banned_addresses", "Source addresses refused now for failed logins.",
                value=counters.banned,
            )  # fmt: skip
            job = counters.current_job
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


def _by_reason(name: str, documentation: str, counts: dict[str, int]) -> Iterator[Metric]:
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    yield family
