"""The HTTP listener as a hostile network meets it: TLS and basic auth from the web config,
timeouts for slow clients, and aiohttp's own errors answered and logged in JSON.

What the app cannot answer, aiohttp's request parser does (a NUL byte or a bad character in a
header, a header or request line over ``max_header_bytes``, more than ``max_headers`` headers,
a method that is not a token): a 400 with a JSON body ``{"error", "status"}`` and the
connection closed. That happens before routing, so it is the same on every path, ``/healthz``
included, and before basic auth is asked for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sys
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from fleetd import log as logging
from fleetd.config import HttpConfig
from fleetd.telemetry.web_config import BasicAuth, WebConfig

OPEN_PATHS = frozenset({"/healthz"})  # a load balancer's or systemd's probe needs no password
LINGER_SECONDS = 2.0  # an unread request body is drained this long after the answer, then closed
MAX_LOGGED_ERROR = 200  # characters of a parser's message in the log: it may quote the request
AUTH_KEY = web.AppKey("basic_auth", BasicAuth)


def protect(app: web.Application, auth: BasicAuth | None) -> None:
    """Require basic auth on every path but ``OPEN_PATHS`` (unknown paths too: nothing about
    the API is told before the password)."""
    if auth is None:
        return
    app[AUTH_KEY] = auth
    app.middlewares.insert(0, _basic_auth)


@web.middleware
async def _basic_auth(request: web.Request, handler):
    if request.path in OPEN_PATHS:
        return await handler(request)
    credentials = _credentials(request.headers.get("Authorization", ""))
    if credentials is not None and await request.app[AUTH_KEY].check(*credentials):
        return await handler(request)
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


def server_options(http: HttpConfig) -> dict[str, Any]:
    """aiohttp's per-connection options (``web.AppRunner`` passes them to each ``RequestHandler``)."""
    return {
        "keepalive_timeout": http.request_timeout_seconds,  # from connect and after each answer
        "max_line_size": http.max_header_bytes,
        "max_field_size": http.max_header_bytes,
        "max_headers": http.max_headers,
        "lingering_time": LINGER_SECONDS,
        "logger": ServerLog(),
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
    """Serve ``app`` on ``[http] listen`` with the config's timeouts and the web config's TLS."""
    runner = web.AppRunner(app, handle_signals=False, **server_options(http))
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

    def __init__(self) -> None:
        self._log = logging.get("fleetd.http")

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
            self._log.warning(
                "http_bad_request", peer=peer, status=exc.code, error=_first_line(exc.message or type(exc).__name__)
            )
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
