"""`fleetd demo`: the daemon and simulated rigs together, as a newcomer first sees fleetd."""

from __future__ import annotations

import dataclasses
import io
import re

from fleetd.config import HostPort
from fleetd.sim import demo


async def test_demo_rigs_get_shares_accepted_and_the_table_shows_them():
    config = demo.demo_config()
    config = dataclasses.replace(
        config,
        stratum=dataclasses.replace(config.stratum, listen=HostPort("127.0.0.1", 0)),
        http=dataclasses.replace(config.http, listen=HostPort("127.0.0.1", 0)),
        source=dataclasses.replace(config.source, network_difficulty=1e-4),  # blocks within seconds
    )
    out = io.StringIO()
    assert await demo.run(config, miners=2, hashrate=200_000, duration=6, out=out) == 0
    text = out.getvalue()
    assert "fleetd demo: 2 simulated rigs" in text
    last_table = text.rsplit("height", 1)[1]
    rows = re.findall(r"^  (demo\.rig\d\d)\s+yes\s+\S+ \S*H/s\s+-\s+(\d+)\s+(\d+)\s", last_table, re.M)
    assert [name for name, _, _ in rows] == ["demo.rig01", "demo.rig02"]
    # a share in flight when a block lands is rejected as stale: a few rejects are normal
    assert all(int(accepted) > 0 and int(rejected) <= int(accepted) for _, accepted, rejected in rows)
    assert re.search(r"block \d+ by demo\.rig0[12]: [0-9a-f]{64}", text)
