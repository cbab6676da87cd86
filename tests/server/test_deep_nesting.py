"""Deep nesting over a real socket: the rig gets an error reply and keeps its connection."""

from __future__ import annotations

from server_support import RawClient, grind


async def test_deeply_nested_fields_are_answered_and_the_rig_keeps_mining(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    for depth in (40, 988, 5000):
        value = b"[" * depth + b"]" * depth
        await client.send_raw(b'{"id":"deep","method":"mining.submit","params":["acct.rig1","j",%s,"0","0"]}\n' % value)
        message = await client.read_message()
        while "method" in message:
            message = await client.read_message()
        assert message["error"][:2] == [20, "Malformed request"] and message["id"] == "deep"
        assert (await client.request("mining.ping", []))["result"] == "pong"
    assert (await client.request("mining.submit", grind(client)))["result"] is True
    client.close()
