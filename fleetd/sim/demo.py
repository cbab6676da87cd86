"""``fleetd demo``: the daemon on its embedded demo chain, mined by simulated rigs on loopback.

Everything a site would see, shrunk to one host: rigs connect over real Stratum,
vardiff settles each one near a share every few seconds, every share is checked in
the C core, and a block now and then moves the chain on.
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
from fleetd.sim.miner import Miner, MinerConfig


def demo_config(base: Config | None = None) -> Config:
    """The demo's defaults: loopback only, CPU-miner difficulties, blocks every few minutes."""
    if base is not None:
        return base
    config = Config()
    return dataclasses.replace(
        config,
        stratum=dataclasses.replace(
            config.stratum, listen=HostPort("127.0.0.1", 3333), min_difficulty=1e-9, start_difficulty=1e-5
        ),
        source=dataclasses.replace(config.source, network_difficulty=0.003, refresh_seconds=10.0),
    )


async def run(config: Config, *, miners: int, hashrate: float, duration: float | None, out=sys.stdout) -> int:
    application = fleetd_app.build_app(config)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    http = config.http.listen
    await web.TCPSite(runner, http.host, http.port).start()
    server = application[fleetd_app.STRATUM_KEY]
    source = application[fleetd_app.SOURCE_KEY]
    host, port = server.address
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    rigs = [
        Miner(MinerConfig(host, port, username=f"demo.rig{i + 1:02d}", hashrate=hashrate, version_rolling=i % 2 == 0))
        for i in range(miners)
    ]
    tasks = [asyncio.create_task(_mine(rig), name=f"rig{i + 1}") for i, rig in enumerate(rigs)]
    print(
        f"fleetd demo: {miners} simulated rigs at {hashrate:,.0f} H/s each mining stratum+tcp://{host}:{port}; "
        f"health at http://{http}/healthz; Ctrl-C stops",
        file=out,
    )
    started = time.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)
            print(render(server.rigs, source, time.monotonic() - started), file=out, flush=True)
            if duration is not None and time.monotonic() - started >= duration:
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
    return 0


async def _mine(rig: Miner) -> None:
    async with rig:
        await rig.mine()


def render(rigs, source, elapsed: float, now: float | None = None) -> str:
    """One screen of the fleet: per rig, what the pool measured and what the rig says."""
    now = time.time() if now is None else now
    rows = [f"\n[{elapsed:6.0f} s] height {source.height}, blocks found {len(source.found_blocks)}"]
    rows.append(
        f"  {'rig':<20}{'up':>3}{'pool 5m':>13}{'reported':>13}{'accepted':>9}{'rejected':>9}"
        f"{'watts':>10}{'J/TH':>7}{'temp':>7}"
    )
    for rig in sorted(rigs, key=lambda r: r.name):
        reading = rig.reading
        watts, source_kind = rig.power(now)
        efficiency = rig.efficiency(now)
        hottest = max(reading.temperatures.values(), default=None) if reading else None
        rows.append(
            f"  {rig.name:<20}{'yes' if rigs.up(rig, now) else 'no':>3}"
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
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} "


def main(config: Config | None, *, miners: int, hashrate: float, duration: float | None) -> int:
    config = demo_config(config)
    logging.configure("warning", "console")  # the table is the demo's output; logs only for trouble
    return asyncio.run(run(config, miners=miners, hashrate=hashrate, duration=duration))
