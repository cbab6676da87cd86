"""Refused logins with bytes only: a connection guessing passwords is closed after a few,
and every refusal names its reason (credentials, this connection's worker limit, the address's)."""

from __future__ import annotations

from fleetd.stratum.auth import PasswordAuthorization
from fleetd.stratum.events import AuthorizationRefused, Authorized, ConnectionClosed
from fleetd.stratum.session import TOO_MANY_AUTH_FAILURES, Session, SessionConfig
from stratum_support import EN1, err, ok, replies, req

UNAUTHORIZED = (24, "Unauthorized worker")


def password_session(**config) -> Session:
    return Session(SessionConfig(authorizer=PasswordAuthorization({"acct": "s3cret"}), **config), EN1)


def test_closed_after_max_auth_failures_with_every_reply_sent():
    s = password_session(max_auth_failures=3)
    data = b"".join(req(i, "mining.authorize", [f"acct.{i}", "guess"]) for i in range(1, 6))
    events = s.receive_data(data)
    assert replies(s) == [err(i, *UNAUTHORIZED) for i in (1, 2, 3)]  # nothing after the third
    assert events == [
        AuthorizationRefused("acct.1"),
        AuthorizationRefused("acct.2"),
        AuthorizationRefused("acct.3"),
        ConnectionClosed(TOO_MANY_AUTH_FAILURES, "3 refused logins"),
    ]
    assert s.closed and s.close_reason == TOO_MANY_AUTH_FAILURES
    assert s.auth_failures == 3
    assert s.receive_data(req(9, "mining.authorize", ["acct.9", "s3cret"])) == []


def test_failures_count_across_reads_and_a_success_does_not_reset_them():
    s = password_session(max_auth_failures=2)
    s.receive_data(req(1, "mining.authorize", ["acct.a", "wrong"]))
    assert not s.closed
    s.receive_data(req(2, "mining.authorize", ["acct.a", "s3cret"]))
    assert s.authorized_workers == {"acct.a"}
    events = s.receive_data(req(3, "mining.authorize", ["acct.b", "wrong"]))
    assert events[-1] == ConnectionClosed(TOO_MANY_AUTH_FAILURES, "2 refused logins")


def test_worker_limits_refuse_with_their_reason_and_never_close():
    s = password_session(max_workers=2, max_auth_failures=1)
    allowed = {"acct.a", "acct.b"}
    s.worker_gate = lambda worker: worker in allowed  # the driver's per-address limit
    names = ["acct.a", "acct.c", "acct.b", "acct.d", "acct.a"]
    events = s.receive_data(b"".join(req(i, "mining.authorize", [n, "s3cret"]) for i, n in enumerate(names)))
    assert events == [
        Authorized("acct.a"),
        AuthorizationRefused("acct.c", "max_workers_per_ip"),
        Authorized("acct.b"),
        AuthorizationRefused("acct.d", "max_workers"),
        Authorized("acct.a"),  # a name it holds already: no limit asked
    ]
    assert replies(s) == [ok(0), err(1, *UNAUTHORIZED), ok(2), err(3, *UNAUTHORIZED), ok(4)]
    assert not s.closed and s.auth_failures == 0


def test_accepted_submits_are_counted_for_the_driver():
    s = password_session()
    assert s.accepted_submits == 0
    s.accept_submit(7)
    assert s.accepted_submits == 1 and replies(s) == [ok(7)]
