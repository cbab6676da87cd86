"""``fleetd demo``: the whole site on loopback — the daemon on its demo chain, a simulated
fleet of rigs mining it over real Stratum, and their emulated firmware APIs polled with pyasic.

The rigs grind real shares, but only a fixed fraction (the fleet's hash scale) of their
nominal work, since one CPU core cannot do 200 TH/s. The demo credits each share with the
inverse of that fraction, so hash rates, J/TH and margins read as a real site's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import textwrap


from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.config import Config, HostPort, serving_problems
from fleetd.economics.prices import TouSchedule
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
    ("release a rig", "/api/v1/curtailment/rigs/{rig}"),
)
# Prices of the situation the demo shows: hashprice about $35/PH/day at ~1 ZH/s, power at
# $0.075/kWh, and the S19 XPs (21.5 J/TH, breakeven about $0.068/kWh) on an older hall's
# $0.09 contract, where they clearly run at a loss.
DEMO_ECONOMICS = EconomicsConfig(
    power_schedule=TouSchedule.flat(0.075),
    overrides=(PowerOverride(("*.s19xp-*",), TouSchedule.flat(0.09)),),
    btc_price_usd=77_000.0,
    fees_btc_per_block=0.025,
    ai_hosting_usd_per_mw_day=2_500.0,
    curtail_target_kw=5.0,
)


def demo_config(base: Config | None = None, stratum: HostPort | None = None, http: HostPort | None = None) -> Config:
    """Loopback only, CPU-sized difficulties (simulated rigs must grind real shares), fast polls."""
    config = base or Config()
    if base is None:
        config = dataclasses.replace(
            config,
            stratum=dataclasses.replace(
                config.stratum, listen=HostPort("127.0.0.1", 3333), min_difficulty=1e-9, start_difficulty=1e-9,
                max_difficulty=5e-4,
            ),
            source=dataclasses.replace(config.source, network_difficulty=0.003, refresh_seconds=10.0),
            rigs=dataclasses.replace(config.rigs, poll_interval_seconds=10.0, poll_timeout_seconds=5.0),
        )  # fmt: skip
    if config.economics is None:
        config = dataclasses.replace(config, economics=DEMO_ECONOMICS)
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
        f"  faults: {', '.join(faults) or 'none'}; Ctrl-C stops",
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
            await fleet.start()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(fleet.stop)
            while not stop.is_set():
                left = every if duration is None else started + duration - clock.monotonic()
                await wait_or_sleep(stop, clock, max(0.0, min(every, left)))
                now = clock.wall()
                table = render(registry, source, clock.monotonic() - started, now, site_economics.snapshot(now))
                print(table, file=out, flush=True)
                if duration is not None and clock.monotonic() - started >= duration:
                    break
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0


# (header, width) of the right-aligned columns after the rig's name and state
COLUMNS = (
    ("pool 5m", 8), ("reported", 9), ("accepted", 9), ("rejected", 9), ("watts", 8), ("J/TH", 6), ("temp", 6),
    ("margin/day", 11), ("breakeven", 10),
)  # fmt: skip
STATE_WIDTH = 5
SCREEN_WIDTH = 98  # the table's width with rig names of 14 characters; the lines under it wrap to it


def render(rigs, source, elapsed: float, now: float, site: SiteEconomics | None = None) -> str:
    """One screen of the fleet at wall time ``now``: per rig, what the pool measured, what the
    rig says, what it earns; then the fleet's totals over the rigs that are up, and the site's economics."""
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
    for rig in by_name:
        reading = rig.reading
        watts, source_kind = rig.power(now)
        hottest = max(reading.temperatures.values(), default=None) if reading else None
        rows.append(
            row(
                rig.name,
                rigs.state(rig, now),
                _ths(rig.hashrate("5m", now)),
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
            _ths(totals.hashrate["5m"]),
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
    rows.append("  TH/s; the fleet's rates and watts are those of rigs up; * nameplate estimate: no power reported")
    if site is not None:
        rows.extend(economics_lines(site))
    for block in list(source.found_blocks)[-3:]:
        rows.append(f"  block {block.height} by {block.worker}: {block.hash}")
    return "\n".join(rows)


def _margin_cells(e: RigEconomics | None) -> tuple[str, str]:
    if e is None:
        return "-", "-"
    return _usd(e.margin_usd_per_day), _price(e.breakeven_usd_per_kwh)


def _ths(rate: float) -> str:
    return f"{rate / 1e12:,.1f}"


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
