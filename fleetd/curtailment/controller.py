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

Lower power before switching off. For the reasons that shed a number of kW (``demand``, a
``window`` with ``shed_kw``), a rig whose firmware pyasic can tune (``RigInput.tunable``) is
first held to ``power_floor_fraction`` of its draw (``limit``), least revenue per watt first;
what that sheds (the draw before less the target) counts toward the kW. Only if the target
needs more are rigs switched off, a limited one among them. The other reasons switch rigs off
outright: a loss or a price is about every watt the rig draws (a tuned rig still loses, only
a little less, and a price above the threshold is one to stop paying at all), a J/TH window
asks for the inefficient rigs to be gone, and a pin is an operator's "off". On release a
limited rig gets back the power limit it had (``restore``): the one the service read through
pyasic before limiting it, which is the firmware's own setting, where the draw before is only
what it happened to draw under it; when the firmware would not say, the draw before, rounded up.
A rig switched off while limited gets its limit back once it mines again. A limited rig is
not judged on its losses until its limit is back: firmware that restarts mining to apply a
limit pauses its shares, and the window would mix the two rates.

Safety: ``never`` globs are never touched; a rig stays off ``min_off_seconds`` and, for the
economic reasons, on ``min_on_seconds``; per cycle at most ``max_rigs_per_cycle`` rigs and
``ramp_kw_per_minute`` x the cycle's minutes of draw change. After a stop the rig's shares
must stop (and its reported watts fall) within ``verify_seconds``: a stop counts as done once
no share came for ``QUIET_SECONDS`` after the shares in flight; after a limit its reported
watts must be at most the target (``LIMIT_TOLERANCE``) and a share must come past the shares
in flight, within ``verify_seconds`` (firmware that restarts mining to apply a limit pauses for
its warm-up); after a resume or a restore its shares must return within
``resume_verify_seconds``; each is retried ``retries`` times, then the rig is
``failed`` and left alone until released. A rig held off that mines again, or a limited one
that draws more than halfway back to its draw before, came back: fleetd counts it and treats it
as running. A rig held off for a price or a loss stays held while those figures are unknown (a
stale BTC price, no network figures yet).
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
# a limited rig's reported draw is at most this much over its target: firmware holds a power
# target within a few per cent, and its own reading of the draw is no better
LIMIT_TOLERANCE = 0.05


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
    tunable: bool = False  # pyasic can set a power limit on its firmware (the rig poller's miner object)


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
    kind: str  # "stop" | "resume" | "limit" | "restore"
    reason: str
    attempt: int  # 1 for the first try
    watts: int | None = None  # the power limit to set (limit, restore)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the audit trail: what was decided or seen, why, and on what figures."""

    time: float
    rig: str
    kind: str  # advise, stop, resume, limit, restore, verified, retry, failed, came_back, released
    reason: str
    detail: Mapping


@dataclass(slots=True)
class Curtailed:
    """A rig fleetd switched (or is switching) off, or holds to a lower power, as kept across restarts."""

    reason: str
    state: str  # stopping | off | resuming | limiting | limited | restoring | failed
    since: float  # when it was first told to stop (or to take the limit)
    watts_before: float  # its draw then: what switching it off sheds
    rate_before: float  # its pool-side rate then: what it would earn again
    action_at: float  # the current attempt's time
    attempts: int = 1
    verified_at: float | None = None
    refused: bool = False  # the current attempt's call failed: retried at the next cycle
    target_watts: float | None = None  # the power limit it is held to; None: switched off
    limit_before: float | None = None  # the power limit to give back (see the module's docstring)

    @property
    def shed_watts(self) -> float:
        """What holding it sheds now: all it drew when off, the draw above the target when limited."""
        if self.state in ("stopping", "off"):
            return self.watts_before
        if self.state in ("limiting", "limited") and self.target_watts is not None:
            return max(0.0, self.watts_before - self.target_watts)
        return 0.0

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
    limit_advice: dict[str, str] = field(default_factory=dict)  # rig -> reason it would be limited, every mode
    target_kw: float = 0.0  # what the windows and the demand ask to shed now
    came_back: int = 0  # rigs that mined again while fleetd held them off

    # -- the cycle ------------------------------------------------------------------

    def cycle(self, now: float, site: SiteInput, rigs: Mapping[str, RigInput]) -> list[Action]:
        if self.demand is not None and now >= self.demand.until:
            self._event(now, "*", "released", "demand", {"kw": self.demand.kw, "until": self.demand.until})
            self.demand = None
        actions = self._verify(now, rigs)
        limits: dict[str, str] = {}
        wanted = self._wanted(now, site, rigs, limits)
        if self.config.mode == "advise":  # the audit trail says when advice starts and ends
            for advised, before, action in ((wanted, self.advice, "stop"), (limits, self.limit_advice, "limit")):
                for name in advised.keys() - before.keys():
                    figures = _figures(rigs[name]) if name in rigs else {}
                    self._event(now, name, "advise", advised[name], {"action": action, **figures})
                for name in before.keys() - advised.keys():
                    self._event(now, name, "advise_ended", before[name], {"action": action})
        self.advice, self.limit_advice = wanted, limits
        if self.config.mode != "act":
            return []
        return actions + self._plan(now, wanted, limits, rigs)

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
        """The rigs fleetd is switching off, holds off or is switching back on, or holds to a lower
        power (a failed one is not: its alerts are the operator's way to see it)."""
        return {name for name, held in self.curtailed.items() if held.state != "failed"}

    def switched_off(self) -> set[str]:
        """The rigs fleetd is switching off, holds off or is switching back on: not mining."""
        return {name for name, held in self.curtailed.items() if held.state in ("stopping", "off", "resuming")}

    def shed_kw(self) -> float:
        return math.fsum(c.shed_watts for c in self.curtailed.values()) / 1000

    def limited_from(self, rig: str, watts: float | None, now: float) -> None:
        """The service's reading of the power limit a rig had before its first limit (None:
        its firmware would not say): what a restore gives back."""
        held = self.curtailed.get(rig)
        if held is not None and held.limit_before is None:
            held.limit_before = float(watts) if watts else float(math.ceil(held.watts_before))
            source = "firmware" if watts else "draw before"  # the firmware would not say
            self._event(now, rig, "limit_before", held.reason, {"watts": held.limit_before, "source": source})

    def release(self, rig: str, now: float) -> bool:
        """An operator's release of a failed rig: fleetd forgets it held it off."""
        held = self.curtailed.pop(rig, None)
        if held is not None:
            self._event(now, rig, "released", held.reason, {"state": held.state})
        return held is not None

    # -- judging --------------------------------------------------------------------

    def _wanted(
        self, now: float, site: SiteInput, rigs: Mapping[str, RigInput], limits: dict[str, str]
    ) -> dict[str, str]:
        """Every rig that should be off now, with the first reason that holds; ``limits`` gets
        the rigs to hold to a lower power instead."""
        config, wanted = self.config, {}
        for name in rigs:
            if config.kept_off(name):
                wanted[name] = "pinned"
        self.target_kw = 0.0
        if self.demand is not None:
            self.target_kw = self.demand.kw
            self._shed(self.demand.kw, "demand", rigs, wanted, limits)
        for window in config.windows:
            if site.local_time is None or not window.active(site.local_time):
                continue
            if window.shed_kw is not None:
                self.target_kw = max(self.target_kw, window.shed_kw)
                self._shed(window.shed_kw, "window", rigs, wanted, limits)
            else:
                for name, rig in rigs.items():
                    j = rig.joules_per_terahash if not self._off(name) else self._held_efficiency(name)
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
        for name in wanted.keys() & limits.keys():
            del limits[name]  # off for a reason of its own, or the target needs it off: off wins
        return {name: reason for name, reason in wanted.items() if not config.never_curtailed(name)}

    def _off(self, name: str) -> bool:
        """Held off (or on its way off or back), rather than running at a limit."""
        held = self.curtailed.get(name)
        return held is not None and held.target_watts is None

    def _unjudged(self, reason: str, site: SiteInput, rig: RigInput) -> bool:
        """A price or a loss can be judged again only with the figures it rests on."""
        if reason == "price":
            return self.config.price_above_usd_per_kwh is not None and site.usd_per_kwh is None
        return reason == "unprofitable" and (site.hashprice_usd_per_ph_day is None or rig.usd_per_kwh is None)

    def _losing(self, name: str, rig: RigInput, hashprice: float) -> bool:
        """Running: revenue at the rate's upper bound below the cost, on enough shares. Held off
        (for any reason): its rate before would not clear the cost by the hysteresis. Held to a
        limit: not judged."""
        if rig.usd_per_kwh is None:
            return False
        held = self.curtailed.get(name)
        if held is not None and held.target_watts is not None:
            # held to a limit: not judged until it has its own back. Firmware restarts mining to
            # apply a limit, and the window mixes the pause and two rates; tuned, a rig earns more
            # per watt, not less
            return False
        if held is not None:  # off, it has no rate of its own: judged by what it did before
            cost = _cost(held.watts_before, rig.usd_per_kwh)
            return _revenue(held.rate_before, hashprice) <= cost * (1 + self.config.hysteresis)
        if rig.watts is None:
            return False
        if rig.shares < self.config.min_shares:
            return False  # immature: share luck could say anything
        return _revenue(rig.rate_upper, hashprice) < _cost(rig.watts, rig.usd_per_kwh)

    def _shed(self, kw: float, reason: str, rigs: Mapping[str, RigInput], wanted: dict[str, str],
              limits: dict[str, str]) -> None:  # fmt: skip
        """Enough for ``kw``: what the rigs held already shed counts; then tunable rigs held to
        ``power_floor_fraction`` of their draw, then rigs switched off (limited ones too), the
        least revenue per watt first."""
        config = self.config
        have = math.fsum(c.shed_watts for c in self.curtailed.values()) / 1000
        for name, held in self.curtailed.items():
            if held.reason == reason and held.shed_watts:
                (limits if held.target_watts is not None else wanted).setdefault(name, reason)
        if have >= kw:
            return
        free = {
            name: rig for name, rig in rigs.items()
            if name not in self.curtailed and name not in wanted and name not in limits and rig.watts
            and not config.never_curtailed(name)
        }  # fmt: skip
        floor = config.power_floor_fraction
        if floor > 0:
            tunable = sorted((r for r in free.values() if r.tunable), key=lambda r: (r.rate / r.watts, r.name))
            for rig in tunable:
                if have >= kw:
                    return
                limits[rig.name] = reason
                have += (rig.watts - _target(rig.watts, floor)) / 1000
        # switching off a limited rig sheds what it still draws: its target
        candidates = [
            _economics(rig, self._remaining(name, rig, limits)) for name, rig in rigs.items()
            if name not in wanted and not config.never_curtailed(name)
            and (name in free or (name in limits and limits[name] == reason))
        ]  # fmt: skip
        plan = curtail_for_reduction([c for c in candidates if c.watts > 0], max(0.0, kw - have))
        for name in plan.rig_ids:
            wanted.setdefault(name, reason)

    def _remaining(self, name: str, rig: RigInput, limits: Mapping[str, str]) -> float:
        """What switching a rig off would shed beyond what is counted already."""
        held = self.curtailed.get(name)
        if held is not None and held.target_watts is not None:
            return held.target_watts
        watts = rig.watts or 0.0
        return _target(watts, self.config.power_floor_fraction) if name in limits else watts

    def _held_efficiency(self, name: str) -> float | None:
        held = self.curtailed[name]
        return held.watts_before / (held.rate_before / 1e12) if held.rate_before > 0 else None

    # -- acting ---------------------------------------------------------------------

    def _plan(
        self, now: float, wanted: dict[str, str], limits: dict[str, str], rigs: Mapping[str, RigInput]
    ) -> list[Action]:
        config = self.config
        budget_w = config.ramp_kw_per_minute * 1000 * config.cycle_seconds / 60
        count, actions = 0, []

        def fits(watts: float) -> bool:  # the first step always goes, however large: a rig is all or nothing
            nonlocal budget_w, count
            if count >= config.max_rigs_per_cycle or (count and watts > budget_w):
                return False
            budget_w -= watts
            count += 1
            return True

        def judged_on(name: str, reason: str) -> bool:
            return reason in MANDATORY or now - self.resumed_at.get(name, -math.inf) >= config.min_on_seconds

        # in the order they were chosen: the least revenue per watt first
        new_limits = [name for name in limits if name not in self.curtailed and name in rigs]
        stops = [
            (name, reason) for name, reason in wanted.items()
            if name in rigs and (name not in self.curtailed or self.curtailed[name].state == "limited")
            and judged_on(name, reason)
        ]  # fmt: skip
        stops.sort(key=lambda item: (item[1] not in MANDATORY, item[0]))
        released = lambda held: now - held.since >= config.min_off_seconds  # noqa: E731
        resumes = sorted(
            name for name, held in self.curtailed.items()
            if held.state == "off" and name not in wanted and released(held)
        )  # fmt: skip
        restores = sorted(
            name for name, held in self.curtailed.items()
            if held.state == "limited" and name not in limits and name not in wanted and released(held)
        )  # fmt: skip
        for name in new_limits:  # a lower power before any rig goes off
            rig, reason = rigs[name], limits[name]
            watts = rig.watts or 0.0
            target = _target(watts, config.power_floor_fraction)
            if not fits(watts - target):
                break
            self.curtailed[name] = Curtailed(reason, "limiting", now, watts, rig.rate, now, target_watts=target)
            self._event(now, name, "limit", reason, {**_figures(rig), "target_watts": target})
            actions.append(Action(name, rig.ip, "limit", reason, 1, int(target)))
        for name, reason in stops:
            rig, limited = rigs[name], self.curtailed.get(name)
            watts = rig.watts or 0.0
            if not fits(watts):
                break
            if limited is None:
                self.curtailed[name] = Curtailed(reason, "stopping", now, watts, rig.rate, now)
            else:  # it was shedding part of its draw: now all of what it drew before the limit
                self.curtailed[name] = Curtailed(reason, "stopping", now, limited.watts_before, limited.rate_before,
                                                 now, limit_before=limited.limit_before)  # fmt: skip
            self._event(now, name, "stop", reason, _figures(rig))
            actions.append(Action(name, rig.ip, "stop", reason, 1))
        for name in resumes:
            held = self.curtailed[name]
            if not fits(held.watts_before):
                break
            held.state, held.action_at, held.attempts = "resuming", now, 1
            self._event(now, name, "resume", held.reason, {"off_seconds": now - held.since})
            actions.append(Action(name, rigs[name].ip if name in rigs else None, "resume", held.reason, 1))
        for name in restores:
            held = self.curtailed[name]
            if not fits(held.shed_watts):
                break
            actions.append(self._restore(now, name, held, rigs.get(name)))
        return actions

    def _restore(self, now: float, name: str, held: Curtailed, rig: RigInput | None) -> Action:
        """The power limit it had before fleetd's, back."""
        limit = held.limit_before if held.limit_before is not None else math.ceil(held.watts_before)
        held.state, held.action_at, held.attempts, held.refused = "restoring", now, 1, False
        self._event(now, name, "restore", held.reason, {"watts": limit, "limited_seconds": now - held.since})
        return Action(name, rig.ip if rig is not None else None, "restore", held.reason, 1, int(limit))

    def _verify(self, now: float, rigs: Mapping[str, RigInput]) -> list[Action]:
        """Stops, limits, resumes and restores checked against what the rigs do; retries; rigs that came back."""
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
            elif held.state == "limiting":
                # a nameplate estimate follows the hash rate, not the limit: then the shares alone tell
                held_to = rig is not None and (
                    not rig.watts_reported or (rig.watts or 0.0) <= held.target_watts * (1 + LIMIT_TOLERANCE))
                if not held.refused and mined and held_to:
                    held.state, held.verified_at = "limited", now
                    self._event(now, name, "verified", held.reason,
                                {"action": "limit", "watts": rig.watts, "target_watts": held.target_watts})  # fmt: skip
                elif held.refused or now - held.action_at >= config.verify_seconds:
                    seen = {"mined": mined, "watts": None if rig is None else rig.watts}
                    actions += self._retry(now, name, held, rig, "limit", seen)
            elif held.state in ("resuming", "restoring"):
                action = "resume" if held.state == "resuming" else "restore"
                # a restore pauses firmware that restarts mining to apply it: shares past the ones in flight
                after = held.action_at + (SHARE_GRACE_SECONDS if action == "restore" else 0.0)
                back = rig is not None and rig.last_share is not None and rig.last_share > after
                if not held.refused and back:
                    self._event(now, name, "verified", held.reason, {"action": action})
                    if action == "resume" and held.limit_before is not None:  # it was limited before it went off
                        actions.append(self._restore(now, name, held, rig))
                        continue
                    del self.curtailed[name]
                    self.resumed_at[name] = now
                elif held.refused or now - held.action_at >= config.resume_verify_seconds:
                    actions += self._retry(now, name, held, rig, action, {"mined": False})
            elif held.state == "off" and mined and held.verified_at is not None and rig.last_share > held.verified_at:
                # someone or something switched it back on: it is a running rig again
                self._came_back(now, name, held, {"last_share": rig.last_share})
            elif held.state == "limited" and _lifted(held, rig):
                self._came_back(now, name, held, {"watts": rig.watts, "target_watts": held.target_watts})
        return actions

    def _came_back(self, now: float, name: str, held: Curtailed, seen: dict) -> None:
        del self.curtailed[name]
        self.resumed_at[name] = now
        self.came_back += 1
        self._event(now, name, "came_back", held.reason, seen)

    def _retry(self, now: float, name: str, held: Curtailed, rig: RigInput | None, kind: str, seen: dict) -> list[Action]:
        if held.attempts > self.config.retries:
            held.state = "failed"
            self._event(now, name, "failed", held.reason, {"action": kind, "attempts": held.attempts, **seen})
            return []
        held.attempts += 1
        held.action_at, held.refused = now, False
        self._event(now, name, "retry", held.reason, {"action": kind, "attempt": held.attempts, **seen})
        watts = {"limit": held.target_watts, "restore": held.limit_before or math.ceil(held.watts_before)}.get(kind)
        return [Action(name, rig.ip if rig is not None else None, kind, held.reason, held.attempts,
                       None if watts is None else int(watts))]  # fmt: skip

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


def _economics(rig: RigInput, watts: float | None = None) -> RigEconomics:
    """For the shedding plan: revenue by the rate (the price does not matter to the order)."""
    return rig_economics(rig.name, rig.rate, rig.watts or 0.0 if watts is None else watts, 1.0, rig.usd_per_kwh or 0.0)


def _lifted(held: Curtailed, rig: RigInput | None) -> bool:
    """Someone or something lifted a limit fleetd set: the rig reports drawing more than halfway
    back to what it drew before (well past any firmware's overshoot of a power target)."""
    if rig is None or not rig.watts_reported or rig.watts is None or held.target_watts is None:
        return False
    return rig.watts > (held.target_watts + held.watts_before) / 2


def _target(watts: float, floor: float) -> float:
    """The power limit for a rig drawing ``watts``: whole watts, as pyasic sends them."""
    return float(max(1, math.floor(watts * floor)))


def _figures(rig: RigInput) -> dict:
    return {
        "watts": rig.watts, "rate": rig.rate, "rate_lower": rig.rate_lower, "rate_upper": rig.rate_upper,
        "shares": rig.shares, "usd_per_kwh": rig.usd_per_kwh,
    }  # fmt: skip


