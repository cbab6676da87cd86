"""What the server sends on its own initiative, byte for byte."""

from __future__ import annotations

import pytest

from fleetd.stratum import messages
from fleetd.stratum.session import Session, SessionConfig
from stratum_support import EN1, job, logged_in


def test_notify_exact_bytes():
    s = logged_in()
    s.send_job(job("4f2a", clean=True))
    assert s.data_to_send() == (
        b'{"id":null,"method":"mining.notify","params":["4f2a",'
        b'"03020100070605040b0a09080f0e0d0c13121110171615141b1a19181f1e1d1c",'
        b'"01000000010000","ffffffff00",'
        b'["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",'
        b'"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"],'
        b'"20000000","1d00ffff","66000000",true]}\n'
    )


def test_notify_encoded_once_is_reused():
    j = job("shared")
    line = messages.notify(j)
    a, b = logged_in(), logged_in()
    a.send_job(j, line)
    b.send_job(j)
    assert a.data_to_send() == b.data_to_send() == line


@pytest.mark.parametrize(
    ("difficulty", "wire"),
    [(1024, b"1024"), (1024.0, b"1024"), (0.00015, b"0.00015"), (1e-9, b"1e-9"), (3.5, b"3.5"), (2.0**60, b"1.152921504606847e+18")],
)
def test_set_difficulty_wire_format(difficulty, wire):
    s = Session(SessionConfig(), EN1)
    assert s.set_difficulty(difficulty) == float(difficulty)
    assert s.data_to_send() == b'{"id":null,"method":"mining.set_difficulty","params":[' + wire + b"]}\n"
    assert s.difficulty == float(difficulty)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_set_difficulty_rejects_nonsense_from_the_driver(bad):
    with pytest.raises(ValueError):
        Session(SessionConfig(), EN1).set_difficulty(bad)


def test_reconnect_and_show_message():
    s = Session(SessionConfig(), EN1)
    s.reconnect("pool2.example", 3334, 5)
    s.reconnect()
    s.show_message("maintenance at 14:00 UTC")
    assert s.data_to_send() == (
        b'{"id":null,"method":"client.reconnect","params":["pool2.example","3334",5]}\n'
        b'{"id":null,"method":"client.reconnect","params":[]}\n'
        b'{"id":null,"method":"client.show_message","params":["maintenance at 14:00 UTC"]}\n'
    )
    with pytest.raises(ValueError):
        s.reconnect("pool2.example")


def test_closed_session_sends_nothing_more():
    s = logged_in()
    s.close("login_timeout", "no authorize in 30 s")
    assert s.closed and s.close_reason == "login_timeout" and s.close_detail == "no authorize in 30 s"
    s.send_job(job("j1"))
    s.set_difficulty(8)
    s.accept_submit(1)
    s.show_message("hi")
    assert s.data_to_send() == b""
    assert s.receive_data(b'{"id":1,"method":"mining.ping","params":[]}\n') == []
    assert s.data_to_send() == b""
    s.close("again")
    assert s.close_reason == "login_timeout"


def test_data_to_send_drains():
    s = Session(SessionConfig(), EN1)
    s.receive_data(b'{"id":1,"method":"mining.ping"}\n{"id":2,"method":"mining.ping"}\n')
    assert s.data_to_send().count(b"\n") == 2
    assert s.data_to_send() == b""


def test_the_difficulty_in_force_is_the_one_of_the_latest_job_sent():
    s = logged_in()
    s.set_difficulty(8)
    assert s.difficulty_in_force is None  # told, but no job carries it yet
    s.send_job(job("j1", clean=True))
    assert s.difficulty_in_force == 8.0
    s.data_to_send()
    s.set_difficulty(2)  # in force at once: the latest job goes again, its work kept
    assert s.difficulty_in_force == 2.0
    assert s.data_to_send() == messages.set_difficulty(2.0) + messages.notify(job("j1", clean=False))
