"""Bad input: line limits, TLS and HTTP on the Stratum port, garbage, arbitrary bytes, chunking."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetd.stratum.events import BadRequest, ConnectionClosed, SubmitReceived, SubmitRejected
from fleetd.stratum.framing import CloseReason, LineFramer
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from stratum_support import EN1, WORKER, err, job, logged_in, replies, req, submit

# A ClientHello as bfgminer's TLS layer starts it: record type 22, TLS 1.0 record version.
CLIENT_HELLO = bytes.fromhex("160301020001000" + "1fc0303") + bytes(range(32)) + b"\x20" + bytes(32)
PING = b'{"id":1,"method":"mining.ping","params":[]}\n'
PONG = b'{"id":1,"result":"pong","error":null}\n'


def closed_with(session: Session, events: list, reason: CloseReason) -> None:
    assert session.closed and session.close_reason == reason
    assert isinstance(events[-1], ConnectionClosed) and events[-1].reason == reason


def padded_ping(length: int) -> bytes:
    """A valid request line of exactly ``length`` bytes (newline not counted)."""
    base = b'{"id":1,"method":"mining.ping","params":[""]}'
    line = base[:-3] + b"x" * (length - len(base)) + base[-3:]
    assert len(line) == length
    return line


# --- line length ------------------------------------------------------------------------


def test_line_of_exactly_the_limit_is_accepted():
    s = Session(SessionConfig(), EN1)
    assert s.receive_data(padded_ping(16 * 1024) + b"\n") == []
    assert s.data_to_send() == PONG and not s.closed


def test_complete_line_over_the_limit_closes():
    s = Session(SessionConfig(), EN1)
    events = s.receive_data(PING + padded_ping(16 * 1024 + 1) + b"\n" + PING)
    closed_with(s, events, CloseReason.LINE_TOO_LONG)
    assert s.data_to_send() == PONG  # the line before it was answered, the one after not


def test_partial_line_over_the_limit_closes_without_waiting_for_newline():
    s = Session(SessionConfig(), EN1)
    assert s.receive_data(b"{" + b" " * (16 * 1024 - 1)) == []
    assert not s.closed
    events = s.receive_data(b" ")
    closed_with(s, events, CloseReason.LINE_TOO_LONG)
    assert s.receive_data(b"}\n") == []


def test_line_limit_is_configurable():
    s = Session(SessionConfig(max_line_bytes=1024), EN1)
    s.receive_data(padded_ping(1024) + b"\n")
    assert s.data_to_send() == PONG
    events = s.receive_data(b"[" * 1025)
    closed_with(s, events, CloseReason.LINE_TOO_LONG)


def test_long_blank_line_is_still_too_long():
    s = Session(SessionConfig(max_line_bytes=64), EN1)
    closed_with(s, s.receive_data(b" " * 65 + b"\n"), CloseReason.LINE_TOO_LONG)


# --- things that are not Stratum -------------------------------------------------------------


def test_tls_client_hello_closes_at_once():
    s = Session(SessionConfig(), EN1)
    events = s.receive_data(CLIENT_HELLO)
    closed_with(s, events, CloseReason.TLS_HANDSHAKE)
    assert events == [ConnectionClosed(CloseReason.TLS_HANDSHAKE, "line starts with byte 0x16")]
    assert s.data_to_send() == b""


def test_tls_first_byte_alone_is_enough():
    s = Session(SessionConfig(), EN1)
    closed_with(s, s.receive_data(b"\x16"), CloseReason.TLS_HANDSHAKE)


@pytest.mark.parametrize(
    "request_line",
    [b"GET / HTTP/1.1\r\nHost: pool\r\n\r\n", b"POST /api HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"G"],
)
def test_http_request_closes(request_line):
    s = Session(SessionConfig(), EN1)
    closed_with(s, s.receive_data(request_line), CloseReason.HTTP_REQUEST)
    assert s.data_to_send() == b""


def test_http_after_a_valid_request_closes_too():
    s = Session(SessionConfig(), EN1)
    closed_with(s, s.receive_data(PING + b"GET / HTTP/1.1\r\n"), CloseReason.HTTP_REQUEST)
    assert s.data_to_send() == PONG


@pytest.mark.parametrize("data", [b"\x00\x01\x02", b"\xff\xfe", b"\x80abc\n", b"<xml/>\n", b"}\n", b"\xef\xbb\xbf{}\n"])
def test_binary_closes(data):
    s = Session(SessionConfig(), EN1)
    closed_with(s, s.receive_data(data), CloseReason.NOT_JSON)


def test_broken_json_closes_at_the_newline():
    s = Session(SessionConfig(), EN1)
    assert s.receive_data(b'{"id":1,"method":"mining.ping",\xff') == []
    assert not s.closed  # might still be JSON until the line ends
    closed_with(s, s.receive_data(b"}\n"), CloseReason.INVALID_JSON)


# Balanced but too deep is no longer fatal: test_nesting.py; unbalanced and deep still is.
@pytest.mark.parametrize("line", [b'{"id":1', b"tru", b"[1,]", b'"unterminated', b"[" * 2000 + b"]" * 1999])
def test_invalid_json_lines_close(line):
    s = Session(SessionConfig(), EN1)
    closed_with(s, s.receive_data(line + b"\n"), CloseReason.INVALID_JSON)


def test_blank_lines_and_crlf_are_tolerated():
    s = Session(SessionConfig(), EN1)
    s.receive_data(b"\n\r\n  \t\n" + PING[:-1] + b"\r\n\n" + PING)
    assert s.data_to_send() == PONG + PONG and not s.closed


# --- malformed requests and the garbage count ------------------------------------------------


@pytest.mark.parametrize(
    ("line", "request_id"),
    [
        (b"123", None),
        (b"[]", None),
        (b'[{"id":1,"method":"mining.ping"}]', None),  # batches are not Stratum
        (b'"mining.ping"', None),
        (b"null", None),
        (b'{"id":true,"method":"mining.ping"}', None),
        (b'{"id":{"a":1},"method":"mining.ping"}', None),
        (b'{"id":[1],"method":"mining.ping"}', None),
        (b'{"id":4}', 4),
        (b'{"id":4,"method":7}', 4),
        (b'{"id":4,"method":null,"params":[]}', 4),
        (b'{"id":4,"method":"mining.ping","params":{"a":1}}', 4),
        (b'{"id":4,"method":"mining.subscribe","params":"x"}', 4),
    ],
)
def test_malformed_request_gets_error_20(line, request_id):
    s = Session(SessionConfig(), EN1)
    events = s.receive_data(line + b"\n")
    assert replies(s) == [err(request_id, 20, "Malformed request")]
    assert len(events) == 1 and isinstance(events[0], BadRequest) and events[0].reject is Reject.MALFORMED
    assert not s.closed


def test_consecutive_garbage_closes_after_the_configured_count():
    s = Session(SessionConfig(max_bad_requests=3), EN1)
    s.receive_data(b"1\n" b'{"id":2,"method":"nope"}\n')
    assert not s.closed
    s.receive_data(PING)  # a good request resets the count
    s.receive_data(b"1\n2\n")
    assert not s.closed
    events = s.receive_data(b"3\n" + PING)
    closed_with(s, events, CloseReason.TOO_MANY_BAD_REQUESTS)
    assert [type(e) for e in events] == [BadRequest, ConnectionClosed]
    out = replies(s)
    assert out[-1] == err(None, 20, "Malformed request")  # the last error is still delivered
    assert out.count({"id": 1, "result": "pong", "error": None}) == 1  # the ping after it is not


def test_default_garbage_limit_is_ten():
    s = Session(SessionConfig(), EN1)
    s.receive_data(b"0\n" * 9)
    assert not s.closed
    closed_with(s, s.receive_data(b"0\n"), CloseReason.TOO_MANY_BAD_REQUESTS)


def test_malformed_submits_count_as_garbage_and_report_rejects():
    s = logged_in(SessionConfig(max_bad_requests=2))
    events = s.receive_data(req(5, "mining.submit", [WORKER, "j", "zz", "x", "y"]) * 2)
    assert [type(e) for e in events] == [SubmitRejected, SubmitRejected, ConnectionClosed]
    assert events[0] == SubmitRejected(5, WORKER, "j", Reject.MALFORMED)


def test_miner_replies_neither_count_nor_reset():
    s = Session(SessionConfig(max_bad_requests=2), EN1)
    s.receive_data(b'0\n{"id":9,"result":true,"error":null}\n')
    assert not s.closed
    assert s.receive_data(b"0\n")[-1].reason == CloseReason.TOO_MANY_BAD_REQUESTS


# --- chunking never changes the outcome ------------------------------------------------------

CONVERSATION = b"".join(
    [
        b'{"id":0,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],'
        b'{"version-rolling.mask":"ffffffff","minimum-difficulty.value":0.5}]}\r\n',
        b"\n",
        req(1, "mining.subscribe", ["cpuminer/2.5.1"]),
        req(2, "mining.authorize", [WORKER, "x"]),
        req(3, "mining.suggest_difficulty", [0.00015]),
        b'{"id":7,"result":"ok","error":null}\n',
        submit(4, bits="00002000"),
        submit(5, job_id="old"),
        submit(6, en2="00"),
        submit(7, bits="80000000"),
        req(8, "mining.unknown", []),
        b"42\n",
        req(9, "mining.extranonce.subscribe", []),
        req("ten", "mining.ping", []),
        submit(11, worker="acct.other"),
        submit(12, nonce="zzzzzzzz"),
        b'{"id":13,"method":"mining.ping","params":[]}\n',
    ]
)


def driven(chunks: list[bytes], config: SessionConfig | None = None) -> tuple[list, bytes, str | None]:
    s = Session(config or SessionConfig(), EN1)
    s.set_difficulty(2)
    s.send_job(job("old"))
    s.send_job(job("j1", clean=True))
    s.data_to_send()
    events, out = [], []
    for chunk in chunks:
        events += s.receive_data(chunk)
        out.append(s.data_to_send())
    return events, b"".join(out), s.close_reason


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def test_byte_at_a_time_equals_whole_conversation():
    whole = driven([CONVERSATION])
    assert whole == driven([bytes([b]) for b in CONVERSATION])
    events, out, reason = whole
    assert reason is None
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "MinimumDifficultyRequested", "Subscribed", "Authorized", "DifficultySuggested",
        "SubmitReceived", "SubmitReceived", "SubmitRejected", "SubmitRejected", "BadRequest",
        "BadRequest", "SubmitRejected", "SubmitRejected",
    ]
    assert [e.reject.reason for e in events if type(e) is SubmitRejected] == [
        "bad_extranonce2_size", "version_bits_outside_mask", "unauthorized", "malformed",
    ]
    # the stale job goes to the pool core, which knows it from the job store
    assert [e.job is None for e in events if type(e) is SubmitReceived] == [False, True]
    # every request answered except the two submits awaiting the pool core, and the
    # suggestion put in force at once: set_difficulty and the current job again
    assert out.count(b"\n") == 13 + 2


@settings(max_examples=300)
@given(st.lists(st.integers(0, len(CONVERSATION)), max_size=40))
def test_any_split_of_a_conversation_equals_whole(cuts):
    assert driven(split_at(CONVERSATION, cuts)) == driven([CONVERSATION])


GARBAGE_PIECES = [
    PING,
    b"\r\n",
    b"\n",
    b"   \n",
    b"7\n",
    b'{"id":2,"method":"nope"}\n',
    b'{"id":3,"result":null,"error":null}\n',
    submit(4),
    submit(5, job_id="old"),
    b'{"id":1,"meth',
    b"GET / HTTP/1.1\r\n",
    b"\x16\x03\x01",
    b"\xff\x00",
    b'{"broken":\n',
    b"{" + b" " * 300,
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(GARBAGE_PIECES), max_size=25), st.data())
def test_any_split_of_any_mixture_equals_whole(pieces, data):
    stream = b"".join(pieces)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    config = SessionConfig(max_line_bytes=256, max_bad_requests=4)
    whole = driven([stream], config)
    assert driven(split_at(stream, cuts), config) == whole
    assert driven([bytes([b]) for b in stream], config) == whole


# --- nothing escapes, whatever arrives ----------------------------------------------------------


def assert_sane(session: Session, events: list) -> list[bytes]:
    """Output is JSON lines, no bug was hidden by the safety net; returns the lines."""
    out = session.data_to_send()
    lines = out[:-1].split(b"\n") if out else []
    assert not out or out.endswith(b"\n")
    for line in lines:
        orjson.loads(line)
    assert session.close_reason != CloseReason.INTERNAL_ERROR, events
    assert sum(isinstance(e, ConnectionClosed) for e in events) == (1 if session.closed else 0)
    return lines


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes_never_raise(chunks):
    s = logged_in(SessionConfig(max_line_bytes=512))
    s.send_job(job("j1"))
    events = []
    for chunk in chunks:
        events += s.receive_data(chunk)
    assert_sane(s, events)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
METHODS = st.sampled_from(
    ["mining.submit", "mining.subscribe", "mining.authorize", "mining.configure", "mining.suggest_difficulty",
     "mining.extranonce.subscribe", "mining.ping", "client.get_version"]
)
HEXISH = st.text("0123456789abcdefABCDEFxg -", max_size=18)


@settings(max_examples=500)
@given(
    st.lists(
        st.one_of(
            JSON,
            st.fixed_dictionaries({"id": JSON, "method": METHODS, "params": JSON}),
            st.fixed_dictionaries({"id": st.integers(-(2**63), 2**64 - 1), "method": METHODS, "params": st.lists(JSON | HEXISH, max_size=7)}),
            st.fixed_dictionaries(
                {"id": st.integers(-(2**63), 2**64 - 1), "method": st.just("mining.submit"),
                 "params": st.tuples(st.sampled_from([WORKER, "x"]), st.sampled_from(["j1", "old", "?"]),
                                     HEXISH, HEXISH, HEXISH, HEXISH).map(list)}
            ),
        ),
        max_size=12,
    )
)
def test_arbitrary_json_requests_never_raise(messages):
    s = logged_in(SessionConfig(allow_version_bits_without_configure=True))
    s.send_job(job("j1"))
    s.data_to_send()
    events = s.receive_data(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    lines = assert_sane(s, events)
    if not s.closed:
        # one answer per message, except the miner's own replies and submits left to the validator
        ignored = sum(type(m) is dict and m.get("method") is None and ("result" in m or "error" in m) for m in messages)
        passed = sum(type(e) is SubmitReceived for e in events)
        # a difficulty change also sends set_difficulty and the job again: notifications, not answers
        answers = [line for line in lines if orjson.loads(line).get("method") is None]
        assert len(answers) == len(messages) - ignored - passed


def test_framer_reports_first_error_only_once():
    framer = LineFramer(64)
    assert framer.feed(b'{"a":1}\n{"b":2}\nGET') == [{"a": 1}, {"b": 2}]
    assert framer.error == (CloseReason.HTTP_REQUEST, "line starts with byte 0x47")
    assert framer.feed(b'{"c":3}\n') == []
