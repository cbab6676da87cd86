"""fleetd's Stratum listener on loopback: real sockets, real shares checked by the C core."""

from __future__ import annotations

import asyncio

import pytest

from fleetd.chain.byteorder import hash_to_display
from server_support import RawClient, grind, http_json, make_config, start_fleetd, submit_params


async def test_login_gets_difficulty_and_a_job(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    methods = [n["method"] for n in client.notifications]
    assert methods.index("mining.set_difficulty") < methods.index("mining.notify")
    assert client.difficulty == pytest.approx(1e-6)
    assert client.job.job_id == fleetd.server.current_job.job_id
    assert len(client.extranonce1) == 4 and client.extranonce2_size == 8
    client.close()


async def test_valid_share_accepted_and_counted(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.rig1")
    reply = await client.request("mining.submit", grind(client))
    assert reply == {"id": reply["id"], "result": True, "error": None}
    stats = fleetd.server.workers["acct.rig1"]
    assert stats.accepted == 1 and stats.accepted_work == pytest.approx(1e-6)
    client.close()


async def test_every_reject_code_over_a_real_socket(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    # 25: submitting before subscribing
    reply = await client.request("mining.submit", ["acct.rig1", "00", "00" * 8, "00000000", "00000000"])
    assert reply["error"][0] == 25
    await client.login("acct.rig1")

    good = grind(client)
    assert (await client.request("mining.submit", good))["result"] is True
    assert (await client.request("mining.submit", good))["error"][:2] == [22, "Duplicate share"]
    low = grind(client, valid=False, extranonce2=b"\x01" * 8)
    assert (await client.request("mining.submit", low))["error"][0] == 23
    unknown = ["acct.rig1", "feedface", *good[2:]]
    assert (await client.request("mining.submit", unknown))["error"][0] == 21
    short_en2 = [*good[:2], "00" * 4, *good[3:]]
    assert (await client.request("mining.submit", short_en2))["error"][:2] == [20, "Wrong extranonce2 size"]
    future = submit_params(client, b"\x02" * 8, client.job.ntime + 3 * 7200 + 10**6, 1)
    assert (await client.request("mining.submit", future))["error"][0] == 20
    past = submit_params(client, b"\x02" * 8, client.job.ntime - 1, 1)
    assert (await client.request("mining.submit", past))["error"][0] == 20
    other_worker = ["acct.someone-else", *good[1:]]
    assert (await client.request("mining.submit", other_worker))["error"][0] == 24

    rejected = fleetd.server.workers["acct.rig1"].rejected
    assert rejected == {
        "duplicate": 1,
        "low_difficulty": 1,
        "unknown_job": 1,
        "bad_extranonce2_size": 1,
        "ntime_out_of_range": 2,
        "unauthorized": 1,  # a claimed worker counts against the one this connection proved
    }
    assert fleetd.server.workers["(unauthenticated)"].rejected == {"not_subscribed": 1}
    assert "acct.someone-else" not in fleetd.server.workers
    client.close()


async def test_block_is_submitted_and_older_jobs_become_stale():
    # network difficulty equal to the share difficulty: the first valid share is a block
    running = await start_fleetd(make_config(network_difficulty=1e-6))
    try:
        client = await RawClient.connect(running.stratum)
        await client.login("acct.lucky")
        first_job = client.job
        block_share = grind(client)
        assert (await client.request("mining.submit", block_share))["result"] is True
        await client.wait_for(lambda: client.job.job_id != first_job.job_id and client.job.clean)

        found = running.source.found_blocks
        assert [(b.height, b.worker) for b in found] == [(1, "acct.lucky")]
        assert hash_to_display(client.job.prevhash) == found[0].hash  # the next job builds on the block just found
        assert running.server.blocks_submitted == 1

        client.job = first_job  # a share for the previous block's job, sent after the new block
        late = grind(client, extranonce2=b"\x07" * 8)
        assert (await client.request("mining.submit", late))["error"][:2] == [21, "Stale job"]
        client.close()
    finally:
        await running.runner.cleanup()


async def test_concurrent_miners_all_served(fleetd):
    clients = [await RawClient.connect(fleetd.stratum) for _ in range(8)]
    await asyncio.gather(*(c.login(f"acct.rig{i}") for i, c in enumerate(clients)))
    assert len({c.extranonce1 for c in clients}) == 8  # unique per connection

    async def mine(client, count):
        for n in range(count):
            params = grind(client, extranonce2=n.to_bytes(8, "big"))
            assert (await client.request("mining.submit", params))["result"] is True

    await asyncio.gather(*(mine(c, 3) for c in clients))
    assert sum(fleetd.server.workers[f"acct.rig{i}"].accepted for i in range(8)) == 24
    for c in clients:
        c.close()


async def test_healthz_reports_source_and_connections(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    status, body = await http_json(fleetd.http, "/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert body["source"]["kind"] == "demo" and body["source"]["up"] is True
    assert body["stratum"]["connections"] == 1
    assert body["stratum"]["current_job"] == client.job.job_id
    client.close()


async def test_shutdown_asks_miners_to_reconnect():
    running = await start_fleetd(make_config())
    client = await RawClient.connect(running.stratum)
    await client.login()
    await running.runner.cleanup()
    await client.wait_for(lambda: any(n["method"] == "client.reconnect" for n in client.notifications))
    assert await client.closed()
