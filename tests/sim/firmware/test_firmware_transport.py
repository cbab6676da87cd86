"""The listeners themselves: cgminer framing, addresses, offline behaviour, clean start and stop."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from fleetd.rigs.models import ANTMINER_S21, BITAXE_GAMMA, CATALOGUE, WHATSMINER_M60S, FirmwareFamily
from fleetd.sim.firmware import EmulatedRig, LoopbackAllocator, RigState, check_rig_address
from fleetd.sim.loopback import NotLoopbackError
from firmware_support import TEST_BOUND_S


async def api(host: str, request: bytes, port: int = 4028) -> bytes:
    """Send one raw request to the cgminer API and read until the rig closes the connection."""
    async with asyncio.timeout(TEST_BOUND_S):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
    return reply


def held_api_connections() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "CgminerApiServer._serve"]


def parse(reply: bytes) -> dict:
    assert reply.endswith(b"\x00"), "cgminer replies end with a NUL byte"
    return json.loads(reply[:-1])


async def test_cgminer_api_answers_one_json_request_with_nul_terminated_json(start_rig):
    rig = await start_rig(ANTMINER_S21)
    reply = parse(await api(rig.host, b'{"command":"summary"}'))
    assert reply["STATUS"][0]["STATUS"] == "S"
    assert reply["SUMMARY"][0]["GHS 5s"] == pytest.approx(200_000, rel=1e-6)
    assert reply["id"] == 1


async def test_cgminer_api_joins_commands_with_plus_as_cgminer_does(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    reply = parse(await api(rig.host, b'{"command":"summary+pools"}'))
    assert set(reply) == {"summary", "pools", "id"}
    assert reply["summary"][0]["SUMMARY"][0]["Power"] == 3441
    assert reply["pools"][0]["POOLS"][0]["URL"] == rig.state.pool_url


async def test_cgminer_api_rejects_unknown_commands_and_garbage(start_rig):
    rig = await start_rig(ANTMINER_S21)
    unknown = parse(await api(rig.host, b'{"command":"ascset","parameter":"0,freq,700"}'))
    assert unknown["STATUS"][0]["STATUS"] == "E" and unknown["STATUS"][0]["Msg"] == "Invalid command"
    garbage = parse(await api(rig.host, b"[1, 2]"))
    assert garbage["STATUS"][0]["Msg"] == "Invalid JSON"


async def test_the_request_may_arrive_in_pieces(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    async with asyncio.timeout(TEST_BOUND_S):
        reader, writer = await asyncio.open_connection(rig.host, 4028)
        for piece in (b'{"comm', b'and":"get_', b'version"}'):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        reply = parse(await reader.read())
        writer.close()
        await writer.wait_closed()
    assert reply["Msg"]["fw_ver"].startswith("2024")


async def test_stock_antminer_web_ui_needs_digest_auth(start_rig):
    rig = await start_rig(ANTMINER_S21)
    url = f"http://{rig.host}/cgi-bin/get_system_info.cgi"
    async with asyncio.timeout(TEST_BOUND_S), aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith('Digest realm="antMiner Configuration"')
        async with session.get(url, headers={"Authorization": 'Digest username="root", response="0"'}) as response:
            assert response.status == 401


async def test_bitaxe_serves_axeos_over_plain_http(start_rig):
    rig = await start_rig(BITAXE_GAMMA)
    async with asyncio.timeout(TEST_BOUND_S), aiohttp.ClientSession() as session:
        async with session.get(f"http://{rig.host}/") as response:
            assert "<title>AxeOS</title>" in await response.text()
        async with session.get(f"http://{rig.host}/api/system/info") as response:
            info = await response.json()
    assert info["ASICModel"] == "BM1370"
    assert info["hashRate"] == pytest.approx(1200.0)  # GH/s
    assert info["power"] == pytest.approx(18.0)


async def test_each_family_listens_only_where_its_firmware_does(start_rig):
    bitaxe = await start_rig(BITAXE_GAMMA)
    whatsminer = await start_rig(WHATSMINER_M60S)
    for host, port in ((bitaxe.host, 4028), (whatsminer.host, 80)):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)


async def test_offline_rig_accepts_but_never_answers_until_back(start_rig):
    rig = await start_rig(WHATSMINER_M60S)
    rig.state.go_offline()
    reader, writer = await asyncio.open_connection(rig.host, 4028)
    writer.write(b'{"command":"summary"}')
    await writer.drain()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await reader.read()
    rig.state.come_online()
    async with asyncio.timeout(TEST_BOUND_S):
        reply = parse(await reader.read())
    assert reply["SUMMARY"][0]["Power"] == 3441
    writer.close()
    await writer.wait_closed()


async def test_stop_releases_held_connections_and_ports(start_rig):
    rig = await start_rig(ANTMINER_S21)
    rig.state.go_offline()
    reader, writer = await asyncio.open_connection(rig.host, 4028)
    writer.write(b'{"command":"summary"}')
    async with aiohttp.ClientSession() as session:
        held_http = asyncio.create_task(session.get(f"http://{rig.host}/cgi-bin/summary.cgi"))
        async with asyncio.timeout(TEST_BOUND_S):  # until the API holds the connection (not just the kernel)
            while not held_api_connections():
                await asyncio.sleep(0.01)
        async with asyncio.timeout(TEST_BOUND_S):
            await rig.stop()
            assert await reader.read() == b""  # closed without a word
            try:
                response = await held_http
                assert response.status == 503
                response.release()
            except aiohttp.ClientError:
                pass  # or dropped outright: either way nothing hangs
    writer.close()
    for port in (80, 4028):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(rig.host, port)


async def test_start_and_stop_leave_no_tasks_behind(allocator):
    before = asyncio.all_tasks()
    rigs = [await EmulatedRig.start_free(RigState(model, name=model.name), allocator) for model in CATALOGUE]
    async with aiohttp.ClientSession() as session:
        for rig in rigs:  # every listener serves at least once before it is stopped
            if rig.state.model.firmware is not FirmwareFamily.AXEOS:
                parse(await api(rig.host, b'{"command":"summary"}'))
            if rig.state.model.firmware is not FirmwareFamily.WHATSMINER:
                async with session.get(f"http://{rig.host}/") as response:
                    assert response.status in (200, 401)
    for rig in rigs:
        await rig.stop()
        assert not rig.running
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_start_free_skips_an_address_already_taken(allocator):
    first = LoopbackAllocator(str(allocator.network)).next()
    blocker = await asyncio.start_server(lambda r, w: w.close(), first, 4028)
    try:
        rig = await EmulatedRig.start_free(RigState(WHATSMINER_M60S), allocator)
        assert rig.host != first and rig.running
        await rig.stop()
    finally:
        blocker.close()
        await blocker.wait_closed()


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.20", "8.8.8.8", "0.0.0.0", "::1", "localhost", "127.0.0"])
def test_rig_addresses_outside_127_8_are_refused(host):
    with pytest.raises(NotLoopbackError, match="127.0.0.0/8"):
        check_rig_address(host)
    with pytest.raises(NotLoopbackError):
        EmulatedRig(RigState(BITAXE_GAMMA), host)


def test_allocator_hands_out_loopback_addresses_in_order():
    allocator = LoopbackAllocator()
    assert [allocator.next() for _ in range(3)] == ["127.1.0.1", "127.1.0.2", "127.1.0.3"]
    small = LoopbackAllocator("127.3.0.0/23")
    addresses = list(small)
    assert addresses[253:256] == ["127.3.0.254", "127.3.1.1", "127.3.1.2"]  # .255 and .0 skipped
    assert len(addresses) == 2 * 254
    with pytest.raises(RuntimeError, match="no addresses left"):
        small.next()


@pytest.mark.parametrize("network", ["10.0.0.0/24", "0.0.0.0/0", "126.0.0.0/7", "not-a-network"])
def test_allocator_refuses_networks_outside_loopback(network):
    with pytest.raises(NotLoopbackError):
        LoopbackAllocator(network)
