"""The asyncio side of Stratum: one Protocol per miner pumping bytes through the pool core.

Protocols rather than streams: a submit is answered inside ``data_received`` with no task
switch, which is what lets one process serve a large site. What a share is worth is the
pool core's to decide (``fleetd.shares.pool``); this module carries out what it returns:
bytes to write, a block to hand to the source, a share to forward upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from fleetd import log as logging
from fleetd.chain.byteorder import hash_to_display
from fleetd.chain.share import share_header
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.rigs.registry import Rig, RigRegistry
from fleetd.server.admission import (
    EXTRANONCE_EXHAUSTED,
    Admission,
    AdmissionConfig,
    LogLimiter,
    connections_fd_allows,
    raise_fd_limit,
)
from fleetd.shares.jobs import JobStore
from fleetd.shares.pool import BlockFound, Pool, PoolConnection, ShareForwarded, UpstreamWorkerStats
from fleetd.shares.vardiff import VardiffConfig
from fleetd.sources.base import (
    BlockBuilder,
    BlockOutcome,
    ExtranonceLayout,
    ForwardingSource,
    JobSource,
    ShareOutcome,
    SolvedBlock,
)
from fleetd.stratum import messages
from fleetd.stratum.events import (
    AuthorizationRefused,
    Authorized,
    BadRequest,
    ConnectionClosed,
    Subscribed,
)
from fleetd.stratum.extranonce import ExtranonceAllocator
from fleetd.stratum.framing import CloseReason
from fleetd.stratum.job import Job
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import SessionConfig

IDLE_CHECK_SECONDS = 5.0  # how often silent miners are offered a lower difficulty
IDLE_TIMEOUT = "idle_timeout"  # the close reason of a logged-in rig that stopped earning shares
BAD_REQUEST_LINES = 5  # bad_request lines per source address per log window; the rest are counted
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"  # the close reason of a TLS connection that never got through


@dataclass(frozen=True, slots=True)
class TlsListen:
    """stratum+ssl on a second listener: the same sessions, pool core and limits as the plain one."""

    host: str
    port: int
    context: ssl.SSLContext
    handshake_timeout: float = 10.0  # a connection still handshaking this long is closed


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    session: SessionConfig
    vardiff: VardiffConfig
    extranonce1_size: int = 4
    login_timeout: float = 30.0
    reconnect_on_shutdown: bool = True
    shutdown_grace: float = 5.0
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    # A logged-in connection with no accepted share for this long is closed (0: never). The
    # time counts from its login, its last accepted share, the return of work, or the end of
    # fleetd holding its rigs off, the latest: a rig is never dropped for the source having no
    # work or for sleeping on fleetd's word, and vardiff has long since brought a too-high
    # difficulty down by then.
    idle_timeout: float = 1800.0
    log_window: float = 60.0  # refusals are logged once per window per address and reason
    tls: TlsListen | None = None  # stratum+ssl beside the plain listener, when configured


@dataclass(frozen=True, slots=True)
class ServerCounters:
    """What telemetry reads of the server, taken at scrape time."""

    connections: int
    jobs_published: int
    blocks_submitted: int
    blocks_accepted: int
    current_job: Job | None
    validation_buckets: list[tuple[str, int]]
    validation_sum: float
    refused: dict[str, int] = field(default_factory=dict)  # connections refused, by reason
    auth_failures: dict[str, int] = field(default_factory=dict)  # mining.authorize refused, by reason
    disconnects: dict[str, int] = field(default_factory=dict)  # connections ended, by reason
    unattributed_rejects: dict[str, int] = field(default_factory=dict)  # from names with no rig record
    bans: int = 0  # source addresses banned for failed logins, ever
    banned: int = 0  # ... and refused now


class StratumServer:
    """Listens for miners, sends them jobs, and carries out the pool core's decisions."""

    def __init__(
        self,
        settings: ServerSettings,
        source: JobSource,
        *,
        jobs: JobStore | None = None,
        rigs: RigRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        held_off: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        # The rigs (worker names) fleetd holds switched off: asleep, they send no share, and
        # are neither idle nor in need of a lower difficulty
        self.held_off = held_off
        # A forwarding (upstream) source owns the extranonce layout and may change it at run
        # time; every other source lives with the one the settings give.
        self.forwarding: ForwardingSource | None = source if isinstance(source, ForwardingSource) else None
        # Blocks go to a source that builds them, or upstream as shares.
        self.builder: BlockBuilder | None = source if isinstance(source, BlockBuilder) else None
        if self.forwarding is None and self.builder is None:
            raise TypeError(f"{type(source).__name__} neither builds blocks nor forwards shares")
        self.pool = Pool(
            jobs or JobStore(),
            rigs if rigs is not None else RigRegistry(),
            settings.vardiff,
            forwarding=self.forwarding is not None,
        )
        self.session_config = settings.session
        extranonce1_size = settings.extranonce1_size
        if self.forwarding is not None:
            layout = self.forwarding.extranonce_layout()
            extranonce1_size = layout.extranonce1_size
            self.session_config = replace(settings.session, extranonce2_size=layout.extranonce2_size)
        self.extranonces = ExtranonceAllocator(extranonce1_size)
        self.version_mask: int | None = None  # set by a forwarding source; None: the settings' mask
        self.difficulty_cap: float | None = None  # set by a forwarding source: no rig goes above it
        self.connections: set[MinerConnection] = set()
        self.blocks_submitted = 0
        self.blocks_accepted = 0
        self.on_block = None  # (job, outcome, worker), called with each found block's answer (the journal)
        self.work_withdrawn: str | None = None  # why there is no job to hand out, when so
        self.log = logging.get("fleetd.stratum")
        self._server: asyncio.base_events.Server | None = None
        self._tls_socket: socket.socket | None = None
        self._tls_accept: asyncio.Task | None = None
        self._handshakes: set[asyncio.Task] = set()  # TLS connections admitted and not yet through
        self.current_work: tuple[Job, bytes] | None = None  # the latest job and its encoded notify; None: none
        self._block_tasks: set[asyncio.Task] = set()
        self._idle_task: asyncio.Task | None = None
        self.admission = Admission(settings.admission)
        self.log_limiter = LogLimiter(settings.log_window)
        self.bad_request_limiter = LogLimiter(settings.log_window, BAD_REQUEST_LINES)
        self.refused: Counter[str] = Counter()
        self.auth_failures: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.bans = 0
        self.work_since = clock.monotonic()  # when work last became available: idle time counts from it
        if self.forwarding is not None:
            self.forwarding.attach(self)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self._check_fd_limit()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MinerConnection(self), self.settings.host, self.settings.port, reuse_address=True, backlog=4096
        )
        tls = self.settings.tls
        if tls is not None:
            try:
                self._tls_socket = _listening_socket(tls.host, tls.port)
            except BaseException:
                self._server.close()
                raise
            self._tls_accept = asyncio.create_task(self._accept_tls(self._tls_socket, tls), name="stratum-tls-accept")
        self._idle_task = asyncio.create_task(self._idle_loop(), name="vardiff-idle")
        self.log.info("stratum_listening", address=self.address)
        if tls is not None:
            self.log.info(
                "stratum_tls_listening", address=self.tls_address, min_version=tls.context.minimum_version.name,
                handshake_timeout=tls.handshake_timeout,
            )  # fmt: skip

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when configured with port 0)."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def tls_address(self) -> tuple[str, int] | None:
        """The stratum+ssl listener's bound address; None without one."""
        if self._tls_socket is None or self._tls_socket.fileno() < 0:
            return None
        host, port = self._tls_socket.getsockname()[:2]
        return host, port

    async def _accept_tls(self, listening: socket.socket, tls: TlsListen) -> None:
        """stratum+ssl: each connection is admitted (or refused) as it is accepted, before any
        TLS work, exactly as on the plain listener, so a refused or banned address costs no
        handshake; an admitted one is handed to the loop with the certificate and the
        handshake timeout, and becomes a miner once its handshake is done."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, peer = await loop.sock_accept(listening)
            except OSError as exc:  # out of file descriptors, most likely: retry, as asyncio's own server does
                self.log_limited("tls_accept_failed", "*", type(exc).__name__, "error", detail=str(exc))
                await asyncio.sleep(1.0)  # an I/O back-off, in real time
                continue
            ip = peer[0]
            refused = self.admission.admit(ip, self.clock.monotonic())
            if refused is not None:
                self.refuse(ip, refused)
                connection.close()
                continue
            task = loop.create_task(self._handshake(connection, ip, peer[1], tls), name="stratum-tls-handshake")
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, connection: socket.socket, ip: str, port: int, tls: TlsListen) -> None:
        miner = TlsMinerConnection(self, ip, port)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: miner, connection, ssl=tls.context, ssl_handshake_timeout=tls.handshake_timeout
            )
        except (OSError, asyncio.CancelledError) as exc:  # not TLS, too slow, refused by TLS, or shutdown
            connection.close()
            self.admission.release(ip)
            self.disconnects[TLS_HANDSHAKE_FAILED] += 1
            reason = "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
            self.log_limited(TLS_HANDSHAKE_FAILED, ip, reason, "info", peer=f"{ip}:{port}", detail=str(exc)[:200])

    async def stop(self) -> None:
        """Stop accepting, ask miners to reconnect, let replies drain, then close everything.

        Blocks already found are awaited: a solved block is never dropped by a shutdown.
        """
        if self._server is None:
            return
        self._server.close()
        if self._tls_accept is not None:
            self._tls_accept.cancel()
            await asyncio.wait([self._tls_accept])  # off the loop's poll before its socket closes
            self._tls_socket.close()
        for handshake in list(self._handshakes):
            handshake.cancel()  # not yet a miner: nothing to tell it; the task frees its slot
        if self._idle_task:
            self._idle_task.cancel()
        for connection in list(self.connections):
            if self.settings.reconnect_on_shutdown:
                connection.core.session.reconnect()
            connection.flush()
        # Sockets drain in real time, whatever clock the rest runs on: an I/O timeout.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.shutdown_grace):
                while any(c.pending_output() for c in self.connections):
                    await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close("server_shutdown")
        if self._block_tasks:
            await asyncio.wait(self._block_tasks, timeout=self.settings.shutdown_grace)
        await self._server.wait_closed()
        if self._handshakes:
            await asyncio.wait(self._handshakes, timeout=self.settings.shutdown_grace)
        self.log.info("stratum_stopped", blocks_submitted=self.blocks_submitted)

    # -- jobs ---------------------------------------------------------------------

    def publish(self, job: Job) -> None:
        """A new job from the source: into the job store, and to every miner at work."""
        retired = self.pool.publish(job, self.clock.wall())
        notify = messages.notify(job)
        if self.current_work is None:
            self.work_since = self.clock.monotonic()
        self.current_work = (job, notify)
        self.work_withdrawn = None
        for connection in list(self.connections):
            connection.send_job(job, notify, retired)
        self.log.info(
            "job_published", job_id=job.job_id, height=job.height, clean=job.clean_jobs, miners=len(self.connections)
        )

    @property
    def current_job(self) -> Job | None:
        return self.pool.jobs.latest

    @property
    def rigs(self) -> RigRegistry:
        return self.pool.rigs

    @property
    def workers(self) -> dict[str, Rig]:
        """Pool-side figures by worker name (the rigs this server has seen)."""
        return self.pool.rigs.rigs

    @property
    def upstream_workers(self) -> dict[str, UpstreamWorkerStats]:
        return self.pool.upstream_workers

    def counters(self) -> ServerCounters:
        histogram = self.pool.validation_seconds
        return ServerCounters(
            connections=len(self.connections),
            jobs_published=self.pool.jobs_published,
            blocks_submitted=self.blocks_submitted,
            blocks_accepted=self.blocks_accepted,
            current_job=self.current_job,
            validation_buckets=histogram.cumulative(),
            validation_sum=histogram.total,
            refused=dict(self.refused),
            auth_failures=dict(self.auth_failures),
            disconnects=dict(self.disconnects),
            unattributed_rejects=dict(self.pool.unattributed_rejects),
            bans=self.bans,
            banned=self.admission.banned(self.clock.monotonic()),
        )

    # -- refusals ------------------------------------------------------------------------

    def _check_fd_limit(self) -> None:
        before, soft, hard = raise_fd_limit()
        self.log.info("fd_limit", soft_before=before, soft=soft, hard=hard)
        wanted = self.settings.admission.max_connections
        allowed = connections_fd_allows(soft)
        if wanted > allowed:
            self.log.warning(
                "fd_limit_below_max_connections", max_connections=wanted, fd_limit=soft, connections_possible=allowed,
                hint="raise LimitNOFILE (systemd) or ulimit -n, or lower [stratum] max_connections",
            )  # fmt: skip

    def refuse(self, ip: str, reason: str, **fields) -> None:
        """Count a refused connection, and log it once per window per address and reason."""
        self.refused[reason] += 1
        self.log_limited("connection_refused", ip, reason, **fields)

    def log_limited(self, event: str, ip: str, reason: str, level: str = "warning", **fields) -> None:
        suppressed = self.log_limiter.allow((event, ip, reason), self.clock.monotonic())
        if suppressed is not None:
            getattr(self.log, level)(event, ip=ip, reason=reason, suppressed=suppressed, **fields)

    def _flush_log_summaries(self, now: float) -> None:
        for (event, ip, reason), suppressed in self.log_limiter.expire(now):
            self.log.info("log_suppressed", suppressed_event=event, ip=ip, reason=reason, suppressed=suppressed)
        for ip, suppressed in self.bad_request_limiter.expire(now):
            self.log.info("log_suppressed", suppressed_event="bad_request", ip=ip, suppressed=suppressed)

    # -- what a forwarding source controls (ServerControl) ----------------------------

    def set_extranonce_layout(self, layout: ExtranonceLayout) -> None:
        """New extranonce2 size for every rig: mining.set_extranonce where the rig subscribed
        to it, else client.reconnect (and a close after the grace if it does not go)."""
        if layout.extranonce1_size != self.extranonces.size:
            raise ValueError(
                f"extranonce1 size {layout.extranonce1_size} cannot change at run time (it is {self.extranonces.size})"
            )
        size = layout.extranonce2_size
        if size == self.session_config.extranonce2_size:
            return
        self.session_config = replace(self.session_config, extranonce2_size=size)
        told = moved = 0
        for connection in list(self.connections):
            if connection.change_extranonce2_size(size):
                told += 1
            else:
                moved += 1
        self.log.warning("extranonce2_size_changed", extranonce2_size=size, set_extranonce=told, reconnected=moved)

    def set_version_mask(self, mask: int) -> None:
        """The mask rigs may roll from now on; rigs that negotiated rolling are told at once."""
        self.version_mask = mask
        for connection in list(self.connections):
            connection.change_version_mask(mask)

    def set_difficulty_cap(self, difficulty: float | None) -> None:
        """No rig's difficulty goes above ``difficulty`` from now on (None: no cap); a rig above
        it is brought down at once (mining.set_difficulty, then its current job again)."""
        if difficulty == self.difficulty_cap:
            return
        self.difficulty_cap = difficulty
        lowered = 0
        for connection in list(self.connections):
            lowered += connection.cap_difficulty(difficulty)
        self.log.info("difficulty_capped", difficulty=difficulty, lowered=lowered)

    def withdraw_work(self, reason: str) -> None:
        """No usable work: new rigs get none, connected rigs are let go (their own backup pools
        take over, or they come back and wait); the next ``publish`` ends this."""
        if self.work_withdrawn is not None:
            return
        self.work_withdrawn = reason
        self.current_work = None
        self.log.error("work_withdrawn", reason=reason, miners=len(self.connections))
        for connection in list(self.connections):
            connection.close("no_work")

    # -- effects of the pool core's decisions --------------------------------------------

    def submit_block(self, found: BlockFound, log) -> None:
        """Hand a block to the source at once, in a task of its own that a shutdown awaits."""
        share = found.share
        solved = SolvedBlock(
            job=found.job,
            extranonce1=share.extranonce1,
            extranonce2=share.extranonce2,
            ntime=share.ntime,
            nonce=share.nonce,
            version=share.version,
            hash=found.hash,
            worker=share.worker,
        )
        self._track_block(self.builder.submit_block(solved), found.job, log, share.worker)

    def forward_share(self, forwarded: ShareForwarded, log) -> None:
        """Offer an accepted share to the upstream pool; count its answer per worker. A block
        goes up as a share, and the pool's answer to it is the block's outcome."""
        future = self.forwarding.submit_share(forwarded.job, forwarded.share, forwarded.hash)
        if future is None:
            if forwarded.is_block:
                log.error("block_not_forwarded", job_id=forwarded.job.job_id, hash=hash_to_display(forwarded.hash))
            return  # below the upstream difficulty: ours alone
        pool, worker, clock = self.pool, forwarded.share.worker, self.clock
        pool.upstream_stats(worker).forwarded += 1

        def answered(done: asyncio.Future) -> None:
            outcome: ShareOutcome | None = None
            if not done.cancelled() and done.exception() is None:
                outcome = done.result()
            if outcome is None:
                pool.upstream_answer(worker, False, "lost", 0.0, clock.wall())
            else:
                pool.upstream_answer(worker, outcome.accepted, outcome.reason, outcome.difficulty, clock.wall())

        future.add_done_callback(answered)
        if forwarded.is_block:
            self._track_block(_block_outcome(future, forwarded), forwarded.job, log, worker)

    def _track_block(self, submitting, job: Job, log, worker: str) -> None:
        task = asyncio.get_running_loop().create_task(self._await_block(submitting, job, log, worker))
        self._block_tasks.add(task)
        task.add_done_callback(self._block_tasks.discard)

    async def _await_block(self, submitting, job: Job, log, worker: str) -> None:
        self.blocks_submitted += 1
        try:
            outcome = await submitting
        except Exception:
            log.exception("block_submit_failed", job_id=job.job_id)
            return
        if outcome.accepted:
            self.blocks_accepted += 1
        log.info("block_submitted", accepted=outcome.accepted, hash=outcome.hash, height=outcome.height,
                 reason=outcome.reason)  # fmt: skip
        if self.on_block is not None:
            self.on_block(job, outcome, worker)

    async def _idle_loop(self) -> None:
        clock = self.clock
        while True:
            await clock.sleep(IDLE_CHECK_SECONDS)
            now = clock.monotonic()
            timeout = self.settings.idle_timeout
            # No work to hand out: nobody can earn a share, so nobody is idle.
            cutoff = now - timeout if timeout and self.current_work is not None else None
            if cutoff is not None and self.work_since > cutoff:
                cutoff = None
            held = self.held_off() if self.held_off is not None else ()
            for connection in list(self.connections):
                if held and connection.held_off(held):
                    # its idle time counts from its release: a rig switched back on gets the whole timeout
                    connection.progress = now
                    continue
                if cutoff is not None and connection.progress <= cutoff and connection.core.session.ready:
                    connection.close(IDLE_TIMEOUT)
                    continue
                connection.idle(now)
            self._flush_log_summaries(now)
            self.admission.prune(now)


async def _block_outcome(future: asyncio.Future, forwarded: ShareForwarded) -> BlockOutcome:
    """The pool's answer to a forwarded block, with the header and coinbase the rig completed
    (the pool's transactions, hence the block itself, are the pool's alone)."""
    outcome: ShareOutcome = await future
    job, share = forwarded.job, forwarded.share
    coinbase = b"".join((job.coinb1, share.extranonce1, share.extranonce2, job.coinb2))
    header = share_header(coinbase, job.merkle_branch, share.version, job.prevhash, share.ntime, job.nbits, share.nonce)
    return BlockOutcome(
        outcome.accepted, hash_to_display(forwarded.hash), job.height, outcome.reason,
        header_hex=header.hex(), coinbase_hex=coinbase.hex(),
    )  # fmt: skip


class MinerConnection(asyncio.Protocol):
    """One miner: its transport, the pool core's side of it, and a logger bound to the rig."""

    def __init__(self, server: StratumServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.core: PoolConnection | None = None
        self.log = server.log
        self.peer = "?"
        self.ip = "?"
        self.extranonce1 = b""
        self.progress = 0.0  # monotonic time of the login or the last accepted share
        self._accepted = 0
        self._login_timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        if self.admit(transport):
            self.begin(transport)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """The admission limits: False when refused (counted, logged and closed at once)."""
        server = self.server
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = ip = peer[0]
        self.peer = f"{ip}:{peer[1]}"
        refused = server.admission.admit(ip, server.clock.monotonic())
        if refused is not None:  # closed at once, before any session work
            server.refuse(ip, refused)
            transport.abort()
            return False
        return True

    def begin(self, transport: asyncio.Transport) -> None:
        """An admitted connection (over TLS: once its handshake is done) becomes a session."""
        server = self.server
        self.transport = transport
        ip = self.ip
        now = server.clock.monotonic()
        try:
            self.extranonce1 = server.extranonces.allocate()
        except Exception:  # every extranonce1 is in use: refuse this one, keep serving the rest
            server.admission.release(ip)
            server.refuse(ip, EXTRANONCE_EXHAUSTED, level="error", connections=len(server.connections))
            transport.abort()
            return
        self.core = core = server.pool.connection(server.session_config, self.extranonce1, ip, now)
        core.session.worker_gate = lambda worker: server.admission.admit_worker(ip, worker)
        self.progress = now
        if server.version_mask is not None:
            core.session.set_version_mask(server.version_mask)
        if server.difficulty_cap is not None:
            core.cap_difficulty(server.difficulty_cap)  # not at work yet: the first job carries it
        self.log = server.log.bind(peer=self.peer, extranonce1=self.extranonce1.hex())
        self._login_timer = asyncio.get_running_loop().call_later(server.settings.login_timeout, self._login_deadline)
        server.connections.add(self)
        self.log.debug("miner_connected")

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is None:
            return
        server = self.server
        clock = server.clock
        monotonic = clock.monotonic()
        effects = core.receive_data(data, clock.wall(), monotonic, server.current_work)
        if core.session.accepted_submits != self._accepted:
            self._accepted = core.session.accepted_submits
            self.progress = monotonic
        for effect in effects:
            carry_out = _EFFECTS.get(type(effect))
            if carry_out is not None:
                carry_out(self, effect)
        self.flush()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        core = self.core
        if core is None:
            return  # refused: counted and logged when it was
        if self in server.connections:
            server.connections.discard(self)
            server.extranonces.release(self.extranonce1)
        if self._login_timer:
            self._login_timer.cancel()
        core.disconnected(server.clock.wall())
        session = core.session
        workers = session.authorized_workers
        admission = server.admission
        admission.release(self.ip, workers)
        if workers:
            admission.login_succeeded(self.ip)
        elif session.auth_failures:
            ban = admission.login_failed(self.ip, server.clock.monotonic())
            if ban is not None:
                server.bans += 1
                self.log.warning("source_banned", ip=self.ip, seconds=ban, reason="failed_logins")
        reason = session.close_reason if session.closed else "peer_closed"
        server.disconnects[reason] += 1
        self.log.info("miner_disconnected", reason=reason, error=str(exc) if exc else None)

    def pause_writing(self) -> None:
        # The miner is not reading our replies: stop reading its requests until it does.
        if self.transport:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- driven by the server ----------------------------------------------------------

    def send_job(self, job: Job, notify: bytes, retired: list[str]) -> None:
        self.core.send_job(job, notify, retired)
        self.flush()

    def change_extranonce2_size(self, size: int) -> bool:
        """True when the rig was told with mining.set_extranonce; else it is asked to reconnect."""
        session = self.core.session
        if session.closed:
            return True
        if session.set_extranonce(self.extranonce1, size):
            self.flush()
            return True
        session.reconnect()
        self.flush()
        # Firmware that ignores client.reconnect would go on with the old size: end it after the grace.
        asyncio.get_running_loop().call_later(self.server.settings.shutdown_grace, self.close, "extranonce_changed")
        return False

    def change_version_mask(self, mask: int) -> None:
        session = self.core.session
        if not session.closed:
            session.set_version_mask(mask)
            self.flush()

    def cap_difficulty(self, cap: float | None) -> bool:
        lowered = self.core.cap_difficulty(cap)
        if lowered:
            self.flush()
        return lowered

    def held_off(self, held: Collection[str]) -> bool:
        """Every rig logged in on this connection is held off (so its silence says nothing)."""
        workers = self.core.session.authorized_workers
        return bool(workers) and all(worker in held for worker in workers)

    def idle(self, monotonic: float) -> None:
        self.core.idle(monotonic)
        self.flush()  # a change goes out now, not with the rig's next read

    def flush(self) -> None:
        core, transport = self.core, self.transport
        if core is None or transport is None:
            return
        data = core.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if core.session.closed and not transport.is_closing():
            transport.close()

    def pending_output(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport and not self.transport.is_closing() else 0

    def close(self, reason: str) -> None:
        core = self.core
        if core is not None and not core.session.closed:
            core.session.close(reason)
        self.flush()
        if self.transport and not self.transport.is_closing():
            self.transport.close()

    # -- effects and events from the pool core ---------------------------------------------

    def _on_subscribed(self, event: Subscribed) -> None:
        self.log = self.log.bind(agent=event.user_agent)

    def _on_authorized(self, event: Authorized) -> None:
        self.log = self.log.bind(worker=event.worker)
        if self.core.session.ready and self._login_timer:
            self._login_timer.cancel()
            self._login_timer = None
        self.log.info("miner_authorized")

    def _on_authorization_refused(self, event: AuthorizationRefused) -> None:
        server = self.server
        server.auth_failures[event.reason] += 1
        server.log_limited("authorization_refused", self.ip, event.reason, peer=self.peer, worker=event.worker[:64])

    def _on_bad_request(self, event: BadRequest) -> None:
        server = self.server
        suppressed = server.bad_request_limiter.allow(self.ip, server.clock.monotonic())
        if suppressed is None:
            return
        level = self.log.debug if event.reject is Reject.UNSUPPORTED else self.log.info
        level("bad_request", method=event.method, reason=event.reject.reason, detail=event.detail,
              suppressed=suppressed)  # fmt: skip

    def _on_closed(self, event: ConnectionClosed) -> None:
        level = "info" if event.reason == CloseReason.CLOSED_BY_SERVER else "warning"
        self.server.log_limited("miner_dropped", self.ip, event.reason, level, peer=self.peer, detail=event.detail)

    def _on_block(self, found: BlockFound) -> None:
        self.server.submit_block(found, self.log)

    def _on_forward(self, forwarded: ShareForwarded) -> None:
        self.server.forward_share(forwarded, self.log)

    def _login_deadline(self) -> None:
        self._login_timer = None
        session = self.core.session
        if not session.ready and not session.closed:
            session.close(CloseReason.LOGIN_TIMEOUT)
            self.flush()


class TlsMinerConnection(MinerConnection):
    """A stratum+ssl miner: admitted when accepted, so its session begins once the handshake is done."""

    def __init__(self, server: StratumServer, ip: str, port: int) -> None:
        super().__init__(server)
        self.ip, self.peer = ip, f"{ip}:{port}"

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.begin(transport)
        if self.core is not None:
            self.log = self.log.bind(tls=transport.get_extra_info("ssl_object").version())


def _listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on the first address ``host`` resolves to."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listening.bind(address)
        listening.listen(4096)
        listening.setblocking(False)
    except BaseException:
        listening.close()
        raise
    return listening


_EFFECTS = {
    Subscribed: MinerConnection._on_subscribed,
    Authorized: MinerConnection._on_authorized,
    AuthorizationRefused: MinerConnection._on_authorization_refused,
    BadRequest: MinerConnection._on_bad_request,
    ConnectionClosed: MinerConnection._on_closed,
    BlockFound: MinerConnection._on_block,
    ShareForwarded: MinerConnection._on_forward,
}
