"""The load generator behind ``fleetd bench stratum``, run as its own process(es).

    python -m fleetd.sim.loadgen --port 3333 --connections 1000 --seconds 5 [--rate 5000] [--processes 2]

opens N Stratum connections to a loopback server, subscribes and authorizes each, then
submits shares as fast as a small in-flight window per connection (and a global cap)
allows, or at a fixed offered rate, and prints one JSON object on stdout: answered
submits per second, accepted/rejected, send-to-reply latency, its own CPU time and (with
``--server-pid``) the server's CPU time and RSS over the measured window. ``--idle``
only opens the connections and reports the server's RSS before and with them.

Every share is real: for the job most recently notified on its connection, unique (an
extranonce2 counter per connection; the server gives each connection its own
extranonce1), and meeting the difficulty that job came with. At a difficulty whose
target is 2^256 - 1 every nonce qualifies and nothing is hashed; fleetd's floor, 1e-9,
is above that (target ~2^253.9: ~23 % of nonces qualify), so the generator grinds
several extranonce2 values of 64 nonces each in one native batch call (~4 hashes per
share) and refuses difficulties that would need more than ~1000 hashes per share.

It spends as little as it can per submit, so the server, not the generator, sets the
pace: submit lines are rendered from per-job byte templates when their shares are ground,
a connection's window is topped up in one write, and a run of plain accepted replies is
recognised by comparing the received bytes with the replies expected for the oldest
submits in flight (anything else is parsed line by line). ``--processes N`` splits the
connections, the count and the rate over N worker processes (optionally pinned to
``--cpus``) that a coordinator starts, windows and sums. It is bounded in time and count
and always exits by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import math
import os
import resource
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, replace
from itertools import islice
from pathlib import Path

import orjson

from fleetd._native import lib
from fleetd.chain.byteorder import u32_to_hex
from fleetd.chain.target import MAX_TARGET, difficulty_to_target
from fleetd.native import PreparedJob, encode_target
from fleetd.sim import procfs
from fleetd.sim.loopback import NotLoopbackError, require_loopback
from fleetd.sim.miner import prepare
from fleetd.stratum.client import job_from_notify

USER_AGENT = "fleetd-loadgen/0.1"
_MAX_LATENCY_SAMPLES = 4_000_000  # 32 MB of int64 per process; beyond it latencies are no longer recorded
_PACE_TICK = 0.001  # seconds between pacer rounds in --rate mode
_MAX_BACKLOG = 0.05  # seconds of offered load the pacer may catch up at once; older lag is skipped
_FD_HEADROOM = 64
_BATCH = 64  # nonces ground per extranonce2
_EXTRANONCES_PER_GRIND = 4  # extranonce2 values per native batch call: ~60 shares for one crossing into C
_MAX_HASHES_PER_SHARE = 1024  # above this the generator would measure itself, not the server
_MAX_LINE = 64 * 1024  # a notify with a deep merkle branch is ~2 KiB
_JOBS_KEPT = 8
_TRIVIAL = encode_target(MAX_TARGET)
_MEETS_TARGET = lib.FLEETD_MEETS_TARGET
_SUBMIT_ID = b'{"id":%d'  # a submit line is this, then the share's pre-rendered tail
_NONCE_TAILS = [u32_to_hex(nonce).encode() + b'"]}\n' for nonce in range(_BATCH)]
_WORKER_GRACE = 30.0  # seconds a worker may take beyond its own bounds before the coordinator kills it


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
    processes: int = 1  # worker processes sharing the connections, count and rate
    cpus: tuple[int, ...] | None = None  # CPUs the workers are pinned to, one each in turn (None: not pinned)

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
            ("processes", 1 <= self.processes <= min(64, self.connections)),
            ("cpus", self.cpus is None or (len(self.cpus) >= 1 and all(c >= 0 for c in self.cpus))),
        )
        for key, ok in checks:
            if not ok:
                raise ValueError(f"{key} = {getattr(self, key)!r} is out of range")

    @property
    def time_bound(self) -> float:
        """An upper bound on the whole run; past it the process is killed from inside."""
        return self.connect_timeout + self.warmup + self.seconds + self.drain_timeout + self.hold + 30

    def worker_share(self, index: int) -> LoadConfig:
        """What worker ``index`` of ``processes`` runs: its part of the connections, count, cap and rate."""
        n = self.processes

        def part(total: int) -> int:
            return total // n + (index < total % n)

        return replace(
            self,
            connections=part(self.connections),
            count=None if self.count is None else max(1, part(self.count)),
            global_cap=max(1, part(self.global_cap)),
            rate=None if self.rate is None else self.rate / n,
            connect_concurrency=max(1, part(self.connect_concurrency)),
            server_pid=None,  # the coordinator reads the server over the common window
            processes=1,
            cpus=None if self.cpus is None else (self.cpus[index % len(self.cpus)],),
        )


class _Work:
    """One notified job as every connection submits to it; parsed once, prepared per extranonce size."""

    __slots__ = ("job", "job_json", "ntime_hex", "_prepared")

    def __init__(self, params: list) -> None:
        self.job = job_from_notify(params)
        self.job_json = orjson.dumps(self.job.job_id)  # with its quotes, ready for a submit line
        self.ntime_hex = params[7].encode()  # sent back exactly as received
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
        "difficulty", "work", "prepared", "target", "trivial", "head", "stock", "counter", "next_id", "sent_at",
        "starved",
    )  # fmt: skip

    def __init__(self, gen: LoadGenerator, index: int) -> None:
        self.gen = gen
        self.worker = f"{gen.config.username}.{gen.worker_prefix}{index}"
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
        self.target = _TRIVIAL
        self.trivial = False  # every nonce meets the target: no hashing
        self.head = b""  # a submit's bytes after its id, up to the extranonce2, for the current job
        self.stock: list[bytes] = []  # ground shares not yet sent, as submit-line tails
        self.counter = 0  # extranonce2
        self.next_id = 3  # 1 and 2 are subscribe and authorize
        self.sent_at: dict[int, int] = {}  # in flight: id -> perf_counter_ns at send, oldest first
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
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.buffer = data[end:]
            if len(self.buffer) > _MAX_LINE:
                self.gen.protocol_error(f"a line over {_MAX_LINE} bytes")
                self.transport.close()
                return
            if not end:
                return
            data = data[:end]
        else:
            self.buffer = b""
        # The common case: nothing but plain accepted replies to the oldest submits in flight, in order.
        accepted_reply = self.gen.accepted_reply
        sent_at = self.sent_at
        if accepted_reply is not None:
            n = data.count(b"\n")
            if n <= len(sent_at):
                ids = list(islice(sent_at, n))
                if data == b"".join([accepted_reply % i for i in ids]):
                    self.gen.on_accepted(self, ids)
                    return
        self._lines(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.on_lost(self)
        self._not_ready(f"connection closed during login: {exc or 'by the server'}")

    # --- messages -------------------------------------------------------------------------

    def _lines(self, data: bytes) -> None:
        """Anything but a run of plain accepted replies: each line parsed."""
        gen = self.gen
        answered = False
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                message = orjson.loads(line)
                request_id = message.get("id")
                if request_id is not None and "method" not in message:
                    if request_id in self.sent_at:
                        gen.on_answer(self, request_id, message, line)
                        answered = True
                    elif request_id in (1, 2):
                        self._login_reply(request_id, message)
                    else:  # answered twice, or never asked
                        gen.protocol_error(f"a reply to no request in flight: {line[:120]!r}")
                else:
                    self._notification(message.get("method"), message.get("params") or [])
            except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError, ValueError) as exc:
                gen.protocol_error(f"{type(exc).__name__}: {exc} in {line[:120]!r}")
        if answered:
            gen.after_answers(self)

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
        self.target = target
        self.trivial = target == _TRIVIAL
        self.head = b',"method":"mining.submit","params":["%s",%s,"' % (self.worker.encode(), work.job_json)
        self.stock = []  # shares for the old job would be stale
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

    def submit_lines(self, k: int, now_ns: int) -> bytes:
        """The next ``k`` unique shares for the latest job, as one write; remembers when they were sent."""
        stock = self.stock
        while len(stock) < k:
            self._grind()
        tails = stock[-k:]
        del stock[-k:]
        first = self.next_id
        self.next_id = first + k
        sent_at = self.sent_at
        ids = range(first, first + k)
        for request_id in ids:
            sent_at[request_id] = now_ns
        return b"".join([_SUBMIT_ID % request_id + tail for request_id, tail in zip(ids, tails)])

    def _grind(self) -> None:
        """Add the shares among the next extranonce2 values' first ``_BATCH`` nonces to the stock."""
        extranonce1, size = self.extranonce
        work = self.work
        if self.trivial:
            self.counter += 1
            head = self._head(self.counter.to_bytes(size, "big"), work.ntime_hex)
            self.stock.extend([head + tail for tail in _NONCE_TAILS])
            return
        job = work.job
        extranonce2s = [(self.counter + i).to_bytes(size, "big") for i in range(1, _EXTRANONCES_PER_GRIND + 1)]
        self.counter += _EXTRANONCES_PER_GRIND
        version, ntime = job.version, job.ntime
        shares = [(extranonce1 + e2, version, ntime, nonce) for e2 in extranonce2s for nonce in range(_BATCH)]
        flags = self.prepared.check_batch(shares, [self.target] * len(shares)).flags
        self.gen.hashes += len(shares)
        heads = [self._head(e2, work.ntime_hex) for e2 in extranonce2s]
        self.stock.extend([
            heads[i // _BATCH] + _NONCE_TAILS[i % _BATCH] for i, flag in enumerate(flags) if flag & _MEETS_TARGET
        ])  # fmt: skip

    def _head(self, extranonce2: bytes, ntime_hex: bytes) -> bytes:
        """A submit's bytes after its id, up to its nonce, for one extranonce2 of the current job."""
        return b'%s%s","%s","' % (self.head, extranonce2.hex().encode(), ntime_hex)

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


def accepted_reply_template(line: bytes, request_id: int) -> bytes | None:
    """The server's plain accepted reply as a ``%d`` template for its id, from one such reply; None
    when the id is not where the fast path can patch it (those replies are then parsed one by one)."""
    prefix = b'{"id":%d' % request_id
    rest = line[len(prefix) :]
    if not line.startswith(prefix) or rest[:1].isdigit():
        return None
    return b'{"id":%d' + rest.replace(b"%", b"%%") + b"\n"


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
    processes: int  # load-generator worker processes (1: this process alone)
    cpus: list[int] | None  # the CPUs the load generator was pinned to; None: not pinned
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
    total_submitted: int  # over the whole run (warm-up, window, drain): each must be answered once
    total_answered: int
    total_accepted: int
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
    loadgen_cpu_seconds: float  # over the window, summed over the worker processes
    protocol_errors: int
    reconnects_asked: int  # client.reconnect received (not followed)


class LoadGenerator:
    def __init__(self, config: LoadConfig, uvloop: bool = False, worker_prefix: str = "c") -> None:
        self.config = config
        self.uvloop = uvloop
        self.worker_prefix = worker_prefix  # worker names stay unique across processes
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
        self.total_submitted = self.total_answered = self.total_accepted = 0
        self.rejects: dict[str, int] = {}
        self.latencies = array("q")
        self.disconnects = self.reconnects_asked = self.protocol_errors = self.skipped = self.hashes = 0
        self.error: str | None = None
        self.works: dict[str, _Work] = {}
        self.targets: dict[float, bytes | None] = {}
        self.accepted_reply: bytes | None = None  # learnt from the first accepted reply parsed
        self.own_cpu_at_start = 0.0

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

    def on_accepted(self, conn: _Connection, ids: list[int]) -> None:
        """Plain accepted replies to these submits of ``conn`` (its oldest in flight), in order."""
        sent_at = conn.sent_at
        n = len(ids)
        self.in_flight -= n
        self.total_answered += n
        self.total_accepted += n
        if not self.measuring:
            for request_id in ids:
                del sent_at[request_id]
        else:
            now = time.perf_counter_ns()
            start = self.window_start_ns
            latencies = self.latencies
            record = len(latencies) < _MAX_LATENCY_SAMPLES
            for request_id in ids:
                sent = sent_at.pop(request_id)
                if record and sent >= start:
                    latencies.append(now - sent)
            self.answered += n
            self.accepted += n
            count = self.config.count
            if count is not None and self.answered >= count:
                self.window_done.set()
        self.after_answers(conn)

    def on_answer(self, conn: _Connection, request_id: int, message: dict, line: bytes) -> None:
        """Any reply to a submit, parsed."""
        sent_ns = conn.sent_at.pop(request_id)
        accepted = message.get("result") is True and message.get("error") is None
        self.in_flight -= 1
        self.total_answered += 1
        self.total_accepted += accepted
        if accepted and self.accepted_reply is None:
            self.accepted_reply = accepted_reply_template(line, request_id)
        if not self.measuring:
            return
        if sent_ns >= self.window_start_ns and len(self.latencies) < _MAX_LATENCY_SAMPLES:
            self.latencies.append(time.perf_counter_ns() - sent_ns)
        self.answered += 1
        if accepted:
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

    def _room(self, wanted: int) -> int:
        """How many of ``wanted`` submits may go out now (sending, and within the window's count)."""
        if not self.sending:
            return 0
        count = self.config.count
        if count is not None and self.measuring:
            return min(wanted, count - self.submitted)
        return wanted

    def _sent(self, k: int) -> None:
        self.in_flight += k
        self.total_submitted += k
        if self.measuring:
            self.submitted += k

    def fill(self, conn: _Connection) -> None:
        """Top the connection's window up in one write, within the global cap."""
        if not conn.can_submit:
            return
        config = self.config
        room = config.window - len(conn.sent_at)
        if room <= 0:
            return
        below_cap = config.global_cap - self.in_flight
        if below_cap < room and not conn.starved:  # comes back for the rest when the cap allows
            conn.starved = True
            self.starved.append(conn)
        k = self._room(min(room, below_cap))
        if k > 0:
            conn.transport.write(conn.submit_lines(k, time.perf_counter_ns()))
            self._sent(k)

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
            while due > 0 and misses < n and self._room(1):
                conn = conns[cursor]
                cursor = cursor + 1 if cursor + 1 < n else 0
                if conn.in_flight >= window or not conn.can_submit:
                    misses += 1
                    continue
                conn.transport.write(conn.submit_lines(1, now))
                self._sent(1)
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

    def start_sending(self) -> asyncio.Task | None:
        """Load starts (unmeasured); with a rate, the pacer task that offers it."""
        self.sending = True
        if self.config.rate is not None:
            return asyncio.create_task(self.pace(self.config.rate))
        for conn in self.ready:
            self.fill(conn)
        return None

    def start_window(self) -> None:
        self.own_cpu_at_start = own_cpu()
        self.window_start_ns = time.perf_counter_ns()
        self.measuring = True

    def end_window(self) -> tuple[float, float]:
        """Stop counting and sending; (window seconds, own CPU seconds in it)."""
        self.measuring = False
        self.sending = False
        return (time.perf_counter_ns() - self.window_start_ns) / 1e9, own_cpu() - self.own_cpu_at_start

    async def stop_sending(self, pacer: asyncio.Task | None) -> None:
        """After the window: the pacer stopped, and the replies still in flight let arrive."""
        self.sending = False
        if pacer is not None:
            pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacer
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.drain_timeout):
                while self.in_flight > 0:
                    await asyncio.sleep(0.01)

    async def load(self) -> tuple[float, float | None, float, int | None, int | None]:
        """Run the load; (window seconds, server CPU seconds, own CPU seconds, RSS before, RSS after)."""
        config = self.config
        pacer = self.start_sending()
        try:
            await asyncio.sleep(config.warmup)
            rss0, cpu0 = self._server_rss(), self._server_cpu()
            self.start_window()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.seconds):
                    await self.window_done.wait()
            elapsed, own = self.end_window()
            cpu1, rss1 = self._server_cpu(), self._server_rss()
        finally:
            await self.stop_sending(pacer)
        server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        return elapsed, server_cpu, own, rss0, rss1

    def _server_cpu(self) -> float | None:
        return server_cpu(self.config.server_pid)

    def _server_rss(self) -> int | None:
        return server_rss(self.config.server_pid)

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
            processes=1,
            cpus=pinned_cpus(),
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
            total_submitted=self.total_submitted,
            total_answered=self.total_answered,
            total_accepted=self.total_accepted,
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
    """Connect, load (or hold idle), disconnect; the measured result (``processes`` > 1: from workers)."""
    if config.processes > 1:
        return await run_workers(config)
    gen = LoadGenerator(config, uvloop)
    rss_before = gen._server_rss()
    try:
        await gen.connect_all()
        if not gen.ready:
            return gen.result("idle" if config.idle else "none", 0.0, None, 0.0, rss_before, None)
        if config.idle:
            await asyncio.sleep(config.hold)  # let the server finish what each login allocated
            return gen.result("idle", 0.0, None, 0.0, rss_before, gen._server_rss())
        elapsed, server_cpu, own, rss0, rss1 = await gen.load()
        return gen.result("rate" if config.rate else "throughput", elapsed, server_cpu, own, rss0, rss1)
    finally:
        await gen.close_all()


# --- several processes -------------------------------------------------------------------------
# The coordinator (``run_workers``) and each worker (``serve_as_worker``) speak one word a line:
# the worker says "ready" once logged in; the coordinator says "load", then "measure" (the window
# opens); the worker says "done" when its part of the count is answered; the coordinator says
# "stop" when every worker is done or the window's time is up, and the worker answers with its
# result as JSON (latency samples in a file). "stop" may come at any point; end of input means it.


async def serve_as_worker(config: LoadConfig, index: int, latency_path: Path, uvloop: bool = False) -> LoadResult:
    """One worker process's part of a run, paced by the coordinator on stdin/stdout."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    async def command() -> str:
        return (await commands.readline()).decode().strip() or "stop"

    def say(word: str) -> None:
        sys.stdout.write(word + "\n")
        sys.stdout.flush()

    gen = LoadGenerator(config, uvloop, worker_prefix=f"p{index}c")
    pacer, elapsed, own, mode = None, 0.0, 0.0, "idle" if config.idle else "none"
    try:
        await gen.connect_all()
        say("ready")
        if await command() == "load" and not config.idle:
            if gen.ready:
                mode = "rate" if config.rate else "throughput"
                pacer = gen.start_sending()
            if await command() == "measure":
                gen.start_window()
                if not gen.ready:
                    gen.window_done.set()  # nothing to count: done at once
                stop = asyncio.ensure_future(command())
                done = asyncio.ensure_future(gen.window_done.wait())
                await asyncio.wait({stop, done}, return_when=asyncio.FIRST_COMPLETED)
                elapsed, own = gen.end_window()
                done.cancel()
                if not stop.done():
                    say("done")
                await stop
        await gen.stop_sending(pacer)
    finally:
        await gen.close_all()
    with latency_path.open("wb") as f:
        gen.latencies.tofile(f)
    return gen.result(mode, elapsed, None, own, None, None)


async def run_workers(config: LoadConfig) -> LoadResult:
    """Run ``config.processes`` worker processes as one load generator; their results summed."""
    n, pid = config.processes, config.server_pid
    rss_before, rss_loaded, cpu0, cpu1, elapsed = server_rss(pid), None, None, None, 0.0
    with tempfile.TemporaryDirectory(prefix="fleetd-loadgen-") as tmp:
        paths = [Path(tmp) / f"latency-{i}" for i in range(n)]
        procs: list[asyncio.subprocess.Process] = []

        async def tell(word: str) -> None:
            for proc in procs:
                with contextlib.suppress(ConnectionError):
                    proc.stdin.write(word.encode() + b"\n")
                    await proc.stdin.drain()

        async def hear(word: str, timeout: float) -> None:
            async with asyncio.timeout(timeout):
                heard = await asyncio.gather(*(proc.stdout.readline() for proc in procs))
            if any(line.strip() != word.encode() for line in heard):
                raise RuntimeError(f"a load-generator worker did not say {word!r}: {heard!r}")

        try:
            for i in range(n):
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "fleetd.sim.loadgen", *worker_argv(config.worker_share(i), i, paths[i]),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                ))  # fmt: skip
            await hear("ready", config.connect_timeout + _WORKER_GRACE)
            if config.idle:
                await asyncio.sleep(config.hold)  # let the server finish what each login allocated
                rss_loaded = server_rss(pid)
            else:
                await tell("load")
                await asyncio.sleep(config.warmup)
                rss_before, cpu0 = server_rss(pid), server_cpu(pid)
                start = time.perf_counter_ns()
                await tell("measure")
                with contextlib.suppress(TimeoutError):
                    await hear("done", config.seconds)
                elapsed = (time.perf_counter_ns() - start) / 1e9
                cpu1, rss_loaded = server_cpu(pid), server_rss(pid)
            await tell("stop")
            async with asyncio.timeout(config.drain_timeout + _WORKER_GRACE):
                outputs = [await proc.stdout.read() for proc in procs]
            results = [orjson.loads(out.splitlines()[-1]) for out in outputs]
            latencies = array("q")
            for path in paths:
                with contextlib.suppress(OSError, EOFError), path.open("rb") as f:
                    latencies.frombytes(f.read())
        finally:
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                await proc.wait()
    server = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return _merged(config, results, latencies, elapsed, server, rss_before, rss_loaded)


def worker_argv(share: LoadConfig, index: int, latency_path: Path) -> list[str]:
    """The command line that runs ``share`` as worker ``index``."""
    argv = [
        "--port", str(share.port), "--host", share.host, "--connections", str(share.connections),
        "--seconds", str(share.seconds), "--window", str(share.window), "--global-cap", str(share.global_cap),
        "--warmup", str(share.warmup), "--hold", str(share.hold), "--connect-concurrency",
        str(share.connect_concurrency), "--connect-timeout", str(share.connect_timeout),
        "--drain-timeout", str(share.drain_timeout), "--worker", str(index), "--latency-file", str(latency_path),
    ]  # fmt: skip
    if share.count is not None:
        argv += ["--count", str(share.count)]
    if share.rate is not None:
        argv += ["--rate", repr(share.rate)]
    if share.idle:
        argv.append("--idle")
    if share.cpus is not None:
        argv += ["--cpus", ",".join(map(str, share.cpus))]
    return argv


def _merged(config: LoadConfig, results: list[dict], latencies: array, elapsed: float, server_cpu: float | None,
            rss_before: int | None, rss_loaded: int | None) -> LoadResult:  # fmt: skip
    def total(key: str) -> int | float:
        return sum(r[key] for r in results)

    def counts(key: str) -> dict[str, int]:
        merged: dict[str, int] = {}
        for r in results:
            for name, value in r[key].items():
                merged[name] = merged.get(name, 0) + value
        return merged

    answered, ready = total("answered"), total("connections_ready")
    modes = {r["mode"] for r in results} - {"none"}
    mode = "idle" if config.idle else (modes.pop() if len(modes) == 1 else "none")
    per_connection = None
    if config.idle and rss_before is not None and rss_loaded is not None and ready:
        per_connection = (rss_loaded - rss_before) / ready
    cpus = sorted({cpu for r in results for cpu in r["cpus"] or ()})
    return LoadResult(
        mode=mode,
        uvloop=all(r["uvloop"] for r in results),
        processes=len(results),
        cpus=cpus or None,
        connections_requested=config.connections,
        connections_ready=ready,
        connect_errors=counts("connect_errors"),
        disconnects=total("disconnects"),
        window_seconds=round(elapsed, 6),
        submitted=total("submitted"),
        answered=answered,
        accepted=total("accepted"),
        rejected=total("rejected"),
        rejects=counts("rejects"),
        total_submitted=total("total_submitted"),
        total_answered=total("total_answered"),
        total_accepted=total("total_accepted"),
        answered_per_second=answered / elapsed if elapsed > 0 else 0.0,
        offered_rate=config.rate,
        skipped_offers=total("skipped_offers"),
        latency=_latency(latencies),
        difficulties=sorted({d for r in results for d in r["difficulties"]}),
        hashes=total("hashes"),
        error=next((r["error"] for r in results if r["error"]), None),
        server_pid=config.server_pid,
        server_cpu_seconds=server_cpu,
        answered_per_server_cpu_second=answered / server_cpu if server_cpu else None,
        server_rss_kib_before=rss_before,
        server_rss_kib_loaded=rss_loaded,
        server_rss_kib_per_connection=per_connection,
        loadgen_cpu_seconds=total("loadgen_cpu_seconds"),
        protocol_errors=total("protocol_errors"),
        reconnects_asked=total("reconnects_asked"),
    )


# --- process set-up -----------------------------------------------------------------------------

_pinned: tuple[int, ...] | None = None


def pin(cpus: tuple[int, ...] | None, pid: int = 0) -> bool:
    """Pin a process (every thread of it; 0: this one) to ``cpus``; False where the OS does not allow it."""
    global _pinned
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid or os.getpid()}/task")]
    except OSError:
        threads = [pid]
    try:
        for thread in threads:
            os.sched_setaffinity(thread, cpus)
    except OSError:  # no such CPU, or not permitted: run unpinned
        return False
    if pid == 0:
        _pinned = tuple(sorted(cpus))
    return True


def pinned_cpus() -> list[int] | None:
    return None if _pinned is None else list(_pinned)


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-file limit toward the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def server_cpu(pid: int | None) -> float | None:
    return None if pid is None else procfs.cpu_seconds(pid)


def server_rss(pid: int | None) -> int | None:
    return None if pid is None else procfs.rss_kib(pid)


def own_cpu() -> float:
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


def _cpu_list(text: str) -> tuple[int, ...]:
    try:
        cpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CPU numbers separated by commas, got {text!r}") from None
    return cpus


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
    p.add_argument("--processes", type=int, default=defaults.processes,
                   help="worker processes sharing the connections, count and rate")  # fmt: skip
    p.add_argument("--cpus", type=_cpu_list, default=None,
                   help="pin the load generator to these CPUs (comma-separated; workers take one each in turn)")  # fmt: skip
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # run as a coordinator's worker
    p.add_argument("--latency-file", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = LoadConfig(
            port=args.port, host=args.host, connections=args.connections, seconds=args.seconds,
            count=args.count, window=args.window, global_cap=args.global_cap, rate=args.rate,
            warmup=args.warmup, idle=args.idle, hold=args.hold, server_pid=args.server_pid,
            connect_concurrency=args.connect_concurrency, connect_timeout=args.connect_timeout,
            drain_timeout=args.drain_timeout, processes=args.processes, cpus=args.cpus,
        )  # fmt: skip
    except (NotLoopbackError, ValueError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    per_process = max(config.worker_share(i).connections for i in range(config.processes))
    limit = raise_fd_limit(per_process + _FD_HEADROOM)  # workers inherit it
    if limit < per_process + _FD_HEADROOM:
        print(f"loadgen: {per_process} connections need {per_process + _FD_HEADROOM} open files; "
              f"the hard limit is {limit} (raise it with ulimit -Hn)", file=sys.stderr)  # fmt: skip
        return 2
    pin(config.cpus)  # a coordinator, too, stays off the server's CPU
    # Whatever happens, this process ends: a stuck run dumps its stacks and exits.
    bound = config.time_bound + (_WORKER_GRACE if config.processes > 1 else 0)
    faulthandler.dump_traceback_later(bound, exit=True)
    loop_factory, uvloop = None, False
    if not args.no_uvloop:
        try:
            import uvloop as _uvloop

            loop_factory, uvloop = _uvloop.new_event_loop, True
        except ImportError:
            pass
    if args.worker is not None:
        work = serve_as_worker(config, args.worker, args.latency_file, uvloop)
    else:
        work = run(config, uvloop)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(work)
    finally:
        faulthandler.cancel_dump_traceback_later()
    sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    return 0 if result.connections_ready else 1


if __name__ == "__main__":
    sys.exit(main())
