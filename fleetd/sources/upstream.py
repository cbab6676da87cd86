"""The upstream pool source: fleetd as a site's proxy to someone else's Stratum v1 pool.

Many rigs share one upstream session. The upstream extranonce2 space is split: each rig
gets a small extranonce1 (a per-rig prefix, unique among live rigs) and a shorter
extranonce2; the upstream extranonce1 is folded into the coinb1 the rigs receive, so a
failover that changes it needs nothing from the rigs. A share forwarded upstream carries
extranonce2 = [padding ‖] rig prefix ‖ rig extranonce2.

Rigs keep their own vardiff, capped at the active pool's difficulty (a rig above it would
skip shares the pool credits), and every share is validated locally by the server and
offered to ``submit_share``. Those that also meet the upstream difficulty go upstream, and
so does a block whatever that difficulty, under the upstream job id the rig job carries
in its ``block_data``. The pool's answer comes back per share; for a block it is the
block's outcome.

Pools are tried in priority order. The active one is left when it drops, refuses us,
rejects every share, or sends no job for ``stall_seconds``; while a lower-priority pool
is active the better ones are probed every ``failback_seconds`` (a probe is a full login
that got a job; it then simply becomes the active session). The rigs stay connected
through every move: the first job of the new session is published with clean_jobs.

    source = build_source(UpstreamConfig(pools=("stratum+tcp://pool.example:3333",), user="acct"))
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import ssl
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

from fleetd import __version__
from fleetd import log as logging
from fleetd import redact
from fleetd.chain.byteorder import U32_MAX
from fleetd.chain.coinbase import coinb1_height
from fleetd.chain.network import EpochBlockTimes, NetworkState
from fleetd.chain.target import bits_to_difficulty, bits_to_target, difficulty_to_target
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.stratum.job import Job
from fleetd.stratum.client import (
    AuthorizeAnswered,
    ClientConfig,
    ClientSession,
    DifficultyChanged,
    ExtranonceChanged,
    JobNotified,
    MessageShown,
    PoolClosed,
    PoolSubscribed,
    ReconnectRequested,
    SubmitAnswered,
    VersionMaskChanged,
    VersionRollingAnswered,
)

from fleetd.stratum.events import SubmitReceived

from .base import ExtranonceLayout, Publish, ServerControl, ShareOutcome, SourceHealth

DEFAULT_USER_AGENT = f"fleetd/{__version__}"
PREFIX_SIZES = range(1, 5)  # 1 byte: 256 live rigs; 4 bytes leaves little of a 4-byte upstream extranonce2
MIN_RIG_EXTRANONCE2 = 2  # below this a rig has 256 coinbases per job (ExtranonceLayout's floor)
RIG_EXTRANONCE2_MAX = 8  # plenty for any rig, and 8 keeps ckpool's proxy mode working behind us
AUTH_QUEUE_LIMIT = 256  # shares held per worker while its pass-through authorize is in flight
WRITE_BUFFER_LIMIT = 1 << 20  # a pool not reading 1 MiB of our submits is as good as gone
_URL = re.compile(r"stratum\+(tcp|ssl)://(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):(\d{1,5})/?")


class UpstreamError(Exception):
    """A pool could not be used: unreachable, refused us, or offered an unusable session."""


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolUrl:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str, key: str = "pools") -> PoolUrl:
        match = _URL.fullmatch(url.strip()) if isinstance(url, str) else None
        port = int(match.group(3)) if match else 0
        if match is None or not 0 < port <= 65535:
            shown = redact.url(url) if isinstance(url, str) else url  # a URL's password is never printed
            hint = "; credentials go in user and password, not the URL" if isinstance(url, str) and "@" in url else ""
            raise ValueError(
                f"upstream {key} = {shown!r}: expected stratum+tcp://host:port or stratum+ssl://host:port{hint}"
            )
        return cls(match.group(2).strip("[]"), port, match.group(1) == "ssl")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"stratum+{'ssl' if self.tls else 'tcp'}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The ``upstream`` part of fleetd's configuration; validates itself (ValueError names the key)."""

    pools: tuple[str, ...]  # stratum+tcp://host:port or stratum+ssl://host:port, in priority order
    user: str  # the upstream account (and, with passthrough, the prefix of every worker name)
    password: str = "x"
    passthrough: bool = False  # upstream worker = user + "." + the rig's worker name
    prefix_size: int = 2  # bytes of per-rig extranonce1 carved out of the upstream extranonce2
    failover_seconds: float = 5.0  # connect + subscribe + authorize + first job, per pool attempt
    stall_seconds: float = 120.0  # no job from the active pool for this long: fail over
    failback_seconds: float = 30.0  # how often better pools are probed while a backup is active
    max_job_age_seconds: float = 120.0  # all pools down: rigs keep the last job this long, then it is withdrawn
    version_rolling: bool = True  # negotiate version rolling upstream and pass the mask down
    version_mask: int = 0x1FFFE000  # the mask asked for upstream (BIP320 general-purpose bits)
    max_consecutive_rejects: int = 50  # a pool rejecting this many shares in a row is left (0: never)
    reject_holdoff_seconds: float = 300.0  # ...and not probed again for this long
    tls_verify: bool = True  # stratum+ssl: verify the pool's certificate and host name
    tls_ca_file: str | None = None  # stratum+ssl: trust this CA bundle instead of the system's
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        pools = self.pools
        if isinstance(pools, str) or not isinstance(pools, (list, tuple)) or not pools:
            raise ValueError(
                f"upstream pools = {pools!r}: expected a non-empty list of stratum+tcp:// or stratum+ssl:// URLs"
            )
        object.__setattr__(self, "pools", tuple(pools))
        for i, url in enumerate(self.pools):
            PoolUrl.parse(url, f"pools[{i}]")
        for key in ("user", "password", "user_agent"):
            value = getattr(self, key)
            if not isinstance(value, str) or (key != "password" and not value.strip()):
                raise ValueError(f"upstream {key} = {redact.shown(key, value)}: expected a non-empty string")
        for key in ("passthrough", "version_rolling", "tls_verify"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"upstream {key} = {getattr(self, key)!r}: expected true or false")
        if not _is_int(self.prefix_size) or self.prefix_size not in PREFIX_SIZES:
            raise ValueError(
                f"upstream prefix_size = {self.prefix_size!r}: expected 1 to 4 bytes (2 serves 65,536 rigs)"
            )
        for key in ("failover_seconds", "stall_seconds", "failback_seconds", "max_job_age_seconds",
                    "reject_holdoff_seconds"):  # fmt: skip
            value = getattr(self, key)
            if not _is_number(value) or not 0 < value <= 86400:
                raise ValueError(f"upstream {key} = {value!r}: expected seconds, more than 0 and at most 86400")
        if not _is_int(self.version_mask) or not 0 < self.version_mask <= U32_MAX:
            raise ValueError(f"upstream version_mask = {self.version_mask!r}: expected a non-zero 32-bit mask")
        if not _is_int(self.max_consecutive_rejects) or self.max_consecutive_rejects < 0:
            raise ValueError(f"upstream max_consecutive_rejects = {self.max_consecutive_rejects!r}: expected 0 or more")
        if self.tls_ca_file is not None and (not isinstance(self.tls_ca_file, str) or not self.tls_ca_file):
            raise ValueError(f"upstream tls_ca_file = {self.tls_ca_file!r}: expected a file path")

    @property
    def urls(self) -> tuple[PoolUrl, ...]:
        return tuple(PoolUrl.parse(url) for url in self.pools)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> UpstreamConfig:
        """From a TOML table; an unknown key is a ValueError naming it."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(f"upstream {key}: unknown key (known: {', '.join(sorted(known))})")
        for key in ("pools", "user"):
            if key not in values:
                raise ValueError(f"upstream {key}: required")
        kwargs = dict(values)
        if "version_mask" in kwargs and isinstance(kwargs["version_mask"], str):
            try:
                kwargs["version_mask"] = int(kwargs["version_mask"], 16)
            except ValueError:
                raise ValueError(f"upstream version_mask = {values['version_mask']!r}: expected 8 hex digits") from None
        return cls(**kwargs)


def build_source(config: UpstreamConfig, **options) -> UpstreamSource:
    """The factory the app calls for ``[source] kind = "upstream"``."""
    return UpstreamSource(config, **options)


# --- state ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class PoolState:
    """One configured pool, as fleetd has fared with it (``UpstreamSource.pools``, in priority order)."""

    url: PoolUrl
    connects: int = 0  # sessions that became active
    failures: int = 0  # attempts that did not give a usable session
    last_error: str | None = None
    held_until: float = 0.0  # monotonic time; not tried before it (stalled, rejecting, asked to wait)


@dataclass(frozen=True, slots=True)
class _JobRef:
    """Where a rig job came from: enough to forward its shares upstream (the job's ``block_data``)."""

    link: _Link
    upstream_job_id: str
    difficulty: float  # upstream difficulty when the job came
    version: int
    network_target: int  # a share meeting it is a block candidate
    padding: int  # zero bytes before the rig prefix in the upstream extranonce2
    extranonce2_size: int  # the upstream extranonce2 size for this job


@dataclass(frozen=True, slots=True)
class _ChainView:
    """What the latest published job says of the network (None: unreadable)."""

    difficulty: float | None  # from the job's nbits
    height: int | None  # the block being mined, from the BIP34 push in coinb1


# --- one upstream connection -----------------------------------------------------------------------


class _Link(asyncio.Protocol):
    """One connection to one pool: the sans-IO client session plus its transport."""

    def __init__(self, source: UpstreamSource, index: int, url: PoolUrl) -> None:
        self.source = source
        self.index = index
        self.url = url
        config = source.config
        self.session = ClientSession(
            ClientConfig(
                user_agent=config.user_agent,
                version_mask=config.version_mask if config.version_rolling else None,
            )
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[str] = loop.create_future()
        self.authorized: set[str] = set()
        self.refused: set[str] = set()
        self.authorizing: dict[str, list[tuple]] = {}  # worker -> queued submit arguments
        self.pending: dict[int, tuple[asyncio.Future, float]] = {}  # request id -> (outcome, difficulty)
        self.latest: tuple[Job, float] | None = None  # the newest upstream job and its difficulty
        self.last_job_at = source.clock.monotonic()
        self.reject_streak = 0
        self.retiring = False
        self.end_reason: str | None = None
        self._flush_scheduled = False
        self.log = source.log.bind(pool=str(url))
        self.ready.add_done_callback(_consume)  # read even when nobody awaits it any more
        self.ended.add_done_callback(_consume)

    # -- asyncio callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        config = self.source.config
        self.session.login(config.user, config.password)
        self.flush()

    def data_received(self, data: bytes) -> None:
        for event in self.session.receive_data(data):
            handler = _LINK_HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
            if self.end_reason is not None:
                return
        self.flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "closed by the pool")

    # -- actions --------------------------------------------------------------------------------

    def flush(self) -> None:
        self._flush_scheduled = False
        transport = self.transport
        data = self.session.data_to_send()
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                self.close("the pool is not reading what we send")

    def flush_soon(self) -> None:
        # Submits from one batch of rig data leave in one write.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def close(self, reason: str) -> None:
        self.session.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._finish(reason)

    def retire(self, reason: str, grace: float) -> None:
        """No new work goes here; answers still in flight may arrive for ``grace`` seconds."""
        self.retiring = True
        if not self.pending:
            self.close(reason)
        else:
            self.loop.call_later(grace, self.close, reason)

    def submit(self, worker: str, ref: _JobRef, extranonce2: bytes, ntime: int, nonce: int,
               bits: int | None, future: asyncio.Future, difficulty: float) -> None:  # fmt: skip
        source = self.source
        if source.config.passthrough and worker not in self.authorized:
            if worker in self.refused:
                future.set_result(ShareOutcome(False, "unauthorized", difficulty))
                return
            queue = self.authorizing.get(worker)
            if queue is None:
                queue = self.authorizing[worker] = []
                self.session.authorize(worker, source.config.password)  # lazily: at the worker's first share
                self.flush_soon()
            if len(queue) >= AUTH_QUEUE_LIMIT:
                future.set_result(ShareOutcome(False, "lost", difficulty))
                return
            queue.append((worker, ref, extranonce2, ntime, nonce, bits, future, difficulty))
            return
        request_id = self.session.submit(worker, ref.upstream_job_id, extranonce2, ntime, nonce, bits)
        self.pending[request_id] = (future, difficulty)
        self.flush_soon()

    # -- what the pool sends --------------------------------------------------------------------------

    def _on_subscribed(self, event: PoolSubscribed) -> None:
        problem = self.source.layout_problem(event.extranonce2_size)
        if problem:
            self.close(problem)

    def _on_authorize(self, event: AuthorizeAnswered) -> None:
        config = self.source.config
        if event.worker == config.user and not self.ready.done():
            if not event.accepted:
                self.close(f"authorization refused for {event.worker!r}: {event.detail}")
                return
            self.authorized.add(event.worker)
            self._check_ready()
            if event.worker not in self.authorizing:
                return
        queued = self.authorizing.pop(event.worker, [])
        if event.accepted:
            self.authorized.add(event.worker)
        else:
            self.refused.add(event.worker)
            self.log.warning("upstream_worker_refused", worker=event.worker, detail=event.detail)
        for args in queued:
            future = args[6]
            if not future.done():
                self.submit(*args)

    def _on_job(self, event: JobNotified) -> None:
        self.latest = (event.job, self.session.difficulty)
        self.last_job_at = self.source.clock.monotonic()
        if self.source.active is self:
            self.source.publish_job(self, event.job, self.session.difficulty, event.job.clean_jobs)
        else:
            self._check_ready()

    def _check_ready(self) -> None:
        if self.latest is not None and self.source.config.user in self.authorized and not self.ready.done():
            self.ready.set_result(None)

    def _on_difficulty(self, event: DifficultyChanged) -> None:
        self.log.debug("upstream_difficulty", difficulty=event.difficulty)
        if self.source.active is self:
            self.source.apply_difficulty(self)

    def _on_extranonce(self, event: ExtranonceChanged) -> None:
        problem = self.source.layout_problem(event.extranonce2_size)
        if problem:
            self.close(problem)
        elif self.source.active is self:
            self.source.extranonce_changed(self)

    def _on_version_rolling(self, event: VersionRollingAnswered) -> None:
        self.log.info("upstream_version_rolling", mask=None if event.mask is None else f"{event.mask:08x}")

    def _on_version_mask(self, event: VersionMaskChanged) -> None:
        if self.source.active is self:
            self.source.version_mask_changed(self)

    def _on_reconnect(self, event: ReconnectRequested) -> None:
        self.source.reconnect_requested(self, event)

    def _on_message(self, event: MessageShown) -> None:
        self.source.last_message = event.text
        self.log.info("upstream_message", text=event.text)

    def _on_submit_answer(self, event: SubmitAnswered) -> None:
        entry = self.pending.pop(event.request_id, None)
        if entry is None:
            return
        future, difficulty = entry
        if not future.done():
            future.set_result(ShareOutcome(event.accepted, event.reason, difficulty))
        self.source.count_answer(self, event)
        if self.retiring and not self.pending:
            self.close("retired")

    def _on_closed(self, event: PoolClosed) -> None:
        # A pool that speaks garbage is not retried first: it waits like a stalled one.
        self.source.hold_off(self.index, self.source.config.failback_seconds, event.reason)
        self.close(f"{event.reason}: {event.detail}" if event.detail else event.reason)

    # -- ending -----------------------------------------------------------------------------------

    def _finish(self, reason: str) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        if not self.ready.done():
            self.ready.set_exception(UpstreamError(reason))
        if not self.ended.done():
            self.ended.set_result(reason)
        lost = [future for future, _ in self.pending.values()]
        lost += [args[6] for queue in self.authorizing.values() for args in queue]
        self.pending.clear()
        self.authorizing.clear()
        for future in lost:
            if not future.done():
                future.set_result(ShareOutcome(False, "lost", 0.0))
        self.source.link_ended(self, len(lost))


_LINK_HANDLERS: dict[type, Callable] = {
    PoolSubscribed: _Link._on_subscribed,
    AuthorizeAnswered: _Link._on_authorize,
    JobNotified: _Link._on_job,
    DifficultyChanged: _Link._on_difficulty,
    ExtranonceChanged: _Link._on_extranonce,
    VersionRollingAnswered: _Link._on_version_rolling,
    VersionMaskChanged: _Link._on_version_mask,
    ReconnectRequested: _Link._on_reconnect,
    MessageShown: _Link._on_message,
    SubmitAnswered: _Link._on_submit_answer,
    PoolClosed: _Link._on_closed,
}


# --- the source ------------------------------------------------------------------------------------


class UpstreamSource:
    """Implements ``JobSource`` and ``ForwardingSource`` over a prioritized list of pools."""

    kind = "upstream"

    def __init__(self, config: UpstreamConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.log = logging.get("fleetd.upstream")
        self.clock = clock
        self.pools = [PoolState(url) for url in config.urls]
        prefix = config.prefix_size
        # Until a pool says otherwise, assume the common 8-byte upstream extranonce2.
        self._layout = ExtranonceLayout(prefix, max(MIN_RIG_EXTRANONCE2, min(RIG_EXTRANONCE2_MAX, 8 - prefix)))
        self._mask: int | None = None
        self._mask_sent = False  # the rigs' mask follows the upstream's once the first session is up
        self._control: ServerControl | None = None
        self._publish: Publish | None = None
        self.active: _Link | None = None
        self._last_index: int | None = None
        self._links: set[_Link] = set()
        self._redirects: dict[int, PoolUrl] = {}
        self._job_counter = secrets.randbits(32)  # ids from a restarted daemon do not collide with old ones
        self._targets: dict[float, int] = {}
        self._tls: ssl.SSLContext | None = None
        self._expiry: asyncio.Task | None = None  # withdraws the last job once it is too old
        self._last_job_time: float | None = None  # wall time, for health
        self._last_job_at: float | None = None  # monotonic time
        self._withdrawn = False
        self._chain_view: _ChainView | None = None  # None before the first job
        self._tip: tuple[_Link, bytes] | None = None  # the session and prevhash of the latest job
        self._epoch = EpochBlockTimes()  # arrival times of new-prevhash jobs, by tip height
        self._unreadable_pools: set[str] = set()  # warned about: their jobs do not say the network
        self.failovers = 0
        self.forwarded = self.accepted = 0
        self.accepted_work = 0.0
        self.rejected: Counter = Counter()
        self.last_message: str | None = None

    # -- JobSource ---------------------------------------------------------------------------------

    async def run(self, publish: Publish) -> None:
        if self._publish is not None:
            raise RuntimeError("UpstreamSource.run is already running; a source feeds one server")
        self._publish = publish
        try:
            while True:
                link = await self._connect_any()
                await self._serve(link)
        finally:
            self._publish = None
            self.active = None
            if self._expiry is not None:
                self._expiry.cancel()
                self._expiry = None
            for link in list(self._links):
                link.close("source stopped")

    def health(self) -> SourceHealth:
        link = self.active
        if link is not None:
            detail = (
                f"pool {link.index + 1}/{len(self.pools)} {link.url} active; {self.failovers} failovers; "
                f"shares forwarded {self.forwarded}, accepted {self.accepted}, rejected {sum(self.rejected.values())}"
            )
            return SourceHealth(self.kind, True, self._last_job_time, detail)
        errors = "; ".join(f"{p.url}: {p.last_error or 'not tried yet'}" for p in self.pools)
        state = "work withdrawn" if self._withdrawn else "rigs keep the last job"
        return SourceHealth(self.kind, False, self._last_job_time, f"no upstream pool ({state}); {errors}")

    # -- NetworkReporting -------------------------------------------------------------------------

    def network_state(self) -> NetworkState | None:
        """Difficulty from the pool's nbits, height from its coinbase, block times as fleetd saw them.

        Fees are None: a pool's coinb2 pays what the pool decides, not what the block earns.
        """
        view = self._chain_view
        if view is None or view.difficulty is None or view.height is None:
            return None
        epoch = self._epoch
        times = epoch.times() if epoch.tip_height == view.height - 1 else ()
        return NetworkState(view.difficulty, view.height, None, times, "observed")

    # -- ForwardingSource ---------------------------------------------------------------------------

    def extranonce_layout(self) -> ExtranonceLayout:
        return self._layout

    def attach(self, control: ServerControl) -> None:
        self._control = control

    def submit_share(self, job: Job, share: SubmitReceived, hash: bytes) -> asyncio.Future[ShareOutcome] | None:
        ref = job.block_data
        if not isinstance(ref, _JobRef):
            return None
        link = ref.link
        # A pool may apply a new difficulty at once or from its next job: forward only what
        # meets both, so no share is sent that either reading would call low.
        difficulty = ref.difficulty
        if link.session.difficulty > difficulty:
            difficulty = link.session.difficulty
        value = int.from_bytes(hash, "little")  # hash_to_int, inlined: this runs for every accepted share
        target = self._targets.get(difficulty)
        if value > (target if target is not None else self._target(difficulty)) and value > ref.network_target:
            return None  # a block goes whatever the pool's difficulty: the pool builds and relays it
        future = asyncio.get_running_loop().create_future()
        self.forwarded += 1
        future.add_done_callback(self._count_outcome)
        if link is not self.active or link.end_reason is not None or link.retiring:
            future.set_result(ShareOutcome(False, "no_upstream", 0.0))
            return future
        extranonce2 = bytes(ref.padding) + share.extranonce1 + share.extranonce2
        if len(extranonce2) != ref.extranonce2_size:  # a rig still on an extranonce2 size of before
            future.set_result(ShareOutcome(False, "bad_extranonce2_size", 0.0))
            return future
        bits = None
        if share.version != ref.version:
            mask = link.session.version_mask
            if mask is None or (share.version ^ ref.version) & ~mask & U32_MAX:
                future.set_result(ShareOutcome(False, "version_bits_outside_mask", 0.0))
                return future
            bits = share.version & mask
        link.submit(self.upstream_worker(share.worker), ref, extranonce2, share.ntime, share.nonce, bits,
                    future, difficulty)  # fmt: skip
        return future

    # -- naming ---------------------------------------------------------------------------------------

    def upstream_worker(self, worker: str) -> str:
        """The name a rig's shares go upstream under."""
        config = self.config
        if not config.passthrough:
            return config.user
        rig = worker.partition(".")[2] or worker  # "acct.rig7" -> "rig7"
        return f"{config.user}.{rig}"

    # -- callbacks from links -----------------------------------------------------------------------------

    def layout_problem(self, upstream_extranonce2_size: int) -> str | None:
        prefix = self.config.prefix_size
        if upstream_extranonce2_size < prefix + MIN_RIG_EXTRANONCE2:
            return (
                f"extranonce2 too small: the pool offers {upstream_extranonce2_size} bytes, the rigs need "
                f"prefix_size {prefix} + at least {MIN_RIG_EXTRANONCE2}; lower prefix_size or use another pool"
            )
        return None

    def publish_job(self, link: _Link, job: Job, difficulty: float, clean: bool) -> None:
        """Turn an upstream job into a rig job (upstream extranonce1 folded into coinb1) and publish it."""
        session = link.session
        padding = session.extranonce2_size - self.config.prefix_size - self._layout.extranonce2_size
        self._job_counter = (self._job_counter + 1) & 0xFFFFFFFF
        job_id = f"{self._job_counter:08x}"
        height = self._observe_chain(link, job)
        ref = _JobRef(link, job.job_id, difficulty, job.version, _network_target(job.nbits), padding,
                      session.extranonce2_size)  # fmt: skip
        rig_job = replace(
            job, job_id=job_id, coinb1=job.coinb1 + session.extranonce1 + bytes(padding),
            clean_jobs=clean, height=height, block_data=ref, transaction_ids=(),
        )  # fmt: skip
        self._last_job_time = self.clock.wall()
        self._last_job_at = self.clock.monotonic()
        self._withdrawn = False
        if self._publish is not None:
            try:
                self._publish(rig_job)
            except Exception:  # a job the server refuses must not take the pool connection down
                link.log.exception("job_publish_failed", upstream_job_id=job.job_id)

    def _observe_chain(self, link: _Link, job: Job) -> int | None:
        """Note the network the job is for; its height (None when coinb1 has no readable one)."""
        height = coinb1_height(job.coinb1)
        if height is not None and height < 1:  # nobody mines the genesis block: a misread
            height = None
        try:
            difficulty = bits_to_difficulty(job.nbits)
        except ValueError:
            difficulty = None
        self._chain_view = _ChainView(difficulty, height)
        pool = str(link.url)
        if difficulty is None or height is None:
            if pool not in self._unreadable_pools:  # once, not per job, until its jobs read again
                self._unreadable_pools.add(pool)
                link.log.warning(
                    "upstream_network_unreadable", nbits=f"{job.nbits:08x}", height=height,
                    coinb1=job.coinb1[:48].hex(), upstream_job_id=job.job_id,
                )  # fmt: skip
        else:
            self._unreadable_pools.discard(pool)
        tip = self._tip
        if tip is None or tip[1] != job.prevhash:
            if tip is not None and tip[0] is link and height is not None:
                self._epoch.record(height - 1, self.clock.wall())
            else:
                # The first job, one a new session brings, or one we cannot place: when that block
                # came is unknown, so the run of times starts again from the next one seen arriving.
                self._epoch = EpochBlockTimes()
        self._tip = (link, job.prevhash)
        return height

    def extranonce_changed(self, link: _Link) -> None:
        """mining.set_extranonce on the active session: applies from its next job."""
        self._apply_layout(link)
        link.log.info("upstream_extranonce_changed", extranonce1=link.session.extranonce1.hex(),
                      extranonce2_size=link.session.extranonce2_size)  # fmt: skip

    def version_mask_changed(self, link: _Link) -> None:
        self._apply_mask(link)

    def reconnect_requested(self, link: _Link, event: ReconnectRequested) -> None:
        if event.host is not None and event.host != link.url.host:
            # Following a pool to another host would let it send our rigs' work anywhere.
            link.log.warning("upstream_redirect_refused", host=event.host, port=event.port)
        elif event.port is not None:
            self._redirects[link.index] = PoolUrl(link.url.host, event.port, link.url.tls)
        if event.wait > 0:
            self.hold_off(link.index, min(event.wait, self.config.failback_seconds), f"asked to wait {event.wait:g} s")
        link.close("the pool asked us to reconnect")

    def count_answer(self, link: _Link, event: SubmitAnswered) -> None:
        if event.accepted:
            link.reject_streak = 0
            return
        link.reject_streak += 1
        limit = self.config.max_consecutive_rejects
        if limit and link.reject_streak >= limit and link is self.active:
            self.hold_off(link.index, self.config.reject_holdoff_seconds, f"rejected {limit} shares in a row")
            link.close(f"rejected {limit} shares in a row (last: {event.reason})")

    def link_ended(self, link: _Link, lost: int) -> None:
        self._links.discard(link)
        if link is not self.active:
            return
        self.active = None
        self.pools[link.index].last_error = link.end_reason
        link.log.warning("upstream_lost", reason=link.end_reason, shares_lost=lost)
        self._arm_expiry()

    # -- connecting and serving ---------------------------------------------------------------------------

    async def _connect_any(self) -> _Link:
        backoff = 0.25
        while True:
            link = await self._try_pools(self._candidates(len(self.pools)))
            if link is not None:
                return link
            self.log.error("upstream_all_pools_down", retry_in=backoff)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, self.config.failover_seconds)

    def _candidates(self, below: int) -> list[int]:
        """Pools to try, best first, skipping those held off (unless every one is)."""
        now = self.clock.monotonic()
        indices = [i for i in range(below) if self.pools[i].held_until <= now]
        if not indices and below == len(self.pools):
            indices = list(range(below))
        return indices

    async def _try_pools(self, indices: list[int]) -> _Link | None:
        for index in indices:
            try:
                return await self._login(index)
            except UpstreamError as exc:
                state = self.pools[index]
                state.failures += 1
                state.last_error = str(exc)
                self.log.warning("upstream_unusable", pool=str(state.url), error=str(exc))
        return None

    async def _login(self, index: int) -> _Link:
        url = self._redirects.pop(index, None) or self.pools[index].url
        link = _Link(self, index, url)
        self._links.add(link)
        loop = asyncio.get_running_loop()
        timeout = self.config.failover_seconds
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: link, url.host, url.port,
                    ssl=self._tls_context() if url.tls else None,
                    server_hostname=url.host if url.tls else None,
                )  # fmt: skip
                await link.ready
        except TimeoutError:
            link.close(f"no usable session within {timeout:g} s")
            raise UpstreamError(link.end_reason) from None
        except (OSError, ssl.SSLError) as exc:
            link.close(f"cannot connect: {exc}")
            raise UpstreamError(link.end_reason) from None
        except BaseException:
            link.close("login abandoned")
            raise
        return link

    async def _serve(self, link: _Link) -> None:
        """Mine on ``link`` (and on better pools found by probing) until the active one ends."""
        config = self.config
        clock = self.clock
        self._activate(link, "connected")
        next_probe = clock.monotonic() + config.failback_seconds
        probe: asyncio.Task | None = None
        try:
            while link.end_reason is None:
                wake = link.last_job_at + config.stall_seconds
                if probe is None and link.index > 0:
                    wake = min(wake, next_probe)
                timer = asyncio.ensure_future(clock.sleep(max(0.0, wake - clock.monotonic())))
                waits = {link.ended, timer} if probe is None else {link.ended, timer, probe}
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
                if link.end_reason is not None:
                    break
                if probe is not None and probe.done():
                    better, probe = probe.result(), None
                    next_probe = clock.monotonic() + config.failback_seconds
                    if better is not None:
                        old, link = link, better
                        self._activate(link, "failback")
                        old.retire(f"failed back to {link.url}", config.failover_seconds)
                    continue
                now = clock.monotonic()
                if now >= link.last_job_at + config.stall_seconds:
                    self.hold_off(link.index, config.failback_seconds, "stalled")
                    link.close(f"stalled: no job for {config.stall_seconds:g} s")
                    break
                if probe is None and link.index > 0 and now >= next_probe:
                    probe = asyncio.create_task(self._try_pools(self._candidates(link.index)), name="upstream-probe")
        finally:
            if probe is not None:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    better = await probe
                    if better is not None:
                        better.close("probe no longer needed")

    def _activate(self, link: _Link, why: str) -> None:
        previous = self._last_index
        self.active = link
        self._last_index = link.index
        state = self.pools[link.index]
        state.connects += 1
        state.last_error = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        session = link.session
        if previous is not None and previous != link.index:
            self.failovers += 1
            link.log.warning("upstream_switched", reason=why, from_pool=str(self.pools[previous].url),
                             failovers=self.failovers)  # fmt: skip
        link.log.info(
            "upstream_active", extranonce1=session.extranonce1.hex(), extranonce2_size=session.extranonce2_size,
            difficulty=session.difficulty, version_mask=session.version_mask,
        )  # fmt: skip
        self._apply_layout(link)
        self._apply_mask(link)
        self.apply_difficulty(link)
        job, difficulty = link.latest
        self.publish_job(link, job, difficulty, clean=True)  # nothing from another session may be built on

    def _apply_layout(self, link: _Link) -> None:
        size = link.session.extranonce2_size - self.config.prefix_size
        layout = ExtranonceLayout(self.config.prefix_size, min(size, RIG_EXTRANONCE2_MAX))
        if layout != self._layout:
            self._layout = layout
            if self._control is not None:
                self._control.set_extranonce_layout(layout)

    def apply_difficulty(self, link: _Link) -> None:
        """The pool's difficulty caps every rig's: a rig share at d_rig <= d_up is forwarded when it
        meets d_up and credited at it, which pays the rig's work in full on average; a rig above
        d_up would never submit the shares between the two targets, work the pool credits."""
        if self._control is not None:
            self._control.set_difficulty_cap(link.session.difficulty)

    def _apply_mask(self, link: _Link) -> None:
        mask = link.session.version_mask
        if mask != self._mask or not self._mask_sent:
            self._mask, self._mask_sent = mask, True
            if self._control is not None:
                self._control.set_version_mask(mask or 0)

    def hold_off(self, index: int, seconds: float, why: str) -> None:
        state = self.pools[index]
        state.held_until = self.clock.monotonic() + seconds
        self.log.warning("upstream_held_off", pool=str(state.url), seconds=seconds, reason=why)

    def _arm_expiry(self) -> None:
        if self._expiry is not None or self._last_job_at is None:
            return
        delay = max(0.0, self._last_job_at + self.config.max_job_age_seconds - self.clock.monotonic())
        self._expiry = asyncio.create_task(self._expire(delay), name="upstream-job-expiry")

    async def _expire(self, delay: float) -> None:
        await self.clock.sleep(delay)
        self._expiry = None
        if self.active is not None or self._withdrawn:
            return
        self._withdrawn = True
        reason = f"no upstream pool and the last job is older than {self.config.max_job_age_seconds:g} s"
        self.log.error("upstream_work_expired", reason=reason)
        if self._control is not None:
            self._control.withdraw_work(reason)

    # -- helpers --------------------------------------------------------------------------------------------

    def _count_outcome(self, future: asyncio.Future) -> None:
        outcome: ShareOutcome = future.result()
        if outcome.accepted:
            self.accepted += 1
            self.accepted_work += outcome.difficulty
        else:
            self.rejected[outcome.reason] += 1

    def _target(self, difficulty: float) -> int:
        target = self._targets.get(difficulty)
        if target is None:
            if len(self._targets) > 1024:
                self._targets.clear()
            target = self._targets[difficulty] = difficulty_to_target(difficulty)
        return target

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.config.tls_ca_file)
            if not self.config.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls


def _network_target(nbits: int) -> int:
    try:
        return bits_to_target(nbits)
    except ValueError:  # a nonsense nbits: no share is a block, the pool will say what it thinks
        return -1


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["UpstreamConfig", "UpstreamSource", "PoolState", "PoolUrl", "UpstreamError", "build_source"]
