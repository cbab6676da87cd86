"""``fleetd simulate --rigs 2 --no-firmware`` against ``fleetd serve`` with the example
configuration: its start difficulty of 1024 is far beyond a simulated rig, so the rigs'
mining.suggest_difficulty must decide what they mine at, or no share is ever accepted."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from fleetd.config import HostPort, load
from fleetd.sim.fleet import Fleet, FleetConfig
from server_support import start_fleetd

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "fleetd.example.toml"
DEADLINE_S = 60.0  # the rigs' seeded schedule has the first share due after ~10 s


async def test_simulated_rigs_get_shares_accepted_with_the_example_configuration():
    example = load(EXAMPLE)
    loopback = HostPort("127.0.0.1", 0)
    config = replace(
        example,
        stratum=replace(example.stratum, listen=loopback),
        http=replace(example.http, listen=loopback),
        rigs=replace(example.rigs, poll=False),  # --no-firmware: no rig API to poll
    )
    assert config.stratum.start_difficulty == 1024  # what this test is about
    running = await start_fleetd(config)
    host, port = running.stratum
    try:
        async with asyncio.timeout(DEADLINE_S), Fleet(FleetConfig(host, port, rigs=2, firmware=False)) as fleet:
            await fleet.wait_ready()
            for rig in fleet.rigs:  # each at its suggestion, raised to the example's minimum
                suggested = rig.model.nominal_hashrate * fleet.hash_scale * fleet.config.share_interval / 2**32
                wanted = max(suggested, config.stratum.min_difficulty)
                assert rig.miner.job.difficulty == pytest.approx(wanted)
                # no share yet, so no rig record: the connection's figure is the one it will show
                (core,) = [c.core for c in running.server.connections if rig.worker in c.core.session.authorized_workers]
                assert core.session.difficulty_in_force == pytest.approx(wanted)
            while not any(rig.accepted for rig in fleet.rigs):
                await asyncio.sleep(0.2)
            snapshot = fleet.snapshot()
    finally:
        await running.runner.cleanup()
    assert sum(rig.accepted for rig in snapshot.rigs) >= 1
    assert all(not rig.rejected and rig.skipped == 0 for rig in snapshot.rigs)
