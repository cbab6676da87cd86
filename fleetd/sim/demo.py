"""``fleetd demo``: the whole site on loopback — the daemon on its demo chain, a simulated
fleet of rigs mining it over real Stratum, and their emulated firmware APIs polled with pyasic.

The rigs grind real shares, but only a fixed fraction (the fleet's hash scale) of their
nominal work, since one CPU core cannot do 200 TH/s. The demo credits each share with the
inverse of that fraction, so hash rates, J/TH and margins read as a real site's would.

Curtailment acts, on demo-sized times: the S19 XPs, on a contract where they lose money, are
switched off through their firmware once 200 shares back the loss (about four minutes in),
and switched on again when their contract's off-peak price starts, ten minutes after the
demo did. The demo's journal outlives it: a demo started again knows the rigs it held off,
and its simulated rigs start as fleetd left them, as real rigs stay across a restart of fleetd.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import signal
import sys
import textwrap


from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.config import Config, HostPort, serving_problems
from fleetd.curtailment.settings import CurtailmentConfig
from fleetd.economics.prices import TouEntry, TouSchedule
from fleetd.economics.profitability import RigEconomics
from fleetd.economics.settings import EconomicsConfig, PowerOverride
from fleetd.economics.site import SiteEconomics
from fleetd.sim.fleet import Fleet, FleetConfig, wait_or_sleep
from fleetd.sim.fleet_faults import parse_fault
from fleetd.telemetry import api

DEFAULT_RIGS = 20
# One or two rigs misbehave, so the table and the alerts have something to show.
DEFAULT_FAULTS = ("3:invalid=0.15", "7:overheat=25@20")
TABLE_EVERY = 5.0
# Every endpoint of the HTTP listener, as the banner lists them
ENDPOINTS = (
    ("site page", "/"),
    ("site data", "/api/v1/site"),
    ("page assets", "/static/{version}/{path}"),
    ("metrics", "/metrics"),
    ("health", "/healthz"),
    ("rigs", "/api/v1/rigs"),
    ("one rig", "/api/v1/rigs/{rig}"),
    ("summary", "/api/v1/summary"),
    ("economics", "/api/v1/economics"),
    ("rig history", "/api/v1/rigs/{rig}/history"),
    ("fleet history", "/api/v1/fleet/history"),
    ("accounting", "/api/v1/accounting"),
    ("curtailment", "/api/v1/curtailment"),
    ("curtailment events", "/api/v1/curtailment/events"),
    ("release a rig", "/api/v1/curtailment/rigs/{rig}"),
)
# Prices of the situation the demo shows: hashprice about $35/PH/day at ~1 ZH/s, power at
# $0.07/kWh, and the S19 XPs (21.5 J/TH, breakeven about $0.067/kWh) on an older hall's
# $0.09 contract, where they clearly run at a loss; that contract has an off-peak price
# (demo_economics), at which they pay again.
DEMO_ECONOMICS = EconomicsConfig(
    power_schedule=TouSchedule.flat(0.07),
    overrides=(PowerOverride(("*.s19xp-*",), TouSchedule.flat(0.09)),),
    btc_price_usd=77_000.0,
    fees_btc_per_block=0.025,
    ai_hosting_usd_per_mw_day=2_500.0,
    curtail_target_kw=5.0,
)
OFF_PEAK_AFTER_S = 600.0  # the S19 XPs' off-peak price starts this long after the demo (to the minute)...
OFF_PEAK_FOR_S = 1200.0  # ... and lasts this long, every day at that time
OFF_PEAK_USD_PER_KWH = 0.04
# Curtailment that acts, on demo-sized times: each rig's shares come about one a second
# (vardiff aims at DEMO_SHARE_SECONDS), so 200 of them back a loss some four minutes in; the
# firmware's warm-ups (Antminer 120 s, Whatsminer 90 s) fit in the resume's verification, and
# the Whatsminers' in a limit's (a demand request restarts their mining at a lower power).
# pyasic cannot stop a Bitaxe: it is never touched.
DEMO_SHARE_SECONDS = 1.0
DEMO_CURTAILMENT = CurtailmentConfig(
    mode="act", cycle_seconds=10.0, min_shares=200.0, min_off_seconds=120.0, min_on_seconds=300.0,
    verify_seconds=150.0, resume_verify_seconds=240.0, never=("*.bitaxe-*",),
)  # fmt: skip


def demo_economics(started: float) -> EconomicsConfig:
    """The demo's prices, the S19 XPs' contract with an off-peak price from ``OFF_PEAK_AFTER_S``
    after ``started`` (Unix seconds; rounded up to the minute, in the economics' time zone)."""
    zone = DEMO_ECONOMICS.tzinfo()
    begins = dt.datetime.fromtimestamp(math.ceil((started + OFF_PEAK_AFTER_S) / 60) * 60, zone)
    ends = begins + dt.timedelta(seconds=OFF_PEAK_FOR_S)
    (contract,) = DEMO_ECONOMICS.overrides
    (peak,) = contract.schedule.entries
    schedule = TouSchedule((
        TouEntry(begins.time(), OFF_PEAK_USD_PER_KWH), TouEntry(ends.time(), peak.usd_per_kwh),
    ))  # fmt: skip
    return dataclasses.replace(DEMO_ECONOMICS, overrides=(dataclasses.replace(contract, schedule=schedule),))


def demo_config(
    base: Config | None = None, stratum: HostPort | None = None, http: HostPort | None = None, *,
    started: float | None = None,
) -> Config:  # fmt: skip
    """Loopback only, CPU-sized difficulties (simulated rigs must grind real shares), fast polls,
    curtailment that acts; without ``base``'s own [economics], the demo's prices, the off-peak
    price tied to ``started`` (Unix seconds, by default now)."""
    config = base or Config()
    if base is None:
        config = dataclasses.replace(
            config,
            stratum=dataclasses.replace(
                config.stratum, listen=HostPort("127.0.0.1", 3333), min_difficulty=1e-9, start_difficulty=1e-9,
                max_difficulty=5e-4, share_interval_seconds=DEMO_SHARE_SECONDS,
            ),
            source=dataclasses.replace(config.source, network_difficulty=0.003, refresh_seconds=10.0),
            rigs=dataclasses.replace(config.rigs, poll_interval_seconds=10.0, poll_timeout_seconds=5.0),
            curtailment=DEMO_CURTAILMENT,
        )  # fmt: skip
    if config.economics is None:
        config = dataclasses.replace(
            config, economics=demo_economics(SYSTEM_CLOCK.wall() if started is None else started)
        )
    if stratum is not None:
        config = dataclasses.replace(config, stratum=dataclasses.replace(config.stratum, listen=stratum))
    if http is not None:
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, listen=http))
    return config


async def run(
    config: Config,
    *,
    rigs: int = DEFAULT_RIGS,
    faults: tuple[str, ...] = DEFAULT_FAULTS,
    duration: float | None = None,
    out=None,
    every: float = TABLE_EVERY,
    stop: asyncio.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Run until ``duration`` has passed or ``stop`` is set (as SIGINT and SIGTERM do), printing
    the table every ``every`` seconds and once more at the end; the daemon and the fleet share ``clock``."""
    out = out or sys.stdout  # looked up per call: the default would pin the stdout of import time
    application = fleetd_app.build_app(config, clock=clock)
    runner = await fleetd_app.start_http(application)  # as `fleetd serve` listens: timeouts, JSON errors, auth
    server = application[fleetd_app.STRATUM_KEY]
    source = application[fleetd_app.SOURCE_KEY]
    registry = application[api.RIGS_KEY]
    site_economics = application[api.ECONOMICS_KEY]
    curtailment = application[fleetd_app.CURTAILMENT_KEY]
    host, port = server.address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard listener: the rigs come over loopback
    http_base = f"http://{runner.addresses[0][0]}:{runner.addresses[0][1]}"
    fleet_config = FleetConfig(host, port, rigs=rigs, faults=tuple(parse_fault(f) for f in faults if f))
    fleet = Fleet(fleet_config, clock=clock)
    registry.credit_scale = 1.0 / fleet.hash_scale
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    label_width = max(len(label) for label, _ in ENDPOINTS) + 2
    print(
        f"fleetd demo: {rigs} simulated rigs mining stratum+tcp://{host}:{port}\n"
        + "".join(f"  {label:<{label_width}}{http_base}{path}\n" for label, path in ENDPOINTS)
        + f"  rigs grind {fleet.hash_scale:g} of their nominal work; each share is credited {1 / fleet.hash_scale:g}x\n"
        + "".join(f"  {line}\n" for line in (*prices_lines(config.economics), *curtailment_config_lines(config)))
        + f"  faults: {', '.join(faults) or 'none'}; Ctrl-C stops",
        file=out,
        flush=True,
    )
    started = clock.monotonic()
    try:
        try:
            await fleet.start()
        except PermissionError:  # ports 80 and 4028 need root: mine without the rigs' APIs
            await fleet.stop()
            print("  (not root: the rigs' firmware APIs cannot bind ports 80/4028; running without them)", file=out)
            fleet = Fleet(dataclasses.replace(fleet_config, firmware=False), clock=clock)
            registry.poll_interval = None  # nothing to poll: "up" means connected
            if curtailment.config.mode == "act":  # and nothing to switch rigs through
                advise = dataclasses.replace(curtailment.config, mode="advise")
                curtailment.config = curtailment.controller.config = advise
                print("  (without them nothing can switch a rig: curtailment only advises)", file=out)
            await fleet.start()
        keep_held_rigs_off(fleet, curtailment)  # before the rigs' first share
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(fleet.stop)
            while not stop.is_set():
                left = every if duration is None else started + duration - clock.monotonic()
                await wait_or_sleep(stop, clock, max(0.0, min(every, left)))
                now = clock.wall()
                snapshot = site_economics.snapshot(now)
                table = render(registry, source, clock.monotonic() - started, now, snapshot, curtailment)
                print(table, file=out, flush=True)
                if duration is not None and clock.monotonic() - started >= duration:
                    break
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0


def keep_held_rigs_off(fleet: Fleet, curtailment) -> None:
    """The simulated rigs fleetd held off when the demo last stopped (its journal says which)
    start asleep: real rigs stay as fleetd left them while fleetd restarts."""
    for name, held in curtailment.controller.curtailed.items():
        if held.state in ("stopping", "off"):
            with contextlib.suppress(KeyError):  # not in this fleet (a smaller one this time)
                fleet.rig(name).state.sleep()


# (header, width) of the right-aligned columns after the rig's name and state
COLUMNS = (
    ("pool 5m", 13), ("reported", 9), ("accepted", 9), ("rejects", 8), ("watts", 8), ("J/TH", 5), ("temp", 6),
    ("margin/day", 11), ("breakeven", 10),
)  # fmt: skip
# up, hot, down; immature (up, on too few shares to judge); stopping, off, resuming, failed (fleetd
# holds it off); "up (off)": advised off
STATE_WIDTH = 9
SCREEN_WIDTH = 105  # the table's width with rig names of 14 characters; the lines under it wrap to it


def render(rigs, source, elapsed: float, now: float, site: SiteEconomics | None = None, curtailment=None) -> str:
    """One screen of the fleet at wall time ``now``: per rig, what the pool measured, what the
    rig says, what it earns; then the fleet's totals over the rigs that are up, the site's
    economics, and what the curtailment service (``curtailment``) holds off or advises."""
    totals = rigs.totals(now)
    rows = [
        f"\n[{elapsed:6.0f} s] height {source.height}, blocks found {len(source.found_blocks)}; "
        f"rigs up {totals.up} of {totals.rigs}, hot {totals.hot}"
    ]
    by_name = sorted(rigs, key=lambda r: r.name)
    name_width = max(map(len, ["fleet", *(rig.name for rig in by_name)])) + 1

    def row(name: str, state: str, *cells: str) -> str:
        return f"  {name:<{name_width}}{state:<{STATE_WIDTH}}" + "".join(
            cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS)
        )

    rows.append(row("rig", "state", *(header for header, _ in COLUMNS)))
    by_rig = {e.rig_id: e for e in site.rigs} if site is not None else {}
    young = immature(curtailment, now)
    for rig in by_name:
        reading = rig.reading
        watts, source_kind = rig.power(now)
        hottest = max(reading.temperatures.values(), default=None) if reading else None
        estimate = rig.hashrate_estimate("5m", now, rigs.credit_scale)
        rows.append(
            row(
                rig.name,
                rig_state(rigs, rig, now, curtailment, young),
                _pool_cell(estimate.rate, _spread(estimate)),
                _ths(reading.hashrate) if reading and reading.hashrate else "-",
                str(rig.accepted),
                str(sum(rig.rejected.values())),
                (f"{watts:,.0f}" + ("*" if source_kind == "nameplate" else "")) if watts else "-",
                _efficiency(rig.efficiency(now)),
                f"{hottest:.0f}°C" if hottest is not None else "-",
                *_margin_cells(by_rig.get(rig.name)),
            )
        )
    fleet = site.fleet if site is not None else None
    rows.append(
        row(
            "fleet",
            "",
            _pool_cell(totals.hashrate["5m"]),
            _ths(totals.reported_hashrate),
            str(totals.accepted),
            str(totals.rejected),
            f"{totals.watts / 1000:,.1f} kW",
            _efficiency(totals.efficiency),
            "",
            _usd(fleet.margin_usd_per_day) if fleet is not None else "-",
            _price(fleet.breakeven_usd_per_kwh if fleet is not None else None),
        )
    )
    legend = "  TH/s, ± a 95 % interval; the fleet's rates and watts are those of rigs up; * nameplate estimate: no power reported"
    if young is not None:
        legend += f"; immature: on under {curtailment.config.min_shares:g} shares, too few for a loss to switch it off"
    rows += textwrap.wrap(legend, SCREEN_WIDTH, subsequent_indent="    ")
    if site is not None:
        rows.extend(economics_lines(site))
    if curtailment is not None:
        rows.extend(curtailment_lines(curtailment))
    for block in list(source.found_blocks)[-3:]:
        rows.append(f"  block {block.height} by {block.worker}: {block.hash}")
    return "\n".join(rows)


def rig_state(rigs, rig, now: float, curtailment, young: set[str] | None = None) -> str:
    """The registry's state (up, hot, down); for a rig fleetd holds off and that is not down,
    where the curtailment is (stopping, off, resuming, failed); ``(off)`` after a rig the
    controller advises to switch off (advise mode); ``immature`` for a rig up that is in
    ``young`` (and none of those)."""
    state = rigs.state(rig, now)
    if curtailment is None or state == "down":
        return state
    controller = curtailment.controller
    if curtailment.config.mode == "act" and rig.name in controller.curtailed:
        return controller.curtailed[rig.name].state
    if curtailment.config.mode == "advise" and rig.name in controller.advice:
        return f"{state} (off)"
    return "immature" if state == "up" and young and rig.name in young else state


def immature(curtailment, now: float) -> set[str] | None:
    """The rigs whose rate, as the controller judges it, rests on fewer than ``min_shares``
    shares (None: curtailment is off, so nothing is judged)."""
    if curtailment is None or curtailment.config.mode == "off":
        return None
    _, judged = curtailment.inputs(now)
    return {name for name, rig in judged.items() if rig.shares < curtailment.config.min_shares}


def _margin_cells(e: RigEconomics | None) -> tuple[str, str]:
    if e is None:
        return "-", "-"
    return _usd(e.margin_usd_per_day), _price(e.breakeven_usd_per_kwh)


def _ths(rate: float) -> str:
    return f"{rate / 1e12:,.1f}"


def _pool_cell(rate: float, spread: str = "") -> str:
    """TH/s, then ``spread`` in a field of its own, so that the rates line up."""
    return f"{_ths(rate)} {spread:>5}"


def _spread(estimate) -> str:
    """The half-width of a rate's 95 % interval in percent of it (``±7%``); none without a share."""
    if estimate.shares <= 0 or estimate.rate <= 0:
        return ""
    return f"±{min((estimate.upper - estimate.lower) / 2 / estimate.rate * 100, 999):.0f}%"


def _efficiency(joules_per_terahash: float | None) -> str:
    if not joules_per_terahash:
        return "-"
    return f"{joules_per_terahash:.1f}" if joules_per_terahash < 1000 else ">999"  # a rig that hardly hashes yet


def _price(usd_per_kwh: float | None) -> str:
    return f"${usd_per_kwh:.3f}" if usd_per_kwh is not None else "-"


def economics_lines(site: SiteEconomics) -> list[str]:
    """The site's economics under the table: hashprice, fleet margin and breakeven, retarget, curtailment."""
    if site.hashprice_usd_per_ph_day is None:
        why = "BTC price stale or unknown" if site.price_stale else "no network figures from the job source yet"
        return [f"  economics: {why}"]
    lines = [
        f"  hashprice ${site.hashprice_usd_per_ph_day:.2f}/PH/day at BTC ${site.btc_usd:,.0f}, "
        f"network {_si(site.network_hashrate_hps or 0)}H/s; power ${site.site_usd_per_kwh:.3f}/kWh"
    ]
    fleet = site.fleet
    if fleet is not None and fleet.breakeven_usd_per_kwh is not None:
        per_mw = fleet.margin_usd_per_mw_day
        offer = site.ai_hosting_usd_per_mw_day
        lines.append(
            f"  fleet: revenue {_usd(fleet.revenue_usd_per_day)}, power {_usd(fleet.power_cost_usd_per_day)}, "
            f"margin {_usd(fleet.margin_usd_per_day)} a day; breakeven power price ${fleet.breakeven_usd_per_kwh:.3f}/kWh"
        )
        if per_mw is not None:
            lines.append(
                f"  margin per MW {_usd(per_mw)}/day" + (f" vs AI hosting offer {_usd(offer)}/MW/day" if offer else "")
            )
    projection = site.projection
    if projection is not None:
        lines.append(
            f"  next difficulty adjustment {projection.change_ratio * 100:+.2f} % in {projection.blocks_remaining} blocks "
            f"(average block {projection.average_block_time_seconds:.0f} s over {projection.blocks_known} blocks)"
        )
    losing = ", ".join(e.rig_id for e in site.unprofitable) or "none"
    lines.append(f"  losing money now (switch off first): {losing}")
    plan = site.curtail_plan
    if plan is not None:
        lines.append(
            f"  to shed {site.curtail_target_kw:g} kW: {', '.join(plan.rig_ids) or 'nothing'} "
            f"({plan.reduction_kw:.1f} kW, losing {_usd(plan.lost_revenue_usd_per_day)}/day of revenue)"
        )
    return [part for line in lines for part in textwrap.wrap(line, SCREEN_WIDTH, subsequent_indent="    ")]


def curtailment_lines(curtailment) -> list[str]:
    """Under the table: the rigs fleetd holds off, by where they are and why (advise mode: the
    ones it would switch off), the draw shed, and a demand-response request in force."""
    mode, controller = curtailment.config.mode, curtailment.controller
    if mode == "off":
        return []
    if mode == "advise":
        would = _by_reason({name: ("", reason) for name, reason in controller.advice.items()})
        line = f"curtailment advises (nothing is touched): {'switch off ' + would if would else 'every rig on'}"
    else:
        held = _by_reason({name: (c.state, c.reason) for name, c in controller.curtailed.items()})
        line = f"curtailment (act): {held or 'every rig on'}; {controller.shed_kw():,.1f} kW shed"
        demand = controller.demand
        if demand is not None:
            left = max(0.0, demand.until - curtailment.clock.wall())
            line += f"; demand response: {demand.kw:g} kW asked for {left:.0f} s more"
        if controller.came_back:
            line += f"; {controller.came_back} came back on their own"
    return textwrap.wrap("  " + line, SCREEN_WIDTH, subsequent_indent="    ")


def _by_reason(rigs: dict[str, tuple[str, str]]) -> str:
    """``off site.a, site.b (unprofitable); stopping site.c (demand)`` from rig -> (state, reason)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, key in sorted(rigs.items()):
        groups.setdefault(key, []).append(name)
    return "; ".join(
        f"{state + ' ' if state else ''}{', '.join(names)} ({reason})" for (state, reason), names in groups.items()
    )


def prices_lines(economics: EconomicsConfig | None) -> list[str]:
    """For the banner: the power price and each contract's, time-of-use steps with their times."""
    if economics is None:
        return []
    zone = economics.timezone
    lines = [f"power: {_schedule(economics.power_schedule, zone)}"]
    lines += [f"  {', '.join(o.patterns)}: {_schedule(o.schedule, zone)}" for o in economics.overrides]
    return lines


def _schedule(schedule: TouSchedule, zone: str) -> str:
    entries = schedule.entries  # in the order they were given
    if len(entries) == 1:
        return f"${entries[0].usd_per_kwh:.3f}/kWh"
    return ", ".join(f"${e.usd_per_kwh:.3f}/kWh from {e.start:%H:%M}" for e in entries) + f" ({zone})"


def curtailment_config_lines(config: Config) -> list[str]:
    """For the banner: how curtailment judges and acts."""
    c = config.curtailment
    if c.mode == "off":
        return ["curtailment: off"]
    lines = [
        f"curtailment: {c.mode} every {c.cycle_seconds:g} s; a loss counts on {c.min_shares:g} shares; "
        f"a rig stays off {c.min_off_seconds:g} s, on {c.min_on_seconds:g} s"
    ]
    if c.never:
        lines.append(f"  never touched: {', '.join(c.never)}")
    return lines


def _usd(amount: float) -> str:
    text = f"${abs(amount):,.2f}"
    return "-" + text if amount < 0 and text != "$0.00" else text  # not -$0.00: a loss of nothing


def _si(value: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} "


def main(config: Config | None, *, rigs: int, stratum: HostPort | None, http: HostPort | None,
         duration: float | None, faults: tuple[str, ...]) -> int:  # fmt: skip
    if faults == DEFAULT_FAULTS:  # a small fleet keeps only the misbehaving rigs it has
        faults = tuple(f for f in faults if int(f.split(":", 1)[0]) <= rigs)
    try:  # the fleet's own checks, before anything listens (its pool address is only known later)
        FleetConfig("127.0.0.1", 1, rigs=rigs, faults=tuple(parse_fault(f) for f in faults if f))
    except ValueError as exc:
        print(f"fleetd demo: {exc}", file=sys.stderr)
        return 2
    config = demo_config(config, stratum, http)
    for problem in serving_problems(config):
        print(f"fleetd demo: {problem}", file=sys.stderr)
        return 2
    logging.configure("warning", "console", stream=sys.stderr)  # the table is the demo's output
    return asyncio.run(run(config, rigs=rigs, faults=faults, duration=duration))
