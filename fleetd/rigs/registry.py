"""Every rig the site has: pool-side truth from shares, rig-side truth from polls, in one place.

A rig's identity is its worker name. It is found from Stratum connections (worker
name and peer IP; the pool core adds one only for real work: an accepted share, or a login
a policy proves) or from the inventory file, and keeps its counters and history when
it reconnects. Hot paths (a share, a reject) touch plain attributes; the telemetry layer
reads them at scrape time.

A rig is valued (the economics) and judged (curtailment) on its current stretch of mining
(``Rig.current_estimate``). The windows are exponential averages over time, and time a rig
did not mine for reasons that say nothing of what it earns (fleetd held it off, it was gone
from Stratum, fleetd itself was down and the journal seeded the averages across the gap) pulls
its rate down: a rig switched back on at a cheap price would look unprofitable at once. So
from the later of its (re)connection and fleetd switching it back on, until the window has
forgotten what came before (``FORGET_TIME_CONSTANTS``), its rate is the plain one of the
shares since, with Garwood's interval.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

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
# constants are a minute and more); the share path then costs three additions and a product
# (the work, and its square for the number of shares the rates rest on), not three exp().
FOLD_SECONDS = 1.0
# A hash rate's interval is two-sided 95 %: 2.5 % of the chance on each side.
CONFIDENCE_TAIL = 0.025
_Z = 1.959963984540054  # the standard normal quantile at 1 - CONFIDENCE_TAIL
# Gamma quantiles of shape 1 to this are interpolated in a table of exact ones (Wilson–Hilferty
# is 48 % off in the lower tail at shape 1, 0.07 % at 15); above, Wilson–Hilferty is within 3e-5.
TABLED_BELOW = 100.0
TABLE_POINTS = 49  # evenly spaced in 1/sqrt(shape): cubic interpolation is then within 3e-5
# An exponential average keeps e^-3 (5 %) of its weight from three time constants back: after
# that, time a rig did not mine no longer weighs on the window's rate
FORGET_TIME_CONSTANTS = 3.0


class HashrateEstimate(NamedTuple):
    """A pool-side hash rate with its two-sided 95 % confidence interval, all in H/s.

    ``shares`` is the effective number of shares the rate rests on, (Σ w·h)² / Σ (w·h)²
    over the shares' exponential weights w and credited work h: the count of equally
    weighted shares that would give the rate the same Poisson noise. For a steady rig it
    is twice the decayed count, since an exponential average over τ is as precise as a plain
    count over 2τ. Scaling every share's work alike (``RigRegistry.credit_scale``) leaves it
    as it is. ``upper`` is infinite when the rig has sent no share and has no difficulty
    yet: nothing bounds what it does. A tuple rather than a dataclass: a scrape makes three
    per rig, and a tuple is made in half the time.
    """

    rate: float
    shares: float
    lower: float
    upper: float

    @property
    def relative_error(self) -> float:
        """The rate's relative standard error, 1/sqrt(shares); infinite with no share."""
        return 1.0 / math.sqrt(self.shares) if self.shares > 0 else math.inf


class RateAverage:
    """An exponentially decaying average of a rate, like the load average: O(1) per event.

    Until a full time constant has passed it is divided by the weight it has had time
    to gather, so a rig that just connected shows its real rate, not a slow ramp from 0.
    Beside it decays the sum of the squared amounts (at twice the rate: the squared
    weights), from which ``estimate`` tells how many shares the rate rests on.
    """

    __slots__ = ("tau", "_value", "_squares", "_updated", "_started")

    def __init__(self, tau: float) -> None:
        self.tau = tau
        self._value = 0.0
        self._squares = 0.0  # Σ w²·h² over every amount h, w its weight now
        self._updated: float | None = None
        self._started: float | None = None

    def add(self, amount: float, now: float, squares: float | None = None) -> None:
        """``amount`` as of ``now``; ``squares``, the sum of the squares of the shares' work it
        is made of (by default it is one share's)."""
        if squares is None:
            squares = amount * amount
        if self._started is None:
            self._started = now - 1.0  # a first share stands for about a second of work
        updated = self._updated
        if updated is None:
            self._value, self._squares = amount / self.tau, squares
        else:
            decay = math.exp((updated - now) / self.tau) if now > updated else 1.0
            self._value = self._value * decay + amount / self.tau
            self._squares = self._squares * decay * decay + squares
        self._updated = now

    def rate(self, now: float) -> float:
        if self._started is None:
            return 0.0
        weight = 1.0 - math.exp(-max(1e-9, now - self._started) / self.tau)
        return self._value * self._decay(now) / weight

    def estimate(self, now: float, share: float) -> HashrateEstimate:
        """The rate with its 95 % interval; ``share`` is the work a share would credit now
        (hashes), what a rig that has sent none is bounded by."""
        tau, started, updated = self.tau, self._started, self._updated
        if started is None or updated is None:
            return rate_interval(0.0, 0.0, share, tau)
        decay = math.exp((updated - now) / tau) if now > updated else 1.0
        exposure = tau * (1.0 - math.exp(-max(1e-9, now - started) / tau))
        return rate_interval(self._value * tau * decay, self._squares * decay * decay, share, exposure)

    def _decay(self, now: float) -> float:
        if self._updated is None:
            return 0.0
        return math.exp(-max(0.0, now - self._updated) / self.tau)


def rate_interval(work: float, squares: float, share: float, exposure: float) -> HashrateEstimate:
    """A rate from exponentially weighted Poisson events, with its two-sided 95 % interval.

    ``work`` is Σ w·h over the events (w their weights, h their work), ``squares`` Σ (w·h)²,
    ``exposure`` the weighted time they came in (seconds), ``share`` the work of an event
    of weight 1, one that came now. This is Fay and Feuer's gamma interval for a weighted
    sum of Poisson counts (Statistics in Medicine 16:791, 1997): with unit weights it is
    Garwood's exact interval for a count. The lower bound is the count's gamma quantile at
    shape (Σ w·h)²/Σ (w·h)², the effective number of events; the upper bound adds the
    event that might come now, so a rig that stopped is bounded by the few shares a window
    might have missed, not by its fading rate. With no event at all the rate is 0, the
    lower bound 0 and the upper one the rate that -ln(0.025) ≈ 3.7 events of ``share`` in
    the exposure (a full window, for an average that has had none) would mean. That is the
    same formula's limit: the upper end of the two-sided interval rather than the one-sided
    3.0, so that bounds do not jump as shares decay away.
    """
    rate = work / exposure
    shares = work * work / squares if squares > 0.0 else 0.0
    lower = squares / work * gamma_quantile(CONFIDENCE_TAIL, shares) / exposure if shares > 0.0 else 0.0
    top_work, top_squares = work + share, squares + share * share
    if top_squares > 0.0:
        top_shares = top_work * top_work / top_squares
        upper = top_squares / top_work * gamma_quantile(1.0 - CONFIDENCE_TAIL, top_shares) / exposure
    else:
        upper = math.inf  # no share, nor any difficulty to say what one is worth
    return HashrateEstimate(rate, shares, lower, upper)


def gamma_quantile(p: float, shape: float) -> float:
    """x with P(shape, x) = p: the p-quantile of a gamma distribution of unit scale, which is
    half the chi-square quantile at 2·shape degrees of freedom.

    For the interval's two tails (p = CONFIDENCE_TAIL, 1 - CONFIDENCE_TAIL), cheap: a table
    of exact quantiles up to ``TABLED_BELOW``, Wilson–Hilferty above. Any other p, and a
    shape below 1, is solved exactly.
    """
    table = _TABLES.get(p)
    if table is None or shape < 0.999999:  # a hair below 1 (one share, rounded) is the table's end
        return _solve_gamma(p, shape, shape) if shape > 0.0 else 0.0
    if shape >= TABLED_BELOW:
        return _wilson_hilferty(shape, -_Z if p < 0.5 else _Z)
    # a cubic in ln(x / shape) against 1/sqrt(shape), piecewise between the tabled shapes
    at = (1.0 / math.sqrt(shape) - _TABLE_START) * _TABLE_SCALE
    k = min(int(at), TABLE_POINTS - 2)
    f = at - k
    c0, c1, c2, c3 = table[k]
    return shape * math.exp(c0 + f * (c1 + f * (c2 + f * c3)))


def _wilson_hilferty(shape: float, z: float) -> float:
    """The gamma quantile at the normal quantile z, from the cube root's near normality."""
    c = 1.0 / (9.0 * shape)
    base = 1.0 - c + z * math.sqrt(c)
    return shape * base * base * base if base > 0.0 else 0.0


def _solve_gamma(p: float, shape: float, x: float) -> float:
    """Newton's method on ln P(shape, x) in ln x, from ``x``; P from its power series
    P = x^a e^-x S / Γ(a+1), S = Σ x^n / ((a+1)…(a+n)), for which d ln P / d ln x = a / S."""
    target, norm = math.log(p), math.lgamma(shape + 1.0)
    # x^a / Γ(a+1) bounds P from above, so this start is never past the lower quantile
    floor = (target + norm) / shape
    if floor < -700.0:
        return 0.0  # a quantile below 1e-304: nothing a float tells from 0
    x = max(x, math.exp(floor))
    for _ in range(50):
        total, term, n = 1.0, 1.0, 0.0
        while term > 1e-17 * total:
            n += 1.0
            term *= x / (shape + n)
            total += term
        step = (shape * math.log(x) - x + math.log(total) - norm - target) * total / shape
        x *= math.exp(-min(2.0, max(-2.0, step)))
        if abs(step) < 1e-13:
            break
    return x


def _quantile_table(p: float) -> tuple[tuple[float, float, float, float], ...]:
    """For each interval between TABLE_POINTS shapes (from TABLED_BELOW down to 1, evenly
    spaced in 1/sqrt(shape)), the coefficients in f, its position within the interval, of
    the cubic through ln(x / shape) at the four nearest tabled shapes (Lagrange)."""
    shapes = [1.0 / (_TABLE_START + k / _TABLE_SCALE) ** 2 for k in range(TABLE_POINTS)]
    y = [math.log(_solve_gamma(p, a, _wilson_hilferty(a, -_Z if p < 0.5 else _Z)) / a) for a in shapes]
    cubics = []
    for k in range(TABLE_POINTS - 1):
        i = min(max(k, 1), TABLE_POINTS - 3)  # the four points are i - 1 .. i + 2
        y0, y1, y2, y3 = y[i - 1 : i + 3]
        # in g = f + k - i, the cubic through (-1, y0), (0, y1), (1, y2), (2, y3) ...
        a0, a1 = y1, (-2 * y0 - 3 * y1 + 6 * y2 - y3) / 6
        a2, a3 = (y0 - 2 * y1 + y2) / 2, (-y0 + 3 * y1 - 3 * y2 + y3) / 6
        # ... then in f, shifted by s = k - i (0, or -1 / +1 at the ends)
        s = k - i
        cubics.append((
            a0 + s * (a1 + s * (a2 + s * a3)),
            a1 + s * (2 * a2 + 3 * s * a3),
            a2 + 3 * s * a3,
            a3,
        ))  # fmt: skip
    return tuple(cubics)


_TABLE_START = 1.0 / math.sqrt(TABLED_BELOW)
_TABLE_SCALE = (TABLE_POINTS - 1) / (1.0 - _TABLE_START)
_TABLES = {p: _quantile_table(p) for p in (CONFIDENCE_TAIL, 1.0 - CONFIDENCE_TAIL)}  # a millisecond at import


class Rig:
    """One rig: identity, pool-side counters, the latest poll and integrated energy."""

    __slots__ = (
        "name", "ip", "model", "firmware", "nominal_hashrate", "nominal_watts",
        "accepted", "accepted_work", "rejected", "blocks", "last_share", "difficulty", "connections",
        "connected_since", "averages", "reading", "poll_failures", "last_poll", "energy_joules", "_energy_at",
        "_energy_watts", "first_seen", "last_seen", "_unfolded", "_unfolded_squares", "_folded_at", "_share",
        "stretch_began", "_stretch_at", "_stretch_accepted", "_stretch_work",
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
        self._unfolded_squares = 0.0  # and the sum of each share's hashes squared
        self._folded_at = -math.inf
        self._share = 0.0  # hashes of the shares last folded, on average (weighted by their work)
        self.stretch_began: float | None = None  # the current stretch of mining: (re)connected or switched back on
        self._stretch_at = now  # ... and the counters when it began
        self._stretch_accepted = 0
        self._stretch_work = 0.0

    def credit(self, hashes: float, now: float) -> None:
        """One share's accepted work, into the rate averages within ``FOLD_SECONDS``."""
        self._unfolded += hashes
        self._unfolded_squares += hashes * hashes
        if now - self._folded_at >= FOLD_SECONDS:
            self.fold(now)

    def fold(self, now: float) -> None:
        """Take the work credited since the last fold into the averages, as of ``now``."""
        self._folded_at = now
        hashes, self._unfolded = self._unfolded, 0.0
        squares, self._unfolded_squares = self._unfolded_squares, 0.0
        if hashes:
            for average in self.averages.values():
                average.add(hashes, now, squares)
            self._share = squares / hashes

    def seed(self, history: list[tuple[float, float, float]], started: float) -> None:
        """Rebuild the rate averages from (time, hashes, shares) of work done since ``started``,
        oldest first: a restart's journal history, so the 1m/5m/1h rates and the number of
        shares they rest on are right at once. The shares of one item are taken to be of equal
        work (hashes / shares each); they may be a fraction, a piece of a minute's."""
        for average in self.averages.values():
            average._started = started
            for at, hashes, shares in history:
                if hashes:
                    average.add(hashes, at, hashes * hashes / shares if shares > 0 else None)
        for _, hashes, shares in reversed(history):
            if hashes:
                self._share = hashes / shares if shares > 0 else hashes
                break

    @property
    def accepted_hashes(self) -> float:
        return self.accepted_work * HASHES_PER_DIFFICULTY

    def hashrate(self, window: str, now: float) -> float:
        """Pool-side hash rate in H/s, averaged over ``window`` (1m, 5m, 1h)."""
        if self._unfolded:
            self.fold(self.last_share)  # work waiting to be folded came by the last share
        return self.averages[window].rate(now)

    def hashrate_estimate(self, window: str, now: float, credit_scale: float = 1.0) -> HashrateEstimate:
        """The pool-side hash rate over ``window`` with its 95 % interval and the effective
        number of shares behind it (see ``rate_interval``). A share that might come now is
        worth what the last ones were, or before any, the difficulty in force times
        ``credit_scale`` (the registry's)."""
        if self._unfolded:
            self.fold(self.last_share)
        share = self._share or self.difficulty * credit_scale * HASHES_PER_DIFFICULTY
        return self.averages[window].estimate(now, share)

    def begin_stretch(self, began: float, now: float) -> None:
        """A stretch of mining from ``began`` (it reconnected, or fleetd switched it back on);
        its shares are counted from the counters as they are ``now``. A rig that never had a
        share accepted has nothing before for the windows to remember: they are its stretch."""
        self.stretch_began, self._stretch_at = (began if self.accepted else None), now
        self._stretch_accepted, self._stretch_work = self.accepted, self.accepted_work

    def current_hashrate(self, window: str, now: float) -> float:
        """The rate the rig is valued and judged on (the module's docstring): its stretch's
        while the window still remembers time before it, else the window's."""
        stretch = self._stretch(window, now)
        if stretch is None:
            return self.hashrate(window, now)
        _, hashes, seconds = stretch
        return hashes / seconds

    def current_estimate(self, window: str, now: float, credit_scale: float = 1.0) -> HashrateEstimate:
        """``current_hashrate`` with its 95 % interval and the shares behind it."""
        stretch = self._stretch(window, now)
        if stretch is None:
            return self.hashrate_estimate(window, now, credit_scale)
        shares, hashes, seconds = stretch
        share = hashes / shares if shares else self.difficulty * credit_scale * HASHES_PER_DIFFICULTY
        # taken as shares of one difficulty: the count is the effective number
        return rate_interval(hashes, hashes * share, share, seconds)

    def _stretch(self, window: str, now: float) -> tuple[int, float, float] | None:
        """(shares, hashes, seconds) of the current stretch; None when the window holds
        nothing else: mining since fleetd first saw the rig, or long enough."""
        began = self.stretch_began
        if began is None or self.first_seen >= began or now - began >= FORGET_TIME_CONSTANTS * AVERAGE_WINDOWS[window]:
            return None
        shares = max(0, self.accepted - self._stretch_accepted)
        hashes = max(0.0, self.accepted_work - self._stretch_work) * HASHES_PER_DIFFICULTY
        return shares, hashes, max(now - self._stretch_at, 1.0)

    def power(self, now: float, window: str = "5m") -> tuple[float | None, str | None]:
        """(watts, source): as the rig reports it, else its nameplate scaled by hash rate
        (reported, else pool-side over ``window``, its current stretch's as it is valued).

        Stock Antminer firmware reports no power; the estimate says "nameplate" so it is
        never passed off as measured.
        """
        reading = self.reading
        if reading is not None and reading.watts:
            return reading.watts, "reported"
        watts, rate = self.nameplate()
        if not watts or not rate:
            return None, None
        reported = reading.hashrate if reading is not None else None
        measured = reported if reported is not None else self.current_hashrate(window, now)
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
            rig.begin_stretch(now, now)
        rig.connections += 1
        rig.last_seen = now
        if ip:
            self._set_ip(rig, ip)
        return rig

    def resumed(self, name: str, at: float, now: float) -> None:
        """fleetd switched the rig back on at ``at``: a new stretch of mining, unless a later one began."""
        rig = self.rigs.get(name)
        if rig is not None and (rig.stretch_began is None or at > rig.stretch_began):
            rig.begin_stretch(at, now)

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
