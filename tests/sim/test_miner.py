"""The simulated miner against a loopback pool: real shares, verified by the C core."""

from __future__ import annotations

import asyncio

import pytest

from fleetd.chain.target import difficulty_to_target
from fleetd.sim.loopback import NotLoopbackError
from fleetd.sim.miner import DEFAULT_USER_AGENT, Miner, MinerConfig, MinerError, run_miner
from fleetd.stratum.rejects import Reject
from fleetd.stratum.session import SessionConfig
from server_support import TINY_DIFFICULTY, make_config, start_fleetd
from sim_support import LoopbackPool, make_job

WORKER = "sim.rig1"


def config(pool: LoopbackPool, **kwargs) -> MinerConfig:
    return MinerConfig("127.0.0.1", pool.port, **kwargs)


def assert_no_tasks_left() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}


def error(reject: Reject) -> tuple[int, str]:
    return (reject.code, reject.message)


async def test_mines_real_shares_that_the_core_verifies():
    async with LoopbackPool(difficulty=1e-6) as pool:
        stats = await run_miner(config(pool), max_shares=8, seconds=30)
        assert pool.connections[0].user_agent == DEFAULT_USER_AGENT
        extranonce1 = pool.connections[0].session.extranonce1
    assert (stats.submitted, stats.accepted, stats.rejected, stats.in_flight) == (8, 8, 0, 0)
    assert len(pool.accepted) == 8 and not pool.rejected
    target = difficulty_to_target(1e-6)
    assert all(share.hash_value <= target for share in pool.accepted)
    assert len({(s.extranonce2, s.nonce) for s in pool.accepted}) == 8
    assert all(s.worker == WORKER and s.extranonce1 == extranonce1 for s in pool.accepted)
    # no rolling negotiated: five parameters and the job's own version
    assert all(s.version_bits is None and s.version == pool.job.version for s in pool.accepted)
    # a share every ~4096 hashes at this difficulty: the miner really ground for them
    assert stats.hashes > 100 * 8
    assert stats.extranonce1 == extranonce1 and stats.extranonce2_size == 8
    assert stats.difficulty == 1e-6 and stats.jobs == 1 and stats.job_id == "j1"
    assert_no_tasks_left()


async def test_version_rolling_stays_inside_the_negotiated_mask():
    async with LoopbackPool(difficulty=1e-6, config=SessionConfig(min_difficulty=1e-12)) as pool:
        async with Miner(config(pool, version_rolling=True, requested_mask=0x00FFF000)) as miner:
            assert miner.stats().version_mask == 0x1FFFE000 & 0x00FFF000
            await miner.mine(max_shares=6, seconds=30)
            first = list(pool.accepted)
            pool.each(lambda session: session.set_version_mask(0x0001E000))
            await miner.wait_until(lambda s: s.version_mask == 0x0001E000)
            stats = await miner.mine(max_shares=4, seconds=30)
    assert stats.accepted == 10 and stats.rejected == 0
    job_version = pool.job.version
    for shares, mask in ((first, 0x00FFE000), (pool.accepted[6:], 0x0001E000)):
        assert len(shares) in (6, 4)
        for share in shares:
            assert share.version_bits and share.version_bits & ~mask == 0
            assert share.version == (job_version & ~mask) | share.version_bits
    assert len({s.version for s in first}) > 1


async def test_each_job_keeps_the_difficulty_it_came_with():
    async with LoopbackPool(difficulty=1e-8) as pool:
        async with Miner(config(pool)) as miner:
            await miner.mine(max_shares=4, seconds=30)
            pool.set_difficulty(1e-6)
            pool.broadcast(make_job("j2", clean=False, seed=2))
            job = await miner.wait_for_job(lambda job: job.job_id == "j2")
            assert job.difficulty == 1e-6
            stats = await miner.mine(max_shares=3, seconds=30)
            # the change re-sent j1 at once, so work on it from then on is at the new difficulty
            late = await miner.submit(miner.find_share("j1"))
    assert late.accepted and stats.accepted == 7
    by_job = {job_id: [s for s in pool.accepted if s.job_id == job_id] for job_id in ("j1", "j2")}
    assert len(by_job["j1"]) == 5 and len(by_job["j2"]) == 3
    assert all(s.difficulty == 1e-6 and s.hash_value <= difficulty_to_target(1e-6) for s in by_job["j2"])
    assert [s.difficulty for s in by_job["j1"]] == [1e-8] * 4 + [1e-6]  # the first four before the change


async def test_the_miner_works_at_the_difficulty_it_suggests():
    running = await start_fleetd(make_config(start_difficulty=1024.0))  # beyond any CPU
    try:
        host, port = running.stratum
        async with Miner(MinerConfig(host, port, username=WORKER, suggested_difficulty=TINY_DIFFICULTY)) as miner:
            await miner.wait_for_job(lambda job: job.difficulty == TINY_DIFFICULTY)
            stats = await miner.mine(max_shares=3, seconds=30)
    finally:
        await running.runner.cleanup()
    assert stats.accepted == 3 and stats.rejected == 0
    assert running.server.workers[WORKER].accepted_work == pytest.approx(3 * TINY_DIFFICULTY)


async def test_clean_jobs_move_the_miner_and_old_work_is_stale():
    async with LoopbackPool(difficulty=1e-7) as pool:
        async with Miner(config(pool)) as miner:
            await miner.mine(max_shares=2, seconds=30)
            old = miner.find_share()
            pool.broadcast(make_job("j2", clean=True, seed=3))
            await miner.wait_for_job(lambda job: job.job_id == "j2")
            stale = await miner.submit(old)
            stats = await miner.mine(max_shares=2, seconds=30)
    assert stale.error == error(Reject.STALE)
    assert stats.clean_jobs == 2 and stats.accepted == 4
    assert [s.job_id for s in pool.accepted] == ["j1", "j1", "j2", "j2"]


async def test_rejected_submits_carry_code_and_message():
    async with LoopbackPool(difficulty=1e-6) as pool:
        async with Miner(config(pool)) as miner:
            await miner.wait_for_job()
            share = miner.find_share()
            low = miner.find_share(meets_target=False)
            good = share.params(WORKER)
            replies = [
                await miner.submit(share),
                await miner.submit(share),  # the same share again
                await miner.submit(low),
                await miner.submit([WORKER, "j1", "00" * 4, *good[3:]]),  # 4-byte extranonce2, 8 expected
                await miner.submit([WORKER, "nope", *good[2:]]),
                await miner.submit(["someone.else", *good[1:]]),
            ]
            stats = miner.stats()
    assert replies[0].accepted
    expected = [
        Reject.DUPLICATE, Reject.LOW_DIFFICULTY, Reject.BAD_EXTRANONCE2_SIZE, Reject.UNKNOWN_JOB, Reject.UNAUTHORIZED,
    ]  # fmt: skip
    assert [r.error for r in replies[1:]] == [error(r) for r in expected]
    assert (stats.submitted, stats.accepted, stats.rejected) == (6, 1, 5)
    assert dict(stats.rejects) == {error(r): 1 for r in expected}
    assert pool.rejected == expected
    assert int.from_bytes(low.hash, "little") > difficulty_to_target(1e-6)


async def test_set_extranonce_applies_to_the_next_job():
    async with LoopbackPool(difficulty=1e-7) as pool:
        async with Miner(config(pool, extranonce_subscribe=True)) as miner:
            await miner.wait_for_job()
            sent = []
            pool.each(lambda session: sent.append(session.set_extranonce(bytes.fromhex("cafebabe01"), 6)))
            assert sent == [True]
            await miner.wait_until(lambda s: s.extranonce1 == bytes.fromhex("cafebabe01"))
            assert miner.job.extranonce2_size == 8  # the job in hand keeps its extranonce
            pool.broadcast(make_job("j2", clean=False, seed=4))
            await miner.wait_for_job(lambda job: job.job_id == "j2")
            stats = await miner.mine(max_shares=3, seconds=30)
    assert stats.accepted == 3 and stats.extranonce2_size == 6
    assert all(s.extranonce1 == bytes.fromhex("cafebabe01") and len(s.extranonce2) == 6 for s in pool.accepted)


async def test_show_message_and_reconnect_to_the_same_pool():
    async with LoopbackPool(difficulty=1e-7) as pool:
        async with Miner(config(pool)) as miner:
            pool.each(lambda session: session.show_message("maintenance at noon"))
            await miner.wait_until(lambda s: s.messages == ("maintenance at noon",))
            pool.each(lambda session: session.reconnect())  # no host: this server again
            await miner.wait_until(lambda s: s.reconnects == 1 and s.authorized)
            pool.each(lambda session: session.reconnect("127.0.0.1", pool.port, 0))
            await miner.wait_until(lambda s: s.reconnects == 2 and s.authorized)
            stats = await miner.mine(max_shares=2, seconds=30)
    assert len(pool.connections) == 3 and stats.accepted == 2
    assert {s.extranonce1 for s in pool.accepted} == {pool.connections[2].session.extranonce1}
    assert_no_tasks_left()


async def test_reconnect_off_this_machine_is_refused():
    async with LoopbackPool(difficulty=1e-7) as pool:
        async with Miner(config(pool)) as miner:
            pool.each(lambda session: session.reconnect("192.0.2.7", 3333, 0))
            stats = await miner.wait_until(lambda s: s.closed_reason is not None)
    assert "not a loopback address" in stats.closed_reason
    assert stats.reconnects == 0 and not stats.connected and len(pool.connections) == 1


async def test_hash_budget_bounds_the_hashing():
    async with LoopbackPool(difficulty=1e-6) as pool:
        async with Miner(config(pool, hashrate=20_000)) as miner:
            await miner.wait_for_job()
            stats = await miner.mine(seconds=0.5)
    # pacing lets at most one step (hashrate / 100 nonces) run ahead of the budget
    assert 2_000 <= stats.hashes <= 20_000 * 0.5 + 200


async def test_pool_closing_the_connection_ends_mining():
    async with LoopbackPool(difficulty=1e-6) as pool:
        miner = Miner(config(pool))
        await miner.connect()
        await miner.wait_for_job()
        pool.connections[0].writer.close()
        async with asyncio.timeout(5):
            stats = await miner.mine(seconds=30)
        assert not stats.connected and stats.closed_reason == "connection closed by the pool"
        await miner.close()
    assert_no_tasks_left()


async def test_authorization_refused_is_an_error():
    refuse = SessionConfig(authorizer=lambda username, password: False, min_difficulty=1e-12)
    async with LoopbackPool(config=refuse) as pool:
        with pytest.raises(MinerError, match=r"authorization refused: \(24, 'Unauthorized worker'\)"):
            await Miner(config(pool)).connect()
    assert_no_tasks_left()


@pytest.mark.parametrize("host", ["192.0.2.7", "10.0.0.1", "8.8.8.8", "::ffff:10.0.0.1"])
def test_only_loopback_hosts(host):
    with pytest.raises(NotLoopbackError, match="not a loopback address"):
        MinerConfig(host, 3333)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.9", "::1", "localhost"])
def test_loopback_hosts_allowed(host):
    assert MinerConfig(host, 3333).host == host
