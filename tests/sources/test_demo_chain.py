"""The demo chain: real templates, blocks found by real shares, timers driven by a fake clock, resuming from a tip."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import statistics

import pytest

from fleetd import native
from fleetd.chain.byteorder import hash_to_display, hash_to_int
from fleetd.chain.coinbase import bip34_height, encode_height
from fleetd.chain.hashes import sha256d
from fleetd.chain.merkle import fold_branch, merkle_root
from fleetd.chain.network import epoch_start_height
from fleetd.chain.serialize import parse_block, parse_transaction
from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from fleetd.stratum.job import Job
from fleetd.sources.base import JobSource, SolvedBlock
from fleetd.sources.coinbase_builder import find_witness_commitment
from fleetd.sources.demo import (
    DEFAULT_PAYOUT_SCRIPT,
    GENESIS_AGE,
    MAX_FUTURE_BLOCK_TIME,
    REGTEST_HALVING_INTERVAL,
    DemoChain,
    DemoTip,
    EconomicsNetwork,
    FoundRecord,
    block_subsidy,
)
from fake_clock import START_WALL, FakeClock, settle
from sources_support import EN1, EN2, WORKER, carried_block, carries_no_block, miss, solve

TINY = 1e-5  # about 430 nonces per block on average


class Running:
    """A DemoChain whose run() task is live, with every published job recorded."""

    def __init__(self, time: FakeClock | None = None, **kwargs) -> None:
        self.time = time or FakeClock()
        kwargs.setdefault("network_difficulty", TINY)
        self.chain = DemoChain(clock=self.time, **kwargs)
        self.jobs: list[Job] = []

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.chain.run(self.jobs.append))
        await settle()
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


async def test_first_job_is_clean_with_a_real_coinbase():
    async with Running(pool_tag="/demo-pool/") as r:
        (job,) = r.jobs
        assert job.ntime == int(r.time.wall())
        assert job.clean_jobs and job.height == 1 and r.chain.height == 1
        assert job.version == 0x20000000 and job.nbits == target_to_bits(difficulty_to_target(TINY))
        assert re.fullmatch(r"[0-9a-f]{8}", job.job_id)
        cb = parse_transaction(job.coinb1 + EN1 + EN2 + job.coinb2)
        assert cb.is_coinbase
        script_sig = cb.inputs[0].script_sig
        assert bip34_height(script_sig) == 1
        # height, then the extranonce slot as one push, then the tag
        assert script_sig == encode_height(1) + bytes([12]) + EN1 + EN2 + bytes([11]) + b"/demo-pool/"
        assert cb.outputs[0].script_pubkey == DEFAULT_PAYOUT_SCRIPT
        template = job.block_data
        assert cb.outputs[0].value == block_subsidy(1) + sum(1_000 + 100 * i for i in range(4))
        assert find_witness_commitment(cb) is not None
        assert len(template.transactions) == 4


@pytest.mark.parametrize("n_tx", [0, 1, 4, 9])
async def test_merkle_branch_folds_to_the_root_of_the_template(n_tx):
    async with Running(transactions_per_block=n_tx) as r:
        job = r.jobs[0]
        template = job.block_data
        assert len(template.transactions) == n_tx
        assert job.transaction_ids == tuple(tx.txid for tx in template.transactions)  # mining.get_transactions
        coinbase_txid = dsha(job.coinb1 + EN1 + EN2 + job.coinb2)
        txids = [coinbase_txid, *(tx.txid for tx in template.transactions)]
        assert fold_branch(coinbase_txid, job.merkle_branch) == merkle_root(txids)
        for tx in template.transactions:  # real txids: they are the hash of the bytes
            parsed = parse_transaction(tx.data)
            assert parsed.txid == tx.txid == dsha(parsed.serialize(with_witness=False))
            assert tx.wtxid == dsha(tx.data)


async def test_a_ground_block_is_accepted_assembled_and_moves_the_tip():
    async with Running(payout_script="0014" + "ab" * 20) as r:
        job = r.jobs[0]
        solved = solve(job)
        outcome = await r.chain.submit_block(solved)
        assert outcome.accepted, outcome
        assert (outcome.hash, outcome.height, outcome.reason) == (hash_to_display(solved.hash), 1, "accepted")

        (found,) = r.chain.found_blocks
        assert (found.height, found.hash, found.worker, found.time) == (1, outcome.hash, WORKER, r.time.wall())
        # the outcome carries the block it kept: header, coinbase (the miner's extranonce in it) and all
        assert outcome.block_hex == found.raw.hex() and carried_block(outcome).hash == solved.hash
        assert bytes.fromhex(outcome.coinbase_hex) == job.block_data.coinbase.transaction(EN1 + EN2).serialize()
        block = parse_block(found.raw)
        assert block.hash == solved.hash and hash_to_int(block.hash) <= bits_to_target(block.nbits)
        assert block.prevhash == job.prevhash and (block.ntime, block.nonce) == (job.ntime, solved.nonce)
        assert block.merkle_root == merkle_root(block.txids)
        coinbase = block.transactions[0]
        assert coinbase.inputs[0].script_sig[2:14] == EN1 + EN2  # the miner's extranonce is in the block
        assert coinbase.outputs[0].script_pubkey.hex() == "0014" + "ab" * 20
        assert coinbase.witnesses == ((bytes(32),),)
        wtxids = [bytes(32)] + [tx.wtxid for tx in block.transactions[1:]]
        assert find_witness_commitment(coinbase) == dsha(merkle_root(wtxids) + coinbase.witnesses[0][0])
        assert any(tx.has_witness for tx in block.transactions[1:])

        # the next job was published at once: clean, one higher, on top of the found block
        assert len(r.jobs) == 2
        nxt = r.jobs[1]
        assert nxt.clean_jobs and nxt.height == 2 and nxt.prevhash == solved.hash
        assert r.chain.height == 2 and r.chain.prevhash == solved.hash
        assert bip34_height(parse_transaction(nxt.coinb1 + EN1 + EN2 + nxt.coinb2).inputs[0].script_sig) == 2

        # the same block again, and any other share on the old tip, are refused (before being built)
        again = await r.chain.submit_block(solved)
        assert again.reason == "duplicate" and carries_no_block(again)
        late = solve(job, en2=b"\xff" * 8)
        stale = await r.chain.submit_block(late)
        assert stale.reason == "stale-prevblk" and carries_no_block(stale)
        # and the chain goes on: a block on the new job is accepted too
        assert (await r.chain.submit_block(solve(nxt))).accepted
        assert [b.height for b in r.chain.found_blocks] == [1, 2] and r.jobs[-1].height == 3


async def test_forged_blocks_are_refused_and_change_nothing():
    async with Running() as r:
        job = r.jobs[0]
        good = solve(job)
        bad_nonce, bad_hash = miss(job)
        forged = [
            (dataclasses.replace(good, nonce=bad_nonce, hash=bad_hash), "high-hash"),  # true claim, not a block
            (dataclasses.replace(good, nonce=bad_nonce), "hash-mismatch"),  # claims the good hash, wrong nonce
            (dataclasses.replace(good, hash=bytes(32)), "hash-mismatch"),  # real work, wrong claim
            (dataclasses.replace(good, job=dataclasses.replace(job, block_data=None)), "unknown-work"),
            (dataclasses.replace(good, extranonce2=EN2[:7]), "bad-extranonce-size"),
            (dataclasses.replace(good, extranonce1=EN1 + EN2[:1], extranonce2=EN2[1:]), "bad-extranonce-size"),
        ]
        future = job.ntime + 7200 + 60
        forged.append((solve(job, ntime=future), "time-too-new"))
        forged.append((solve(job, ntime=job.ntime - 10_000), "time-too-old"))
        for block, reason in forged:
            outcome = await r.chain.submit_block(block)
            assert not outcome.accepted and outcome.reason == reason, (reason, outcome)
            if reason.startswith("time-too-"):  # a real block whose header Core refuses: its bytes are kept
                carried = carried_block(outcome)
                assert (carried.hash, carried.ntime) == (block.hash, block.ntime)
            else:  # never assembled into the block it claims
                assert carries_no_block(outcome), reason
        assert r.chain.found_blocks == () and r.chain.height == 1 and len(r.jobs) == 1
        assert (await r.chain.submit_block(good)).accepted  # the real one still is


async def test_accepted_hash_is_the_c_cores_and_the_headers():
    async with Running() as r:
        job = r.jobs[0]
        good = solve(job)
        direct = native.header_hash(job.coinb1, EN1, EN2, job.coinb2, job.merkle_branch, job.version,
                                    job.prevhash, job.ntime, job.nbits, good.nonce)  # fmt: skip
        outcome = await r.chain.submit_block(good)
        assert outcome.accepted and outcome.hash == hash_to_display(direct)
        assert sha256d(r.chain.found_blocks[0].raw[:80]) == direct


async def test_refresh_and_interval_block_follow_the_injected_clock():
    async with Running(block_interval_seconds=600, refresh_seconds=30) as r:
        first = r.jobs[0]
        await r.time.advance(29.9)
        assert len(r.jobs) == 1  # nothing before the refresh is due
        await r.time.advance(0.1)
        assert len(r.jobs) == 2
        refresh = r.jobs[1]
        assert not refresh.clean_jobs and refresh.height == 1 and refresh.prevhash == first.prevhash
        assert refresh.ntime == first.ntime + 30 and refresh.job_id != first.job_id
        assert refresh.coinb1 == first.coinb1 and refresh.merkle_branch == first.merkle_branch

        await r.time.advance(600 - 30)
        jobs_now = r.jobs[2:]
        assert [j.clean_jobs for j in jobs_now][-1] is True
        block_job = next(j for j in jobs_now if j.clean_jobs)
        assert block_job.height == 2 and block_job.prevhash != first.prevhash
        assert r.chain.found_blocks == ()  # someone else's block: nothing recorded as ours
        assert sum(j.clean_jobs for j in r.jobs) == 2
        # 18 refreshes fit in the 570 s between the first refresh and the block; none clean
        assert len(r.jobs) == 2 + 18 + 1
        assert (await r.chain.submit_block(solve(first))).reason == "stale-prevblk"


async def test_a_found_block_restarts_both_timers():
    async with Running(block_interval_seconds=600, refresh_seconds=30) as r:
        await r.time.advance(590)
        assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        count = len(r.jobs)
        await r.time.advance(29)
        assert len(r.jobs) == count  # the refresh timer restarted with the new job
        await r.time.advance(600 - 29 - 1)
        assert r.chain.height == 2  # the block timer restarted too
        await r.time.advance(1)
        assert r.chain.height == 3 and r.jobs[-1].clean_jobs


async def test_an_older_job_on_the_same_tip_still_makes_a_block():
    # the job carries its template: however many jobs came since, the chain needs no list of its own
    async with Running(refresh_seconds=30, block_interval_seconds=None) as r:
        first = r.jobs[0]
        await r.time.advance(40 * 30)
        assert len(r.jobs) == 41
        solved = solve(first)
        assert (await r.chain.submit_block(solved)).accepted
        assert parse_block(r.chain.found_blocks[0].raw).hash == solved.hash


async def test_timers_can_be_switched_off():
    async with Running(block_interval_seconds=None, refresh_seconds=None) as r:
        await r.time.advance(10_000)
        assert len(r.jobs) == 1 and r.time.sleeps == []


async def test_ntime_stays_above_the_median_time_past():
    # blocks found faster than the clock ticks: each must still be later than the median of the
    # previous 11 (BIP113), as Core's UpdateTime guarantees for its templates
    async with Running(max_found_blocks=20) as r:
        genesis_time = int(r.time.wall()) - GENESIS_AGE
        for _ in range(14):
            assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        times = [genesis_time] + [parse_block(b.raw).ntime for b in r.chain.found_blocks]
        for i in range(1, len(times)):
            assert times[i] > statistics.median_low(times[max(0, i - 11) : i])
        assert times[-1] > times[0]


async def test_found_blocks_are_bounded():
    async with Running(max_found_blocks=2) as r:
        for _ in range(3):
            assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        assert [b.height for b in r.chain.found_blocks] == [2, 3]


async def test_job_ids_are_unique_short_hex():
    async with Running(refresh_seconds=1, block_interval_seconds=7) as r:
        await r.time.advance(50)
        ids = [j.job_id for j in r.jobs]
        assert len(ids) == len(set(ids)) > 40
        assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)


@pytest.mark.parametrize(("en1_size", "en2_size"), [(1, 2), (4, 4), (8, 8), (16, 16)])
async def test_other_extranonce_layouts_mine(en1_size, en2_size):
    async with Running(extranonce1_size=en1_size, extranonce2_size=en2_size) as r:
        en1, en2 = b"\x01" * en1_size, b"\x02" * en2_size
        job = r.jobs[0]
        cb = parse_transaction(job.coinb1 + en1 + en2 + job.coinb2)
        assert en1 + en2 in cb.inputs[0].script_sig
        assert (await r.chain.submit_block(solve(job, en1, en2))).accepted


async def test_health_and_lifecycle():
    time = FakeClock()
    chain = DemoChain(network_difficulty=TINY, clock=time)
    assert isinstance(chain, JobSource)
    before = chain.health()
    assert (before.kind, before.up, before.last_job_time) == ("demo", False, None)
    jobs: list[Job] = []
    task = asyncio.create_task(chain.run(jobs.append))
    await settle()
    health = chain.health()
    assert health.up and health.last_job_time == time.wall() and "height 1" in health.detail
    with pytest.raises(RuntimeError, match="already running"):
        await chain.run(jobs.append)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not chain.health().up
    # a block submitted while nobody listens still counts; the next run starts from the new tip
    assert (await chain.submit_block(solve(jobs[0]))).accepted
    task = asyncio.create_task(chain.run(jobs.append))
    await settle()
    assert jobs[-1].height == 2 and jobs[-1].clean_jobs
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_subsidy_halves_like_regtest():
    assert block_subsidy(1) == 50 * 10**8
    assert block_subsidy(REGTEST_HALVING_INTERVAL) == 25 * 10**8
    assert block_subsidy(64 * REGTEST_HALVING_INTERVAL) == 0


def test_network_difficulty_sets_nbits():
    chain = DemoChain(network_difficulty=0.01)
    assert chain.nbits == target_to_bits(difficulty_to_target(0.01))
    assert chain.network_target == bits_to_target(chain.nbits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network_difficulty": -1}, r"network_difficulty = -1: must be a positive"),
        ({"network_difficulty": 0}, r"network_difficulty = 0: must be a positive"),
        ({"network_difficulty": float("nan")}, r"network_difficulty = nan"),
        ({"network_difficulty": float("inf")}, r"network_difficulty = inf"),
        ({"network_difficulty": "0.01"}, r"network_difficulty = '0.01'"),
        ({"pool_tag": "x" * 81}, r"pool_tag = 'x+' is 81 bytes; at most 80 fit"),
        ({"pool_tag": "x" * 85, "extranonce2_size": 4}, r"is 85 bytes; at most 84 fit"),
        ({"extranonce1_size": 0}, r"extranonce1_size = 0 is out of range: use an integer from 1 to 16"),
        ({"extranonce1_size": 17}, r"extranonce1_size = 17 is out of range"),
        ({"extranonce2_size": 1}, r"extranonce2_size = 1 is out of range: use an integer from 2 to 16"),
        ({"extranonce2_size": 33}, r"extranonce2_size = 33 is out of range"),
        ({"extranonce2_size": True}, r"extranonce2_size = True"),
        ({"block_interval_seconds": -5}, r"block_interval_seconds = -5"),
        ({"refresh_seconds": 0}, r"refresh_seconds = 0"),
        ({"payout_script": "zz"}, r"payout_script = 'zz': must be a hex scriptPubKey"),
        ({"transactions_per_block": -1}, r"transactions_per_block = -1"),
        ({"max_found_blocks": 0}, r"max_found_blocks = 0"),
    ],
)
def test_bad_config_raises_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoChain(**kwargs)


def test_solved_block_checks_its_fields():
    job = Job("j", bytes(32), b"", b"", (), 0x20000000, 0x207FFFFF, 0, True)
    with pytest.raises(ValueError, match="32 bytes"):
        SolvedBlock(job, EN1, EN2, 0, 0, 0x20000000, b"\x00" * 31, WORKER)
    with pytest.raises(TypeError, match="bytes"):
        SolvedBlock(job, EN1.hex(), EN2, 0, 0, 0x20000000, bytes(32), WORKER)
    assert SolvedBlock(job, EN1, EN2, 0, 0, 0x20000000, bytes(32), WORKER).job_id == "j"


# -- resuming from a stored tip (DemoChain.tip(), DemoTip's JSON form, resume=) -------------


async def mined(blocks: int = 3, **kwargs) -> tuple[DemoTip, FakeClock, list]:
    """A chain on which rigs found ``blocks`` blocks, stopped; its tip, clock and solved blocks."""
    time = FakeClock()
    solved = []
    async with Running(time, **kwargs) as r:
        for _ in range(blocks):
            time.tick(7)
            block = solve(r.jobs[-1])
            assert (await r.chain.submit_block(block)).accepted
            solved.append(block)
        tip = r.chain.tip()
    return tip, time, solved


def later(time: FakeClock, seconds: float) -> FakeClock:
    """The clock of a restarted process: wall time ran on, monotonic time starts afresh."""
    return FakeClock(wall=time.wall() + seconds, monotonic=50.0)


def stored(tip: DemoTip) -> DemoTip:
    return DemoTip.from_dict(json.loads(json.dumps(tip.to_dict())))


async def test_a_restored_chain_mines_the_next_block_on_the_old_tip():
    tip, time, solved = await mined(3)
    assert (tip.height, tip.hash, tip.found_total) == (3, solved[-1].hash, 3)
    assert [r.height for r in tip.found] == [1, 2, 3] and tip.found[-1].hash == hash_to_display(solved[-1].hash)
    assert tip.time == solved[-1].ntime and tip.since == time.wall()

    async with Running(later(time, 5), resume=stored(tip)) as r:
        (job,) = r.jobs
        assert job.clean_jobs and job.height == 4 == r.chain.height and job.prevhash == tip.hash
        assert job.ntime > tip.median_time_past and job.ntime == int(r.time.wall())
        assert bip34_height(parse_transaction(job.coinb1 + EN1 + EN2 + job.coinb2).inputs[0].script_sig) == 4

        block = solve(job)
        outcome = await r.chain.submit_block(block)
        assert outcome.accepted and (outcome.height, outcome.hash) == (4, hash_to_display(block.hash))
        found = r.chain.found_blocks
        assert [(b.height, b.worker) for b in found] == [(1, WORKER), (2, WORKER), (3, WORKER), (4, WORKER)]
        assert [b.hash for b in found[:3]] == [hash_to_display(b.hash) for b in solved]
        assert all(b.raw == b"" for b in found[:3])  # the journal keeps the blocks themselves
        parsed = parse_block(found[-1].raw)
        assert parsed.hash == block.hash and parsed.prevhash == tip.hash
        assert r.jobs[-1].height == 5 and r.jobs[-1].prevhash == block.hash
        assert "4 blocks found" in r.chain.health().detail

        # a share on the last block before the restart is stale, as it would have been then
        stale = solve(solved[-1].job, en2=b"\xee" * 8)
        assert (await r.chain.submit_block(stale)).reason == "stale-prevblk"

        again = r.chain.tip()
        assert (again.height, again.found_total) == (4, 4) and [f.height for f in again.found] == [1, 2, 3, 4]


async def test_the_tip_round_trips_through_json():
    tip, _, _ = await mined(3)
    text = json.dumps(tip.to_dict())
    data = json.loads(text)
    assert isinstance(data["hash"], str) and len(data["hash"]) == 64
    assert data["hash"] == hash_to_display(tip.hash)  # display order, as explorers print it
    assert DemoTip.from_dict(data) == tip
    assert json.dumps(DemoTip.from_dict(data).to_dict()) == text


async def test_a_fresh_chains_tip_resumes_on_its_genesis():
    time = FakeClock()
    first = DemoChain(network_difficulty=TINY, clock=time)
    tip = first.tip()
    assert (tip.height, tip.found_total, tip.found) == (0, 0, ())
    async with Running(later(time, 1), resume=stored(tip)) as r:
        assert r.jobs[0].height == 1 and r.jobs[0].prevhash == first.prevhash
        assert (await r.chain.submit_block(solve(r.jobs[0]))).accepted


async def test_economics_network_state_continues_its_epoch():
    model = EconomicsNetwork(height=975_000, block_time_seconds=627.0)
    time = FakeClock()
    async with Running(time, economics_network=model) as r:
        for _ in range(3):
            time.tick(600)
            assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        before = r.chain.network_state()
        tip = r.chain.tip()
    assert before.height == 975_003 and tip.economics_height == 975_002
    assert len(before.block_times_seconds) == 975_002 - epoch_start_height(975_002) + 1

    clock = later(time, 60)
    async with Running(clock, economics_network=model, resume=stored(tip)) as r:
        after = r.chain.network_state()
        assert after.height == before.height
        assert after.block_times_seconds == before.block_times_seconds
        clock.tick(600)
        assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        moved = r.chain.network_state()
        assert moved.height == before.height + 1
        assert moved.block_times_seconds == (*before.block_times_seconds, clock.wall())


async def test_economics_epoch_rolls_over_after_resume():
    boundary = 2016 * 500
    model = EconomicsNetwork(height=boundary - 1)  # the modelled tip is the epoch's last but one block
    time = FakeClock()
    async with Running(time, economics_network=model) as r:
        assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted  # modelled tip: the epoch's last
        tip = r.chain.tip()
    assert tip.economics_height == boundary - 1 and len(tip.economics_times) == 2016
    async with Running(later(time, 1), economics_network=model, resume=stored(tip)) as r:
        assert len(r.chain.network_state().block_times_seconds) == 2016
        assert (await r.chain.submit_block(solve(r.jobs[-1]))).accepted
        state = r.chain.network_state()
        assert state.height == boundary + 1 and state.block_times_seconds == (r.time.wall(),)


async def test_ntime_never_goes_below_the_tips_median_time_past():
    tip, time, _ = await mined(3)
    ahead = [int(time.wall()) + 3600 + i for i in range(4)]  # blocks rolled an hour ahead: Core allows 2
    tip = DemoTip(**{**_fields(tip), "times": (*tip.times[:-4], *ahead)})
    async with Running(later(time, 1), resume=tip) as r:
        job = r.jobs[0]
        mtp = int(statistics.median_low(tip.times))
        assert job.ntime == max(int(r.time.wall()), mtp + 1) and job.ntime > mtp
        assert (await r.chain.submit_block(solve(job))).accepted


async def test_the_interval_timer_runs_on_from_when_the_tip_was_reached():
    tip, time, _ = await mined(3)
    clock = later(time, 590)
    async with Running(clock, resume=tip, block_interval_seconds=600, refresh_seconds=None) as r:
        assert [j.height for j in r.jobs] == [4]
        await clock.advance(9.9)
        assert r.chain.height == 4
        await clock.advance(0.1)
        assert r.chain.height == 5 and r.jobs[-1].clean_jobs and r.chain.found_blocks[-1].height == 3

    # stopped longer than the interval: another miner's block comes at once, then the timer restarts
    clock = later(time, 1_000)
    async with Running(clock, resume=tip, block_interval_seconds=600, refresh_seconds=None) as r:
        assert [(j.height, j.clean_jobs) for j in r.jobs] == [(4, True), (5, True)]
        assert r.jobs[1].prevhash != tip.hash and r.chain.tip().found_total == 3
        await clock.advance(599)
        assert r.chain.height == 5


async def test_a_tip_ahead_of_the_clock_is_refused():
    tip, time, _ = await mined(3)
    behind = FakeClock(wall=time.wall() - 1)  # the clock went back since the tip was reached
    with pytest.raises(ValueError, match=r"resume: the tip's since .* is ahead of the clock"):
        DemoChain(network_difficulty=TINY, clock=behind, resume=tip)

    far = int(time.wall()) + MAX_FUTURE_BLOCK_TIME + 60
    future = DemoTip(**{**_fields(tip), "times": (*tip.times[:-1], far)})
    with pytest.raises(ValueError, match=r"resume: the tip's header time .* more than 2 hours ahead"):
        DemoChain(network_difficulty=TINY, clock=later(time, 1), resume=future)

    with pytest.raises(ValueError, match=r"resume = .*: must be a DemoTip"):
        DemoChain(clock=later(time, 1), resume=tip.to_dict())


def _fields(tip: DemoTip) -> dict:
    return {name: getattr(tip, name) for name in DemoTip.__dataclass_fields__}


def _good() -> dict:
    time = FakeClock()
    return {
        "format": 1,
        "height": 3,
        "hash": "00" * 31 + "ab",
        "times": [int(START_WALL) - 600, int(START_WALL), int(START_WALL) + 1, int(START_WALL) + 2],
        "since": time.wall(),
        "economics_height": 975_002,
        "economics_times": [START_WALL - 627.0, START_WALL],
        "found_total": 5,
        "found": [{"height": 3, "hash": "00" * 31 + "ab", "worker": "acct.rig1", "time": START_WALL}],
    }


def test_the_good_dict_is_good():
    tip = DemoTip.from_dict(_good())
    assert tip.height == 3 and tip.hash == bytes.fromhex("ab" + "00" * 31)
    assert tip.found == (FoundRecord(3, "00" * 31 + "ab", "acct.rig1", START_WALL),)


def _without(name):
    data = _good()
    del data[name]
    return data


def _with(**changes):
    return {**_good(), **changes}


def _found(**changes):
    data = _good()
    data["found"] = [{**data["found"][0], **changes}]
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        *[
            (_without(name), rf"^{name}: missing from the demo tip")
            for name in ("format", "height", "hash", "times", "since", "economics_height", "economics_times",
                         "found_total", "found")  # fmt: skip
        ],
        ([], r"^demo tip = \[\]: must be a JSON object"),
        (_with(format=2), r"^format = 2: this fleetd reads demo tips of format 1"),
        (_with(format=True), r"^format = True"),
        (_with(height=-1), r"^height = -1: must be an integer"),
        (_with(height="3"), r"^height = '3': must be an integer"),
        (_with(height=3.0), r"^height = 3.0: must be an integer"),
        (_with(height=True), r"^height = True"),
        (_with(hash="zz" * 32), r"^hash = 'zz+': must be a 32-byte hash as 64 hex digits"),
        (_with(hash="ab" * 31), r"^hash = .*: must be a 32-byte hash"),
        (_with(hash=7), r"^hash = 7: must be a 32-byte hash"),
        (_with(times="now"), r"^times = 'now': must be a JSON array"),
        (_with(times=[]), r"^times has 0 entries: must hold from 1 to 4"),
        (_with(times=[1] * 12, height=20), r"^times has 12 entries: must hold from 1 to 11"),
        (_with(times=[1, "2"]), r"^times = '2': must be an integer"),
        (_with(times=[1, -2]), r"^times = -2: must be an integer"),
        (_with(since="now"), r"^since = 'now': must be a finite number"),
        (_with(since=float("nan")), r"^since = nan"),
        (_with(economics_height=-5), r"^economics_height = -5"),
        (_with(economics_times=[]), r"^economics_times has 0 entries: must hold from 1"),
        (_with(economics_times=[1.0, None]), r"^economics_times = None"),
        (_with(economics_times=[1.0] * 4, economics_height=2016 * 500 + 1), r"^economics_times has 4 entries: must hold from 1 to 2$"),
        (_with(found_total=-1), r"^found_total = -1"),
        (_with(found_total=0), r"^found_total = 0: must be an integer from 1"),  # fewer than it lists
        (_with(found={}), r"^found = \{\}: must be a JSON array"),
        (_with(found=[3]), r"^found\[0\] = 3: must be a JSON object"),
        (_found(worker=None), r"^found.worker = None: must be text"),
        (_found(height=0), r"^found.height = 0"),
        (_found(hash="xyz"), r"^found.hash = 'xyz'"),
        (_found(time="today"), r"^found.time = 'today'"),
        (_found(height=4), r"^found: heights \[4\] must rise and end at or below the tip's 3"),
        (_found(hash="cd" * 32), r"^found: the block at the tip's height 3 is not the tip's hash"),
    ],
)
def test_corrupt_dicts_raise_a_value_error_naming_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        DemoTip.from_dict(data)


def test_a_missing_found_field_is_named():
    data = _good()
    del data["found"][0]["worker"]
    with pytest.raises(ValueError, match=r"^found\[0\]\.worker: missing from the demo tip"):
        DemoTip.from_dict(data)
