"""The pool core: a submit and the time in; a decision and the messages to send out.

``Pool`` is shared by every connection: the one job store, the rigs' pool-side figures and
the counts of what was decided. ``PoolConnection`` is the pool's side of one miner: its
Stratum session and its vardiff. The transport feeds it received bytes with the time
(``receive_data``), gets back what to carry out, and writes ``data_to_send()``:

- the session's events worth a log line (``Authorized``, ``BadRequest``, ``ConnectionClosed``...);
- ``BlockFound``: a share that meets the network target, for the job source;
- ``ShareForwarded``: a share for the upstream pool (proxy mode), a block among them.

It reads no clock and touches no socket, so tests drive it with bytes and numbers alone.
For each submit that passed the session's checks it decides, cheapest test first:

1. job stale or unknown (21), from the job store;
2. ntime from the job's ntime up to ``wall + NTIME_MAX_FUTURE`` (20 ntime_out_of_range);
3. duplicate of an accepted share of the same job (22);
4. proof of work in the native core against the job's difficulty on this connection, or
   the lower fallback the session allows (23 low_difficulty below both);
5. whether it also meets the network target: a block, accepted even below the share target.

Only accepted shares are remembered for duplicates: a rejected one costs the miner nothing
to send again, and must not grow the set. An accepted share is credited at the job's
difficulty when it meets that, else at the fallback it met.

A name alone earns no rig record: one is made for a worker at its first accepted share, or
at login when the auth policy ``proves_identity`` (allowlist, password; not ``open``, where
any client may claim any number of names). Rejects of a worker without a record go to
``Pool.unattributed_rejects`` by reason, so they are counted without growing the rig table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from time import perf_counter
from typing import NamedTuple

from fleetd.chain.target import difficulty_to_target
from fleetd.rigs.registry import UNAUTHENTICATED, RigRegistry
from fleetd.shares.jobs import JobStore, share_key
from fleetd.shares.vardiff import Vardiff, VardiffConfig
from fleetd.stratum.events import (
    Authorized,
    DifficultySuggested,
    MinimumDifficultyRequested,
    SubmitReceived,
    SubmitRejected,
)
from fleetd.stratum.job import Job
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from fleetd.shares.histogram import Histogram

NTIME_MAX_FUTURE = 7200  # seconds; Bitcoin's limit on block timestamps ahead of network time
_TARGET_CACHE_LIMIT = 4096  # distinct difficulties; vardiff produces few per connection
_NO_EFFECTS: tuple = ()


class BlockFound(NamedTuple):
    """A share that meets the network target: the job source makes it a block."""

    job: Job
    share: SubmitReceived
    hash: bytes  # the header hash the C core computed, internal byte order


class ShareForwarded(NamedTuple):
    """An accepted share for the upstream pool; when ``is_block``, the pool's answer is the block's."""

    job: Job
    share: SubmitReceived
    hash: bytes
    is_block: bool


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


class Pool:
    """What every connection shares: the job store, the rigs, the counts. One per server."""

    def __init__(
        self,
        jobs: JobStore,
        rigs: RigRegistry,
        vardiff: VardiffConfig,
        *,
        forwarding: bool = False,
        max_future: int = NTIME_MAX_FUTURE,
    ) -> None:
        self.jobs = jobs
        self.rigs = rigs
        self.vardiff = vardiff
        self.forwarding = forwarding  # accepted shares go upstream; blocks go as shares
        self.max_future = max_future
        self.validation_seconds = Histogram()
        self.jobs_published = 0
        self.upstream_workers: dict[str, UpstreamWorkerStats] = {}
        # Rejects of workers without a rig record (names never proven by a policy or a share), by reason.
        self.unattributed_rejects: Counter = Counter()
        self._targets: dict[float, bytes] = {}

    def publish(self, job: Job, wall: float) -> list[str]:
        """A new job into the store; returns the ids it retired (connections forget them)."""
        retired = self.jobs.add(job, wall)
        self.jobs_published += 1
        return retired

    def connection(self, session_config: SessionConfig, extranonce1: bytes, peer_ip: str | None,
                   monotonic: float) -> PoolConnection:  # fmt: skip
        return PoolConnection(self, Session(session_config, extranonce1), peer_ip, monotonic)

    def reject(self, worker: str, reason: str, wall: float) -> None:
        """A reject counted on the worker's rig if it has a record, else among the unattributed."""
        rigs = self.rigs
        if rigs.get(worker) is None:
            self.unattributed_rejects[reason] += 1
        else:
            rigs.reject(worker, reason, wall)

    def upstream_answer(self, worker: str, accepted: bool, reason: str, difficulty: float, wall: float) -> None:
        """The upstream pool's answer to one forwarded share (``reason`` "lost" when none came)."""
        stats = self.upstream_stats(worker)
        if accepted:
            stats.accepted += 1
            stats.accepted_work += difficulty
            stats.last_accepted = wall
        else:
            stats.rejected[reason] += 1

    def upstream_stats(self, worker: str) -> UpstreamWorkerStats:
        stats = self.upstream_workers.get(worker)
        if stats is None:
            stats = self.upstream_workers[worker] = UpstreamWorkerStats()
        return stats

    def target(self, difficulty: float) -> bytes:
        """The share target for ``difficulty`` as the C core takes it (32 bytes, little-endian)."""
        # difficulty_to_target is exact (Fraction) and slow; difficulties repeat, so cache the encoding.
        try:
            return self._targets[difficulty]
        except KeyError:
            if len(self._targets) >= _TARGET_CACHE_LIMIT:
                self._targets.clear()
            encoded = self._targets[difficulty] = difficulty_to_target(difficulty).to_bytes(32, "little")
            return encoded


class PoolConnection:
    """The pool's side of one miner connection: its session and vardiff, judged by the ``Pool``."""

    __slots__ = ("pool", "session", "vardiff", "peer_ip", "working", "_shown", "_proves", "_counted")

    def __init__(self, pool: Pool, session: Session, peer_ip: str | None, monotonic: float) -> None:
        self.pool = pool
        self.session = session
        self.vardiff = Vardiff(pool.vardiff, monotonic)
        self.peer_ip = peer_ip
        self.working = False  # logged in and sent its difficulty and work
        self._shown: float | None = None  # the difficulty the rig's figures show
        self._proves = getattr(session.config.authorizer, "proves_identity", True)
        # Workers whose rig record counts this connection: disconnect counts down exactly these.
        self._counted: set[str] = set()

    # -- input --------------------------------------------------------------------------------

    def receive_data(self, data: bytes, wall: float, monotonic: float, current: tuple | None = None) -> list:
        """Handle received bytes at this time; returns what the transport carries out or logs.

        ``current`` is (job, encoded notify) of the latest job, sent once the miner is logged
        in; None while there is no work.
        """
        session = self.session
        effects = None
        for event in session.receive_data(data):
            if type(event) is SubmitReceived:
                started = perf_counter()
                effect = self._submit(event, wall, monotonic)
                self.pool.validation_seconds.observe(perf_counter() - started)
                if effect is None:
                    continue
                event = effect
            else:
                self._on_event(event, wall, monotonic)
            if effects is None:
                effects = [event]
            else:
                effects.append(event)
        # Work goes out once the whole read is handled: a suggest_difficulty pipelined
        # with the login then sets the first job's difficulty.
        if not self.working and session.ready:
            self._start_work(current)
        return effects or _NO_EFFECTS

    def _submit(self, share: SubmitReceived, wall: float, monotonic: float):
        pool = self.pool
        job = share.job
        entry = pool.jobs.get(share.job_id) if job is not None else None
        if entry is None:  # not sent on this connection, or retired since: the store says which
            reject = pool.jobs.lookup(share.job_id)
            return self._reject(share, reject if type(reject) is Reject else Reject.UNKNOWN_JOB, wall)
        ntime = share.ntime
        if not job.ntime <= ntime <= wall + pool.max_future:
            return self._reject(share, Reject.NTIME_OUT_OF_RANGE, wall)
        extranonce = share.extranonce1 + share.extranonce2
        key = share_key(extranonce, ntime, share.nonce, share.version)
        seen = entry.seen
        if key in seen:
            return self._reject(share, Reject.DUPLICATE, wall)
        difficulty = share.difficulty
        fallback = share.fallback_difficulty
        digest, meets_target, meets_network = entry.prepared(len(extranonce)).check(
            extranonce, share.version, ntime, share.nonce, pool.target(difficulty if fallback is None else fallback)
        )
        if not (meets_target or meets_network):
            return self._reject(share, Reject.LOW_DIFFICULTY, wall)
        seen.add(key)
        # Checked against the fallback's easier target: credit the job's difficulty only if met.
        if fallback is not None and meets_target and digest[::-1] > pool.target(difficulty)[::-1]:
            difficulty = fallback
        session = self.session
        session.accept_submit(share.request_id)
        if share.worker not in self._counted:  # its first accepted share here: the rig is real
            self._count(share.worker, wall)
        pool.rigs.share(share.worker, difficulty, wall)
        changed = self.vardiff.on_share(monotonic, difficulty)
        if changed is not None:
            session.set_difficulty(changed)
        if meets_network:
            pool.rigs.rig(share.worker, wall).blocks += 1
        if pool.forwarding:
            return ShareForwarded(job, share, digest, meets_network)
        return BlockFound(job, share, digest) if meets_network else None

    def _reject(self, share: SubmitReceived, reject: Reject, wall: float) -> None:
        self.session.reject_submit(share.request_id, reject)
        self.pool.reject(share.worker, reject.reason, wall)

    def _count(self, worker: str, wall: float) -> None:
        """This connection joins the worker's rig record, made now if it has none."""
        self._counted.add(worker)
        rig = self.pool.rigs.connected(worker, self.peer_ip, wall)
        rig.difficulty = self._shown or 0.0

    def _on_event(self, event, wall: float, monotonic: float) -> None:
        kind = type(event)
        session = self.session
        if kind is SubmitRejected:
            # Count against a worker this connection proved, never a name it merely claimed:
            # claimed names would let any client grow the stats table without limit.
            worker = event.worker if session.is_authorized(event.worker) else next(
                iter(session.authorized_workers), UNAUTHENTICATED
            )
            self.pool.reject(worker, event.reject.reason, wall)
        elif kind is Authorized:
            # A name passed by ``open`` proves nothing: its record waits for an accepted share,
            # unless it already has one (a rig reconnecting shows as connected at login).
            worker = event.worker
            if self._proves or self.pool.rigs.get(worker) is not None:
                self._count(worker, wall)
        elif kind is DifficultySuggested:
            # The session already put the suggestion in force; vardiff goes on from there.
            self.vardiff.suggest(event.difficulty, monotonic)
            if self.working and session.difficulty != self.vardiff.difficulty:
                # A vardiff step for a share earlier in the same read went out after the
                # session applied the suggestion; the suggestion came later, so it wins.
                session.set_difficulty(self.vardiff.difficulty)
        elif kind is MinimumDifficultyRequested:
            raised = self.vardiff.set_floor(event.floor, monotonic)
            if raised is not None and self.working:  # else the first job carries it
                session.set_difficulty(raised)

    # -- driven by the transport ------------------------------------------------------------------

    def _start_work(self, current: tuple | None) -> None:
        self.working = True
        self.session.set_difficulty(self.vardiff.difficulty)
        if current is not None:
            self.session.send_job(*current)

    def send_job(self, job: Job, notify: bytes, retired: list[str]) -> None:
        """A new job for this miner; ``retired`` are the ids the job store let go with it."""
        session = self.session
        if retired:
            session.forget(retired)
        if self.working and not session.closed:
            session.send_job(job, notify)

    def idle(self, monotonic: float) -> None:
        """Now and then: vardiff retargets a miner whose shares dried up."""
        if self.working:
            changed = self.vardiff.on_idle(monotonic)
            if changed is not None:
                self.session.set_difficulty(changed)

    def cap_difficulty(self, cap: float | None) -> bool:
        """The server's difficulty cap; True when this miner's difficulty came down to it."""
        session = self.session
        session.set_ceiling(cap)
        lowered = self.vardiff.set_cap(cap)
        if lowered is None or not self.working or session.closed:
            return False  # a miner not at work yet gets the capped difficulty with its first job
        session.set_difficulty(lowered)
        return True

    def disconnected(self, wall: float) -> None:
        rigs = self.pool.rigs
        for worker in self._counted:
            rigs.disconnected(worker, wall)
        self._counted.clear()

    def data_to_send(self) -> bytes:
        """The bytes for the miner; the rig's figures follow the difficulty now in force."""
        session = self.session
        in_force = session.difficulty_in_force
        if in_force != self._shown:
            self._shown = in_force
            rigs = self.pool.rigs
            for worker in self._counted:
                rig = rigs.get(worker)
                if rig is not None:
                    rig.difficulty = in_force or 0.0
        return session.data_to_send()
