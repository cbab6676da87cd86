"""The proxy daemon ``fleetd bench stratum --proxy`` measures: ``fleetd serve`` with an upstream source.

    python -m fleetd.bench.proxyd --config fleetd.toml --pool stratum+tcp://127.0.0.1:3334 --user bench

The TOML gives the Stratum listener, HTTP and logging exactly as for ``fleetd serve``;
the job source is an ``UpstreamSource`` built from the flags, so the benchmark does not
depend on how the configuration file spells the upstream section.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.config import ConfigError, load
from fleetd.sim.loopback import NotLoopbackError, require_loopback
from fleetd.sources.upstream import PoolUrl, UpstreamConfig, build_source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetd.bench.proxyd")
    parser.add_argument("--config", required=True, help="fleetd TOML (stratum, http, log)")
    parser.add_argument("--pool", action="append", required=True, help="upstream URL (loopback); repeat for backups")
    parser.add_argument("--user", default="bench")
    parser.add_argument("--stall-seconds", type=float, default=3600.0, help="the bench upstream sends no new jobs")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
        for url in args.pool:
            require_loopback(PoolUrl.parse(url).host)  # a benchmark never loads someone else's pool
        upstream = UpstreamConfig(pools=tuple(args.pool), user=args.user, stall_seconds=args.stall_seconds)
    except (ConfigError, NotLoopbackError, ValueError) as exc:
        print(f"proxyd: {exc}", file=sys.stderr)
        return 2
    logging.configure(config.log.level, config.log.format)
    loop = fleetd_app._new_event_loop()
    http = config.http.listen
    application = fleetd_app.build_app(config, build_source(upstream))
    web.run_app(application, host=http.host, port=http.port, print=None, access_log=None, loop=loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
