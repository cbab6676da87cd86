"""The asyncio side of Stratum: one Protocol per miner feeding bytes to its sans-IO session.

Protocols rather than streams: a submit is answered inside ``data_received`` with no task
switch, which is what lets one process serve a large site. The share check runs in the
C core synchronously, so a received submit is always answered before the next read.
"""

from __future__ import annotations

import asyncio
import time
from time import perf_counter
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fleetd import log as logging
from fleetd.rigs.registry import UNAUTHENTICATED, Rig, RigRegistry
from fleetd.stratum.job import Job
from fleetd.shares.registry import JobRegistry
from fleetd.shares.validator import ShareResult, ShareValidator
from fleetd.shares.vardiff import Vardiff, VardiffConfig
from fleetd.sources.base import (
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
    DifficultySuggested,
    MinimumDifficultyRequested,
    SubmitReceived,
    SubmitRejected,
    Subscribed,
)
from fleetd.stratum.extranonce import ExtranonceAllocator
from fleetd.stratum.framing import CloseReason
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from fleetd.telemetry.histogram import Histogram

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
class UpstreamWorkerStats:
    """What the upstream pool made of one worker's forwarded shares (proxy mode only)."""

    forwarded: int = 0
    accepted: int = 0
    accepted_work: float = 0.0  # sum of the upstream difficulties credited
    rejected: Counter = field(default_factory=Counter)  # by reason, "lost" and "no_upstream" included
    last_accepted: float | None = None

    @property
    def pending(self) -> int:
        return self.forwarded - self.accepted - sum(self.rejected.values())


class StratumServer:
    """Listens for miners, sends them jobs, validates and answers their shares."""

    def __init__(
        self,
        settings: ServerSettings,
        source: JobSource,
        *,
        registry: JobRegistry | None = None,
        rigs: RigRegistry | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.source = source
        self.registry = registry or JobRegistry()
        self.validator = ShareValidator(self.registry)
        self.wall_clock = wall_clock
        # A forwarding (upstream) source owns the extranonce layout and may change it at run
        # time; every other source lives with the one the settings give.
        self.forwarding: ForwardingSource | None = source if isinstance(source, ForwardingSource) else None
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
        self.rigs = rigs if rigs is not None else RigRegistry()
        self.validation_seconds = Histogram()
        self.jobs_published = 0
        self.blocks_accepted = 0
        self.upstream_workers: dict[str, UpstreamWorkerStats] = {}
        self.log = logging.get("fleetd.stratum")
        self._server: asyncio.base_events.Server | None = None
        self._notify: bytes | None = None
        self._block_tasks: set[asyncio.Task] = set()
        self._idle_task: asyncio.Task | None = None
        self.blocks_submitted = 0
        self.work_withdrawn: str | None = None  # why there is no job to hand out, when so
        if self.forwarding is not None:
            self.forwarding.attach(self)

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
        self.jobs_published += 1
        self._notify = messages.notify(job)
        self.work_withdrawn = None
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
        self._notify = None
        self.log.error("work_withdrawn", reason=reason, miners=len(self.connections))
        for connection in list(self.connections):
            connection.close("no_work")

    # -- shares -------------------------------------------------------------------

    @property
    def workers(self) -> dict[str, Rig]:
        """Pool-side figures by worker name (the rigs this server has seen)."""
        return self.rigs.rigs

    def upstream_stats(self, worker: str) -> UpstreamWorkerStats:
        stats = self.upstream_workers.get(worker)
        if stats is None:
            stats = self.upstream_workers[worker] = UpstreamWorkerStats()
        return stats

    def forward_share(self, submit: SubmitReceived, result: ShareResult) -> None:
        """Offer an accepted share to the forwarding source; count the pool's answer per worker."""
        future = self.forwarding.submit_share(submit, result.hash)
        if future is None:
            return  # below the upstream difficulty: ours alone
        stats = self.upstream_stats(submit.worker)
        stats.forwarded += 1
        future.add_done_callback(lambda done: _count_upstream(stats, done, self.wall_clock))

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
        if outcome.accepted:
            self.blocks_accepted += 1
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
        self.peer_ip: str | None = None
        self.extranonce1 = b""
        self.working = False  # the rig logged in and was sent its difficulty and work
        self._shown_difficulty: float | None = None  # the difficulty the rig's figures show
        self._login_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        server = self.server
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer_ip = peer[0]
        self.peer = f"{peer[0]}:{peer[1]}"
        try:
            self.extranonce1 = server.extranonces.allocate()
        except Exception:  # every extranonce1 is in use: refuse this one, keep serving the rest
            server.log.error("extranonce_exhausted", peer=self.peer, connections=len(server.connections))
            transport.abort()
            return
        self.session = Session(server.session_config, self.extranonce1)
        if server.version_mask is not None:
            self.session.set_version_mask(server.version_mask)
        self.vardiff = Vardiff(server.settings.vardiff, self._loop.time())
        if server.difficulty_cap is not None:
            self.cap_difficulty(server.difficulty_cap)  # not at work yet: the first job carries it
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
        # Work goes out once the whole read is handled: a suggest_difficulty pipelined
        # with the login then sets the first job's difficulty.
        if not self.working and session.ready:
            self._start_work()
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
        if self.session is not None:
            now = server.wall_clock()
            for worker in self.session.authorized_workers:
                server.rigs.disconnected(worker, now)
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

    def _start_work(self) -> None:
        self.working = True
        self._set_difficulty(self.vardiff.difficulty)
        job, notify = self.server.current_job, self.server.current_notify
        if job is not None and notify is not None:  # None while work is withdrawn
            self.session.send_job(job, notify)

    def send_job(self, job: Job, notify: bytes) -> None:
        session = self.session
        if not self.working or session.closed:
            return
        session.send_job(job, notify)
        self.flush()

    def change_extranonce2_size(self, size: int) -> bool:
        """True when the rig was told with mining.set_extranonce; else it is asked to reconnect."""
        session = self.session
        if session is None or session.closed:
            return True
        if session.set_extranonce(self.extranonce1, size):
            self.flush()
            return True
        session.reconnect()
        self.flush()
        # Firmware that ignores client.reconnect would go on with the old size: end it after the grace.
        self._loop.call_later(self.server.settings.shutdown_grace, self.close, "extranonce_changed")
        return False

    def change_version_mask(self, mask: int) -> None:
        session = self.session
        if session is not None and not session.closed:
            session.set_version_mask(mask)
            self.flush()

    def cap_difficulty(self, cap: float | None) -> bool:
        """Apply the server's difficulty cap; True when the rig's difficulty came down to it."""
        if self.vardiff is None:
            return False
        self.session.set_ceiling(cap)
        lowered = self.vardiff.set_cap(cap)
        if lowered is None or not self.working or self.session.closed:
            return False  # a rig not at work yet gets the capped difficulty with its first job
        self._set_difficulty(lowered)
        self.flush()
        return True

    def idle_check(self, now: float) -> None:
        if self.working:
            self._set_difficulty(self.vardiff.on_idle(now))
            self.flush()  # a change goes out now, not with the rig's next read

    def flush(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None:
            return
        if session.difficulty_in_force != self._shown_difficulty:
            self._show_difficulty(session.difficulty_in_force)
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

    def _on_authorized(self, event: Authorized) -> None:
        self.log = self.log.bind(worker=event.worker)
        self.server.rigs.connected(event.worker, self.peer_ip, self.server.wall_clock()).difficulty = (
            self._shown_difficulty or 0.0
        )
        if self.session.ready and self._login_timer:
            self._login_timer.cancel()
            self._login_timer = None
        self.log.info("miner_authorized")

    def _on_authorization_refused(self, event: AuthorizationRefused) -> None:
        self.log.warning("authorization_refused", worker=event.worker)

    def _on_submit(self, submit: SubmitReceived) -> None:
        server = self.server
        now = server.wall_clock()
        started = perf_counter()
        result = server.validator.validate(submit, now)
        server.validation_seconds.observe(perf_counter() - started)
        session = self.session
        if result.is_block:
            server.found_block(submit, result, self.log)
            server.rigs.rig(submit.worker, now).blocks += 1
        if result.accepted:
            session.accept_submit(submit.request_id)
            credited = result.credited_difficulty
            server.rigs.share(submit.worker, credited, now)
            self._set_difficulty(self.vardiff.on_share(self._loop.time(), credited))
            if server.forwarding is not None:
                server.forward_share(submit, result)
        else:
            session.reject_submit(submit.request_id, result.reject)
            server.rigs.reject(submit.worker, result.reject.reason, now)
            self.log.debug("share_rejected", reason=result.reject.reason, job_id=submit.job_id)

    def _on_submit_rejected(self, event: SubmitRejected) -> None:
        # Count against a worker this connection proved, never a name it merely claimed:
        # claimed names would let any client grow the stats table without limit.
        session = self.session
        worker = event.worker if session.is_authorized(event.worker) else next(iter(session.authorized_workers), UNAUTHENTICATED)
        self.server.rigs.reject(worker, event.reject.reason, self.server.wall_clock())
        self.log.debug("share_rejected", reason=event.reject.reason, job_id=event.job_id)

    def _on_minimum_difficulty(self, event: MinimumDifficultyRequested) -> None:
        raised = self.vardiff.set_floor(event.floor, self._loop.time())
        if self.working:  # else the first job carries it
            self._set_difficulty(raised)

    def _on_difficulty_suggested(self, event: DifficultySuggested) -> None:
        # The session already put the suggestion in force; vardiff goes on from there.
        self.vardiff.suggest(event.difficulty, self._loop.time())
        difficulty = self.vardiff.difficulty
        if not self.working:
            return
        if self.session.difficulty != difficulty:
            # A vardiff step for a share earlier in the same read went out after the
            # session applied the suggestion; the suggestion came later, so it wins.
            self._set_difficulty(difficulty)
        else:
            self._difficulty_changed(difficulty)

    def _on_bad_request(self, event: BadRequest) -> None:
        level = self.log.debug if event.reject is Reject.UNSUPPORTED else self.log.info
        level("bad_request", method=event.method, reason=event.reject.reason, detail=event.detail)

    def _on_closed(self, event: ConnectionClosed) -> None:
        level = self.log.info if event.reason == CloseReason.CLOSED_BY_SERVER else self.log.warning
        level("miner_dropped", reason=event.reason, detail=event.detail)

    def _set_difficulty(self, difficulty: float | None) -> None:
        if difficulty is None:
            return
        self._difficulty_changed(self.session.set_difficulty(difficulty))

    def _difficulty_changed(self, difficulty: float) -> None:
        # The rig's figures follow once the job carrying it goes out (flush).
        self.log.debug("difficulty_changed", difficulty=difficulty)

    def _show_difficulty(self, difficulty: float | None) -> None:
        """The rig's difficulty is the one in force: that of the latest job sent to it."""
        self._shown_difficulty = difficulty
        for worker in self.session.authorized_workers:
            rig = self.server.rigs.get(worker)
            if rig is not None:
                rig.difficulty = difficulty or 0.0

    def _login_deadline(self) -> None:
        self._login_timer = None
        if self.session and not self.session.ready and not self.session.closed:
            self.session.close(CloseReason.LOGIN_TIMEOUT)
            self.flush()


def _count_upstream(stats: UpstreamWorkerStats, done: asyncio.Future, wall_clock: Callable[[], float]) -> None:
    outcome: ShareOutcome | None = None
    if not done.cancelled() and done.exception() is None:
        outcome = done.result()
    if outcome is not None and outcome.accepted:
        stats.accepted += 1
        stats.accepted_work += outcome.difficulty
        stats.last_accepted = wall_clock()
    else:
        stats.rejected["lost" if outcome is None else outcome.reason] += 1


_HANDLERS: dict[type, Callable] = {
    Subscribed: MinerConnection._on_subscribed,
    Authorized: MinerConnection._on_authorized,
    AuthorizationRefused: MinerConnection._on_authorization_refused,
    SubmitReceived: MinerConnection._on_submit,
    SubmitRejected: MinerConnection._on_submit_rejected,
    DifficultySuggested: MinerConnection._on_difficulty_suggested,
    MinimumDifficultyRequested: MinerConnection._on_minimum_difficulty,
    BadRequest: MinerConnection._on_bad_request,
    ConnectionClosed: MinerConnection._on_closed,
}
