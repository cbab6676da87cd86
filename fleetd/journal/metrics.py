"""The journal's health at scrape time: what the alert rule and the runbook read."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class JournalCollector:
    """``fleetd_journal_*`` from the writer's plain attributes."""

    def __init__(self, journal) -> None:
        self.journal = journal

    def collect(self):
        journal = self.journal
        yield GaugeMetricFamily("fleetd_journal_up", "1 while the journal file takes writes, 0 while it refuses them",
                                value=1.0 if journal.up else 0.0)  # fmt: skip
        yield CounterMetricFamily(
            "fleetd_journal_dropped_writes",
            "Journal writes (flushes, found blocks, opens) that failed; what they carried is kept and retried",
            value=journal.dropped_writes,
        )
        yield CounterMetricFamily(
            "fleetd_journal_cpu_seconds",
            "CPU time the journal spent: collecting each flush on the event loop, writing in its thread",
            value=journal.cpu_seconds,
        )
        yield GaugeMetricFamily("fleetd_journal_pending_rows", "Rows waiting for the next journal flush",
                                value=journal.pending_rows)  # fmt: skip
        yield GaugeMetricFamily("fleetd_journal_file_bytes", "Size of the journal file and its write-ahead log",
                                value=journal.file_bytes())  # fmt: skip
        if journal.last_flush is not None:
            yield GaugeMetricFamily(
                "fleetd_journal_last_flush_timestamp_seconds",
                "Unix time of the newest rig state the journal holds (the last successful flush)",
                value=journal.last_flush,
            )
