"""What the sans-IO session reports to the code that drives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from fleetd.stratum.framing import CloseReason
from fleetd.stratum.job import Job
from fleetd.stratum.rejects import Reject


class SubmitReceived(NamedTuple):
    """A ``mining.submit`` that passed the session's own checks (a tuple: one is built per
    submit, and a frozen dataclass costs several times as much to build).

    The session has already confirmed subscription, authorization, parameter shapes,
    the extranonce2 size and version bits against the negotiated mask. ``job`` is the job
    as sent on this connection, None when it was not (the pool's job store then says
    whether it is stale or unknown). What remains (ntime window, duplicate, proof of work)
    is the pool core's. ``difficulty`` is the one the job was last sent at on this
    connection, so a vardiff change never rejects older work. ``fallback_difficulty`` is
    set when a lower one also counts: the connection's current difficulty (cgminer and
    bmminer apply a lowered difficulty to the job they hold) or the difficulty a re-sent
    job went out at before (shares in flight). A share meeting only that is accepted and
    credited at it.
    """

    request_id: object
    worker: str
    job: Job | None
    job_id: str
    extranonce1: bytes
    extranonce2: bytes
    ntime: int
    nonce: int
    version: int  # the header version after applying rolled bits (the job's when job is None)
    version_bits: int | None  # the 6th submit parameter as sent, None when absent
    difficulty: float
    fallback_difficulty: float | None = None  # below ``difficulty`` when set


@dataclass(frozen=True, slots=True)
class SubmitRejected:
    """A ``mining.submit`` the session refused itself (and already answered)."""

    request_id: object
    worker: str | None  # as sent, None when it was not a string
    job_id: str | None
    reject: Reject


@dataclass(frozen=True, slots=True)
class Subscribed:
    """``mining.subscribe`` answered; work goes out once a worker is authorized too (``Session.ready``)."""

    user_agent: str | None
    session_id: str | None  # the resume id a miner offered; fleetd never resumes


@dataclass(frozen=True, slots=True)
class Authorized:
    worker: str


@dataclass(frozen=True, slots=True)
class AuthorizationRefused:
    worker: str
    reason: str = "bad_credentials"  # or "max_workers" (this connection's), "max_workers_per_ip"


@dataclass(frozen=True, slots=True)
class DifficultySuggested:
    """``mining.suggest_difficulty``: what the miner asked, and that value clamped to the limits
    (and to its BIP310 minimum), now the session's difficulty and the miner's floor."""

    requested: float
    difficulty: float


@dataclass(frozen=True, slots=True)
class MinimumDifficultyRequested:
    """BIP310 ``minimum-difficulty``: the session will not send a difficulty under ``floor``
    (the minimum clamped to the limits, or the miner's suggestion when that is higher)."""

    requested: float
    floor: float


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A request answered with error 20 other than a submit: malformed, unknown method, or
    a method fleetd does not support (``Reject.UNSUPPORTED``, never counted as garbage)."""

    request_id: object
    method: str | None
    reject: Reject
    detail: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The session is over; send what ``data_to_send`` still holds, then close the transport."""

    reason: CloseReason
    detail: str


Event = (
    SubmitReceived
    | SubmitRejected
    | Subscribed
    | Authorized
    | AuthorizationRefused
    | DifficultySuggested
    | MinimumDifficultyRequested
    | BadRequest
    | ConnectionClosed
)
