"""Every rig the site has: pool-side truth from shares, rig-side truth from polls, in one place.

A rig's identity is its worker name. It is found from Stratum connections (worker
name and peer IP; the pool core adds one only for real work: an accepted share, or a login
a policy proves) or from the inventory file, and keeps its counters and history when
it reconnects. Hot paths (a share, a reject) touch plain attributes; the telemetry layer
reads them at scrape time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from fleetd.rigs.models import find_model
from fleetd.rigs.reading import RigReading

HASHES_PER_DIFFICULTY = 2**32  # a difficulty-1 share is 2^32 hashes of expected work
AVERAGE_WINDOWS = {"1m": 60.0, "5m": 300.0, "1h": 3600.0}
UNAUTHENTICATED = "(unauthenticated)"  # rejects before any worker is authorized on a connection
# FleetdRigChipTemperatureCritical fires on a chip sensor above this (the runbook: power off)
CHIP_CRITICAL_CELSIUS = 95.0
# Watts are kept to the milliwatt: a nameplate estimate is a product of floats that carries the
# reported rate's noise (3500.000174999999 W from 200.00001 TH/s summed over rounded board
# rates), and a sum of watts grows its own.
WATTS_DIGITS = 3
# A share's work joins the rate averages at most this long after it came (the averages' time
# constants are a minute and more); the share path then costs two additions, not three exp().
FOLD_SECONDS = 1.0


class RateAverage:
    """An exponentially decaying average of a rate, like the load average: O(1) per event.

    Until a full time constant has passed it is divided by the weight it has had time
    to gather, so a rig that just connected shows its real rate, not a slow ramp from 0.
    """

    __slots__ = ("tau", "_value", "_updated", "_started")

    def __init__(self, tau: float) -> None:
        self.tau = tau
        self._value = 0.0
        self._updated: float | None = None
        self._started: float | None = None

    def add(self, amount: float, now: float) -> None:
        if self._started is None:
            self._started = now - 1.0  # a first share stands for about a second of work
        self._value = self._decayed(now) + amount / self.tau
        self._updated = now

    def rate(self, now: float) -> float:
        if self._started is None:
            return 0.0
        weight = 1.0 - math.exp(-max(1e-9, now - self._started) / self.tau)
        return self._decayed(now) / weight

    def _decayed(self, now: float) -> float:
        if self._updated is None:
            return 0.0
        return self._value * math.exp(-max(0.0, now - self._updated) / self.tau)


class Rig:
    """One rig: identity, pool-side counters, the latest poll and integrated energy."""

    __slots__ = (
        "name", "ip", "model", "firmware", "nominal_hashrate", "nominal_watts",
        "accepted", "accepted_work", "rejected", "blocks", "last_share", "difficulty", "connections",
        "connected_since", "averages", "reading", "poll_failures", "last_poll", "energy_joules", "_energy_at",
        "_energy_watts", "first_seen", "last_seen", "_unfolded", "_folded_at",
    )  # fmt: skip

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.ip: str | None = None
        self.model: str | None = None
        self.firmware: str | None = None
        self.nominal_hashrate: float | None = None  # H/s, from the inventory or the catalogue
        self.nominal_watts: float | None = None
        self.accepted = 0
        self.accepted_work = 0.0  # sum of accepted share difficulties; x 2^32 is hashes
        self.rejected: Counter = Counter()  # by the server's machine-readable reason
        self.blocks = 0
        self.last_share: float | None = None
        self.difficulty = 0.0
        self.connections = 0
        self.connected_since: float | None = None  # when its connections last went from none to one
        self.averages = {window: RateAverage(tau) for window, tau in AVERAGE_WINDOWS.items()}
        self.reading: RigReading | None = None
        self.poll_failures = 0
        self.last_poll: float | None = None  # last successful poll
        self.energy_joules = 0.0
        self._energy_at: float | None = None
        self._energy_watts = 0.0
        self.first_seen = now
        self.last_seen = now
        self._unfolded = 0.0  # hashes credited since the averages last took them in
        self._folded_at = -math.inf

    def credit(self, hashes: float, now: float) -> None:
        """Accepted work, into the rate averages within ``FOLD_SECONDS``."""
        self._unfolded += hashes
        if now - self._folded_at >= FOLD_SECONDS:
            self.fold(now)

    def fold(self, now: float) -> None:
        """Take the work credited since the last fold into the averages, as of ``now``."""
        self._folded_at = now
        hashes, self._unfolded = self._unfolded, 0.0
        if hashes:
            for average in self.averages.values():
                average.add(hashes, now)

    def seed(self, history: list[tuple[float, float]], started: float) -> None:
        """Rebuild the rate averages from (time, hashes) of work done since ``started``, oldest
        first: a restart's journal history, so the 1m/5m/1h rates are right at once."""
        for average in self.averages.values():
            average._started = started
            for at, hashes in history:
                if hashes:
                    average._value = average._decayed(at) + hashes / average.tau
                    average._updated = at

    @property
    def accepted_hashes(self) -> float:
        return self.accepted_work * HASHES_PER_DIFFICULTY

    def hashrate(self, window: str, now: float) -> float:
        """Pool-side hash rate in H/s, averaged over ``window`` (1m, 5m, 1h)."""
        if self._unfolded:
            self.fold(self.last_share)  # work waiting to be folded came by the last share
        return self.averages[window].rate(now)

    def power(self, now: float, window: str = "5m") -> tuple[float | None, str | None]:
        """(watts, source): as the rig reports it, else its nameplate scaled by hash rate
        (reported, else pool-side over ``window``).

        Stock Antminer firmware reports no power; the estimate says "nameplate" so it is
        never passed off as measured.
        """
        reading = self.reading
        if reading is not None and reading.watts:
            return reading.watts, "reported"
        watts, rate = self.nameplate()
        if not watts or not rate:
            return None, None
        measured = reading.hashrate if reading is not None and reading.hashrate else self.hashrate(window, now)
        return round(watts * max(0.0, measured) / rate, WATTS_DIGITS), "nameplate"

    def nameplate(self) -> tuple[float | None, float | None]:
        """(watts, H/s) from the inventory, else from the model catalogue."""
        if self.nominal_watts and self.nominal_hashrate:
            return self.nominal_watts, self.nominal_hashrate
        model = find_model(self.model) if self.model else None
        return (model.nominal_watts, model.nominal_hashrate) if model else (None, None)

    def efficiency(self, now: float) -> float | None:
        """Joules per terahash from watts and the pool-side 5-minute hash rate."""
        watts, _ = self.power(now)
        return joules_per_terahash(watts, self.hashrate("5m", now))

    def hottest_chip(self) -> float | None:
        """The hottest chip sensor of the last poll: what the critical-temperature alert reads."""
        reading = self.reading
        if reading is None:
            return None
        return max((t for sensor, t in reading.temperatures.items() if sensor.startswith("chip")), default=None)


def joules_per_terahash(watts: float | None, hashrate: float) -> float | None:
    return watts / (hashrate / 1e12) if watts and hashrate > 0 else None


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """The fleet at one moment. Rates and power count only rigs that are up, as the economics
    does: a rig that is down is an outage, and its last figures would otherwise linger."""

    rigs: int
    up: int
    hot: int
    connected: int
    hashrate: dict[str, float]  # pool-side, by window
    reported_hashrate: float
    watts: float
    powered_hashrate: float  # pool-side over 5 m, of the rigs up that have a power figure
    accepted: int
    rejected: int
    blocks: int

    @property
    def efficiency(self) -> float | None:
        """Joules per terahash of the rigs up with a power figure, over their pool-side 5-minute rate."""
        return joules_per_terahash(self.watts, self.powered_hashrate)


class RigRegistry:
    """Rigs by worker name, with an index by IP for pollers. One per daemon, loop thread only."""

    def __init__(self, *, poll_interval: float | None = None, retention: float = 86400.0) -> None:
        self.rigs: dict[str, Rig] = {}
        self._by_ip: dict[str, str] = {}
        self.poll_interval = poll_interval  # None: no poller, so "up" means connected
        self.retention = retention
        # Work credited per unit of share difficulty. Always 1 on a real site; only the demo's
        # simulated fleet, which grinds a tiny fixed fraction of its nominal work, scales it up.
        self.credit_scale = 1.0

    def __len__(self) -> int:
        return len(self.rigs)

    def __iter__(self) -> Iterator[Rig]:
        return iter(list(self.rigs.values()))

    def get(self, name: str) -> Rig | None:
        return self.rigs.get(name)

    def rig(self, name: str, now: float) -> Rig:
        rig = self.rigs.get(name)
        if rig is None:
            rig = self.rigs[name] = Rig(name, now)
        return rig

    def restore(self, records) -> list[Rig]:
        """Rigs as a journal kept them (identity and cumulative counters, records with the
        attributes of ``fleetd.journal.store.RigRecord``), so counters continue where they stopped.
        A rig already known keeps what it has."""
        restored = []
        for record in records:
            if record.name in self.rigs:
                continue
            rig = self.rigs[record.name] = Rig(record.name, record.first_seen)
            rig.last_seen = record.last_seen
            rig.last_share = record.last_share
            rig.model, rig.firmware = record.model, record.firmware
            rig.accepted = record.accepted
            rig.accepted_work = record.accepted_work
            rig.rejected = Counter(record.rejected)
            rig.blocks = record.blocks
            rig.energy_joules = record.energy_joules
            if record.ip and record.ip not in self._by_ip:
                self._set_ip(rig, record.ip)
            restored.append(rig)
        return restored

    def by_ip(self, ip: str) -> Rig | None:
        name = self._by_ip.get(ip)
        return self.rigs.get(name) if name else None

    # -- pool side --------------------------------------------------------------------

    def connected(self, name: str, ip: str | None, now: float) -> Rig:
        rig = self.rig(name, now)
        if rig.connections == 0:
            rig.connected_since = now
        rig.connections += 1
        rig.last_seen = now
        if ip:
            self._set_ip(rig, ip)
        return rig

    def disconnected(self, name: str, now: float) -> None:
        rig = self.rigs.get(name)
        if rig is not None:
            rig.connections = max(0, rig.connections - 1)
            rig.last_seen = now

    def share(self, name: str, difficulty: float, now: float) -> None:
        rig = self.rig(name, now)
        work = difficulty * self.credit_scale
        rig.accepted += 1
        rig.accepted_work += work
        rig.last_share = rig.last_seen = now
        rig.credit(work * HASHES_PER_DIFFICULTY, now)

    def reject(self, name: str, reason: str, now: float) -> None:
        rig = self.rig(name, now)
        rig.rejected[reason] += 1
        rig.last_seen = now

    # -- rig side ---------------------------------------------------------------------

    def reading(self, reading: RigReading) -> Rig:
        """A successful poll: attach it to the rig at that IP (or the one it names), integrate energy."""
        now = reading.time
        rig = self.by_ip(reading.ip)
        if rig is None:
            rig = self.rig(reading.worker or reading.ip, now)
            self._set_ip(rig, reading.ip)
        rig.reading = reading
        rig.model = reading.model or rig.model
        rig.firmware = reading.firmware or rig.firmware
        rig.poll_failures = 0
        rig.last_poll = rig.last_seen = now
        watts, _ = rig.power(now)
        self._integrate(rig, watts or 0.0, now)
        return rig

    def poll_failed(self, ip: str, now: float) -> None:
        rig = self.by_ip(ip)
        if rig is not None:
            rig.poll_failures += 1
            self._integrate(rig, 0.0, now)  # an unreachable rig's draw is unknown: count none

    def add_inventory(self, name: str, ip: str, model: str | None, nominal_hashrate: float | None,
                      nominal_watts: float | None, now: float) -> Rig:  # fmt: skip
        rig = self.rig(name, now)
        self._set_ip(rig, ip)
        rig.model = model or rig.model
        rig.nominal_hashrate = nominal_hashrate or rig.nominal_hashrate
        rig.nominal_watts = nominal_watts or rig.nominal_watts
        return rig

    def up(self, rig: Rig, now: float) -> bool:
        """Connected and, where rigs are polled, polled within two intervals. A rig that
        connected less than two intervals ago is up too: its first poll has not been due."""
        if rig.connections == 0:
            return False
        if self.poll_interval is None or rig.ip is None:
            return True
        latest = max((t for t in (rig.last_poll, rig.connected_since) if t is not None), default=-math.inf)
        return now - latest <= 2 * self.poll_interval

    def state(self, rig: Rig, now: float) -> str:
        """For operators: down, hot (up, with a chip above the critical temperature) or up."""
        if not self.up(rig, now):
            return "down"
        hottest = rig.hottest_chip()
        return "hot" if hottest is not None and hottest > CHIP_CRITICAL_CELSIUS else "up"

    def totals(self, now: float) -> FleetTotals:
        rigs = list(self.rigs.values())
        states = [self.state(rig, now) for rig in rigs]
        live = [rig for rig, state in zip(rigs, states) if state != "down"]
        powered = [(rig, watts) for rig in live if (watts := rig.power(now)[0]) is not None]
        return FleetTotals(
            rigs=len(rigs),
            up=len(live),
            hot=states.count("hot"),
            connected=sum(rig.connections > 0 for rig in rigs),
            hashrate={window: sum(rig.hashrate(window, now) for rig in live) for window in AVERAGE_WINDOWS},
            reported_hashrate=sum(rig.reading.hashrate or 0.0 for rig in live if rig.reading),
            watts=round(sum(watts for _, watts in powered), WATTS_DIGITS),
            powered_hashrate=sum(rig.hashrate("5m", now) for rig, _ in powered),
            accepted=sum(rig.accepted for rig in rigs),
            rejected=sum(sum(rig.rejected.values()) for rig in rigs),
            blocks=sum(rig.blocks for rig in rigs),
        )

    def retire(self, now: float) -> list[str]:
        """Forget rigs gone longer than the retention (their series disappear with them)."""
        gone = [r.name for r in self.rigs.values() if r.connections == 0 and now - r.last_seen > self.retention]
        for name in gone:
            rig = self.rigs.pop(name)
            if rig.ip and self._by_ip.get(rig.ip) == name:
                del self._by_ip[rig.ip]
        return gone

    def _set_ip(self, rig: Rig, ip: str) -> None:
        if rig.ip and rig.ip != ip and self._by_ip.get(rig.ip) == rig.name:
            del self._by_ip[rig.ip]
        rig.ip = ip
        self._by_ip[ip] = rig.name

    def _integrate(self, rig: Rig, watts: float, now: float) -> None:
        # Hold the previous power over the gap, but never across more than two poll
        # intervals: a rig nobody could read is not assumed to have drawn power.
        if rig._energy_at is not None:
            gap = max(0.0, now - rig._energy_at)
            if self.poll_interval is not None:
                gap = min(gap, 2 * self.poll_interval)
            rig.energy_joules += rig._energy_watts * gap
        rig._energy_at = now
        rig._energy_watts = watts
