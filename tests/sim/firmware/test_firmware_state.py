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


@pytest.mark.parametrize(
    ("model", "idle_watts"), [(ANTMINER_S19_XP, 60.2), (WHATSMINER_M60S, 13.764), (BITAXE_GAMMA, 2.16)]
)
def test_a_sleeping_rig_hashes_nothing_draws_its_idle_power_and_cools(model, idle_watts):
    clock = FakeClock()
    state = RigState(model, clock=clock)
    hot = state.chip_temps()
    state.sleep()
    assert (state.mode(), state.hashrate(), state.board_hashrates()) == ("sleeping", 0.0, [0.0] * model.hashboards)
    assert state.watts() == pytest.approx(idle_watts)
    assert all(t < h - 20 for t, h in zip(state.chip_temps(), hot, strict=True))
    assert max(state.fan_rpms()) < max(RigState(model).fan_rpms())
    clock.tick(86_400)
    assert state.hashrate() == 0.0 and state.uptime() == 86_400  # asleep, not rebooted


def test_waking_takes_the_warm_up_on_the_clock_and_a_second_wake_changes_nothing():
    clock = FakeClock()
    state = RigState(WHATSMINER_M60S, clock=clock, warmup_s=30)
    state.wake()
    assert state.mode() == "mining"  # awake already: no warm-up
    state.sleep()
    clock.tick(100)
    state.wake()
    assert (state.mode(), state.hashrate()) == ("waking", 0.0)
    assert state.watts() == pytest.approx(0.004 * 3441)
    clock.tick(29.9)
    state.wake()
    assert state.hashrate() == 0.0
    clock.tick(0.1)
    assert (state.mode(), state.hashrate(), state.watts()) == ("mining", 186e12, pytest.approx(3441))
    assert RigState(ANTMINER_S19_XP).warmup() == 120 and RigState(BITAXE_GAMMA).warmup() == 15
    with pytest.raises(ValueError):
        RigState(BITAXE_GAMMA, warmup_s=-1)


def test_a_power_limit_holds_the_draw_and_costs_less_hash_rate_than_power():
    clock = FakeClock()
    state = RigState(ANTMINER_S19_XP, clock=clock, warmup_s=10)
    state.limit_power(1505)  # half the nameplate
    assert state.watts() == pytest.approx(1505)
    assert state.hashrate() == pytest.approx(0.5**0.85 * 140e12)  # 55 %
    assert state.watts() / (state.hashrate() / 1e12) == pytest.approx(0.9 * 21.5, rel=0.01)  # J/TH 10 % better
    state.limit_power(100)  # below what firmware throttles to: held at 30 %
    assert state.watts() == pytest.approx(0.3 * 3010)
    state.limit_power(5000)  # above nameplate: no throttling
    assert (state.watts(), state.hashrate()) == (pytest.approx(3010), 140e12)
    state.limit_power(2000, warm_up=True)  # firmware that restarts mining to apply it
    assert state.mode() == "waking"
    clock.tick(10)
    assert state.watts() == pytest.approx(2000)
    state.degrade(0.5)  # a sick rig under a limit draws less than the limit
    assert state.watts() < 2000
    with pytest.raises(ValueError):
        state.limit_power(0)


def test_a_lower_clock_lowers_hash_rate_in_step_and_power_a_little_faster():
    state = RigState(BITAXE_GAMMA)
    state.set_clock(0.5)
    assert state.hashrate() == pytest.approx(0.6e12)
    assert state.watts() == pytest.approx(18 * 0.5 ** (1 / 0.85))
    state.limit_power(18 * 0.3)  # the tighter of clock and limit wins
    assert state.hashrate() == pytest.approx(0.3**0.85 * 1.2e12)
    with pytest.raises(ValueError):
        state.set_clock(0)


def test_a_restart_starts_uptime_again_and_warms_up_unless_asleep():
    clock = FakeClock()
    state = RigState(BITAXE_GAMMA, clock=clock)
    clock.tick(500)
    state.restart()
    assert (state.restarts, state.uptime(), state.mode()) == (1, 0, "waking")
    clock.tick(15)
    assert state.mode() == "mining"
    state.sleep()
    state.restart()
    assert (state.restarts, state.mode()) == (2, "sleeping")


def test_recover_clears_faults_but_not_what_the_firmware_was_told():
    state = RigState(WHATSMINER_M60S)
    state.limit_power(2000)
    state.sleep()
    state.recover()
    assert state.sleeping and state.power_limit_w == 2000
