"""The share validator with real shares: nonces ground with the pure-Python reference,
checked by the native core."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetd.chain.share import header_hash as reference_hash
from fleetd.chain.target import DIFF1_TARGET, bits_to_target, difficulty_to_target
from fleetd.stratum.job import Job
from fleetd.shares.registry import JobRegistry
from fleetd.shares.validator import NTIME_MAX_FUTURE, ShareResult, ShareValidator
from fleetd.stratum.events import SubmitReceived
from fleetd.stratum.rejects import Reject

DIFF = 1e-7  # one hash in ~430 meets it: a valid share takes a few hundred reference hashes
EN1 = bytes.fromhex("0badf00d")
NOW = 0x66000000 + 600  # the validator's clock: ten minutes after the job's ntime
VERSION = 0x20000000


def make_job(job_id: str = "a1", *, clean: bool = False, nbits: int = 0x1D00FFFF, tag: int = 0) -> Job:
    return Job(
        job_id=job_id,
        prevhash=bytes([tag]) * 4 + bytes(range(28)),
        coinb1=bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20")
        + bytes([tag]) * 7,
        coinb2=b"/fleetd/"
        + bytes.fromhex("ffffffff0100f2052a010000001976a914")
        + bytes(20)
        + bytes.fromhex("88ac00000000"),
        merkle_branch=tuple(bytes([0x11 * (i + 1) ^ tag]) * 32 for i in range(4)),
        version=VERSION,
        nbits=nbits,
        ntime=0x66000000,
        clean_jobs=clean,
        height=840000,
    )


def submit_for(job: Job, en2: bytes, nonce: int, *, version: int = VERSION, ntime: int | None = None,
               difficulty: float = DIFF, en1: bytes = EN1, job_id: str | None = None) -> SubmitReceived:
    return SubmitReceived(
        request_id=1,
        worker="acct.rig",
        job_id=job.job_id if job_id is None else job_id,
        extranonce1=en1,
        extranonce2=en2,
        ntime=job.ntime if ntime is None else ntime,
        nonce=nonce,
        version=version,
        version_bits=None if version == job.version else version & 0x1FFFE000,
        difficulty=difficulty,
    )


def ref_hash(job: Job, s: SubmitReceived) -> bytes:
    return reference_hash(job.coinb1, s.extranonce1, s.extranonce2, job.coinb2, job.merkle_branch, s.version,
                          job.prevhash, s.ntime, job.nbits, s.nonce)


def hash_value(job: Job, s: SubmitReceived) -> int:
    return int.from_bytes(ref_hash(job, s), "little")


def grind(job: Job, en2: bytes, *, want, start: int = 0, **fields) -> SubmitReceived:
    """The first nonce from ``start`` whose reference hash value satisfies ``want``."""
    for nonce in itertools.count(start):
        s = submit_for(job, en2, nonce, **fields)
        if want(hash_value(job, s)):
            return s
        assert nonce < start + 200_000, "grinding ran away"
    raise AssertionError


def meets(difficulty: float):
    target = difficulty_to_target(difficulty)
    return lambda value: value <= target


def misses(difficulty: float):
    target = difficulty_to_target(difficulty)
    return lambda value: value > target


def fresh(*jobs: Job) -> tuple[JobRegistry, ShareValidator]:
    registry = JobRegistry()
    for job in jobs:
        registry.add(job, NOW)
    return registry, ShareValidator(registry)


JOB = make_job()


@pytest.fixture(scope="module")
def good() -> SubmitReceived:
    return grind(JOB, bytes(8), want=meets(DIFF))


# -- accept and its result ------------------------------------------------------


def test_accepts_a_real_share_with_the_reference_hash(good):
    _, validator = fresh(JOB)
    result = validator.validate(good, NOW)
    assert result == ShareResult(
        accepted=True,
        reject=None,
        hash=ref_hash(JOB, good),
        share_difficulty=DIFF1_TARGET / hash_value(JOB, good),
        is_block=False,
        job=JOB,
        credited_difficulty=DIFF,
    )
    assert result.share_difficulty >= DIFF


# -- a lower difficulty that also counts (a lowered difficulty on a job already held) ---------


def between(low: float, high: float):
    """Meets ``low`` but misses ``high``."""
    return lambda value: meets(low)(value) and misses(high)(value)


def test_a_share_meeting_only_the_fallback_is_credited_at_it():
    share = grind(JOB, bytes(8), want=between(DIFF / 4, DIFF), difficulty=DIFF)
    _, validator = fresh(JOB)
    assert validator.validate(share, NOW).reject is Reject.LOW_DIFFICULTY  # no fallback: low
    lowered = dataclasses.replace(share, fallback_difficulty=DIFF / 4)
    result = validator.validate(lowered, NOW)
    assert result.accepted and result.credited_difficulty == DIFF / 4


def test_a_share_meeting_the_job_difficulty_is_credited_at_it_despite_a_fallback(good):
    _, validator = fresh(JOB)
    result = validator.validate(dataclasses.replace(good, fallback_difficulty=DIFF / 4), NOW)
    assert result.accepted and result.credited_difficulty == DIFF


def test_a_share_below_both_is_low_difficulty():
    share = grind(JOB, bytes(8), want=misses(DIFF / 4), difficulty=DIFF, start=0)
    _, validator = fresh(JOB)
    result = validator.validate(dataclasses.replace(share, fallback_difficulty=DIFF / 4), NOW)
    assert (result.accepted, result.reject, result.credited_difficulty) == (False, Reject.LOW_DIFFICULTY, 0.0)


def test_batch_credits_as_one_by_one(good):
    low = grind(JOB, bytes([1]) * 8, want=between(DIFF / 4, DIFF), difficulty=DIFF)
    submits = [dataclasses.replace(s, fallback_difficulty=DIFF / 4) for s in (good, low)]
    batch = fresh(JOB)[1].validate_batch(submits, NOW)
    single = fresh(JOB)[1]
    assert [r.credited_difficulty for r in batch] == [single.validate(s, NOW).credited_difficulty for s in submits]
    assert [r.credited_difficulty for r in batch] == [DIFF, DIFF / 4]


def test_duplicate_is_the_same_key(good):
    _, validator = fresh(JOB)
    assert validator.validate(good, NOW).accepted
    again = validator.validate(dataclasses.replace(good, request_id=99, worker="acct.other"), NOW)
    assert (again.accepted, again.reject) == (False, Reject.DUPLICATE)
    assert validator.validate(good, NOW).reject is Reject.DUPLICATE


def test_other_version_bits_are_other_work_not_a_duplicate():
    # Grind a nonce valid under two versions (a rolling miner's two headers), at a
    # difficulty easy enough that both meet it.
    easy = 1e-9
    rolled = VERSION | 0x00002000
    for nonce in itertools.count():
        a = submit_for(JOB, bytes(8), nonce, difficulty=easy)
        b = submit_for(JOB, bytes(8), nonce, difficulty=easy, version=rolled)
        if meets(easy)(hash_value(JOB, a)) and meets(easy)(hash_value(JOB, b)):
            break
    _, validator = fresh(JOB)
    assert validator.validate(a, NOW).accepted
    assert validator.validate(b, NOW).accepted
    assert validator.validate(b, NOW).reject is Reject.DUPLICATE


@pytest.mark.parametrize(
    "change",
    [{"extranonce2": bytes(7) + b"\x01"}, {"extranonce1": bytes.fromhex("0badf00e")}, {"ntime": JOB.ntime + 1}],
    ids=["extranonce2", "extranonce1", "ntime"],
)
def test_each_key_field_separates_shares(good, change):
    _, validator = fresh(JOB)
    assert validator.validate(good, NOW).accepted
    other = dataclasses.replace(good, **change)
    assert validator.validate(other, NOW).reject is not Reject.DUPLICATE


def test_low_difficulty():
    low = grind(JOB, bytes(8), want=misses(DIFF))
    _, validator = fresh(JOB)
    result = validator.validate(low, NOW)
    assert (result.accepted, result.reject, result.is_block) == (False, Reject.LOW_DIFFICULTY, False)
    assert result.hash == ref_hash(JOB, low)
    assert result.share_difficulty < DIFF
    # Not remembered: the same key again gets the truthful reason, not "duplicate".
    assert validator.validate(low, NOW).reject is Reject.LOW_DIFFICULTY


def test_difficulty_comes_from_the_submit_so_old_jobs_keep_their_grace():
    # A share between two difficulties: accepted at the one its job was sent with (the
    # session puts that in submit.difficulty), rejected at the newer, higher one.
    old, new = DIFF, DIFF * 64
    share = grind(JOB, bytes(8), want=lambda v: meets(old)(v) and misses(new)(v))
    _, validator = fresh(JOB)
    assert validator.validate(dataclasses.replace(share, difficulty=new), NOW).reject is Reject.LOW_DIFFICULTY
    assert validator.validate(share, NOW).accepted


# -- job and ntime --------------------------------------------------------------


def test_unknown_job(good):
    _, validator = fresh(JOB)
    result = validator.validate(dataclasses.replace(good, job_id="nope"), NOW)
    assert result == ShareResult(False, Reject.UNKNOWN_JOB, None, 0.0, False, None)


def test_stale_after_a_clean_job_and_not_remembered(good):
    registry, validator = fresh(JOB)
    registry.add(make_job("b1", clean=True, tag=1), NOW)
    result = validator.validate(good, NOW)
    assert (result.accepted, result.reject, result.job) == (False, Reject.STALE, None)
    assert Reject.STALE.code == 21


def test_job_without_clean_flag_keeps_older_jobs_live(good):
    registry, validator = fresh(JOB)
    registry.add(make_job("a2", tag=2), NOW)
    assert validator.validate(good, NOW).accepted


@pytest.mark.parametrize(
    "ntime, ok",
    [
        (JOB.ntime - 1, False),
        (JOB.ntime, True),
        (NOW + NTIME_MAX_FUTURE, True),
        (NOW + NTIME_MAX_FUTURE + 1, False),
    ],
    ids=["below-job", "job", "now+7200", "beyond"],
)
def test_ntime_window(ntime, ok):
    share = grind(JOB, bytes(8), want=meets(DIFF), ntime=ntime)
    _, validator = fresh(JOB)
    result = validator.validate(share, NOW)
    if ok:
        assert result.accepted
    else:
        assert (result.reject, result.hash) == (Reject.NTIME_OUT_OF_RANGE, None)
        assert Reject.NTIME_OUT_OF_RANGE.code == 20
        # A refused ntime is not remembered: once the clock catches up, the share counts.
        if ntime > NOW:
            assert validator.validate(share, ntime - NTIME_MAX_FUTURE).accepted


def test_ntime_checked_before_duplicate(good):
    _, validator = fresh(JOB)
    assert validator.validate(good, NOW).accepted
    assert validator.validate(good, JOB.ntime - NTIME_MAX_FUTURE - 1).reject is Reject.NTIME_OUT_OF_RANGE


# -- blocks ---------------------------------------------------------------------


def test_block_when_the_network_target_is_met():
    easy_chain = make_job("blk", nbits=0x207FFFFF, tag=3)  # regtest: half of all hashes
    network = bits_to_target(0x207FFFFF)
    share = grind(easy_chain, bytes(8), want=lambda v: v <= network and meets(DIFF)(v))
    _, validator = fresh(easy_chain)
    result = validator.validate(share, NOW)
    assert (result.accepted, result.is_block) == (True, True)


def test_no_block_when_only_the_share_target_is_met(good):
    _, validator = fresh(JOB)  # nbits 1d00ffff: difficulty 1, ten million times DIFF
    assert validator.validate(good, NOW).is_block is False


def test_a_block_is_accepted_even_below_the_share_target():
    # Only possible when the network is easier than the share target (the demo chain).
    easy_chain = make_job("blk2", nbits=0x207FFFFF, tag=4)
    network = bits_to_target(0x207FFFFF)
    share = grind(easy_chain, bytes(8), want=lambda v: v <= network and misses(DIFF)(v))
    _, validator = fresh(easy_chain)
    result = validator.validate(share, NOW)
    assert (result.accepted, result.reject, result.is_block) == (True, None, True)
    assert result.share_difficulty < DIFF
    assert validator.validate(share, NOW).reject is Reject.DUPLICATE  # a block is never submitted twice


# -- batches --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> tuple[list[Job], list[SubmitReceived]]:
    """Submits covering every outcome over two live jobs (one with a shorter extranonce2)."""
    a, b = make_job("pa", tag=5), make_job("pb", tag=6)
    submits = []
    for job, en2 in ((a, bytes(8)), (a, bytes(7) + b"\x05"), (b, bytes(4))):
        valid = grind(job, en2, want=meets(DIFF))
        submits.append(valid)
        submits.append(grind(job, en2, want=misses(DIFF)))
        submits.append(dataclasses.replace(valid, difficulty=DIFF * 1e6))  # same key, misses the higher target
        submits.append(grind(job, en2, want=meets(DIFF), start=valid.nonce + 1, ntime=job.ntime + 1))
    submits.append(dataclasses.replace(submits[0], ntime=a.ntime - 1))
    submits.append(dataclasses.replace(submits[0], job_id="gone"))
    submits.append(dataclasses.replace(submits[0], job_id="old"))
    return [make_job("old", tag=7), make_job("pa", clean=True, tag=5), b], submits


def _registry_for(jobs: list[Job]) -> ShareValidator:
    registry = JobRegistry()
    for job in jobs:
        registry.add(job, NOW)
    return ShareValidator(registry)


@settings(max_examples=60, suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_batch_equals_one_by_one(pool, data):
    jobs, submits = pool
    picks = data.draw(st.lists(st.integers(0, len(submits) - 1), min_size=1, max_size=30), label="picks")
    sequence = [submits[i] for i in picks]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(sequence)), max_size=4), label="cuts") | {len(sequence)})
    single = _registry_for(jobs)
    expected = [single.validate(s, NOW) for s in sequence]
    batched = _registry_for(jobs)
    got, begin = [], 0
    for end in cuts:
        got.extend(batched.validate_batch(sequence[begin:end], NOW))
        begin = end
    assert got == expected


def test_batch_catches_duplicates_within_itself(pool):
    jobs, submits = pool
    validator = _registry_for(jobs)
    valid = submits[0]
    results = validator.validate_batch([valid, valid, dataclasses.replace(valid, request_id=7)], NOW)
    assert [r.reject for r in results] == [None, Reject.DUPLICATE, Reject.DUPLICATE]
    # ... and against earlier batches.
    assert validator.validate_batch([valid], NOW)[0].reject is Reject.DUPLICATE


def test_batch_covers_every_outcome(pool):
    jobs, submits = pool
    reasons = {r.reject for r in _registry_for(jobs).validate_batch(submits, NOW)}
    assert reasons == {
        None, Reject.DUPLICATE, Reject.LOW_DIFFICULTY, Reject.NTIME_OUT_OF_RANGE, Reject.UNKNOWN_JOB, Reject.STALE
    }


def test_empty_batch():
    assert ShareValidator(JobRegistry()).validate_batch([], NOW) == []
