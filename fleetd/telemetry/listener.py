"""The HTTP listener as a hostile network meets it: TLS and basic auth from the web config,
timeouts for slow clients, and aiohttp's own errors answered and logged in JSON.

What the app cannot answer, aiohttp's request parser does (a NUL byte or a bad character in a
header, a header or request line over ``max_header_bytes``, more than ``max_headers`` headers,
a method that is not a token): a 400 with a JSON body ``{"error", "status"}`` and the
connection closed. That happens before routing, so it is the same on every path, ``/healthz``
included, and before basic auth is asked for.

One client cannot flood the log or guess passwords at bcrypt's pace: an ``HttpGuard`` per app
counts failed logins per client address and, after a few in a window, answers 429 without
running bcrypt, for a time that doubles with each ban; its log lines (failed logins, bad
requests) go through a ``LogLimiter``, a few per address per window and then a count of what
was held back. ``HttpCollector`` shows its counts in /metrics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleetd import log as logging
from fleetd.clock import SYSTEM_CLOCK, Clock
from fleetd.config import HttpConfig
from fleetd.server.admission import LogLimiter
from fleetd.telemetry import api
from fleetd.telemetry.collector import _by_reason
from fleetd.telemetry.web_config import BasicAuth, WebConfig

OPEN_PATHS = frozenset({"/healthz"})  # a load balancer's or systemd's probe needs no password
LINGER_SECONDS = 2.0  # an unread request body is drained this long after the answer, then closed
MAX_LOGGED_ERROR = 200  # characters of a parser's message in the log: it may quote the request
AUTH_KEY = web.AppKey("basic_auth", BasicAuth)

# Why a request was refused at the login, as fleetd_http_auth_failures_total counts it (with
# web_config.UNKNOWN_USER and WRONG_PASSWORD, the two that ran bcrypt and count towards a ban).
MISSING = "missing"  # no Authorization header, or not Basic: a browser's first request
MALFORMED = "malformed"  # Basic, but not base64 of UTF-8 "user:password"
THROTTLED = "throttled"  # answered 429 without checking: the address is banned or at its limit


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How much one client address may fail and log before it is throttled and summarised."""

    max_auth_failures: int = 5  # failed logins (bcrypt ran and said no) in failure_window: then a ban
    failure_window: float = 60.0
    ban_seconds: float = 60.0  # the first ban; each next one doubles
    max_ban_seconds: float = 3600.0
    ban_forget_seconds: float = 3600.0  # quiet this long after its last failure or ban: starts afresh
    log_window: float = 60.0  # failed logins logged once per address per window, bad requests ...
    bad_request_lines: int = 5  # ... this many times; then one summary of what was held back
    max_addresses: int = 65_536  # addresses remembered; the quiet ones are forgotten first


class _Logins:
    """One client address's failed logins and bans."""

    __slots__ = ("failures", "first_failure", "last_failure", "checking", "bans", "banned_until")

    def __init__(self) -> None:
        self.failures = 0  # in the window that began at first_failure
        self.first_failure = self.last_failure = 0.0
        self.checking = 0  # bcrypt checks running now: they count against the limit before they end
        self.bans = 0  # the next ban lasts ban_seconds * 2**bans
        self.banned_until = 0.0

    def quiet(self, now: float, limits: HttpLimits) -> bool:
        """Nothing about this address matters any more."""
        return (
            not self.checking
            and now >= self.banned_until
            and now - max(self.last_failure, self.banned_until) >= max(limits.ban_forget_seconds, limits.failure_window)
        )


class HttpGuard:
    """Failed logins and bad requests per client address: the ban decisions, their counts for
    /metrics, and the limited log lines. Times are the clock's monotonic seconds."""

    def __init__(self, limits: HttpLimits = HttpLimits(), clock: Clock = SYSTEM_CLOCK) -> None:
        self.limits = limits
        self.clock = clock
        self.auth_failures: Counter[str] = Counter()  # by reason
        self.bad_requests: Counter[str] = Counter()  # by reason
        self.bans = 0
        self._addresses: dict[str, _Logins] = {}
        self._auth_log = LogLimiter(limits.log_window, 1)
        self._bad_log = LogLimiter(limits.log_window, limits.bad_request_lines)
        self._log = logging.get("fleetd.http")

    # -- logins --------------------------------------------------------------------------

    def wait(self, peer: str, now: float) -> float | None:
        """Seconds before ``peer``'s credentials are checked again (answer 429), or None: check
        them, between ``begin`` and ``end``."""
        entry = self._addresses.get(peer)
        if entry is None:
            return None
        if now < entry.banned_until:
            return entry.banned_until - now
        self._renew(entry, now)
        if entry.failures + entry.checking >= self.limits.max_auth_failures:
            return 1.0  # checks in flight would reach the limit: wait for them
        return None

    def begin(self, peer: str, now: float) -> None:
        self._entry(peer, now).checking += 1

    def end(self, peer: str, reason: str | None, now: float) -> None:
        """A check ``begin`` started is over: None when it let the client in, else why not."""
        entry = self._entry(peer, now)
        entry.checking = max(0, entry.checking - 1)
        if reason is None:
            entry.failures = 0  # the streak ends (a ban in force stays)
            return
        self._renew(entry, now)
        if not entry.failures:
            entry.first_failure = now
        entry.failures += 1
        entry.last_failure = now
        self.refused(peer, reason, now)
        limits = self.limits
        if entry.failures >= limits.max_auth_failures:
            duration = min(limits.ban_seconds * 2**entry.bans, limits.max_ban_seconds)
            entry.bans += 1
            entry.failures = 0
            entry.banned_until = now + duration
            self.bans += 1
            self._log.warning("http_auth_banned", peer=peer, seconds=duration, bans=entry.bans)

    def abandon(self, peer: str) -> None:
        """A check ``begin`` started ended without an answer (the client or the server went)."""
        entry = self._addresses.get(peer)
        if entry is not None:
            entry.checking = max(0, entry.checking - 1)

    def refused(self, peer: str, reason: str, now: float) -> None:
        """Count a refused login, and log it once per window per address (not a missing password:
        every browser's first request has none)."""
        self.auth_failures[reason] += 1
        if reason != MISSING:
            suppressed = self._auth_log.allow(peer, now)
            if suppressed is not None:
                self._log.warning("http_auth_failed", peer=peer, reason=reason, suppressed=suppressed)

    def banned(self, now: float) -> int:
        """Addresses answered 429 at ``now``."""
        return sum(1 for entry in self._addresses.values() if now < entry.banned_until)

    def _renew(self, entry: _Logins, now: float) -> None:
        limits = self.limits
        if entry.failures and now - entry.first_failure >= limits.failure_window:
            entry.failures = 0
        quiet = now - max(entry.last_failure, entry.banned_until)
        if entry.bans and now >= entry.banned_until and quiet >= limits.ban_forget_seconds:
            entry.bans = 0

    def _entry(self, peer: str, now: float) -> _Logins:
        entry = self._addresses.get(peer)
        if entry is None:
            if len(self._addresses) >= self.limits.max_addresses:
                self.prune(now)
                idle = [key for key, e in self._addresses.items() if not e.checking]
                for old in idle[: len(self._addresses) - self.limits.max_addresses * 7 // 8]:  # room for a while
                    del self._addresses[old]  # the oldest first: a flood of addresses cannot grow this
            entry = self._addresses[peer] = _Logins()
        return entry

    def prune(self, now: float) -> None:
        """Forget addresses whose failures and bans no longer matter."""
        for peer in [peer for peer, entry in self._addresses.items() if entry.quiet(now, self.limits)]:
            del self._addresses[peer]

    def addresses(self) -> int:
        """Client addresses remembered."""
        return len(self._addresses)

    # -- bad requests ----------------------------------------------------------------------

    def bad_request(self, peer: str | None, status: int, reason: str, error: str) -> None:
        """A request aiohttp's parser refused: counted by reason; logged a few times per window per address."""
        self.bad_requests[reason] += 1
        suppressed = self._bad_log.allow(peer, self.clock.monotonic())
        if suppressed is not None:
            self._log.warning("http_bad_request", peer=peer, status=status, reason=reason, error=error,
                              suppressed=suppressed)  # fmt: skip

    # -- upkeep ------------------------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Summarise the log windows that are over, and forget the quiet addresses."""
        for peer, suppressed in self._auth_log.expire(now):
            self._log.info("log_suppressed", suppressed_event="http_auth_failed", peer=peer, suppressed=suppressed)
        for peer, suppressed in self._bad_log.expire(now):
            self._log.info("log_suppressed", suppressed_event="http_bad_request", peer=peer, suppressed=suppressed)
        self.prune(now)

    async def run(self) -> None:
        """Flush every log window until cancelled; then summarise whatever is still held back."""
        try:
            while True:
                await self.clock.sleep(self.limits.log_window)
                self.flush(self.clock.monotonic())
        finally:
            self.flush(math.inf)


GUARD_KEY = web.AppKey("http_guard", HttpGuard)


def guard(app: web.Application) -> HttpGuard:
    """The app's ``HttpGuard``, installed on first use (before the app starts): on the app's
    clock, its upkeep in the app's cleanup context, its counts in the app's /metrics."""
    existing = app.get(GUARD_KEY)
    if existing is not None:
        return existing
    app[GUARD_KEY] = installed = HttpGuard(clock=app.get(api.CLOCK_KEY, SYSTEM_CLOCK))
    app.cleanup_ctx.append(_guard_upkeep)
    registry = app.get(api.METRICS_REGISTRY_KEY)
    if registry is not None:
        registry.register(HttpCollector(app))
    return installed


async def _guard_upkeep(app: web.Application):
    task = asyncio.create_task(app[GUARD_KEY].run(), name="http-guard")  # the guard in place at start
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class HttpCollector(Collector):
    """The HTTP listener's refusals, read from the app's guard at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        http = self._app.get(GUARD_KEY)
        if http is None:
            return
        yield from _by_reason("fleetd_http_auth_failures", "HTTP requests refused at the login, by reason.",
                              http.auth_failures)  # fmt: skip
        yield from _by_reason("fleetd_http_bad_requests", "HTTP requests the parser refused (400), by reason.",
                              http.bad_requests)  # fmt: skip
        yield CounterMetricFamily("fleetd_http_auth_bans", "Client addresses banned for failed logins.",
                                  value=http.bans)  # fmt: skip
        yield GaugeMetricFamily("fleetd_http_banned_addresses", "Client addresses answered 429 now for failed logins.",
                                value=http.banned(http.clock.monotonic()))  # fmt: skip


def protect(app: web.Application, auth: BasicAuth | None) -> None:
    """Require basic auth on every path but ``OPEN_PATHS`` (unknown paths too: nothing about
    the API is told before the password). The app's ``HttpGuard`` is installed either way."""
    guard(app)
    if auth is None:
        return
    app[AUTH_KEY] = auth
    app.middlewares.insert(0, _basic_auth)


@web.middleware
async def _basic_auth(request: web.Request, handler):
    if request.path in OPEN_PATHS:
        return await handler(request)
    http, peer = request.app[GUARD_KEY], request.remote or "unknown"
    clock = http.clock
    now = clock.monotonic()
    wait = http.wait(peer, now)
    if wait is not None:  # banned: answered without bcrypt, and without a password oracle
        http.refused(peer, THROTTLED, now)
        retry_after = max(1, math.ceil(wait))
        return web.json_response(
            {"error": "Too Many Requests", "status": 429, "path": request.path, "retry_after": retry_after},
            status=429,
            headers={"Retry-After": str(retry_after)},
        )
    header = request.headers.get("Authorization")
    credentials = _credentials(header or "")
    if credentials is None:
        http.refused(peer, MISSING if header is None or not header.lower().startswith("basic ") else MALFORMED, now)
        return _unauthorized(request)
    http.begin(peer, now)
    try:
        reason = await request.app[AUTH_KEY].verify(*credentials)
    except BaseException:
        http.abandon(peer)
        raise
    http.end(peer, reason, clock.monotonic())
    if reason is None:
        return await handler(request)
    return _unauthorized(request)


def _unauthorized(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": "Unauthorized", "status": 401, "path": request.path},
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="fleetd", charset="UTF-8"'},
    )


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def server_options(http: HttpConfig, guard: HttpGuard | None = None) -> dict[str, Any]:
    """aiohttp's per-connection options (``web.AppRunner`` passes them to each ``RequestHandler``);
    ``guard`` counts and limits the bad-request lines."""
    return {
        "keepalive_timeout": http.request_timeout_seconds,  # from connect and after each answer
        "max_line_size": http.max_header_bytes,
        "max_field_size": http.max_header_bytes,
        "max_headers": http.max_headers,
        "lingering_time": LINGER_SECONDS,
        "logger": ServerLog(guard if guard is not None else HttpGuard()),
        "access_log": None,
    }


class JsonErrorsHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors (a request its parser refused,
    a handler timeout) in JSON rather than text."""

    __slots__ = ()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        plain = super().handle_error(request, status, exc, message)  # logs, and refuses a half-sent answer
        reason = _first_line(exc.message) if isinstance(exc, HttpProcessingError) and exc.message else plain.reason
        body = {"error": reason, "status": status}
        answer = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
        answer.force_close()
        return answer


class Site(web.BaseSite):
    """A TCP site whose connections are ``JsonErrorsHandler``s, with a TLS handshake timeout
    (asyncio's own default is a minute)."""

    __slots__ = ("_host", "_port", "_handshake_timeout", "_server")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, ssl_context=None, handshake_timeout: float = 10.0
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port, self._handshake_timeout = host, port, handshake_timeout

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def connection() -> RequestHandler:
            handler = server()
            handler.__class__ = JsonErrorsHandler  # same slots: only handle_error differs
            return handler

        self._server = await asyncio.get_running_loop().create_server(
            connection,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )


async def start(app: web.Application, http: HttpConfig, web_config: WebConfig | None = None) -> web.AppRunner:
    """Serve ``app`` on ``[http] listen`` with the config's timeouts and the web config's TLS,
    its failed logins and bad requests limited by the app's ``HttpGuard``."""
    runner = web.AppRunner(app, handle_signals=False, **server_options(http, guard(app)))
    await runner.setup()
    ssl_context = web_config.ssl_context() if web_config else None
    site = Site(
        runner,
        http.listen.host,
        http.listen.port,
        ssl_context=ssl_context,
        handshake_timeout=http.tls_handshake_timeout_seconds,
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


class ServerLog:
    """aiohttp's server logger (``aiohttp.server``) as structlog lines: a request the parser
    refused is one line without a traceback; anything else is logged with its traceback."""

    def __init__(self, guard: HttpGuard) -> None:
        self._log = logging.get("fleetd.http")
        self._guard = guard

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # aiohttp's quiet case: not HTTP at all (a bad method)
            self.exception(msg, *args, exc_info=exc_info)
        else:
            self._log.debug(_text(msg, args))

    def info(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.info(_text(msg, args))

    def warning(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.warning(_text(msg, args))

    def error(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        self.exception(msg, *args, exc_info=exc_info)

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        peer = args[0] if msg.startswith("Error handling request from") and args else None
        if isinstance(exc, HttpProcessingError):  # the client's fault: what and from where is enough
            self._guard.bad_request(peer, exc.code, _reason(exc), _first_line(exc.message or type(exc).__name__))
            return
        self._log.error("http_server_error", peer=peer, message=_text(msg, args), exc_info=exc or True)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return True


def _text(msg: Any, args: tuple) -> str:
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = f"{msg} {args}"
    return text[:MAX_LOGGED_ERROR]


def _first_line(message: Any) -> str:
    """What was wrong, without the lines after it that quote the request (its headers may hold a password)."""
    return str(message).strip().split("\n", 1)[0][:MAX_LOGGED_ERROR]


def _reason(exc: HttpProcessingError) -> str:
    """A bad request's reason label: aiohttp's exception class in snake case (``LineTooLong``:
    ``line_too_long``), a small fixed set."""
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    return name.removesuffix("_error") or "bad_request"
