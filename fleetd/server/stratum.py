"""The asyncio side of Stratum: one Protocol per miner feeding bytes to its sans-IO session.

Protocols rather than streams: a submit is answered inside ``data_received`` with no task
switch, which is what lets one process serve a large site. The share check runs in the
C core synchronously, so a received submit is always answered before the next read.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetd import log as logging
from fleetd.shares.job import Job
from fleetd.shares.registry import JobRegistry
from fleetd.shares.validator import ShareResult, ShareValidator
from fleetd.shares.vardiff import Vardiff, VardiffConfig
from fleetd.sources.base import JobSource, SolvedBlock
from fleetd.stratum import messages
from fleetd.stratum.events import (
    AuthorizationRefused,
    Authorized,
    BadRequest,
    ConnectionClosed,
    DifficultySuggested,
    MinimumDifficultyRequested,
    SubmitReceived,
    SubmitRejected,
    Subscribed,
)
from fleetd.stratum.extranonce import ExtranonceAllocator
from fleetd.stratum.framing import CloseReason
from fleetd.stratum.session import Session, SessionConfig

UNAUTHENTICATED = "(unauthenticated)"  # stats bucket for rejects before any worker is authorized
IDLE_CHECK_SECONDS = 5.0  # how often silent miners are offered a lower difficulty


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


@dataclass(slots=True)
class WorkerStats:
    """Pool-side counters for one worker name; the telemetry layer reads them at scrape time."""

    accepted: int = 0
    accepted_work: float = 0.0  # sum of share difficulties; x 2^32 is hashes
    rejected: Counter = field(default_factory=Counter)  # by machine-readable reason
    blocks: int = 0
    last_share: float | None = None
    difficulty: float = 0.0


class StratumServer:
    """Listens for miners, sends them jobs, validates and answers their shares."""

    def __init__(
        self,
        settings: ServerSettings,
        source: JobSource,
        *,
        registry: JobRegistry | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.source = source
        self.registry = registry or JobRegistry()
        self.validator = ShareValidator(self.registry)
        self.wall_clock = wall_clock
        self.extranonces = ExtranonceAllocator(settings.extranonce1_size)
        self.connections: set[MinerConnection] = set()
        self.workers: dict[str, WorkerStats] = {}
        self.log = logging.get("fleetd.stratum")
        self._server: asyncio.base_events.Server | None = None
        self._notify: bytes | None = None
        self._block_tasks: set[asyncio.Task] = set()
        self._idle_task: asyncio.Task | None = None
        self.blocks_submitted = 0

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: MinerConnection(self), self.settings.host, self.settings.port, reuse_address=True, backlog=4096
        )
        self._idle_task = asyncio.create_task(self._idle_loop(), name="vardiff-idle")
        self.log.info("stratum_listening", address=self.address)

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when configured with port 0)."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        """Stop accepting, ask miners to reconnect, let replies drain, then close everything.

        Blocks already found are awaited: a solved block is never dropped by a shutdown.
        """
        if self._server is None:
            return
        self._server.close()
        if self._idle_task:
            self._idle_task.cancel()
        for connection in list(self.connections):
            if self.settings.reconnect_on_shutdown:
                connection.session.reconnect()
            connection.flush()
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace
        while any(c.pending_output() for c in self.connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close("server_shutdown")
        if self._block_tasks:
            await asyncio.wait(self._block_tasks, timeout=self.settings.shutdown_grace)
        await self._server.wait_closed()
        self.log.info("stratum_stopped", blocks_submitted=self.blocks_submitted)

    # -- jobs ---------------------------------------------------------------------

    def publish(self, job: Job) -> None:
        """A new job from the source: register it and send it to every subscribed miner."""
        self.registry.add(job, self.wall_clock())
        self._notify = messages.notify(job)
        for connection in list(self.connections):
            connection.send_job(job, self._notify)
        self.log.info(
            "job_published", job_id=job.job_id, height=job.height, clean=job.clean_jobs, miners=len(self.connections)
        )

    @property
    def current_job(self) -> Job | None:
        return self.registry.latest

    @property
    def current_notify(self) -> bytes | None:
        """The current job's mining.notify, encoded once for every connection."""
        return self._notify

    # -- shares -------------------------------------------------------------------

    def worker_stats(self, worker: str) -> WorkerStats:
        stats = self.workers.get(worker)
        if stats is None:
            stats = self.workers[worker] = WorkerStats()
        return stats

    def found_block(self, submit: SubmitReceived, result: ShareResult, log) -> None:
        """Hand a block to the source at once, before any other bookkeeping."""
        solved = SolvedBlock(
            job_id=submit.job_id,
            extranonce1=submit.extranonce1,
            extranonce2=submit.extranonce2,
            ntime=submit.ntime,
            nonce=submit.nonce,
            version=submit.version,
            hash=result.hash,
            worker=submit.worker,
        )
        task = asyncio.get_running_loop().create_task(self._submit_block(solved, log))
        self._block_tasks.add(task)
        task.add_done_callback(self._block_tasks.discard)

    async def _submit_block(self, solved: SolvedBlock, log) -> None:
        self.blocks_submitted += 1
        try:
            outcome = await self.source.submit_block(solved)
        except Exception:
            log.exception("block_submit_failed", job_id=solved.job_id)
            return
        log.info(
            "block_submitted",
            accepted=outcome.accepted,
            hash=outcome.hash,
            height=outcome.height,
            reason=outcome.reason,
        )

    async def _idle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            now = loop.time()
            for connection in list(self.connections):
                connection.idle_check(now)


class MinerConnection(asyncio.Protocol):
    """One miner: transport, sans-IO session, vardiff and a logger bound to the rig."""

    def __init__(self, server: StratumServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.vardiff: Vardiff | None = None
        self.log = server.log
        self.peer = "?"
        self.extranonce1 = b""
        self._login_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        server = self.server
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        try:
            self.extranonce1 = server.extranonces.allocate()
        except Exception:  # every extranonce1 is in use: refuse this one, keep serving the rest
            server.log.error("extranonce_exhausted", peer=self.peer, connections=len(server.connections))
            transport.abort()
            return
        self.session = Session(server.settings.session, self.extranonce1)
        self.vardiff = Vardiff(server.settings.vardiff, self._loop.time())
        self.log = server.log.bind(peer=self.peer, extranonce1=self.extranonce1.hex())
        self._login_timer = self._loop.call_later(server.settings.login_timeout, self._login_deadline)
        server.connections.add(self)
        self.log.debug("miner_connected")

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        for event in session.receive_data(data):
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
        self.flush()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        if self in server.connections:
            server.connections.discard(self)
            server.extranonces.release(self.extranonce1)
        if self._login_timer:
            self._login_timer.cancel()
        reason = self.session.close_reason if self.session and self.session.closed else "peer_closed"
        self.log.info("miner_disconnected", reason=reason, error=str(exc) if exc else None)

    def pause_writing(self) -> None:
        # The miner is not reading our replies: stop reading its requests until it does.
        if self.transport:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- driven by the server ----------------------------------------------------------

    def send_job(self, job: Job, notify: bytes) -> None:
        session = self.session
        if session is None or not session.subscribed or session.closed:
            return
        session.send_job(job, notify)
        self.flush()

    def idle_check(self, now: float) -> None:
        if self.session and self.session.ready and self.vardiff:
            self._set_difficulty(self.vardiff.on_idle(now))

    def flush(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None:
            return
        data = session.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if session.closed and not transport.is_closing():
            transport.close()

    def pending_output(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport and not self.transport.is_closing() else 0

    def close(self, reason: str) -> None:
        if self.session and not self.session.closed:
            self.session.close(reason)
        self.flush()
        if self.transport and not self.transport.is_closing():
            self.transport.close()

    # -- events -------------------------------------------------------------------------

    def _on_subscribed(self, event: Subscribed) -> None:
        self.log = self.log.bind(agent=event.user_agent)
        session = self.session
        session.set_difficulty(self.vardiff.difficulty)
        job, notify = self.server.current_job, self.server.current_notify
        if job is not None and notify is not None:
            session.send_job(job, notify)

    def _on_authorized(self, event: Authorized) -> None:
        self.log = self.log.bind(worker=event.worker)
        self.server.worker_stats(event.worker).difficulty = self.vardiff.difficulty
        if self.session.ready and self._login_timer:
            self._login_timer.cancel()
            self._login_timer = None
        self.log.info("miner_authorized")

    def _on_authorization_refused(self, event: AuthorizationRefused) -> None:
        self.log.warning("authorization_refused", worker=event.worker)

    def _on_submit(self, submit: SubmitReceived) -> None:
        server = self.server
        result = server.validator.validate(submit, server.wall_clock())
        session = self.session
        if result.is_block:
            server.found_block(submit, result, self.log)
        stats = server.worker_stats(submit.worker)
        if result.accepted:
            session.accept_submit(submit.request_id)
            stats.accepted += 1
            stats.accepted_work += submit.difficulty
            stats.last_share = server.wall_clock()
            self._set_difficulty(self.vardiff.on_share(self._loop.time(), submit.difficulty))
        else:
            session.reject_submit(submit.request_id, result.reject)
            stats.rejected[result.reject.reason] += 1
            self.log.debug("share_rejected", reason=result.reject.reason, job_id=submit.job_id)

    def _on_submit_rejected(self, event: SubmitRejected) -> None:
        # Count against a worker this connection proved, never a name it merely claimed:
        # claimed names would let any client grow the stats table without limit.
        session = self.session
        worker = event.worker if session.is_authorized(event.worker) else next(iter(session.authorized_workers), UNAUTHENTICATED)
        self.server.worker_stats(worker).rejected[event.reject.reason] += 1
        self.log.debug("share_rejected", reason=event.reject.reason, job_id=event.job_id)

    def _on_difficulty_floor(self, event: DifficultySuggested | MinimumDifficultyRequested) -> None:
        floor = event.difficulty if isinstance(event, DifficultySuggested) else event.floor
        self._set_difficulty(self.vardiff.set_floor(floor, self._loop.time()))

    def _on_bad_request(self, event: BadRequest) -> None:
        self.log.info("bad_request", method=event.method, reason=event.reject.reason, detail=event.detail)

    def _on_closed(self, event: ConnectionClosed) -> None:
        level = self.log.info if event.reason == CloseReason.CLOSED_BY_SERVER else self.log.warning
        level("miner_dropped", reason=event.reason, detail=event.detail)

    def _set_difficulty(self, difficulty: float | None) -> None:
        if difficulty is None:
            return
        sent = self.session.set_difficulty(difficulty)
        for worker in self.session.authorized_workers:
            self.server.worker_stats(worker).difficulty = sent
        self.log.debug("difficulty_changed", difficulty=sent)

    def _login_deadline(self) -> None:
        self._login_timer = None
        if self.session and not self.session.ready and not self.session.closed:
            self.session.close(CloseReason.LOGIN_TIMEOUT)
            self.flush()


_HANDLERS: dict[type, Callable] = {
    Subscribed: MinerConnection._on_subscribed,
    Authorized: MinerConnection._on_authorized,
    AuthorizationRefused: MinerConnection._on_authorization_refused,
    SubmitReceived: MinerConnection._on_submit,
    SubmitRejected: MinerConnection._on_submit_rejected,
    DifficultySuggested: MinerConnection._on_difficulty_floor,
    MinimumDifficultyRequested: MinerConnection._on_difficulty_floor,
    BadRequest: MinerConnection._on_bad_request,
    ConnectionClosed: MinerConnection._on_closed,
}
