"""The ``fleetd`` command."""

from __future__ import annotations

import argparse
import platform
import sys

from fleetd import __version__


def _version(args: argparse.Namespace) -> int:
    from fleetd import native

    print(f"fleetd {__version__}")
    print(f"native: {native.IMPL} (available: {', '.join(native.available())})")
    print(f"python: {platform.python_implementation()} {platform.python_version()} on {platform.machine()}")
    return 0


def _bench_validate(args: argparse.Namespace) -> int:
    from fleetd.bench import validate

    print(validate.report(repeats=args.repeats, batch_size=args.batch, loops=args.loops))
    return 0


def _bench_telemetry(args: argparse.Namespace) -> int:
    from fleetd.bench import scrape, telemetry

    print(scrape.format_scrape(scrape.measure(args.rigs, args.repeats)))
    if args.poll_rigs:
        print()
        try:
            print(telemetry.format_poll_round(telemetry.poll_round(args.poll_rigs)))
        except (telemetry.BenchError, PermissionError) as exc:
            print(f"fleetd bench telemetry: poll round skipped: {exc}", file=sys.stderr)
            return 1
    return 0


def _bench_stratum(args: argparse.Namespace) -> int:
    from fleetd.bench import stratum

    options = stratum.BenchOptions(
        connections=args.connections,
        seconds=args.seconds,
        submits=args.submits,
        warmup=args.warmup,
        repeats=args.repeats,
        window=args.window,
        rate=args.rate,
        idle_connections=args.idle_connections,
        proxy=args.proxy,
        journal=args.journal,
        loadgen_processes=args.loadgen_processes,
    )
    try:
        print(stratum.report(options))
    except stratum.BenchError as exc:
        print(f"fleetd bench stratum: {exc}", file=sys.stderr)
        return 1
    return 0


def _bench_hostile(args: argparse.Namespace) -> int:
    from fleetd.bench import hostile, stratum

    try:
        options = hostile.HostileOptions(
            idle_connections=args.idle_connections,
            flood_names=args.flood_names,
            fuzz_connections=args.fuzz_connections,
            connections=args.connections,
            rate=args.rate,
            seconds=args.seconds,
            warmup=args.warmup,
            repeats=args.repeats,
            seed=args.seed,
            max_connections_per_ip=args.max_connections_per_ip,
        )
    except ValueError as exc:
        print(f"fleetd bench hostile: {exc}", file=sys.stderr)
        return 2
    try:
        print(hostile.report(options))
    except stratum.BenchError as exc:
        print(f"fleetd bench hostile: {exc}", file=sys.stderr)
        return 1
    return 0


def _bench_page(args: argparse.Namespace) -> int:
    from fleetd.bench import page

    sizes = (args.rigs, args.small_rigs)
    try:
        print(page.format_report(page.run(sizes, args.repeats), args.repeats))
    except page.BenchError as exc:
        print(f"fleetd bench page: {exc}", file=sys.stderr)
        return 1
    return 0


def _load_config(path: str | None):
    from fleetd import config

    return config.load(path or None)  # None: the built-in defaults, checked as a file would be


def _serve(args: argparse.Namespace) -> int:
    from fleetd import app
    from fleetd.config import ConfigError

    try:
        cfg = _load_config(args.config)
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    app.run(cfg)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from fleetd.config import ConfigError, load

    try:
        cfg = load(args.path)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    print(f"{args.path}: ok (stratum {cfg.stratum.listen}, http {cfg.http.listen}, source {cfg.source.kind})")
    return 0


def _print_problems(exc) -> None:
    print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    from fleetd.config import ConfigError, parse_host_port
    from fleetd.sim import demo

    try:
        cfg = _load_config(args.config) if args.config else None
        stratum = parse_host_port(args.stratum) if args.stratum else None
        http = parse_host_port(args.http) if args.http else None
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    except ValueError as exc:
        print(f"fleetd demo: {exc}", file=sys.stderr)
        return 2
    try:
        return demo.main(cfg, rigs=args.rigs, stratum=stratum, http=http, duration=args.duration,
                         faults=tuple(args.fault) if args.fault is not None else demo.DEFAULT_FAULTS)  # fmt: skip
    except OSError as exc:
        print(f"fleetd demo: cannot listen: {exc}", file=sys.stderr)
        return 1


def _simulate(args: argparse.Namespace) -> int:
    from fleetd.config import parse_host_port
    from fleetd.rigs.models import CATALOGUE
    from fleetd.sim import fleet
    from fleetd.sim.fleet_faults import parse_fault

    try:
        pool = parse_host_port(args.pool)
    except ValueError as exc:
        print(f"fleetd simulate: --pool {args.pool}: {exc}", file=sys.stderr)
        return 2
    try:
        config = fleet.FleetConfig(
            pool.host,
            pool.port,
            rigs=args.rigs,
            models=fleet.parse_models(args.models) if args.models else CATALOGUE,
            site=args.site,
            seed=args.seed,
            firmware=not args.no_firmware,
            hash_scale=args.hash_scale,
            faults=tuple(parse_fault(text) for text in args.fault),
        )
    except (ValueError, LookupError) as exc:
        print(f"fleetd simulate: {exc}", file=sys.stderr)
        return 2
    try:
        return fleet.main(config, duration=args.duration)
    except PermissionError as exc:
        print(f"fleetd simulate: {exc}; rig APIs need ports 80 and 4028 (root), or --no-firmware", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleetd simulate: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    from fleetd.sim import fleet_faults

    parser = argparse.ArgumentParser(prog="fleetd", description="Stratum v1 pool and fleet telemetry for mining sites")
    parser.add_argument("--version", action="version", version=f"fleetd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    faults_help = {"epilog": fleet_faults.describe(), "formatter_class": argparse.RawDescriptionHelpFormatter}

    commands.add_parser("version", help="print the version and the active native implementation").set_defaults(
        handler=_version
    )
    demo = commands.add_parser("demo", help="run fleetd on its demo chain with simulated rigs mining it", **faults_help)
    demo.add_argument("--config", metavar="PATH", help="TOML configuration (demo defaults when omitted)")
    demo.add_argument("--rigs", type=_positive, default=20, help="simulated rigs of mixed models (default 20)")
    demo.add_argument("--stratum", metavar="HOST:PORT", help="Stratum listener (default 127.0.0.1:3333)")
    demo.add_argument("--http", metavar="HOST:PORT", help="metrics and API listener (default 127.0.0.1:9550)")
    demo.add_argument("--fault", action="append", metavar="SPEC",
                      help="inject a fault, see below (repeatable; default: two misbehaving rigs)")  # fmt: skip
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    demo.set_defaults(handler=_demo)

    simulate = commands.add_parser(
        "simulate", help="run simulated rigs (real Stratum, emulated firmware APIs) against a pool on loopback",
        **faults_help,
    )
    simulate.add_argument("--pool", required=True, metavar="HOST:PORT", help="the pool's Stratum address (loopback)")
    simulate.add_argument("--rigs", type=_positive, default=20, help="simulated rigs (default 20)")
    simulate.add_argument("--models", metavar="LIST", help="comma-separated models, taken in turn (default: all)")
    simulate.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="inject a fault, see below (repeatable)"
    )
    simulate.add_argument("--duration", type=_positive_float, default=None, help="stop after this many seconds")
    simulate.add_argument("--seed", type=int, default=0, help="share timing and fault draws (default 0)")
    simulate.add_argument("--site", default="site", help="worker names are SITE.<rig> (default site)")
    simulate.add_argument("--hash-scale", type=_positive_float, default=None, help="simulated / nominal hash rate")
    simulate.add_argument("--no-firmware", action="store_true", help="no emulated rig APIs (no root needed)")
    simulate.set_defaults(handler=_simulate)

    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", metavar="PATH", help="TOML configuration (built-in defaults when omitted)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser("check-config", help="validate a configuration file and name every bad key")
    check.add_argument("path", metavar="PATH")
    check.set_defaults(handler=_check_config)

    bench = commands.add_parser("bench", help="benchmarks that print ratios measured in the same run")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    validate = benches.add_parser("validate", help="share validation: Python reference vs the native core")
    validate.add_argument("--repeats", type=_positive, default=15, help="interleaved runs per path (median reported)")
    validate.add_argument("--batch", type=_positive, default=64, help="shares per batch call")
    validate.add_argument("--loops", type=_positive, default=200, help="calls timed per run")
    validate.set_defaults(handler=_bench_validate)
    stratum = benches.add_parser(
        "stratum", help="fleetd serve under a separate load generator: submits per CPU-second, latency, memory"
    )
    stratum.add_argument("--connections", type=_positive, default=1000, help="connections submitting shares")
    stratum.add_argument("--seconds", type=_positive_float, default=5.0, help="measured window of each run")
    stratum.add_argument(
        "--submits", type=_positive, default=None, help="end each measured window after this many answered submits"
    )
    stratum.add_argument("--warmup", type=_non_negative_float, default=0.5, help="unmeasured load before each window")
    stratum.add_argument("--repeats", type=_positive, default=3, help="runs per measurement (median reported)")
    stratum.add_argument("--window", type=_positive, default=4, help="unanswered submits per connection")
    stratum.add_argument(
        "--loadgen-processes",
        type=_positive,
        default=None,
        help="load-generator processes (default: one per CPU the server is not pinned to)",
    )
    stratum.add_argument("--rate", type=_positive_float, default=5000.0, help="offered submits/s for the latency runs")
    stratum.add_argument(
        "--idle-connections", type=_non_negative, default=10_000, help="idle connections for the RSS figure (0: skip)"
    )
    mode = stratum.add_mutually_exclusive_group()
    mode.add_argument(
        "--proxy",
        action="store_true",
        help="also run the load through a proxy fleetd (upstream source): its submits per CPU-second and added p99",
    )
    mode.add_argument(
        "--journal",
        action="store_true",
        help="the same load on a fleetd with the journal on and one with it off: submits per CPU-second of each, on/off",
    )
    stratum.set_defaults(handler=_bench_stratum)

    telemetry = benches.add_parser(
        "telemetry", help="/metrics scrape cost for a large site, and one poll round against emulated rig APIs"
    )
    telemetry.add_argument("--rigs", type=_positive, default=10_000, help="registered rigs for the scrape")
    telemetry.add_argument("--repeats", type=_positive, default=7, help="scrapes timed (median reported)")
    telemetry.add_argument(
        "--poll-rigs", type=_non_negative, default=1000, help="emulated rig APIs for the poll round (0: skip)"
    )
    telemetry.set_defaults(handler=_bench_telemetry)
    hostile = benches.add_parser(
        "hostile", help="a good rig's share p50/p99 quiet and under idle connections, a name flood and a fuzzer"
    )
    hostile.add_argument("--idle-connections", type=_non_negative, default=10_000, help="idle hostile connections")
    hostile.add_argument("--flood-names", type=_non_negative, default=50_000,
                         help="distinct worker names the flood authorizes per hostile window")  # fmt: skip
    hostile.add_argument("--fuzz-connections", type=_non_negative, default=5_000,
                         help="fuzz connections per hostile window")  # fmt: skip
    hostile.add_argument("--connections", type=_positive, default=4, help="the good rig's connections")
    hostile.add_argument("--rate", type=_positive_float, default=250.0, help="the good rig's shares/s")
    hostile.add_argument("--seconds", type=_positive_float, default=5.0, help="measured window of each run")
    hostile.add_argument("--warmup", type=_non_negative_float, default=1.0, help="unmeasured load before each window")
    hostile.add_argument("--repeats", type=_positive, default=3, help="quiet/hostile pairs (medians reported)")
    hostile.add_argument("--seed", type=int, default=1, help="the fuzzer's seed")
    hostile.add_argument("--max-connections-per-ip", type=_positive, default=1_000,
                         help="the server's per-address connection limit (the storm exceeds it)")  # fmt: skip
    hostile.set_defaults(handler=_bench_hostile)
    site_page = benches.add_parser(
        "page", help="the site page at /: payload, /api/v1/site time, load, refresh and sort in headless Chromium"
    )
    site_page.add_argument("--rigs", type=_positive, default=5_000, help="rigs of the large site (default 5,000)")
    site_page.add_argument("--small-rigs", type=_positive, default=50, help="rigs of the site it is compared with")
    site_page.add_argument("--repeats", type=_positive, default=5, help="first visits per site (median reported)")
    site_page.set_defaults(handler=_bench_page)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:  # the import reads FLEETD_NATIVE: a bad value is one line for every command, not a traceback
        import fleetd.native  # noqa: F401
    except ValueError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
