"""Rig records come from real work, over loopback sockets: under the default ``open`` policy a
client that authorizes a flood of names leaves no rig behind them, while a rig that mines shows
up at its first accepted share with its address, connection and difficulty."""

from __future__ import annotations

from fleetd.config import AuthConfig
from server_support import RawClient, grind, http_json, make_config, replace, scrape, start_fleetd

FLOOD = 64  # the default per-connection worker limit


async def test_a_worker_name_flood_makes_no_rigs_while_a_mining_rig_appears(fleetd):
    flooder = await RawClient.connect(fleetd.stratum)
    await flooder.login("acct.flood0000")
    for i in range(1, FLOOD):
        assert (await flooder.request("mining.authorize", [f"acct.flood{i:04d}", "x"]))["result"] is True
    # Rejected work from the claimed names counts, but on no rig.
    stale = ["acct.flood0007", "feedface", "00" * 8, f"{flooder.job.ntime:08x}", "00000000"]
    assert (await flooder.request("mining.submit", stale))["error"][0] == 21
    status, body = await http_json(fleetd.http, "/api/v1/rigs")
    assert (status, body) == (200, {"rigs": []})
    assert fleetd.server.pool.unattributed_rejects == {"unknown_job": 1}

    miner = await RawClient.connect(fleetd.stratum)
    await miner.login("acct.miner")
    assert (await miner.request("mining.submit", grind(miner)))["result"] is True
    status, body = await http_json(fleetd.http, "/api/v1/rigs")
    assert status == 200 and [rig["rig"] for rig in body["rigs"]] == ["acct.miner"]
    (rig,) = body["rigs"]
    assert (rig["ip"], rig["connections"], rig["up"], rig["difficulty"], rig["shares"]["accepted"]) == (
        "127.0.0.1", 1, True, miner.difficulty, 1,
    )
    samples, text = await scrape(fleetd.http)
    assert "acct.flood" not in text and samples[("fleetd_rig_up", (("rig", "acct.miner"),))] == 1.0
    assert samples[("fleetd_unattributed_rejects_total", (("reason", "unknown_job"),))] == 1.0
    flooder.close()
    miner.close()


async def test_an_allowlisted_name_is_a_rig_from_its_login():
    config = make_config()
    running = await start_fleetd(replace(config, auth=AuthConfig(policy="allowlist", accounts=("acct",))))
    try:
        client = await RawClient.connect(running.stratum)
        await client.login("acct.listed")
        status, body = await http_json(running.http, "/api/v1/rigs")
        assert status == 200 and [(r["rig"], r["connections"], r["ip"]) for r in body["rigs"]] == [
            ("acct.listed", 1, "127.0.0.1"),
        ]
        client.close()
    finally:
        await running.runner.cleanup()
