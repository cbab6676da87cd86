"""The pool core with bytes and the time alone: real shares (nonces ground with the
pure-Python reference hash) sent as Stratum lines, judged by the native core, answered in
bytes, credited to the rig and turned into effects."""

from __future__ import annotations

import itertools

import orjson
import pytest

from fleetd.chain.share import header_hash as reference_hash
from fleetd.chain.target import bits_to_target, difficulty_to_target
from fleetd.rigs.registry import RigRegistry
from fleetd.shares.jobs import JobStore
from fleetd.shares.pool import NTIME_MAX_FUTURE, BlockFound, Pool, ShareForwarded
from fleetd.shares.vardiff import VardiffConfig
from fleetd.stratum import messages
from fleetd.stratum.auth import AllowListAuthorization, OpenAuthorization, PasswordAuthorization
from fleetd.stratum.events import Authorized
from fleetd.stratum.job import Job
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import SessionConfig

DIFF = 1e-7  # one hash in ~430 meets it: a valid share takes a few hundred reference hashes
EN1 = bytes.fromhex("0badf00d")
WORKER = "acct.rig"
VERSION = 0x20000000
WALL = 0x66000000 + 600  # the injected wall clock: ten minutes after the jobs' ntime
MONOTONIC = 5_000.0
ALLOWLIST = AllowListAuthorization(["acct"])


def make_job(job_id: str = "a1", *, clean: bool = False, nbits: int = 0x1D00FFFF, tag: int = 0) -> Job:
    return Job(
        job_id=job_id,
        prevhash=bytes([tag]) * 4 + bytes(range(28)),
        coinb1=bytes.fromhex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20")
        + bytes([tag]) * 7,
        coinb2=b"/fleetd/" + bytes.fromhex("ffffffff0100f2052a010000001976a914") + bytes(20)
        + bytes.fromhex("88ac00000000"),
        merkle_branch=tuple(bytes([0x11 * (i + 1) ^ tag]) * 32 for i in range(4)),
        version=VERSION,
        nbits=nbits,
        ntime=0x66000000,
        clean_jobs=clean,
        height=840000,
    )


JOB = make_job()


def hash_value(job: Job, en2: bytes, nonce: int, *, ntime: int | None = None, version: int = VERSION,
               en1: bytes = EN1) -> int:  # fmt: skip
    digest = reference_hash(job.coinb1, en1, en2, job.coinb2, job.merkle_branch, version, job.prevhash,
                            job.ntime if ntime is None else ntime, job.nbits, nonce)  # fmt: skip
    return int.from_bytes(digest, "little")


def grind(job: Job, en2: bytes, want, *, start: int = 0, **fields) -> int:
    """The first nonce from ``start`` whose reference hash value satisfies ``want``."""
    for nonce in itertools.count(start):
        if want(hash_value(job, en2, nonce, **fields)):
            return nonce
        assert nonce < start + 200_000, "grinding ran away"
    raise AssertionError


def meets(difficulty: float):
    target = difficulty_to_target(difficulty)
    return lambda value: value <= target


def misses(difficulty: float):
    target = difficulty_to_target(difficulty)
    return lambda value: value > target


def between(low: float, high: float):
    """Meets ``low`` but misses ``high``."""
    return lambda value: meets(low)(value) and misses(high)(value)


def submit_line(request_id: int, job_id: str, en2: bytes, nonce: int, *, ntime: int = JOB.ntime,
                bits: int | None = None) -> bytes:  # fmt: skip
    params = [WORKER, job_id, en2.hex(), f"{ntime:08x}", f"{nonce:08x}"]
    if bits is not None:
        params.append(f"{bits:08x}")
    return orjson.dumps({"id": request_id, "method": "mining.submit", "params": params}) + b"\n"


class Site:
    """One pool and its miners, on an injected clock; the difficulty pinned at ``DIFF``.

    Miners log in under an allowlist unless told otherwise: a policy that proves the name, so
    the rig has its record from the login on (under ``open`` it waits for an accepted share).
    """

    def __init__(self, *jobs: Job, forwarding: bool = False, authorizer=ALLOWLIST) -> None:
        self.authorizer = authorizer
        self.rigs = RigRegistry()
        vardiff = VardiffConfig(start_difficulty=DIFF, min_difficulty=DIFF, max_difficulty=DIFF)
        self.pool = Pool(JobStore(), self.rigs, vardiff, forwarding=forwarding)
        self.wall, self.monotonic = WALL, MONOTONIC
        self.current = None
        for job in jobs:
            self.publish(job)
        self.miners = []

    def publish(self, job: Job) -> None:
        notify = messages.notify(job)
        retired = self.pool.publish(job, self.wall)
        self.current = (job, notify)
        for miner in getattr(self, "miners", []):
            miner.send_job(job, notify, retired)

    def miner(self, en1: bytes = EN1, config: SessionConfig | None = None):
        config = config or SessionConfig(version_mask=0x1FFFE000, authorizer=self.authorizer)
        miner = self.pool.connection(config, en1, "10.0.0.7", self.monotonic)
        effects = self.send(miner, b'{"id":1,"method":"mining.configure","params":[["version-rolling"],'
                                   b'{"version-rolling.mask":"1fffe000"}]}\n'
                                   b'{"id":2,"method":"mining.subscribe","params":["test/1"]}\n'
                                   b'{"id":3,"method":"mining.authorize","params":["%s","x"]}\n' % WORKER.encode())
        assert [type(e) for e in effects if type(e) is Authorized] == [Authorized]
        miner.data_to_send()
        self.miners.append(miner)
        return miner

    def send(self, miner, data: bytes):
        return miner.receive_data(data, self.wall, self.monotonic, self.current)

    def submit(self, miner, *args, **kwargs) -> tuple[object, tuple]:
        """(the reply's error or True, the effects) of one submit."""
        miner.data_to_send()  # what went out before (difficulty, jobs)
        effects = self.send(miner, submit_line(7, *args, **kwargs))
        (reply,) = [m for m in map(orjson.loads, miner.data_to_send().splitlines()) if m.get("id") == 7]
        return (True if reply["result"] is True else tuple(reply["error"][:2])), tuple(effects)

    @property
    def rig(self):
        return self.rigs.get(WORKER)


def code(reject: Reject) -> tuple[int, str]:
    return (reject.code, reject.message)


# -- accept and credit ---------------------------------------------------------------------------


def test_a_real_share_is_answered_true_and_credited_to_its_rig():
    site = Site(JOB)
    miner = site.miner()
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "a1", bytes(8), nonce) == (True, ())
    assert (site.rig.accepted, site.rig.accepted_work, dict(site.rig.rejected)) == (1, DIFF, {})
    assert site.rig.difficulty == DIFF  # the difficulty in force


def test_a_share_meeting_only_the_lowered_difficulty_is_credited_at_it():
    # cgminer and bmminer apply a lowered difficulty to the job they already hold.
    older, latest = make_job("a1"), make_job("a2", tag=2)
    site = Site(older)
    miner = site.miner()
    site.publish(latest)
    low = grind(older, bytes(8), between(DIFF / 4, DIFF))
    assert site.submit(miner, "a1", bytes(8), low)[0] == code(Reject.LOW_DIFFICULTY)
    assert miner.cap_difficulty(DIFF / 4)  # lowered: set_difficulty, then a2 again at it
    assert site.submit(miner, "a1", bytes(8), low)[0] is True
    good = grind(older, bytes([1]) * 8, meets(DIFF))
    assert site.submit(miner, "a1", bytes([1]) * 8, good)[0] is True
    assert site.rig.accepted_work == pytest.approx(DIFF / 4 + DIFF)
    below = grind(older, bytes([2]) * 8, misses(DIFF / 4))
    assert site.submit(miner, "a1", bytes([2]) * 8, below)[0] == code(Reject.LOW_DIFFICULTY)


def test_low_difficulty_is_rejected_and_not_remembered():
    site = Site(JOB)
    miner = site.miner()
    low = grind(JOB, bytes(8), misses(DIFF))
    assert site.submit(miner, "a1", bytes(8), low)[0] == code(Reject.LOW_DIFFICULTY)
    # The same key again gets the truthful reason, not "duplicate".
    assert site.submit(miner, "a1", bytes(8), low)[0] == code(Reject.LOW_DIFFICULTY)
    assert (site.rig.accepted, site.rig.rejected["low_difficulty"]) == (0, 2)


def test_an_old_job_keeps_the_difficulty_it_was_sent_at():
    site = Site(JOB)
    miner = site.miner()
    share = grind(JOB, bytes(8), between(DIFF, DIFF * 64))
    miner.vardiff.ceiling = DIFF * 64
    miner.session.set_difficulty(DIFF * 64)  # a raise re-sends a1 at it; its old difficulty still counts
    assert site.submit(miner, "a1", bytes(8), share)[0] is True
    assert site.rig.accepted_work == DIFF


# -- duplicates ------------------------------------------------------------------------------


def test_a_duplicate_is_the_same_header_from_any_connection_of_the_same_job():
    site = Site(JOB)
    miner = site.miner()
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "a1", bytes(8), nonce)[0] is True
    assert site.submit(miner, "a1", bytes(8), nonce)[0] == code(Reject.DUPLICATE)
    other = site.miner(bytes.fromhex("0badf00e"))  # another extranonce1: other work
    nonce2 = grind(JOB, bytes(8), meets(DIFF), en1=bytes.fromhex("0badf00e"))
    assert site.submit(other, "a1", bytes(8), nonce2)[0] is True


def test_other_version_bits_are_other_work_not_a_duplicate():
    easy = DIFF
    rolled = VERSION | 0x00002000
    for nonce in itertools.count():
        if meets(easy)(hash_value(JOB, bytes(8), nonce)) and meets(easy)(hash_value(JOB, bytes(8), nonce, version=rolled)):
            break
    site = Site(JOB)
    miner = site.miner()
    assert site.submit(miner, "a1", bytes(8), nonce)[0] is True
    assert site.submit(miner, "a1", bytes(8), nonce, bits=0x00002000)[0] is True
    assert site.submit(miner, "a1", bytes(8), nonce, bits=0x00002000)[0] == code(Reject.DUPLICATE)


# -- job and ntime -----------------------------------------------------------------------------


def test_unknown_and_stale_jobs_come_from_the_one_job_store():
    site = Site(JOB)
    miner = site.miner()
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "nope", bytes(8), nonce)[0] == code(Reject.UNKNOWN_JOB)
    site.publish(make_job("b1", clean=True, tag=1))
    assert site.submit(miner, "a1", bytes(8), nonce)[0] == code(Reject.STALE)
    assert miner.session._jobs.keys() == {"b1"}
    assert (site.rig.rejected["unknown_job"], site.rig.rejected["stale"]) == (1, 1)


def test_a_job_the_store_let_go_by_age_is_stale_on_every_connection():
    site = Site(JOB)
    miner = site.miner()
    nonce = grind(JOB, bytes(8), meets(DIFF))
    site.wall += site.pool.jobs.max_age + 1
    site.publish(make_job("a2", tag=2))  # not clean: a1 goes by age alone
    assert "a1" not in miner.session._jobs
    assert site.submit(miner, "a1", bytes(8), nonce)[0] == code(Reject.STALE)


def test_a_job_published_before_the_miner_came_is_unknown_to_it():
    site = Site(JOB)
    site.publish(make_job("a2", tag=2))
    miner = site.miner()  # gets a2 only
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "a1", bytes(8), nonce)[0] == code(Reject.UNKNOWN_JOB)


@pytest.mark.parametrize(
    "ntime, ok",
    [(JOB.ntime - 1, False), (JOB.ntime, True), (WALL + NTIME_MAX_FUTURE, True), (WALL + NTIME_MAX_FUTURE + 1, False)],
    ids=["below-job", "job", "now+7200", "beyond"],
)
def test_ntime_window_follows_the_injected_wall_clock(ntime, ok):
    site = Site(JOB)
    miner = site.miner()
    nonce = grind(JOB, bytes(8), meets(DIFF), ntime=ntime)
    result = site.submit(miner, "a1", bytes(8), nonce, ntime=ntime)[0]
    assert result is True if ok else result == code(Reject.NTIME_OUT_OF_RANGE)
    if not ok and ntime > WALL:  # not remembered: once the clock catches up, it counts
        site.wall = ntime - NTIME_MAX_FUTURE
        assert site.submit(miner, "a1", bytes(8), nonce, ntime=ntime)[0] is True


# -- blocks and forwarding --------------------------------------------------------------------


EASY_CHAIN = make_job("blk", nbits=0x207FFFFF, tag=3)  # regtest: half of all hashes
NETWORK = bits_to_target(0x207FFFFF)


def test_a_share_meeting_the_network_target_is_a_block_for_the_source():
    site = Site(EASY_CHAIN)
    miner = site.miner()
    nonce = grind(EASY_CHAIN, bytes(8), lambda v: v <= NETWORK and meets(DIFF)(v))
    result, effects = site.submit(miner, "blk", bytes(8), nonce)
    assert result is True and [type(e) for e in effects] == [BlockFound]
    (found,) = effects
    assert found.job is EASY_CHAIN and found.share.nonce == nonce and found.share.worker == WORKER
    assert int.from_bytes(found.hash, "little") == hash_value(EASY_CHAIN, bytes(8), nonce)
    assert site.rig.blocks == 1
    # a block is never submitted twice
    assert site.submit(miner, "blk", bytes(8), nonce) == (code(Reject.DUPLICATE), ())


def test_a_block_is_accepted_even_below_the_share_target():
    # Only possible when the network is easier than the share target (the demo chain).
    site = Site(EASY_CHAIN)
    miner = site.miner()
    nonce = grind(EASY_CHAIN, bytes(8), lambda v: v <= NETWORK and misses(DIFF)(v))
    result, effects = site.submit(miner, "blk", bytes(8), nonce)
    assert result is True and [type(e) for e in effects] == [BlockFound]


def test_in_proxy_mode_every_accepted_share_is_forwarded_and_a_block_goes_as_one():
    site = Site(JOB, forwarding=True)
    miner = site.miner()
    site.publish(EASY_CHAIN)
    plain = grind(JOB, bytes(8), meets(DIFF))
    block = grind(EASY_CHAIN, bytes(8), lambda v: v <= NETWORK and meets(DIFF)(v))
    effects = site.submit(miner, "a1", bytes(8), plain)[1] + site.submit(miner, "blk", bytes(8), block)[1]
    assert [(type(e), e.job.job_id, e.is_block) for e in effects] == [
        (ShareForwarded, "a1", False), (ShareForwarded, "blk", True),
    ]
    low = grind(JOB, bytes([1]) * 8, misses(DIFF))
    assert site.submit(miner, "a1", bytes([1]) * 8, low) == (code(Reject.LOW_DIFFICULTY), ())


def test_upstream_answers_are_counted_per_worker():
    pool = Site(JOB).pool
    pool.upstream_stats(WORKER).forwarded += 3
    pool.upstream_answer(WORKER, True, "", 0.5, WALL)
    pool.upstream_answer(WORKER, False, "low_difficulty", 0.0, WALL + 1)
    stats = pool.upstream_workers[WORKER]
    assert (stats.accepted, stats.accepted_work, dict(stats.rejected), stats.pending, stats.last_accepted) == (
        1, 0.5, {"low_difficulty": 1}, 1, WALL,
    )


# -- the session's own refusals and the rig's figures --------------------------------------


def test_a_refusal_counts_against_the_proven_worker_never_a_claimed_name():
    site = Site(JOB)
    miner = site.miner()
    site.send(miner, b'{"id":9,"method":"mining.submit","params":["someone.else","a1","00","66000000","00000000"]}\n')
    assert site.rig.rejected["unauthorized"] == 1 and site.rigs.get("someone.else") is None


def test_vardiff_changes_go_out_with_the_job_again_and_the_rig_shows_the_one_in_force():
    site = Site(JOB)
    config = VardiffConfig(start_difficulty=DIFF, min_difficulty=1e-9, max_difficulty=1.0, target_interval=10.0)
    site.pool.vardiff = config
    miner = site.miner()
    site.monotonic += 600.0  # ten minutes without a share: vardiff steps down
    miner.idle(site.monotonic)
    out = miner.data_to_send()
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [m["method"] for m in lines] == ["mining.set_difficulty", "mining.notify"]
    lowered = lines[0]["params"][0]
    assert lowered < DIFF and lines[1]["params"][-1] is False  # clean_jobs false: work kept
    assert site.rig.difficulty == lowered


def test_disconnect_counts_down_the_rigs_connections():
    site = Site(JOB)
    miner = site.miner()
    assert site.rig.connections == 1
    miner.disconnected(WALL + 5)
    assert (site.rig.connections, site.rig.last_seen) == (0, WALL + 5)


# -- rig records come from real work -----------------------------------------------------------

OPEN_FLOOD = SessionConfig(version_mask=0x1FFFE000, authorizer=OpenAuthorization(), max_workers=1001)


def authorize_lines(names) -> bytes:
    return b"".join(b'{"id":4,"method":"mining.authorize","params":["%s","x"]}\n' % n.encode() for n in names)


def test_under_open_a_thousand_authorized_names_make_no_rig_record_and_their_rejects_are_counted():
    site = Site(JOB, authorizer=OpenAuthorization())
    miner = site.miner(config=OPEN_FLOOD)
    names = [f"acct.flood{i:04d}" for i in range(1000)]
    effects = site.send(miner, authorize_lines(names))
    assert sum(type(e) is Authorized for e in effects) == 1000
    assert miner.session.authorized_workers == {WORKER, *names}
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "nope", bytes(8), nonce)[0] == code(Reject.UNKNOWN_JOB)  # WORKER's
    site.send(miner, b'{"id":9,"method":"mining.submit","params":["acct.flood0007","gone","00","66000000","0"]}\n')
    site.send(miner, b'{"id":9,"method":"mining.submit","params":["never.authorized","a1","00","66000000","0"]}\n')
    assert len(site.rigs) == 0 and site.rigs.get(WORKER) is None
    assert dict(site.pool.unattributed_rejects) == {"unknown_job": 1, "malformed": 1, "unauthorized": 1}
    miner.disconnected(WALL + 1)
    assert len(site.rigs) == 0


def test_under_open_the_first_accepted_share_makes_exactly_one_rig_shown_connected():
    site = Site(JOB, authorizer=OpenAuthorization())
    miner = site.miner(config=OPEN_FLOOD)
    site.send(miner, authorize_lines(f"acct.flood{i:04d}" for i in range(1000)))
    site.wall += 30
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(miner, "a1", bytes(8), nonce)[0] is True
    assert list(site.rigs.rigs) == [WORKER]
    rig = site.rig
    assert (rig.ip, rig.connections, rig.connected_since, rig.difficulty, rig.accepted) == (
        "10.0.0.7", 1, WALL + 30, DIFF, 1,
    )
    low = grind(JOB, bytes([1]) * 8, misses(DIFF))
    assert site.submit(miner, "a1", bytes([1]) * 8, low)[0] == code(Reject.LOW_DIFFICULTY)
    assert rig.rejected["low_difficulty"] == 1 and not site.pool.unattributed_rejects  # the rig's now
    miner.disconnected(WALL + 60)
    assert (rig.connections, rig.last_seen, len(site.rigs)) == (0, WALL + 60, 1)


def test_under_open_a_rigs_connections_stay_balanced_whenever_its_record_is_made():
    site = Site(JOB, authorizer=OpenAuthorization())
    early = site.miner()  # logged in before the rig had a record: not counted yet
    first = site.miner(bytes.fromhex("0badf00e"))
    nonce = grind(JOB, bytes(8), meets(DIFF), en1=bytes.fromhex("0badf00e"))
    assert site.submit(first, "a1", bytes(8), nonce)[0] is True
    assert site.rig.connections == 1
    late = site.miner(bytes.fromhex("0badf00f"))  # the record exists: counted at login
    assert site.rig.connections == 2
    nonce = grind(JOB, bytes(8), meets(DIFF))
    assert site.submit(early, "a1", bytes(8), nonce)[0] is True  # counted at its first share
    assert (site.rig.connections, site.rig.accepted) == (3, 2)
    assert site.submit(early, "a1", bytes(8), grind(JOB, bytes(8), meets(DIFF), start=nonce + 1))[0] is True
    assert site.rig.connections == 3  # once per connection, not per share
    for miner, left in ((late, 2), (early, 1), (first, 0)):
        miner.disconnected(WALL + 5)
        assert site.rig.connections == left
    early.disconnected(WALL + 6)  # a second call changes nothing
    assert site.rig.connections == 0


@pytest.mark.parametrize(
    "authorizer", [ALLOWLIST, PasswordAuthorization({"acct": "x"})], ids=["allowlist", "password"]
)
def test_a_policy_that_proves_the_name_makes_the_rig_at_login_as_before(authorizer):
    site = Site(JOB, authorizer=authorizer)
    miner = site.miner()
    rig = site.rig
    assert (rig.ip, rig.connections, rig.connected_since, rig.accepted) == ("10.0.0.7", 1, WALL, 0)
    low = grind(JOB, bytes(8), misses(DIFF))
    assert site.submit(miner, "a1", bytes(8), low)[0] == code(Reject.LOW_DIFFICULTY)
    assert rig.rejected["low_difficulty"] == 1 and not site.pool.unattributed_rejects
    miner.disconnected(WALL + 5)
    assert rig.connections == 0
