"""The rig state the firmware renders: figures, injected faults and the clock."""

from __future__ import annotations

import pytest

from fleetd.rigs.models import ANTMINER_S19_XP, BITAXE_GAMMA, WHATSMINER_M60S
from fleetd.sim.firmware import RigState
from fleetd.sim.firmware.state import CHIP_HOT_C, fan_curve
from fake_clock import FakeClock


def test_a_healthy_rig_runs_at_its_nameplate():
    clock = FakeClock()
    state = RigState(ANTMINER_S19_XP, clock=clock)
    assert state.hashrate() == 140e12
    assert sum(state.board_hashrates()) == pytest.approx(140e12)
    assert state.watts() == pytest.approx(3010)
    assert len(state.board_temps()) == len(state.chip_temps()) == 3
    assert all(c > b for b, c in zip(state.board_temps(), state.chip_temps(), strict=True))
    assert len(state.fan_rpms()) == 4
    assert state.hot_boards() == []
    assert state.uptime() == 0
    clock.tick(90.7)
    assert state.uptime() == 90


def test_degrade_lowers_hashrate_and_most_of_the_power():
    state = RigState(WHATSMINER_M60S)
    state.degrade(0.5)
    assert state.hashrate() == pytest.approx(93e12)
    # fans, control board and PSU losses keep drawing: J/TH gets worse, as on a sick rig
    assert 0.5 * 3441 < state.watts() < 3441
    with pytest.raises(ValueError):
        state.degrade(1.5)


def test_power_spike_raises_watts_and_heat_but_not_hashrate():
    state = RigState(BITAXE_GAMMA)
    cool = state.chip_temps()[0]
    state.spike_power(1.5)
    assert state.watts() == pytest.approx(27.0)
    assert state.hashrate() == 1.2e12
    assert state.chip_temps()[0] > cool
    with pytest.raises(ValueError):
        state.spike_power(0)


def test_overheat_climbs_along_its_ramp_then_holds():
    clock = FakeClock()
    state = RigState(ANTMINER_S19_XP, clock=clock)
    normal = state.chip_temps()
    state.overheat(rise_c=30, ramp_s=100)
    assert state.chip_temps() == normal
    clock.tick(50)
    assert state.chip_temps() == pytest.approx([t + 15 for t in normal])
    clock.tick(500)
    assert state.chip_temps() == pytest.approx([t + 30 for t in normal])
    assert min(state.chip_temps()) >= CHIP_HOT_C and state.hot_boards() == [0, 1, 2]
    assert max(state.fan_rpms()) == fan_curve(ANTMINER_S19_XP.firmware).max_rpm  # flat out


def test_recover_clears_faults_but_keeps_uptime():
    clock = FakeClock()
    state = RigState(WHATSMINER_M60S, clock=clock)
    clock.tick(100)
    state.go_offline()
    state.degrade(0.2)
    state.spike_power(2)
    state.overheat()
    state.add_error(530, "Slot 0 not found.")
    state.recover()
    fresh = RigState(WHATSMINER_M60S, clock=clock)
    assert (state.offline, state.errors) == (False, [])
    assert (state.hashrate(), state.watts()) == (fresh.hashrate(), fresh.watts())
    assert state.chip_temps() == fresh.chip_temps()
    assert state.uptime() == 100


def test_coming_back_from_a_reboot_restarts_uptime():
    clock = FakeClock()
    state = RigState(BITAXE_GAMMA, clock=clock)
    clock.tick(500)
    state.go_offline()
    state.come_online(rebooted=True)
    clock.tick(5)
    assert state.uptime() == 5


def test_identity_is_stable_per_name_and_distinct_between_rigs():
    a, again, b = (RigState(BITAXE_GAMMA, name=name) for name in ("a", "a", "b"))
    assert a.mac == again.mac != b.mac
    assert a.serial() == again.serial() != b.serial()
    first_octet = int(a.mac.split(":")[0], 16)
    assert first_octet & 0x02 and not first_octet & 0x01  # locally administered unicast
