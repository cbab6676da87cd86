"""The bitcoind source against a fake Bitcoin Core: templates, blocks, new-block paths, outages."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import pytest

import fake_bitcoind as fake
from bitcoind_support import REGTEST_P2WPKH_SCRIPT, WAIT, Running, read_from, source_config
from fake_bitcoind import dsha, height_push, merkle
from fake_clock import FakeClock
from fleetd.chain.byteorder import hash_to_display, hash_to_int
from fleetd.chain.merkle import fold_branch
from fleetd.chain.serialize import parse_block, parse_transaction
from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from fleetd.sources.base import JobSource, SolvedBlock
from fleetd.sources.bitcoind import BitcoindSource, NodeTemplate, parse_template
from sources_support import EN1, EN2, WORKER, carried_block, carries_no_block, miss, solve


def submitted_hex(node) -> list[str]:
    """The hex of every submitblock call the node received, those a fault answered included."""
    return [params[0] for method, params in node.calls if method == "submitblock"]


@pytest.fixture
async def node():
    running = await fake.started(mempool=5)
    yield running
    await running.close()


async def test_is_a_job_source(node):
    async with Running(node) as r:
        assert isinstance(r.source, JobSource)
        await r.first_job()


async def test_job_from_a_template_with_hundreds_of_transactions():
    node = await fake.started(mempool=700)
    started = int(time.time())
    try:
        async with Running(node, pool_tag="/solo.site-7/") as r:
            job = await r.first_job()
            gbt = node.template()
            assert job.clean_jobs and job.height == node.height + 1 == gbt["height"]
            assert hash_to_display(job.prevhash) == gbt["previousblockhash"]  # display order in RPC, internal in jobs
            assert job.nbits == int(gbt["bits"], 16) and job.version == gbt["version"] == 0x20000000
            assert started <= job.ntime <= time.time()  # the node's curtime when the template was made

            coinbase = parse_transaction(job.coinb1 + EN1 + EN2 + job.coinb2)
            script_sig = coinbase.inputs[0].script_sig
            assert script_sig == height_push(job.height) + bytes([12]) + EN1 + EN2 + bytes([13]) + b"/solo.site-7/"
            payout, commitment = coinbase.outputs
            assert (payout.script_pubkey, payout.value) == (REGTEST_P2WPKH_SCRIPT, gbt["coinbasevalue"])
            assert commitment.value == 0 and commitment.script_pubkey.hex() == gbt["default_witness_commitment"]

            # the branch folds the coinbase up to the root of all 701 txids, in template order
            template = job.block_data
            assert len(template.transactions) == 700 and len(job.merkle_branch) == 10
            txids = [bytes.fromhex(tx["txid"])[::-1] for tx in gbt["transactions"]]
            assert list(template.txids) == txids
            assert list(job.transaction_ids) == txids  # what mining.get_transactions answers
            cb_txid = dsha(job.coinb1 + EN1 + EN2 + job.coinb2)
            assert fold_branch(cb_txid, job.merkle_branch) == merkle([cb_txid, *txids])
            assert r.source.health().up
    finally:
        await node.close()


async def test_found_block_is_submitted_whole_and_the_node_accepts_it():
    node = await fake.started(mempool=300)
    try:
        async with Running(node) as r:
            job = await r.first_job()
            coinbasevalue = node.template()["coinbasevalue"]
            solved = solve(job)
            outcome = await r.source.submit_block(solved)
            assert outcome.accepted and outcome.reason == "accepted" and outcome.height == job.height
            assert outcome.hash == hash_to_display(solved.hash)

            (raw,) = node.submitted
            assert outcome.block_hex == raw.hex()  # the block exactly as the node received it
            block = carried_block(outcome)
            assert block == parse_block(raw)
            assert block.hash == solved.hash and hash_to_int(block.hash) <= bits_to_target(job.nbits)
            assert (block.prevhash, block.nonce, block.ntime, block.version) == (
                job.prevhash, solved.nonce, solved.ntime, solved.version,
            )  # fmt: skip
            assert block.merkle_root == merkle([tx.txid for tx in block.transactions])
            coinbase = block.transactions[0]
            assert coinbase.inputs[0].script_sig.startswith(height_push(job.height) + bytes([12]) + EN1 + EN2)
            assert coinbase.outputs[0].script_pubkey == REGTEST_P2WPKH_SCRIPT
            assert coinbase.outputs[0].value == coinbasevalue
            assert coinbase.witnesses == ((bytes(32),),)  # BIP141 witness reserved value
            assert [tx.serialize() for tx in block.transactions[1:]] == [tx.data for tx in job.block_data.transactions]
            assert node.accepted == [block] and node.tip == block.hash  # the fake checked it all

            # the next job builds on our block at once, and is clean
            await r.wait_for(lambda: r.job.prevhash == block.hash)
            assert r.job.clean_jobs and r.job.height == job.height + 1
            assert r.source.block_results == {"accepted": 1}
            assert "blocks submitted: 1 (1 accepted)" in r.source.health().detail
    finally:
        await node.close()


async def test_witness_commitment_is_computed_when_the_node_sends_none():
    node = await fake.started(mempool=40, witness_commitment=False)
    try:
        async with Running(node) as r:
            job = await r.first_job()
            assert "default_witness_commitment" not in node.template()
            outcome = await r.source.submit_block(solve(job))
            assert outcome.accepted, outcome  # the fake recomputes the BIP141 commitment from the wtxids
    finally:
        await node.close()


async def test_share_below_network_target_or_unknown_job_is_not_submitted(node):
    node.nbits = target_to_bits(difficulty_to_target(1e-3))  # hard enough that most nonces miss
    node.target = bits_to_target(node.nbits)
    async with Running(node) as r:
        job = await r.first_job()
        nonce, digest = miss(job)
        weak = SolvedBlock(job, EN1, EN2, job.ntime, nonce, job.version, digest, WORKER)
        unknown = dataclasses.replace(weak, job=dataclasses.replace(job, block_data=None))
        short = dataclasses.replace(weak, extranonce2=b"\x01")
        for block, reason in ((weak, "high-hash"), (unknown, "unknown-work"), (short, "bad-extranonce-size")):
            outcome = await r.source.submit_block(block)
            assert outcome.reason == reason and carries_no_block(outcome), outcome  # nothing was submitted
        assert node.submitted == []
        assert r.source.block_results == {"high-hash": 1, "unknown-work": 1, "bad-extranonce-size": 1}


async def test_a_block_whose_header_does_not_hash_to_the_claim_is_never_sent(node):
    async with Running(node) as r:
        job = await r.first_job()
        good = solve(job)
        for claim in (bytes(32), solve(job, en2=b"\x02" * 8).hash):  # nonsense, and another real block's hash
            outcome = await r.source.submit_block(dataclasses.replace(good, hash=claim))
            assert (outcome.accepted, outcome.reason) == (False, "hash-mismatch") and carries_no_block(outcome)
        assert node.submitted == [] and r.source.block_results == {"hash-mismatch": 2}
        assert (await r.source.submit_block(good)).accepted  # the true claim goes through


async def test_a_block_on_a_job_many_refreshes_old_is_built_from_the_job_alone(node):
    # the job carries its template: the source keeps no jobs, whatever the job store still holds
    async with Running(node, longpoll=False, poll_interval_seconds=0.01, refresh_interval_seconds=0.01) as r:
        first = await r.first_job()
        node.add_transactions(3)
        await r.wait_for(lambda: len(r.jobs) > 20)
        assert all(job.prevhash == first.prevhash for job in r.jobs)
        assert len(r.job.transaction_ids) == 8 and len(first.transaction_ids) == 5
        outcome = await r.source.submit_block(solve(first))
        assert outcome.accepted, outcome
        (block,) = node.accepted
        assert [tx.txid for tx in block.transactions[1:]] == list(first.transaction_ids)


async def test_rejected_block_reason_is_returned_and_counted(node):
    async with Running(node) as r:
        job = await r.first_job()
        node.fail("submitblock", fake.result("bad-txns-nonfinal"))
        nonfinal = await r.source.submit_block(solve(job))
        assert (nonfinal.accepted, nonfinal.reason) == (False, "bad-txns-nonfinal")
        node.fail("submitblock", fake.rpc_error(-22, "Block decode failed"))
        decode = await r.source.submit_block(solve(job, en2=b"\x02" * 8))
        assert (decode.accepted, decode.reason) == (False, "rpc-error(-22)")
        assert r.source.block_results == {"bad-txns-nonfinal": 1, "rpc-error(-22)": 1}
        # a refused block keeps the bytes it was refused for
        assert submitted_hex(node) == [nonfinal.block_hex, decode.block_hex]
        assert carried_block(decode).transactions[0].inputs[0].script_sig.count(EN1 + b"\x02" * 8) == 1
        assert carried_block(nonfinal).hash != carried_block(decode).hash


# -- the paths that notice a new block -----------------------------------------------------


def longpolls(node) -> int:
    """getblocktemplate calls the node has received that carry a longpollid."""
    return sum(1 for method, params in node.calls if method == "getblocktemplate" and "longpollid" in params[0])


async def test_longpoll_brings_a_new_block_and_new_transactions(node):
    async with Running(node, poll_interval_seconds=300.0, refresh_interval_seconds=600.0) as r:
        job = await r.first_job()
        await r.wait_for(lambda: longpolls(node) == 1)  # the longpoll is now waiting in the node
        await node.mine_external_block()
        new = await r.next_job(1, clean_jobs=True, height=job.height + 1)  # long before the 300 s poll
        assert hash_to_display(new.prevhash) == node.tip_hex
        node.add_transactions(12)
        more = await r.next_job(2, clean_jobs=False, prevhash=new.prevhash)
        assert len(more.block_data.transactions) == len(more.transaction_ids) == 12
        assert r.source.template_updates == {"startup": 1, "longpoll": 2}
        assert "getbestblockhash" not in node.methods_called()


async def test_poll_finds_a_block_without_longpoll_or_zmq(node):
    async with Running(node, longpoll=False, poll_interval_seconds=0.05, refresh_interval_seconds=600.0) as r:
        job = await r.first_job()
        await node.mine_external_block()
        new = await r.next_job(1, clean_jobs=True, height=job.height + 1)
        assert hash_to_display(new.prevhash) == node.tip_hex
        assert r.source.template_updates == {"startup": 1, "poll": 1}
        assert "getbestblockhash" in node.methods_called()
        assert all(params == [{"rules": ["segwit"]}] for m, params in node.calls if m == "getblocktemplate")


async def test_zmq_hashblock_brings_a_new_block():
    node = await fake.started(mempool=3, zmq_pub=True)
    try:
        options = {"zmq": node.zmq_endpoint, "longpoll": False, "poll_interval_seconds": 300.0}
        async with Running(node, refresh_interval_seconds=600.0, **options) as r:
            job = await r.first_job()
            await node.mine_external_block()  # publishes hashblock; the subscription may still be joining
            async with asyncio.timeout(WAIT):
                while len(r.jobs) < 2:  # so notify again until it is heard (repeats are ignored)
                    await node.publish_hashblock()
                    await asyncio.sleep(0.02)
            new = r.jobs[1]
            assert new.clean_jobs and new.height == job.height + 1 and hash_to_display(new.prevhash) == node.tip_hex
            assert r.source.template_updates == {"startup": 1, "zmq": 1}
            await node.publish_hashblock(bytes(32))  # a hash the node has no template for yet: one refetch, no job
            await node.publish_hashblock()  # the tip we already have: nothing at all
            await asyncio.sleep(0.1)
            assert len(r.jobs) == 2
    finally:
        await node.close()


async def test_refresh_picks_up_new_transactions(node):
    async with Running(node, longpoll=False, refresh_interval_seconds=0.2) as r:
        job = await r.first_job()
        node.add_transactions(20)
        # the first refresh to come after them (one may have come before, on a loaded machine)
        await r.wait_for(lambda: len(r.job.transaction_ids) == 25)
        refreshed = r.job
        assert not refreshed.clean_jobs and refreshed.prevhash == job.prevhash
        assert r.source.template_updates["refresh"] >= 1


# -- outages -----------------------------------------------------------------------------


async def test_node_down_then_up_resumes_by_itself(node):
    clock = FakeClock()
    async with Running(node, clock=read_from(clock), max_job_age_seconds=120.0) as r:
        job = await r.first_job()
        await node.stop()
        await r.wait_for(lambda: not r.source.health().up)
        health = r.source.health()
        assert "failing for" in health.detail and "ClientConnectorError" in health.detail
        assert f"rigs keep the last job (height {job.height}" in health.detail and not r.source.job_expired
        assert len(r.jobs) == 1  # the last job stays; nothing new is published while down

        clock.tick(200.0)  # the outage outlasts max_job_age_seconds
        assert r.source.job_expired
        assert "past max_job_age_seconds = 120: rigs are mining stale work" in r.source.health().detail

        await node.mine_external_block()  # the chain moved on while we could not see it
        await node.start()
        new = await r.next_job(1, clean_jobs=True, height=job.height + 1)
        assert hash_to_display(new.prevhash) == node.tip_hex
        assert r.source.health().up and not r.source.job_expired
        assert r.source.template_updates["retry"] == 1


async def test_node_down_at_start_then_first_job_when_it_comes_up(node):
    await node.stop()
    async with Running(node) as r:
        await r.wait_for(lambda: "failing" in r.source.health().detail)
        assert "no job yet" in r.source.health().detail and r.jobs == []
        await node.start()
        job = await r.first_job()
        assert job.clean_jobs and r.source.health().up


async def test_slow_node_is_an_outage_until_it_speeds_up(node):
    async with Running(node, rpc_timeout_seconds=0.2, longpoll=False) as r:
        await r.first_job()
        node.delay = 0.5
        await r.wait_for(lambda: not r.source.health().up)
        assert "no answer within 0.2 s" in r.source.health().detail
        node.delay = 0.0
        await r.wait_for(lambda: r.source.health().up)
        await r.next_job(1)  # work resumes with a fresh template


@pytest.mark.parametrize(
    "fault, detail",
    [
        (fake.garbage("<html>oops</html>"), "reply is not JSON: <html>oops</html>"),
        (fake.garbage("Work queue depth exceeded", status=503), "HTTP 503: Work queue depth exceeded"),
        (fake.garbage("<h1>500</h1>", status=500, content_type="text/html"), "HTTP 500: <h1>500</h1>"),
        (fake.rpc_error(-10, "Bitcoin Core is in initial sync and waiting for blocks..."),
         "error -10: Bitcoin Core is in initial sync"),
        (fake.rpc_error(-9, "Bitcoin Core is not connected!"), "error -9: Bitcoin Core is not connected"),
        (fake.result([1, 2, 3]), "getblocktemplate returned list, not an object"),
        (fake.result({"height": 5}), "getblocktemplate version must be an integer"),
        (fake.drop(), "getblocktemplate: (ServerDisconnectedError|ClientOSError)"),
    ],
)  # fmt: skip
async def test_garbage_from_the_node_is_an_outage_with_the_reason(node, fault, detail):
    async with Running(node, longpoll=False, refresh_interval_seconds=600.0) as r:
        job = await r.first_job()
        node.fail("getblocktemplate", *[fault] * 10_000)  # the node answers nothing else
        await node.mine_external_block()  # the poll sees it; the template it then asks for is garbage
        await r.wait_for(lambda: re.search(detail, r.source.health().detail))
        health = r.source.health()
        assert not health.up and "failing for" in health.detail
        assert f"rigs keep the last job (height {job.height}" in health.detail
        assert len(r.jobs) == 1 and r.task.done() is False  # nothing published, nothing crashed
        node.faults.clear()  # the node is well again
        await r.next_job(1, clean_jobs=True, height=job.height + 1)
        assert r.source.health().up


async def test_bad_template_fields_are_named(node):
    async with Running(node, longpoll=False, refresh_interval_seconds=600.0) as r:
        await r.first_job()
        gbt = node.template()
        for broken, message in [
            ({**gbt, "bits": "zz"}, "bits must be 8 hex digits"),
            ({**gbt, "previousblockhash": "00" * 31}, "hash must be 64 hex digits"),
            ({**gbt, "transactions": [{"txid": "00" * 32, "data": "nothex"}]}, "transaction 0 data is not hex"),
            ({**gbt, "coinbasevalue": -1}, "coinbasevalue must be an integer"),
            ({**gbt, "default_witness_commitment": "6a24aa21a9ed00"}, "not a BIP141 witness commitment script"),
            ({**gbt, "longpollid": 5}, "longpollid must be a string"),
        ]:
            with pytest.raises(ValueError, match=message):
                parse_template(broken, payout_script=REGTEST_P2WPKH_SCRIPT, pool_tag=b"", extranonce_size=12)
        assert isinstance(
            parse_template(gbt, payout_script=REGTEST_P2WPKH_SCRIPT, pool_tag=b"", extranonce_size=12), NodeTemplate
        )


async def test_cookie_auth_survives_a_node_restart_with_a_new_cookie(tmp_path):
    node = await fake.started(cookie_dir=tmp_path, mempool=2)
    try:
        async with Running(node, longpoll=False) as r:
            job = await r.first_job()
            await node.stop()
            node.rotate_cookie()
            await node.mine_external_block()
            await node.start()
            await r.next_job(1, clean_jobs=True, height=job.height + 1)
            assert r.source.health().up
    finally:
        await node.close()


async def test_payout_address_for_another_network_gets_no_jobs_and_says_why(node):
    node.chain = "main"
    async with Running(node) as r:
        await r.wait_for(lambda: "payout_address" in r.source.health().detail)
        health = r.source.health()
        assert not health.up and "the node runs main" in health.detail and "no jobs until it is fixed" in health.detail
        await asyncio.sleep(0.1)
        assert r.jobs == [] and "getblocktemplate" not in node.methods_called()
        node.chain = "regtest"  # the operator pointed fleetd at the right node
        await r.first_job()
        assert r.source.chain == "regtest"


async def test_configured_network_must_match_the_node(node):
    node.chain = "signet"
    async with Running(node, payout_address="2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA", network="regtest") as r:
        await r.wait_for(lambda: "network = 'regtest' is configured" in r.source.health().detail)
        assert r.jobs == []


# -- blocks during trouble ---------------------------------------------------------------


async def test_submit_is_retried_through_transient_failures(node):
    async with Running(node, rpc_timeout_seconds=1.0) as r:
        job = await r.first_job()
        node.fail(
            "submitblock",
            fake.drop(),
            fake.garbage("Work queue depth exceeded", status=503),
            fake.rpc_error(-28, "Loading block index..."),
            fake.delay(1.5),  # slower than rpc_timeout_seconds, but a block may take its time to validate
        )
        outcome = await r.source.submit_block(solve(job))
        # four failures, then the accepted attempt (a loaded machine may add a retry, never a second block)
        assert outcome.accepted and node.methods_called().count("submitblock") >= 4
        assert len(node.accepted) == 1
        assert set(submitted_hex(node)) == {outcome.block_hex}  # every attempt sent the same block
        assert carried_block(outcome) == node.accepted[0]


async def test_a_lost_reply_is_found_to_be_accepted(node):
    async with Running(node) as r:
        job = await r.first_job()
        node.fail("submitblock", fake.drop(after_processing=True))  # the node took it, the answer was lost
        outcome = await r.source.submit_block(solve(job))
        assert outcome.accepted and len(node.accepted) == 1
        assert set(submitted_hex(node)) == {outcome.block_hex} and carried_block(outcome) == node.accepted[0]


async def test_block_found_while_the_node_is_down_is_submitted_when_it_returns(node):
    async with Running(node) as r:
        job = await r.first_job()
        await node.stop()
        submit = asyncio.create_task(r.source.submit_block(solve(job)))
        await asyncio.sleep(0.3)
        assert not submit.done()  # still trying
        await node.start()
        outcome = await asyncio.wait_for(submit, WAIT)
        assert outcome.accepted and len(node.accepted) == 1


async def test_retries_stop_when_the_tip_moves_on(node):
    async with Running(node) as r:
        job = await r.first_job()
        node.fail("submitblock", *[fake.garbage("busy", status=503)] * 1000)
        submit = asyncio.create_task(r.source.submit_block(solve(job)))
        await r.wait_for(lambda: node.methods_called().count("submitblock") >= 2)
        assert not submit.done()  # busy, busy: retrying
        await node.mine_external_block()
        outcome = await asyncio.wait_for(submit, WAIT)
        assert (outcome.accepted, outcome.reason) == (False, "stale-prevblk")
        assert node.accepted == []
        assert set(submitted_hex(node)) == {outcome.block_hex}  # a stale block keeps the bytes it tried
        assert carried_block(outcome).prevhash == job.prevhash


async def test_health_before_and_after_running(node):
    source = BitcoindSource(source_config(node))
    assert not source.health().up and source.health().detail.startswith("not running")
    jobs = []
    task = asyncio.create_task(source.run(jobs.append))
    try:
        async with asyncio.timeout(WAIT):
            while not jobs:
                await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="already running"):
            await source.run(jobs.append)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not source.health().up and source.health().last_job_time is not None
