"""Helpers for driving the sans-IO session with bytes only."""

from __future__ import annotations

import orjson

from fleetd.stratum.job import Job
from fleetd.stratum.session import Session, SessionConfig

EN1 = bytes.fromhex("deadbeef")
WORKER = "acct.rig1"
PREVHASH = bytes(range(32))  # internal order; Stratum sends 03020100 07060504 ...


def req(request_id: object, method: str, params: list) -> bytes:
    return orjson.dumps({"id": request_id, "method": method, "params": params}) + b"\n"


def replies(session: Session) -> list:
    """Everything the session wants sent, parsed; also checks it is compact JSON lines."""
    data = session.data_to_send()
    if not data:
        return []
    assert data.endswith(b"\n")
    lines = data[:-1].split(b"\n")
    for line in lines:
        assert orjson.dumps(orjson.loads(line)) == line, "not compact JSON"
    return [orjson.loads(line) for line in lines]


def ok(request_id: object, result: object = True) -> dict:
    return {"id": request_id, "result": result, "error": None}


def err(request_id: object, code: int, message: str) -> dict:
    return {"id": request_id, "result": None, "error": [code, message, None]}


def job(job_id: str = "j1", clean: bool = False, version: int = 0x20000000, ntime: int = 0x66000000) -> Job:
    return Job(
        job_id=job_id,
        prevhash=PREVHASH,
        coinb1=bytes.fromhex("01000000010000"),
        coinb2=bytes.fromhex("ffffffff00"),
        merkle_branch=(bytes([0xAA]) * 32, bytes([0xBB]) * 32),
        version=version,
        nbits=0x1D00FFFF,
        ntime=ntime,
        clean_jobs=clean,
        height=840000,
    )


def submit(request_id: object, job_id: str = "j1", en2: str = "00" * 8, ntime: str = "66000000",
           nonce: str = "0000abcd", bits: str | None = None, worker: str = WORKER) -> bytes:
    params = [worker, job_id, en2, ntime, nonce]
    if bits is not None:
        params.append(bits)
    return req(request_id, "mining.submit", params)


def logged_in(config: SessionConfig | None = None, *, configure: dict | None = None,
              extranonce_subscribe: bool = False) -> Session:
    """A session that configured (optionally), subscribed and authorized WORKER; output drained."""
    session = Session(config or SessionConfig(), EN1)
    if configure is not None:
        session.receive_data(req(0, "mining.configure", [list(configure["extensions"]), configure["params"]]))
    if extranonce_subscribe:
        session.receive_data(req(0, "mining.extranonce.subscribe", []))
    session.receive_data(req(1, "mining.subscribe", ["test/1.0"]) + req(2, "mining.authorize", [WORKER, "x"]))
    session.data_to_send()
    return session


def rolling(mask: str = "1fffe000", **extra) -> dict:
    return {"extensions": ["version-rolling"], "params": {"version-rolling.mask": mask, **extra}}
