"""A tiny loopback pool for testing the simulated miner.

``asyncio.start_server`` on 127.0.0.1 port 0 drives one sans-IO ``Session`` per
connection, hands out a synthetic job, and verifies each submitted share with the native
core at the difficulty the session says the job went out with. It is a test harness,
not the real server: the real one is tested against the miner elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from fleetd.chain.target import difficulty_to_target
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.native import PreparedJob, encode_target
from fleetd.sim.fleet import Fleet, FleetConfig
from fleetd.stratum.job import Job
from fleetd.stratum.events import ConnectionClosed, Subscribed, SubmitReceived, SubmitRejected
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig

NTIME = 0x66000000
NTIME_MAX_FUTURE = 7200
WAIT_S = 30.0  # how long a condition may take on a loaded machine; it normally takes milliseconds


async def wait_until(predicate: Callable[[], object], timeout: float = WAIT_S, step: float = 0.01) -> None:
    """Until ``predicate()`` holds, checked every ``step`` seconds; TimeoutError after ``timeout``.

    Tests wait for what they expect rather than sleeping a fixed time and hoping it has
    happened: a loaded machine then makes a test slower, never red. ``timeout`` is a hang
    guard, not a measurement.
    """
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def rig_network() -> str:
    """A random /24 of loopback for a test's rigs, so suites running side by side rarely meet."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"


@contextlib.asynccontextmanager
async def running_fleet(
    config: FleetConfig, *, clock: Clock = SYSTEM_CLOCK, timeout: float = WAIT_S
) -> AsyncIterator[Fleet]:
    """A started fleet whose rigs all mine; stopped afterwards. Skips the test where the rig
    APIs cannot listen on ports 80 and 4028."""
    fleet = Fleet(config, clock=clock)
    try:
        await fleet.start()
    except PermissionError:
        pytest.skip("rig APIs listen on ports 80 and 4028: needs root or CAP_NET_BIND_SERVICE")
    try:
        await fleet.wait_ready(timeout=timeout)
        yield fleet
    finally:
        await fleet.stop()


def make_job(job_id: str = "j1", *, clean: bool = True, seed: int = 1, version: int = 0x20000000) -> Job:
    """A synthetic but well-formed job: coinbase halves around the extranonce slot, 3 branch levels."""
    rng = random.Random(seed)
    return Job(
        job_id=job_id,
        prevhash=rng.randbytes(32),
        coinb1=bytes.fromhex("01000000" "01" + "00" * 32 + "ffffffff" "20") + rng.randbytes(8),
        coinb2=bytes.fromhex("ffffffff" "01") + (312_500_000).to_bytes(8, "little") + bytes.fromhex("015100000000"),
        merkle_branch=tuple(rng.randbytes(32) for _ in range(3)),
        version=version,
        nbits=0x1D00FFFF,
        ntime=NTIME,
        clean_jobs=clean,
        height=840_000,
    )


@dataclass(frozen=True, slots=True)
class VerifiedShare:
    worker: str
    job_id: str
    extranonce1: bytes
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int
    version_bits: int | None
    difficulty: float
    hash: bytes

    @property
    def hash_value(self) -> int:
        return int.from_bytes(self.hash, "little")


class PoolConnection:
    def __init__(self, session: Session, writer: asyncio.StreamWriter) -> None:
        self.session = session
        self.writer = writer
        self.user_agent: str | None = None

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)


class LoopbackPool:
    def __init__(self, difficulty: float = 1e-6, job: Job | None = None, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig(min_difficulty=1e-12, max_difficulty=1e6)
        self.difficulty = difficulty
        self.job = job or make_job()
        self.jobs: dict[str, Job] = {self.job.job_id: self.job}
        self.connections: list[PoolConnection] = []
        self.accepted: list[VerifiedShare] = []
        self.rejected: list[Reject] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self._seen: set[tuple] = set()
        self._prepared: dict[tuple[str, int], PreparedJob] = {}
        self._next_extranonce1 = 0x10000000

    async def __aenter__(self) -> LoopbackPool:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for conn in self.connections:
            conn.writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    # --- what a test drives -------------------------------------------------------------------

    def each(self, action) -> None:
        """Apply ``action(session)`` to every open connection and send what it produced."""
        for conn in self.connections:
            if not conn.session.closed:
                action(conn.session)
                conn.flush()

    def broadcast(self, job: Job) -> None:
        self.jobs[job.job_id] = job
        self.job = job
        self.each(lambda session: session.send_job(job))

    def set_difficulty(self, difficulty: float) -> None:
        self.difficulty = difficulty
        self.each(lambda session: session.set_difficulty(difficulty))

    def rejected_count(self, reject: Reject) -> int:
        return self.rejected.count(reject)

    # --- the connection handler ---------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        self._next_extranonce1 += 1
        conn = PoolConnection(Session(self.config, self._next_extranonce1.to_bytes(4, "big")), writer)
        self.connections.append(conn)
        try:
            while not conn.session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.session.receive_data(data):
                    self._on_event(conn, event)
                conn.flush()
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(asyncio.current_task())

    def _on_event(self, conn: PoolConnection, event) -> None:
        session = conn.session
        if isinstance(event, Subscribed):
            conn.user_agent = event.user_agent
            session.set_difficulty(self.difficulty)
            session.send_job(self.job)
        elif isinstance(event, SubmitReceived):
            reject = self._verify(event)
            if reject is None:
                session.accept_submit(event.request_id)
            else:
                self.rejected.append(reject)
                session.reject_submit(event.request_id, reject)
        elif isinstance(event, SubmitRejected):
            self.rejected.append(event.reject)
        elif isinstance(event, ConnectionClosed):
            pass

    def _verify(self, submit: SubmitReceived) -> Reject | None:
        """The C core decides: the share must meet the difficulty its job went out with."""
        if submit.job is None:  # not sent on this connection, or cleared by a clean job
            return Reject.STALE if submit.job_id in self.jobs else Reject.UNKNOWN_JOB
        job = self.jobs[submit.job_id]
        if not job.ntime <= submit.ntime <= job.ntime + NTIME_MAX_FUTURE:
            return Reject.NTIME_OUT_OF_RANGE
        key = (submit.job_id, submit.extranonce1, submit.extranonce2, submit.ntime, submit.nonce, submit.version)
        if key in self._seen:
            return Reject.DUPLICATE
        extranonce = submit.extranonce1 + submit.extranonce2
        prepared = self._prepared.get((job.job_id, len(extranonce)))
        if prepared is None:
            prepared = self._prepared[(job.job_id, len(extranonce))] = PreparedJob(
                job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, len(extranonce)
            )
        target = encode_target(difficulty_to_target(submit.difficulty))
        check = prepared.check(extranonce, submit.version, submit.ntime, submit.nonce, target)
        if not check.meets_target:
            return Reject.LOW_DIFFICULTY
        self._seen.add(key)
        self.accepted.append(
            VerifiedShare(
                submit.worker, submit.job_id, submit.extranonce1, submit.extranonce2, submit.ntime,
                submit.nonce, submit.version, submit.version_bits, submit.difficulty, check.hash,
            )  # fmt: skip
        )
        return None

