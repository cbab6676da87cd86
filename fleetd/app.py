"""The daemon: the aiohttp app owns every long-lived resource through ``cleanup_ctx``.

Each resource (job source, Stratum listener) is one async generator that starts it,
yields, and stops it, so start-up and graceful shutdown are ordered for free: the
listener stops (miners told to reconnect, found blocks awaited) before the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

from aiohttp import web

from fleetd import log as logging
from fleetd import redact
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.config import Config, stratum_tls_context
from fleetd.server.admission import AdmissionConfig
from fleetd.server.stratum import ServerSettings, StratumServer, TlsListen
from fleetd.shares.vardiff import VardiffConfig
from fleetd.sources.base import JobSource
from fleetd.stratum.auth import AllowListAuthorization, OpenAuthorization, PasswordAuthorization
from fleetd.stratum.session import SessionConfig
from fleetd.rigs.registry import RigRegistry
from fleetd.curtailment.metrics import CurtailmentCollector
from fleetd.curtailment.service import CurtailmentService
from fleetd.telemetry import api, curtailment_api, history_api, listener, web_config
from fleetd.telemetry.site import page as site_page
from fleetd.economics.settings import PowerPrices
from fleetd.journal.store import JournalLocked, default_path
from fleetd.telemetry.economics import SiteEconomicsView

SOURCE_KEY = web.AppKey("source", object)
STRATUM_KEY = web.AppKey("stratum", StratumServer)
CONFIG_KEY = web.AppKey("config", Config)
STARTED_KEY = web.AppKey("started", float)
WEB_CONFIG_KEY = web.AppKey("web_config", web_config.WebConfig)
CURTAILMENT_KEY = web.AppKey("curtailment_service", CurtailmentService)
JOURNAL_KEY = web.AppKey("journal", object)
CLOCK_KEY = api.CLOCK_KEY  # the app's one clock (kept by the API, whose handlers read it)


def session_config(config: Config) -> SessionConfig:
    s, auth = config.stratum, config.auth
    authorizer = {
        "open": lambda: OpenAuthorization(),
        "allowlist": lambda: AllowListAuthorization(auth.accounts),
        "password": lambda: PasswordAuthorization(auth.passwords),
    }[auth.policy]()
    return SessionConfig(
        authorizer=authorizer,
        extranonce2_size=s.extranonce2_size,
        version_mask=s.version_mask,
        allow_version_bits_without_configure=s.allow_version_bits_without_configure,
        min_difficulty=s.min_difficulty,
        max_difficulty=s.max_difficulty,
        max_line_bytes=s.max_line_bytes,
        max_bad_requests=s.max_garbage_requests,
        max_workers=s.max_workers_per_connection,
        max_auth_failures=s.max_auth_failures,
    )


def server_settings(config: Config) -> ServerSettings:
    """The Stratum server's settings; the stratum+ssl certificate is read here, at start, so a
    certificate renewed since the config was checked is the one served."""
    s = config.stratum
    tls = None
    if s.tls_listen is not None:
        tls = TlsListen(s.tls_listen.host, s.tls_listen.port, stratum_tls_context(s), s.tls_handshake_timeout_seconds)
    return ServerSettings(
        host=s.listen.host,
        port=s.listen.port,
        session=session_config(config),
        vardiff=VardiffConfig(
            target_interval=s.share_interval_seconds,
            start_difficulty=s.start_difficulty,
            min_difficulty=s.min_difficulty,
            max_difficulty=s.max_difficulty,
        ),
        extranonce1_size=s.extranonce1_size,
        login_timeout=s.login_timeout_seconds,
        reconnect_on_shutdown=s.reconnect_on_shutdown,
        shutdown_grace=s.shutdown_grace_seconds,
        admission=AdmissionConfig(
            max_connections=s.max_connections,
            max_connections_per_ip=s.max_connections_per_ip,
            connect_rate_per_ip=s.new_connections_per_ip_per_second,
            connect_burst_per_ip=s.new_connections_burst_per_ip,
            max_workers_per_ip=s.max_workers_per_ip,
            ban_after_failed_logins=s.ban_after_failed_logins,
            ban_seconds=s.ban_seconds,
            max_ban_seconds=s.max_ban_seconds,
            ban_forget_seconds=s.ban_forget_seconds,
        ),
        idle_timeout=s.idle_timeout_seconds,
        log_window=s.log_window_seconds,
        tls=tls,
    )


def build_source(config: Config, clock: Clock = SYSTEM_CLOCK) -> JobSource:
    """The job source ``[source] kind`` names, from its already validated configuration."""
    src = config.source
    if src.kind == "bitcoind":
        from fleetd.sources.bitcoind import BitcoindSource

        return BitcoindSource(src.bitcoind, clock=clock)
    if src.kind == "upstream":
        from fleetd.sources import upstream

        return upstream.build_source(src.upstream, clock=clock)
    from fleetd.sources.demo import DemoChain, EconomicsNetwork

    s = config.stratum
    options = {"payout_script": src.payout_script} if src.payout_script else {}

    def chain(resume=None) -> DemoChain:
        return DemoChain(
            network_difficulty=src.network_difficulty,
            extranonce1_size=s.extranonce1_size,
            extranonce2_size=s.extranonce2_size,
            pool_tag=src.pool_tag,
            block_interval_seconds=src.block_interval_seconds,
            refresh_seconds=src.refresh_seconds,
            economics_network=EconomicsNetwork(
                src.economics_difficulty, src.economics_height, src.economics_block_time_seconds
            ),
            clock=clock,
            resume=resume,
            **options,
        )

    tip = _journaled_demo_tip(config)
    if tip is not None:
        try:
            resumed = chain(tip)
        except ValueError as exc:  # e.g. the clock went back since: a fresh chain, said once
            logging.get("fleetd").error("demo_chain_not_resumed", error=str(exc), height=tip.height)
        else:
            logging.get("fleetd").info("demo_chain_resumed", height=tip.height)
            return resumed
    return chain()


def _journaled_demo_tip(config: Config):
    """The demo chain's tip as the journal last kept it; None without one (or a journal)."""
    if not config.journal.enabled:
        return None
    from fleetd.journal.store import default_path, read_value
    from fleetd.journal.writer import TIP_KEY
    from fleetd.sources.demo import DemoTip

    path = default_path(config.journal.path)
    saved = read_value(path, TIP_KEY)
    if saved is None:
        return None
    try:
        return DemoTip.from_dict(json.loads(saved))
    except (ValueError, TypeError) as exc:  # a damaged row: start afresh, and say which file
        logging.get("fleetd").error("demo_tip_unreadable", journal=str(path), error=str(exc))
        return None


def build_app(config: Config, source: JobSource | None = None, *, clock: Clock = SYSTEM_CLOCK) -> web.Application:
    """The daemon's app; ``clock`` is the one every part that reads time is given."""
    app = web.Application()
    app[CONFIG_KEY] = config
    app[SOURCE_KEY] = source or build_source(config, clock)
    app[STARTED_KEY] = clock.wall()
    rigs_config = config.rigs
    rigs = RigRegistry(
        poll_interval=rigs_config.poll_interval_seconds if rigs_config.poll else None,
        retention=rigs_config.retention_seconds,
    )
    site_economics = SiteEconomicsView(config.economics, rigs, app[SOURCE_KEY])
    history_api.setup(app, default_path(config.journal.path) if config.journal.enabled else None)  # before api's routes
    collector = api.setup(app, rigs, site_economics, clock=clock)
    # TLS and basic auth ([http] web_config_file); read again here, so a certificate renewed
    # since the config was checked is the one served
    http = config.http
    app[WEB_CONFIG_KEY] = web_config.load(http.web_config_file) if http.web_config_file else web_config.WebConfig()
    listener.protect(app, app[WEB_CONFIG_KEY].basic_auth())
    collector.source = app[SOURCE_KEY]
    if config.journal.enabled:  # before the Stratum server: restored rigs exist before miners connect
        from fleetd.journal.metrics import JournalCollector
        from fleetd.journal.writer import Journal

        app[JOURNAL_KEY] = Journal(config.journal, rigs, clock=clock, economics=site_economics)
        app[api.METRICS_REGISTRY_KEY].register(JournalCollector(app[JOURNAL_KEY]))
        app.cleanup_ctx.append(_journal)
    app[CURTAILMENT_KEY] = CurtailmentService(
        config.curtailment, rigs, site_economics, _no_rig_control, journal=app.get(JOURNAL_KEY), clock=clock
    )
    site_economics.switched_off = app[CURTAILMENT_KEY].controller.switched_off
    app[api.METRICS_REGISTRY_KEY].register(CurtailmentCollector(app[CURTAILMENT_KEY]))
    curtailment_api.setup(app, app[CURTAILMENT_KEY], controls_allowed=app[WEB_CONFIG_KEY].basic_auth() is not None)
    site_page.setup(app)  # the page at / and /api/v1/site, behind the same basic auth
    app.cleanup_ctx.append(_stratum_and_source)
    app.cleanup_ctx.append(_rig_upkeep)
    app.cleanup_ctx.append(_price_feed)
    app.cleanup_ctx.append(_curtailment)
    app.router.add_get("/healthz", healthz)
    return app


async def _no_rig_control(ip: str, call: str, *args) -> tuple[bool, str]:
    return False, "[rigs] poll = false: fleetd does not reach the rigs' management API"


async def _curtailment(app: web.Application):
    """Judge the rigs every cycle; what was held off before a restart is known again first."""
    service = app[CURTAILMENT_KEY]
    service.restore()
    task = asyncio.create_task(service.run(), name="curtailment") if service.config.mode != "off" else None
    try:
        yield
    finally:
        if task is not None:
            await _cancel(task)


async def _stratum_and_source(app: web.Application):
    log = logging.get("fleetd")
    source: JobSource = app[SOURCE_KEY]
    curtailment = app[CURTAILMENT_KEY]
    server = StratumServer(
        server_settings(app[CONFIG_KEY]), source, rigs=app[api.RIGS_KEY], clock=app[CLOCK_KEY],
        held_off=lambda: curtailment.controller.held_off(),  # asleep on fleetd's word: not idle
    )  # fmt: skip
    if JOURNAL_KEY in app:
        app[JOURNAL_KEY].attach(server, source)
    await server.start()
    app[STRATUM_KEY] = server
    app[api.COLLECTOR_KEY].server = server
    source_task = asyncio.create_task(_run_source(source, server.publish, app[CLOCK_KEY], log), name="job-source")
    try:
        yield
    finally:
        await server.stop()
        await _cancel(source_task)


async def _journal(app: web.Application):
    """Open the journal and restore the rigs before the Stratum server starts; the final
    flush runs after it has stopped (cleanup runs in reverse order)."""
    journal = app[JOURNAL_KEY]
    await journal.open()
    task = asyncio.create_task(journal.run(), name="journal")
    try:
        yield
    finally:
        await _cancel(task)
        await journal.close()


RIG_UPKEEP_SECONDS = 5.0  # how often new rig IPs reach the poller and gone rigs are retired


async def _rig_upkeep(app: web.Application):
    """Inventory at start; then keep the poller's rig list in step with the registry."""
    config, rigs, clock = app[CONFIG_KEY].rigs, app[api.RIGS_KEY], app[CLOCK_KEY]
    log = logging.get("fleetd.rigs")
    if config.inventory:
        from fleetd.rigs.inventory import load as load_inventory

        now = clock.wall()
        for entry in load_inventory(config.inventory):
            rigs.add_inventory(entry.name, entry.ip, entry.model, entry.nominal_hashrate, entry.nominal_watts, now)
        log.info("inventory_loaded", path=config.inventory, rigs=len(rigs))
    poller = None
    if config.poll:
        from fleetd.rigs.poller import PollerConfig, RigPoller

        poller = RigPoller(
            PollerConfig(
                interval=config.poll_interval_seconds,
                timeout=config.poll_timeout_seconds,
                concurrency=config.poll_concurrency,
            ),
            on_reading=rigs.reading,
            on_failure=lambda ip, error: rigs.poll_failed(ip, clock.wall()),
            clock=clock,
        )
        await poller.start()
        service = app[CURTAILMENT_KEY]  # stop, resume and power limits through the polls' miner objects
        service.control, service.tunable, service.power_limit = poller.control, poller.tunable, poller.power_limit
    task = asyncio.create_task(_upkeep_loop(rigs, poller, clock, log), name="rig-upkeep")
    try:
        yield
    finally:
        await _cancel(task)
        if poller is not None:
            await poller.stop()


async def _price_feed(app: web.Application):
    """Fetch the BTC price in the background when [economics.price_feed] is set."""
    view, clock = app[api.ECONOMICS_KEY], app[CLOCK_KEY]
    economics = view.config
    if economics is not None:  # what every margin will rest on, once, at start
        logging.get("fleetd.economics").info(
            "economics_configured",
            btc_price="feed" if economics.price_feed else economics.btc_price_usd,
            power_usd_per_kwh_now=PowerPrices(economics).site(clock.wall()),
            time_of_use=len(economics.power_schedule.entries) > 1,
            overrides=len(economics.overrides),
            timezone=economics.timezone,
            curtail_target_kw=economics.curtail_target_kw,
        )
    feed_config = economics.price_feed if economics is not None else None
    if feed_config is None:
        yield
        return
    from fleetd.economics.price_feed import PriceFeed

    view.feed = PriceFeed(
        feed_config.url,
        feed_config.json_path,
        interval_seconds=feed_config.interval_seconds,
        timeout_seconds=feed_config.timeout_seconds,
        clock=clock,
    )
    task = asyncio.create_task(view.feed.run(), name="price-feed")
    try:
        yield
    finally:
        await _cancel(task)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _upkeep_loop(rigs: RigRegistry, poller, clock: Clock, log) -> None:
    while True:
        gone = rigs.retire(clock.wall())
        if gone:
            log.info("rigs_retired", rigs=gone)
        if poller is not None:
            poller.update(rig.ip for rig in rigs if rig.ip)
        await clock.sleep(RIG_UPKEEP_SECONDS)


async def _run_source(source: JobSource, publish, clock: Clock, log) -> None:
    """Keep the source running: a crash is logged and retried, never the end of the daemon."""
    backoff = 1.0
    while True:
        try:
            await source.run(publish)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job_source_crashed", retry_in=backoff)
            await clock.sleep(backoff)
            backoff = min(backoff * 2, 60.0)


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    server: StratumServer = app[STRATUM_KEY]
    health = app[SOURCE_KEY].health()
    job = server.current_job
    body = {
        "status": "ok" if health.up and job is not None else "degraded",
        "uptime_seconds": round(app[CLOCK_KEY].wall() - app[STARTED_KEY], 1),
        "source": {
            "kind": health.kind,
            "up": health.up,
            "detail": redact.url(health.detail) if health.detail else health.detail,  # a pool URL's password never
            "last_job_time": health.last_job_time,
        },
        "stratum": {
            "address": "%s:%d" % server.address,
            "connections": len(server.connections),
            "current_job": job.job_id if job else None,
            "height": job.height if job else None,
            "blocks_submitted": server.blocks_submitted,
        },
    }
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


async def start_http(app: web.Application) -> web.AppRunner:
    """Serve the app on ``[http] listen`` as configured: TLS and basic auth, timeouts, JSON
    errors. Cleaning the runner up stops the app (Stratum listener, then the source)."""
    return await listener.start(app, app[CONFIG_KEY].http, app[WEB_CONFIG_KEY])


async def _serve(app: web.Application) -> None:
    """Until SIGINT or SIGTERM, then a graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = await start_http(app)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(config: Config) -> None:
    """``fleetd serve``: run until SIGINT/SIGTERM, then shut down gracefully."""
    logging.configure(config.log.level, config.log.format)
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    http = config.http.listen
    logging.get("fleetd").info("starting", http=str(http), stratum=str(config.stratum.listen), source=config.source.kind)
    try:
        application = build_app(config)
        server_settings(config)  # settings the config loader cannot see are refused before binding
    except ValueError as exc:
        logging.get("fleetd").error("bad_configuration", error=str(exc))
        raise SystemExit(2) from None
    try:
        loop.run_until_complete(_serve(application))
    except JournalLocked as exc:  # a second fleetd on one journal: refused, naming the file and the holder
        logging.get("fleetd").error("journal_in_use", error=str(exc))
        raise SystemExit(2) from None
    except OSError as exc:  # a port in use or not ours to bind: say which, without a traceback
        logging.get("fleetd").error("cannot_listen", error=str(exc), http=str(http), stratum=str(config.stratum.listen))
        raise SystemExit(1) from None
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
