"""``fleetd bench hostile``: a well-behaved rig's share round trip while hostile peers hit the same server.

One ``fleetd serve`` runs as a subprocess on loopback (demo source, difficulty pinned, as in
``fleetd bench stratum``, with rig polling off). A good rig, ``python -m fleetd.sim.loadgen``
at a modest fixed rate of valid shares from a few connections on 127.0.0.1, is measured in
pairs of windows: once quiet, and once while a separate peer process (this module run as
``python -m fleetd.bench.hostile``) holds or sends, from other loopback source addresses
(127.0.0.2 and up, so per-address limits separate them from the rig as on a real LAN):

- idle: N connections that subscribe, authorize a name each and then say nothing;
- a connection storm: one address opening more connections than ``max_connections_per_ip``
  and holding them, so refusals are certain;
- a worker-name flood: connections authorizing twice ``max_workers_per_connection`` distinct
  names each under the ``open`` policy, some held so one address asks for more than
  ``max_workers_per_ip``, the rest opened and closed until a name budget is spent;
- a fuzzer: connections sending mutated Stratum lines (malformed JSON, deep nesting, lines
  over the limit, wrong field sizes and types, unknown methods, binary), from a seeded
  generator, each connection ending with one kind in turn so every kind is sent.

Every peer is bounded in count and in time, and the peer process exits by itself. The report
gives the good rig's p50/p99 quiet and hostile (medians over the pairs) and their ratio, the
server's CPU and RSS in both windows, the refusal and disconnect counters from /metrics, the
rig count from /api/v1/rigs (names alone create no rig), and whether every valid share of
the good rig was accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import math
import os
import random
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from fleetd.bench import stratum
from fleetd.bench.stratum import BenchError, Server, run_loadgen, running_server, server_config
from fleetd.sim.loadgen import pin, raise_fd_limit
from fleetd.sim.loopback import require_loopback

_FD_HEADROOM = 512
_CONNECT_CONCURRENCY = 256  # hostile connections being opened at once
_PEER_GRACE = 60.0  # seconds the peer process may take beyond its own bounds before it exits
_REPLY_TIMEOUT = 10.0  # a flood connection's wait for its replies
_FUZZ_WAIT = 0.2  # a fuzz connection's wait for the server to close it after its last line
_BACKOFF = 0.05  # after a refused connection


@dataclass(frozen=True, slots=True)
class HostileOptions:
    idle_connections: int = 10_000
    flood_names: int = 50_000  # mining.authorize names the flood sends in each hostile window
    flood_addresses: int = 2
    fuzz_connections: int = 5_000  # fuzz connections in each hostile window
    fuzz_addresses: int = 4
    fuzz_concurrency: int = 8  # fuzz connections at once per address
    connections: int = 4  # the good rig's
    rate: float = 250.0  # the good rig's valid shares per second, over its connections
    seconds: float = 5.0  # measured window of each run
    warmup: float = 1.0
    repeats: int = 3  # quiet/hostile pairs
    seed: int = 1
    max_connections_per_ip: int = 1_000  # fleetd's default
    python: str = sys.executable
    startup_timeout: float = 30.0

    def __post_init__(self) -> None:
        checks = (
            ("idle_connections", self.idle_connections >= 0),
            ("flood_names", self.flood_names >= 0),
            ("flood_addresses", self.flood_addresses >= 1),
            ("fuzz_connections", self.fuzz_connections >= 0),
            ("fuzz_addresses", self.fuzz_addresses >= 1),
            ("fuzz_concurrency", self.fuzz_concurrency >= 1),
            ("connections", self.connections >= 1),
            ("rate", self.rate > 0),
            ("seconds", 0 < self.seconds <= 600),
            ("warmup", 0 <= self.warmup <= 60),
            ("repeats", self.repeats >= 1),
            ("max_connections_per_ip", self.max_connections_per_ip >= 2),
        )
        for key, ok in checks:
            if not ok:
                raise ValueError(f"{key} = {getattr(self, key)!r} is out of range")


@dataclass(frozen=True, slots=True)
class Limits:
    """The [stratum] limits the bench server runs with: fleetd's defaults, with room for the load."""

    max_connections: int
    max_connections_per_ip: int
    new_connections_per_ip_per_second: float
    new_connections_burst_per_ip: int
    max_workers_per_connection: int
    max_workers_per_ip: int
    max_auth_failures: int

    @staticmethod
    def for_options(options: HostileOptions) -> Limits:
        from fleetd.config import StratumConfig

        d = StratumConfig()
        per_ip = options.max_connections_per_ip
        most = (options.connections + options.idle_connections + _storm_size(per_ip)
                + options.flood_addresses * 64 + options.fuzz_addresses * options.fuzz_concurrency)  # fmt: skip
        return Limits(
            max_connections=max(d.max_connections, most + 1_000),  # the total is never what refuses here
            max_connections_per_ip=per_ip,
            new_connections_per_ip_per_second=d.new_connections_per_ip_per_second,
            new_connections_burst_per_ip=d.new_connections_burst_per_ip,
            max_workers_per_connection=d.max_workers_per_connection,
            max_workers_per_ip=d.max_workers_per_ip,
            max_auth_failures=d.max_auth_failures,
        )


def _storm_size(per_ip: int) -> int:
    """Connections the storm opens from its one address: past the per-address limit, so some are refused."""
    return per_ip + max(10, per_ip // 10)


def hostile_config(limits: Limits, stratum_port: int, http_port: int) -> str:
    """``fleetd bench stratum``'s server configuration with these limits and rig polling off."""
    keys = "".join(f"{name} = {value!r}\n" for name, value in asdict(limits).items())
    text = server_config(stratum_port, http_port)
    if not text.startswith("[stratum]\n"):
        raise BenchError("the bench server configuration no longer starts with [stratum]")
    text = "[stratum]\n" + keys + text[len("[stratum]\n") :]
    return text + "\n[rigs]\npoll = false  # no management API to read on loopback; the bench measures Stratum\n"


# --- the plan the peer process runs -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerPlan:
    port: int
    tag: str  # unique per hostile window: names never repeat across windows
    idle: int
    idle_addresses: tuple[str, ...]
    storm: int
    storm_address: str
    flood_names: int
    flood_addresses: tuple[str, ...]
    flood_hold: int  # connections each flood address keeps open, with their names
    names_per_connection: int
    fuzz_connections: int
    fuzz_addresses: tuple[str, ...]
    fuzz_concurrency: int
    max_line_bytes: int
    seed: int
    spread_seconds: float  # the flood's and the fuzzer's budgets are paced over this long
    time_bound: float  # the process exits after this many seconds whatever happens

    def __post_init__(self) -> None:
        for address in (*self.idle_addresses, self.storm_address, *self.flood_addresses, *self.fuzz_addresses):
            require_loopback(address)


def loopback_address(index: int) -> str:
    """The ``index``-th hostile source address: 127.0.0.2, 127.0.0.3, ... (127.0.0.1 is the good rig's)."""
    n = index + 2
    if n >= 1 << 24:
        raise BenchError("more hostile addresses than 127.0.0.0/8 holds")
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def peer_plan(options: HostileOptions, limits: Limits, port: int, repeat: int) -> PeerPlan:
    from fleetd.config import StratumConfig

    per_address = max(1, min(limits.max_connections_per_ip, limits.new_connections_burst_per_ip) // 2)
    idle_count = math.ceil(options.idle_connections / per_address) if options.idle_connections else 0
    addresses = iter(loopback_address(i) for i in range(1 << 24))
    idle = tuple(next(addresses) for _ in range(idle_count))
    storm = next(addresses)
    flood = tuple(next(addresses) for _ in range(options.flood_addresses))
    fuzz = tuple(next(addresses) for _ in range(options.fuzz_addresses))
    # enough held connections, each with its full share of names, to pass the per-address worker limit
    hold = math.ceil(limits.max_workers_per_ip / limits.max_workers_per_connection) + 2
    connect_allowance = 60.0 + options.idle_connections / 500
    return PeerPlan(
        port=port,
        tag=f"r{repeat}",
        idle=options.idle_connections,
        idle_addresses=idle,
        storm=_storm_size(limits.max_connections_per_ip),
        storm_address=storm,
        flood_names=options.flood_names,
        flood_addresses=flood,
        flood_hold=hold,
        names_per_connection=2 * limits.max_workers_per_connection,
        fuzz_connections=options.fuzz_connections,
        fuzz_addresses=fuzz,
        fuzz_concurrency=options.fuzz_concurrency,
        max_line_bytes=StratumConfig().max_line_bytes,
        seed=options.seed,
        spread_seconds=options.warmup + options.seconds + 0.5,  # the good rig connects, warms up, is measured
        time_bound=connect_allowance + options.warmup + options.seconds + 120.0,
    )


# --- the peer process -----------------------------------------------------------------------------


@dataclass(slots=True)
class PeerStats:
    idle_ready: int = 0
    idle_failed: int = 0  # refused, closed or not logged in within the bound
    idle_dropped: int = 0  # logged in, then closed by the server while held
    storm_opened: int = 0
    storm_held: int = 0
    storm_refused: int = 0
    flood_connections: int = 0
    flood_refused: int = 0  # closed by the server before any reply
    flood_names_sent: int = 0
    flood_accepted: int = 0
    flood_refusals: int = 0  # mining.authorize answered with an error
    flood_seconds: float = 0.0  # from "go" to the budget spent (or "stop")
    fuzz_connections: int = 0
    fuzz_closed_by_server: int = 0
    fuzz_closed_silently: int = 0  # ... without a reply to anything
    fuzz_lines: dict[str, int] = field(default_factory=dict)
    fuzz_replies: int = 0
    fuzz_seconds: float = 0.0
    connect_errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the peer process's own, over the hostile window
    window_seconds: float = 0.0


class _Client(asyncio.Protocol):
    """One hostile connection: writes what it is given, counts the replies it gets back."""

    __slots__ = ("transport", "buffer", "ok", "errors", "expect", "answered", "lost", "data", "closing")

    def __init__(self, expect: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.ok = self.errors = 0  # replies: result true or a list / an error
        self.expect = expect
        self.answered = loop.create_future()  # True once ``expect`` replies came; False if the connection ended
        self.lost = loop.create_future()  # done when the connection ended
        self.data = False
        self.closing = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data = True
        *lines, rest = (self.buffer + data).split(b"\n")
        self.buffer = rest if len(rest) < 1 << 20 else b""  # a peer never buffers without bound
        for line in lines:
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.errors += 1
                continue
            if not isinstance(message, dict) or "method" in message:
                continue  # set_difficulty, notify
            if message.get("error") is None and message.get("result") not in (None, False):
                self.ok += 1
            else:
                self.errors += 1
            if self.ok + self.errors >= self.expect and not self.answered.done():
                self.answered.set_result(True)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.answered.done():
            self.answered.set_result(False)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    @property
    def refused(self) -> bool:
        """Closed by the server before it said anything: refused at once."""
        return self.lost.done() and not self.data and not self.closing


class _Pace:
    """Spreads a budget over the window: the n-th call returns no sooner than n / rate seconds after the first."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start: float | None = None
        self.n = 0

    async def wait(self) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        due = self.start + self.n / self.rate if self.rate > 0 else now
        self.n += 1
        if due > now:
            await asyncio.sleep(due - now)


def _subscribe(agent: str) -> bytes:
    return b'{"id":1,"method":"mining.subscribe","params":["%s"]}\n' % agent.encode()


def _authorize(request_id: int, name: str) -> bytes:
    return b'{"id":%d,"method":"mining.authorize","params":["%s","x"]}\n' % (request_id, name.encode())


class Peers:
    """Every hostile peer of one window, in one process."""

    def __init__(self, plan: PeerPlan) -> None:
        self.plan = plan
        self.stats = PeerStats()
        self.held: list[_Client] = []
        self.idle: list[_Client] = []
        self.stopping = asyncio.Event()
        self.gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)
        self.flood_left = plan.flood_names
        self.fuzz_left = plan.fuzz_connections
        self.fuzz_serial = 0
        flood_connections = math.ceil(plan.flood_names / plan.names_per_connection)
        self.flood_pace = _Pace(flood_connections / plan.spread_seconds)
        self.fuzz_pace = _Pace(plan.fuzz_connections / plan.spread_seconds)

    async def connect(self, source: str, payload: bytes, expect: int) -> _Client | None:
        loop = asyncio.get_running_loop()
        try:
            _, client = await loop.create_connection(
                lambda: _Client(expect), "127.0.0.1", self.plan.port, local_addr=(source, 0)
            )
        except OSError as exc:
            key = f"errno {exc.errno}" if exc.errno else type(exc).__name__
            self.stats.connect_errors[key] = self.stats.connect_errors.get(key, 0) + 1
            return None
        if payload:
            client.transport.write(payload)
        return client

    # -- before the window: idle connections and the storm, held ----------------------------------

    async def open_idle(self) -> None:
        plan, stats = self.plan, self.stats
        per_address = math.ceil(plan.idle / len(plan.idle_addresses)) if plan.idle else 0

        async def one(i: int) -> None:
            async with self.gate:
                payload = _subscribe("hostile-idle") + _authorize(2, f"idle-{plan.tag}-{i}")
                client = await self.connect(plan.idle_addresses[i // per_address], payload, 2)
                if client is None:
                    stats.idle_failed += 1
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30.0):
                        await client.answered
                if client.answered.done() and client.answered.result() and client.ok == 2:
                    stats.idle_ready += 1
                    self.idle.append(client)
                    self.held.append(client)
                else:
                    stats.idle_failed += 1
                    client.close()

        await asyncio.gather(*(one(i) for i in range(plan.idle)))

    async def open_storm(self) -> None:
        plan, stats, opened = self.plan, self.stats, []

        async def one() -> None:
            async with self.gate:
                client = await self.connect(plan.storm_address, b"", 0)
                if client is not None:
                    opened.append(client)

        await asyncio.gather(*(one() for _ in range(plan.storm)))
        await asyncio.sleep(0.3)  # refused ones are reset at once
        stats.storm_opened = len(opened)
        for client in opened:
            if client.lost.done():
                stats.storm_refused += client.refused
            else:
                stats.storm_held += 1
                self.held.append(client)

    def count_dropped(self) -> None:
        self.stats.idle_dropped = sum(1 for c in self.idle if c.lost.done() and not c.closing)

    # -- in the window: the flood and the fuzzer -----------------------------------------------

    def _names(self, address: int, serial: int) -> tuple[bytes, int]:
        """A flood connection's subscribe and its distinct names, taken from the budget."""
        n = min(self.plan.names_per_connection, self.flood_left)
        self.flood_left -= n
        prefix = f"flood-{self.plan.tag}-{address}-{serial}"
        return _subscribe("hostile-flood") + b"".join(_authorize(k + 2, f"{prefix}-{k}") for k in range(n)), n

    async def _flood_one(self, address: int, names: tuple[bytes, int], keep: bool) -> None:
        plan, stats = self.plan, self.stats
        payload, n = names
        client = await self.connect(plan.flood_addresses[address], payload, n + 1)
        stats.flood_names_sent += n
        if client is None:
            await asyncio.sleep(_BACKOFF)
            return
        stats.flood_connections += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REPLY_TIMEOUT):
                await client.answered
        stats.flood_accepted += max(0, client.ok - 1)  # less the subscribe
        stats.flood_refusals += client.errors
        if client.refused:
            stats.flood_refused += 1
            await asyncio.sleep(_BACKOFF)
        elif keep and not client.lost.done():
            self.held.append(client)
            return
        client.close()

    async def flood(self, address: int) -> None:
        plan = self.plan
        held = [self._names(address, serial) for serial in range(plan.flood_hold) if self.flood_left > 0]
        await asyncio.gather(*(self._flood_one(address, names, True) for names in held))
        serial = len(held)
        while self.flood_left > 0 and not self.stopping.is_set():
            await self.flood_pace.wait()
            serial += 1
            await self._flood_one(address, self._names(address, serial), False)

    async def fuzz(self, address: str, start: float) -> None:
        plan, stats = self.plan, self.stats
        while self.fuzz_left > 0 and not self.stopping.is_set():
            self.fuzz_left -= 1
            serial = self.fuzz_serial
            self.fuzz_serial += 1
            await self.fuzz_pace.wait()
            rng = random.Random(f"{plan.seed}:{plan.tag}:{serial}")
            if serial < len(FUZZ_KINDS):  # first each kind alone, in a form whose verdict is known
                kinds = [FUZZ_KINDS[serial]]
                lines = [canonical_line(kinds[0], plan.max_line_bytes)]
            else:
                kinds = [rng.choice(FUZZ_KINDS) for _ in range(rng.randint(1, 8))]
                lines = [FUZZERS[kind](rng, plan.max_line_bytes) for kind in kinds]
            login = rng.random() < 0.5
            payload = (_subscribe("hostile-fuzz") + _authorize(2, f"fuzz-{plan.tag}-{serial}") if login else b"")
            client = await self.connect(address, payload + b"".join(lines), 1 << 30)
            if client is None:
                await asyncio.sleep(_BACKOFF)
                continue
            stats.fuzz_connections += 1
            for kind in kinds:
                stats.fuzz_lines[kind] = stats.fuzz_lines.get(kind, 0) + 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FUZZ_WAIT):
                    await client.lost
            stats.fuzz_replies += client.ok + client.errors
            if client.lost.done() and not client.closing:
                stats.fuzz_closed_by_server += 1
                stats.fuzz_closed_silently += not client.data
            client.close()
        stats.fuzz_seconds = max(stats.fuzz_seconds, time.monotonic() - start)

    async def hostile_window(self) -> list[asyncio.Task]:
        plan, start = self.plan, time.monotonic()

        async def flood_all() -> None:
            await asyncio.gather(*(self.flood(i) for i in range(len(plan.flood_addresses))))
            self.stats.flood_seconds = time.monotonic() - start

        tasks = [asyncio.create_task(flood_all())]
        for address in plan.fuzz_addresses:
            tasks += [asyncio.create_task(self.fuzz(address, start)) for _ in range(plan.fuzz_concurrency)]
        return tasks

    async def close_all(self) -> None:
        for client in self.held:
            client.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(c.lost for c in self.held))


async def run_peers(plan: PeerPlan) -> PeerStats:
    """Hold the idle connections and the storm, say "ready"; on "go" flood and fuzz; on "stop" (or end
    of input) close everything. The stats come back as JSON on stdout."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    async def command() -> str:
        return (await commands.readline()).decode().strip() or "stop"

    peers = Peers(plan)
    try:
        await peers.open_idle()
        await peers.open_storm()
        print("ready", flush=True)
        if await command() == "go":
            cpu0, start = _own_cpu(), time.monotonic()
            tasks = await peers.hostile_window()
            await command()
            peers.stopping.set()
            peers.stats.window_seconds = time.monotonic() - start
            peers.stats.cpu_seconds = _own_cpu() - cpu0
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            peers.stats.flood_seconds = peers.stats.flood_seconds or peers.stats.window_seconds
            peers.stats.fuzz_seconds = min(peers.stats.fuzz_seconds, peers.stats.window_seconds)
        peers.count_dropped()
    finally:
        await peers.close_all()
    return peers.stats


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the fuzzer's lines -----------------------------------------------------------------------------

_VALID = (
    b'{"id":7,"method":"mining.submit","params":["w","1a2b","00000000","5f000000","00000000"]}',
    b'{"id":3,"method":"mining.subscribe","params":["cgminer/4.11"]}',
    b'{"id":4,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000"}]}',
    b'{"id":5,"method":"mining.suggest_difficulty","params":[1024]}',
)


def _malformed_json(rng: random.Random, max_line: int) -> bytes:
    line = bytearray(rng.choice(_VALID))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(line))
        how = rng.randrange(3)
        if how == 0:
            del line[at:]  # truncated
            line += b"}" if rng.random() < 0.5 else b""
        elif how == 1:
            line[at] = rng.choice(b'{}[]",:\\x')  # a structural byte in the wrong place
        else:
            line[at:at] = rng.choice((b",", b'"', b"]", b"}", b"\\u00", b"NaN"))
        if not line:
            line = bytearray(b"{")
    return bytes(line) + b"\n"


def _deep_nesting(rng: random.Random, max_line: int) -> bytes:
    depth = rng.choice((33, 100, 987, 988, 1024, 1025, 5000, max_line))  # the last one is over the line limit
    where = rng.choice(("params", "mask", "id"))
    open_, close = ("[" * depth, "]" * depth) if rng.random() < 0.5 else ('{"a":' * depth, "}" * depth)
    if where == "params":
        return b'{"id":9,"method":"mining.submit","params":%s1%s}\n' % (open_.encode(), close.encode())
    if where == "mask":
        return (b'{"id":9,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":%s0%s}]}\n'
                % (open_.encode(), close.encode()))  # fmt: skip
    return b'{"id":%s0%s,"method":"mining.ping","params":[]}\n' % (open_.encode(), close.encode())


def _huge_line(rng: random.Random, max_line: int) -> bytes:
    size = rng.randint(max_line + 1, 4 * max_line)
    if rng.random() < 0.5:
        return b'{"id":1,"method":"mining.subscribe","params":["' + b"x" * size + b'"]}\n'
    return b"x" * size + b"\n"  # not even JSON


def _wrong_sizes(rng: random.Random, max_line: int) -> bytes:
    hexes = ("", "0", "00", "zz", "0" * 7, "0" * 9, "0" * 17, "f" * 64, "0x1f", "-1", "1" * 2000)
    params = ["fuzz.w", "deadbeef", rng.choice(hexes), rng.choice(hexes), rng.choice(hexes)]
    if rng.random() < 0.5:
        params.append(rng.choice(hexes))  # version bits
    for _ in range(rng.randint(0, 2)):
        params[rng.randrange(len(params))] = rng.choice((None, 1, 1.5, -1, True, [], {}, "x" * 300))
    if rng.random() < 0.2:
        params = params[: rng.randint(0, 4)] if rng.random() < 0.5 else params + ["extra"] * rng.randint(1, 5)
    method = rng.choice(("mining.submit", "mining.authorize", "mining.subscribe", "mining.suggest_difficulty"))
    return orjson.dumps({"id": rng.randint(1, 1 << 31), "method": method, "params": params}) + b"\n"


def _unknown_method(rng: random.Random, max_line: int) -> bytes:
    method = rng.choice(("mining.foo", "eth_submitLogin", "", "mining.", "MINING.SUBMIT", "mining.get_txnhashes",
                         "mining.capabilities", "a" * 1000, "mining.submit\u0000", "\u202e"))  # fmt: skip
    method = method + str(rng.randrange(1000)) if rng.random() < 0.3 else method
    return orjson.dumps({"id": rng.randint(1, 1000), "method": method, "params": []}) + b"\n"


def _wrong_types(rng: random.Random, max_line: int) -> bytes:
    return rng.choice((
        b'{"id":[1],"method":"mining.subscribe","params":[]}',
        b'{"id":{"a":1},"method":"mining.authorize","params":["w","x"]}',
        b'{"id":1,"method":"mining.authorize","params":{"user":"w"}}',
        b'{"id":1,"method":"mining.submit","params":"w,1,2,3,4"}',
        b'{"id":1,"method":42,"params":[]}',
        b'{"id":1,"method":null}',
        b'{"id":1}',
        b'{}',
        b'[]',
        b'[{"id":1,"method":"mining.subscribe","params":[]}]',
        b'"mining.subscribe"',
        b'12345',
        b'null',
        b'true',
        b'{"id":1e400,"method":"mining.ping","params":[]}',
        b'{"id":123456789012345678901234567890,"method":"mining.ping","params":[]}',
        b'{"id":1,"method":"mining.suggest_difficulty","params":[-1e308]}',
        b'{"id":1,"method":"mining.subscribe","params":["\xff\xfe"]}',
        b'{"id":1,"method":"mining.subscribe","params":[],"id":2}',
    )) + b"\n"  # fmt: skip


def _binary(rng: random.Random, max_line: int) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(32) + b"\n"  # a TLS ClientHello
    if kind == 1:
        return b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    return bytes([rng.choice(b"\x00\x01\x7f\x80\xfeABC#<")]) + rng.randbytes(rng.randint(0, 200)) + b"\n"


FUZZERS = {
    "malformed_json": _malformed_json,
    "deep_nesting": _deep_nesting,
    "huge_line": _huge_line,
    "wrong_sizes": _wrong_sizes,
    "unknown_method": _unknown_method,
    "wrong_types": _wrong_types,
    "binary": _binary,
}
FUZZ_KINDS = tuple(FUZZERS)


def canonical_line(kind: str, max_line: int) -> bytes:
    """One line of ``kind`` whose verdict is known: an error reply (deep nesting, wrong sizes, unknown
    method, wrong types) or a close by a named reason (invalid_json, line_too_long, tls_handshake)."""
    return {
        "malformed_json": b'{"id":1,"method":"mining.subscribe","params":[\n',
        "deep_nesting": b'{"id":9,"method":"mining.submit","params":' + b"[" * 100 + b"]" * 100 + b"}\n",
        "huge_line": b'{"id":1,"method":"mining.subscribe","params":["' + b"x" * (max_line + 1) + b'"]}\n',
        "wrong_sizes": b'{"id":7,"method":"mining.submit","params":["w","deadbeef","00","5f000000","0000000"]}\n',
        "unknown_method": b'{"id":8,"method":"mining.foo","params":[]}\n',
        "wrong_types": b'{"id":1,"method":42,"params":[]}\n',
        "binary": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\n",  # a TLS ClientHello
    }[kind]


# --- the coordinator ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scrape:
    metrics_seconds: float
    metrics_bytes: int
    rigs_seconds: float
    rigs_bytes: int
    rigs: tuple[str, ...]
    counters: dict[str, dict[str, float]]  # family -> {reason or "": value}


@dataclass(frozen=True, slots=True)
class Pair:
    quiet: dict  # the load generator's result
    hostile: dict
    quiet_scrape: Scrape
    hostile_scrape: Scrape  # while the hostile peers are still connected
    peers: PeerStats


@dataclass(frozen=True, slots=True)
class HostileSummary:
    limits: Limits
    plan: PeerPlan  # the first window's
    pairs: tuple[Pair, ...]
    final: Scrape  # after the last window
    server_cpus: tuple[int, ...] | None
    client_cpus: tuple[int, ...] | None

    def latency(self, phase: str, key: str) -> float | None:
        values = [getattr(p, phase)["latency"][key] for p in self.pairs]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def median(self, phase: str, fn) -> float:
        return statistics.median(fn(getattr(p, phase)) for p in self.pairs)

    @property
    def good_shares(self) -> tuple[int, int, int, int]:
        """(submitted, accepted, rejected, dropped connections) over every run of the good rig."""
        runs = [r for p in self.pairs for r in (p.quiet, p.hostile)]
        return (sum(r["total_submitted"] for r in runs), sum(r["total_accepted"] for r in runs),
                sum(r["rejected"] for r in runs), sum(r["disconnects"] for r in runs))  # fmt: skip

    @property
    def all_accepted(self) -> bool:
        submitted, accepted, rejected, dropped = self.good_shares
        runs = [r for p in self.pairs for r in (p.quiet, p.hostile)]
        answered = all(r["total_answered"] == r["total_submitted"] for r in runs)
        return submitted > 0 and accepted == submitted and rejected == 0 and dropped == 0 and answered

    def hostile_rigs(self, good: frozenset[str]) -> int:
        """Rigs in /api/v1/rigs, in any scrape, that are not the good rig's workers."""
        scrapes = [self.final, *(s for p in self.pairs for s in (p.quiet_scrape, p.hostile_scrape))]
        return len({name for s in scrapes for name in s.rigs} - good)


def good_workers(options: HostileOptions) -> frozenset[str]:
    """The good rig's worker names: the load generator's, one per connection."""
    return frozenset(f"bench.c{i}" for i in range(options.connections))


def measure(options: HostileOptions) -> HostileSummary:
    limits = Limits.for_options(options)
    needed = options.idle_connections + _storm_size(limits.max_connections_per_ip) + 64 * options.flood_addresses
    needed += options.fuzz_addresses * options.fuzz_concurrency + _FD_HEADROOM
    if raise_fd_limit(needed) < needed:  # the server and the peer process inherit it
        raise BenchError(f"{options.idle_connections:,} idle connections and the storm need {needed:,} open files;"
                         " raise ulimit -Hn or pass a smaller --idle-connections")  # fmt: skip
    server_cpus, client_cpus = _cpu_plan()
    loadgen_options = stratum.BenchOptions(python=options.python, startup_timeout=options.startup_timeout)
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-hostile-") as tmp:
        workdir = Path(tmp)
        config = lambda s, h: hostile_config(limits, s, h)  # noqa: E731
        with running_server(loadgen_options, workdir, cpus=server_cpus, config=config) as server:
            # unmeasured: the good rig's records, the first scrape and the first API answer are made once
            _good_rig(options, loadgen_options, server, client_cpus, seconds=1.0)
            scrape(server)
            pairs, first_plan = [], None
            for repeat in range(options.repeats):
                quiet = _good_rig(options, loadgen_options, server, client_cpus)
                quiet_scrape = scrape(server)
                plan = peer_plan(options, limits, server.port, repeat)
                first_plan = first_plan or plan
                with _peer_process(options, plan, workdir, client_cpus) as peer:
                    peer.go()
                    hostile = _good_rig(options, loadgen_options, server, client_cpus)
                    hostile_scrape = scrape(server)
                    stats = peer.stop()
                pairs.append(Pair(quiet, hostile, quiet_scrape, hostile_scrape, stats))
            final = scrape(server)
    return HostileSummary(limits, first_plan, tuple(pairs), final, server_cpus, client_cpus)


def _cpu_plan() -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """The server on one CPU, the good rig and the hostile peers on the others, where the OS allows."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (tuple(usable[:1]), tuple(usable[1:])) if len(usable) >= 2 else (None, None)


def _good_rig(options: HostileOptions, loadgen_options: stratum.BenchOptions, server: Server,
              cpus: tuple[int, ...] | None, seconds: float | None = None) -> dict:  # fmt: skip
    """One run of the good rig: the load generator at the fixed rate, from 127.0.0.1."""
    seconds = options.seconds if seconds is None else seconds
    args = ["--host", "127.0.0.1", "--connections", str(options.connections), "--rate", repr(options.rate),
            "--seconds", repr(seconds), "--warmup", repr(options.warmup), "--processes", "1"]  # fmt: skip
    if cpus:
        args += ["--cpus", ",".join(map(str, cpus))]
    return run_loadgen(loadgen_options, server, *args, bound=options.warmup + seconds + 90)


class _PeerProcess:
    def __init__(self, proc: subprocess.Popen, plan: PeerPlan, log: Path) -> None:
        self.proc, self.plan, self.log = proc, plan, log

    def _line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise BenchError(f"the hostile peers did not answer within {timeout:g} s{self._tail()}")
        return self.proc.stdout.readline().decode().strip()

    def _tell(self, word: str) -> None:
        try:
            self.proc.stdin.write(word.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"the hostile peers exited (status {self.proc.poll()}){self._tail()}") from None

    def wait_ready(self) -> None:
        word = self._line(self.plan.time_bound)
        if word != "ready":
            raise BenchError(f"the hostile peers said {word!r}, not 'ready'{self._tail()}")

    def go(self) -> None:
        self._tell("go")

    def stop(self) -> PeerStats:
        self._tell("stop")
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the hostile peers did not stop within 30 s{self._tail()}") from None
        if self.proc.returncode != 0 or not out.strip():
            raise BenchError(f"the hostile peers failed (exit {self.proc.returncode}){self._tail()}")
        return PeerStats(**orjson.loads(out.splitlines()[-1]))

    def _tail(self) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\n--- hostile peers (stderr tail) ---\n" + "\n".join(tail) if tail else ""


@contextlib.contextmanager
def _peer_process(options: HostileOptions, plan: PeerPlan, workdir: Path, cpus: tuple[int, ...] | None):
    log = workdir / f"peers-{plan.tag}.log"
    command = [options.python, "-m", "fleetd.bench.hostile", "--peers", orjson.dumps(asdict(plan)).decode()]
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    pin(cpus, proc.pid)
    peer = _PeerProcess(proc, plan, log)
    try:
        peer.wait_ready()
        yield peer
    finally:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of input means stop
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def scrape(server: Server) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    base = f"http://127.0.0.1:{server.http_port}"
    metrics_seconds, metrics = _get(f"{base}/metrics")
    rigs_seconds, rigs = _get(f"{base}/api/v1/rigs")
    counters: dict[str, dict[str, float]] = {}
    wanted = {"fleetd_stratum_refused", "fleetd_stratum_auth_failures", "fleetd_stratum_disconnects",
              "fleetd_stratum_bans", "fleetd_connections"}  # fmt: skip
    for family in text_string_to_metric_families(metrics.decode()):
        if family.name in wanted:
            counters[family.name] = {s.labels.get("reason", ""): s.value for s in family.samples
                                     if not s.name.endswith("_created")}  # fmt: skip
    names = tuple(r["rig"] for r in orjson.loads(rigs)["rigs"])
    return Scrape(metrics_seconds, len(metrics), rigs_seconds, len(rigs), names, counters)


def _get(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
    except OSError as exc:
        raise BenchError(f"GET {url} failed: {exc}") from None
    return time.perf_counter() - start, body


# --- the report -------------------------------------------------------------------------------------


def report(options: HostileOptions | None = None) -> str:
    options = options or HostileOptions()
    return format_report(options, measure(options))


def format_report(options: HostileOptions, summary: HostileSummary) -> str:
    plan, limits, pairs = summary.plan, summary.limits, summary.pairs
    pinned = ""
    if summary.server_cpus:
        pinned = (f"; server on CPU {_cpus(summary.server_cpus)}, good rig and hostile peers on CPU"
                  f" {_cpus(summary.client_cpus)}")  # fmt: skip
    runs = f"median of {options.repeats} quiet/hostile pair{'s' if options.repeats > 1 else ''} of {options.seconds:g} s"
    lines = [
        f"fleetd bench hostile: fleetd serve (demo source, difficulty {stratum.DIFFICULTY:g}) on loopback,"
        f" {os.cpu_count()} CPUs{pinned}",
        f"good rig: {options.connections} connections from 127.0.0.1 offering {options.rate:,.0f} valid shares/s; {runs}",
        "hostile peers in each hostile window, all from other loopback addresses (seed"
        f" {options.seed}):",
        f"  {plan.idle:,} idle connections (subscribed, authorized) from {len(plan.idle_addresses)} addresses"
        + (f" ({plan.idle_addresses[0]}-{plan.idle_addresses[-1]})" if plan.idle_addresses else ""),
        f"  a connection storm of {plan.storm:,} held from {plan.storm_address}",
        f"  a worker-name flood of up to {plan.flood_names:,} names, {plan.names_per_connection} per connection,"
        f" {plan.flood_hold} connections held per address, from {len(plan.flood_addresses)} addresses",
        f"  a fuzzer of up to {plan.fuzz_connections:,} connections, {plan.fuzz_concurrency} at once per address,"
        f" from {len(plan.fuzz_addresses)} addresses",
        "limits: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:g}" for k, v in asdict(limits).items()),
        "",
        f"{'':40}{'quiet':>10}{'hostile':>12}{'hostile/quiet':>16}",
    ]

    def row(label: str, quiet: float | None, hostile: float | None, fmt: str = "{:,.2f}") -> str:
        q = "n/a" if quiet is None else fmt.format(quiet)
        h = "n/a" if hostile is None else fmt.format(hostile)
        ratio = "n/a" if not quiet or hostile is None else f"{hostile / quiet:.2f}"
        return f"  {label:<38}{q:>10}{h:>12}{ratio:>16}"

    def med(phase: str, fn) -> float:
        return summary.median(phase, fn)

    lines += [
        row("answered shares/s", med("quiet", lambda r: r["answered_per_second"]),
            med("hostile", lambda r: r["answered_per_second"]), "{:,.0f}"),
        row("p50 send-to-reply (ms)", summary.latency("quiet", "p50_ms"), summary.latency("hostile", "p50_ms")),
        row("p99 send-to-reply (ms)", summary.latency("quiet", "p99_ms"), summary.latency("hostile", "p99_ms")),
        "    each pair, p99 quiet / hostile (ms)   " + ", ".join(
            f"{_ms(p.quiet['latency']['p99_ms'])} / {_ms(p.hostile['latency']['p99_ms'])}" for p in pairs),
        row("server CPU (cores)", med("quiet", _cores), med("hostile", _cores)),
        row("server RSS at window end (MiB)", med("quiet", _rss_mib), med("hostile", _rss_mib), "{:,.1f}"),
        row("open Stratum connections", _median_scrape(pairs, "quiet_scrape", _open),
            _median_scrape(pairs, "hostile_scrape", _open), "{:,.0f}"),
        row("GET /metrics (ms)", _median_scrape(pairs, "quiet_scrape", lambda s: 1e3 * s.metrics_seconds),
            _median_scrape(pairs, "hostile_scrape", lambda s: 1e3 * s.metrics_seconds)),
        row("GET /metrics (KiB)", _median_scrape(pairs, "quiet_scrape", lambda s: s.metrics_bytes / 1024),
            _median_scrape(pairs, "hostile_scrape", lambda s: s.metrics_bytes / 1024), "{:,.1f}"),
        row("GET /api/v1/rigs (ms)", _median_scrape(pairs, "quiet_scrape", lambda s: 1e3 * s.rigs_seconds),
            _median_scrape(pairs, "hostile_scrape", lambda s: 1e3 * s.rigs_seconds)),
    ]  # fmt: skip
    submitted, accepted, rejected, dropped = summary.good_shares
    good = good_workers(options)
    hostile_rigs = summary.hostile_rigs(good)
    lines += [
        "",
        f"good rig: {accepted:,} of {submitted:,} valid shares accepted, {rejected:,} rejected,"
        f" {dropped} connections dropped: {'all accepted' if summary.all_accepted else 'NOT all accepted'}",
        f"rigs in /api/v1/rigs: {len(summary.final.rigs)} (the good rig's {len(good)} workers);"
        f" from hostile peers: {hostile_rigs}",
        "",
        "hostile peers, median per hostile window:",
    ]
    peer = lambda fn: statistics.median(fn(p.peers) for p in pairs)  # noqa: E731
    lines += [
        f"  idle: {peer(lambda s: s.idle_ready):,.0f} of {plan.idle:,} logged in and held,"
        f" {peer(lambda s: s.idle_failed):,.0f} not, {peer(lambda s: s.idle_dropped):,.0f} dropped by the server",
        f"  storm: {peer(lambda s: s.storm_opened):,.0f} opened, {peer(lambda s: s.storm_held):,.0f} held,"
        f" {peer(lambda s: s.storm_refused):,.0f} refused at once",
        f"  flood: {peer(lambda s: s.flood_names_sent):,.0f} names over {peer(lambda s: s.flood_connections):,.0f}"
        f" connections in {peer(lambda s: s.flood_seconds):.1f} s: {peer(lambda s: s.flood_accepted):,.0f} authorized,"
        f" {peer(lambda s: s.flood_refusals):,.0f} refused; {peer(lambda s: s.flood_refused):,.0f} connections"
        " refused at once",
        f"  fuzz: {peer(lambda s: s.fuzz_connections):,.0f} connections opened in {peer(lambda s: s.fuzz_seconds):.1f} s,"
        f" {peer(lambda s: sum(s.fuzz_lines.values())):,.0f} lines, {peer(lambda s: s.fuzz_replies):,.0f} replies;"
        f" {peer(lambda s: s.fuzz_closed_by_server):,.0f} closed by the server"
        f" ({peer(lambda s: s.fuzz_closed_silently):,.0f} without a reply)",
        "    lines by kind: " + ", ".join(f"{k} {peer(lambda s, k=k: s.fuzz_lines.get(k, 0)):,.0f}" for k in FUZZ_KINDS),
        f"  peer process CPU: {peer(lambda s: s.cpu_seconds / max(s.window_seconds, 1e-9)):.2f} cores",
    ]
    errors = {k: v for p in pairs for k, v in p.peers.connect_errors.items()}
    if errors:
        lines.append(f"  connect errors: {errors}")
    lines += ["", "server counters after the run (/metrics, every window):"]
    for family in ("fleetd_stratum_refused", "fleetd_stratum_auth_failures", "fleetd_stratum_disconnects"):
        counts = summary.final.counters.get(family, {})
        text = ", ".join(f"{reason} {value:,.0f}" for reason, value in sorted(counts.items())) or "none"
        lines.append(f"  {family + '_total':<38}{text}")
    bans = summary.final.counters.get("fleetd_stratum_bans", {}).get("", 0)
    lines.append(f"  {'fleetd_stratum_bans_total':<38}{bans:,.0f}")
    problems = _problems(options, summary)
    if problems:
        lines += ["", *(f"warning: {p}" for p in problems)]
    return "\n".join(lines)


def _problems(options: HostileOptions, summary: HostileSummary) -> list[str]:
    problems = []
    for i, p in enumerate(summary.pairs):
        for phase, r in (("quiet", p.quiet), ("hostile", p.hostile)):
            if r["connections_ready"] < options.connections:
                ready = r["connections_ready"]
                problems.append(f"pair {i + 1} {phase}: {ready} of {options.connections} good connections ready")
            if r["skipped_offers"]:
                problems.append(f"pair {i + 1} {phase}: the good rig could not offer its full rate")
        if p.peers.idle_ready < summary.plan.idle:
            problems.append(f"pair {i + 1}: {p.peers.idle_ready:,} of {summary.plan.idle:,} idle connections logged in")
    return problems


def _cores(r: dict) -> float:
    return (r["server_cpu_seconds"] or 0.0) / max(r["window_seconds"], 1e-9)


def _rss_mib(r: dict) -> float:
    return (r["server_rss_kib_loaded"] or 0) / 1024


def _open(s: Scrape) -> float:
    return s.counters.get("fleetd_connections", {}).get("", 0.0)


def _median_scrape(pairs: tuple[Pair, ...], which: str, fn) -> float:
    return statistics.median(fn(getattr(p, which)) for p in pairs)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _cpus(cpus: tuple[int, ...] | None) -> str:
    return ",".join(map(str, cpus or ()))


# --- python -m fleetd.bench.hostile --peers PLAN ------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fleetd.bench.hostile",
                                description="the hostile peers of fleetd bench hostile (loopback only)")  # fmt: skip
    p.add_argument("--peers", required=True, help="the plan, as JSON")
    args = p.parse_args(argv)
    raw = orjson.loads(args.peers)
    plan = PeerPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    faulthandler.dump_traceback_later(plan.time_bound + _PEER_GRACE, exit=True)  # whatever happens, it ends
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            stats = runner.run(run_peers(plan))
    finally:
        faulthandler.cancel_dump_traceback_later()
    sys.stdout.write(orjson.dumps(asdict(stats)).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
