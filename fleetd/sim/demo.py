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
import time

from aiohttp import web

from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.config import Config, HostPort
from fleetd.sim.fleet import Fleet, FleetConfig
from fleetd.sim.fleet_faults import parse_fault
from fleetd.telemetry import api

DEFAULT_RIGS = 20
# One or two rigs misbehave, so the table and the alerts have something to show.
DEFAULT_FAULTS = ("3:invalid=0.15", "7:overheat=25@20")
TABLE_EVERY = 5.0


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
) -> int:
    out = out or sys.stdout  # looked up per call: the default would pin the stdout of import time
    application = fleetd_app.build_app(config)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    http = config.http.listen
    site = web.TCPSite(runner, http.host, http.port)
    await site.start()
    server = application[fleetd_app.STRATUM_KEY]
    source = application[fleetd_app.SOURCE_KEY]
    registry = application[api.RIGS_KEY]
    host, port = server.address
    http_base = f"http://{runner.addresses[0][0]}:{runner.addresses[0][1]}"
    fleet_config = FleetConfig(host, port, rigs=rigs, faults=tuple(parse_fault(f) for f in faults if f))
    fleet = Fleet(fleet_config)
    registry.credit_scale = 1.0 / fleet.hash_scale
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    print(
        f"fleetd demo: {rigs} simulated rigs mining stratum+tcp://{host}:{port}\n"
        f"  metrics  {http_base}/metrics\n  rigs     {http_base}/api/v1/rigs\n  health   {http_base}/healthz\n"
        f"  rigs grind {fleet.hash_scale:g} of their nominal work; each share is credited {1 / fleet.hash_scale:g}x\n"
        f"  faults: {', '.join(faults) or 'none'}; Ctrl-C stops",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    try:
        try:
            await fleet.start()
        except PermissionError:  # ports 80 and 4028 need root: mine without the rigs' APIs
            await fleet.stop()
            print("  (not root: the rigs' firmware APIs cannot bind ports 80/4028; running without them)", file=out)
            fleet = Fleet(dataclasses.replace(fleet_config, firmware=False))
            registry.poll_interval = None  # nothing to poll: "up" means connected
            await fleet.start()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(fleet.stop)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)
                print(render(registry, source, time.monotonic() - started), file=out, flush=True)
                if duration is not None and time.monotonic() - started >= duration:
                    break
    finally:
        await runner.cleanup()
    return 0


def render(rigs, source, elapsed: float, now: float | None = None) -> str:
    """One screen of the fleet: per rig, what the pool measured and what the rig says."""
    now = time.time() if now is None else now
    rows = [f"\n[{elapsed:6.0f} s] height {source.height}, blocks found {len(source.found_blocks)}"]
    rows.append(
        f"  {'rig':<20}{'up':>4}{'pool 5m':>13}{'reported':>13}{'accepted':>9}{'rejected':>9}"
        f"{'watts':>10}{'J/TH':>7}{'temp':>7}"
    )
    for rig in sorted(rigs, key=lambda r: r.name):
        reading = rig.reading
        watts, source_kind = rig.power(now)
        efficiency = rig.efficiency(now)
        hottest = max(reading.temperatures.values(), default=None) if reading else None
        rows.append(
            f"  {rig.name:<20}{'yes' if rigs.up(rig, now) else 'no':>4}"
            f"{_si(rig.hashrate('5m', now)) + 'H/s':>13}"
            f"{(_si(reading.hashrate) + 'H/s') if reading and reading.hashrate else '-':>13}"
            f"{rig.accepted:>9}{sum(rig.rejected.values()):>9}"
            f"{(f'{watts:,.0f}' + ('*' if source_kind == 'nameplate' else '')) if watts else '-':>10}"
            f"{f'{efficiency:.1f}' if efficiency else '-':>7}"
            f"{f'{hottest:.0f}°C' if hottest is not None else '-':>7}"
        )
    rows.append("  * nameplate estimate: the firmware reports no power")
    for block in list(source.found_blocks)[-3:]:
        rows.append(f"  block {block.height} by {block.worker}: {block.hash}")
    return "\n".join(rows)


def _si(value: float) -> str:
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} "


def main(config: Config | None, *, rigs: int, stratum: HostPort | None, http: HostPort | None,
         duration: float | None, faults: tuple[str, ...]) -> int:  # fmt: skip
    if faults == DEFAULT_FAULTS:  # a small fleet keeps only the misbehaving rigs it has
        faults = tuple(f for f in faults if int(f.split(":", 1)[0]) <= rigs)
    logging.configure("warning", "console", stream=sys.stderr)  # the table is the demo's output
    return asyncio.run(run(demo_config(config, stratum, http), rigs=rigs, faults=faults, duration=duration))
