"""mining.submit: the session's own checks, in order, and what passes to the validator."""

from __future__ import annotations

import pytest

from fleetd.stratum.events import SubmitReceived, SubmitRejected
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import Session, SessionConfig
from stratum_support import EN1, WORKER, err, job, logged_in, ok, replies, req, rolling, submit


def rejected(session: Session, data: bytes, reject: Reject, request_id: object = 4) -> None:
    """The submit was answered with exactly this reject and reported with it."""
    events = session.receive_data(data)
    assert replies(session) == [err(request_id, reject.code, reject.message)]
    assert [type(e) for e in events] == [SubmitRejected]
    assert events[0].reject is reject and events[0].request_id == request_id


def received(session: Session, data: bytes) -> SubmitReceived:
    (event,) = session.receive_data(data)
    assert type(event) is SubmitReceived
    return event


def test_valid_submit_becomes_submit_received():
    s = logged_in()
    s.set_difficulty(64)
    s.send_job(job("j1"))
    s.data_to_send()
    event = received(s, submit(4, en2="0011223344556677", ntime="66000001", nonce="deadBEEF"))
    assert event == SubmitReceived(
        request_id=4,
        worker=WORKER,
        job=job("j1"),
        job_id="j1",
        extranonce1=EN1,
        extranonce2=bytes.fromhex("0011223344556677"),
        ntime=0x66000001,
        nonce=0xDEADBEEF,
        version=0x20000000,
        version_bits=None,
        difficulty=64.0,
    )
    assert s.data_to_send() == b""  # the answer is the driver's, after validation
    s.accept_submit(4)
    assert s.data_to_send() == b'{"id":4,"result":true,"error":null}\n'


@pytest.mark.parametrize("reject", list(Reject))
def test_driver_rejects_with_code_and_message(reject):
    s = logged_in()
    s.reject_submit("x7", reject)
    expected = b'{"id":"x7","result":null,"error":[%d,"%s",null]}\n' % (reject.code, reject.message.encode())
    assert s.data_to_send() == expected


def test_reject_codes_and_reasons():
    table = {r.reason: (r.code, r.error()) for r in Reject}
    assert table["not_subscribed"][0] == 25 and table["unauthorized"][0] == 24
    assert table["duplicate"][0] == 22 and table["low_difficulty"][0] == 23
    assert table["stale"][0] == table["unknown_job"][0] == 21
    assert Reject.STALE.error() == [21, "Stale job", None]


# --- each session reject, and the order they are checked in ---------------------------


def test_not_subscribed_is_25_even_with_garbage_params():
    s = Session(SessionConfig(), EN1)
    rejected(s, req(4, "mining.submit", [1, 2]), Reject.NOT_SUBSCRIBED)
    s.receive_data(req(2, "mining.authorize", [WORKER]))
    s.data_to_send()
    rejected(s, submit(4), Reject.NOT_SUBSCRIBED)


def test_unauthorized_worker_is_24_before_params_are_checked():
    s = logged_in()
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, submit(4, worker="acct.other"), Reject.UNAUTHORIZED)
    rejected(s, req(4, "mining.submit", ["acct.other", "j1"]), Reject.UNAUTHORIZED)
    event = s.receive_data(submit(4, worker="acct.other"))[0]
    assert event == SubmitRejected(4, "acct.other", "j1", Reject.UNAUTHORIZED)


@pytest.mark.parametrize(
    "params",
    [
        [],
        [5],
        [WORKER, "j1", "00" * 8, "66000000"],  # too few
        [WORKER, "j1", "00" * 8, "66000000", "00000000", "00000000", "x"],  # too many
        [WORKER, 1, "00" * 8, "66000000", "00000000"],  # job id not a string
        [WORKER, "j1", 0, "66000000", "00000000"],
        [WORKER, "j1", "zz" * 8, "66000000", "00000000"],  # extranonce2 not hex
        [WORKER, "j1", "0" * 15, "66000000", "00000000"],  # odd length
        [WORKER, "j1", "00 " * 5 + "0", "66000000", "00000000"],  # fromhex would skip the spaces
        [WORKER, "j1", "00" * 8, "6600000", "00000000"],  # ntime 7 digits
        [WORKER, "j1", "00" * 8, "660000000", "00000000"],  # ntime 9 digits
        [WORKER, "j1", "00" * 8, 1711000000, "00000000"],  # ntime as a number
        [WORKER, "j1", "00" * 8, "66000000", "0x000001"],  # int() would take these
        [WORKER, "j1", "00" * 8, "66000000", "-0000001"],
        [WORKER, "j1", "00" * 8, "66000000", "0000_001"],
        [WORKER, "j1", "00" * 8, "66000000", " 0000001"],
        [WORKER, "j1", "00" * 8, "66000000", "0000000g"],
        [WORKER, "j1", "00" * 8, "66000000", "٠٠٠٠٠٠٠١"],  # Arabic-Indic digits
        [WORKER, "j1", "00" * 8, "66000000", "00000000", "2000"],  # version bits too short
        [WORKER, "j1", "00" * 8, "66000000", "00000000", 8192],
    ],
)
def test_malformed_params_are_20(params):
    s = logged_in(configure=rolling())
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, req(4, "mining.submit", params), Reject.MALFORMED)


def test_malformed_wins_over_unknown_job():
    s = logged_in()
    rejected(s, submit(4, job_id="nope", ntime="bad"), Reject.MALFORMED)


def test_wrong_extranonce2_size_is_20():
    s = logged_in()
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, submit(4, en2="00" * 4), Reject.BAD_EXTRANONCE2_SIZE)
    rejected(s, submit(4, en2="00" * 9), Reject.BAD_EXTRANONCE2_SIZE)
    rejected(s, submit(4, en2=""), Reject.BAD_EXTRANONCE2_SIZE)
    # checked before the job: an unknown job with a bad size reports the size
    rejected(s, submit(4, job_id="nope", en2="00"), Reject.BAD_EXTRANONCE2_SIZE)


def test_configured_extranonce2_size():
    s = logged_in(SessionConfig(extranonce2_size=4))
    s.send_job(job("j1"))
    s.data_to_send()
    assert received(s, submit(4, en2="01020304")).extranonce2 == b"\x01\x02\x03\x04"
    rejected(s, submit(5, en2="00" * 8), Reject.BAD_EXTRANONCE2_SIZE, request_id=5)


def test_version_bits_outside_negotiated_mask_is_20():
    s = logged_in(configure=rolling("1fffe000"))
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, submit(4, bits="20000000"), Reject.VERSION_BITS_OUTSIDE_MASK)
    rejected(s, submit(4, bits="00001000"), Reject.VERSION_BITS_OUTSIDE_MASK)
    # checked before the job
    rejected(s, submit(4, job_id="nope", bits="40000000"), Reject.VERSION_BITS_OUTSIDE_MASK)


def test_version_bits_against_narrower_negotiated_mask():
    s = logged_in(configure=rolling("e001f000"))  # & 1fffe000 = 0001e000
    assert s.version_mask == 0x0001E000
    s.send_job(job("j1"))
    s.data_to_send()
    assert received(s, submit(4, bits="0001e000")).version == 0x2001E000
    rejected(s, submit(4, bits="00020000"), Reject.VERSION_BITS_OUTSIDE_MASK)
    rejected(s, submit(4, bits="00001000"), Reject.VERSION_BITS_OUTSIDE_MASK)


def test_version_bits_without_negotiation_is_20():
    s = logged_in()
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, submit(4, bits="00002000"), Reject.VERSION_BITS_NOT_NEGOTIATED)
    # six parameters with nothing rolled are harmless
    event = received(s, submit(5, bits="00000000"))
    assert event.version == 0x20000000 and event.version_bits == 0


def test_version_bits_after_refused_negotiation_is_not_negotiated():
    s = logged_in(configure=rolling("00006000", **{"version-rolling.min-bit-count": 8}))
    s.send_job(job("j1"))
    s.data_to_send()
    rejected(s, submit(4, bits="00002000"), Reject.VERSION_BITS_NOT_NEGOTIATED)


def test_version_bits_without_configure_allowed_uses_pool_mask():
    s = logged_in(SessionConfig(allow_version_bits_without_configure=True))
    s.send_job(job("j1"))
    s.data_to_send()
    event = received(s, submit(4, bits="1fffe000"))
    assert event.version == 0x3FFFE000 and event.version_bits == 0x1FFFE000
    rejected(s, submit(5, bits="00001000"), Reject.VERSION_BITS_OUTSIDE_MASK, request_id=5)
    assert s.version_mask is None


def test_a_job_not_sent_here_goes_to_the_pool_with_no_job():
    # Which ids are stale and which unknown is the job store's to say (the pool core).
    s = logged_in()
    event = received(s, submit(4, job_id="never-sent"))
    assert event.job is None and event.job_id == "never-sent" and event.difficulty == 0.0
    s.send_job(job("j1"))
    s.data_to_send()
    assert received(s, submit(4, job_id="J1")).job is None  # ids are case-sensitive
    assert s.data_to_send() == b""  # the pool core answers


def test_clean_jobs_clear_what_the_session_holds():
    s = logged_in()
    s.send_job(job("j1"))
    s.send_job(job("j2"))
    assert received(s, submit(4, job_id="j1")).job.job_id == "j1"
    s.send_job(job("j3", clean=True))
    s.data_to_send()
    assert received(s, submit(4, job_id="j1")).job is None
    assert received(s, submit(4, job_id="j2")).job is None
    assert received(s, submit(5, job_id="j3")).job.job_id == "j3"


def test_job_without_clean_does_not_stale_earlier_jobs():
    s = logged_in()
    s.send_job(job("j1", clean=True))
    s.send_job(job("j2"))
    assert received(s, submit(4, job_id="j1")).job.job_id == "j1"


def test_forgotten_jobs_go_to_the_pool_with_no_job():
    s = logged_in()
    for i in range(4):
        s.send_job(job(f"j{i}"))
    s.data_to_send()
    s.forget(["j0", "j1", "never-sent"])
    assert received(s, submit(4, job_id="j0")).job is None
    assert received(s, submit(4, job_id="j1")).job is None
    assert received(s, submit(4, job_id="j2")).job.job_id == "j2"
    assert list(s._jobs) == ["j2", "j3"]


def test_resent_stale_job_id_is_live_again():
    s = logged_in()
    s.send_job(job("j1"))
    s.send_job(job("j2", clean=True))
    s.send_job(job("j1"))
    assert received(s, submit(4, job_id="j1")).job.job_id == "j1"


# --- difficulty per job ------------------------------------------------------------------


def test_difficulty_change_grace_old_job_keeps_old_difficulty():
    s = logged_in()
    s.set_difficulty(1000)
    s.send_job(job("a"))
    s.send_job(job("b"))
    s.set_difficulty(4000)  # told at once, with the latest job again
    assert received(s, submit(4, job_id="a")).difficulty == 1000.0
    assert received(s, submit(5, job_id="b")).difficulty == 4000.0
    s.send_job(job("c"))
    assert received(s, submit(6, job_id="c")).difficulty == 4000.0
    assert received(s, submit(7, job_id="a")).difficulty == 1000.0
    assert replies(s) == [
        {"id": None, "method": "mining.set_difficulty", "params": [1000]},
        {"id": None, "method": "mining.notify", "params": replies_params("a")},
        {"id": None, "method": "mining.notify", "params": replies_params("b")},
        {"id": None, "method": "mining.set_difficulty", "params": [4000]},
        {"id": None, "method": "mining.notify", "params": replies_params("b")},
        {"id": None, "method": "mining.notify", "params": replies_params("c")},
    ]


def replies_params(job_id: str, clean: bool = False) -> list:
    return [
        job_id,
        "03020100070605040b0a09080f0e0d0c13121110171615141b1a19181f1e1d1c",
        "01000000010000",
        "ffffffff00",
        ["aa" * 32, "bb" * 32],
        "20000000",
        "1d00ffff",
        "66000000",
        clean,
    ]


def test_difficulty_defaults_to_one_before_any_set_difficulty():
    s = logged_in()
    s.send_job(job("a"))
    assert received(s, submit(4, job_id="a")).difficulty == 1.0


def judged(s: Session, job_id: str, request_id: int = 4) -> tuple[float, float | None]:
    """The (difficulty, fallback difficulty) a submit for ``job_id`` goes to the validator with."""
    event = received(s, submit(request_id, job_id=job_id))
    return event.difficulty, event.fallback_difficulty


def sent_at(s: Session, *steps: float | str) -> Session:
    """Numbers set the difficulty, strings send that job."""
    for step in steps:
        if type(step) is str:
            s.send_job(job(step))
        else:
            s.set_difficulty(step)
    return s


def test_resent_job_id_at_a_higher_difficulty_keeps_the_lower_as_fallback():
    s = sent_at(logged_in(), 100, "a", 200, "a")
    # Credited at 200 when it meets 200; a share in flight made at 100 still counts, at 100.
    assert judged(s, "a") == (200.0, 100.0)


def test_a_lowered_difficulty_applies_to_jobs_already_sent():
    s = sent_at(logged_in(), 100, "a", "b", 25)
    assert judged(s, "a") == (100.0, 25.0)


def test_a_raised_difficulty_leaves_older_jobs_at_their_own():
    s = sent_at(logged_in(), 100, "a", "x", 400)
    assert judged(s, "a") == (100.0, None)
    sent_at(s, "b")
    assert judged(s, "b", 5) == (400.0, None)


# --- mining.suggest_difficulty: in force at once -----------------------------------------


def suggest(request_id: object, difficulty: float) -> bytes:
    return req(request_id, "mining.suggest_difficulty", [difficulty])


def set_difficulty(difficulty: float) -> dict:
    return {"id": None, "method": "mining.set_difficulty", "params": [difficulty]}


def notify(job_id: str, clean: bool = False) -> dict:
    return {"id": None, "method": "mining.notify", "params": replies_params(job_id, clean)}


def test_suggestion_before_any_job_is_the_first_jobs_difficulty():
    s = logged_in()
    s.receive_data(suggest(3, 512))
    assert replies(s) == [ok(3)]  # no work yet: the first job carries it
    s.send_job(job("a", clean=True))
    assert replies(s) == [set_difficulty(512), notify("a", clean=True)]
    assert received(s, submit(4, job_id="a")).difficulty == 512.0


def test_suggestion_after_a_job_is_sent_at_once_with_the_current_job_again():
    s = logged_in()
    s.set_difficulty(1024)
    s.send_job(job("old"))
    s.send_job(job("a", clean=True))
    s.data_to_send()
    s.receive_data(suggest(3, 512))
    # Told now, not with the next job, and the latest job again so firmware that applies a
    # difficulty only with a notify works at it; clean_jobs false keeps its work valid.
    assert replies(s) == [ok(3), set_difficulty(512), notify("a")]
    event = received(s, submit(4, job_id="a"))
    assert (event.difficulty, event.fallback_difficulty) == (512.0, None)
    s.receive_data(suggest(5, 512))
    assert replies(s) == [ok(5)]  # no change: nothing more to send
    # A higher suggestion: shares still in flight at the lower one stay good for this job.
    s.receive_data(suggest(6, 4096))
    assert replies(s) == [ok(6), set_difficulty(4096), notify("a")]
    event = received(s, submit(7, job_id="a"))
    assert (event.difficulty, event.fallback_difficulty) == (4096.0, 512.0)
    s.send_job(job("b"))
    assert received(s, submit(8, job_id="b")).difficulty == 4096.0


# --- version rolling -------------------------------------------------------------------


def test_header_version_from_rolled_bits():
    s = logged_in(configure=rolling("ffffffff"))
    s.send_job(job("j1", version=0x20000000))
    event = received(s, submit(4, bits="1fffe000"))
    assert event.version == 0x3FFFE000 and event.version_bits == 0x1FFFE000
    # job bits inside the mask are replaced by the miner's, outside kept: (v & ~m) | (b & m)
    s.send_job(job("j2", version=0x20006000))
    assert received(s, submit(5, job_id="j2", bits="00002000")).version == 0x20002000
    assert received(s, submit(6, job_id="j2")).version == 0x20006000  # five params: job version


def test_set_version_mask_applies_immediately():
    s = logged_in(configure=rolling("1fffe000"))
    s.send_job(job("j1"))
    assert s.set_version_mask(0x0000E000) is True
    assert replies(s)[-1] == {"id": None, "method": "mining.set_version_mask", "params": ["0000e000"]}
    assert s.version_mask == 0x0000E000
    rejected(s, submit(4, bits="00010000"), Reject.VERSION_BITS_OUTSIDE_MASK)
    assert received(s, submit(5, bits="00008000")).version == 0x20008000


def test_set_version_mask_is_limited_to_the_miners_mask_and_silent_without_rolling():
    s = logged_in(configure=rolling("0000e000"))
    assert s.set_version_mask(0xFFFFFFFF) is True
    assert replies(s) == [{"id": None, "method": "mining.set_version_mask", "params": ["0000e000"]}]
    t = logged_in()
    assert t.set_version_mask(0x00006000) is False
    assert t.data_to_send() == b""


# --- extranonce changes ------------------------------------------------------------------


def test_set_extranonce_after_extranonce_subscribe_applies_to_next_job():
    s = logged_in(extranonce_subscribe=True)
    s.send_job(job("old"))
    assert s.set_extranonce(bytes.fromhex("cafe0001"), 4) is True
    s.send_job(job("new"))
    lines = replies(s)
    assert lines[1] == {"id": None, "method": "mining.set_extranonce", "params": ["cafe0001", 4]}
    old = received(s, submit(4, job_id="old", en2="00" * 8))
    assert old.extranonce1 == EN1  # mined with the extranonce it was sent with
    new = received(s, submit(5, job_id="new", en2="01020304"))
    assert new.extranonce1 == bytes.fromhex("cafe0001") and new.extranonce2 == bytes.fromhex("01020304")
    rejected(s, submit(6, job_id="new", en2="00" * 8), Reject.BAD_EXTRANONCE2_SIZE, request_id=6)
    s.receive_data(req(7, "mining.subscribe", []))
    assert replies(s)[0]["result"][1:] == ["cafe0001", 4]


def test_set_extranonce_via_configure_subscribe_extranonce():
    s = logged_in(configure={"extensions": ["subscribe-extranonce"], "params": {}})
    assert s.set_extranonce(bytes.fromhex("00000002")) is True
    assert replies(s) == [{"id": None, "method": "mining.set_extranonce", "params": ["00000002", 8]}]


def test_set_extranonce_without_subscription_is_refused():
    s = logged_in()
    assert s.set_extranonce(bytes.fromhex("00000002"), 4) is False
    assert s.data_to_send() == b""
    assert s.extranonce1 == EN1 and s.extranonce2_size == 8
