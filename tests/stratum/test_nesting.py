"""Deep nesting is refused before parsing: a line nested deeper than the framer's limit is
one malformed request, answered with error 20, and the connection goes on."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetd.stratum.events import ConnectionClosed, SubmitReceived
from fleetd.stratum.framing import DEFAULT_MAX_DEPTH, CloseReason, LineFramer, TooDeep
from fleetd.stratum.session import Session, SessionConfig
from stratum_support import job, logged_in, replies, req, submit

PING = b'{"id":99,"method":"mining.ping","params":[]}\n'
PONG = {"id": 99, "result": "pong", "error": None}


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def deep_submit(request_id: int, depth: int) -> bytes:
    return b'{"id":%d,"method":"mining.submit","params":["acct.rig1","j1",%s,"66000000","0000abcd"]}\n' % (
        request_id, nested(depth),
    )


def malformed(reply: dict, request_id: object) -> bool:
    # the id the framer recovered from before the nesting
    return reply["error"][:2] == [20, "Malformed request"] and reply["id"] == request_id


# -- the framer ------------------------------------------------------------------------------


def test_the_limit_itself_parses_and_one_level_more_is_too_deep():
    line = b'{"id":3,"method":"mining.ping","params":%s}\n'  # the line's own object is a level
    assert LineFramer().feed(line % nested(DEFAULT_MAX_DEPTH - 1)) == [orjson.loads(line % nested(DEFAULT_MAX_DEPTH - 1))]
    assert LineFramer().feed(line % nested(DEFAULT_MAX_DEPTH)) == [TooDeep(3)]


def test_the_id_is_recovered_where_it_comes_before_the_nesting():
    deep = nested(100)
    framer = LineFramer()
    lines = [
        b'{"id":"a7","method":"mining.configure","params":[%s]}' % deep,
        b' { "jsonrpc" : "2.0" , "id" : 12 , "params" : %s }' % deep,
        b'{"method":"mining.submit","params":%s,"id":4}' % deep,  # after it: not read
        b'{"id":true,"params":%s}' % deep,  # not an id JSON-RPC allows
        b'{"x":"\\"id\\":5","params":%s}' % deep,  # inside a string is no id
    ]
    assert framer.feed(b"\n".join(lines) + b"\n") == [TooDeep("a7"), TooDeep(12), TooDeep(None), TooDeep(None),
                                                      TooDeep(None)]  # fmt: skip
    assert framer.error is None


def test_brackets_inside_strings_do_not_count():
    name = "acct." + "[{" * 40 + '\\"' + "]}" * 40
    line = orjson.dumps({"id": 1, "method": "mining.authorize", "params": [name, "x"]}) + b"\n"
    assert LineFramer().feed(line) == [orjson.loads(line)]


def test_objects_nest_like_arrays():
    value = b'{"a":' * 40 + b"1" + b"}" * 40
    assert LineFramer().feed(b'{"id":8,"params":[%s]}\n' % value) == [TooDeep(8)]


def test_fatal_verdicts_are_kept_for_deep_lines():
    unbalanced = LineFramer()
    assert unbalanced.feed(b'{"id":1,"params":' + b"[" * 2000 + b"}\n") == []
    assert unbalanced.error[0] == CloseReason.INVALID_JSON
    too_long = LineFramer(max_line_bytes=1024)
    assert too_long.feed(b'{"id":1,"params":%s}\n' % nested(600)) == []
    assert too_long.error[0] == CloseReason.LINE_TOO_LONG
    binary = LineFramer()
    assert binary.feed(b"\x16" + nested(100) + b"\n") == []
    assert binary.error[0] == CloseReason.TLS_HANDSHAKE


def test_the_verdict_does_not_depend_on_chunking():
    data = deep_submit(5, 500) + PING
    whole = LineFramer().feed(data)
    framer, pieces = LineFramer(), []
    for i in range(len(data)):
        pieces += framer.feed(data[i : i + 1])
    assert pieces == whole == [TooDeep(5), orjson.loads(PING)]


# -- the session -----------------------------------------------------------------------------


def test_deep_submit_and_configure_fields_get_error_20_and_the_connection_stays():
    for depth in (DEFAULT_MAX_DEPTH + 1, 988, 1025, 5000):
        session = logged_in()
        session.send_job(job())
        session.data_to_send()
        configure = b'{"id":6,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":%s}]}\n'
        events = session.receive_data(deep_submit(5, depth) + configure % nested(depth) + PING)
        assert not any(type(e) is ConnectionClosed for e in events) and not session.closed
        first, second, pong = replies(session)
        assert malformed(first, 5) and malformed(second, 6) and pong == PONG
        assert [type(e) for e in session.receive_data(submit(7))] == [SubmitReceived]  # still mining


def test_deep_lines_count_toward_the_garbage_limit():
    session = Session(SessionConfig(max_bad_requests=3), bytes(4))
    events = session.receive_data(deep_submit(1, 100) * 2)
    assert not session.closed
    session.receive_data(PING)  # a good request in between starts the count again
    events = session.receive_data(deep_submit(1, 100) * 3)
    assert session.closed and session.close_reason == CloseReason.TOO_MANY_BAD_REQUESTS
    assert type(events[-1]) is ConnectionClosed


# Deep values of mixed arrays and objects, with siblings, whitespace and strings full of brackets.
_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
    st.text(alphabet='[]{}"\\ ab,:', max_size=8),
)  # fmt: skip


@st.composite
def deep_values(draw) -> bytes:
    depth = draw(st.integers(DEFAULT_MAX_DEPTH + 1, 1500))
    value = orjson.dumps(draw(_scalars))
    shapes = draw(st.lists(st.sampled_from(["list", "object", "sibling"]), min_size=1, max_size=4))
    space = draw(st.sampled_from([b"", b" ", b"\t"]))
    for level in range(depth):
        shape = shapes[level % len(shapes)]
        if shape == "list":
            value = b"[" + space + value + b"]"
        elif shape == "object":
            value = b'{"k%d"' % level + space + b":" + value + b"}"
        else:
            value = b"[" + orjson.dumps(draw(_scalars)) + b"," + space + value + b"]"
    return value


@settings(max_examples=60, deadline=None)
@given(value=deep_values(), where=st.sampled_from(["submit", "configure_extensions", "configure_params"]),
       slot=st.integers(0, 4), request_id=st.integers(0, 2**31))  # fmt: skip
def test_hypothesis_deep_fields_get_an_error_reply_and_a_ping_after_is_answered(value, where, slot, request_id):
    session = logged_in()
    if where == "submit":
        params = [b'"acct.rig1"', b'"j1"', b'"00"', b'"66000000"', b'"0000abcd"']
        params[slot] = value
        line = b'{"id":%d,"method":"mining.submit","params":[%s]}\n' % (request_id, b",".join(params))
    elif where == "configure_extensions":
        line = b'{"id":%d,"method":"mining.configure","params":[%s,{}]}\n' % (request_id, value)
    else:
        line = b'{"id":%d,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":%s}]}\n' % (
            request_id, value,
        )
    events = session.receive_data(line + PING)
    if len(line) > session.config.max_line_bytes + 1:
        return  # over the line limit: that verdict, not this one
    assert not session.closed, events
    reply, pong = replies(session)
    assert malformed(reply, request_id) and pong == PONG
