"""Who may connect, and how much one source address may take: decisions without sockets.

The transport asks; this module answers from counts and the clock's monotonic time it is
handed, so every limit is testable without a socket. Nothing here logs: the transport
logs what it refuses, through a ``LogLimiter`` so that a flood writes a few lines, not one
per attempt.
"""

from __future__ import annotations

import resource
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

# Why a connection was refused, as counted and logged.
BANNED = "banned"
MAX_CONNECTIONS = "max_connections"
MAX_CONNECTIONS_PER_IP = "max_connections_per_ip"
CONNECT_RATE = "connect_rate"
EXTRANONCE_EXHAUSTED = "extranonce_exhausted"

FD_HEADROOM = 512  # descriptors kept for the HTTP side, pollers, the journal and log files


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Limits per source address and in total. The defaults fit a large site: a site proxy
    fronting more rigs than these from one address needs its per-address limits raised."""

    max_connections: int = 20_000
    max_connections_per_ip: int = 1_000
    connect_rate_per_ip: float = 50.0  # new connections per second per address, on average
    connect_burst_per_ip: int = 500  # ... and at once (a proxy reconnecting all its rigs)
    max_workers_per_ip: int = 2_000  # distinct authorized worker names on one address's connections
    ban_after_failed_logins: int = 10  # connections in a row that failed authorization
    ban_seconds: float = 60.0  # the first ban; each next one doubles
    max_ban_seconds: float = 3600.0
    ban_forget_seconds: float = 3600.0  # quiet this long after its last failure or ban: starts afresh

    def __post_init__(self) -> None:
        for key in ("max_connections", "max_connections_per_ip", "connect_burst_per_ip", "max_workers_per_ip",
                    "ban_after_failed_logins"):  # fmt: skip
            value = getattr(self, key)
            if type(value) is not int or value < 1:
                raise ValueError(f"AdmissionConfig.{key} = {value!r}: expected a positive integer")
        for key in ("connect_rate_per_ip", "ban_seconds", "max_ban_seconds", "ban_forget_seconds"):
            value = getattr(self, key)
            if not value > 0:
                raise ValueError(f"AdmissionConfig.{key} = {value!r}: expected a positive number")


class _Source:
    """What one address holds and has done."""

    __slots__ = ("connections", "tokens", "refilled", "workers", "failures", "last_failure", "bans", "banned_until")

    def __init__(self, burst: int, now: float) -> None:
        self.connections = 0
        self.tokens = float(burst)
        self.refilled = now
        self.workers: dict[str, int] = {}  # worker name -> connections it is authorized on
        self.failures = 0  # failed logins since the last success or ban
        self.last_failure = 0.0
        self.bans = 0  # bans so far: the next lasts ban_seconds * 2**bans
        self.banned_until = 0.0


class Admission:
    """Connection, rate, worker and ban decisions for every source address."""

    def __init__(self, config: AdmissionConfig = AdmissionConfig()) -> None:
        self.config = config
        self.connections = 0
        self._sources: dict[str, _Source] = {}

    def admit(self, ip: str, now: float) -> str | None:
        """Take a new connection from ``ip``: None when admitted (``release`` it later), else why not."""
        config = self.config
        source = self._sources.get(ip)
        if source is None:
            source = self._sources[ip] = _Source(config.connect_burst_per_ip, now)
        if now < source.banned_until:
            return BANNED
        if self.connections >= config.max_connections:
            return MAX_CONNECTIONS
        if source.connections >= config.max_connections_per_ip:
            return MAX_CONNECTIONS_PER_IP
        tokens = source.tokens + (now - source.refilled) * config.connect_rate_per_ip
        source.tokens = min(tokens, float(config.connect_burst_per_ip))
        source.refilled = now
        if source.tokens < 1.0:
            return CONNECT_RATE
        source.tokens -= 1.0
        source.connections += 1
        self.connections += 1
        return None

    def release(self, ip: str, workers: Iterable[str] = ()) -> None:
        """An admitted connection ended; ``workers``: the names it had authorized."""
        source = self._sources.get(ip)
        if source is None:
            return
        source.connections -= 1
        self.connections -= 1
        held = source.workers
        for worker in workers:
            count = held.get(worker, 0) - 1
            if count > 0:
                held[worker] = count
            else:
                held.pop(worker, None)

    def admit_worker(self, ip: str, worker: str) -> bool:
        """One more connection from ``ip`` authorizes ``worker``: allowed unless it is a new name
        beyond the address's limit. A name already held there is always allowed."""
        source = self._sources.get(ip)
        if source is None:
            return False
        held = source.workers
        count = held.get(worker)
        if count is None and len(held) >= self.config.max_workers_per_ip:
            return False
        held[worker] = 1 if count is None else count + 1
        return True

    def login_failed(self, ip: str, now: float) -> float | None:
        """A connection from ``ip`` ended without authorizing anyone, after refused credentials.
        Returns the ban it earned, in seconds, when it starts one."""
        config = self.config
        source = self._sources.get(ip)
        if source is None:
            source = self._sources[ip] = _Source(config.connect_burst_per_ip, now)
        if (source.failures or source.bans) and now - max(source.last_failure, source.banned_until) >= config.ban_forget_seconds:
            source.failures = source.bans = 0
        source.failures += 1
        source.last_failure = now
        if source.failures < config.ban_after_failed_logins:
            return None
        duration = min(config.ban_seconds * 2**source.bans, config.max_ban_seconds)
        source.bans += 1
        source.failures = 0
        source.banned_until = now + duration
        return duration

    def login_succeeded(self, ip: str) -> None:
        """A worker from ``ip`` authorized: its failure streak ends (a ban in force stays)."""
        source = self._sources.get(ip)
        if source is not None:
            source.failures = 0

    def banned(self, now: float) -> int:
        """Addresses refused at ``now`` for failed logins."""
        return sum(1 for source in self._sources.values() if now < source.banned_until)

    def prune(self, now: float) -> None:
        """Forget addresses that hold nothing and whose history no longer matters."""
        config = self.config
        burst = float(config.connect_burst_per_ip)
        forget = config.ban_forget_seconds
        idle = [
            ip
            for ip, s in self._sources.items()
            if not s.connections
            and now >= s.banned_until
            and (not (s.failures or s.bans) or now - max(s.last_failure, s.banned_until) >= forget)
            and s.tokens + (now - s.refilled) * config.connect_rate_per_ip >= burst
        ]
        for ip in idle:
            del self._sources[ip]

    def __len__(self) -> int:
        return len(self._sources)


class LogLimiter:
    """At most ``burst`` lines per key in each window; the rest are counted, and the count goes
    with the key's next line or with ``expire``'s summary."""

    __slots__ = ("window", "burst", "_windows")

    def __init__(self, window: float = 60.0, burst: int = 1) -> None:
        self.window = window
        self.burst = burst
        self._windows: dict[Hashable, list] = {}  # key -> [window start, lines, suppressed]

    def allow(self, key: Hashable, now: float) -> int | None:
        """None: stay quiet. Else log, with this many lines suppressed since the last one."""
        entry = self._windows.get(key)
        if entry is None or now - entry[0] >= self.window:
            self._windows[key] = [now, 1, 0]
            return entry[2] if entry is not None else 0
        if entry[1] < self.burst:
            entry[1] += 1
            return 0
        entry[2] += 1
        return None

    def expire(self, now: float) -> list[tuple[Hashable, int]]:
        """End the windows that are over; (key, lines suppressed) for those that kept quiet."""
        window = self.window
        ended = [key for key, entry in self._windows.items() if now - entry[0] >= window]
        summaries = []
        for key in ended:
            suppressed = self._windows.pop(key)[2]
            if suppressed:
                summaries.append((key, suppressed))
        return summaries


def raise_fd_limit() -> tuple[int, int, int]:
    """Raise the soft open-file limit to the hard one; (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised = target
        except (ValueError, OSError):
            raised = soft
    return soft, raised, hard


def connections_fd_allows(soft_limit: int) -> int:
    """Stratum connections a process with this open-file limit can hold, headroom kept."""
    return max(0, soft_limit - FD_HEADROOM)
