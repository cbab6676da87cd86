"""The load generator behind ``fleetd bench stratum``, run as its own process.

    python -m fleetd.sim.loadgen --port 3333 --connections 1000 --seconds 5 [--rate 5000]

opens N Stratum connections to a loopback server, subscribes and authorizes each, then
submits shares as fast as a small in-flight window per connection (and a global cap)
allows, or at a fixed offered rate, and prints one JSON object on stdout: answered
submits per second, accepted/rejected, send-to-reply latency, and (with ``--server-pid``)
the server's CPU time and RSS over the measured window. ``--idle`` only opens the
connections and reports the server's RSS before and with them.

Every share is real: for the job most recently notified on its connection, unique (an
extranonce2 counter per connection; the server gives each connection its own
extranonce1), and meeting the difficulty that job came with. At a difficulty whose
target is 2^256 - 1 every nonce qualifies and nothing is hashed; fleetd's floor, 1e-9,
is above that (target ~2^253.9: ~23 % of nonces qualify), so the generator grinds 64
nonces per extranonce2 in one native batch call (~4 hashes, a few µs, per share) and
refuses difficulties that would need more than ~1000 hashes per share. It is bounded in
time and count and always exits by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import math
import resource
import sys
import time
from array import array
from dataclasses import asdict, dataclass

import orjson

from fleetd.chain.byteorder import u32_to_hex
from fleetd.chain.target import MAX_TARGET, difficulty_to_target
from fleetd.native import PreparedJob, encode_target
from fleetd.sim import procfs
from fleetd.sim.loopback import NotLoopbackError, require_loopback
from fleetd.sim.miner import job_from_notify, prepare

USER_AGENT = "fleetd-loadgen/0.1"
_MAX_LATENCY_SAMPLES = 4_000_000  # 32 MB of int64; beyond it latencies are no longer recorded
_PACE_TICK = 0.001  # seconds between pacer rounds in --rate mode
_MAX_BACKLOG = 0.05  # seconds of offered load the pacer may catch up at once; older lag is skipped
_FD_HEADROOM = 64
_BATCH = 64  # nonces ground per extranonce2, in one native call
_MAX_HASHES_PER_SHARE = 1024  # above this the generator would measure itself, not the server
_JOBS_KEPT = 8
_TRIVIAL = encode_target(MAX_TARGET)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    port: int
    host: str = "127.0.0.1"
    connections: int = 1000
    seconds: float = 5.0  # measured window
    count: int | None = None  # or end the window after this many answered submits
    window: int = 4  # unanswered submits per connection
    global_cap: int = 4096  # unanswered submits over all connections
    rate: float | None = None  # offered submits per second; None: as fast as the windows allow
    warmup: float = 0.5  # load before the window opens, not measured
    idle: bool = False  # only connect, log in and hold the connections open
    hold: float = 1.0  # --idle: seconds to let the server settle before reading its RSS
    server_pid: int | None = None
    connect_concurrency: int = 128  # logins in progress at once (the listen backlog is finite)
    connect_timeout: float = 60.0
    drain_timeout: float = 2.0  # after the window, for replies still in flight
    username: str = "bench"

    def __post_init__(self) -> None:
        require_loopback(self.host)
        checks = (
            ("port", 0 < self.port <= 65535),
            ("connections", self.connections >= 1),
            ("seconds", 0 < self.seconds <= 3600),
            ("count", self.count is None or self.count >= 1),
            ("window", self.window >= 1),
            ("global_cap", self.global_cap >= 1),
            ("rate", self.rate is None or self.rate > 0),
            ("warmup", 0 <= self.warmup <= 600),
            ("hold", 0 <= self.hold <= 600),
            ("connect_concurrency", self.connect_concurrency >= 1),
            ("connect_timeout", 0 < self.connect_timeout <= 600),
            ("drain_timeout", 0 <= self.drain_timeout <= 60),
        )
        for key, ok in checks:
            if not ok:
                raise ValueError(f"{key} = {getattr(self, key)!r} is out of range")

    @property
    def time_bound(self) -> float:
        """An upper bound on the whole run; past it the process is killed from inside."""
        return self.connect_timeout + self.warmup + self.seconds + self.drain_timeout + self.hold + 30


class _Work:
    """One notified job as every connection submits to it; parsed once, prepared per extranonce size."""

    __slots__ = ("job", "job_json", "ntime_hex", "_prepared")

    def __init__(self, params: list) -> None:
        self.job = job_from_notify(params)
        self.job_json = orjson.dumps(self.job.job_id).decode()  # with its quotes, ready for a submit line
        self.ntime_hex = params[7]  # sent back exactly as received
        self._prepared: dict[int, PreparedJob] = {}

    def prepared(self, extranonce_size: int) -> PreparedJob:
        prepared = self._prepared.get(extranonce_size)
        if prepared is None:
            prepared = self._prepared[extranonce_size] = prepare(self.job, extranonce_size)
        return prepared


class _Connection(asyncio.Protocol):
    """One miner connection; the generator decides when it submits."""

    __slots__ = (
        "gen", "worker", "transport", "buffer", "ready", "authorized", "closed", "extranonce", "next_extranonce",
        "difficulty", "work", "prepared", "targets", "trivial", "stock", "counter", "next_id", "sent_at", "starved",
    )  # fmt: skip

    def __init__(self, gen: LoadGenerator, index: int) -> None:
        self.gen = gen
        self.worker = f"{gen.config.username}.c{index}"
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.ready = asyncio.get_running_loop().create_future()  # set once authorized with a job
        self.authorized = False
        self.closed = False
        # (extranonce1, extranonce2 size) of the current job, and for the next (set_extranonce)
        self.extranonce: tuple[bytes, int] | None = None
        self.next_extranonce: tuple[bytes, int] | None = None
        self.difficulty = 1.0  # Stratum's implied difficulty until the pool sends one
        self.work: _Work | None = None  # the job most recently notified
        self.prepared: PreparedJob | None = None
        self.targets: list[bytes] = []  # the job's target, once per nonce of a batch
        self.trivial = False  # every nonce meets the target: no hashing
        self.stock: list[tuple[str, str]] = []  # ground (extranonce2 hex, nonce hex) not yet sent
        self.counter = 0  # extranonce2
        self.next_id = 3  # 1 and 2 are subscribe and authorize
        self.sent_at: dict[int, int] = {}
        self.starved = False

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        subscribe = {"id": 1, "method": "mining.subscribe", "params": [USER_AGENT]}
        authorize = {"id": 2, "method": "mining.authorize", "params": [self.worker, "x"]}
        transport.write(orjson.dumps(subscribe) + b"\n" + orjson.dumps(authorize) + b"\n")

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        gen = self.gen
        answered = False
        for line in lines:
            if not line:
                continue
            try:
                message = orjson.loads(line)
                request_id = message.get("id")
                if request_id is not None and "method" not in message:
                    if request_id in self.sent_at:
                        gen.on_answer(self, self.sent_at.pop(request_id), message)
                        answered = True
                    else:
                        self._login_reply(request_id, message)
                else:
                    self._notification(message.get("method"), message.get("params") or [])
            except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError, ValueError) as exc:
                gen.protocol_error(f"{type(exc).__name__}: {exc} in {line[:120]!r}")
        if answered:
            gen.after_answers(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.on_lost(self)
        self._not_ready(f"connection closed during login: {exc or 'by the server'}")

    # --- messages -------------------------------------------------------------------------

    def _login_reply(self, request_id: object, message: dict) -> None:
        result = message.get("result")
        if request_id == 1:
            if not isinstance(result, list) or len(result) < 3:
                self._fail(f"subscribe refused: {message.get('error')}")
                return
            self.next_extranonce = (bytes.fromhex(result[1]), int(result[2]))
        elif request_id == 2:
            if result is not True:
                self._fail(f"authorize refused: {message.get('error')}")
                return
            self.authorized = True
            self._check_ready()

    def _notification(self, method: object, params: list) -> None:
        if method == "mining.notify":
            self._new_job(params)
        elif method == "mining.set_difficulty":
            self.difficulty = float(params[0])  # for jobs notified from now on
        elif method == "mining.set_extranonce":
            self.next_extranonce = (bytes.fromhex(params[0]), int(params[1]))
        elif method == "client.reconnect":
            self.gen.reconnects_asked += 1  # not followed: a benchmark keeps its connections

    def _new_job(self, params: list) -> None:
        gen = self.gen
        self.extranonce = self.next_extranonce
        if self.extranonce is None:
            raise ValueError("mining.notify before the subscribe reply")
        work = gen.work_for(params)
        target = gen.target(self.difficulty)
        if target is None:  # too hard to grind: this connection sits out
            self.work = None
            self._fail(gen.error)
            return
        self.work = work
        self.prepared = work.prepared(len(self.extranonce[0]) + self.extranonce[1])
        self.targets = [target] * _BATCH
        self.trivial = target == _TRIVIAL
        self.stock = []
        self._check_ready()

    def _check_ready(self) -> None:
        if self.authorized and self.work is not None and not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, reason: str) -> None:
        self._not_ready(reason)
        self.transport.close()

    def _not_ready(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()  # counted by connect_all if awaited; never "never retrieved"

    # --- submitting -------------------------------------------------------------------------

    def submit_line(self, now_ns: int) -> str:
        """The next unique share for the latest job; remembers when it was sent."""
        stock = self.stock
        while not stock:
            stock = self._grind()
        extranonce2, nonce = stock.pop()
        request_id = self.next_id
        self.next_id += 1
        self.sent_at[request_id] = now_ns
        work = self.work
        return (
            f'{{"id":{request_id},"method":"mining.submit","params":["{self.worker}",{work.job_json},'
            f'"{extranonce2}","{work.ntime_hex}","{nonce}"]}}\n'
        )

    def _grind(self) -> list[tuple[str, str]]:
        """The shares among the next extranonce2's first ``_BATCH`` nonces."""
        self.counter += 1
        extranonce1, size = self.extranonce
        extranonce2 = self.counter.to_bytes(size, "big")  # an opaque counter, not a header field
        hex2 = extranonce2.hex()
        if self.trivial:
            self.stock = [(hex2, u32_to_hex(nonce)) for nonce in range(_BATCH)]
            return self.stock
        job = self.work.job
        extranonce = extranonce1 + extranonce2
        shares = [(extranonce, job.version, job.ntime, nonce) for nonce in range(_BATCH)]
        batch = self.prepared.check_batch(shares, self.targets)
        self.gen.hashes += _BATCH
        self.stock = [(hex2, u32_to_hex(nonce)) for nonce in range(_BATCH) if batch.meets_target(nonce)]
        return self.stock

    @property
    def logged_in(self) -> bool:
        ready = self.ready  # cancelled when connect_all gave up waiting for it
        return ready.done() and not ready.cancelled() and ready.exception() is None

    @property
    def can_submit(self) -> bool:
        return self.work is not None and not self.closed

    @property
    def in_flight(self) -> int:
        return len(self.sent_at)


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass(frozen=True, slots=True)
class LoadResult:
    mode: str  # "throughput" | "rate" | "idle"
    uvloop: bool
    connections_requested: int
    connections_ready: int
    connect_errors: dict[str, int]
    disconnects: int
    window_seconds: float
    submitted: int
    answered: int
    accepted: int
    rejected: int
    rejects: dict[str, int]  # Stratum error code -> count
    answered_per_second: float
    offered_rate: float | None
    skipped_offers: int  # --rate: offers dropped because every window was full
    latency: Latency
    difficulties: list[float]  # the difficulties in force on the connections at the end
    hashes: int  # nonces this process ground to find its shares (0 at a trivial difficulty)
    error: str | None  # why connections could not submit (difficulty too high, protocol errors)
    server_pid: int | None
    server_cpu_seconds: float | None
    answered_per_server_cpu_second: float | None
    server_rss_kib_before: int | None  # --idle: before any connection; else at window start
    server_rss_kib_loaded: int | None  # --idle: with all connections open; else at window end
    server_rss_kib_per_connection: float | None  # --idle only
    loadgen_cpu_seconds: float
    protocol_errors: int
    reconnects_asked: int  # client.reconnect received (not followed)


class LoadGenerator:
    def __init__(self, config: LoadConfig, uvloop: bool = False) -> None:
        self.config = config
        self.uvloop = uvloop
        self.connections: list[_Connection] = []
        self.ready: list[_Connection] = []
        self.connect_errors: dict[str, int] = {}
        self.sending = False
        self.measuring = False
        self.closing = False
        self.in_flight = 0
        self.starved: list[_Connection] = []
        self.window_start_ns = 0
        self.window_done = asyncio.Event()
        self.submitted = self.answered = self.accepted = self.rejected = 0
        self.rejects: dict[str, int] = {}
        self.latencies = array("q")
        self.disconnects = self.reconnects_asked = self.protocol_errors = self.skipped = self.hashes = 0
        self.error: str | None = None
        self.works: dict[str, _Work] = {}
        self.targets: dict[float, bytes | None] = {}

    # --- callbacks from connections ------------------------------------------------------------

    def work_for(self, params: list) -> _Work:
        """The parsed job for a mining.notify; every connection gets the same one, parsed once."""
        work = self.works.get(params[0])
        if work is None:
            work = self.works[params[0]] = _Work(params)
            while len(self.works) > _JOBS_KEPT:
                del self.works[next(iter(self.works))]
        return work

    def target(self, difficulty: float) -> bytes | None:
        """The encoded share target, or None when finding shares would cost this process too much."""
        if difficulty not in self.targets:
            target = difficulty_to_target(difficulty)
            if (MAX_TARGET + 1) / (target + 1) > _MAX_HASHES_PER_SHARE:
                self.error = (
                    f"difficulty {difficulty:g} needs ~{(MAX_TARGET + 1) / (target + 1):.0f} hashes per share; "
                    f"the load generator grinds at most {_MAX_HASHES_PER_SHARE}: run the server at <= 1e-6"
                )
                self.targets[difficulty] = None
            else:
                self.targets[difficulty] = encode_target(target)
        return self.targets[difficulty]

    def protocol_error(self, detail: str) -> None:
        self.protocol_errors += 1
        self.error = self.error or f"protocol error: {detail}"

    def on_answer(self, conn: _Connection, sent_ns: int, message: dict) -> None:
        self.in_flight -= 1
        if not self.measuring:
            return
        if sent_ns >= self.window_start_ns and len(self.latencies) < _MAX_LATENCY_SAMPLES:
            self.latencies.append(time.perf_counter_ns() - sent_ns)
        self.answered += 1
        if message.get("result") is True:
            self.accepted += 1
        else:
            self.rejected += 1
            error = message.get("error")
            code = str(error[0]) if isinstance(error, list) and error else "other"
            self.rejects[code] = self.rejects.get(code, 0) + 1
        count = self.config.count
        if count is not None and self.answered >= count:
            self.window_done.set()

    def after_answers(self, conn: _Connection) -> None:
        if self.config.rate is not None:
            return  # the pacer decides when to send
        while self.starved and self.in_flight < self.config.global_cap:
            waiting = self.starved.pop()
            waiting.starved = False
            self.fill(waiting)
        self.fill(conn)

    def on_lost(self, conn: _Connection) -> None:
        self.in_flight -= conn.in_flight
        conn.sent_at.clear()
        if not self.closing and conn.logged_in:
            self.disconnects += 1  # the server dropped a logged-in connection

    # --- sending ----------------------------------------------------------------------------

    def _may_send(self) -> bool:
        count = self.config.count
        return self.sending and (count is None or not self.measuring or self.submitted < count)

    def fill(self, conn: _Connection) -> None:
        """Top the connection's window up, within the global cap."""
        if not conn.can_submit:
            return
        config = self.config
        lines = []
        now = time.perf_counter_ns()
        while conn.in_flight < config.window and self.in_flight < config.global_cap and self._may_send():
            lines.append(conn.submit_line(now))
            self.in_flight += 1
            if self.measuring:
                self.submitted += 1
        if lines:
            conn.transport.write("".join(lines).encode())
        if conn.in_flight < config.window and self.in_flight >= config.global_cap and not conn.starved:
            conn.starved = True
            self.starved.append(conn)

    async def pace(self, rate: float) -> None:
        """Offer ``rate`` submits per second, round-robin over connections with window room."""
        loop = asyncio.get_running_loop()
        conns = [c for c in self.ready if not c.closed]
        window, n, cursor, issued = self.config.window, len(conns), 0, 0
        start = loop.time()
        while self.sending and n:
            due = int((loop.time() - start) * rate) - issued
            backlog = int(rate * _MAX_BACKLOG)
            if due > backlog:  # the server (or this process) fell behind: do not burst
                self.skipped += due - backlog
                issued += due - backlog
                due = backlog
            misses = 0
            now = time.perf_counter_ns()
            while due > 0 and misses < n and self._may_send():
                conn = conns[cursor]
                cursor = cursor + 1 if cursor + 1 < n else 0
                if conn.in_flight >= window or not conn.can_submit:
                    misses += 1
                    continue
                conn.transport.write(conn.submit_line(now).encode())
                self.in_flight += 1
                if self.measuring:
                    self.submitted += 1
                due -= 1
                issued += 1
                misses = 0
            await asyncio.sleep(_PACE_TICK)

    # --- phases -------------------------------------------------------------------------------

    async def connect_all(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(config.connect_concurrency)

        async def one(index: int) -> None:
            async with gate:  # held through login, so at most this many handshakes are in progress
                try:
                    _, conn = await loop.create_connection(lambda: _Connection(self, index), config.host, config.port)
                    self.connections.append(conn)
                    await conn.ready
                    self.ready.append(conn)
                except (OSError, ConnectionError) as exc:
                    key = type(exc).__name__ if not getattr(exc, "errno", None) else f"errno {exc.errno}"
                    self.connect_errors[key] = self.connect_errors.get(key, 0) + 1

        tasks = [asyncio.create_task(one(i)) for i in range(config.connections)]
        try:
            async with asyncio.timeout(config.connect_timeout):
                await asyncio.gather(*tasks)
        except TimeoutError:
            self.connect_errors["login timeout"] = sum(1 for t in tasks if not t.done())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close_all(self) -> None:
        self.closing = True
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while not all(conn.closed for conn in self.connections):
                    await asyncio.sleep(0.01)

    async def load(self) -> tuple[float, float | None, float, int | None, int | None]:
        """Run the load; (window seconds, server CPU seconds, own CPU seconds, RSS before, RSS after)."""
        config = self.config
        self.sending = True
        pacer = None
        if config.rate is None:
            for conn in self.ready:
                self.fill(conn)
        else:
            pacer = asyncio.create_task(self.pace(config.rate))
        try:
            await asyncio.sleep(config.warmup)
            rss0, cpu0, own0 = self._server_rss(), self._server_cpu(), _own_cpu()
            start = time.perf_counter_ns()
            self.window_start_ns = start
            self.measuring = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.seconds):
                    await self.window_done.wait()
            self.measuring = False
            elapsed = (time.perf_counter_ns() - start) / 1e9
            cpu1, own1, rss1 = self._server_cpu(), _own_cpu(), self._server_rss()
        finally:
            self.sending = False
            if pacer is not None:
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pacer
        with contextlib.suppress(TimeoutError):  # let replies in flight arrive before closing
            async with asyncio.timeout(config.drain_timeout):
                while self.in_flight > 0:
                    await asyncio.sleep(0.01)
        server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        return elapsed, server_cpu, own1 - own0, rss0, rss1

    def _server_cpu(self) -> float | None:
        return None if self.config.server_pid is None else procfs.cpu_seconds(self.config.server_pid)

    def _server_rss(self) -> int | None:
        return None if self.config.server_pid is None else procfs.rss_kib(self.config.server_pid)

    def result(self, mode: str, elapsed: float, server_cpu: float | None, own_cpu: float,
               rss_before: int | None, rss_loaded: int | None) -> LoadResult:  # fmt: skip
        config = self.config
        ready = len(self.ready)
        per_connection = None
        if mode == "idle" and rss_before is not None and rss_loaded is not None and ready:
            per_connection = (rss_loaded - rss_before) / ready
        return LoadResult(
            mode=mode,
            uvloop=self.uvloop,
            connections_requested=config.connections,
            connections_ready=ready,
            connect_errors=dict(self.connect_errors),
            disconnects=self.disconnects,
            window_seconds=round(elapsed, 6),
            submitted=self.submitted,
            answered=self.answered,
            accepted=self.accepted,
            rejected=self.rejected,
            rejects=dict(self.rejects),
            answered_per_second=self.answered / elapsed if elapsed > 0 else 0.0,
            offered_rate=config.rate,
            skipped_offers=self.skipped,
            latency=_latency(self.latencies),
            difficulties=sorted({conn.difficulty for conn in self.ready}),
            hashes=self.hashes,
            error=self.error,
            server_pid=config.server_pid,
            server_cpu_seconds=server_cpu,
            answered_per_server_cpu_second=self.answered / server_cpu if server_cpu else None,
            server_rss_kib_before=rss_before,
            server_rss_kib_loaded=rss_loaded,
            server_rss_kib_per_connection=per_connection,
            loadgen_cpu_seconds=own_cpu,
            protocol_errors=self.protocol_errors,
            reconnects_asked=self.reconnects_asked,
        )


async def run(config: LoadConfig, uvloop: bool = False) -> LoadResult:
    """Connect, load (or hold idle), disconnect; the measured result."""
    gen = LoadGenerator(config, uvloop)
    rss_before = gen._server_rss()
    try:
        await gen.connect_all()
        if not gen.ready:
            return gen.result("idle" if config.idle else "none", 0.0, None, 0.0, rss_before, None)
        if config.idle:
            await asyncio.sleep(config.hold)  # let the server finish what each login allocated
            return gen.result("idle", 0.0, None, 0.0, rss_before, gen._server_rss())
        elapsed, server_cpu, own_cpu, rss0, rss1 = await gen.load()
        return gen.result("rate" if config.rate else "throughput", elapsed, server_cpu, own_cpu, rss0, rss1)
    finally:
        await gen.close_all()


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-file limit toward the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _latency(samples: array) -> Latency:
    if not samples:
        return Latency(0, None, None, None)
    ordered = sorted(samples)
    n = len(ordered)

    def rank(p: float) -> float:  # nearest-rank percentile, in ms
        return ordered[max(0, math.ceil(p * n) - 1)] / 1e6

    return Latency(n, rank(0.50), rank(0.99), ordered[-1] / 1e6)


def build_parser() -> argparse.ArgumentParser:
    defaults = LoadConfig(port=1)
    p = argparse.ArgumentParser(
        prog="python -m fleetd.sim.loadgen",
        description="Stratum v1 load generator (loopback only); prints one JSON object.",
    )
    p.add_argument("--host", default=defaults.host, help="loopback address of the server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=defaults.connections)
    p.add_argument("--seconds", type=float, default=defaults.seconds, help="measured window")
    p.add_argument("--count", type=int, default=None, help="end the window after this many answered submits")
    p.add_argument("--window", type=int, default=defaults.window, help="unanswered submits per connection")
    p.add_argument("--global-cap", type=int, default=defaults.global_cap, help="unanswered submits overall")
    p.add_argument("--rate", type=float, default=None, help="offered submits per second (default: as fast as possible)")
    p.add_argument("--warmup", type=float, default=defaults.warmup)
    p.add_argument("--idle", action="store_true", help="only open the connections and report server RSS")
    p.add_argument("--hold", type=float, default=defaults.hold, help="--idle: settle time before reading RSS")
    p.add_argument("--server-pid", type=int, default=None, help="read this process's CPU time and RSS")
    p.add_argument("--connect-concurrency", type=int, default=defaults.connect_concurrency)
    p.add_argument("--connect-timeout", type=float, default=defaults.connect_timeout)
    p.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout)
    p.add_argument("--no-uvloop", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = LoadConfig(
            port=args.port, host=args.host, connections=args.connections, seconds=args.seconds,
            count=args.count, window=args.window, global_cap=args.global_cap, rate=args.rate,
            warmup=args.warmup, idle=args.idle, hold=args.hold, server_pid=args.server_pid,
            connect_concurrency=args.connect_concurrency, connect_timeout=args.connect_timeout,
            drain_timeout=args.drain_timeout,
        )  # fmt: skip
    except (NotLoopbackError, ValueError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    limit = raise_fd_limit(config.connections + _FD_HEADROOM)
    if limit < config.connections + _FD_HEADROOM:
        print(f"loadgen: {config.connections} connections need {config.connections + _FD_HEADROOM} open files; "
              f"the hard limit is {limit} (raise it with ulimit -Hn)", file=sys.stderr)  # fmt: skip
        return 2
    # Whatever happens, this process ends: a stuck run dumps its stacks and exits.
    faulthandler.dump_traceback_later(config.time_bound, exit=True)
    loop_factory, uvloop = None, False
    if not args.no_uvloop:
        try:
            import uvloop as _uvloop

            loop_factory, uvloop = _uvloop.new_event_loop, True
        except ImportError:
            pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(run(config, uvloop))
    finally:
        faulthandler.cancel_dump_traceback_later()
    sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    return 0 if result.connections_ready else 1


if __name__ == "__main__":
    sys.exit(main())
