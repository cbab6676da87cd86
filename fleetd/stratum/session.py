"""The server side of one Stratum v1 connection, without I/O (in the manner of h11).

The driver feeds received bytes to ``receive_data`` and gets events back, calls methods
such as ``send_job`` or ``accept_submit`` to answer, and writes out ``data_to_send()``.
The session reads no clock and raises nothing at its peer's bidding: a connection that
must end says so through ``closed``/``close_reason`` and a ``ConnectionClosed`` event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from fleetd.chain.byteorder import U32_MAX, hash_to_display
from fleetd.stratum.job import Job
from fleetd.stratum import messages
from fleetd.stratum.auth import Authorizer, OpenAuthorization
from fleetd.stratum.configure import configure
from fleetd.stratum.events import (
    AuthorizationRefused,
    Authorized,
    BadRequest,
    ConnectionClosed,
    DifficultySuggested,
    Event,
    MinimumDifficultyRequested,
    SubmitReceived,
    SubmitRejected,
    Subscribed,
)
from fleetd.stratum.framing import DEFAULT_MAX_LINE_BYTES, CloseReason, LineFramer, TooDeep
from fleetd.stratum.rejects import Reject

_HEX = re.compile(r"[0-9a-fA-F]+").fullmatch
_ID_TYPES = frozenset((int, str, float, type(None)))  # JSON-RPC ids; bool is not one
_NO_PARAMS: list = []
_MAX_USER_AGENT = 256  # longer user agents are cut: they are only logged

TOO_MANY_AUTH_FAILURES = "too_many_auth_failures"  # a close reason, beside CloseReason's

_MALFORMED = Reject.MALFORMED
_UNAUTHORIZED = Reject.UNAUTHORIZED


@dataclass(frozen=True, slots=True)
class SessionConfig:
    authorizer: Authorizer = OpenAuthorization()
    extranonce2_size: int = 8  # 8 keeps ckpool's proxy mode working behind us
    version_mask: int = 0x1FFFE000  # BIP320 general-purpose bits
    allow_version_bits_without_configure: bool = False  # some Antminer firmware never configures
    min_difficulty: float = 0.0001
    max_difficulty: float = 1e12
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_bad_requests: int = 10  # consecutive malformed requests before closing
    max_workers: int = 64  # authorized worker names per connection
    max_auth_failures: int = 5  # refused credentials before closing the connection
    max_username_length: int = 256

    def __post_init__(self) -> None:
        _require(callable(self.authorizer), "authorizer", self.authorizer, "a callable (username, password) -> bool")
        _require(2 <= self.extranonce2_size <= 16, "extranonce2_size", self.extranonce2_size, "2..16 bytes")
        _require(0 <= self.version_mask <= U32_MAX, "version_mask", self.version_mask, "a 32-bit mask")
        _require(_positive(self.min_difficulty), "min_difficulty", self.min_difficulty, "a positive number")
        _require(
            _positive(self.max_difficulty) and self.max_difficulty >= self.min_difficulty,
            "max_difficulty",
            self.max_difficulty,
            "a number not below min_difficulty",
        )
        for key in ("max_line_bytes", "max_bad_requests", "max_workers", "max_auth_failures"):
            value = getattr(self, key)
            _require(type(value) is int and value >= 1, key, value, "a positive integer")
        _require(self.max_username_length >= 1, "max_username_length", self.max_username_length, "positive")


class Session:
    """One miner connection's protocol state. Not thread-safe; one per connection."""

    __slots__ = (
        "config",
        "_framer",
        "_out",
        "_extranonce",
        "_subscribed",
        "_user_agent",
        "_workers",
        "_pool_mask",
        "_requested_mask",
        "_version_mask",
        "_extranonce_subscribed",
        "_difficulty",
        "_announced",
        "_in_force",
        "_minimum",
        "_suggested",
        "_ceiling",
        "_jobs",
        "_bad_streak",
        "_close",
        "_auth_failures",
        "_accepted",
        "worker_gate",
    )

    def __init__(self, config: SessionConfig, extranonce1: bytes) -> None:
        if not extranonce1:
            raise ValueError("extranonce1 must not be empty")
        self.config = config
        self._framer = LineFramer(config.max_line_bytes)
        self._out: list[bytes] = []
        # (extranonce1, extranonce2 size) in force for the next job; jobs keep their own.
        self._extranonce = (bytes(extranonce1), config.extranonce2_size)
        self._subscribed = False
        self._user_agent: str | None = None
        self._workers: set[str] = set()
        self._pool_mask = config.version_mask
        self._requested_mask: int | None = None
        self._version_mask: int | None = None
        self._extranonce_subscribed = False
        self._difficulty = 1.0  # Stratum's implied difficulty until one is sent
        self._announced = 1.0  # the difficulty the miner was last told
        self._in_force: float | None = None  # the difficulty of the latest job sent
        self._minimum: float | None = None  # BIP310 minimum-difficulty
        self._suggested: float | None = None  # mining.suggest_difficulty
        self._ceiling: float | None = None  # set_ceiling: above the miner's floor too
        # job_id -> (job, difficulty, lowest difficulty, (extranonce1, extranonce2 size)) as
        # sent: the difficulty it was last sent at, and the least of those it went out at
        # (a re-sent id); insertion-ordered. Which jobs are live is the job store's to say:
        # a clean job clears this, and the driver ``forget``s what the store retires.
        self._jobs: dict[str, tuple[Job, float, float, tuple[bytes, int]]] = {}
        self._bad_streak = 0
        self._close: tuple[str, str] | None = None
        self._auth_failures = 0
        self._accepted = 0
        # Set by the driver: asked before a new worker name is authorized (a limit beyond this
        # connection, such as one per source address); False refuses it as max_workers_per_ip.
        self.worker_gate: Callable[[str], bool] | None = None

    # --- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Consume received bytes; return the events they caused, in order."""
        if self._close is not None:
            return []
        events: list[Event] = []
        framer = self._framer
        try:
            for message in framer.feed(data):
                self._handle(message, events)
                if self._close is not None:
                    return events
            if framer.error is not None:
                self._end(*framer.error, events)
        except Exception as exc:  # a bug here must cost one connection, not the server
            self._end(CloseReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", events)
        return events

    def data_to_send(self) -> bytes:
        """Everything produced since the last call, ready for the transport."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # --- driver-side actions -------------------------------------------------------------

    def send_job(self, job: Job, notify: bytes | None = None) -> None:
        """Send ``mining.notify`` and remember the job at the difficulty now in force.

        ``notify`` may carry ``messages.notify(job)`` encoded once for every connection.
        A difficulty the miner was not told yet (a suggestion before any job) goes first.
        """
        if self._close is not None:
            return
        jobs = self._jobs
        difficulty = self._difficulty
        if difficulty != self._announced:
            self._announce(difficulty)
        previous = jobs.pop(job.job_id, None)
        # A re-sent id: a share in flight may be at the difficulty it went out at before.
        lowest = difficulty if previous is None or previous[2] > difficulty else previous[2]
        if job.clean_jobs:
            jobs.clear()
        jobs[job.job_id] = (job, difficulty, lowest, self._extranonce)
        self._in_force = self._difficulty
        self._out.append(notify if notify is not None else messages.notify(job))

    def forget(self, job_ids) -> None:
        """The job store retired these jobs: shares for them are its to call stale."""
        jobs = self._jobs
        for job_id in job_ids:
            jobs.pop(job_id, None)

    def set_difficulty(self, difficulty: float) -> float:
        """Send ``mining.set_difficulty`` and, once the miner has work, its latest job again
        (clean_jobs false), so firmware that takes a difficulty only with a notify works at it now.

        Never below the miner's floor (``difficulty_floor``); returns the difficulty actually sent.
        """
        difficulty = float(difficulty)
        if not _positive(difficulty):
            raise ValueError(f"difficulty must be a positive number, got {difficulty!r}")
        floor, ceiling = self.difficulty_floor, self._ceiling
        if floor is not None and difficulty < floor:
            difficulty = floor
        if ceiling is not None and difficulty > ceiling:
            difficulty = ceiling
        if self._close is None:
            self._difficulty = difficulty
            self._announce(difficulty)
            self._resend_latest()
        return difficulty

    def set_extranonce(self, extranonce1: bytes, extranonce2_size: int | None = None) -> bool:
        """Change the extranonce for jobs sent from now on, if the miner can be told.

        Returns False (and changes nothing) when the miner never subscribed to extranonce
        changes: the driver must reconnect it instead.
        """
        size = self.config.extranonce2_size if extranonce2_size is None else extranonce2_size
        if not extranonce1 or not 2 <= size <= 16:
            raise ValueError(f"bad extranonce: {bytes(extranonce1).hex()!r} with extranonce2 size {size!r}")
        if self._close is not None or not self._extranonce_subscribed:
            return False
        self._extranonce = (bytes(extranonce1), size)
        self._out.append(messages.set_extranonce(self._extranonce[0], size))
        return True

    def set_version_mask(self, mask: int) -> bool:
        """Change the pool's mask for this connection (BIP310: valid immediately).

        A miner that negotiated rolling gets ``mining.set_version_mask`` with the bits it
        can roll; returns whether that was sent.
        """
        if not 0 <= mask <= U32_MAX:
            raise ValueError(f"version mask must be 32 bits, got {mask!r}")
        self._pool_mask = mask
        if self._close is not None or self._version_mask is None:
            return False
        self._version_mask = mask & self._requested_mask
        self._out.append(messages.set_version_mask(self._version_mask))
        return True

    def reconnect(self, host: str | None = None, port: int | None = None, wait: int = 0) -> None:
        """``client.reconnect``: to host:port after ``wait`` seconds, or to this server when host is None."""
        if host is not None and port is None:
            raise ValueError("client.reconnect to another host needs a port")
        if self._close is None:
            self._out.append(messages.reconnect(host, port, wait))

    def show_message(self, text: str) -> None:
        if self._close is None:
            self._out.append(messages.show_message(text))

    def accept_submit(self, request_id: object) -> None:
        if self._close is None:
            self._accepted += 1
            self._out.append(messages.true_reply(request_id))

    def reject_submit(self, request_id: object, reject: Reject) -> None:
        if self._close is None:
            self._out.append(messages.error_reply(request_id, reject))

    def close(self, reason: str = CloseReason.CLOSED_BY_SERVER, detail: str = "") -> None:
        """End the session from the driver's side (login timeout, shutdown); idempotent."""
        if self._close is None:
            self._close = (reason, detail)

    # --- state the driver reads --------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def authorized_workers(self) -> frozenset[str]:
        return frozenset(self._workers)

    def is_authorized(self, worker: str) -> bool:
        return worker in self._workers

    @property
    def ready(self) -> bool:
        """Subscribed with at least one authorized worker: the login deadline is met."""
        return self._subscribed and bool(self._workers)

    @property
    def auth_failures(self) -> int:
        """``mining.authorize`` calls refused for their credentials."""
        return self._auth_failures

    @property
    def accepted_submits(self) -> int:
        """Shares accepted on this connection (``accept_submit`` calls)."""
        return self._accepted

    @property
    def user_agent(self) -> str | None:
        return self._user_agent

    @property
    def version_mask(self) -> int | None:
        """The negotiated version-rolling mask, None when rolling was not negotiated."""
        return self._version_mask

    @property
    def extranonce1(self) -> bytes:
        return self._extranonce[0]

    @property
    def extranonce2_size(self) -> int:
        return self._extranonce[1]

    @property
    def extranonce_subscribed(self) -> bool:
        return self._extranonce_subscribed

    @property
    def difficulty(self) -> float:
        """The difficulty the next job will carry."""
        return self._difficulty

    @property
    def difficulty_in_force(self) -> float | None:
        """The difficulty of the latest job sent, the one the miner works at; None before any job.

        A ``mining.set_difficulty`` takes effect with the next ``mining.notify``.
        """
        return self._in_force

    @property
    def minimum_difficulty(self) -> float | None:
        """The floor a BIP310 minimum-difficulty request set, None when none was asked."""
        return self._minimum

    @property
    def suggested_difficulty(self) -> float | None:
        """The latest ``mining.suggest_difficulty``, clamped; None when none was sent."""
        return self._suggested

    def set_ceiling(self, ceiling: float | None) -> None:
        """No difficulty above ``ceiling`` from now on (None: none), whatever the miner asked:
        a proxy holds its rigs at its upstream's difficulty so that none of their work is lost.
        Takes effect with the next difficulty sent or suggested."""
        self._ceiling = ceiling

    @property
    def difficulty_floor(self) -> float | None:
        """The least difficulty the session sends: the miner's minimum or suggestion, the higher."""
        return max((d for d in (self._minimum, self._suggested) if d is not None), default=None)

    @property
    def closed(self) -> bool:
        return self._close is not None

    @property
    def close_reason(self) -> str | None:
        return None if self._close is None else self._close[0]

    @property
    def close_detail(self) -> str | None:
        return None if self._close is None else self._close[1]

    # --- internals ------------------------------------------------------------------------

    def _announce(self, difficulty: float) -> None:
        self._announced = difficulty
        self._out.append(messages.set_difficulty(difficulty))

    def _resend_latest(self) -> None:
        # A difficulty change applies now: the latest job again, its work kept (clean_jobs
        # false). Shares in flight at the old difficulty stay good (see ``send_job``).
        if self._jobs:
            latest = next(reversed(self._jobs.values()))[0]
            self.send_job(replace(latest, clean_jobs=False) if latest.clean_jobs else latest)

    def _end(self, reason: str, detail: str, events: list) -> None:
        self._close = (reason, detail)
        events.append(ConnectionClosed(reason, detail))

    def _handle(self, message: object, events: list) -> None:
        if type(message) is TooDeep:  # left unparsed; its id, when it came first, gets the answer
            depth = self._framer.max_depth
            self._bad_request(message.request_id, None, _MALFORMED, f"nested deeper than {depth} levels", events)
            return
        if type(message) is not dict:
            self._bad_request(None, None, _MALFORMED, "not a JSON object", events)
            return
        request_id = message.get("id")
        if type(request_id) not in _ID_TYPES:
            self._bad_request(None, None, _MALFORMED, "id must be a number, string or null", events)
            return
        method = message.get("method")
        if method is None:
            if "result" in message or "error" in message:
                return  # a miner answering one of our requests: nothing to do
            self._bad_request(request_id, None, _MALFORMED, "no method", events)
            return
        if type(method) is not str:
            self._bad_request(request_id, None, _MALFORMED, "method must be a string", events)
            return
        params = message.get("params", _NO_PARAMS)
        if params is None:
            params = _NO_PARAMS
        elif type(params) is not list:
            self._bad_request(request_id, method, _MALFORMED, "params must be a list", events)
            return
        handler = _HANDLERS.get(method)
        if handler is None:
            if method in _UNSUPPORTED:
                # A method real miners send that fleetd does not offer: refused, and not
                # garbage, so it never counts toward max_bad_requests.
                self._out.append(messages.error_reply(request_id, Reject.UNSUPPORTED))
                events.append(BadRequest(request_id, method, Reject.UNSUPPORTED, "unsupported method"))
                return
            self._bad_request(request_id, method, Reject.UNKNOWN_METHOD, "unknown method", events)
            return
        if handler(self, request_id, params, events):
            self._bad_streak = 0

    def _bad_request(self, request_id: object, method: str | None, reject: Reject, detail: str, events: list) -> bool:
        self._out.append(messages.error_reply(request_id, reject))
        if method != "mining.submit":
            events.append(BadRequest(request_id, method, reject, detail))
        self._bad_streak += 1
        if self._bad_streak >= self.config.max_bad_requests:
            self._end(CloseReason.TOO_MANY_BAD_REQUESTS, f"{self._bad_streak} bad requests in a row", events)
        return False

    # Handlers: (self, request_id, params, events) -> whether the request was well formed.

    def _on_submit(self, request_id: object, params: list, events: list) -> bool:
        n = len(params)
        worker = params[0] if n else None
        if not self._subscribed:
            return self._refuse(request_id, worker, params, Reject.NOT_SUBSCRIBED, events)
        if type(worker) is not str:
            return self._malformed_submit(request_id, params, events)
        if worker not in self._workers:
            return self._refuse(request_id, worker, params, _UNAUTHORIZED, events)
        if n != 5 and n != 6:
            return self._malformed_submit(request_id, params, events)
        job_id, extranonce2_hex, ntime_hex, nonce_hex = params[1], params[2], params[3], params[4]
        bits_hex = params[5] if n == 6 else ""
        # One check for every hex field: int() and fromhex() forgive signs, "0x", "_" and
        # spaces, which a submit may not use; after it int(x, 16) is exact and fastest.
        # Joining the fields is also their type check: only str + str works.
        try:
            well_formed = (
                type(job_id) is str
                and _HEX(extranonce2_hex + ntime_hex + nonce_hex + bits_hex) is not None
                and len(ntime_hex) == 8
                and len(nonce_hex) == 8
                and (n == 5 or len(bits_hex) == 8)
                and not len(extranonce2_hex) & 1
            )
        except TypeError:
            well_formed = False
        if not well_formed:
            return self._malformed_submit(request_id, params, events)
        ntime = int(ntime_hex, 16)
        nonce = int(nonce_hex, 16)
        bits = int(bits_hex, 16) if n == 6 else None
        extranonce2 = bytes.fromhex(extranonce2_hex)

        entry = self._jobs.get(job_id)
        # The extranonce2 size that counts is the one the job went out with.
        if len(extranonce2) != (entry[3][1] if entry is not None else self._extranonce[1]):
            return self._refuse(request_id, worker, params, Reject.BAD_EXTRANONCE2_SIZE, events)
        mask = self._version_mask
        if bits is not None:
            if mask is None:
                if self.config.allow_version_bits_without_configure:
                    mask = self._pool_mask
                elif bits:
                    return self._refuse(request_id, worker, params, Reject.VERSION_BITS_NOT_NEGOTIATED, events)
                else:
                    mask = 0  # six parameters with nothing rolled: harmless
            if bits & ~mask:
                return self._refuse(request_id, worker, params, Reject.VERSION_BITS_OUTSIDE_MASK, events)
        if entry is None:  # not sent here, or retired: the job store tells stale from unknown
            events.append(
                SubmitReceived(
                    request_id, worker, None, job_id, self._extranonce[0], extranonce2, ntime, nonce, 0, bits, 0.0
                )
            )
            return True

        job, difficulty, lowest, (extranonce1, _) = entry
        version = job.version if bits is None else (job.version & ~mask) | (bits & mask)
        # cgminer and bmminer put a lowered difficulty on the job they already hold.
        announced = self._announced
        if announced < lowest:
            lowest = announced
        events.append(
            SubmitReceived(
                request_id,
                worker,
                job,
                job_id,
                extranonce1,
                extranonce2,
                ntime,
                nonce,
                version,
                bits,
                difficulty,
                lowest if lowest < difficulty else None,
            )
        )
        return True

    def _refuse(self, request_id: object, worker: object, params: list, reject: Reject, events: list) -> bool:
        self._out.append(messages.error_reply(request_id, reject))
        job_id = params[1] if len(params) > 1 and type(params[1]) is str else None
        events.append(SubmitRejected(request_id, worker if type(worker) is str else None, job_id, reject))
        return True

    def _malformed_submit(self, request_id: object, params: list, events: list) -> bool:
        worker = params[0] if params and type(params[0]) is str else None
        job_id = params[1] if len(params) > 1 and type(params[1]) is str else None
        events.append(SubmitRejected(request_id, worker, job_id, _MALFORMED))
        return self._bad_request(request_id, "mining.submit", _MALFORMED, "", events)

    def _on_subscribe(self, request_id: object, params: list, events: list) -> bool:
        user_agent = params[0] if params else None
        session_id = params[1] if len(params) > 1 else None
        if user_agent is not None and type(user_agent) is not str:
            return self._bad_request(request_id, "mining.subscribe", _MALFORMED, "user agent must be a string", events)
        if type(session_id) is not str:
            session_id = None  # a resume id we cannot use anyway
        if user_agent is not None:
            user_agent = user_agent[:_MAX_USER_AGENT]
        self._subscribed = True
        self._user_agent = user_agent
        self._out.append(messages.result_reply(request_id, messages.subscribe_result(*self._extranonce)))
        events.append(Subscribed(user_agent, session_id))
        return True

    def _on_authorize(self, request_id: object, params: list, events: list) -> bool:
        username = params[0] if params else None
        password = params[1] if len(params) > 1 else None
        if type(username) is not str or (password is not None and type(password) is not str):
            return self._bad_request(request_id, "mining.authorize", _MALFORMED, "expected [username, password]", events)
        if len(username) > self.config.max_username_length:
            return self._bad_request(request_id, "mining.authorize", _MALFORMED, "username too long", events)
        workers, config = self._workers, self.config
        refused = None if config.authorizer(username, password or "") else "bad_credentials"
        if refused is None and username not in workers:
            if len(workers) >= config.max_workers:
                refused = "max_workers"  # a proxy with this many workers should open more connections
            elif self.worker_gate is not None and not self.worker_gate(username):
                refused = "max_workers_per_ip"
        if refused is None:
            workers.add(username)
            self._out.append(messages.true_reply(request_id))
            events.append(Authorized(username))
            return True
        self._out.append(messages.error_reply(request_id, _UNAUTHORIZED))
        events.append(AuthorizationRefused(username, refused))
        if refused == "bad_credentials":
            self._auth_failures += 1
            if self._auth_failures >= config.max_auth_failures:
                self._end(TOO_MANY_AUTH_FAILURES, f"{self._auth_failures} refused logins", events)
        return True

    def _on_configure(self, request_id: object, params: list, events: list) -> bool:
        try:
            decided = configure(params, self._pool_mask)
        except ValueError as exc:
            return self._bad_request(request_id, "mining.configure", _MALFORMED, str(exc), events)
        rolling = decided.version_rolling
        if rolling is not None:
            self._requested_mask = rolling.requested_mask
            self._version_mask = rolling.mask
        if decided.minimum_difficulty is not None:
            config = self.config
            self._minimum = min(max(decided.minimum_difficulty, config.min_difficulty), config.max_difficulty)
            events.append(MinimumDifficultyRequested(decided.minimum_difficulty, self.difficulty_floor))
        if decided.subscribe_extranonce:
            self._extranonce_subscribed = True
        self._out.append(messages.result_reply(request_id, decided.result))
        return True

    def _on_suggest_difficulty(self, request_id: object, params: list, events: list) -> bool:
        requested = params[0] if params else None
        if type(requested) not in (int, float) or not requested > 0:
            return self._bad_request(
                request_id, "mining.suggest_difficulty", _MALFORMED, "difficulty must be a positive number", events
            )
        requested = float(requested)
        config = self.config
        lower = config.min_difficulty if self._minimum is None else self._minimum
        difficulty = min(max(requested, lower), config.max_difficulty)
        self._suggested = difficulty
        self._out.append(messages.true_reply(request_id))
        events.append(DifficultySuggested(requested, difficulty))
        # In force at once, as in ckpool and public-pool: the next job carries it, and a
        # miner already at work gets it now with its current job again, so firmware that
        # takes a new difficulty only with a notify works at it too.
        if self._ceiling is not None:
            difficulty = min(difficulty, self._ceiling)
        if difficulty != self._difficulty:
            self._difficulty = difficulty
            self._resend_latest()  # announces it first
        return True

    def _on_extranonce_subscribe(self, request_id: object, params: list, events: list) -> bool:
        self._extranonce_subscribed = True
        self._out.append(messages.true_reply(request_id))
        return True

    def _on_get_transactions(self, request_id: object, params: list, events: list) -> bool:
        # bfgminer asks with every job (params: [job_id]): the txids of the job's
        # transactions, as RPC shows them; an empty list for a job the source cannot
        # list (upstream work) or one not sent here, which bfgminer takes as an opaque pool.
        if params and type(params[0]) is not str:
            return self._bad_request(request_id, "mining.get_transactions", _MALFORMED, "expected [job_id]", events)
        entry = self._jobs.get(params[0]) if params else None
        txids = [hash_to_display(txid) for txid in entry[0].transaction_ids] if entry is not None else []
        self._out.append(messages.result_reply(request_id, txids))
        return True

    def _on_ping(self, request_id: object, params: list, events: list) -> bool:
        self._out.append(messages.pong_reply(request_id))
        return True


# method -> handler; a constant table, looked up once per request
_HANDLERS = {
    "mining.submit": Session._on_submit,
    "mining.subscribe": Session._on_subscribe,
    "mining.authorize": Session._on_authorize,
    "mining.configure": Session._on_configure,
    "mining.suggest_difficulty": Session._on_suggest_difficulty,
    "mining.extranonce.subscribe": Session._on_extranonce_subscribe,
    "mining.ping": Session._on_ping,
    "mining.get_transactions": Session._on_get_transactions,
}
# Methods real miners send that fleetd refuses without counting them as garbage.
_UNSUPPORTED = frozenset(
    ("mining.get_txnhashes", "mining.suggest_target", "mining.capabilities", "mining.multi_version")
)


def _positive(value: object) -> bool:
    return type(value) in (int, float) and value > 0 and math.isfinite(value)


def _require(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"SessionConfig.{key} = {value!r}: expected {expected}")
