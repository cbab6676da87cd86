"""``fleetd bench telemetry``'s poll round, tiny: 20 emulated rigs in a child process."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fleetd.bench import telemetry
from fleetd.rigs.models import CATALOGUE


@pytest.fixture(scope="module")
def result() -> telemetry.PollRoundResult:
    # Without the scheduler phase: it runs for five real intervals, and whether it keeps pace
    # depends on the machine's load. The scheduler itself is tested with an injected clock.
    return telemetry.poll_round(20, concurrency=8, scheduled=False)


def test_every_rig_is_read_in_every_round(result):
    assert result.rigs == 20 and dict(result.mix) == {m.name: 4 for m in CATALOGUE}
    assert (result.cold.polls, result.cold.failures) == (20, 0)
    assert (result.warm.polls, result.warm.failures) == (20 * result.rounds, 0)
    assert [(t.label, t.polls, t.failures) for t in result.per_model] == [
        (m.name, 4 * result.rounds, 0) for m in CATALOGUE
    ]
    assert (result.scheduled, result.scheduled_interval, result.kept_up) == (None, None, None)


def test_figures_are_consistent(result):
    warm = result.warm
    assert 0 < warm.cpu <= warm.wall * 1.1  # one process, one loop: at most one core
    assert warm.cpu_per_poll == pytest.approx(warm.cpu / warm.polls)
    assert result.cold.cpu_per_poll > warm.cpu_per_poll  # identifying costs more than reading
    assert result.design_cpu() == pytest.approx(10_000 * warm.cpu_per_poll)
    assert result.rigs_per_interval() == pytest.approx(30 / warm.cpu_per_poll)
    assert result.meets_design == (result.design_cpu() <= 30)
    assert result.rig_side_cpu > 0  # the rigs ran elsewhere, and did work


def test_the_report_states_the_projection(result):
    report = telemetry.format_poll_round(result)
    assert report.startswith("fleetd bench telemetry: poll rounds of 20 emulated rig APIs on loopback (pyasic ")
    for label in ("cold round (identify + read)", "warm rounds (x5, cached miners)", *(m.name for m in CATALOGUE)):
        assert re.search(rf"^\s+{re.escape(label)}\s+\d", report, re.M), label
    match = re.search(r"10,000 rigs per 30 s on one core: needs ([\d.]+) CPU s per 30 s = (\d+)% of a core: (met|NOT met)$", report, re.M)
    assert match, report
    assert float(match.group(1)) == pytest.approx(result.design_cpu(), abs=0.05)
    assert (match.group(3) == "met") == result.meets_design
    assert "scheduler" not in report  # not run


def test_the_report_states_how_the_scheduler_kept_pace(result):
    scheduler = telemetry.RoundTiming("scheduler (5 x 1 s interval)", polls=97, failures=0, wall=5.0, cpu=0.5)
    report = telemetry.format_poll_round(
        dataclasses.replace(result, scheduled=scheduler, scheduled_interval=1.0, kept_up=0.97)
    )
    assert re.search(r"^\s+scheduler \(5 x 1 s interval\)\s+97\s", report, re.M), report
    assert "scheduler at the design's rate (20 rigs per 1 s): 97% of the polls due were done, 10% of a core" in report


def test_too_few_rigs_is_refused():
    with pytest.raises(ValueError, match="at least 5 rigs"):
        telemetry.poll_round(3)
