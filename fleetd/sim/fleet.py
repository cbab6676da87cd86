"""A fleet of simulated rigs in one process: real Stratum clients plus emulated firmware APIs.

    async with Fleet(FleetConfig("127.0.0.1", 3333, rigs=5)) as fleet:
        await fleet.wait_ready()
        fleet.rig(3).inject(FaultKind.OFFLINE)
        print(render(fleet.snapshot()))

Each rig is a catalogue model on its own loopback address. Its firmware API (AxeOS,
stock Antminer or Whatsminer) listens on the standard ports of that address, so pyasic
reads it as it would a real rig, and its Stratum connection comes from the same address,
so the pool sees one peer IP per rig. Both sides share one ``RigState``: faults injected
there change what the API reports and what the Stratum side submits.

The difficulty contract
-----------------------
A share at difficulty d is worth d x 2^32 hashes to the pool, and finding a genuinely
valid one costs the same number of hashes on average. A pool can therefore never measure
more hash rate than the simulator really grinds: one CPU core does ~0.5 MH/s here, a
single S21 claims 200 TH/s. So the Stratum side of every rig works at a scaled rate:

* simulated hash rate = the rig's hash rate (nominal x degrade factor) x ``hash_scale``,
  one scale for the whole fleet (by default the power of ten that keeps the fleet within
  ``cpu_hashrate``), so rigs keep their proportions: the pool credits an S21 with 167x a
  Bitaxe's work, a rig degraded to 50 % with half of its own;
* shares are Poisson-timed (seeded per rig) at rate = simulated hash rate / (d x 2^32),
  with d the difficulty of the job being mined, whatever the pool set: vardiff is
  followed, never fought. Each share is ground for real at that d, so the CPU spent is
  the simulated hash rate whatever d is;
* each rig asks for the difficulty that gives it one share per ``share_interval`` with
  ``mining.suggest_difficulty`` right after authorize, as a Bitaxe does, so shares stay
  cheap whatever the pool's start difficulty. fleetd puts it in force at once (the first
  job has it when the suggestion arrives with the login; otherwise the current job comes
  again at it) and keeps it as the rig's floor: vardiff may go higher, never lower;
* a share costing more than ``max_share_hashes`` (the pool's difficulty is too high for a
  CPU) is not attempted but counted as ``skipped``; when grinding falls more than
  ``max_lag`` seconds behind the schedule, the backlog is dropped and counted as
  ``behind_shares``. Both are logged once and shown in every snapshot.

The firmware API reports the unscaled figures (hash rate, watts, temperatures), so the
pool-side hash rate of a simulated rig is its reported hash rate x ``hash_scale``.

A rig told to stop through its firmware API (sleep, power off) keeps its Stratum connection
and submits nothing; woken, it submits again once its warm-up has passed on the clock. A
power limit or a lower clock lowers its hash rate and so its share rate. A rig the API
restarts hangs up and dials the pool again (see fleetd/sim/firmware/state.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import re
import signal
import sys
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.rigs.models import CATALOGUE, FirmwareFamily, RigModel, get_model
from fleetd.sim.firmware import EmulatedRig, LoopbackAllocator, RigState
from fleetd.sim.firmware.address import DEFAULT_RIG_NETWORK
from fleetd.sim.firmware.axeos import AXEOS_VERSION
from fleetd.sim.fleet_faults import FaultKind, FaultSpec
from fleetd.sim.loopback import require_loopback
from fleetd.sim.miner import Miner, MinerConfig, MinerError, MinerJob, MinerStats, Reply, Share

HASHES_PER_DIFFICULTY = 2**32
TICK_S = 0.1  # how often a rig re-reads its state (offline, degrade) and the pool's difficulty
DUE_WITHIN_S = 1e-6  # a share due this soon is due now: a shorter sleep can round to no time and wake at once, forever
GRIND_CHUNK = 1024  # nonces per grinding step between yields (~2 ms): rigs share one event loop
RECONNECT_S = (1.0, 30.0)  # first and longest wait before a rig dials the pool again
USER_AGENT = MappingProxyType(  # what each firmware family says in mining.subscribe
    {
        FirmwareFamily.ANTMINER_STOCK: "bmminer/1.0.0",
        FirmwareFamily.WHATSMINER: "btminer/2.0.0",
        FirmwareFamily.AXEOS: "bitaxe/{asic}/" + AXEOS_VERSION,
    }
)
VERSION_MASK = MappingProxyType(  # ESP-Miner asks for every bit (ESP-Miner issue 1169)
    {FirmwareFamily.AXEOS: 0xFFFFFFFF}
)
DEFAULT_MASK = 0x1FFFE000


@dataclass(frozen=True, slots=True)
class FleetConfig:
    pool_host: str
    pool_port: int
    rigs: int = 20
    models: tuple[RigModel, ...] = CATALOGUE  # assigned in turn: rig i gets models[i % len]
    site: str = "site"  # worker names are "<site>.<rig name>"
    seed: int = 0  # share timing and fault draws; the same seed gives the same schedule
    network: str = DEFAULT_RIG_NETWORK  # rig addresses come from here, in order
    firmware: bool = True  # run the emulated APIs (ports 80 and 4028: root or CAP_NET_BIND_SERVICE)
    hash_scale: float | None = None  # simulated / nominal hash rate; None: from cpu_hashrate
    cpu_hashrate: float = 100_000.0  # real hashes per second the whole fleet may spend
    share_interval: float | None = 1.0  # seconds per share each rig asks for; None: ask nothing
    max_share_hashes: float = 2.0**21  # a costlier share (pool difficulty too high) is skipped
    max_lag: float = 5.0  # seconds behind schedule before the backlog is dropped
    version_rolling: bool = True
    overheat_ramp: float = 60.0  # seconds an injected overheat takes to reach its full rise
    faults: tuple[FaultSpec, ...] = ()

    def __post_init__(self) -> None:
        require_loopback(self.pool_host)
        if not 0 < self.pool_port <= 65535:
            raise ValueError(f"pool port must be 1..65535, got {self.pool_port!r}")
        if self.rigs < 1 or not self.models:
            raise ValueError(f"a fleet needs at least one rig and one model, got {self.rigs} rigs")
        if not re.fullmatch(r"[\w-]+", self.site):
            raise ValueError(f"site {self.site!r} must be letters, digits, '_' or '-' (it starts worker names)")
        if self.overheat_ramp < 0:
            raise ValueError(f"overheat_ramp must not be negative, got {self.overheat_ramp!r}")
        for key in ("cpu_hashrate", "max_share_hashes", "max_lag"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)!r}")
        for key in ("hash_scale", "share_interval"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive (or None), got {getattr(self, key)!r}")
        names = plan(self)
        for fault in self.faults:  # a fault for a rig the fleet does not have fails here, not mid-run
            if fault.rig not in names and not (isinstance(fault.rig, int) and 1 <= fault.rig <= self.rigs):
                first, last = next(iter(names)), next(reversed(names))
                raise ValueError(
                    f"fault {fault.kind} for rig {fault.rig!r}: no such rig in a fleet of {self.rigs}; "
                    f"name one of 1..{self.rigs} or {first}..{last}"
                )


@dataclass(frozen=True, slots=True)
class RigSnapshot:
    """What one rig is and what its Stratum side actually did, at one moment."""

    name: str
    worker: str
    model: str
    host: str
    online: bool  # False while the 'offline' fault holds
    connected: bool  # authorized on the pool right now
    difficulty: float | None  # of the job being mined
    reported_hashrate: float  # H/s the firmware API reports (nominal x degrade factor)
    simulated_hashrate: float  # H/s the Stratum side really grinds: reported x hash_scale
    watts: float  # what the firmware draws (reported only where the firmware reports it)
    mining_seconds: float  # time spent authorized with a job
    implied_shares: float  # shares the simulated hash rate and the difficulties implied
    implied_work: float  # the same in difficulty units (x 2^32 = hashes)
    submitted: int
    accepted: int
    accepted_work: float  # sum of the difficulties of accepted shares (x 2^32 = hashes)
    rejected: Mapping[tuple[int, str], int]  # (Stratum code, message) -> count
    in_flight: int  # submitted, reply not yet back
    lost: int  # submits whose connection ended before the reply
    injected: Mapping[str, int]  # bad submits made on purpose, by fault kind
    hashes: int  # hashes really ground
    skipped: int  # shares not attempted: the pool's difficulty was beyond max_share_hashes
    behind_shares: float  # shares dropped because grinding fell behind the schedule
    sessions: int  # Stratum connections made
    faults: tuple[str, ...]  # faults in force

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def rejected_by_code(self) -> dict[int, int]:
        by_code: Counter[int] = Counter()
        for (code, _), count in self.rejected.items():
            by_code[code] += count
        return dict(by_code)

    @property
    def accepted_hashes(self) -> float:
        return self.accepted_work * HASHES_PER_DIFFICULTY


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    elapsed: float  # seconds since the fleet started
    hash_scale: float
    rigs: tuple[RigSnapshot, ...]

    def rig(self, name: str) -> RigSnapshot:
        for rig in self.rigs:
            if rig.name == name or rig.worker == name:
                return rig
        raise KeyError(name)


class SimRig:
    """One simulated rig: its state, its emulated firmware API, and its Stratum client."""

    def __init__(
        self,
        index: int,
        name: str,
        state: RigState,
        host: str,
        config: FleetConfig,
        hash_scale: float,
        firmware: EmulatedRig | None,
    ) -> None:
        self.index, self.name, self.state, self.host = index, name, state, host
        self.config, self.hash_scale, self.firmware = config, hash_scale, firmware
        self.miner: Miner | None = None  # the latest session's client (kept after it ends, for its stats)
        self.last_error: str | None = None
        self.paused = False  # connected but submitting nothing (Fleet.pause)
        self.log = logging.get("fleetd.sim.fleet").bind(rig=name, address=host)
        self._rng = random.Random(f"{config.seed}:{name}")  # per rig: adding rigs leaves others' schedules alone
        self._fractions = dict.fromkeys((FaultKind.STALE, FaultKind.INVALID, FaultKind.DUPLICATE), 0.0)
        self._task: asyncio.Task | None = None
        self._submitting = False
        self._restarts = state.restarts  # the firmware's restart count the session started under
        # what the Stratum side did, over all sessions
        self.submitted = self.accepted = self.lost = self.skipped = self.sessions = 0
        self.accepted_work = self.implied_shares = self.implied_work = self.behind_shares = 0.0
        self.mining_seconds = 0.0
        self.rejected: Counter[tuple[int, str]] = Counter()
        self.injected: Counter[str] = Counter()
        self._hashes_before = 0  # hashes of sessions that ended
        # per session: work found ahead of time, the job a block retired, the last good share
        self._found: deque[tuple[MinerJob, Share]] = deque()
        self._job: MinerJob | None = None
        self._stale_job: MinerJob | None = None
        self._last_good: Share | None = None
        self._warned: set[str] = set()

    @property
    def model(self) -> RigModel:
        return self.state.model

    @property
    def worker(self) -> str:
        return self.state.worker

    @property
    def miner_stats(self) -> MinerStats | None:
        return None if self.miner is None else self.miner.stats()

    @property
    def simulated_hashrate(self) -> float:
        return self.state.hashrate() * self.hash_scale

    @property
    def in_flight(self) -> int:
        """Submits sent whose reply has not come back."""
        return self.submitted - self.accepted - sum(self.rejected.values()) - self.lost

    @property
    def busy(self) -> bool:
        return self._submitting or self.in_flight > 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sim-rig {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.firmware is not None:
            await self.firmware.stop()

    # -- faults ---------------------------------------------------------------------

    def inject(self, kind: FaultKind | str, value: float | None = None) -> None:
        """Put a fault on this rig now; ``value`` as in fleet_faults (None: the kind's default)."""
        spec = FaultSpec(self.index, kind, value)
        kind, value, state = spec.kind, spec.value, self.state
        match kind:
            case FaultKind.OFFLINE:
                state.go_offline()  # the rig's session loop sees it within a tick and hangs up
            case FaultKind.OVERHEAT:
                state.overheat(value, self.config.overheat_ramp)
            case FaultKind.DEGRADE:
                state.degrade(value)
            case FaultKind.POWER:
                state.spike_power(value)
            case _:
                if sum(f for k, f in self._fractions.items() if k is not kind) + value > 1:
                    raise ValueError(f"{self.name}: stale + invalid + duplicate fractions would exceed 1")
                self._fractions[kind] = value
        self.log.info("fault_injected", fault=str(kind), value=value)

    def clear(self, kind: FaultKind | str) -> None:
        """Take one fault off again."""
        kind, state = FaultKind(kind), self.state
        match kind:
            case FaultKind.OFFLINE:
                state.come_online()
            case FaultKind.OVERHEAT:
                state.overheat(0.0, 0.0)
            case FaultKind.DEGRADE:
                state.degrade(1.0)
            case FaultKind.POWER:
                state.spike_power(1.0)
            case _:
                self._fractions[kind] = 0.0
        self.log.info("fault_cleared", fault=str(kind))

    def recover(self) -> None:
        """Every fault off."""
        self.state.recover()
        self._fractions = dict.fromkeys(self._fractions, 0.0)

    def faults(self) -> tuple[str, ...]:
        state = self.state
        active = {
            FaultKind.OFFLINE: state.offline,
            FaultKind.OVERHEAT: state.overheat_since is not None and state.overheat_c > 0,
            FaultKind.DEGRADE: state.hashrate_factor < 1,
            FaultKind.POWER: state.power_factor != 1,
            **{kind: fraction > 0 for kind, fraction in self._fractions.items()},
        }
        return tuple(str(kind) for kind, on in active.items() if on)

    # -- snapshot -------------------------------------------------------------------

    def snapshot(self) -> RigSnapshot:
        stats = self.miner_stats
        connected = stats is not None and stats.connected and stats.authorized
        job = self.miner.job if self.miner is not None and connected else None
        return RigSnapshot(
            name=self.name,
            worker=self.worker,
            model=self.model.name,
            host=self.host,
            online=not self.state.offline,
            connected=connected,
            difficulty=None if job is None else job.difficulty,
            reported_hashrate=self.state.hashrate(),
            simulated_hashrate=self.simulated_hashrate,
            watts=self.state.watts(),
            mining_seconds=self.mining_seconds,
            implied_shares=self.implied_shares,
            implied_work=self.implied_work,
            submitted=self.submitted,
            accepted=self.accepted,
            accepted_work=self.accepted_work,
            rejected=MappingProxyType(dict(self.rejected)),
            in_flight=self.in_flight,
            lost=self.lost,
            injected=MappingProxyType(dict(self.injected)),
            hashes=self._hashes_before + (0 if stats is None else stats.hashes),
            skipped=self.skipped,
            behind_shares=self.behind_shares,
            sessions=self.sessions,
            faults=self.faults(),
        )

    # -- the Stratum side ---------------------------------------------------------------

    def _miner_config(self) -> MinerConfig:
        family = self.model.firmware
        suggested = None
        if self.config.share_interval is not None:
            nominal = self.model.nominal_hashrate * self.hash_scale
            suggested = nominal * self.config.share_interval / HASHES_PER_DIFFICULTY
        return MinerConfig(
            self.config.pool_host,
            self.config.pool_port,
            username=self.worker,
            local_host=self.host,
            user_agent=USER_AGENT[family].format(asic=self.model.reported_model),
            version_rolling=self.config.version_rolling,
            requested_mask=VERSION_MASK.get(family, DEFAULT_MASK),
            suggested_difficulty=suggested,
            max_in_flight=1 << 16,  # grind() is paced by the schedule, not by replies
        )

    async def _run(self) -> None:
        clock = self.state.clock
        wait = RECONNECT_S[0]
        while True:
            while self.state.offline:
                await clock.sleep(TICK_S)
            self._restarts = self.state.restarts
            miner = Miner(self._miner_config())
            try:
                await miner.connect()
            except MinerError as exc:
                self.last_error = str(exc)
                self.log.warning("pool_refused", error=str(exc), retry_in=wait)
                await clock.sleep(wait)
                wait = min(wait * 2, RECONNECT_S[1])
                continue
            if self.miner is not None:
                self._hashes_before += self.miner.stats().hashes
            self.miner, wait = miner, RECONNECT_S[0]
            self.sessions += 1
            self.log.info("rig_connected", session=self.sessions)
            try:
                await self._mine(miner)
            finally:
                await miner.close()
                self._end_session()
            if self.state.restarts != self._restarts:  # the firmware rebooted: a new session at once
                self.log.info("rig_restarted", session=self.sessions)
            elif not self.state.offline:  # the pool hung up: dial again after a pause, as firmware does
                self.last_error = miner.stats().closed_reason
                self.log.warning("rig_disconnected", reason=self.last_error)
                await clock.sleep(wait)

    def _alive(self, miner: Miner) -> bool:
        return not self.state.offline and miner.connected and self.state.restarts == self._restarts

    def _share_rate(self, miner: Miner) -> tuple[float, float]:
        """(shares per second, difficulty) the simulated hash rate implies for the current job."""
        job = miner.job
        if job is None:
            return 0.0, 0.0
        return self.simulated_hashrate / (job.difficulty * HASHES_PER_DIFFICULTY), job.difficulty

    async def _mine(self, miner: Miner) -> None:
        """Submit on a Poisson schedule: each share is due once the integrated rate reaches
        a fresh Exp(1) draw, so rate changes (degrade, vardiff) take effect at once."""
        clock = self.state.clock
        need = self._rng.expovariate(1.0)
        last = clock.monotonic()
        while self._alive(miner):
            if self.paused:  # paused time is not mining time: nothing owed for it
                await clock.sleep(TICK_S)
                last = clock.monotonic()
                continue
            now = clock.monotonic()
            rate, difficulty = self._share_rate(miner)
            if rate > 0:
                self.implied_shares += rate * (now - last)
                self.implied_work += rate * (now - last) * difficulty
                self.mining_seconds += now - last
            need -= rate * (now - last)
            last = now
            self._watch_job(miner)
            if rate <= 0 or need > rate * DUE_WITHIN_S:
                await clock.sleep(TICK_S if rate <= 0 else min(TICK_S, need / rate))
                continue
            if -need / rate > self.config.max_lag:  # the CPU cannot keep up: drop the backlog
                self.behind_shares += -need
                self._warn_once("behind", "rig_behind_schedule", owed_shares=round(-need, 1))
                need = 0.0
            self._submitting = True
            try:
                await self._submit_one(miner)
            finally:
                self._submitting = False
            need += self._rng.expovariate(1.0)

    def _watch_job(self, miner: Miner) -> None:
        job = miner.job
        if job is self._job:
            return
        if job is not None and job.clean and self._job is not None:
            self._stale_job, self._last_good = self._job, None  # a new block: the old work is stale
        self._job = job

    def _end_session(self) -> None:
        self._found.clear()
        self._job = self._stale_job = self._last_good = None

    def _pick(self) -> FaultKind | None:
        """Which bad submit this one is, if any (one draw against the fault fractions)."""
        draw = self._rng.random()
        for kind, fraction in self._fractions.items():
            if draw < fraction:
                return kind
            draw -= fraction
        return None

    async def _submit_one(self, miner: Miner) -> None:
        kind = self._pick()
        found = None
        if kind is FaultKind.STALE and self._stale_job is not None:
            found = self._stale_job, await self._find(miner, self._stale_job, meets_target=True)
        elif kind is FaultKind.INVALID and miner.job is not None:
            found = miner.job, await self._find(miner, miner.job, meets_target=False)
        elif kind is FaultKind.DUPLICATE and self._last_good is not None and self._job is not None:
            found = self._job, self._last_good
        else:  # a good share (also when a bad one is asked for but not yet possible: no block, no share)
            kind, found = None, await self._next_good(miner)
        if found is None or found[1] is None or not self._alive(miner):
            return
        job, share = found
        try:
            reply = miner.submit_nowait(share)
        except ConnectionError:
            return
        self.submitted += 1
        if kind is not None:
            self.injected[str(kind)] += 1
        reply.add_done_callback(functools.partial(self._on_reply, kind, job.difficulty, share))

    async def _next_good(self, miner: Miner) -> tuple[MinerJob, Share] | None:
        """A valid share for the current job: left over from earlier grinding, or ground now."""
        while self._alive(miner):
            job = miner.job
            if job is None:
                return None
            while self._found and self._found[0][0] is not job:  # found for work since replaced
                self._found.popleft()
            if self._found:
                return self._found.popleft()
            if job.difficulty * HASHES_PER_DIFFICULTY > self.config.max_share_hashes:
                self.skipped += 1
                self._warn_once("too_hard", "pool_difficulty_too_high_for_cpu", difficulty=job.difficulty)
                return None
            self._found.extend((job, share) for share in miner.grind(GRIND_CHUNK))
            if not self._found:
                await asyncio.sleep(0)
        return None

    async def _find(self, miner: Miner, job: MinerJob, *, meets_target: bool) -> Share | None:
        """A share for ``job`` that meets (or misses) its target, found in yielding steps."""
        while self._alive(miner):
            with contextlib.suppress(MinerError):
                return miner.find_share(job, meets_target=meets_target, max_tries=GRIND_CHUNK)
            await asyncio.sleep(0)
        return None

    def _on_reply(self, kind: FaultKind | None, difficulty: float, share: Share, done: asyncio.Future) -> None:
        if done.cancelled() or done.exception() is not None:
            self.lost += 1
            return
        reply: Reply = done.result()
        if reply.accepted:
            self.accepted += 1
            self.accepted_work += difficulty
            self.state.accepted += 1
            if kind is None and self._job is not None and share.job_id == self._job.job_id:
                self._last_good = share  # not one a block has retired meanwhile
        else:
            self.rejected[reply.error or (20, f"result {reply.result!r}")] += 1
            self.state.rejected += 1

    def _warn_once(self, key: str, event: str, **fields: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning(event, **fields)


class Fleet:
    """N simulated rigs; ``async with Fleet(config) as fleet`` starts and stops them all.

    Every rig lives on ``clock``: its uptime, share schedule, reconnects and timed faults.
    """

    def __init__(self, config: FleetConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config, self.clock = config, clock
        self._plan = plan(config)
        self.hash_scale = config.hash_scale or auto_hash_scale(self._plan.values(), config.cpu_hashrate)
        self.rigs: tuple[SimRig, ...] = ()
        self._tasks: list[asyncio.Task] = []
        self._started: float | None = None

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._started is not None:
            raise RuntimeError("this fleet has already started")
        self._started = self.clock.monotonic()
        faults = [(self._resolve(spec.rig), spec) for spec in self.config.faults]
        allocator = LoopbackAllocator(self.config.network)
        rigs: list[SimRig] = []
        try:
            for index, (name, model) in enumerate(self._plan.items(), start=1):
                rigs.append(await self._start_rig(index, name, model, allocator))
        except BaseException:
            for rig in rigs:
                await rig.stop()
            raise
        self.rigs = tuple(rigs)
        for rig in self.rigs:
            rig.start()
        self._tasks = [asyncio.create_task(self._apply(self.rigs[i - 1], spec)) for i, spec in faults]

    async def _start_rig(self, index: int, name: str, model: RigModel, allocator: LoopbackAllocator) -> SimRig:
        config = self.config
        state = RigState(
            model,
            name=name,
            clock=self.clock,
            pool_host=config.pool_host,
            pool_port=config.pool_port,
            worker=f"{config.site}.{name}",
        )
        firmware = None
        if config.firmware:
            firmware = await EmulatedRig.start_free(state, allocator)  # skips addresses already taken
            host = firmware.host
        else:
            host = allocator.next()
        return SimRig(index, name, state, host, config, self.hash_scale, firmware)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(rig.stop() for rig in self.rigs))

    def rig(self, key: int | str) -> SimRig:
        """A rig by 1-based position, name or worker name."""
        return self.rigs[self._resolve(key) - 1]

    def _resolve(self, key: int | str) -> int:
        names = list(self._plan)
        if isinstance(key, int):
            if not 1 <= key <= len(names):
                raise KeyError(f"no rig {key}: the fleet has rigs 1..{len(names)}")
            return key
        for index, name in enumerate(names, start=1):
            if key in (name, f"{self.config.site}.{name}"):
                return index
        raise KeyError(f"no rig named {key!r}; rigs are {names[0]} .. {names[-1]}")

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until every online rig is authorized and has a job (TimeoutError otherwise)."""

        def ready(rig: SimRig) -> bool:
            miner = rig.miner
            return rig.state.offline or (miner is not None and miner.job is not None and miner.stats().authorized)

        async with asyncio.timeout(timeout):
            while not all(ready(rig) for rig in self.rigs):
                await asyncio.sleep(TICK_S)

    async def pause(self, timeout: float = 5.0) -> None:
        """Stop submitting (connections stay up) and wait for every reply in flight, so the
        counters hold still: what tests and demos compare with the pool's figures."""
        for rig in self.rigs:
            rig.paused = True
        async with asyncio.timeout(timeout):
            while any(rig.busy for rig in self.rigs):
                await asyncio.sleep(0.02)

    def resume(self) -> None:
        for rig in self.rigs:
            rig.paused = False

    def snapshot(self) -> FleetSnapshot:
        elapsed = 0.0 if self._started is None else self.clock.monotonic() - self._started
        return FleetSnapshot(elapsed, self.hash_scale, tuple(rig.snapshot() for rig in self.rigs))

    async def _apply(self, rig: SimRig, spec: FaultSpec) -> None:
        await self.clock.sleep(spec.at)
        rig.inject(spec.kind, spec.value)
        if spec.duration is not None:
            await self.clock.sleep(spec.duration)
            rig.clear(spec.kind)


def plan(config: FleetConfig) -> dict[str, RigModel]:
    """Rig name -> model, in fleet order: models taken in turn, names like ``s21-02``."""
    width = max(2, len(str(config.rigs)))
    rigs = {}
    for i in range(config.rigs):
        model = config.models[i % len(config.models)]
        rigs[f"{model_slug(model)}-{i + 1:0{width}d}"] = model
    return rigs


def model_slug(model: RigModel) -> str:
    """A short lowercase model tag for names: s19xp, s21, s21xp, m60s, bitaxe."""
    short = model.aliases[0] if model.aliases else model.name
    return re.sub(r"[^a-z0-9]+", "", short.lower())


def auto_hash_scale(models: Iterable[RigModel], cpu_hashrate: float) -> float:
    """The power of ten that keeps the fleet's simulated hash rate within ``cpu_hashrate``."""
    total = sum(model.nominal_hashrate for model in models)
    return 10.0 ** math.floor(math.log10(cpu_hashrate / total))


def parse_models(text: str) -> tuple[RigModel, ...]:
    """``"s21,m60s,bitaxe"`` as catalogue models (UnknownModelError names the known ones)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("no model names given")
    return tuple(get_model(name) for name in names)


# -- fleetd simulate ---------------------------------------------------------------------


def render(snapshot: FleetSnapshot) -> str:
    """One screen: per rig, what its API reports and what its Stratum side did."""
    rows = [
        f"\n[{snapshot.elapsed:6.0f} s] {len(snapshot.rigs)} rigs, hash scale {snapshot.hash_scale:g} "
        f"(pool-side rate = reported x scale)",
        f"  {'rig':<12}{'address':<14}{'conn':>5}{'reported':>13}{'simulated':>12}{'accepted':>9}"
        f"{'rejected':>16}{'behind':>8}  faults",
    ]
    for rig in snapshot.rigs:
        rejects = " ".join(f"{code}:{n}" for code, n in sorted(rig.rejected_by_code().items())) or "-"
        behind = rig.skipped + round(rig.behind_shares)
        rows.append(
            f"  {rig.name:<12}{rig.host:<14}{'yes' if rig.connected else 'no':>5}"
            f"{_si(rig.reported_hashrate) + 'H/s':>13}{_si(rig.simulated_hashrate) + 'H/s':>12}"
            f"{rig.accepted:>9}{rejects:>16}{behind or '-':>8}  {','.join(rig.faults) or '-'}"
        )
    return "\n".join(rows)


def _si(value: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} "


async def wait_or_sleep(event: asyncio.Event, clock: Clock, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` have passed on ``clock``, whichever comes first."""
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(clock.sleep(seconds))]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def run(
    config: FleetConfig, *, duration: float | None, out=sys.stdout, every: float = 10.0, clock: Clock = SYSTEM_CLOCK
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with Fleet(config, clock=clock) as fleet:
        print(
            f"fleetd simulate: {len(fleet.rigs)} rigs mining stratum+tcp://{config.pool_host}:{config.pool_port} "
            f"as {config.site}.*, hash scale {fleet.hash_scale:g}; Ctrl-C stops",
            file=out,
        )
        for rig in fleet.rigs:
            api = "no API" if rig.firmware is None else f"API on {rig.host}:80/4028"
            print(f"  {rig.worker:<20}{rig.model.name:<18}{rig.host:<14}{api}", file=out)
        started = clock.monotonic()
        while not stop.is_set():
            left = None if duration is None else duration - (clock.monotonic() - started)
            if left is not None and left <= 0:
                break
            await wait_or_sleep(stop, clock, every if left is None else min(every, left))
            print(render(fleet.snapshot()), file=out, flush=True)
    return 0


def main(config: FleetConfig, *, duration: float | None) -> int:
    logging.configure("warning", "console", stream=sys.stderr)  # the table is the output; logs only for trouble
    return asyncio.run(run(config, duration=duration))
