"""The two listeners rig firmware exposes: the cgminer-style TCP API and an HTTP server.

Both stop answering while their rig is offline: a connection is accepted and then held
without a reply until the rig comes back or the listener stops, which is what a poller
sees from a hung or unplugged rig (timeouts, not instant refusals). Stopping a listener
closes its socket and every connection it holds, so nothing outlives ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

IsOffline = Callable[[], bool]
Reply = dict[str, Any]
# (command, parameter) -> reply body with its STATUS section, or None for an unknown command
CommandHandler = Callable[[str, Any], Reply | None]
# (whole request, client address) -> reply, for requests that are not a plain command or
# depend on who asks (the Whatsminer's tokens and encrypted commands); None: not one of those
RequestHandler = Callable[[Any, str], Reply | None]

OFFLINE_POLL_S = 0.05
REQUEST_TIMEOUT_S = 5.0  # cgminer drops a client that sends no complete request in time
MAX_REQUEST = 64 * 1024
HTTP_SHUTDOWN_S = 0.5


class CgminerApiServer:
    """TCP port 4028: one JSON request per connection, a JSON reply ending in NUL, then close.

    ``"summary+devs"`` asks for several commands at once and is answered as cgminer does:
    ``{"summary": [reply], "devs": [reply], "id": 1}``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: CommandHandler,
        *,
        is_offline: IsOffline,
        invalid: Callable[[str], Reply],
        request_handler: RequestHandler | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._handler, self._is_offline, self._invalid = handler, is_offline, invalid
        self._request_handler = request_handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            # hold the connection and say nothing; a connection that raced stop() just ends
            while self._is_offline() and self._server is not None:
                await asyncio.sleep(OFFLINE_POLL_S)
            if self._server is None:
                return
            request = await self._read_request(reader)
            client = (writer.get_extra_info("peername") or ("",))[0]
            writer.write(json.dumps(self.reply(request, client), separators=(",", ":")).encode() + b"\x00")
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # stop() cancels the connections it holds; end as if done, since on Python 3.11
            # start_server calls exception() on the handler's task, which a cancelled one
            # raises from, logged as "Exception in callback"
            if self._server is not None:
                raise
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Any:
        # clients send the request and wait without closing their side: parse as it arrives
        data = b""
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            while len(data) < MAX_REQUEST:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
                try:
                    return json.loads(data)
                except ValueError:
                    continue
        return None

    def reply(self, request: Any, client: str = "") -> Reply:
        if self._request_handler is not None and (answer := self._request_handler(request, client)) is not None:
            return {**answer, "id": 1}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {**self._invalid("Invalid JSON"), "id": 1}
        command, parameter = request["command"], request.get("parameter")
        if "+" not in command:
            return {**self._answer(command, parameter), "id": 1}
        reply: Reply = {name: [self._answer(name, parameter)] for name in command.split("+")}
        reply["id"] = 1
        return reply

    def _answer(self, command: str, parameter: Any) -> Reply:
        body = self._handler(command, parameter)
        return body if body is not None else self._invalid("Invalid command")


class HttpServer:
    """An aiohttp application on one address and port, silent while its rig is offline.

    ``make_app`` builds a fresh application for every start, so a stopped server (a rig
    whose web daemon died) can be started again.
    """

    def __init__(self, host: str, port: int, make_app: Callable[[], web.Application], *, is_offline: IsOffline) -> None:
        self.host, self.port = host, port
        self._make_app, self._is_offline = make_app, is_offline
        self._runner: web.AppRunner | None = None
        self._stopping = False

    async def start(self) -> None:
        app = self._make_app()
        app.middlewares.insert(0, self._offline_middleware)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._stopping = runner, False

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping = True  # releases requests held by an offline rig
        await runner.cleanup()

    @web.middleware
    async def _offline_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        while self._is_offline() and not self._stopping:
            await asyncio.sleep(OFFLINE_POLL_S)
        if self._stopping:
            raise web.HTTPServiceUnavailable()
        return await handler(request)
