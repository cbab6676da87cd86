"""Network hash rate, subsidy and the difficulty projection against hand computations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.chain.network import block_subsidy_btc, block_subsidy_sats
from fleetd.economics.network import network_hashrate_hashes_per_second, projected_difficulty_change


def test_network_hashrate_of_the_issue_example_is_near_one_zettahash():
    # 2^32 / 600 = 7158278.826666...; x 1.4e14 = 1.00215903573e21 H/s
    h = network_hashrate_hashes_per_second(1.4e14)
    assert h == pytest.approx(1.4e14 * 7158278.826666667, rel=1e-12)
    assert h == pytest.approx(1.0021590357e21, rel=1e-9)
    assert 0.99e21 < h < 1.01e21
    assert network_hashrate_hashes_per_second(1) == pytest.approx(7158278.8267, rel=1e-10)
    with pytest.raises(ValueError):
        network_hashrate_hashes_per_second(-1)


@pytest.mark.parametrize(
    ("height", "btc"),
    [
        (0, 50.0),
        (209_999, 50.0),
        (210_000, 25.0),
        (419_999, 25.0),
        (420_000, 12.5),
        (630_000, 6.25),
        (839_999, 6.25),
        (840_000, 3.125),
        (1_050_000, 1.5625),
        (32 * 210_000, 0.00000001),
        (33 * 210_000, 0.0),
        (64 * 210_000, 0.0),
        (10**12, 0.0),
    ],
)
def test_subsidy_at_halving_heights(height, btc):
    assert block_subsidy_btc(height) == btc


def test_subsidy_is_integer_satoshis_and_sums_to_the_known_supply():
    assert block_subsidy_sats(840_000) == 312_500_000
    total = sum(block_subsidy_sats(k * 210_000) * 210_000 for k in range(70))
    assert total == 2_099_999_997_690_000  # 20,999,999.9769 BTC
    with pytest.raises(ValueError):
        block_subsidy_sats(-1)


def _epoch(avg: float, n: int, start_height: int = 2016 * 400, t0: float = 1_700_000_000.0):
    times = [t0 + avg * i for i in range(n)]
    return times, start_height + n - 1


def test_627_second_average_projects_about_minus_4_3_percent():
    times, tip = _epoch(627.0, 1000)
    p = projected_difficulty_change(times, tip)
    assert p is not None
    assert p.change_ratio == pytest.approx(600 / 627 - 1)
    assert p.change_ratio == pytest.approx(-0.043, abs=0.0005)
    assert p.average_block_time_seconds == pytest.approx(627.0)
    assert p.blocks_known == 1000
    assert p.blocks_remaining == 2016 - 999
    assert p.next_retarget_height == 2016 * 401
    assert p.estimated_retarget_time_seconds == pytest.approx(times[-1] + 1017 * 627.0)
    assert not p.clamped


def test_projection_needs_enough_blocks():
    times, tip = _epoch(600.0, 145)
    assert projected_difficulty_change(times, tip) is None
    times, tip = _epoch(600.0, 146)
    assert projected_difficulty_change(times, tip).change_ratio == pytest.approx(0.0)
    assert projected_difficulty_change(times[:10], tip, min_known_blocks=10) is not None
    assert projected_difficulty_change(times[:1], tip, min_known_blocks=0) is None


def test_projection_is_clamped_as_consensus_clamps():
    times, tip = _epoch(100.0, 500)
    p = projected_difficulty_change(times, tip)
    assert p.change_ratio == pytest.approx(3.0) and p.clamped
    times, tip = _epoch(3000.0, 500)
    p = projected_difficulty_change(times, tip)
    assert p.change_ratio == pytest.approx(-0.75) and p.clamped
    # timestamps may go backwards: a non-positive span is the maximum increase
    p = projected_difficulty_change([1000.0, 900.0, 800.0], 10, min_known_blocks=3)
    assert p.change_ratio == pytest.approx(3.0)
    assert p.estimated_retarget_time_seconds == 800.0


def test_tip_on_a_retarget_height_leaves_a_whole_epoch():
    p = projected_difficulty_change([0.0, 600.0], 2016 * 5, min_known_blocks=2)
    assert p.blocks_remaining == 2016
    assert p.next_retarget_height == 2016 * 6


@given(
    st.lists(st.floats(0, 10_000), min_size=2, max_size=300).map(lambda d: [sum(d[:i]) for i in range(len(d))]),
    st.integers(0, 10**7),
)
def test_projection_stays_within_consensus_bounds(times, tip):
    p = projected_difficulty_change(times, tip, min_known_blocks=2)
    assert -0.75 <= p.change_ratio <= 3.0 + 1e-12
    assert 1 <= p.blocks_remaining <= 2016
    assert p.next_retarget_height % 2016 == 0
