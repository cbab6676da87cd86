"""The client role of the sans-IO Stratum core, driven with bytes only (in the manner of h11's tests).

Most tests wire a ``ClientSession`` to fleetd's own server-role ``Session`` and move the
bytes between them, so each side checks the other.
"""

from __future__ import annotations

import orjson
import pytest

from fleetd.stratum import messages
from fleetd.stratum.client import (
    AuthorizeAnswered,
    ClientConfig,
    ClientSession,
    DifficultyChanged,
    ExtranonceChanged,
    JobNotified,
    MessageShown,
    PoolClosed,
    PoolSubscribed,
    ReconnectRequested,
    SubmitAnswered,
    VersionMaskChanged,
    VersionRollingAnswered,
    reject_reason,
)
from fleetd.stratum.events import Authorized, SubmitReceived, Subscribed
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from upstream_support import make_job

EN1 = bytes.fromhex("cafe0001")


def pair(client_config: ClientConfig = ClientConfig(), **server_options) -> tuple[ClientSession, Session]:
    return ClientSession(client_config), Session(SessionConfig(**server_options), EN1)


def exchange(client: ClientSession, server: Session) -> tuple[list, list]:
    """Client bytes to the server, the server's answers back; (server events, client events)."""
    server_events = server.receive_data(client.data_to_send())
    return server_events, client.receive_data(server.data_to_send())


def test_login_negotiates_rolling_subscribes_and_authorizes():
    client, server = pair()
    client.login("acct", "pw")
    server_events, events = exchange(client, server)
    assert [type(e) for e in server_events] == [Subscribed, Authorized]
    assert server.extranonce_subscribed and server.version_mask == 0x1FFFE000
    assert events == [
        VersionRollingAnswered(0x1FFFE000),
        PoolSubscribed(EN1, 8),
        AuthorizeAnswered("acct", True, ""),
    ]
    assert (client.extranonce1, client.extranonce2_size, client.version_mask) == (EN1, 8, 0x1FFFE000)
    assert client.pending() == 0


def test_login_without_rolling_sends_no_configure():
    client, server = pair(ClientConfig(version_mask=None, extranonce_subscribe=False))
    client.login("acct", "")
    sent = [orjson.loads(line)["method"] for line in client.data_to_send().splitlines()]
    assert sent == ["mining.subscribe", "mining.authorize"]


def test_the_pool_mask_is_cut_to_the_bits_we_asked_for():
    client, server = pair(ClientConfig(version_mask=0x00FFE000), version_mask=0x1FFFE000)
    client.login("acct", "")
    _, events = exchange(client, server)
    assert events[0] == VersionRollingAnswered(0x00FFE000)
    server.set_version_mask(0x1E000000)  # BIP310: the pool may change it later
    assert client.receive_data(server.data_to_send()) == [VersionMaskChanged(0x1E000000 & 0x00FFE000)]


def test_jobs_and_difficulty_arrive_as_the_server_sent_them():
    client, server = pair()
    client.login("acct", "")
    exchange(client, server)
    job = make_job("j7")
    server.set_difficulty(0.5)
    server.send_job(job)
    events = client.receive_data(server.data_to_send())
    assert events == [DifficultyChanged(0.5), JobNotified(job)]  # byte order round-trips exactly
    assert client.difficulty == 0.5


def test_a_submit_reaches_the_server_intact_and_its_answers_are_classified():
    client, server = pair()
    client.login("acct", "")
    exchange(client, server)
    job = make_job("j1")
    server.send_job(job)
    client.receive_data(server.data_to_send())

    first = client.submit("acct", "j1", bytes(8), job.ntime, 0xDEADBEEF, 0x00002000)
    second = client.submit("acct", "j1", b"\x01" * 8, job.ntime, 7)
    submits = [e for e in server.receive_data(client.data_to_send()) if isinstance(e, SubmitReceived)]
    assert [(s.extranonce2, s.nonce, s.version_bits, s.version) for s in submits] == [
        (bytes(8), 0xDEADBEEF, 0x2000, job.version | 0x2000),
        (b"\x01" * 8, 7, None, job.version),
    ]
    server.accept_submit(submits[0].request_id)
    server.reject_submit(submits[1].request_id, Reject.DUPLICATE)
    assert client.receive_data(server.data_to_send()) == [
        SubmitAnswered(first, True, "accepted", None, ""),
        SubmitAnswered(second, False, "duplicate", 22, "Duplicate share"),
    ]


@pytest.mark.parametrize("reject", list(Reject))
def test_every_fleetd_reject_comes_back_as_its_own_reason(reject):
    assert reject_reason(reject.code, reject.message) == reject.reason


@pytest.mark.parametrize(
    ("code", "message", "result", "reason"),
    [
        (21, "Stale share", None, "stale"),
        (21, "Job not found (=stale)", None, "stale"),
        (21, "job gone", None, "unknown_job"),
        (23, "Share above target", None, "low_difficulty"),
        (20, "some words a pool made up", None, "other"),
        (None, "", False, "rejected"),  # ckpool: result false, no error
        (99, "x" * 300, None, "other"),  # never the pool's text: it must not mint label values
    ],
)
def test_other_pools_rejects_map_to_a_bounded_set(code, message, result, reason):
    assert reject_reason(code, message, result) == reason


def test_set_extranonce_reconnect_message_and_ping():
    client, server = pair()
    client.login("acct", "")
    exchange(client, server)
    server.set_extranonce(bytes.fromhex("beef"), 6)
    server.reconnect("127.0.0.1", 3334, 5)
    server.show_message("maintenance at noon")
    events = client.receive_data(server.data_to_send())
    assert events == [
        ExtranonceChanged(bytes.fromhex("beef"), 6),
        ReconnectRequested("127.0.0.1", 3334, 5.0),
        MessageShown("maintenance at noon"),
    ]
    assert client.receive_data(b'{"id":null,"method":"client.reconnect","params":[]}\n') == [
        ReconnectRequested(None, None, 0.0)
    ]
    assert client.receive_data(b'{"id":"p1","method":"mining.ping","params":[]}\n') == []
    assert orjson.loads(client.data_to_send()) == {"id": "p1", "result": "pong", "error": None}


def test_refusals_at_login():
    client = ClientSession()
    client.login("acct", "bad")
    # configure 1, subscribe 2, extranonce.subscribe 3, authorize 4
    events = client.receive_data(
        b'{"id":1,"result":{"version-rolling":false},"error":null}\n'
        b'{"id":2,"result":[[],"00aa",4],"error":null}\n'
        b'{"id":3,"result":null,"error":[20,"Unknown method",null]}\n'
        b'{"id":4,"result":null,"error":[24,"Unauthorized worker",null]}\n'
    )
    assert events == [
        VersionRollingAnswered(None),
        PoolSubscribed(b"\x00\xaa", 4),
        AuthorizeAnswered("acct", False, "24: Unauthorized worker"),
    ]
    refused = ClientSession(ClientConfig(version_mask=None))
    refused.login("acct", "")
    assert refused.receive_data(b'{"id":1,"result":null,"error":[20,"go away",null]}\n') == [
        PoolClosed("subscribe_refused", "20: go away")
    ]
    assert refused.closed and refused.receive_data(b'{"id":3,"result":true,"error":null}\n') == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "tls_handshake"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "http_request"),
        (b"{not json}\n", "invalid_json"),
        (b"[1,2,3]\n", "bad_message"),
        (b'{"id":null,"method":"mining.notify","params":["x","zz",1]}\n', "bad_message"),
        (b'{"id":null,"method":"mining.set_difficulty","params":[-1]}\n', "bad_message"),
        (b'{"id":null,"method":"mining.set_extranonce","params":["xyz",4]}\n', "bad_message"),
        (b"{" + b"1" * 70_000, "line_too_long"),
    ],
)
def test_garbage_ends_the_session(data, reason):
    client = ClientSession()
    client.login("acct", "")
    events = client.receive_data(data)
    assert len(events) == 1 and isinstance(events[0], PoolClosed) and events[0].reason == reason
    assert client.closed


def test_unknown_replies_and_notifications_are_ignored_and_unknown_requests_answered():
    client = ClientSession()
    assert client.receive_data(b'{"id":77,"result":true,"error":null}\n') == []
    assert client.receive_data(b'{"id":null,"method":"mining.something_new","params":[1]}\n') == []
    assert client.receive_data(b'{"id":9,"method":"client.get_version","params":[]}\n') == []
    assert orjson.loads(client.data_to_send())["error"][0] == 20
    assert not client.closed


def test_a_notify_line_split_anywhere_gives_the_same_job():
    job = make_job("split")
    line = messages.notify(job)
    for cut in range(1, len(line)):
        client = ClientSession()
        events = client.receive_data(line[:cut]) + client.receive_data(line[cut:])
        assert events == [JobNotified(job)]
