"""Admission decisions without sockets: limits per address and in total, the connection
bucket, workers per address, growing bans, and rate-limited logging, on a clock the test holds."""

from __future__ import annotations

import pytest

from fleetd.server.admission import (
    BANNED,
    CONNECT_RATE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    Admission,
    AdmissionConfig,
    LogLimiter,
)

T0 = 1_000.0
LOOSE = {"connect_burst_per_ip": 1_000, "connect_rate_per_ip": 1_000.0}


def admit_many(admission: Admission, ip: str, n: int, now: float = T0) -> list[str | None]:
    return [admission.admit(ip, now) for _ in range(n)]


def test_per_address_limit_refuses_only_that_address():
    admission = Admission(AdmissionConfig(max_connections_per_ip=3, **LOOSE))
    assert admit_many(admission, "10.0.0.1", 4) == [None, None, None, MAX_CONNECTIONS_PER_IP]
    assert admission.admit("10.0.0.2", T0) is None
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.1", T0) is None  # a slot came free


def test_total_limit():
    admission = Admission(AdmissionConfig(max_connections=2, **LOOSE))
    assert admission.admit("10.0.0.1", T0) is None
    assert admission.admit("10.0.0.2", T0) is None
    assert admission.admit("10.0.0.3", T0) == MAX_CONNECTIONS
    assert admission.connections == 2


def test_new_connections_per_second_is_a_token_bucket():
    admission = Admission(AdmissionConfig(connect_rate_per_ip=2.0, connect_burst_per_ip=5))
    assert admit_many(admission, "10.0.0.1", 6) == [None] * 5 + [CONNECT_RATE]
    assert admission.admit("10.0.0.9", T0) is None  # another address has its own bucket
    assert admission.admit("10.0.0.1", T0 + 0.4) == CONNECT_RATE  # 0.8 of a token
    assert admission.admit("10.0.0.1", T0 + 0.5) is None  # one token back
    assert admit_many(admission, "10.0.0.1", 3, T0 + 1.5) == [None, None, CONNECT_RATE]
    # Refills stop at the burst: an hour of quiet buys five, not 7200.
    assert admit_many(admission, "10.0.0.1", 6, T0 + 3600) == [None] * 5 + [CONNECT_RATE]


def test_distinct_workers_per_address():
    admission = Admission(AdmissionConfig(max_workers_per_ip=2, **LOOSE))
    admission.admit("10.0.0.1", T0)
    admission.admit("10.0.0.1", T0)
    assert admission.admit_worker("10.0.0.1", "a.1")
    assert admission.admit_worker("10.0.0.1", "a.2")
    assert not admission.admit_worker("10.0.0.1", "a.3")
    assert admission.admit_worker("10.0.0.1", "a.1")  # a name already there, on a second connection
    admission.release("10.0.0.1", ["a.1"])
    assert not admission.admit_worker("10.0.0.1", "a.3")  # a.1 is still held by the other connection
    admission.release("10.0.0.1", ["a.1", "a.2"])
    assert admission.admit_worker("10.0.0.1", "a.3")


def test_failed_logins_ban_an_address_for_a_growing_time_then_are_forgotten():
    config = AdmissionConfig(ban_after_failed_logins=3, ban_seconds=60.0, max_ban_seconds=200.0,
                             ban_forget_seconds=3600.0, **LOOSE)  # fmt: skip
    admission = Admission(config)
    ip, now = "10.0.0.1", T0
    bans = []
    for _ in range(4):
        for _ in range(3):
            assert admission.admit(ip, now) is None
            admission.release(ip)
            bans.append(admission.login_failed(ip, now))
        assert admission.admit(ip, now) == BANNED
        assert admission.admit("10.0.0.2", now) is None  # only the failing address
        admission.release("10.0.0.2")
        assert admission.banned(now) == 1
        ban = bans[-1]
        assert admission.admit(ip, now + ban - 0.001) == BANNED
        now += ban
    assert [b for b in bans if b is not None] == [60.0, 120.0, 200.0, 200.0]  # doubling, capped
    assert bans.count(None) == 8
    # A quiet period: the next ban starts from the first length again.
    now += 3600.0
    assert [admission.login_failed(ip, now) for _ in range(3)] == [None, None, 60.0]


def test_a_successful_login_ends_the_failure_streak():
    admission = Admission(AdmissionConfig(ban_after_failed_logins=3, **LOOSE))
    admission.login_failed("10.0.0.1", T0)
    admission.login_failed("10.0.0.1", T0)
    admission.login_succeeded("10.0.0.1")
    assert admission.login_failed("10.0.0.1", T0) is None
    assert admission.login_failed("10.0.0.1", T0) is None
    assert admission.login_failed("10.0.0.1", T0) == 60.0


def test_prune_forgets_addresses_that_hold_nothing():
    admission = Admission(AdmissionConfig(connect_rate_per_ip=10.0, connect_burst_per_ip=10))
    for i in range(100):
        assert admission.admit(f"10.0.1.{i}", T0) is None
        admission.release(f"10.0.1.{i}")
    admission.admit("10.0.0.1", T0)  # still connected
    admission.login_failed("10.0.0.2", T0)
    admission.prune(T0 + 0.05)
    assert len(admission) == 102  # buckets not full yet: forgetting them would refill them early
    admission.prune(T0 + 1.0)
    assert len(admission) == 2
    admission.prune(T0 + 3600.0)
    assert len(admission) == 1


@pytest.mark.parametrize("key", ["max_connections", "connect_burst_per_ip", "ban_after_failed_logins"])
def test_config_refuses_nonsense(key):
    with pytest.raises(ValueError, match=key):
        AdmissionConfig(**{key: 0})


def test_log_limiter_once_per_window_with_the_count_suppressed():
    limiter = LogLimiter(window=60.0)
    key = ("connection_refused", "10.0.0.1", "banned")
    assert limiter.allow(key, T0) == 0
    assert [limiter.allow(key, T0 + i) for i in range(1, 50)] == [None] * 49
    assert limiter.allow(("connection_refused", "10.0.0.2", "banned"), T0) == 0  # another address
    assert limiter.allow(key, T0 + 60.0) == 49  # the next window's line carries the count


def test_log_limiter_burst_and_summaries_when_a_window_ends():
    limiter = LogLimiter(window=10.0, burst=3)
    assert [limiter.allow("ip", T0) for _ in range(5)] == [0, 0, 0, None, None]
    assert limiter.allow("quiet", T0) == 0
    assert limiter.expire(T0 + 5.0) == []
    assert limiter.expire(T0 + 10.0) == [("ip", 2)]  # "quiet" ended with nothing suppressed
    assert limiter.expire(T0 + 20.0) == []
    assert limiter.allow("ip", T0 + 20.0) == 0
