"""The controller in the daemon: every cycle it reads the rigs and prices, carries out the
controller's actions through pyasic, and keeps the audit trail and its state in the journal.

A rig is judged on the shares of its current stretch of mining, as the economics values it
(``Rig.current_estimate`` in the registry, where the rule is explained): the service tells the
registry when fleetd switched a rig back on, so a rig switched on at a cheap price does not
look unprofitable again at once from the time it was off, and flap. ``min_shares`` then counts
the stretch's shares.

Control goes through the rig poller's pyasic miner objects: ``control`` makes a call,
``tunable`` says whether pyasic can set a power target on a rig's firmware, and
``power_limit`` reads the one it holds (what a restore gives back).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.curtailment.controller import Action, Controller, Demand, Event, RigInput, SiteInput
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.rigs.registry import RigRegistry

STATE_KEY = "curtailment"
MAX_ACTIONS_AT_ONCE = 32  # pyasic calls in flight per cycle
RECENT_EVENTS = 200  # kept in memory for the API; the journal keeps them all
CALLS = {"stop": "stop_mining", "resume": "resume_mining", "limit": "set_power_limit", "restore": "set_power_limit"}


class CurtailmentService:
    """``control(ip, call, *args)``, ``tunable(ip)`` and ``power_limit(ip)`` are the rig poller's
    (pyasic); without a poller no rig can be tuned. ``journal`` may be None."""

    def __init__(
        self, config: CurtailmentConfig, rigs: RigRegistry, economics, control, *, journal=None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:  # fmt: skip
        self.config = config
        self.rigs = rigs
        self.economics = economics  # a SiteEconomicsView
        self.control = control
        self.tunable = _never
        self.power_limit = _unknown
        self.journal = journal
        self.clock = clock
        self.controller = Controller(config)
        self.actions: Counter = Counter()  # (kind, "ok" | "failed")
        self.recent: list = []
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
        for name, at in self.controller.resumed_at.items():  # a new stretch of mining, for every valuation
            self.rigs.resumed(name, at, now)
        self._keep()

    async def _carry_out(self, action: Action) -> tuple[bool, str]:
        if action.ip is None:
            return False, "no IP known for the rig: fleetd cannot reach its management API"
        held = self.controller.curtailed.get(action.rig)
        if action.kind == "limit" and held is not None and held.limit_before is None:
            # read before fleetd's own limit replaces it: what the release gives back
            self.controller.limited_from(action.rig, await self.power_limit(action.ip), self.clock.wall())
        args = () if action.watts is None else (action.watts,)
        return await self.control(action.ip, CALLS[action.kind], *args)

    def inputs(self, now: float) -> tuple[SiteInput, dict[str, RigInput]]:
        """The site's prices and each rig's figures, as the controller judges them."""
        economics = self.economics
        snap = economics.snapshot(now)
        prices = economics.work_prices(now)
        config = economics.config
        window = config.hashrate_window if config is not None else "1h"
        zone = config.tzinfo() if config is not None else dt.timezone.utc
        rigs = {}
        credit = self.rigs.credit_scale
        for rig in self.rigs:
            estimate = rig.current_estimate(window, now, credit)
            watts, source = rig.power(now, window)
            rigs[rig.name] = RigInput(
                name=rig.name, ip=rig.ip, watts=watts, watts_reported=source == "reported", rate=estimate.rate,
                rate_lower=estimate.lower, rate_upper=estimate.upper, shares=estimate.shares,
                usd_per_kwh=prices.usd_per_kwh(rig.name) if prices is not None else None,
                last_share=rig.last_share,
                joules_per_terahash=watts / (estimate.rate / 1e12) if watts and estimate.rate > 0 else None,
                tunable=rig.ip is not None and self.tunable(rig.ip),
            )  # fmt: skip
        site = SiteInput(snap.hashprice_usd_per_ph_day, snap.site_usd_per_kwh, dt.datetime.fromtimestamp(now, zone))
        return site, rigs

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


def _never(ip: str) -> bool:
    return False


async def _unknown(ip: str) -> float | None:
    return None


def _site_event(now: float, kind: str, detail: dict) -> Event:
    return Event(now, "*", kind, "demand", detail)


def _loggable(detail) -> dict:
    return {key if key not in ("rig", "reason", "event") else f"detail_{key}": value for key, value in detail.items()}
