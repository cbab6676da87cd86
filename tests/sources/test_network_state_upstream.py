"""The upstream source's network state: nbits and coinb1 height of the pool's job, block arrival times."""

from __future__ import annotations

import random

import pytest
from structlog.testing import capture_logs

from fake_clock import FakeClock
from fleetd.chain.coinbase import encode_height
from fleetd.chain.serialize import write_compact_size
from fleetd.stratum.job import Job
from fleetd.sources.base import NetworkReporting
from fleetd.sources.upstream import UpstreamSource
from upstream_support import WAIT, FakePool, proxying, start_proxy, start_upstream, upstream_config, wait_for

MAINNET_BITS = 0x17034219
EPOCH = 2016 * 433


def difficulty_of(nbits: int) -> float:
    """Difficulty from compact bits, worked out here by hand: diff-1 target over the target."""
    exponent, mantissa = nbits >> 24, nbits & 0xFFFFFF
    return (0xFFFF * 2**208) / (mantissa * 2 ** (8 * (exponent - 3)))


def coinb1_for(height: int, tag: bytes = b"/pool.example/", extranonce_size: int = 12) -> bytes:
    """coinb1 as pools cut it: the coinbase up to the extranonce, the BIP34 height first in the scriptSig."""
    head = encode_height(height) + tag
    return (
        (1).to_bytes(4, "little") + b"\x01" + bytes(32) + b"\xff\xff\xff\xff"
        + write_compact_size(len(head) + extranonce_size) + head
    )  # fmt: skip


# sequence, one P2WPKH output of 3.125 BTC, locktime
COINB2 = b"\xff\xff\xff\xff\x01" + (312_500_000).to_bytes(8, "little") + b"\x16\x00\x14" + bytes(20) + bytes(4)


def pool_job(job_id: str, height: int | None, *, prevhash: bytes | None = None, coinb1: bytes | None = None,
             nbits: int = MAINNET_BITS, clean: bool = True) -> Job:  # fmt: skip
    rng = random.Random(job_id)
    return Job(
        job_id=job_id,
        prevhash=prevhash if prevhash is not None else rng.randbytes(32),
        coinb1=coinb1 if coinb1 is not None else coinb1_for(height),
        coinb2=COINB2,
        merkle_branch=tuple(rng.randbytes(32) for _ in range(4)),
        version=0x20000000,
        nbits=nbits,
        ntime=1_800_000_000,
        clean_jobs=clean,
    )


def notify(pool: FakePool, job: Job) -> None:
    """The pool sends ``job`` on every open connection (and to any that logs in later)."""
    pool.job = job
    for session, writer in zip(pool.sessions, pool.writers):
        if not writer.is_closing():
            session.send_job(job)
            writer.write(session.data_to_send())


def height_of(source: UpstreamSource) -> int | None:
    state = source.network_state()
    return None if state is None else state.height


def test_none_before_the_first_job():
    source = UpstreamSource(upstream_config("stratum+tcp://127.0.0.1:3333"))
    assert isinstance(source, NetworkReporting)
    assert source.network_state() is None


async def test_height_and_difficulty_come_from_the_pools_job():
    clock = FakeClock()
    async with FakePool() as pool:
        pool.job = pool_job("a1", EPOCH + 17)
        async with proxying(pool.url, clock=clock) as (source, jobs):
            await wait_for(lambda: jobs, WAIT)
            state = source.network_state()
            assert state.height == EPOCH + 17 == jobs[0].height  # as the pool put it in coinb1
            assert state.difficulty == pytest.approx(difficulty_of(MAINNET_BITS), rel=1e-12)
            assert state.fees_btc_per_block is None and state.block_times_origin == "observed"
            assert state.block_times_seconds == ()  # the block before the first job came at an unknown time


async def test_new_prevhash_jobs_append_their_arrival_times():
    clock = FakeClock()
    async with FakePool() as pool:
        pool.job = pool_job("b0", EPOCH + 100)
        async with proxying(pool.url, clock=clock) as (source, jobs):
            await wait_for(lambda: jobs, WAIT)
            arrivals = []
            for k in range(1, 4):
                clock.tick(517.25 * k)
                arrivals.append(clock.wall())
                notify(pool, pool_job(f"b{k}", EPOCH + 100 + k))
                await wait_for(lambda: height_of(source) == EPOCH + 100 + k, WAIT)
                assert source.network_state().block_times_seconds == tuple(arrivals)
                # more work on the same block (new transactions) is no new block
                clock.tick(30)
                notify(pool, pool_job(f"b{k}x", EPOCH + 100 + k, prevhash=pool.job.prevhash, clean=False))
                await wait_for(lambda: jobs[-1].coinb1.startswith(pool.job.coinb1) and not jobs[-1].clean_jobs, WAIT)
                assert source.network_state().block_times_seconds == tuple(arrivals)
            assert source.network_state().tip_height == EPOCH + 102

            clock.tick(1200)
            notify(pool, pool_job("gap", EPOCH + 105))  # two blocks we never saw: the run starts again
            await wait_for(lambda: height_of(source) == EPOCH + 105, WAIT)
            assert source.network_state().block_times_seconds == (clock.wall(),)


async def test_a_new_epoch_starts_the_times_again():
    clock = FakeClock()
    async with FakePool() as pool:
        pool.job = pool_job("c0", EPOCH - 1)  # tip EPOCH - 2
        async with proxying(pool.url, clock=clock) as (source, jobs):
            await wait_for(lambda: jobs, WAIT)
            clock.tick(600)
            notify(pool, pool_job("c1", EPOCH))  # the tip is the epoch's last block
            await wait_for(lambda: height_of(source) == EPOCH, WAIT)
            assert source.network_state().block_times_seconds == (clock.wall(),)
            clock.tick(600)
            notify(pool, pool_job("c2", EPOCH + 1))  # the tip opens a new epoch
            await wait_for(lambda: height_of(source) == EPOCH + 1, WAIT)
            assert source.network_state().block_times_seconds == (clock.wall(),)


GARBAGE_COINB1 = [
    b"",
    bytes.fromhex("deadbeef"),
    coinb1_for(EPOCH)[:43],  # cut inside the height push
    coinb1_for(EPOCH)[:41] + b"\xfd\x05\x00" + encode_height(EPOCH),  # a non-canonical scriptSig length
    coinb1_for(EPOCH)[:42] + bytes.fromhex("048f3c0400"),  # a non-minimal height
    coinb1_for(EPOCH)[:42] + b"\x4c\x03abc",  # OP_PUSHDATA1: not a height
    coinb1_for(EPOCH)[:5] + b"\x11" * 36 + coinb1_for(EPOCH)[41:],  # not the null prevout
    b"\x02\x00\x00\x00\x00\x01" + coinb1_for(EPOCH)[5:],  # a witness serialization
]


async def test_unreadable_jobs_give_none_warn_once_and_never_break_the_source():
    clock = FakeClock()
    async with FakePool() as pool:
        pool.job = pool_job("d0", EPOCH + 5)
        with capture_logs() as logs:
            async with proxying(pool.url, clock=clock) as (source, jobs):
                await wait_for(lambda: jobs, WAIT)
                bad = [pool_job(f"g{i}", None, coinb1=c) for i, c in enumerate(GARBAGE_COINB1)]
                bad += [pool_job("n0", EPOCH + 6, nbits=0), pool_job("n1", EPOCH + 6, nbits=0x04923456)]
                for job in bad:
                    count = len(jobs)
                    notify(pool, job)
                    await wait_for(lambda: len(jobs) > count, WAIT)  # the rigs still get the job
                    assert source.network_state() is None
                assert jobs[-1].height == EPOCH + 6 and jobs[1].height is None

                clock.tick(600)
                notify(pool, pool_job("d1", EPOCH + 9))
                await wait_for(lambda: height_of(source) == EPOCH + 9, WAIT)
                assert source.network_state().block_times_seconds == (clock.wall(),)

                notify(pool, pool_job("g9", None, coinb1=b"\x00"))  # unreadable again: a new warning
                await wait_for(lambda: source.network_state() is None, WAIT)
        warnings = [e for e in logs if e["event"] == "upstream_network_unreadable"]
        assert len(warnings) == 2
        assert {e["log_level"] for e in warnings} == {"warning"} and warnings[0]["pool"] == pool.url
        assert warnings[0]["upstream_job_id"] == "g0"


async def test_a_new_session_on_another_block_does_not_count_as_an_arrival():
    clock = FakeClock()
    async with FakePool() as first, FakePool() as second:
        first.job = pool_job("e0", EPOCH + 50)
        second.job = pool_job("f0", EPOCH + 52)
        async with proxying(first.url, second.url, clock=clock) as (source, jobs):
            await wait_for(lambda: jobs, WAIT)
            clock.tick(600)
            notify(first, pool_job("e1", EPOCH + 51))
            await wait_for(lambda: height_of(source) == EPOCH + 51, WAIT)
            assert source.network_state().block_times_seconds == (clock.wall(),)

            first._server.close()
            for writer in first.writers:
                writer.close()
            clock.tick(900)
            await wait_for(lambda: height_of(source) == EPOCH + 52, WAIT)  # failed over to the second pool
            # when EPOCH + 51 was found is not known: its job came with the login, not as news
            assert source.network_state().block_times_seconds == ()
            clock.tick(300)
            notify(second, pool_job("f1", EPOCH + 53))
            await wait_for(lambda: height_of(source) == EPOCH + 53, WAIT)
            assert source.network_state().block_times_seconds == (clock.wall(),)


async def test_behind_a_real_fleetd_pool():
    up = await start_upstream()
    try:
        proxy = await start_proxy(up.url)
        try:
            state = proxy.source.network_state()
            assert state.height == up.source.height  # the BIP34 push the upstream fleetd wrote
            assert state.height == proxy.server.current_job.height
            assert state.difficulty == pytest.approx(difficulty_of(up.source.current_job.nbits), rel=1e-12)
            assert state.difficulty == pytest.approx(1e9, rel=1e-4)  # what the upstream fleetd is configured at
        finally:
            await proxy.stop()
    finally:
        await up.stop()
