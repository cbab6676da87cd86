"""Which rigs to switch off and on, and whether it worked: a sans-IO controller.

Every ``cycle_seconds`` the caller gives ``Controller.cycle`` the time, the site's prices and
each rig's figures; it returns the actions to carry out (none in advise mode), and the caller
reports each one's result with ``done``. The controller reads no clock and touches no rig.

A rig is switched off for a reason:
- ``unprofitable``: its revenue at the upper bound of its hash rate (95 %) is below its power
  cost, and the estimate rests on at least ``min_shares`` shares. Share luck alone never
  switches a rig off. It comes back once its last rate would clear the cost by ``hysteresis``.
- ``price``: the power price is above ``price_above_usd_per_kwh`` (until it is below it by
  ``hysteresis``).
- ``window``: a scheduled window sheds a number of kW, or every rig above a J/TH.
- ``demand``: a demand-response request through the API sheds a number of kW until it ends.
- ``pinned``: a ``keep_off`` glob.

Safety: ``never`` globs are never touched; a rig stays off ``min_off_seconds`` and, for the
economic reasons, on ``min_on_seconds``; per cycle at most ``max_rigs_per_cycle`` rigs and
``ramp_kw_per_minute`` x the cycle's minutes of draw change. After a stop the rig's shares
must stop (and its reported watts fall) within ``verify_seconds``: a stop counts as done once
no share came for ``QUIET_SECONDS`` after the shares in flight; after a resume its shares must
return within ``resume_verify_seconds``; each is retried ``retries`` times, then the rig is
``failed`` and left alone until released. A rig held off for a price or a loss stays held
while those figures are unknown (a stale BTC price, no network figures yet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.economics.curtailment import curtail_for_reduction
from fleetd.economics.profitability import RigEconomics, rig_economics

MANDATORY = frozenset({"window", "demand", "pinned"})  # grid and operator obligations: min on-time does not hold them back
SHARE_GRACE_SECONDS = 30.0  # shares already in flight when a rig was told to stop
# ... then this long without a share before a stop counts as done: six of vardiff's default
# share intervals, in which a rig still hashing sends one but for a chance of e^-6
QUIET_SECONDS = 30.0
WATTS_FALLEN = 0.5  # a stopped rig's reported draw is below half of what it drew


@dataclass(frozen=True, slots=True)
class RigInput:
    """One rig as the controller judges it (hash rates in H/s, over the economics' window)."""

    name: str
    ip: str | None
    watts: float | None
    watts_reported: bool  # measured by the rig; False: a nameplate estimate that follows hash rate
    rate: float
    rate_lower: float
    rate_upper: float
    shares: float  # effective shares behind the rate
    usd_per_kwh: float | None
    last_share: float | None
    joules_per_terahash: float | None


@dataclass(frozen=True, slots=True)
class SiteInput:
    hashprice_usd_per_ph_day: float | None
    usd_per_kwh: float | None  # the site's price now
    local_time: object = None  # a datetime in the economics' zone, for the windows


@dataclass(frozen=True, slots=True)
class Demand:
    """A demand-response request: shed ``kw`` until ``until`` (Unix seconds)."""

    kw: float
    until: float
    requested_at: float


@dataclass(frozen=True, slots=True)
class Action:
    rig: str
    ip: str | None
    kind: str  # "stop" | "resume"
    reason: str
    attempt: int  # 1 for the first try


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the audit trail: what was decided or seen, why, and on what figures."""

    time: float
    rig: str
    kind: str  # advise, stop, resume, verified, retry, failed, came_back, released
    reason: str
    detail: Mapping


@dataclass(slots=True)
class Curtailed:
    """A rig fleetd switched (or is switching) off, as kept across restarts."""

    reason: str
    state: str  # stopping | off | resuming | failed
    since: float  # when it was first told to stop
    watts_before: float  # its draw then: what switching it off sheds
    rate_before: float  # its pool-side rate then: what it would earn again
    action_at: float  # the current attempt's time
    attempts: int = 1
    verified_at: float | None = None
    refused: bool = False  # the current attempt's call failed: retried at the next cycle

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, values: Mapping) -> Curtailed:
        return cls(**{name: values[name] for name in cls.__slots__ if name in values})


@dataclass(slots=True)
class Controller:
    config: CurtailmentConfig
    curtailed: dict[str, Curtailed] = field(default_factory=dict)
    resumed_at: dict[str, float] = field(default_factory=dict)  # when fleetd last switched a rig on
    demand: Demand | None = None
    events: list[Event] = field(default_factory=list)  # since the caller last took them
    advice: dict[str, str] = field(default_factory=dict)  # rig -> reason it would be off, every mode
    target_kw: float = 0.0  # what the windows and the demand ask to shed now
    came_back: int = 0  # rigs that mined again while fleetd held them off

    # -- the cycle ------------------------------------------------------------------

    def cycle(self, now: float, site: SiteInput, rigs: Mapping[str, RigInput]) -> list[Action]:
        if self.demand is not None and now >= self.demand.until:
            self._event(now, "*", "released", "demand", {"kw": self.demand.kw, "until": self.demand.until})
            self.demand = None
        actions = self._verify(now, rigs)
        wanted = self._wanted(now, site, rigs)
        if self.config.mode == "advise":  # the audit trail says when advice starts and ends
            for name in wanted.keys() - self.advice.keys():
                self._event(now, name, "advise", wanted[name], _figures(rigs[name]) if name in rigs else {})
            for name in self.advice.keys() - wanted.keys():
                self._event(now, name, "advise_ended", self.advice[name], {})
        self.advice = wanted
        if self.config.mode != "act":
            return []
        return actions + self._plan(now, wanted, rigs)

    def done(self, action: Action, ok: bool, detail: str, now: float) -> None:
        """The caller's report of one action: a refused call is retried at the next cycle."""
        self._event(now, action.rig, "acted", action.reason,
                    {"action": action.kind, "ok": ok, "detail": detail, "attempt": action.attempt})  # fmt: skip
        held = self.curtailed.get(action.rig)
        if not ok and held is not None:
            held.refused = True

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def held_off(self) -> set[str]:
        """The rigs fleetd is switching off, holds off or is switching back on (a failed one is
        not: its alerts are the operator's way to see it)."""
        return {name for name, held in self.curtailed.items() if held.state != "failed"}

    def shed_kw(self) -> float:
        return math.fsum(c.watts_before for c in self.curtailed.values() if c.state in ("stopping", "off")) / 1000

    def release(self, rig: str, now: float) -> bool:
        """An operator's release of a failed rig: fleetd forgets it held it off."""
        held = self.curtailed.pop(rig, None)
        if held is not None:
            self._event(now, rig, "released", held.reason, {"state": held.state})
        return held is not None

    # -- judging --------------------------------------------------------------------

    def _wanted(self, now: float, site: SiteInput, rigs: Mapping[str, RigInput]) -> dict[str, str]:
        """Every rig that should be off now, with the first reason that holds."""
        config, wanted = self.config, {}
        for name in rigs:
            if config.kept_off(name):
                wanted[name] = "pinned"
        self.target_kw = 0.0
        if self.demand is not None:
            self.target_kw = self.demand.kw
            self._shed(self.demand.kw, "demand", rigs, wanted)
        for window in config.windows:
            if site.local_time is None or not window.active(site.local_time):
                continue
            if window.shed_kw is not None:
                self.target_kw = max(self.target_kw, window.shed_kw)
                self._shed(window.shed_kw, "window", rigs, wanted)
            else:
                for name, rig in rigs.items():
                    j = rig.joules_per_terahash if name not in self.curtailed else self._held_efficiency(name)
                    if j is not None and j > window.above_joules_per_terahash:
                        wanted.setdefault(name, "window")
        price = config.price_above_usd_per_kwh
        if price is not None and site.usd_per_kwh is not None:
            held = any(c.reason == "price" for c in self.curtailed.values())
            if site.usd_per_kwh > (price * (1 - config.hysteresis) if held else price):
                for name in rigs:
                    wanted.setdefault(name, "price")
        for name, rig in rigs.items():
            if name in wanted:
                continue
            held = self.curtailed.get(name)
            if held is not None and self._unjudged(held.reason, site, rig):
                wanted[name] = held.reason  # nothing to judge it by: it stays as it is
            elif site.hashprice_usd_per_ph_day is not None and self._losing(name, rig, site.hashprice_usd_per_ph_day):
                wanted[name] = "unprofitable"
        return {name: reason for name, reason in wanted.items() if not config.never_curtailed(name)}

    def _unjudged(self, reason: str, site: SiteInput, rig: RigInput) -> bool:
        """A price or a loss can be judged again only with the figures it rests on."""
        if reason == "price":
            return self.config.price_above_usd_per_kwh is not None and site.usd_per_kwh is None
        return reason == "unprofitable" and (site.hashprice_usd_per_ph_day is None or rig.usd_per_kwh is None)

    def _losing(self, name: str, rig: RigInput, hashprice: float) -> bool:
        """Running: revenue at the rate's upper bound below the cost, on enough shares. Held off
        (for any reason): its rate before would not clear the cost by the hysteresis."""
        if rig.usd_per_kwh is None:
            return False
        held = self.curtailed.get(name)
        if held is not None:  # off, it has no rate of its own: judged by what it did before
            cost = _cost(held.watts_before, rig.usd_per_kwh)
            return _revenue(held.rate_before, hashprice) <= cost * (1 + self.config.hysteresis)
        if rig.watts is None:
            return False
        if rig.shares < self.config.min_shares:
            return False  # immature: share luck could say anything
        return _revenue(rig.rate_upper, hashprice) < _cost(rig.watts, rig.usd_per_kwh)

    def _shed(self, kw: float, reason: str, rigs: Mapping[str, RigInput], wanted: dict[str, str]) -> None:
        """Enough rigs for ``kw``: the ones held off already count; then the least revenue per watt."""
        held = [n for n, c in self.curtailed.items() if c.state in ("stopping", "off")]
        have = math.fsum(self.curtailed[n].watts_before for n in held) / 1000
        for name in held:
            if self.curtailed[name].reason == reason:
                wanted.setdefault(name, reason)
        if have >= kw:
            return
        candidates = [
            _economics(rig) for name, rig in rigs.items()
            if name not in self.curtailed and name not in wanted and rig.watts and not self.config.never_curtailed(name)
        ]  # fmt: skip
        plan = curtail_for_reduction(candidates, kw - have)
        for name in plan.rig_ids:
            wanted.setdefault(name, reason)

    def _held_efficiency(self, name: str) -> float | None:
        held = self.curtailed[name]
        return held.watts_before / (held.rate_before / 1e12) if held.rate_before > 0 else None

    # -- acting ---------------------------------------------------------------------

    def _plan(self, now: float, wanted: dict[str, str], rigs: Mapping[str, RigInput]) -> list[Action]:
        config = self.config
        budget_w = config.ramp_kw_per_minute * 1000 * config.cycle_seconds / 60
        count, actions = 0, []
        stops = [
            (name, reason) for name, reason in wanted.items()
            if name not in self.curtailed and name in rigs
            and (reason in MANDATORY or now - self.resumed_at.get(name, -math.inf) >= config.min_on_seconds)
        ]  # fmt: skip
        stops.sort(key=lambda item: (item[1] not in MANDATORY, item[0]))
        resumes = sorted(
            name for name, held in self.curtailed.items()
            if held.state == "off" and name not in wanted and now - held.since >= config.min_off_seconds
        )  # fmt: skip
        for name, reason in stops:
            rig = rigs[name]
            watts = rig.watts or 0.0
            if count >= config.max_rigs_per_cycle or (count and watts > budget_w):
                break  # the first step always goes, however large: a rig is all or nothing
            budget_w -= watts
            count += 1
            self.curtailed[name] = Curtailed(reason, "stopping", now, watts, rig.rate, now)
            self._event(now, name, "stop", reason, _figures(rig))
            actions.append(Action(name, rig.ip, "stop", reason, 1))
        for name in resumes:
            held = self.curtailed[name]
            if count >= config.max_rigs_per_cycle or (count and held.watts_before > budget_w):
                break
            budget_w -= held.watts_before
            count += 1
            held.state, held.action_at, held.attempts = "resuming", now, 1
            self._event(now, name, "resume", held.reason, {"off_seconds": now - held.since})
            actions.append(Action(name, rigs[name].ip if name in rigs else None, "resume", held.reason, 1))
        return actions

    def _verify(self, now: float, rigs: Mapping[str, RigInput]) -> list[Action]:
        """Stops and resumes checked against what the rigs do; retries; rigs that came back."""
        config, actions = self.config, []
        for name, held in list(self.curtailed.items()):
            rig = rigs.get(name)
            mined = rig is not None and rig.last_share is not None and rig.last_share > held.action_at + SHARE_GRACE_SECONDS
            if held.state == "stopping":
                fallen = rig is None or not rig.watts_reported or (rig.watts or 0.0) < WATTS_FALLEN * held.watts_before
                quiet = now - held.action_at >= SHARE_GRACE_SECONDS + QUIET_SECONDS
                if not held.refused and not mined and fallen and quiet:
                    held.state, held.verified_at = "off", now
                    self._event(now, name, "verified", held.reason, {"action": "stop"})
                elif held.refused or now - held.action_at >= config.verify_seconds:
                    actions += self._retry(now, name, held, rig, "stop", {"mined": mined, "watts_fallen": fallen})
            elif held.state == "resuming":
                back = rig is not None and rig.last_share is not None and rig.last_share > held.action_at
                if not held.refused and back:
                    del self.curtailed[name]
                    self.resumed_at[name] = now
                    self._event(now, name, "verified", held.reason, {"action": "resume"})
                elif held.refused or now - held.action_at >= config.resume_verify_seconds:
                    actions += self._retry(now, name, held, rig, "resume", {"mined": False})
            elif held.state == "off" and mined and held.verified_at is not None and rig.last_share > held.verified_at:
                # someone or something switched it back on: it is a running rig again
                del self.curtailed[name]
                self.resumed_at[name] = now
                self.came_back += 1
                self._event(now, name, "came_back", held.reason, {"last_share": rig.last_share})
        return actions

    def _retry(self, now: float, name: str, held: Curtailed, rig: RigInput | None, kind: str, seen: dict) -> list[Action]:
        if held.attempts > self.config.retries:
            held.state = "failed"
            self._event(now, name, "failed", held.reason, {"action": kind, "attempts": held.attempts, **seen})
            return []
        held.attempts += 1
        held.action_at, held.refused = now, False
        self._event(now, name, "retry", held.reason, {"action": kind, "attempt": held.attempts, **seen})
        return [Action(name, rig.ip if rig is not None else None, kind, held.reason, held.attempts)]

    def _event(self, now: float, rig: str, kind: str, reason: str, detail: Mapping) -> None:
        self.events.append(Event(now, rig, kind, reason, detail))

    # -- restart --------------------------------------------------------------------

    def state(self) -> dict:
        """What a restart must know: the rigs held off and why, and the demand in force."""
        return {
            "curtailed": {name: held.to_dict() for name, held in self.curtailed.items()},
            "resumed_at": dict(self.resumed_at),
            "demand": None if self.demand is None else {"kw": self.demand.kw, "until": self.demand.until,
                                                         "requested_at": self.demand.requested_at},
        }  # fmt: skip

    def restore(self, state: Mapping) -> None:
        self.curtailed = {name: Curtailed.from_dict(values) for name, values in state.get("curtailed", {}).items()}
        self.resumed_at = {name: float(at) for name, at in state.get("resumed_at", {}).items()}
        demand = state.get("demand")
        self.demand = None if demand is None else Demand(float(demand["kw"]), float(demand["until"]),
                                                         float(demand["requested_at"]))


def _revenue(rate: float, hashprice_usd_per_ph_day: float) -> float:
    return rate / 1e15 * hashprice_usd_per_ph_day


def _cost(watts: float, usd_per_kwh: float) -> float:
    return watts / 1000 * 24 * usd_per_kwh


def _economics(rig: RigInput) -> RigEconomics:
    """For the shedding plan: revenue by the rate (the price does not matter to the order)."""
    return rig_economics(rig.name, rig.rate, rig.watts or 0.0, 1.0, rig.usd_per_kwh or 0.0)


def _figures(rig: RigInput) -> dict:
    return {
        "watts": rig.watts, "rate": rig.rate, "rate_lower": rig.rate_lower, "rate_upper": rig.rate_upper,
        "shares": rig.shares, "usd_per_kwh": rig.usd_per_kwh,
    }  # fmt: skip


