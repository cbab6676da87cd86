"""Every client method, driven with bytes, asserting the exact replies and events."""

from __future__ import annotations

import pytest

from fleetd.stratum.auth import AllowListAuthorization, PasswordAuthorization
from fleetd.stratum.events import (
    AuthorizationRefused,
    Authorized,
    BadRequest,
    DifficultySuggested,
    MinimumDifficultyRequested,
    Subscribed,
)
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from stratum_support import EN1, WORKER, err, ok, replies, req


def fresh(**config) -> Session:
    return Session(SessionConfig(**config), EN1)


# --- mining.subscribe -----------------------------------------------------------------


def test_subscribe_reply_and_user_agent():
    s = fresh()
    events = s.receive_data(b'{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1"]}\n')
    assert s.data_to_send() == (
        b'{"id":1,"result":[[["mining.set_difficulty","deadbeef"],["mining.notify","deadbeef"]],'
        b'"deadbeef",8],"error":null}\n'
    )
    assert events == [Subscribed("cgminer/4.11.1", None)]
    assert s.subscribed and s.user_agent == "cgminer/4.11.1"


def test_subscribe_with_session_id_and_extra_params_and_no_params():
    s = fresh(extranonce2_size=4)
    events = s.receive_data(req("a", "mining.subscribe", ["bmminer/2.0", "0badf00d", "pool.example", 3333]))
    assert replies(s) == [ok("a", [[["mining.set_difficulty", "deadbeef"], ["mining.notify", "deadbeef"]], "deadbeef", 4])]
    assert events == [Subscribed("bmminer/2.0", "0badf00d")]
    t = fresh()
    assert t.receive_data(b'{"id":7,"method":"mining.subscribe","params":[]}\n') == [Subscribed(None, None)]
    assert replies(t)[0]["result"][1:] == ["deadbeef", 8]


def test_subscribe_user_agent_not_a_string_is_malformed():
    s = fresh()
    events = s.receive_data(req(3, "mining.subscribe", [42]))
    assert replies(s) == [err(3, 20, "Malformed request")]
    assert events == [BadRequest(3, "mining.subscribe", Reject.MALFORMED, "user agent must be a string")]
    assert not s.subscribed


# --- mining.authorize -----------------------------------------------------------------


def test_authorize_open_policy_records_workers():
    s = fresh()
    events = s.receive_data(req(2, "mining.authorize", [WORKER, "x"]) + req(3, "mining.authorize", ["acct.rig2"]))
    assert replies(s) == [ok(2), ok(3)]
    assert events == [Authorized(WORKER), Authorized("acct.rig2")]
    assert s.authorized_workers == {WORKER, "acct.rig2"}
    assert not s.ready  # not subscribed yet
    s.receive_data(req(1, "mining.subscribe", []))
    assert s.ready


def test_authorize_allow_list():
    s = fresh(authorizer=AllowListAuthorization({"acct"}))
    events = s.receive_data(req(1, "mining.authorize", ["acct.a", ""]) + req(2, "mining.authorize", ["other.a", ""]))
    assert replies(s) == [ok(1), err(2, 24, "Unauthorized worker")]
    assert events == [Authorized("acct.a"), AuthorizationRefused("other.a")]
    assert s.authorized_workers == {"acct.a"}


def test_authorize_password_policy():
    s = fresh(authorizer=PasswordAuthorization({"acct": "s3cret"}))
    s.receive_data(
        req(1, "mining.authorize", ["acct.a", "s3cret"])
        + req(2, "mining.authorize", ["acct.b", "wrong"])
        + req(3, "mining.authorize", ["acct.c"])
    )
    assert replies(s) == [ok(1), err(2, 24, "Unauthorized worker"), err(3, 24, "Unauthorized worker")]
    assert s.authorized_workers == {"acct.a"}


def test_authorize_empty_name_refused_and_bad_types_malformed():
    s = fresh()
    s.receive_data(req(1, "mining.authorize", [""]) + req(2, "mining.authorize", [5, "x"]) + req(3, "mining.authorize", []))
    assert replies(s) == [err(1, 24, "Unauthorized worker"), err(2, 20, "Malformed request"), err(3, 20, "Malformed request")]


def test_authorize_worker_limit_per_connection():
    s = fresh(max_workers=2)
    s.receive_data(b"".join(req(i, "mining.authorize", [f"acct.w{i}"]) for i in range(3)) + req(9, "mining.authorize", ["acct.w0"]))
    assert replies(s) == [ok(0), ok(1), err(2, 24, "Unauthorized worker"), ok(9)]


def test_authorize_username_too_long_is_malformed():
    s = fresh(max_username_length=10)
    s.receive_data(req(1, "mining.authorize", ["a" * 11]))
    assert replies(s) == [err(1, 20, "Malformed request")]


# --- mining.configure (BIP310) ---------------------------------------------------------


def configure(s: Session, extensions: list, params: dict, request_id: object = 1) -> tuple[dict, list]:
    events = s.receive_data(req(request_id, "mining.configure", [extensions, params]))
    (reply,) = replies(s)
    assert reply["id"] == request_id and reply["error"] is None
    return reply["result"], events


def test_configure_mask_is_pool_and_requested():
    s = fresh()
    result, events = configure(s, ["version-rolling"], {"version-rolling.mask": "18000000", "version-rolling.min-bit-count": 2})
    assert result == {"version-rolling": True, "version-rolling.mask": "18000000"}
    assert events == [] and s.version_mask == 0x18000000
    s = fresh(version_mask=0x00FFE000)
    result, _ = configure(s, ["version-rolling"], {"version-rolling.mask": "1fffe000"})
    assert result == {"version-rolling": True, "version-rolling.mask": "00ffe000"}


def test_configure_bitaxe_full_mask_request_gets_pool_mask():
    s = fresh()
    s.receive_data(b'{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}\n')
    assert s.data_to_send() == b'{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}\n'
    assert s.version_mask == 0x1FFFE000


def test_configure_without_mask_defaults_to_full_mask():
    s = fresh()
    result, _ = configure(s, ["version-rolling"], {})
    assert result == {"version-rolling": True, "version-rolling.mask": "1fffe000"}


def test_configure_min_bit_count_not_met_refuses_rolling():
    s = fresh()
    # 0x00006000 & 0x1fffe000 has 2 bits; the miner needs 3.
    result, _ = configure(s, ["version-rolling"], {"version-rolling.mask": "00006000", "version-rolling.min-bit-count": 3})
    assert result == {"version-rolling": False}
    assert s.version_mask is None
    result, _ = configure(s, ["version-rolling"], {"version-rolling.mask": "00006000", "version-rolling.min-bit-count": 2})
    assert result == {"version-rolling": True, "version-rolling.mask": "00006000"}


def test_configure_disjoint_mask_refuses_rolling():
    s = fresh()
    result, _ = configure(s, ["version-rolling"], {"version-rolling.mask": "e0000000"})
    assert result == {"version-rolling": False}


def test_configure_unreadable_mask_refuses_rolling_only():
    s = fresh()
    result, _ = configure(s, ["version-rolling", "subscribe-extranonce"], {"version-rolling.mask": "xyz"})
    assert result == {"version-rolling": False, "subscribe-extranonce": True}
    assert s.extranonce_subscribed


def test_configure_unknown_extensions_are_false_not_errors():
    s = fresh()
    result, _ = configure(s, ["info", "some-future-thing", "version-rolling"], {"info.hw-version": "S19"})
    assert result == {"info": False, "some-future-thing": False, "version-rolling": True, "version-rolling.mask": "1fffe000"}


def test_configure_minimum_difficulty_raises_floor_and_emits_event():
    s = fresh(min_difficulty=1, max_difficulty=1e6)
    result, events = configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 2048})
    assert result == {"minimum-difficulty": True}
    assert events == [MinimumDifficultyRequested(2048.0, 2048.0)]
    assert s.minimum_difficulty == 2048.0
    # the session never sends less than the miner's minimum
    assert s.set_difficulty(512) == 2048.0
    assert replies(s) == [{"id": None, "method": "mining.set_difficulty", "params": [2048]}]
    # a minimum above the pool's maximum is capped there
    _, events = configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 1e9})
    assert events == [MinimumDifficultyRequested(1e9, 1e6)]


def test_configure_minimum_difficulty_invalid_value_is_false():
    s = fresh()
    result, events = configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": "lots"})
    assert result == {"minimum-difficulty": False}
    assert events == [] and s.minimum_difficulty is None


def test_configure_bip310_example_request():
    s = fresh()
    s.receive_data(
        b'{"method": "mining.configure", "id": 1, "params": [["minimum-difficulty", "version-rolling"], '
        b'{"minimum-difficulty.value": 2048, "version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}\n'
    )
    assert replies(s) == [ok(1, {"minimum-difficulty": True, "version-rolling": True, "version-rolling.mask": "1fffe000"})]


@pytest.mark.parametrize(
    "params",
    [[], ["version-rolling"], [[1, 2], {}], [["version-rolling"], "mask"], [["a"], {}, "extra"]],
)
def test_configure_malformed_shapes(params):
    s = fresh()
    events = s.receive_data(req(4, "mining.configure", params))
    assert replies(s) == [err(4, 20, "Malformed request")]
    assert [type(e) for e in events] == [BadRequest]


def test_configure_subscribe_extranonce():
    s = fresh()
    result, _ = configure(s, ["subscribe-extranonce"], {})
    assert result == {"subscribe-extranonce": True}
    assert s.extranonce_subscribed


# --- mining.suggest_difficulty ------------------------------------------------------------


def test_suggest_difficulty_float_is_clamped_and_reported():
    s = fresh(min_difficulty=0.001, max_difficulty=65536)
    events = s.receive_data(
        b'{"id":5,"method":"mining.suggest_difficulty","params":[0.00015]}\n'
        b'{"id":6,"method":"mining.suggest_difficulty","params":[1e9]}\n'
        b'{"id":7,"method":"mining.suggest_difficulty","params":[512.5]}\n'
    )
    assert replies(s) == [ok(5), ok(6), ok(7)]
    assert events == [
        DifficultySuggested(0.00015, 0.001),
        DifficultySuggested(1e9, 65536.0),
        DifficultySuggested(512.5, 512.5),
    ]
    assert s.suggested_difficulty == 512.5


def test_suggest_difficulty_respects_miner_minimum():
    s = fresh(min_difficulty=1)
    configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 100})
    assert s.receive_data(req(2, "mining.suggest_difficulty", [10])) == [DifficultySuggested(10.0, 100.0)]


def test_suggestion_is_the_miners_floor_until_the_next_one():
    s = fresh(min_difficulty=1, max_difficulty=1e6)
    configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 100})
    s.receive_data(req(2, "mining.suggest_difficulty", [500]))
    assert s.difficulty == 500.0 and s.difficulty_floor == 500.0
    assert s.set_difficulty(10) == 500.0  # the driver (vardiff) cannot take it lower
    s.receive_data(req(3, "mining.suggest_difficulty", [200]))  # a later suggestion replaces it...
    assert s.set_difficulty(10) == 200.0
    s.receive_data(req(4, "mining.suggest_difficulty", [20]))  # ...never under the BIP310 minimum
    assert s.difficulty_floor == 100.0 and s.set_difficulty(10) == 100.0
    # A BIP310 minimum after a higher suggestion leaves the suggestion the floor.
    s.receive_data(req(5, "mining.suggest_difficulty", [300]))
    replies(s)
    _, events = configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 150}, request_id=6)
    assert events == [MinimumDifficultyRequested(150.0, 300.0)]
    assert s.set_difficulty(10) == 300.0


def test_a_ceiling_holds_the_difficulty_below_it_whatever_the_miner_asks():
    s = fresh(min_difficulty=1, max_difficulty=1e6)
    s.set_ceiling(50.0)  # a proxy's upstream difficulty: work above it would be lost
    configure(s, ["minimum-difficulty"], {"minimum-difficulty.value": 100})
    s.receive_data(req(2, "mining.suggest_difficulty", [500]))
    assert s.difficulty == 50.0 and s.suggested_difficulty == 500.0  # the wish is kept...
    assert s.set_difficulty(800) == 50.0
    s.set_ceiling(None)  # ...and holds again once the cap is lifted
    assert s.set_difficulty(10) == 500.0


@pytest.mark.parametrize("value", [0, -1, "1024", None, True])
def test_suggest_difficulty_invalid_is_malformed(value):
    s = fresh()
    s.receive_data(req(5, "mining.suggest_difficulty", [value]))
    assert replies(s) == [err(5, 20, "Malformed request")]
    assert s.suggested_difficulty is None


# --- small methods -------------------------------------------------------------------


def test_extranonce_subscribe_replies_true():
    s = fresh()
    assert not s.extranonce_subscribed
    assert s.receive_data(b'{"id":3,"method":"mining.extranonce.subscribe","params":[]}\n') == []
    assert s.data_to_send() == b'{"id":3,"result":true,"error":null}\n'
    assert s.extranonce_subscribed


def test_ping_pong():
    s = fresh()
    s.receive_data(b'{"id":"p1","method":"mining.ping","params":[]}\n{"id":9,"method":"mining.ping"}\n')
    assert s.data_to_send() == b'{"id":"p1","result":"pong","error":null}\n{"id":9,"result":"pong","error":null}\n'


def test_unknown_method_is_error_20_not_a_disconnect():
    s = fresh()
    events = s.receive_data(b'{"id":11,"method":"mining.frobnicate","params":["j1"]}\n')
    assert s.data_to_send() == b'{"id":11,"result":null,"error":[20,"Unknown method",null]}\n'
    assert events == [BadRequest(11, "mining.frobnicate", Reject.UNKNOWN_METHOD, "unknown method")]
    assert not s.closed


def test_get_transactions_is_answered_with_an_empty_list():
    s = fresh()
    events = s.receive_data(
        b'{"id":11,"method":"mining.get_transactions","params":["j1"]}\n'
        b'{"id":12,"method":"mining.get_transactions","params":[]}\n'
    )
    assert events == []
    assert s.data_to_send() == b'{"id":11,"result":[],"error":null}\n{"id":12,"result":[],"error":null}\n'


def test_get_transactions_with_every_job_never_drops_the_miner():
    s = fresh(max_bad_requests=3)
    for i in range(20):  # bfgminer asks with every job; far more than the garbage limit
        s.receive_data(req(i, "mining.get_transactions", [f"j{i}"]))
    assert replies(s) == [ok(i, []) for i in range(20)]
    assert not s.closed


def test_get_transactions_with_a_non_string_job_id_is_malformed():
    s = fresh()
    events = s.receive_data(req(5, "mining.get_transactions", [{"job": 1}]))
    assert replies(s) == [err(5, 20, "Malformed request")]
    assert [type(e) for e in events] == [BadRequest]


@pytest.mark.parametrize("method", ["mining.get_txnhashes", "mining.suggest_target", "mining.capabilities"])
def test_unsupported_methods_are_refused_without_counting_as_garbage(method):
    s = fresh(max_bad_requests=3)
    for i in range(10):
        events = s.receive_data(req(i, method, ["00"]))
        assert events == [BadRequest(i, method, Reject.UNSUPPORTED, "unsupported method")]
    assert replies(s) == [err(i, 20, "Method not supported") for i in range(10)]
    assert not s.closed
    # garbage still counts: the limit is reached by bad requests alone
    s.receive_data(b"[]\n[]\n[]\n")
    assert s.closed and s.close_reason == "too_many_bad_requests"


def test_miner_replies_to_server_requests_are_ignored():
    s = fresh()
    events = s.receive_data(
        b'{"id":100,"result":"cgminer/4.11.1","error":null}\n{"id":101,"result":null,"error":[20,"nope",null]}\n'
    )
    assert events == [] and s.data_to_send() == b""
    assert not s.closed


@pytest.mark.parametrize("request_id", [0, -7, 2**63, "abc", "", None, 1.5])
def test_ids_are_echoed_exactly(request_id):
    s = fresh()
    s.receive_data(req(request_id, "mining.ping", []))
    (reply,) = replies(s)
    assert reply == ok(request_id, "pong")
    assert type(reply["id"]) is type(request_id)


def test_missing_id_is_answered_with_null():
    s = fresh()
    s.receive_data(b'{"method":"mining.ping","params":[]}\n')
    assert s.data_to_send() == b'{"id":null,"result":"pong","error":null}\n'
