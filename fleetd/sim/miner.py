"""A real Stratum v1 miner over asyncio streams, for tests and simulated rigs.

It speaks what ASIC firmware speaks (BIP310 configure, subscribe, authorize, submits with
5 parameters or 6 with rolled version bits) and finds its shares by grinding nonces
through the native core, so every share it submits is real work at the difficulty the
pool set for that job. Loopback only.

    async with Miner(MinerConfig("127.0.0.1", port)) as miner:
        stats = await miner.mine(max_shares=10)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import orjson

from fleetd.chain.byteorder import U32_MAX, u32_from_hex, u32_to_hex
from fleetd.chain.target import difficulty_to_target
from fleetd.native import PreparedJob, encode_target
from fleetd.sim.loopback import require_loopback
from fleetd.stratum.client import job_from_notify
from fleetd.stratum.job import Job

DEFAULT_USER_AGENT = "fleetd-sim/0.1"
_MAX_LINE = 64 * 1024  # a notify with a deep merkle branch is ~2 KiB
_MESSAGES_KEPT = 16  # client.show_message texts remembered
_JOBS_KEPT = 8  # recent jobs kept so tests can build shares for older ones


class MinerError(Exception):
    """The pool refused the miner, or spoke something that is not Stratum."""


@dataclass(frozen=True, slots=True)
class MinerConfig:
    host: str
    port: int
    username: str = "sim.rig1"
    password: str = "x"
    user_agent: str = DEFAULT_USER_AGENT
    version_rolling: bool = False  # send mining.configure asking for version-rolling first
    requested_mask: int = 0x1FFFE000  # the mask most ASIC firmware asks for
    min_bit_count: int = 2
    extranonce_subscribe: bool = False  # send mining.extranonce.subscribe after subscribe
    hashrate: float | None = None  # hash budget per second; None: as fast as the event loop allows
    max_in_flight: int = 32  # unanswered submits before grinding pauses
    chunk: int = 256  # nonces per grinding step between yields to the event loop
    reply_timeout: float = 10.0
    follow_reconnect: bool = True
    max_reconnects: int = 3
    max_reconnect_wait: float = 5.0  # a longer client.reconnect wait is cut to this
    local_host: str | None = None  # connect from this loopback address (a rig's own IP); None: any
    suggested_difficulty: float | None = None  # mining.suggest_difficulty right after authorize, as a Bitaxe does

    def __post_init__(self) -> None:
        require_loopback(self.host)
        if self.local_host is not None:
            require_loopback(self.local_host)
        if self.suggested_difficulty is not None and not self.suggested_difficulty > 0:
            raise ValueError(f"suggested_difficulty must be positive, got {self.suggested_difficulty!r}")
        if not 0 < self.port <= 65535:
            raise ValueError(f"port must be 1..65535, got {self.port!r}")
        if self.hashrate is not None and not self.hashrate > 0:
            raise ValueError(f"hashrate must be positive hashes per second, got {self.hashrate!r}")
        for key in ("max_in_flight", "chunk", "min_bit_count", "max_reconnects"):
            if getattr(self, key) < (0 if key in ("min_bit_count", "max_reconnects") else 1):
                raise ValueError(f"{key} out of range: {getattr(self, key)!r}")


@dataclass(frozen=True, slots=True)
class MinerJob:
    """A job as this miner works on it: the difficulty and extranonce in force when it came."""

    job_id: str
    prepared: PreparedJob
    version: int
    ntime: int
    clean: bool
    difficulty: float
    target: bytes  # encoded for the native core
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True)
class Share:
    """A found (or deliberately bad) share, with the header hash the native core computed."""

    job_id: str
    extranonce2: bytes
    ntime: int
    nonce: int
    version_bits: int | None  # the 6th submit parameter; None sends 5 parameters
    hash: bytes
    meets_target: bool

    def params(self, worker: str) -> list:
        params = [worker, self.job_id, self.extranonce2.hex(), u32_to_hex(self.ntime), u32_to_hex(self.nonce)]
        if self.version_bits is not None:
            params.append(u32_to_hex(self.version_bits))
        return params


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    result: object
    error: tuple[int, str] | None  # (code, message) of a Stratum error

    @property
    def accepted(self) -> bool:
        return self.error is None and self.result is True

    @property
    def code(self) -> int | None:
        return None if self.error is None else self.error[0]


@dataclass(frozen=True, slots=True)
class MinerStats:
    connected: bool
    authorized: bool
    extranonce1: bytes | None
    extranonce2_size: int | None
    difficulty: float  # the latest set_difficulty (applies to jobs from then on)
    version_mask: int | None  # negotiated (or later set) mask; None: no rolling
    job_id: str | None
    jobs: int
    clean_jobs: int
    hashes: int
    submitted: int
    accepted: int
    rejected: int
    rejects: Mapping[tuple[int, str], int]  # (code, message) -> count
    in_flight: int
    lost: int  # submits whose connection ended before the reply
    reconnects: int
    messages: tuple[str, ...]  # client.show_message texts, latest last
    closed_reason: str | None


class _Pending:
    __slots__ = ("method", "future")

    def __init__(self, method: str, future: asyncio.Future | None) -> None:
        self.method = method
        self.future = future


class Miner:
    """One miner connection (following client.reconnect). Use from one event loop."""

    def __init__(self, config: MinerConfig) -> None:
        self.config = config
        self._task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Event()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._failure: str | None = None
        self._ended = False
        # per-connection state, reset by _forget_connection
        self._authorized = False
        self._extranonce: tuple[bytes, int] | None = None
        self._difficulty = 1.0  # Stratum's implied difficulty until the pool sends one
        self._mask: int | None = None
        self._job: MinerJob | None = None
        self._recent: OrderedDict[str, MinerJob] = OrderedDict()
        # work position: a new job takes a fresh extranonce2, nonces count up within it
        self._work_job: MinerJob | None = None
        self._extranonce2 = 0
        self._nonce = 0
        self._step = 0
        self._manual_extranonce2 = 0
        # counters
        self._jobs = self._clean_jobs = self._hashes = 0
        self._submitted = self._accepted = self._rejected = self._lost = self._reconnects = 0
        self._rejects: dict[tuple[int, str], int] = {}
        self._messages: deque[str] = deque(maxlen=_MESSAGES_KEPT)

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Miner:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect, configure, subscribe and authorize; MinerError if the pool refuses."""
        if self._task is not None:
            raise RuntimeError("this miner is already connected; make a new Miner to connect again")
        self._task = asyncio.create_task(self._run(), name=f"sim-miner {self.config.username}")
        try:
            await self._wait_for(lambda: self._authorized or self._ended, timeout)
        except TimeoutError:
            self._failure = f"not authorized within {timeout} s"
        if not self._authorized:
            reason = self._failure or "connection closed during login"
            await self.close()
            raise MinerError(reason)

    async def close(self) -> None:
        """Stop the connection task and close the socket; idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ended = True
        self._failure = self._failure or "closed"
        self._notify()

    # --- mining -------------------------------------------------------------------------------

    async def mine(self, *, max_shares: int | None = None, seconds: float | None = None) -> MinerStats:
        """Grind and submit until ``max_shares`` were submitted, ``seconds`` passed or the pool
        ended the connection; then wait (up to ``reply_timeout``) for the replies."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = None if seconds is None else start + seconds
        config = self.config
        hashed = submitted = 0
        while not self._ended and (max_shares is None or submitted < max_shares):
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            job = self._job
            if job is None or not self._authorized or len(self._pending) >= config.max_in_flight:
                with contextlib.suppress(TimeoutError):
                    await self._wait_for(self._can_grind, remaining)
                continue
            count = config.chunk if config.hashrate is None else max(1, min(config.chunk, int(config.hashrate / 100)))
            for share in self._grind(job, count):
                if max_shares is not None and submitted >= max_shares:
                    break
                try:
                    self._write_request("mining.submit", share.params(config.username), None)
                except ConnectionError:
                    break  # the connection just ended: the loop condition decides what next
                submitted += 1
            hashed += count
            await self._drain()
            ahead = 0.0 if config.hashrate is None else hashed / config.hashrate - (loop.time() - start)
            await asyncio.sleep(ahead if remaining is None else max(0.0, min(ahead, remaining)))
        with contextlib.suppress(TimeoutError):
            await self._wait_for(lambda: self._ended or not self._submits_pending(), config.reply_timeout)
        return self.stats()

    def find_share(
        self,
        job_id: str | MinerJob | None = None,
        *,
        meets_target: bool = True,
        version_bits: int | None = None,
        extranonce2: bytes | None = None,
        max_tries: int = 1 << 20,
    ) -> Share:
        """Grind a share for a known job (the current one by default) without submitting it.

        ``meets_target=False`` finds one that misses the job's target, for low-difficulty
        tests; extranonce2 values come from a range ``mine`` never uses. A ``MinerJob`` kept
        from earlier works too, even one a clean job has since replaced (for stale shares).
        """
        if isinstance(job_id, MinerJob):
            job = job_id
        else:
            job = self._job if job_id is None else self._recent.get(job_id)
        if job is None:
            raise MinerError(f"no job {job_id!r} known to this miner" if job_id else "no job received yet")
        if extranonce2 is None:
            self._manual_extranonce2 += 1
            top = 1 << (8 * job.extranonce2_size - 1)  # the upper half: mine() counts up from 1
            extranonce2 = (top + self._manual_extranonce2).to_bytes(job.extranonce2_size, "big")
        version = job.version if version_bits is None else _rolled(job.version, version_bits, self._mask or 0)
        extranonce = job.extranonce1 + extranonce2
        for nonce in range(min(max_tries, U32_MAX + 1)):
            check = job.prepared.check(extranonce, version, job.ntime, nonce, job.target)
            if check.meets_target == meets_target:
                return Share(job.job_id, extranonce2, job.ntime, nonce, version_bits, check.hash, check.meets_target)
        raise MinerError(f"no share with meets_target={meets_target} in {max_tries} nonces")

    def grind(self, count: int) -> list[Share]:
        """Hash the next ``count`` nonces of the current job exactly as ``mine`` does (version
        bits rolled, extranonce2 advanced); the shares found, not yet submitted."""
        if self._job is None:
            raise MinerError("no job received yet")
        return self._grind(self._job, count)

    def submit_nowait(self, share: Share) -> asyncio.Future[Reply]:
        """Send a share without waiting; the future gets the pool's reply (ConnectionError if
        the connection ends first). Lets a caller keep many submits in flight."""
        future = asyncio.get_running_loop().create_future()
        self._write_request("mining.submit", share.params(self.config.username), future)
        return future

    async def submit(self, share_or_params: Share | list, timeout: float | None = None) -> Reply:
        """Submit a share (or raw ``mining.submit`` params) and wait for the pool's reply."""
        if isinstance(share_or_params, Share):
            params = share_or_params.params(self.config.username)
        else:
            params = list(share_or_params)
        return await self.request("mining.submit", params, timeout)

    async def request(self, method: str, params: list, timeout: float | None = None) -> Reply:
        """Send any request and wait for its reply (ConnectionError if the connection ends first)."""
        future = asyncio.get_running_loop().create_future()
        self._write_request(method, params, future)
        await self._drain()
        async with asyncio.timeout(self.config.reply_timeout if timeout is None else timeout):
            return await future

    async def wait_for_job(
        self, predicate: Callable[[MinerJob], bool] = lambda job: True, timeout: float = 10.0
    ) -> MinerJob:
        """The current job once one satisfying ``predicate`` has arrived."""
        await self._wait_for(lambda: self._ended or (self._job is not None and predicate(self._job)), timeout)
        if self._job is None or not predicate(self._job):
            raise MinerError(f"connection ended while waiting for a job: {self._failure}")
        return self._job

    async def wait_until(self, predicate: Callable[[MinerStats], bool], timeout: float = 10.0) -> MinerStats:
        """Wait until the stats satisfy ``predicate`` (TimeoutError otherwise)."""
        await self._wait_for(lambda: predicate(self.stats()), timeout)
        return self.stats()

    @property
    def job(self) -> MinerJob | None:
        return self._job

    @property
    def connected(self) -> bool:
        """As ``stats().connected``, without building the stats (cheap enough to ask per step)."""
        return self._writer is not None and not self._ended

    def stats(self) -> MinerStats:
        extranonce = self._extranonce
        return MinerStats(
            connected=self._writer is not None and not self._ended,
            authorized=self._authorized,
            extranonce1=None if extranonce is None else extranonce[0],
            extranonce2_size=None if extranonce is None else extranonce[1],
            difficulty=self._difficulty,
            version_mask=self._mask,
            job_id=None if self._job is None else self._job.job_id,
            jobs=self._jobs,
            clean_jobs=self._clean_jobs,
            hashes=self._hashes,
            submitted=self._submitted,
            accepted=self._accepted,
            rejected=self._rejected,
            rejects=MappingProxyType(dict(self._rejects)),
            in_flight=sum(1 for p in self._pending.values() if p.method == "mining.submit"),
            lost=self._lost,
            reconnects=self._reconnects,
            messages=tuple(self._messages),
            closed_reason=self._failure if self._ended else None,
        )

    # --- grinding -----------------------------------------------------------------------------

    def _can_grind(self) -> bool:
        return self._ended or (
            self._job is not None and self._authorized and len(self._pending) < self.config.max_in_flight
        )

    def _grind(self, job: MinerJob, count: int) -> list[Share]:
        """Hash ``count`` nonces of the current work; return the shares meeting the job's target."""
        if job is not self._work_job:  # new work: a fresh extranonce2, nonces from 0
            self._work_job = job
            self._extranonce2 += 1
            self._nonce = 0
        mask = self._mask
        bits = None if not mask else _spread(self._step + 1, mask)  # other rolled bits each step
        version = job.version if bits is None else _rolled(job.version, bits, mask)
        extranonce2 = self._extranonce2.to_bytes(job.extranonce2_size, "big")
        extranonce = job.extranonce1 + extranonce2
        check, ntime, target = job.prepared.check, job.ntime, job.target
        start = self._nonce
        end = min(start + count, U32_MAX + 1)
        found = []
        for nonce in range(start, end):
            result = check(extranonce, version, ntime, nonce, target)
            if result.meets_target:
                found.append(Share(job.job_id, extranonce2, ntime, nonce, bits, result.hash, True))
        if end > U32_MAX:  # nonce space done: next extranonce2
            self._extranonce2 += 1
            end = 0
        self._nonce = end
        self._step += 1
        self._hashes += end - start if end else U32_MAX + 1 - start
        return found

    # --- connection ---------------------------------------------------------------------------

    async def _run(self) -> None:
        host, port = self.config.host, self.config.port
        try:
            while True:
                local = None if self.config.local_host is None else (self.config.local_host, 0)
                reader, writer = await asyncio.open_connection(host, port, limit=_MAX_LINE, local_addr=local)
                self._writer = writer
                self._login()
                try:
                    target = await self._read_loop(reader)
                finally:
                    self._forget_connection()
                    await _close_writer(writer)
                if target is None:
                    break
                if not self.config.follow_reconnect or self._reconnects >= self.config.max_reconnects:
                    self._failure = "client.reconnect not followed"
                    break
                host, port, wait = target
                await asyncio.sleep(wait)
                self._reconnects += 1
        except (OSError, MinerError) as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._ended = True
            self._failure = self._failure or "closed"
            self._notify()

    def _login(self) -> None:
        # Pipelined, as firmware does: the pool answers in order.
        config = self.config
        extensions, options = [], {}
        if config.version_rolling:
            extensions.append("version-rolling")
            options["version-rolling.mask"] = u32_to_hex(config.requested_mask)
            options["version-rolling.min-bit-count"] = config.min_bit_count
        if extensions:
            self._write_request("mining.configure", [extensions, options], None)
        self._write_request("mining.subscribe", [config.user_agent], None)
        if config.extranonce_subscribe:
            self._write_request("mining.extranonce.subscribe", [], None)
        self._write_request("mining.authorize", [config.username, config.password], None)
        if config.suggested_difficulty is not None:
            self._write_request("mining.suggest_difficulty", [config.suggested_difficulty], None)

    async def _read_loop(self, reader: asyncio.StreamReader) -> tuple[str, int, float] | None:
        """Handle lines until EOF (None) or client.reconnect (where to go next)."""
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # StreamReader's way of saying the line exceeded the limit
                raise MinerError(f"pool sent a line over {_MAX_LINE} bytes") from None
            except ConnectionError:
                return None
            if not line:
                self._failure = self._failure or "connection closed by the pool"
                return None
            if line.isspace():
                continue
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise MinerError(f"pool sent a line that is not JSON: {line[:80]!r}") from None
            if type(message) is not dict:
                raise MinerError(f"pool sent JSON that is not an object: {line[:80]!r}")
            method = message.get("method")
            if method is None:
                self._on_reply(message)
            else:
                target = self._on_notification(method, message.get("params") or [])
                if target is not None:
                    return target
            self._notify()

    def _forget_connection(self) -> None:
        for pending in self._pending.values():
            if pending.method == "mining.submit":
                self._lost += 1
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(ConnectionError("connection ended before the reply"))
        self._pending.clear()
        self._writer = None
        self._authorized = False
        self._extranonce = None
        self._difficulty = 1.0
        self._mask = None
        self._job = None
        self._recent.clear()
        self._notify()

    def _write_request(self, method: str, params: list, future: asyncio.Future | None) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ConnectionError("not connected")
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = _Pending(method, future)
        if method == "mining.submit":
            self._submitted += 1
        writer.write(orjson.dumps({"id": request_id, "method": method, "params": params}) + b"\n")

    async def _drain(self) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # --- what the pool sends -------------------------------------------------------------------

    def _on_reply(self, message: dict) -> None:
        request_id = message.get("id")
        pending = self._pending.pop(request_id, None) if type(request_id) is int else None
        if pending is None:
            return  # not ours (or already forgotten): nothing waits for it
        error = message.get("error")
        if error is not None:
            code, text = (error[0], str(error[1])) if isinstance(error, list) and len(error) >= 2 else (20, str(error))
            error = (code, text)
        reply = Reply(request_id, message.get("result"), error)
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(reply)  # before the handler, which may end the connection
        handler = _REPLY_HANDLERS.get(pending.method)
        if handler is not None:
            handler(self, reply)

    def _on_submit_reply(self, reply: Reply) -> None:
        if reply.accepted:
            self._accepted += 1
        else:
            self._rejected += 1
            key = reply.error or (20, f"result {reply.result!r}")
            self._rejects[key] = self._rejects.get(key, 0) + 1

    def _on_configure_reply(self, reply: Reply) -> None:
        result = reply.result if isinstance(reply.result, dict) else {}
        if result.get("version-rolling") is True:
            self._mask = u32_from_hex(str(result.get("version-rolling.mask", "")).zfill(8), "version-rolling.mask")

    def _on_subscribe_reply(self, reply: Reply) -> None:
        result = reply.result
        if reply.error is not None or not isinstance(result, list) or len(result) < 3:
            raise MinerError(f"subscribe refused: {reply.error or result!r}")
        extranonce1, size = bytes.fromhex(result[1]), result[2]
        if type(size) is not int or not 1 <= size <= 32:
            raise MinerError(f"subscribe gave an extranonce2 size of {size!r}")
        self._extranonce = (extranonce1, size)

    def _on_authorize_reply(self, reply: Reply) -> None:
        if not reply.accepted:
            raise MinerError(f"authorization refused: {reply.error or reply.result!r}")
        self._authorized = True

    def _on_notification(self, method: str, params: list) -> tuple[str, int, float] | None:
        try:
            if method == "mining.notify":
                self._on_notify(params)
            elif method == "mining.set_difficulty":
                difficulty = float(params[0])
                if not difficulty > 0:
                    raise ValueError("difficulty must be positive")
                self._difficulty = difficulty
            elif method == "mining.set_extranonce":
                self._extranonce = (bytes.fromhex(params[0]), int(params[1]))
            elif method == "mining.set_version_mask":
                self._mask = u32_from_hex(params[0], "version mask")
            elif method == "client.show_message":
                self._messages.append(str(params[0]))
            elif method == "client.reconnect":
                return self._reconnect_target(params)
        except (IndexError, TypeError, ValueError) as exc:
            raise MinerError(f"bad {method} from the pool: {params!r} ({exc})") from None
        return None

    def _on_notify(self, params: list) -> None:
        if self._extranonce is None:
            raise MinerError("mining.notify before the subscribe reply")
        notified = job_from_notify(params)
        extranonce1, size = self._extranonce
        difficulty = self._difficulty
        job = MinerJob(
            job_id=notified.job_id,
            prepared=prepare(notified, len(extranonce1) + size),
            version=notified.version,
            ntime=notified.ntime,
            clean=notified.clean_jobs,
            difficulty=difficulty,
            target=encode_target(difficulty_to_target(difficulty)),
            extranonce1=extranonce1,
            extranonce2_size=size,
        )
        if job.clean:
            self._recent.clear()
            self._clean_jobs += 1
        self._recent[job.job_id] = job
        while len(self._recent) > _JOBS_KEPT:
            self._recent.popitem(last=False)
        self._job = job
        self._jobs += 1

    def _reconnect_target(self, params: list) -> tuple[str, int, float]:
        if not params:  # no host: this server again
            return self.config.host, self.config.port, 0.0
        host, port = str(params[0]), int(params[1])
        wait = float(params[2]) if len(params) > 2 else 0.0
        require_loopback(host)  # raises: the simulator never follows a miner off this machine
        return host, port, max(0.0, min(wait, self.config.max_reconnect_wait))

    # --- waiting ------------------------------------------------------------------------------

    def _submits_pending(self) -> bool:
        return any(p.method == "mining.submit" for p in self._pending.values())

    def _notify(self) -> None:
        # Wake every waiter: they hold the old event; later waiters take the new one.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()


_REPLY_HANDLERS = {
    "mining.submit": Miner._on_submit_reply,
    "mining.configure": Miner._on_configure_reply,
    "mining.subscribe": Miner._on_subscribe_reply,
    "mining.authorize": Miner._on_authorize_reply,
}


def prepare(job: Job, extranonce_size: int) -> PreparedJob:
    """The job in the native core, for extranonce1 + extranonce2 of ``extranonce_size`` bytes."""
    return PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, extranonce_size)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


def _rolled(version: int, bits: int, mask: int) -> int:
    """The header version a submit's version bits make (BIP310)."""
    return (version & ~mask & U32_MAX) | (bits & mask)


def _spread(counter: int, mask: int) -> int:
    """Deposit the low bits of ``counter`` into the set bits of ``mask`` (a software PDEP)."""
    bits, bit = 0, 1
    while mask and counter:
        low = mask & -mask
        if counter & bit:
            bits |= low
        mask ^= low
        bit <<= 1
        if bit > counter:
            break
    return bits


async def run_miner(config: MinerConfig, *, max_shares: int | None = None, seconds: float | None = None) -> MinerStats:
    """Connect, mine until a bound is reached, close; the final stats."""
    async with Miner(config) as miner:
        return await miner.mine(max_shares=max_shares, seconds=seconds)
