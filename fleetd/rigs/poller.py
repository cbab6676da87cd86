"""Rig-side truth: each rig's management API polled with pyasic, on a spread schedule.

    poller = RigPoller(PollerConfig(interval=30), on_reading=registry.reading,
                       on_failure=lambda ip, error: registry.poll_failed(ip, clock.wall()), clock=clock)
    await poller.start()
    poller.add("10.0.1.17")           # from a Stratum connection or the inventory
    poller.remove("10.0.1.17")
    await poller.stop()

Rules, and why:

- Each rig is identified once (``pyasic.get_miner``) and its miner object cached; any
  failed poll drops it, so the next poll identifies the rig again (its firmware may have
  been reflashed or its API restarted).
- Each rig polls at a fixed phase of the interval derived from its IP, so 10,000 rigs
  added at once are spread over the interval rather than polled together.
- At most ``concurrency`` polls are in flight; the scheduler waits for a free slot
  rather than queueing tasks, so a slow round delays polls instead of piling them up.
- Every pyasic call runs under our own deadline: pyasic's 4028 reads have none once a
  rig is identified, and its HTTP reads ignore ``api_function_timeout`` inside get_data.
  The deadline sleeps on the injected clock, like the schedule, so a fake clock drives both.
- A rig that stops answering backs off exponentially (interval, 2x, 4x ... capped), so
  dead rigs cost little; one that answers again returns to its phase.
- Only the figures a ``RigReading`` carries are requested (``get_data(include=...)``):
  a full get_data costs ~2.5x the CPU on stock Antminer. Errors come from a slow digest-
  auth CGI there, so they are re-read every ``errors_every`` polls and carried between.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import logging
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fleetd import log as logs
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.rigs.reading import RigReading

OnReading = Callable[[RigReading], None]
OnFailure = Callable[[str, str], None]
Identify = Callable[[str], Awaitable[Any]]  # ip -> pyasic miner, or None when nothing answers

# Every figure a RigReading carries, by pyasic's DataOptions value. Errors are separate.
CORE_DATA = ("hashrate", "wattage", "hashboards", "env_temp", "fans", "fan_psu", "uptime", "pools")
ERRORS_DATA = "errors"
LAUNCH_WINDOW_S = 0.02  # polls due this soon start with the one due now (at most this early)


def load_pyasic() -> SimpleNamespace:
    """Import pyasic without letting it reconfigure logging or spray deprecation warnings.

    Importing pyasic calls ``logging.basicConfig`` and sets the root logger to WARNING;
    the daemon's logging is its own, so whatever the import changed is put back.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pydantic v1-style, passlib: not ours
            import pyasic
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return SimpleNamespace(get_miner=pyasic.get_miner, settings=pyasic.settings)


# -- configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollerConfig:
    interval: float = 30.0  # seconds between polls of one rig
    timeout: float = 10.0  # deadline of each pyasic call (identify, read) for one rig
    concurrency: int = 256  # polls in flight at once; ~3 sockets each on stock Antminer
    backoff_factor: float = 2.0  # delay after k failures: interval * factor^(k-1) ...
    backoff_max: float = 300.0  # ... but never longer than this
    errors_every: int = 5  # re-read errors every N successful polls (1: every poll)

    def __post_init__(self) -> None:
        checks = (
            ("interval", 0 < self.interval <= 86400, "must be within (0, 86400] seconds"),
            ("timeout", 0 < self.timeout < self.interval, "must be positive and shorter than interval"),
            ("concurrency", isinstance(self.concurrency, int) and self.concurrency >= 1, "must be an integer >= 1"),
            ("backoff_factor", self.backoff_factor >= 1, "must be >= 1"),
            ("backoff_max", self.backoff_max >= self.interval, "must be >= interval"),
            ("errors_every", isinstance(self.errors_every, int) and self.errors_every >= 1, "must be an integer >= 1"),
        )
        for key, ok, rule in checks:
            if not ok:
                raise ValueError(f"poller {key} {rule}, got {getattr(self, key)!r}")

    def backoff(self, failures: int) -> float:
        """Seconds before the next poll of a rig that failed ``failures`` times in a row."""
        exponent = min(failures - 1, 64)  # past the cap anyway; keeps the power finite
        return min(self.backoff_max, self.interval * self.backoff_factor**exponent)


# -- per-rig status -------------------------------------------------------------------


class PollState(enum.Enum):
    PENDING = "pending"  # not polled yet
    OK = "ok"  # the last poll succeeded
    FAILING = "failing"  # the last poll failed; retried at the normal interval
    BACKOFF = "backoff"  # failed repeatedly; retried less and less often


@dataclass(frozen=True, slots=True)
class RigPollStatus:
    ip: str
    state: PollState
    consecutive_failures: int
    last_error: str | None
    last_success: float | None  # wall clock of the last good reading
    next_poll: float | None  # wall clock; None while a poll is in flight
    polling: bool


@dataclass(slots=True, eq=False)
class _Rig:
    """The poller's own mutable record of one rig (never handed out)."""

    ip: str
    phase: float  # seconds into each interval at which this rig is polled
    miner: Any = None
    state: PollState = PollState.PENDING
    failures: int = 0
    last_error: str | None = None
    last_success: float | None = None
    due: float = 0.0  # monotonic
    entry: int = 0  # the heap entry that is current for this rig
    task: asyncio.Task | None = None
    errors: tuple[str, ...] = ()
    errors_in: int = 0  # successful polls until errors are read again


def phase_of(ip: str, interval: float) -> float:
    """A stable offset into the interval: CRC32 of the IP, so it survives restarts."""
    return zlib.crc32(ip.encode()) / 2**32 * interval


class PollError(Exception):
    """A poll that got no usable answer."""


def can_tune(miner: Any) -> bool:
    """pyasic sets a power target on this miner's firmware: its class has a ``set_power_limit``
    of its own, not the base class's no-op, and declares tuning (``supports_autotuning``:
    Braiins OS, LuxOS, VNish, Whatsminer API v3, Auradine) or power modes
    (``supports_power_modes``: Whatsminer API v2). Avalon firmware has one too, but maps the
    watts onto three work levels and declares neither, so it is not tuned; stock Antminer
    firmware has power modes (sleep, low, normal) and no target."""
    for klass in type(miner).__mro__:
        if "set_power_limit" in vars(klass):
            own = not klass.__module__.startswith("pyasic.miners.base")
            break
    else:
        own = False
    return own and bool(getattr(miner, "supports_autotuning", False) or getattr(miner, "supports_power_modes", False))


# -- MinerData -> RigReading ----------------------------------------------------------


def hashes_per_second(rate: Any) -> float | None:
    """pyasic hash rates are objects in a unit (TH/s by default); a bare number is TH/s.

    Whole H/s: scaling a decimal rate by the unit leaves binary noise (200000009999999.97).
    """
    if rate is None:
        return None
    unit = getattr(rate, "unit", None)
    hashes = float(rate.rate) * int(unit) if unit is not None else float(rate) * 1e12  # a unit's value: its size in H/s
    return float(round(hashes))


def _temperatures(data: Any) -> dict[str, float]:
    temps: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        # pyasic fills 0 where a board's sensor list came back empty: that is no reading
        if value is not None and value != 0:
            temps[name] = float(value)

    for board in data.hashboards:
        put(f"board{board.slot}", board.temp)
        put(f"chip{board.slot}", board.chip_temp)
        put(f"inlet{board.slot}", board.inlet_temp)  # hydro boards only
        put(f"outlet{board.slot}", board.outlet_temp)
    put("inlet", data.env_temp)  # the intake air, where the firmware measures it
    return temps


def _fans(data: Any) -> dict[str, float]:
    fans = {str(i): float(fan.speed) for i, fan in enumerate(data.fans) if fan.speed is not None}
    if data.fan_psu:
        fans["psu"] = float(data.fan_psu)
    return fans


def _error_text(error: Any) -> str:
    code, message = getattr(error, "error_code", None), getattr(error, "error_message", None)
    if code and message:  # stock Antminer errors carry code 0: a message and no code
        return f"{code}: {message}"
    return str(message or code or error)


def _worker(data: Any) -> str | None:
    pools = [p for p in data.pools if getattr(p, "user", None)]
    active = [p for p in pools if getattr(p, "active", False)]
    return (active or pools)[0].user if pools else None


def reading_from(data: Any, *, ip: str, time: float, errors: tuple[str, ...] | None = None) -> RigReading:
    """Convert pyasic's MinerData. ``errors`` replaces the data's own when they were not read.

    Raises PollError when the answer has no hash rate: pyasic swallows refused
    connections and returns an empty MinerData, which is a failed poll, not a rig at 0.
    """
    hashrate = hashes_per_second(data.hashrate)
    if hashrate is None:
        raise PollError("the rig's API gave no hash rate (refused or unreadable)")
    if errors is None:
        errors = tuple(_error_text(e) for e in data.errors)
    return RigReading(
        ip=ip,
        time=time,
        make=data.make or None,
        model=data.model or None,
        firmware=data.firmware or None,
        hashrate=hashrate,
        watts=float(data.wattage) if data.wattage else None,  # None or 0: firmware without power reporting
        temperatures=_temperatures(data),
        fans=_fans(data),
        uptime=float(data.uptime) if data.uptime is not None else None,
        errors=errors,
        worker=_worker(data),
    )


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, PollError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the poller -----------------------------------------------------------------------


class RigPoller:
    """Polls a changing set of rig IPs. Runs on the daemon's loop; not thread-safe."""

    def __init__(
        self,
        config: PollerConfig = PollerConfig(),
        *,
        on_reading: OnReading,
        on_failure: OnFailure | None = None,
        clock: Clock = SYSTEM_CLOCK,
        identify: Identify | None = None,
    ) -> None:
        self.config = config
        self._on_reading, self._on_failure = on_reading, on_failure
        self._clock = clock
        self._identify = identify or load_pyasic().get_miner
        self._rigs: dict[str, _Rig] = {}
        self._heap: list[tuple[float, int, str]] = []  # (due, entry, ip); stale entries skipped
        self._entries = 0
        self._slots = asyncio.Semaphore(config.concurrency)
        self._sleep: asyncio.Future | None = None  # the scheduler's, while it waits for the next poll
        self._scheduler: asyncio.Task | None = None
        self._log = logs.get("fleetd.rigs.poller")

    # -- the set of rigs ------------------------------------------------------------

    def add(self, ip: str) -> None:
        """Poll ``ip`` from its next phase on; adding a rig already polled does nothing."""
        if ip in self._rigs:
            return
        rig = self._rigs[ip] = _Rig(ip, phase_of(ip, self.config.interval))
        self._schedule(rig, self._next_slot(rig, self._clock.monotonic()))

    def remove(self, ip: str) -> None:
        """Stop polling ``ip``; a poll in flight is cancelled and reports nothing."""
        rig = self._rigs.pop(ip, None)
        if rig is not None and rig.task is not None:
            rig.task.cancel()

    def update(self, ips: Iterable[str]) -> None:
        """Make the polled set exactly ``ips``."""
        wanted = set(ips)
        for ip in [ip for ip in self._rigs if ip not in wanted]:
            self.remove(ip)
        for ip in wanted:
            self.add(ip)

    def __contains__(self, ip: str) -> bool:
        return ip in self._rigs

    def __len__(self) -> int:
        return len(self._rigs)

    @property
    def ips(self) -> list[str]:
        return list(self._rigs)

    def status(self, ip: str) -> RigPollStatus | None:
        rig = self._rigs.get(ip)
        if rig is None:
            return None
        polling = rig.task is not None
        next_poll = None if polling else self._clock.wall() + max(0.0, rig.due - self._clock.monotonic())
        return RigPollStatus(
            ip=rig.ip,
            state=rig.state,
            consecutive_failures=rig.failures,
            last_error=rig.last_error,
            last_success=rig.last_success,
            next_poll=next_poll,
            polling=polling,
        )

    def statuses(self) -> list[RigPollStatus]:
        return [s for s in map(self.status, list(self._rigs)) if s is not None]

    # -- running --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._scheduler is not None and not self._scheduler.done()

    async def start(self) -> None:
        if self.running:
            return
        self._scheduler = asyncio.create_task(self._run(), name="rig-poller")
        self._log.info("poller_started", rigs=len(self._rigs), interval=self.config.interval)

    async def stop(self) -> None:
        """Stop scheduling and cancel polls in flight; returns once every task has ended."""
        scheduler, self._scheduler = self._scheduler, None
        tasks = [t for t in (scheduler, *(r.task for r in self._rigs.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if scheduler is not None:
            self._log.info("poller_stopped", rigs=len(self._rigs))

    async def __aenter__(self) -> RigPoller:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def poll_round(self, ips: Iterable[str] | None = None) -> None:
        """Poll every rig (or ``ips``) now, at most ``concurrency`` at once; wait for all.

        Outside the schedule (a bench, a one-off check): results go to the callbacks and
        statuses as usual, and each rig's next scheduled poll moves as a scheduled one would.
        """
        rigs = [self._rigs[ip] for ip in (self._rigs if ips is None else ips) if ip in self._rigs]
        rigs = [r for r in rigs if r.task is None]

        async def one(rig: _Rig) -> None:
            async with self._slots:
                if self._rigs.get(rig.ip) is rig and rig.task is None:
                    rig.task = asyncio.current_task()
                    await self._poll_and_reschedule(rig)

        # a rig removed meanwhile has its poll cancelled: that ends its part, not the round
        await asyncio.gather(*(one(r) for r in rigs), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            head = self._head()
            if head is None:
                await self._wait(None)
                continue
            delay = head[0] - self._clock.monotonic()
            if delay > 0:
                await self._wait(delay)
                continue
            # everything due within the window goes now: a wake costs ~0.2 ms of CPU, so one
            # per batch rather than one per rig (10,000 rigs / 30 s is a poll every 3 ms)
            await self._launch_due(self._clock.monotonic() + LAUNCH_WINDOW_S)

    async def _launch_due(self, until: float) -> None:
        while (head := self._head()) is not None and head[0] <= until:
            heapq.heappop(self._heap)
            await self._slots.acquire()  # backpressure: no task until a slot is free
            rig = self._rigs.get(head[2])
            if rig is None or rig.entry != head[1] or rig.task is not None:
                self._slots.release()  # removed, rescheduled or polled meanwhile
                continue
            rig.task = asyncio.create_task(self._scheduled_poll(rig), name=f"poll-{rig.ip}")

    async def _scheduled_poll(self, rig: _Rig) -> None:
        try:
            await self._poll_and_reschedule(rig)
        finally:
            self._slots.release()

    async def _poll_and_reschedule(self, rig: _Rig) -> None:
        try:
            await self._poll(rig)
        finally:
            rig.task = None
            if self._rigs.get(rig.ip) is rig:  # still wanted (a poll cut short by stop() is redone first)
                self._schedule(rig, rig.due)

    def _head(self) -> tuple[float, int, str] | None:
        heap = self._heap
        while heap:
            due, entry, ip = heap[0]
            rig = self._rigs.get(ip)
            if rig is not None and rig.entry == entry and rig.task is None:
                return heap[0]
            heapq.heappop(heap)  # a removed rig's, or superseded by a later schedule
        return None

    async def _wait(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (forever if None), or until ``_schedule`` cancels the sleep."""
        forever = asyncio.get_running_loop().create_future()
        self._sleep = forever if delay is None else asyncio.ensure_future(self._clock.sleep(delay))
        try:
            await asyncio.wait([self._sleep])
        finally:
            self._sleep.cancel()
            self._sleep = None

    @contextlib.asynccontextmanager
    async def _deadline(self, seconds: float) -> AsyncIterator[None]:
        """``asyncio.timeout`` on the injected clock: past ``seconds`` the body is cancelled and
        TimeoutError raised."""
        task = asyncio.current_task()
        cancelling, expired = task.cancelling(), False

        async def expire() -> None:
            nonlocal expired
            await self._clock.sleep(seconds)
            expired = True
            task.cancel()

        timer = asyncio.create_task(expire())
        try:
            yield
        except asyncio.CancelledError:
            if expired and task.uncancel() <= cancelling:  # ours, and no one else's: as asyncio.timeout does
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    def _schedule(self, rig: _Rig, due: float) -> None:
        self._entries += 1
        rig.due, rig.entry = due, self._entries
        head = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (due, rig.entry, rig.ip))
        if (head is None or due < head) and self._sleep is not None:
            self._sleep.cancel()  # the scheduler is sleeping toward a later poll

    def _next_slot(self, rig: _Rig, now: float) -> float:
        """The first time at or after ``now`` that falls on the rig's phase."""
        interval = self.config.interval
        return now + (rig.phase - now) % interval

    # -- one poll -------------------------------------------------------------------

    async def _poll(self, rig: _Rig) -> None:
        config = self.config
        started = self._clock.monotonic()
        read_errors = rig.errors_in == 0
        try:
            if rig.miner is None:
                async with self._deadline(config.timeout):
                    rig.miner = await self._identify(rig.ip)
                if rig.miner is None:
                    raise PollError("no known miner API answered (pyasic could not identify the rig)")
            include = [*CORE_DATA, ERRORS_DATA] if read_errors else list(CORE_DATA)
            async with self._deadline(config.timeout):
                data = await rig.miner.get_data(include=include)
            reading = reading_from(data, ip=rig.ip, time=self._clock.wall(), errors=None if read_errors else rig.errors)
        except Exception as exc:  # noqa: BLE001 - pyasic raises anything; every failure is the rig's
            self._failed(rig, describe(exc, config.timeout))
            return
        if rig.failures:
            self._log.info("rig_poll_recovered", ip=rig.ip, after_failures=rig.failures)
        rig.state, rig.failures, rig.last_error = PollState.OK, 0, None
        rig.last_success, rig.errors = reading.time, reading.errors
        rig.errors_in = config.errors_every - 1 if read_errors else rig.errors_in - 1
        # the rig's next phase at least half an interval after this poll began: one poll per
        # slot even when the clock has not moved (or a poll ran late), never two close together
        rig.due = self._next_slot(rig, started + config.interval / 2)
        self._deliver(self._on_reading, reading)

    async def control(self, ip: str, call: str, *args: Any) -> tuple[bool, str]:
        """One of pyasic's control calls (``stop_mining``, ``resume_mining``, ``set_power_limit``)
        on the rig at ``ip``, through the miner object its polls use: (it said yes, what happened)."""
        try:
            miner, answer = await self._call(ip, call, *args)
        except Exception as exc:  # noqa: BLE001 - pyasic raises anything; every failure is the rig's
            return False, describe(exc, self.config.timeout)
        return bool(answer), f"{type(miner).__name__}.{call}: {answer!r}"

    def tunable(self, ip: str) -> bool:
        """pyasic can hold the rig at ``ip`` to a power target (``can_tune``); False until a poll
        has identified it."""
        rig = self._rigs.get(ip)
        return rig is not None and rig.miner is not None and can_tune(rig.miner)

    async def power_limit(self, ip: str) -> float | None:
        """The power limit the rig's firmware holds now, in watts (pyasic's ``get_wattage_limit``);
        None when it will not say."""
        try:
            _, watts = await self._call(ip, "get_wattage_limit")
        except Exception:  # noqa: BLE001 - unknown is an answer here: the caller falls back
            return None
        return float(watts) if isinstance(watts, (int, float)) and not isinstance(watts, bool) and watts > 0 else None

    async def _call(self, ip: str, call: str, *args: Any) -> tuple[Any, Any]:
        """(the miner object, its answer) to one pyasic call, within the poll timeout."""
        rig = self._rigs.get(ip) or _Rig(ip, 0.0)
        timeout = self.config.timeout
        if rig.miner is None:
            async with self._deadline(timeout):
                rig.miner = await self._identify(ip)
            if rig.miner is None:
                raise PollError("no known miner API answered (pyasic could not identify the rig)")
        method = getattr(rig.miner, call, None)
        if method is None:
            raise PollError(f"{type(rig.miner).__name__} has no {call}")
        async with self._deadline(timeout):
            return rig.miner, await method(*args)

    def _failed(self, rig: _Rig, error: str) -> None:
        config = self.config
        rig.miner = None  # identify again next time: the API may have restarted or changed
        rig.failures += 1
        rig.last_error = error
        rig.errors_in = 0
        delay = config.backoff(rig.failures)
        rig.state = PollState.FAILING if delay <= config.interval else PollState.BACKOFF
        rig.due = self._clock.monotonic() + delay
        if rig.failures & (rig.failures - 1) == 0:
            # the 1st, 2nd, 4th, 8th... failure in a row: a dead rig does not flood the log
            self._log.warning("rig_poll_failed", ip=rig.ip, error=error, failures=rig.failures, retry_in=delay)
        if self._on_failure is not None:
            self._deliver(self._on_failure, rig.ip, error)

    def _deliver(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # a broken consumer must not stop the polling of every rig
            self._log.exception("poll_callback_failed", callback=getattr(callback, "__name__", repr(callback)))


__all__ = [
    "PollError",
    "PollState",
    "PollerConfig",
    "RigPollStatus",
    "RigPoller",
    "can_tune",
    "hashes_per_second",
    "load_pyasic",
    "phase_of",
    "reading_from",
]
