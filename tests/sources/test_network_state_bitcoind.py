"""The bitcoind source's network state: template difficulty and height, fees, the epoch's header times."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

import fake_bitcoind as fake
from bitcoind_support import WAIT, Running, source_config
from fleetd.chain.network import NetworkState
from fleetd.sources.base import NetworkReporting
from fleetd.sources.bitcoind import (
    FEE_WINDOW_BLOCKS,
    BitcoindSource,
    ChainHeader,
    HeaderError,
    block_subsidy_on,
    parse_block_header,
)

MAINNET_P2PKH = "1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo"
MAINNET_BITS = 0x17034219  # a 2024 mainnet target
EPOCH = 2016 * 433  # 872,928: the first block of a mainnet retarget epoch (subsidy 3.125 BTC)
SUBSIDY = 312_500_000


def difficulty_of(nbits: int) -> float:
    """Difficulty from compact bits, worked out here by hand: diff-1 target over the target."""
    exponent, mantissa = nbits >> 24, nbits & 0xFFFFFF
    return (0xFFFF * 2**208) / (mantissa * 2 ** (8 * (exponent - 3)))


async def main_node(tip_height: int, **options) -> fake.FakeBitcoind:
    return await fake.started(chain="main", nbits=MAINNET_BITS, height=tip_height, **options)


def header_calls(node: fake.FakeBitcoind) -> list[str]:
    return [params[0] for method, params in node.calls if method == "getblockheader"]


def times_of(r: Running) -> tuple[float, ...]:
    state = r.source.network_state()
    return () if state is None else state.block_times_seconds


async def synced(r: Running) -> NetworkState:
    """The state once the header walk has reached the epoch start for the node's tip."""
    expected = tuple(float(t) for t in r.node.epoch_times())
    await r.wait_for(lambda: times_of(r) == expected)
    return r.source.network_state()


# -- pure parts ------------------------------------------------------------------------------


def test_subsidy_follows_the_chain():
    assert block_subsidy_on("main", 874_000) == SUBSIDY
    assert block_subsidy_on("test", 209_999) == 50 * 10**8 and block_subsidy_on("signet", 210_000) == 25 * 10**8
    assert block_subsidy_on("regtest", 149) == 50 * 10**8 and block_subsidy_on("regtest", 150) == 25 * 10**8
    assert block_subsidy_on("regtest", 150 * 64) == 0


def test_parse_block_header():
    block_hash, prevhash = bytes(range(32)), bytes(range(32, 64))
    answer = {
        "hash": block_hash[::-1].hex(), "height": 5, "time": 1_700_000_123, "previousblockhash": prevhash[::-1].hex(),
    }  # fmt: skip
    assert parse_block_header(answer, block_hash, 5) == ChainHeader(block_hash, prevhash, 5, 1_700_000_123)
    genesis = {"hash": block_hash[::-1].hex(), "height": 0, "time": 1231006505}  # Core omits previousblockhash
    assert parse_block_header(genesis, block_hash, 0).prevhash == bytes(32)
    for bad in (
        None, [], "00" * 80,
        {**answer, "hash": prevhash[::-1].hex()},  # another block's header
        {**answer, "height": 6}, {**answer, "height": True}, {**answer, "height": "5"},
        {**answer, "time": -1}, {**answer, "time": 2**32}, {**answer, "time": 1.5}, {**answer, "time": None},
        {**answer, "previousblockhash": "xyz"}, {k: v for k, v in answer.items() if k != "previousblockhash"},
    ):  # fmt: skip
        with pytest.raises(HeaderError):
            parse_block_header(bad, block_hash, 5)


def test_none_before_the_first_template():
    node = fake.FakeBitcoind()  # never started: nothing has been asked of it
    source = BitcoindSource(source_config(node))
    assert isinstance(source, NetworkReporting)
    assert source.network_state() is None


# -- against the fake node -----------------------------------------------------------------


async def test_difficulty_height_fees_and_the_whole_epoch_of_header_times():
    node = await main_node(EPOCH + 40, mempool=5)
    try:
        async with Running(node, payout_address=MAINNET_P2PKH) as r:
            job = await r.first_job()
            state = await synced(r)
            gbt = node.template()
            assert state.height == job.height == node.height + 1 == EPOCH + 41
            assert state.tip_height == EPOCH + 40
            assert state.difficulty == pytest.approx(difficulty_of(MAINNET_BITS), rel=1e-12)
            assert state.difficulty == pytest.approx(8.6388558925e13, rel=1e-9)  # 86.39 T, as explorers showed
            assert state.fees_btc_per_block == (gbt["coinbasevalue"] - SUBSIDY) / 1e8 == 2870 / 1e8
            assert state.block_times_origin == "headers"
            # exactly the node's header timestamps, from the epoch's first block to the tip
            assert len(state.block_times_seconds) == 41
            assert state.block_times_seconds == tuple(float(node.header_time(h)) for h in range(EPOCH, EPOCH + 41))
            # one call per header, from the template's parent back, never below the epoch start
            calls = header_calls(node)
            assert calls[0] == gbt["previousblockhash"]
            assert calls == [fake.display(node.active[h]) for h in range(EPOCH + 40, EPOCH - 1, -1)]
            assert all(params[1] is True for method, params in node.calls if method == "getblockheader")
    finally:
        await node.close()


async def test_the_walk_includes_the_genesis_block_on_a_young_regtest_chain():
    node = await fake.started(mempool=3)  # regtest, tip at 200: the epoch starts at genesis
    try:
        async with Running(node) as r:
            await r.first_job()
            state = await synced(r)
            assert len(state.block_times_seconds) == 201 and len(header_calls(node)) == 201
            assert state.difficulty == pytest.approx(difficulty_of(fake.REGTEST_BITS))
            # regtest halves every 150 blocks: height 201 earns 25 BTC plus the fees
            assert state.fees_btc_per_block == sum(m.fee for m in node.mempool) / 1e8
            assert state.block_subsidy_btc == 25.0  # what the economics values a block at, too
    finally:
        await node.close()


async def test_each_new_tip_costs_one_header_call_and_fees_average_the_last_template_of_each_block():
    node = await main_node(EPOCH + 40, mempool=5)
    try:
        async with Running(node, payout_address=MAINNET_P2PKH) as r:
            await r.first_job()
            await synced(r)
            fees_first = sum(m.fee for m in node.mempool)
            assert r.source.network_state().fees_btc_per_block == fees_first / 1e8

            calls = len(header_calls(node))
            block_time = node.header_time(node.height) + 431
            await node.mine_external_block(header_time=block_time)  # the mempool empties with it
            state = await synced(r)
            assert state.block_times_seconds[-1] == block_time and len(state.block_times_seconds) == 42
            assert len(header_calls(node)) == calls + 1
            # fees: the last template at EPOCH + 41 and the (empty) current one at EPOCH + 42
            assert state.height == EPOCH + 42 and state.fees_btc_per_block == fees_first / 2 / 1e8

            jobs = len(r.jobs)
            node.add_transactions(3)  # the longpoll returns a richer template for the same block
            await r.next_job(jobs, height=EPOCH + 42)
            fees_second = sum(m.fee for m in node.mempool)
            average = (fees_first + fees_second) / 2 / 1e8
            await r.wait_for(lambda: r.source.network_state().fees_btc_per_block == average)
            assert len(header_calls(node)) == calls + 1  # same tip: no header read

            for step in range(FEE_WINDOW_BLOCKS):
                block_time += 600
                await node.mine_external_block(header_time=block_time)
                await synced(r)
                assert len(header_calls(node)) == calls + 2 + step
            state = r.source.network_state()
            # six empty blocks later the two with fees have left the window
            assert state.fees_btc_per_block == 0.0 and state.height == EPOCH + 42 + FEE_WINDOW_BLOCKS
            assert state.block_times_seconds[-FEE_WINDOW_BLOCKS - 1 :] == tuple(
                float(node.header_time(node.height - FEE_WINDOW_BLOCKS) + 600 * k) for k in range(FEE_WINDOW_BLOCKS + 1)
            )
    finally:
        await node.close()


async def test_a_new_epoch_starts_the_times_again():
    node = await main_node(EPOCH - 2)  # two blocks before the retarget: the walk reads 2015 headers
    try:
        async with Running(node, payout_address=MAINNET_P2PKH) as r:
            await r.first_job()
            state = await synced(r)
            assert len(state.block_times_seconds) == 2015 and len(header_calls(node)) == 2015
            await node.mine_external_block()
            assert len((await synced(r)).block_times_seconds) == 2016  # the epoch's last block
            t = node.header_time(node.height) + 555
            await node.mine_external_block(header_time=t)  # EPOCH itself: a new epoch
            state = await synced(r)
            assert state.tip_height == EPOCH and state.block_times_seconds == (float(t),)
            assert len(header_calls(node)) == 2017
    finally:
        await node.close()


async def test_a_reorg_is_read_again_down_to_the_fork():
    node = await main_node(EPOCH + 100)
    try:
        async with Running(node, payout_address=MAINNET_P2PKH) as r:
            await r.first_job()
            await synced(r)
            calls = len(header_calls(node))
            stale = node.tip
            fork_time = node.header_time(EPOCH + 98)
            await node.reorg(2, times=[fork_time + 300, fork_time + 900, fork_time + 1000])
            state = await synced(r)
            assert state.tip_height == EPOCH + 101 and node.tip != stale
            assert state.block_times_seconds[-4:] == (fork_time, fork_time + 300, fork_time + 900, fork_time + 1000)
            assert len(header_calls(node)) == calls + 3  # the new tip and the two replaced blocks
    finally:
        await node.close()


async def test_header_failures_and_garbage_are_survived_and_the_walk_completes_later():
    node = await main_node(EPOCH + 30)
    try:
        node.fail(
            "getblockheader",
            *[fake.delay(0)] * 10,  # ten good answers
            fake.rpc_error(-1, "internal bug"),
            fake.delay(0.5),  # the first retry is slow: the partial state can be seen meanwhile
            fake.result({"hash": "zz", "height": "what"}),
            fake.garbage("<html>busy</html>", status=503),
            fake.drop(),
        )
        with capture_logs() as logs:
            async with Running(node, payout_address=MAINNET_P2PKH) as r:
                job = await r.first_job()
                await r.wait_for(lambda: len(header_calls(node)) == 12)
                # the ten read so far run unbroken from the tip: they are reported already
                assert times_of(r) == tuple(float(t) for t in node.epoch_times()[-10:])
                assert r.source.network_state().height == job.height
                state = await synced(r)
                assert len(state.block_times_seconds) == 31
                assert r.task.done() is False and r.source.health().up
                assert len(r.jobs) >= 1
        # one warning for the streak (the rest are debug lines), one line when it is over
        warned = [e for e in logs if e["event"].startswith("epoch_headers") and e["log_level"] != "debug"]
        assert [(e["event"], e["log_level"]) for e in warned[:1]] == [("epoch_headers_failed", "warning")]
        assert "internal bug" in warned[0]["error"] and warned[0]["retry_in"] == 0.05
        assert [e["event"] for e in warned[1:]] == ["epoch_headers_read", "epoch_headers_recovered"]
        assert warned[2]["failures"] == 4
        # each retry went on from where the walk stopped: 31 headers, 4 failed calls, no repeats
        good = header_calls(node)
        assert len(good) == 31 + 4 and len(set(good)) == 31
    finally:
        await node.close()


async def test_jobs_never_wait_for_the_walk_and_shutdown_cancels_it():
    node = await main_node(EPOCH - 1)  # a whole epoch to read
    node.fail("getblockheader", *[fake.delay(0.02)] * 5000)  # 2016 calls would take over 40 s
    try:
        r = Running(node, payout_address=MAINNET_P2PKH)
        async with r:
            job = await r.first_job()
            await r.wait_for(lambda: len(header_calls(node)) >= 5)
            assert job.height == EPOCH + 0 and r.source.network_state().height == EPOCH

            jobs = len(r.jobs)
            await node.mine_external_block()
            await r.next_job(jobs, clean_jobs=True, height=EPOCH + 1)
            # mid-walk: the whole walk takes 2016 calls of 20 ms, over 40 s, longer than next_job waits
            assert len(header_calls(node)) < 2016
            state = r.source.network_state()
            assert state.height == EPOCH + 1 and state.block_times_seconds in ((), (float(node.header_time(EPOCH)),))
            await r.wait_for(lambda: times_of(r) == (float(node.header_time(EPOCH)),))  # the new epoch's one block
        # the walk for the new tip was over at once; nothing more is asked after shutdown
        count = len(node.calls)
        await asyncio.sleep(0.2)
        assert len(node.calls) == count
    finally:
        await node.close()


async def test_a_long_walk_stops_when_the_source_does():
    node = await main_node(EPOCH + 2000)
    node.fail("getblockheader", *[fake.delay(0.02)] * 5000)
    try:
        async with asyncio.timeout(WAIT):
            async with Running(node, payout_address=MAINNET_P2PKH) as r:
                await r.first_job()
                await r.wait_for(lambda: len(header_calls(node)) >= 10)
                partial = times_of(r)
                assert 9 <= len(partial) < 2001
                assert partial == tuple(float(t) for t in node.epoch_times()[-len(partial) :])
        count = len(header_calls(node))
        await asyncio.sleep(0.2)
        assert len(header_calls(node)) == count
    finally:
        await node.close()
