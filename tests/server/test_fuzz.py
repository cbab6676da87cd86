"""Hypothesis-mutated Stratum over a real loopback socket: whatever a peer sends, it is answered
or dropped within moments, never hangs the server, leaks no connection, and a rig on another
connection keeps mining."""

from __future__ import annotations

import asyncio
import socket
import threading

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import HANG_GUARD_S, RawClient, grind, make_config, start_fleetd, wait_until

METHODS = [
    "mining.subscribe", "mining.authorize", "mining.submit", "mining.configure", "mining.suggest_difficulty",
    "mining.extranonce.subscribe", "mining.get_transactions", "mining.ping", "mining.frobnicate", "",
]  # fmt: skip
PING_ID = 987654321


class Background:
    """fleetd on an event loop of its own in a thread, so synchronous hypothesis examples can
    talk to it over plain sockets while it keeps serving an honest rig."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleetd-under-fuzz", daemon=True)
        self.thread.start()
        self.fleetd = self.call(start_fleetd(make_config()))
        self.honest = self.call(RawClient.connect(self.fleetd.stratum))
        self.call(self.honest.login("acct.honest"))

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(HANG_GUARD_S)

    def stop(self) -> None:
        self.honest.close()
        self.call(self.fleetd.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(HANG_GUARD_S)
        self.loop.close()


@pytest.fixture(scope="module")
def site():
    running = Background()
    yield running
    running.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=24,
)
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS) | st.text(max_size=30), "params": st.lists(json_values, max_size=7) | json_values},
    optional={"id": json_values},
).map(orjson.dumps)
deeply_nested = st.tuples(st.integers(30, 1300), st.sampled_from([b"[", b'{"a":'])).map(
    lambda t: b'{"id":5,"method":"mining.submit","params":["acct.fuzz","j",%s,"0","0"]}' % (
        t[1] * t[0] + (b"]" if t[1] == b"[" else b"}") * t[0]
    )
)
SUBMIT = b'{"id":9,"method":"mining.submit","params":["acct.fuzz","1","0000000000000000","66000000","00000000"]}'


@st.composite
def mutated_submits(draw) -> bytes:
    """A well-formed submit with bytes deleted, replaced or inserted."""
    line = bytearray(SUBMIT)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(line) - 1))
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        if action == "delete":
            del line[at]
        else:
            byte = draw(st.sampled_from(b'{}[]",:0af\\ \x00\xff'))
            if action == "replace":
                line[at] = byte
            else:
                line.insert(at, byte)
    return bytes(line)


lines = st.lists(requests | deeply_nested | mutated_submits(), min_size=1, max_size=8)


def answered_or_dropped(address: tuple[str, int], login: bool, fuzz: list[bytes]) -> str:
    """Send ``fuzz`` (after a login when asked), then a ping: "pong" when it is answered,
    "dropped" when the server closed the connection first."""
    with socket.create_connection(address, timeout=HANG_GUARD_S) as sock:
        head = b""
        if login:
            head = (b'{"id":1,"method":"mining.subscribe","params":["fuzz/1"]}\n'
                    b'{"id":2,"method":"mining.authorize","params":["acct.fuzz","x"]}\n')  # fmt: skip
        ping = b'{"id":%d,"method":"mining.ping","params":[]}\n' % PING_ID
        try:
            sock.sendall(head + b"\n".join(fuzz) + b"\n" + ping)
        except (BrokenPipeError, ConnectionResetError):
            return "dropped"
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return "dropped"
            if not chunk:
                return "dropped"
            received += chunk
            for line in received.split(b"\n")[:-1]:
                if b"%d" % PING_ID in line and orjson.loads(line).get("id") == PING_ID:
                    return "pong"


@settings(max_examples=120)
@given(login=st.booleans(), fuzz=lines)
def test_any_mutated_stratum_is_answered_or_dropped_and_the_honest_rig_is_untouched(site, login, fuzz):
    outcome = answered_or_dropped(site.fleetd.stratum, login, fuzz)  # a hang fails on the socket timeout
    assert outcome in ("pong", "dropped")
    assert site.call(site.honest.request("mining.ping", []))["result"] == "pong"


def test_after_the_fuzz_the_server_holds_no_stray_connection_and_the_rig_still_mines(site):
    answered_or_dropped(site.fleetd.stratum, True, [b"{", SUBMIT])  # at least one round, whatever ran before
    server = site.fleetd.server
    site.call(wait_until(lambda: len(server.connections) == 1))  # the honest rig alone
    assert site.call(site.honest.request("mining.submit", grind(site.honest)))["result"] is True
    assert server.rigs.get("acct.fuzz") is None  # fuzzed names proved nothing: no rig record
