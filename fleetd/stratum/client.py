"""The client side of one Stratum v1 connection, without I/O: how fleetd speaks to a pool.

The mirror of ``session.Session``: the driver queues requests (``login``, ``submit``,
``authorize``), writes out ``data_to_send()``, feeds received bytes to ``receive_data``
and gets events back. It shares the framing and the byte-order helpers with the server
role. It reads no clock; a pool that speaks something other than Stratum ends the
session (``closed``, a ``PoolClosed`` event), which is the driver's cue to fail over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from fleetd.chain.byteorder import U32_MAX, prevhash_from_stratum, u32_from_hex, u32_to_hex
from fleetd.stratum.job import Job
from fleetd.stratum.configure import VERSION_ROLLING, parse_mask
from fleetd.stratum.framing import CloseReason, LineFramer
from fleetd.stratum.rejects import Reject

DEFAULT_CLIENT_MAX_LINE = 64 * 1024  # a notify with a deep merkle branch is ~2 KiB; leave pools room
MAX_EXTRANONCE1 = 32  # bytes; longer is not a pool we can mine for
MAX_EXTRANONCE2 = 32
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# Stratum error code -> our reason, when the code alone decides it (21 needs the message).
_REASON_BY_CODE = {22: Reject.DUPLICATE.reason, 23: Reject.LOW_DIFFICULTY.reason,
                   24: Reject.UNAUTHORIZED.reason, 25: Reject.NOT_SUBSCRIBED.reason}  # fmt: skip
_REASON_BY_MESSAGE = {r.message.lower(): r.reason for r in Reject}


class ClientCloseReason:
    """Why the client ended a session (framing reasons come from ``CloseReason``)."""

    SUBSCRIBE_REFUSED = "subscribe_refused"
    BAD_MESSAGE = "bad_message"  # well-formed JSON that is not a Stratum message we can use
    CLOSED_BY_CLIENT = CloseReason.CLOSED_BY_SERVER.value  # the driver closed it


@dataclass(frozen=True, slots=True)
class ClientConfig:
    user_agent: str = "fleetd"
    version_mask: int | None = 0x1FFFE000  # ask for version rolling with this mask; None: do not ask
    min_bit_count: int = 2
    extranonce_subscribe: bool = True  # NiceHash-style mining.extranonce.subscribe after subscribe
    max_line_bytes: int = DEFAULT_CLIENT_MAX_LINE

    def __post_init__(self) -> None:
        if self.version_mask is not None and not 0 < self.version_mask <= U32_MAX:
            raise ValueError(f"ClientConfig.version_mask = {self.version_mask!r}: expected a non-zero 32-bit mask")
        if not 0 <= self.min_bit_count <= 32:
            raise ValueError(f"ClientConfig.min_bit_count = {self.min_bit_count!r}: expected 0..32")
        if self.max_line_bytes < 1024:
            raise ValueError(f"ClientConfig.max_line_bytes = {self.max_line_bytes!r}: expected at least 1024")


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionRollingAnswered:
    """The ``mining.configure`` answer: the pool's mask, None when it refused or ignored rolling."""

    mask: int | None


@dataclass(frozen=True, slots=True)
class PoolSubscribed:
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True)
class AuthorizeAnswered:
    worker: str
    accepted: bool
    detail: str  # the pool's error text when refused


@dataclass(frozen=True, slots=True)
class DifficultyChanged:
    difficulty: float


@dataclass(frozen=True, slots=True)
class JobNotified:
    job: Job  # internal byte order; height is None (the pool does not say)


@dataclass(frozen=True, slots=True)
class ExtranonceChanged:
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True)
class VersionMaskChanged:
    mask: int


@dataclass(frozen=True, slots=True)
class ReconnectRequested:
    host: str | None  # None: this pool again
    port: int | None
    wait: float


@dataclass(frozen=True, slots=True)
class MessageShown:
    text: str


@dataclass(frozen=True, slots=True)
class SubmitAnswered:
    request_id: int
    accepted: bool
    reason: str  # "accepted", or a reject reason as fleetd names them (``reject_reason``)
    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class PoolClosed:
    reason: str
    detail: str


ClientEvent = (
    VersionRollingAnswered | PoolSubscribed | AuthorizeAnswered | DifficultyChanged | JobNotified
    | ExtranonceChanged | VersionMaskChanged | ReconnectRequested | MessageShown | SubmitAnswered | PoolClosed
)  # fmt: skip


class _BadMessage(ValueError):
    pass


class ClientSession:
    """One connection to a pool. Not thread-safe; one per connection."""

    __slots__ = ("config", "_framer", "_out", "_next_id", "_pending", "_close", "extranonce1",
                 "extranonce2_size", "version_mask", "difficulty", "subscribed")  # fmt: skip

    def __init__(self, config: ClientConfig = ClientConfig()) -> None:
        self.config = config
        self._framer = LineFramer(config.max_line_bytes)
        self._out: list[bytes] = []
        self._next_id = 1
        self._pending: dict[int, tuple[str, object]] = {}  # request id -> (method, context)
        self._close: tuple[str, str] | None = None
        self.extranonce1: bytes | None = None
        self.extranonce2_size: int | None = None
        self.version_mask: int | None = None
        self.difficulty = 1.0  # Stratum's implied difficulty until the pool sends one
        self.subscribed = False

    # --- requests ----------------------------------------------------------------------------

    def login(self, user: str, password: str) -> None:
        """Pipelined, as firmware does (pools answer in order): configure, subscribe, authorize."""
        config = self.config
        if config.version_mask is not None:
            options = {"version-rolling.mask": u32_to_hex(config.version_mask),
                       "version-rolling.min-bit-count": config.min_bit_count}  # fmt: skip
            self._request("mining.configure", [[VERSION_ROLLING], options])
        self._request("mining.subscribe", [config.user_agent])
        if config.extranonce_subscribe:
            self._request("mining.extranonce.subscribe", [])
        self.authorize(user, password)

    def authorize(self, worker: str, password: str) -> int:
        return self._request("mining.authorize", [worker, password], worker)

    def submit(self, worker: str, job_id: str, extranonce2: bytes, ntime: int, nonce: int,
               version_bits: int | None = None) -> int:  # fmt: skip
        """Queue a ``mining.submit``; its answer comes back as ``SubmitAnswered`` with this id."""
        params = [worker, job_id, extranonce2.hex(), u32_to_hex(ntime), u32_to_hex(nonce)]
        if version_bits is not None:
            params.append(u32_to_hex(version_bits))
        return self._request("mining.submit", params)

    def close(self, reason: str = ClientCloseReason.CLOSED_BY_CLIENT, detail: str = "") -> None:
        if self._close is None:
            self._close = (reason, detail)

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    @property
    def closed(self) -> bool:
        return self._close is not None

    @property
    def close_reason(self) -> tuple[str, str] | None:
        return self._close

    def pending(self, method: str | None = None) -> int:
        """Requests not answered yet (of one method, or all)."""
        return sum(1 for m, _ in self._pending.values() if method is None or m == method)

    # --- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        if self._close is not None:
            return []
        events: list[ClientEvent] = []
        framer = self._framer
        try:
            for message in framer.feed(data):
                self._handle(message, events)
                if self._close is not None:
                    return events
        except _BadMessage as exc:
            self._end(ClientCloseReason.BAD_MESSAGE, str(exc), events)
            return events
        if framer.error is not None:
            self._end(str(framer.error[0]), framer.error[1], events)
        return events

    # --- internals ---------------------------------------------------------------------------

    def _request(self, method: str, params: list, context: object = None) -> int:
        request_id = self._next_id
        self._next_id += 1
        if self._close is None:
            self._pending[request_id] = (method, context)
            self._out.append(orjson.dumps({"id": request_id, "method": method, "params": params}, option=_NEWLINE))
        return request_id

    def _end(self, reason: str, detail: str, events: list) -> None:
        self._close = (reason, detail)
        events.append(PoolClosed(reason, detail))

    def _handle(self, message: object, events: list) -> None:
        if type(message) is not dict:
            raise _BadMessage(f"not a JSON object: {_short(message)}")
        method = message.get("method")
        if method is None:
            self._on_reply(message, events)
            return
        if type(method) is not str:
            raise _BadMessage(f"method is not a string: {_short(method)}")
        params = message.get("params")
        params = [] if params is None else params
        if type(params) is not list:
            raise _BadMessage(f"{method} params are not a list: {_short(params)}")
        request_id = message.get("id")
        handler = _NOTIFICATIONS.get(method)
        try:
            if handler is not None:
                handler(self, params, events)
            elif method == "mining.ping" and request_id is not None:
                self._out.append(orjson.dumps({"id": request_id, "result": "pong", "error": None}, option=_NEWLINE))
            elif request_id is not None:  # a request we do not serve: say so, as a server would
                self._out.append(orjson.dumps(
                    {"id": request_id, "result": None, "error": Reject.UNKNOWN_METHOD.error()}, option=_NEWLINE
                ))  # fmt: skip
        except (IndexError, TypeError, ValueError) as exc:
            raise _BadMessage(f"bad {method} {_short(params)}: {exc}") from None

    def _on_reply(self, message: dict, events: list) -> None:
        request_id = message.get("id")
        pending = self._pending.pop(request_id, None) if type(request_id) is int else None
        if pending is None:
            return  # not ours, or answered twice: nothing waits for it
        method, context = pending
        result, error = message.get("result"), message.get("error")
        if method == "mining.submit":
            accepted = result is True and error is None
            code, text = _error_parts(error)
            reason = "accepted" if accepted else reject_reason(code, text, result)
            events.append(SubmitAnswered(request_id, accepted, reason, code, text))
        elif method == "mining.subscribe":
            self._on_subscribe_reply(result, error, events)
        elif method == "mining.authorize":
            accepted = result is True and error is None
            events.append(AuthorizeAnswered(str(context), accepted, "" if accepted else _error_text(error, result)))
        elif method == "mining.configure":
            events.append(VersionRollingAnswered(self._configured_mask(result)))
        # mining.extranonce.subscribe: true or an error; either way nothing changes until set_extranonce

    def _on_subscribe_reply(self, result: object, error: object, events: list) -> None:
        if error is not None or type(result) is not list or len(result) < 3:
            self._end(ClientCloseReason.SUBSCRIBE_REFUSED, _error_text(error, result), events)
            return
        try:
            extranonce1, size = _extranonce(result[1], result[2])
        except (TypeError, ValueError) as exc:
            raise _BadMessage(f"subscribe result {_short(result)}: {exc}") from None
        self.extranonce1, self.extranonce2_size, self.subscribed = extranonce1, size, True
        events.append(PoolSubscribed(extranonce1, size))

    def _configured_mask(self, result: object) -> int | None:
        if type(result) is not dict or result.get(VERSION_ROLLING) is not True:
            return None
        try:
            mask = parse_mask(result.get("version-rolling.mask", "00000000"))
        except ValueError:
            return None
        mask &= self.config.version_mask or 0  # never roll a bit we did not ask for
        self.version_mask = mask or None
        return self.version_mask

    # Notifications: (self, params, events); IndexError/TypeError/ValueError mean a bad message.

    def _on_notify(self, params: list, events: list) -> None:
        events.append(JobNotified(job_from_notify(params)))

    def _on_set_difficulty(self, params: list, events: list) -> None:
        difficulty = params[0]
        if type(difficulty) not in (int, float) or not difficulty > 0 or not math.isfinite(difficulty):
            raise ValueError("difficulty must be a positive number")
        self.difficulty = float(difficulty)
        events.append(DifficultyChanged(self.difficulty))

    def _on_set_extranonce(self, params: list, events: list) -> None:
        extranonce1, size = _extranonce(params[0], params[1])
        self.extranonce1, self.extranonce2_size = extranonce1, size
        events.append(ExtranonceChanged(extranonce1, size))

    def _on_set_version_mask(self, params: list, events: list) -> None:
        mask = parse_mask(params[0]) & (self.config.version_mask or 0)
        self.version_mask = mask or None
        events.append(VersionMaskChanged(mask))

    def _on_reconnect(self, params: list, events: list) -> None:
        if not params:
            events.append(ReconnectRequested(None, None, 0.0))
            return
        host = params[0]
        port = int(params[1]) if len(params) > 1 else None  # cgminer-era pools send it as a string
        wait = float(params[2]) if len(params) > 2 else 0.0
        if type(host) is not str or (port is not None and not 0 < port <= 65535) or not 0 <= wait < 1e6:
            raise ValueError("expected [host, port, wait]")
        events.append(ReconnectRequested(host or None, port, wait))

    def _on_show_message(self, params: list, events: list) -> None:
        events.append(MessageShown(str(params[0])[:512] if params else ""))


_NOTIFICATIONS = {
    "mining.notify": ClientSession._on_notify,
    "mining.set_difficulty": ClientSession._on_set_difficulty,
    "mining.set_extranonce": ClientSession._on_set_extranonce,
    "mining.set_version_mask": ClientSession._on_set_version_mask,
    "client.reconnect": ClientSession._on_reconnect,
    "client.show_message": ClientSession._on_show_message,
}


def job_from_notify(params: list) -> Job:
    """A ``mining.notify`` as a Job in internal byte order; ValueError/TypeError/IndexError if malformed."""
    job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean = params[:9]
    if type(job_id) is not str or not job_id or type(branch) is not list or type(clean) is not bool:
        raise TypeError("job id must be a string, the merkle branch a list and clean_jobs a boolean")
    merkle_branch = tuple(bytes.fromhex(node) for node in branch)  # branch hashes travel in internal order
    if any(len(node) != 32 for node in merkle_branch):
        raise ValueError("merkle branch hashes must be 32 bytes")
    return Job(
        job_id=job_id,
        prevhash=prevhash_from_stratum(prevhash),
        coinb1=bytes.fromhex(coinb1),
        coinb2=bytes.fromhex(coinb2),
        merkle_branch=merkle_branch,
        version=u32_from_hex(version, "version"),
        nbits=u32_from_hex(nbits, "nbits"),
        ntime=u32_from_hex(ntime, "ntime"),
        clean_jobs=clean,
    )


def reject_reason(code: int | None, message: str, result: object = None) -> str:
    """A pool's refusal as one of fleetd's reject reasons, so both sides count alike.

    Unknown texts become "other" (never the text itself: a pool must not be able to
    mint label values); a bare ``false`` with no error (ckpool) is "rejected".
    """
    if code is None:
        return "rejected" if result is False else "other"
    by_message = _REASON_BY_MESSAGE.get(message.strip().lower())
    if by_message is not None:
        return by_message
    if code == 21:
        return Reject.STALE.reason if "stale" in message.lower() else Reject.UNKNOWN_JOB.reason
    return _REASON_BY_CODE.get(code, "other")


def _extranonce(extranonce1_hex: object, size: object) -> tuple[bytes, int]:
    if type(extranonce1_hex) is not str or type(size) is not int:
        raise TypeError("expected [extranonce1 hex, extranonce2 size]")
    extranonce1 = bytes.fromhex(extranonce1_hex)
    if len(extranonce1) > MAX_EXTRANONCE1 or not 0 <= size <= MAX_EXTRANONCE2:
        raise ValueError(f"extranonce1 of {len(extranonce1)} bytes, extranonce2 size {size}")
    return extranonce1, size


def _error_parts(error: object) -> tuple[int | None, str]:
    if error is None:
        return None, ""
    if type(error) is list and error:
        code = error[0] if type(error[0]) is int else None
        return code, str(error[1])[:200] if len(error) > 1 else ""
    if type(error) is dict:  # JSON-RPC 2.0 style, as some pools answer
        code = error.get("code")
        return (code if type(code) is int else None), str(error.get("message", ""))[:200]
    return None, str(error)[:200]


def _error_text(error: object, result: object) -> str:
    code, text = _error_parts(error)
    if code is None and not text:
        return f"result {_short(result)}"
    return f"{code}: {text}" if code is not None else text


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
