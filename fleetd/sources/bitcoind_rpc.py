"""JSON-RPC to Bitcoin Core over aiohttp: the reply shapes it really sends, password or cookie auth.

Every failure is one of two exceptions: ``RpcError`` when the node answered with a JSON-RPC
error object (it is up, and refused), ``RpcUnavailable`` when there is no usable answer at
all (down, slow, busy, refusing our credentials, or sending garbage).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from pathlib import Path

import aiohttp
import orjson

_ERROR_TEXT_LIMIT = 200  # characters of a garbage reply quoted in logs and health


class RpcFailure(Exception):
    """A call that produced no usable result."""


class RpcUnavailable(RpcFailure):
    """No JSON-RPC answer: the node is down, slow, refused our credentials or sent garbage."""


class RpcTimeout(RpcUnavailable):
    """No answer within the time allowed."""


class RpcError(RpcFailure):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message


def snippet(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"


def parse_reply(status: int, body: bytes, request_id: object) -> object:
    """The ``result`` of a Bitcoin Core JSON-RPC reply, or the matching exception.

    Core answers JSON-RPC 1.x requests with ``{"result", "error", "id"}`` and an HTTP error
    status (500, 404, ...) carrying the error object; 2.0 requests get HTTP 200 and either
    ``result`` or ``error``. Both shapes are accepted.
    """
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        if status != 200:
            raise RpcUnavailable(f"HTTP {status}: {snippet(body) or '(empty body)'}") from None
        raise RpcUnavailable(f"reply is not JSON: {snippet(body) or '(empty body)'}") from None
    if not isinstance(reply, dict):
        raise RpcUnavailable(f"reply is not a JSON-RPC object: {snippet(body)}")
    error = reply.get("error")
    if error is not None:
        if isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
            raise RpcError(error["code"], error["message"])
        raise RpcUnavailable(f"malformed JSON-RPC error (HTTP {status}): {snippet(body)}")
    if status != 200:
        raise RpcUnavailable(f"HTTP {status} without a JSON-RPC error: {snippet(body)}")
    if "result" not in reply:
        raise RpcUnavailable(f"reply has neither result nor error: {snippet(body)}")
    if reply.get("id") != request_id:
        raise RpcUnavailable(f"reply id {reply.get('id')!r} does not match request id {request_id!r}")
    return reply["result"]


def read_cookie(path: str) -> tuple[str, str]:
    """(user, password) from Core's cookie file ("__cookie__:<hex>")."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RpcUnavailable(
            f"cannot read cookie_file {path!r}: {exc.strerror or exc}; is bitcoind running with that datadir?"
        ) from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise RpcUnavailable(f"cookie_file {path!r} is not a bitcoind cookie (expected user:password)")
    return user, password


class RpcClient:
    """JSON-RPC over one aiohttp session, with user/password or Core's cookie file."""

    def __init__(
        self, url: str, *, user: str = "", password: str = "", cookie_file: str = "", timeout: float = 10.0
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._cookie_file = cookie_file
        self._credentials: tuple[str, str] | None = None if cookie_file else (user, password)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list | dict | tuple = (), *, timeout: float | None = None) -> object:
        """The method's result; RpcError for a JSON-RPC error, RpcUnavailable for anything else."""
        request_id = next(self._ids)
        params = params if isinstance(params, dict) else list(params)  # named or positional, as Core takes both
        payload = orjson.dumps({"jsonrpc": "1.0", "id": request_id, "method": method, "params": params})
        timeout = self.timeout if timeout is None else timeout
        status, body = await self._post(method, payload, timeout)
        if status == 401 and self._cookie_file and self._reload_cookie():
            # bitcoind writes a new cookie each time it starts: retry once with it.
            status, body = await self._post(method, payload, timeout)
        if status == 401:
            how = f"the cookie in {self._cookie_file!r}" if self._cookie_file else "user/password"
            raise RpcUnavailable(f"HTTP 401: the node refused {how}; check the source's credentials")
        if status == 403:
            raise RpcUnavailable("HTTP 403: the node refused this host; check its rpcallowip")
        return parse_reply(status, body, request_id)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _authorization(self) -> str:
        """The HTTP basic Authorization header value (built by hand: aiohttp's helpers vary by version)."""
        if self._credentials is None:
            self._credentials = read_cookie(self._cookie_file)
        user, password = self._credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def _reload_cookie(self) -> bool:
        """Re-read the cookie; True when it changed (so a retry can succeed)."""
        old = self._credentials
        try:
            self._credentials = read_cookie(self._cookie_file)
        except RpcUnavailable:
            return False
        return self._credentials != old

    async def _post(self, method: str, payload: bytes, timeout: float) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Authorization": self._authorization()}
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            async with asyncio.timeout(timeout):
                async with self._session.post(self.url, data=payload, headers=headers) as response:
                    return response.status, await response.read()
        except TimeoutError:
            raise RpcTimeout(f"{method}: no answer within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise RpcUnavailable(f"{method}: {exc}") from None
