"""JSON-RPC to Bitcoin Core: the reply shapes it really sends, auth by password or cookie, failures."""

from __future__ import annotations

import asyncio
import json

import pytest

import fake_bitcoind as fake
from fleetd.sources.bitcoind_rpc import RpcClient, RpcError, RpcTimeout, RpcUnavailable, parse_reply


def body(obj) -> bytes:
    return json.dumps(obj).encode()


# -- parse_reply: every shape, no network ------------------------------------------------------


def test_legacy_and_2_0_success_shapes():
    assert parse_reply(200, body({"result": "abc", "error": None, "id": 7}), 7) == "abc"
    assert parse_reply(200, body({"jsonrpc": "2.0", "result": None, "id": 7}), 7) is None  # submitblock's "accepted"
    assert parse_reply(200, body({"result": {"x": [1]}, "id": 7}), 7) == {"x": [1]}


@pytest.mark.parametrize("status", [500, 404, 200])  # legacy: HTTP error status; 2.0: HTTP 200
def test_error_objects_become_rpc_errors_whatever_the_status(status):
    reply = {"result": None, "error": {"code": -10, "message": "Bitcoin Core is in initial sync"}, "id": 1}
    with pytest.raises(RpcError) as caught:
        parse_reply(status, body(reply), 1)
    assert (caught.value.code, caught.value.message) == (-10, "Bitcoin Core is in initial sync")
    assert str(caught.value) == "error -10: Bitcoin Core is in initial sync"


@pytest.mark.parametrize(
    "status, raw, message",
    [
        (200, b"<html>not json</html>", "reply is not JSON: <html>not json</html>"),
        (200, b"", "reply is not JSON: \\(empty body\\)"),
        (503, b"Work queue depth exceeded", "HTTP 503: Work queue depth exceeded"),
        (500, b"<html><body>Internal Server Error</body></html>", "HTTP 500: <html>"),
        (200, b"[1, 2]", "not a JSON-RPC object"),
        (200, b'"just a string"', "not a JSON-RPC object"),
        (500, body({"result": None, "error": "boom", "id": 1}), "malformed JSON-RPC error \\(HTTP 500\\)"),
        (200, body({"error": {"code": "x", "message": 1}, "id": 1}), "malformed JSON-RPC error"),
        (200, body({"id": 1}), "neither result nor error"),
        (200, body({"result": 1, "id": 2}), "reply id 2 does not match request id 1"),
        (502, body({"result": 1, "error": None, "id": 1}), "HTTP 502 without a JSON-RPC error"),
        (200, b"x" * 5000, "reply is not JSON: x{200}…$"),  # quoted, but bounded
    ],
)
def test_garbage_replies_are_unavailable_with_a_quote(status, raw, message):
    with pytest.raises(RpcUnavailable, match=message):
        parse_reply(status, raw, 1)


# -- against the fake node ------------------------------------------------------------------


@pytest.fixture
async def node():
    running = await fake.started()
    yield running
    await running.close()


def client(node, **kwargs) -> RpcClient:
    kwargs.setdefault("user", node.user)
    kwargs.setdefault("password", node.password)
    return RpcClient(node.url, timeout=kwargs.pop("timeout", 10.0), **kwargs)  # a loaded machine may take seconds


async def test_positional_and_named_params(node):
    rpc = client(node)
    try:
        positional = await rpc.call("getblocktemplate", [{"rules": ["segwit"]}])
        named = await rpc.call("getblocktemplate", {"template_request": {"rules": ["segwit"]}})
        assert positional["previousblockhash"] == named["previousblockhash"] == node.tip_hex
        assert await rpc.call("getbestblockhash") == node.tip_hex
        with pytest.raises(RpcError) as caught:  # Core refuses a template without the segwit rule
            await rpc.call("getblocktemplate", [{}])
        assert caught.value.code == -8 and "segwit rule" in caught.value.message
        with pytest.raises(RpcError, match="-32601: Method not found"):  # HTTP 404 with an error object
            await rpc.call("getnothing")
    finally:
        await rpc.close()


async def test_2_0_style_replies(node):
    node.force_v2 = True
    rpc = client(node)
    try:
        assert await rpc.call("getbestblockhash") == node.tip_hex
        with pytest.raises(RpcError, match="Method not found"):
            await rpc.call("getnothing")
    finally:
        await rpc.close()


async def test_wrong_password_is_reported_as_an_auth_problem(node):
    rpc = client(node, password="wrong")
    try:
        with pytest.raises(RpcUnavailable, match="HTTP 401: the node refused user/password"):
            await rpc.call("getbestblockhash")
    finally:
        await rpc.close()


async def test_cookie_auth_follows_a_restarted_node(tmp_path):
    node = await fake.started(cookie_dir=tmp_path)
    rpc = RpcClient(node.url, cookie_file=str(node.cookie_path), timeout=10.0)
    try:
        assert await rpc.call("getbestblockhash") == node.tip_hex
        await node.stop()
        node.rotate_cookie()  # bitcoind writes a new cookie each time it starts
        await node.start()
        assert await rpc.call("getbestblockhash") == node.tip_hex  # 401, cookie re-read, retried
        assert sum(1 for m in node.methods_called() if m == "getbestblockhash") == 2  # the 401 never reached RPC
    finally:
        await rpc.close()
        await node.close()


async def test_cookie_problems_say_what_to_check(tmp_path):
    node = await fake.started(cookie_dir=tmp_path)
    try:
        missing = RpcClient(node.url, cookie_file=str(tmp_path / "nope" / ".cookie"))
        with pytest.raises(RpcUnavailable, match="cannot read cookie_file .*is bitcoind running with that datadir"):
            await missing.call("getbestblockhash")
        (tmp_path / "bad").write_text("no separator")
        with pytest.raises(RpcUnavailable, match="is not a bitcoind cookie"):
            await RpcClient(node.url, cookie_file=str(tmp_path / "bad")).call("getbestblockhash")
        stale = tmp_path / "stale"
        stale.write_text("__cookie__:0000")
        rpc = RpcClient(node.url, cookie_file=str(stale))
        with pytest.raises(RpcUnavailable, match="HTTP 401: the node refused the cookie in"):
            await rpc.call("getbestblockhash")
        await rpc.close()
    finally:
        await node.close()


async def test_node_down_slow_or_dropping_connections(node):
    rpc = client(node)
    try:
        node.fail("getbestblockhash", fake.drop())
        with pytest.raises(RpcUnavailable, match="getbestblockhash: (ServerDisconnectedError|ClientOSError)"):
            await rpc.call("getbestblockhash")
        node.fail("getbestblockhash", fake.delay(20.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcTimeout, match="getbestblockhash: no answer within 0.3 s"):
            await rpc.call("getbestblockhash", timeout=0.3)
        # ended by the 0.3 s deadline: not before it, and long before the node's answer
        assert 0.29 <= loop.time() - started < 20.0
        await node.stop()
        with pytest.raises(RpcUnavailable, match="getbestblockhash: ClientConnectorError"):
            await rpc.call("getbestblockhash")
        await node.start()
        assert await rpc.call("getbestblockhash") == node.tip_hex  # the same client recovers
    finally:
        await rpc.close()
