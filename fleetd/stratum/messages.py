"""Stratum v1 messages as bytes: replies and server notifications, one JSON line each.

Replies carry both ``result`` and ``error`` (null when unused), as cgminer-era miners
expect; notifications carry ``"id":null``. Lines that recur on every submit are assembled
from precomputed pieces so the hot path does not build dicts.
"""

from __future__ import annotations

from types import MappingProxyType

import orjson

from fleetd.chain.byteorder import prevhash_to_stratum, u32_to_hex
from fleetd.stratum.job import Job
from fleetd.stratum.framing import encode_line
from fleetd.stratum.rejects import Reject

_dumps = orjson.dumps
_ID = b'{"id":'
_TRUE_TAIL = b',"result":true,"error":null}\n'
_PONG_TAIL = b',"result":"pong","error":null}\n'
_ERROR_TAILS = MappingProxyType(
    {r: b',"result":null,"error":' + _dumps(r.error()) + b"}\n" for r in Reject}
)


def true_reply(request_id: object) -> bytes:
    return _ID + _dumps(request_id) + _TRUE_TAIL


def pong_reply(request_id: object) -> bytes:
    return _ID + _dumps(request_id) + _PONG_TAIL


def error_reply(request_id: object, reject: Reject) -> bytes:
    return _ID + _dumps(request_id) + _ERROR_TAILS[reject]


def result_reply(request_id: object, result: object) -> bytes:
    return encode_line({"id": request_id, "result": result, "error": None})


def subscribe_result(extranonce1: bytes, extranonce2_size: int) -> list:
    """``[[subscriptions], extranonce1, extranonce2_size]``; extranonce1 doubles as the subscription id."""
    sid = extranonce1.hex()
    return [[["mining.set_difficulty", sid], ["mining.notify", sid]], sid, extranonce2_size]


def _notification(method: str, params: list) -> bytes:
    return encode_line({"id": None, "method": method, "params": params})


def notify(job: Job) -> bytes:
    """``mining.notify`` for a job; the same bytes serve every connection."""
    return _notification(
        "mining.notify",
        [
            job.job_id,
            prevhash_to_stratum(job.prevhash),
            job.coinb1.hex(),
            job.coinb2.hex(),
            [h.hex() for h in job.merkle_branch],  # branch hashes go out in internal order
            u32_to_hex(job.version),
            u32_to_hex(job.nbits),
            u32_to_hex(job.ntime),
            job.clean_jobs,
        ],
    )


def wire_difficulty(difficulty: float) -> int | float:
    # Integral difficulties go out as JSON integers: some firmware parses only those.
    if difficulty.is_integer() and difficulty < 2**53:
        return int(difficulty)
    return difficulty


def set_difficulty(difficulty: float) -> bytes:
    return _notification("mining.set_difficulty", [wire_difficulty(difficulty)])


def set_extranonce(extranonce1: bytes, extranonce2_size: int) -> bytes:
    return _notification("mining.set_extranonce", [extranonce1.hex(), extranonce2_size])


def set_version_mask(mask: int) -> bytes:
    return _notification("mining.set_version_mask", [u32_to_hex(mask)])


def reconnect(host: str | None, port: int | None, wait: int) -> bytes:
    # cgminer reads the port as a string (ckpool sends it so); no host means "this server".
    params: list = [] if host is None else [host, str(port), wait]
    return _notification("client.reconnect", params)


def show_message(text: str) -> bytes:
    return _notification("client.show_message", [text])
