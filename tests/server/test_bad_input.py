"""Bad input over real sockets: the offender is answered or dropped, everyone else keeps mining."""

from __future__ import annotations

import asyncio
import json

import pytest

from fleetd.chain.byteorder import hash_to_display
from server_support import RawClient, grind, make_config, start_fleetd, wait_until

TLS_CLIENT_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00"
GARBAGE = [
    pytest.param(TLS_CLIENT_HELLO, id="tls-client-hello"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: pool\r\n\r\n", id="http"),
    pytest.param(b"\x00\x01\x02\xff\xfe binary", id="binary"),
    pytest.param(b"{" + b"x" * 20_000, id="17KiB-without-newline"),
    pytest.param(b'{"id": 1, "method": "mining.subscribe", "params": [' + b'"a",' * 5000 + b'"b"]}\n', id="huge-line"),
]


async def _healthy_miner_keeps_working(fleetd, attack) -> None:
    honest = await RawClient.connect(fleetd.stratum)
    await honest.login("acct.honest")
    await attack()
    params = grind(honest, extranonce2=b"\x09" * 8)
    assert (await honest.request("mining.submit", params))["result"] is True
    honest.close()


@pytest.mark.parametrize("payload", GARBAGE)
async def test_non_stratum_bytes_drop_only_that_connection(fleetd, payload):
    async def attack():
        bad = await RawClient.connect(fleetd.stratum)
        await bad.send_raw(payload)
        assert await bad.closed()

    await _healthy_miner_keeps_working(fleetd, attack)


async def test_malformed_requests_get_error_20_then_repeated_garbage_drops(fleetd):
    async def attack():
        bad = await RawClient.connect(fleetd.stratum)
        await bad.send_raw(b'{"id": 7, "method": "mining.submit", "params": "nope"}\n')
        reply = json.loads(await bad.reader.readline())
        assert reply["id"] == 7 and reply["error"][0] == 20
        await bad.send_raw(b'{"id": 8, "method": 12}\n' * 20)
        assert await bad.closed()

    await _healthy_miner_keeps_working(fleetd, attack)


async def test_silent_connection_is_closed_after_the_login_timeout():
    running = await start_fleetd(make_config(login_timeout_seconds=0.3))
    try:
        idle = await RawClient.connect(running.stratum)
        subscribed_only = await RawClient.connect(running.stratum)
        await subscribed_only.request("mining.subscribe", [])
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await idle.closed(timeout=30)
        assert await subscribed_only.closed(timeout=30)
        assert loop.time() - started >= 0.3  # closed by the login timer, not sooner
        assert len(running.server.connections) == 0
    finally:
        await running.runner.cleanup()


async def test_abrupt_disconnects_free_their_extranonce(fleetd):
    for _ in range(5):
        client = await RawClient.connect(fleetd.stratum)
        await client.login()
        client.writer.transport.abort()
    await wait_until(lambda: not fleetd.server.connections)  # the server notices the aborts within milliseconds
    assert len(fleetd.server.extranonces) == 0


async def test_unknown_methods_and_pings(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    assert (await client.request("mining.ping", []))["result"] == "pong"
    reply = await client.request("mining.frobnicate", [1, 2])
    assert reply["error"][0] == 20
    await client.login()  # the connection is still usable
    client.close()


async def test_get_transactions_with_every_job_does_not_drop_the_rig(fleetd):
    # bfgminer asks for the transactions of every job; twenty in a row (twice the garbage
    # limit) without a share in between must leave it connected and answered with the
    # job's txids as RPC shows them.
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    txids = [hash_to_display(txid) for txid in fleetd.server.current_job.transaction_ids]
    assert txids  # the demo chain's blocks carry transactions
    for _ in range(20):
        reply = await client.request("mining.get_transactions", [client.job.job_id])
        assert reply == {"id": reply["id"], "result": txids, "error": None}
    reply = await client.request("mining.get_transactions", ["not-a-job"])
    assert reply["result"] == []
    assert (await client.request("mining.ping", []))["result"] == "pong"
    # No share, so no rig record under the open policy; and no reject counted anywhere.
    assert "acct.rig1" not in fleetd.server.workers and not fleetd.server.pool.unattributed_rejects
    client.close()
