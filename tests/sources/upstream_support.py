"""Upstream-proxy test rig: real fleetd instances on loopback, a misbehaving fake pool, TLS certs.

A real fleetd (demo source) plays the upstream pool; a second fleetd runs the
``UpstreamSource`` and proxies it; ``fleetd.sim.miner.Miner`` rigs mine behind it.
``FakePool`` drives the server-role sans-IO session directly so a test can make it send
garbage, stall, reject every share, offer a tiny extranonce2, or speak TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from fake_clock import FakeClock
from fleetd import app as fleetd_app
from fleetd.chain.target import difficulty_to_target
from fleetd.config import Config, HostPort, HttpConfig, LogConfig, SourceConfig, StratumConfig
from fleetd.native import PreparedJob, encode_target
from fleetd.stratum.job import Job
from fleetd.sim.miner import Miner, MinerConfig
from fleetd.sources.upstream import UpstreamConfig, UpstreamSource
from fleetd.stratum.events import Authorized, SubmitReceived, Subscribed
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from server_support import own_journal

UPSTREAM_DIFFICULTY = 1e-6  # what the upstream fleetd pins the proxy at
RIG_DIFFICULTY = 1e-7  # what the proxy pins its rigs at: about one share in ten goes upstream
RIG_HASHRATE = 60_000.0  # hashes/s per simulated rig: ~140 local shares/s, ~14 forwarded
WAIT = 30.0  # for one thing to happen (a hang guard); normally milliseconds, a failover about a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleetd_config(port: int = 0, *, difficulty: float, extranonce2_size: int = 8, refresh: float = 30.0,
                  network_difficulty: float = 1e9) -> Config:  # fmt: skip
    """Loopback fleetd with the difficulty pinned (vardiff cannot move it) and a chain that stays put."""
    return Config(
        stratum=StratumConfig(
            listen=HostPort("127.0.0.1", port),
            min_difficulty=difficulty,
            max_difficulty=difficulty,
            start_difficulty=difficulty,
            extranonce2_size=extranonce2_size,
            login_timeout_seconds=10.0,
            shutdown_grace_seconds=0.5,
        ),
        http=HttpConfig(listen=HostPort("127.0.0.1", 0)),
        source=SourceConfig(
            network_difficulty=network_difficulty, block_interval_seconds=3600.0, refresh_seconds=refresh
        ),
        log=LogConfig(level="warning"),
    )


@dataclass
class Running:
    app: web.Application
    runner: web.AppRunner

    @property
    def server(self):
        return self.app[fleetd_app.STRATUM_KEY]

    @property
    def source(self):
        return self.app[fleetd_app.SOURCE_KEY]

    @property
    def port(self) -> int:
        return self.server.address[1]

    @property
    def url(self) -> str:
        return f"stratum+tcp://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_fleetd(config: Config, source=None) -> Running:
    app = fleetd_app.build_app(own_journal(config), source)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return Running(app, runner)


async def start_upstream(port: int = 0, **options) -> Running:
    running = await start_fleetd(fleetd_config(port, difficulty=UPSTREAM_DIFFICULTY, **options))
    await wait_for(lambda: running.server.current_job is not None, WAIT)
    return running


def upstream_config(*urls: str, **options) -> UpstreamConfig:
    defaults = dict(user="acct", failover_seconds=2.0, failback_seconds=30.0, stall_seconds=30.0)
    return UpstreamConfig(pools=urls, **{**defaults, **options})


async def start_proxy(*urls: str, wait: bool = True, difficulty: float = RIG_DIFFICULTY, **options) -> Running:
    source = UpstreamSource(upstream_config(*urls, **options))
    running = await start_fleetd(fleetd_config(difficulty=difficulty), source)
    if wait:
        await wait_for(lambda: running.server.current_job is not None, WAIT)
    return running


@contextlib.asynccontextmanager
async def proxying(*urls: str, clock: FakeClock, bound: float = 60.0):
    """An upstream source running on its own (no Stratum server), with every job it publishes kept."""
    source = UpstreamSource(upstream_config(*urls, failover_seconds=1.0), clock=clock)
    jobs: list[Job] = []
    task = asyncio.create_task(source.run(jobs.append))
    try:
        async with asyncio.timeout(bound):
            yield source, jobs
            assert not task.done(), task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def rig(proxy: Running, name: str, **options) -> Miner:
    return Miner(MinerConfig("127.0.0.1", proxy.port, username=name, hashrate=RIG_HASHRATE, **options))


async def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def upstream_totals(proxy: Running) -> tuple[int, int, int]:
    """(forwarded, accepted, rejected-or-lost) over the proxy's rigs."""
    stats = proxy.server.upstream_workers.values()
    return (sum(s.forwarded for s in stats), sum(s.accepted for s in stats),
            sum(sum(s.rejected.values()) for s in stats))  # fmt: skip


# --- a pool that misbehaves on purpose -------------------------------------------------------------


def make_job(job_id: str = "f1", seed: int = 1) -> Job:
    """A synthetic but well-formed job (coinbase halves around the extranonce slot)."""
    rng = random.Random(seed)
    return Job(
        job_id=job_id,
        prevhash=rng.randbytes(32),
        coinb1=bytes.fromhex("01000000" "01" + "00" * 32 + "ffffffff" "20") + rng.randbytes(8),
        coinb2=bytes.fromhex("ffffffff" "01") + (312_500_000).to_bytes(8, "little") + bytes.fromhex("015100000000"),
        merkle_branch=tuple(rng.randbytes(32) for _ in range(3)),
        version=0x20000000,
        nbits=0x1D00FFFF,
        ntime=int(time.time()),
        clean_jobs=True,
    )


@dataclass
class FakePool:
    """A loopback pool over the server-role sans-IO session.

    mode: "good" (checks every share with the C core, takes any block), "reject" (answers every submit
    with 23), "garbage" (answers subscribe with bytes that are not Stratum), "bad_notify"
    (a mining.notify with nonsense params), "stall" (one job at login, then silence),
    "silent" (accepts the connection, never answers).
    """

    mode: str = "good"
    difficulty: float = 1e-6
    extranonce2_size: int = 8
    tls: ssl.SSLContext | None = None
    port: int = 0
    accepted: list = field(default_factory=list)
    rejected: int = 0
    authorized: list = field(default_factory=list)
    sessions: list = field(default_factory=list)
    writers: list = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set = field(default_factory=set)

    async def __aenter__(self) -> FakePool:
        self.job = make_job()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"stratum+{'ssl' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        config = SessionConfig(min_difficulty=1e-12, max_difficulty=1e6, extranonce2_size=self.extranonce2_size)
        session = Session(config, random.randbytes(4))
        self.sessions.append(session)
        self.writers.append(writer)
        try:
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                if self.mode == "silent":
                    continue
                for event in session.receive_data(data):
                    out = self._on_event(session, event)
                    if out:
                        writer.write(session.data_to_send() + out)
                writer.write(session.data_to_send())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._tasks.discard(asyncio.current_task())

    def set_difficulty(self, difficulty: float) -> None:
        """mining.set_difficulty on every session, then its latest job again (clean_jobs false)."""
        self.difficulty = difficulty
        for session, writer in zip(self.sessions, self.writers):
            if not writer.is_closing():
                session.set_difficulty(difficulty)
                writer.write(session.data_to_send())

    def send_raw(self, data: bytes) -> None:
        """Write bytes to every connection (garbage in the middle of a session)."""
        for writer in self.writers:
            if not writer.is_closing():
                writer.write(data)

    def _on_event(self, session: Session, event) -> bytes:
        if isinstance(event, Subscribed):
            if self.mode == "garbage":
                return b"\x00\x01 this is not stratum \xff\n"
            session.set_difficulty(self.difficulty)
            if self.mode == "bad_notify":
                return b'{"id":null,"method":"mining.notify","params":["x","not hex",1,2]}\n'
            session.send_job(self.job)
        elif isinstance(event, Authorized):
            self.authorized.append(event.worker)
        elif isinstance(event, SubmitReceived):
            if self.mode == "reject" or not self._valid(event):
                self.rejected += 1
                session.reject_submit(event.request_id, Reject.LOW_DIFFICULTY)
            else:
                self.accepted.append(event)
                session.accept_submit(event.request_id)
        return b""

    def _valid(self, submit: SubmitReceived) -> bool:
        job = self.job
        extranonce = submit.extranonce1 + submit.extranonce2
        prepared = PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, len(extranonce))
        target = encode_target(difficulty_to_target(submit.difficulty))
        check = prepared.check(extranonce, submit.version, submit.ntime, submit.nonce, target)
        return check.meets_target or check.meets_network  # a block is never too easy


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 (cert, key), or None without a way to make one."""
    cert, key = directory / "pool.crt", directory / "pool.key"
    with contextlib.suppress(ImportError):
        return _cert_with_cryptography(cert, key)
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return (cert, key) if done.returncode == 0 else None


def _cert_with_cryptography(cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path
