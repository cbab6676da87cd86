"""The controller in the daemon: every cycle it reads the rigs and prices, carries out the
controller's actions through pyasic, and keeps the audit trail and its state in the journal.

A rig is judged on the shares of its current stretch of mining. The economics' window is an
exponential average over time, and time a rig did not mine for reasons that say nothing of
what it earns (fleetd held it off, it was gone from Stratum, fleetd itself was down and the
journal seeded the average across the gap) pulls its rate down: a rig switched back on at a
cheap price would look unprofitable again at once and flap. So from the later of its
(re)connection and fleetd switching it back on, until the window has forgotten what came
before (``FORGET_TIME_CONSTANTS``), a rig's rate is the plain one of the shares since, with
Garwood's interval; ``min_shares`` then counts those shares.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.curtailment.controller import Action, Controller, Demand, Event, RigInput, SiteInput
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.rigs.registry import (
    AVERAGE_WINDOWS, HASHES_PER_DIFFICULTY, HashrateEstimate, Rig, RigRegistry, rate_interval,
)  # fmt: skip

STATE_KEY = "curtailment"
MAX_ACTIONS_AT_ONCE = 32  # pyasic calls in flight per cycle
RECENT_EVENTS = 200  # kept in memory for the API; the journal keeps them all
# An exponential average keeps e^-3 (5 %) of its weight from three time constants back: after
# that, time a rig did not mine no longer weighs on the window's rate
FORGET_TIME_CONSTANTS = 3.0


@dataclass(frozen=True, slots=True)
class Stretch:
    """A rig's counters when fleetd first saw its current stretch of mining."""

    began: float  # (re)connected, or switched back on
    at: float  # when the counters were read
    accepted: int
    work: float  # credited difficulty (x 2^32: hashes)


class CurtailmentService:
    """``control(ip, call)`` is the rig poller's (pyasic); ``journal`` may be None."""

    def __init__(
        self, config: CurtailmentConfig, rigs: RigRegistry, economics, control, *, journal=None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        self.config = config
        self.rigs = rigs
        self.economics = economics  # a SiteEconomicsView
        self.control = control
        self.journal = journal
        self.clock = clock
        self.controller = Controller(config)
        self.actions: Counter = Counter()  # (kind, "ok" | "failed")
        self.recent: list = []
        self.stretches: dict[str, Stretch] = {}
        self.log = logging.get("fleetd.curtailment")

    def restore(self) -> None:
        """The rigs held off and the demand in force before a restart, from the journal."""
        saved = self.journal.kept(STATE_KEY) if self.journal is not None else None
        if saved is None:
            return
        try:
            self.controller.restore(json.loads(saved))
        except (ValueError, TypeError, KeyError) as exc:
            self.log.error("curtailment_state_unreadable", error=f"{type(exc).__name__}: {exc}")
            return
        if self.controller.curtailed:
            held = {name: f"{c.reason}/{c.state}" for name, c in self.controller.curtailed.items()}
            self.log.info("curtailment_restored", rigs=held, demand_kw=getattr(self.controller.demand, "kw", None))

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.config.cycle_seconds)
            await self.cycle()

    async def cycle(self) -> None:
        now = self.clock.wall()
        site, rigs = self.inputs(now)
        actions = self.controller.cycle(now, site, rigs)
        slots = asyncio.Semaphore(MAX_ACTIONS_AT_ONCE)

        async def carry_out(action: Action) -> None:
            async with slots:
                ok, detail = await self._carry_out(action)
            self.actions[(action.kind, "ok" if ok else "failed")] += 1
            self.controller.done(action, ok, detail, self.clock.wall())

        await asyncio.gather(*(carry_out(a) for a in actions))
        self._keep()

    async def _carry_out(self, action: Action) -> tuple[bool, str]:
        if action.ip is None:
            return False, "no IP known for the rig: fleetd cannot reach its management API"
        call = "stop_mining" if action.kind == "stop" else "resume_mining"
        return await self.control(action.ip, call)

    def inputs(self, now: float) -> tuple[SiteInput, dict[str, RigInput]]:
        """The site's prices and each rig's figures, as the controller judges them."""
        economics = self.economics
        snap = economics.snapshot(now)
        prices = economics.work_prices(now)
        config = economics.config
        window = config.hashrate_window if config is not None else "1h"
        zone = config.tzinfo() if config is not None else dt.timezone.utc
        rigs = {}
        for rig in self.rigs:
            estimate = self._estimate(rig, window, now)
            watts, source = rig.power(now, window)
            rigs[rig.name] = RigInput(
                name=rig.name, ip=rig.ip, watts=watts, watts_reported=source == "reported", rate=estimate.rate,
                rate_lower=estimate.lower, rate_upper=estimate.upper, shares=estimate.shares,
                usd_per_kwh=prices.usd_per_kwh(rig.name) if prices is not None else None,
                last_share=rig.last_share,
                joules_per_terahash=watts / (estimate.rate / 1e12) if watts and estimate.rate > 0 else None,
            )  # fmt: skip
        for name in self.stretches.keys() - rigs.keys():
            del self.stretches[name]  # retired
        site = SiteInput(snap.hashprice_usd_per_ph_day, snap.site_usd_per_kwh, dt.datetime.fromtimestamp(now, zone))
        return site, rigs

    def _estimate(self, rig: Rig, window: str, now: float) -> HashrateEstimate:
        """The window's estimate, or while the window still remembers time before the rig's
        current stretch of mining, the estimate of the stretch's own shares (counted from the
        first cycle that saw the stretch)."""
        credit = self.rigs.credit_scale
        began = max((t for t in (rig.connected_since, self.controller.resumed_at.get(rig.name)) if t is not None),
                    default=None)  # fmt: skip
        if began is None or rig.first_seen >= began or now - began >= FORGET_TIME_CONSTANTS * AVERAGE_WINDOWS[window]:
            # mining since fleetd first saw it, or long enough: the window holds nothing else
            self.stretches.pop(rig.name, None)
            return rig.hashrate_estimate(window, now, credit)
        stretch = self.stretches.get(rig.name)
        if stretch is None or stretch.began != began or rig.accepted < stretch.accepted:  # a new one (or a reset)
            stretch = self.stretches[rig.name] = Stretch(began, now, rig.accepted, rig.accepted_work)
        shares = rig.accepted - stretch.accepted
        hashes = (rig.accepted_work - stretch.work) * HASHES_PER_DIFFICULTY
        share = hashes / shares if shares else rig.difficulty * credit * HASHES_PER_DIFFICULTY
        # taken as shares of one difficulty: the count is the effective number
        return rate_interval(hashes, hashes * share, share, max(now - stretch.at, 1.0))

    # -- demand response (the API) ------------------------------------------------------

    def request(self, kw: float, seconds: float) -> Demand:
        now = self.clock.wall()
        demand = self.controller.demand = Demand(kw, now + seconds, now)
        self.controller.events.append(_site_event(now, "demand", {"kw": kw, "until": demand.until}))
        self._keep()
        return demand

    def release_demand(self) -> bool:
        demand, self.controller.demand = self.controller.demand, None
        if demand is not None:
            self.controller.events.append(_site_event(self.clock.wall(), "released", {"kw": demand.kw}))
            self._keep()
        return demand is not None

    def release_rig(self, name: str) -> bool:
        released = self.controller.release(name, self.clock.wall())
        self._keep()
        return released

    # -- the record -------------------------------------------------------------------

    def _keep(self) -> None:
        events = self.controller.take_events()
        for event in events:
            self.log.info("curtailment_" + event.kind, rig=event.rig, reason=event.reason, **_loggable(event.detail))
        self.recent = (self.recent + events)[-RECENT_EVENTS:]
        if self.journal is not None:
            self.journal.record(events)
            self.journal.keep(STATE_KEY, json.dumps(self.controller.state(), sort_keys=True))


def _site_event(now: float, kind: str, detail: dict) -> Event:
    return Event(now, "*", kind, "demand", detail)


def _loggable(detail) -> dict:
    return {key if key not in ("rig", "reason", "event") else f"detail_{key}": value for key, value in detail.items()}
