"""The rig registry on explicit times: when a rig is up, when it is hot, what the fleet totals count."""

from __future__ import annotations

import pytest

from fleetd.rigs.reading import RigReading
from fleetd.rigs.registry import CHIP_CRITICAL_CELSIUS, RigRegistry

POLL = 10.0


def _polled(rigs: RigRegistry, ip: str, t: float, **figures) -> None:
    rigs.reading(RigReading(ip=ip, time=t, **{"model": "S21", "hashrate": 2e14, **figures}))


def test_a_rig_that_just_connected_is_up_until_its_first_poll_is_two_intervals_late():
    rigs = RigRegistry(poll_interval=POLL)
    rig = rigs.connected("site.a", "127.1.0.1", 100.0)
    assert rigs.up(rig, 100.0) and rigs.up(rig, 100.0 + 2 * POLL)  # hashing before its first poll
    assert not rigs.up(rig, 100.1 + 2 * POLL)  # an API that never answers: down after two intervals
    _polled(rigs, "127.1.0.1", 125.0)
    assert rigs.up(rig, 125.0 + 2 * POLL) and not rigs.up(rig, 125.1 + 2 * POLL)


def test_a_reconnected_rig_gets_the_same_grace_and_a_disconnected_one_is_down():
    rigs = RigRegistry(poll_interval=POLL)
    rig = rigs.connected("site.a", "127.1.0.1", 0.0)
    _polled(rigs, "127.1.0.1", 0.0)
    rigs.disconnected("site.a", 5.0)
    assert not rigs.up(rig, 5.0)  # polled a moment ago, but gone from Stratum
    rigs.connected("site.a", "127.1.0.1", 500.0)
    assert rigs.up(rig, 500.0 + 2 * POLL) and not rigs.up(rig, 500.1 + 2 * POLL)
    rigs.connected("site.a", "127.1.0.1", 515.0)  # a second connection is no new grace
    assert not rigs.up(rig, 500.1 + 2 * POLL)


def test_unpolled_rigs_are_up_while_connected():
    rigs = RigRegistry(poll_interval=None)
    rig = rigs.connected("site.a", "127.1.0.1", 0.0)
    assert rigs.up(rig, 1e6)
    rigs.disconnected("site.a", 1e6)
    assert not rigs.up(rig, 1e6)


@pytest.mark.parametrize(
    ("temperatures", "state"),
    [
        ({"chip0": 80.0, "chip1": 96.0, "board0": 70.0}, "hot"),
        ({"chip0": CHIP_CRITICAL_CELSIUS, "board0": 85.0}, "up"),  # the alert fires above, not at
        ({"board0": 99.0, "inlet": 40.0}, "up"),  # the alert reads chip sensors only
        ({}, "up"),
    ],
)
def test_a_rig_with_a_chip_above_the_critical_temperature_is_hot(temperatures, state):
    rigs = RigRegistry(poll_interval=POLL)
    rig = rigs.connected("site.a", "127.1.0.1", 0.0)
    _polled(rigs, "127.1.0.1", 1.0, temperatures=temperatures)
    assert rigs.state(rig, 2.0) == state
    assert rigs.totals(2.0).hot == (state == "hot")
    assert rigs.state(rig, 1.1 + 2 * POLL) == "down"  # no poll since: its temperatures are old news


def test_fleet_totals_count_rates_and_power_of_the_rigs_that_are_up_and_every_share():
    rigs = RigRegistry(poll_interval=POLL)
    for name, ip in (("site.a", "127.1.0.1"), ("site.b", "127.1.0.2")):
        rigs.connected(name, ip, 0.0)
        rigs.share(name, 1.0, 1.0)
        rigs.reject(name, "stale", 1.0)
        rigs.reading(RigReading(ip=ip, time=1.0, model="M60S", hashrate=1.8e14, watts=3400.0))
    rigs.disconnected("site.b", 2.0)
    totals = rigs.totals(3.0)
    a = rigs.get("site.a")
    assert (totals.rigs, totals.up, totals.connected) == (2, 1, 1)
    assert (totals.watts, totals.reported_hashrate) == (3400.0, 1.8e14)
    assert totals.hashrate == {window: a.hashrate(window, 3.0) for window in ("1m", "5m", "1h")}
    assert totals.hashrate["5m"] > 0 and totals.efficiency == pytest.approx(3400.0 / (a.hashrate("5m", 3.0) / 1e12))
    assert (totals.accepted, totals.rejected) == (2, 2)  # counters since start, the gone rig's too
    rigs.disconnected("site.a", 4.0)
    nobody = rigs.totals(5.0)
    assert (nobody.up, nobody.watts, nobody.reported_hashrate, nobody.efficiency) == (0, 0.0, 0.0, None)
    assert nobody.hashrate == {"1m": 0.0, "5m": 0.0, "1h": 0.0}


def test_fleet_efficiency_counts_only_the_hash_rate_of_rigs_with_a_power_figure():
    rigs = RigRegistry(poll_interval=POLL)
    for name, ip in (("site.a", "127.1.0.1"), ("site.unknown", "127.1.0.2")):
        rigs.connected(name, ip, 0.0)
        rigs.share(name, 1.0, 1.0)
    rigs.reading(RigReading(ip="127.1.0.1", time=1.0, model="M60S", hashrate=1.8e14, watts=3400.0))
    totals = rigs.totals(2.0)
    a_rate = rigs.get("site.a").hashrate("5m", 2.0)
    assert totals.hashrate["5m"] == pytest.approx(2 * a_rate)  # both rigs hash
    assert totals.efficiency == pytest.approx(3400.0 / (a_rate / 1e12))  # only one has watts


def test_a_nameplate_estimate_is_kept_to_the_milliwatt_and_energy_integrates_it():
    rigs = RigRegistry(poll_interval=POLL)
    rigs.connected("site.s21", "127.1.0.1", 0.0)
    # stock Antminer firmware: three boards of 66,666.67 GH/s add up to 200,000.01 GH/s
    for t in (0.0, 10.0):
        _polled(rigs, "127.1.0.1", t, hashrate=200_000.01e9)
    rig = rigs.get("site.s21")
    assert rig.power(10.0) == (3500.0, "nameplate")  # not 3500.000174999999
    assert rig.energy_joules == 3500.0 * 10
    _polled(rigs, "127.1.0.1", 20.0, hashrate=123.456789e12)
    assert rig.power(20.0) == (round(3500 * 123.456789 / 200, 3), "nameplate")


def test_shares_within_a_fold_join_the_averages_together_as_of_the_last_one():
    # The share path adds up work; the averages take it in once a second at most, or when read.
    rigs = RigRegistry()
    for t in (0.0, 0.25, 0.5):
        rigs.share("acct.rig", 2.0, t)
    expected = RigRegistry()
    expected.share("acct.rig", 2.0, 0.0)
    expected.share("acct.rig", 4.0, 0.5)
    for now in (0.5, 30.0, 600.0):
        for window in ("1m", "5m", "1h"):
            assert rigs.get("acct.rig").hashrate(window, now) == expected.get("acct.rig").hashrate(window, now)
    rigs.share("acct.rig", 2.0, 1.5)  # a second after the last fold: folded at once
    expected.share("acct.rig", 2.0, 1.5)
    assert rigs.get("acct.rig").hashrate("1m", 1.5) == pytest.approx(expected.get("acct.rig").hashrate("1m", 1.5))
    assert rigs.get("acct.rig").accepted_work == 8.0


def test_a_rig_that_reports_zero_hash_rate_is_estimated_at_zero_watts_not_at_its_fading_pool_rate():
    rigs = RigRegistry(poll_interval=30.0)
    rigs.connected("acct.xp", "10.0.0.9", 0.0)
    for t in range(60):
        rigs.share("acct.xp", 1e6, float(t))
    rigs.reading(RigReading(ip="10.0.0.9", time=60.0, model="S19 XP", hashrate=0.0))  # asleep: stock firmware
    assert rigs.get("acct.xp").power(61.0) == (0.0, "nameplate")
