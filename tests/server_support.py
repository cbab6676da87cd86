"""A real fleetd (aiohttp app, Stratum listener, demo chain) on loopback, and a raw test client."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field, replace

import aiohttp
from aiohttp import web

from fleetd import app as fleetd_app
from fleetd import native
from fleetd.chain.byteorder import prevhash_from_stratum, u32_from_hex, u32_to_hex
from fleetd.chain.target import difficulty_to_target
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.config import Config, HostPort, HttpConfig, RigsConfig, SourceConfig, StratumConfig

TINY_DIFFICULTY = 1e-6  # a valid share in a few thousand hashes
HANG_GUARD_S = 30.0  # what tests wait for over loopback takes milliseconds; this much means it is not coming


def make_config(network_difficulty: float = 1e9, **stratum) -> Config:
    defaults = {"min_difficulty": 1e-9, "start_difficulty": TINY_DIFFICULTY, "login_timeout_seconds": 5.0}
    return Config(
        stratum=StratumConfig(
            listen=HostPort("127.0.0.1", 0),
            shutdown_grace_seconds=1.0,
            **{**defaults, **stratum},
        ),
        http=HttpConfig(listen=HostPort("127.0.0.1", 0)),
        source=SourceConfig(network_difficulty=network_difficulty),  # default: no blocks unless a test wants them
        rigs=RigsConfig(poll=False),  # test miners have no management API to poll
    )


@dataclass
class RunningFleetd:
    app: web.Application
    runner: web.AppRunner
    stratum: tuple[str, int]
    http: str

    @property
    def server(self):
        return self.app[fleetd_app.STRATUM_KEY]

    @property
    def source(self):
        return self.app[fleetd_app.SOURCE_KEY]

    @property
    def clock(self):
        """The app's one clock: a test that started fleetd on a FakeClock moves it here."""
        return self.app[fleetd_app.CLOCK_KEY]


def own_journal(config: Config) -> Config:
    """``config`` with a journal of its own, unless it names one: one fleetd per journal, and a
    test may run several (a proxy and its upstream)."""
    if config.journal.path:
        return config
    state = tempfile.mkdtemp(prefix="journal-", dir=os.environ.get("STATE_DIRECTORY"))
    return replace(config, journal=replace(config.journal, path=os.path.join(state, "journal.sqlite3")))


async def start_fleetd(config: Config, *, clock: Clock = SYSTEM_CLOCK) -> RunningFleetd:
    """fleetd on loopback; ``clock`` is the one its server, source, API and feeds all read."""
    config = own_journal(replace(config, http=replace(config.http, listen=HostPort("127.0.0.1", 0))))
    app = fleetd_app.build_app(config, clock=clock)
    runner = await fleetd_app.start_http(app)  # as `fleetd serve` listens: timeouts, JSON errors, auth
    port = runner.addresses[0][1]
    server = app[fleetd_app.STRATUM_KEY]
    await wait_until(lambda: server.current_job is not None)  # the demo chain publishes one right after start
    return RunningFleetd(app, runner, server.address, f"http://127.0.0.1:{port}")


async def wait_until(predicate, timeout: float = HANG_GUARD_S) -> None:
    """Until ``predicate()`` holds, for what real sockets carry; ``timeout`` is a hang guard, not a measurement."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@dataclass
class Notify:
    job_id: str
    prevhash: bytes
    coinb1: bytes
    coinb2: bytes
    branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool

    @classmethod
    def from_params(cls, p) -> Notify:
        return cls(
            p[0], prevhash_from_stratum(p[1]), bytes.fromhex(p[2]), bytes.fromhex(p[3]),
            tuple(bytes.fromhex(h) for h in p[4]), u32_from_hex(p[5]), u32_from_hex(p[6]), u32_from_hex(p[7]), p[8],
        )  # fmt: skip


@dataclass
class RawClient:
    """Speaks Stratum line by line, so tests can send anything a broken miner might."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    notifications: list = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    extranonce1: bytes = b""
    extranonce2_size: int = 0
    difficulty: float = 0.0
    job: Notify | None = None
    worker: str = "acct.rig1"

    @classmethod
    async def connect(cls, address) -> RawClient:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str, params: list, timeout: float = 5.0) -> dict:
        request_id = next(self.ids)
        await self.send_raw(json.dumps({"id": request_id, "method": method, "params": params}).encode() + b"\n")
        return await self.reply(request_id, timeout)

    async def reply(self, request_id, timeout: float = 5.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.read_message()
                if message is None:
                    raise ConnectionError("server closed the connection")
                if message.get("id") == request_id and "method" not in message:
                    return message

    async def read_message(self) -> dict | None:
        line = await self.reader.readline()
        if not line:
            return None
        message = json.loads(line)
        if "method" in message:
            self.notifications.append(message)
            if message["method"] == "mining.notify":
                self.job = Notify.from_params(message["params"])
            elif message["method"] == "mining.set_difficulty":
                self.difficulty = message["params"][0]
        return message

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                if await self.read_message() is None:
                    raise ConnectionError("server closed the connection")

    async def subscribe(self) -> None:
        reply = await self.request("mining.subscribe", ["fleetd-test/1.0"])
        _, en1, self.extranonce2_size = reply["result"]
        self.extranonce1 = bytes.fromhex(en1)

    async def login(self, worker: str = "acct.rig1", *, subscribed: bool = False) -> None:
        """Subscribe (unless done already), authorize and wait for the difficulty and a job."""
        self.worker = worker
        if not subscribed:
            await self.subscribe()
        assert (await self.request("mining.authorize", [worker, "x"]))["result"] is True
        await self.wait_for(lambda: self.job is not None and self.difficulty > 0)

    async def notified_after(self, seen: int) -> list[str]:
        """The methods the server sent after the first ``seen`` notifications, up to a job."""
        await self.wait_for(lambda: any(n["method"] == "mining.notify" for n in self.notifications[seen:]))
        return [n["method"] for n in self.notifications[seen:]]

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (everything before EOF is read)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except (ConnectionError, TimeoutError):
            return isinstance(self.reader.exception(), ConnectionError)
        return True

    def close(self) -> None:
        self.writer.close()


def grind(client: RawClient, *, valid: bool = True, extranonce2: bytes | None = None, start_nonce: int = 0):
    """Find a nonce whose share meets (or, with valid=False, misses) the client's difficulty."""
    job = client.job
    extranonce2 = extranonce2 if extranonce2 is not None else bytes(client.extranonce2_size)
    prepared = native.PreparedJob(job.coinb1, job.coinb2, job.branch, job.prevhash, job.nbits, len(client.extranonce1) + len(extranonce2))
    target = difficulty_to_target(client.difficulty)
    for nonce in range(start_nonce, start_nonce + 1_000_000):
        check = prepared.check(client.extranonce1 + extranonce2, job.version, job.ntime, nonce, target)
        if check.meets_target == valid:
            return submit_params(client, extranonce2, job.ntime, nonce)
    raise AssertionError("no share found in a million nonces")


def grind_between(client: RawClient, job: Notify, low: float, high: float, extranonce2: bytes | None = None) -> list:
    """Submit params for ``job`` whose share meets difficulty ``low`` but misses ``high``."""
    extranonce2 = extranonce2 if extranonce2 is not None else bytes(client.extranonce2_size)
    extranonce = client.extranonce1 + extranonce2
    prepared = native.PreparedJob(job.coinb1, job.coinb2, job.branch, job.prevhash, job.nbits, len(extranonce))
    low_target, high_target = difficulty_to_target(low), difficulty_to_target(high)
    for nonce in range(1_000_000):
        if prepared.check(extranonce, job.version, job.ntime, nonce, low_target).meets_target:
            if not prepared.check(extranonce, job.version, job.ntime, nonce, high_target).meets_target:
                return [client.worker, job.job_id, extranonce2.hex(), u32_to_hex(job.ntime), u32_to_hex(nonce)]
    raise AssertionError("no share found in a million nonces")


def submit_params(client: RawClient, extranonce2: bytes, ntime: int, nonce: int) -> list:
    return [client.worker, client.job.job_id, extranonce2.hex(), u32_to_hex(ntime), u32_to_hex(nonce)]


async def scrape(base: str) -> tuple[dict[tuple[str, tuple], float], str]:
    """/metrics as {(name, sorted label items): value}, and the text itself."""
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, text


async def http_json(base: str, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(base + path) as response:
        return response.status, await response.json()


__all__ = [
    "RawClient", "grind", "grind_between", "submit_params", "http_json", "scrape", "start_fleetd", "make_config", "replace",
    "wait_until",
]
