"""End to end: the daemon in bitcoind mode, a simulated rig on loopback, blocks landing in a fake node."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

import fake_bitcoind as fake
from bitcoind_support import REGTEST_P2WPKH_SCRIPT, WAIT, source_config
from fake_bitcoind import dsha, height_push, merkle
from fleetd import app as fleetd_app
from fleetd.chain.byteorder import hash_to_display, hash_to_int
from fleetd.chain.target import bits_to_target, difficulty_to_target, target_to_bits
from fleetd.config import Config, HostPort, HttpConfig, StratumConfig
from fleetd.sim.miner import Miner, MinerConfig
from fleetd.sources.bitcoind import BitcoindSource

NETWORK_DIFFICULTY = 2e-5  # a block in about 90 000 hashes: seconds for the simulated rig
SHARE_DIFFICULTY = 1e-6


def daemon_config() -> Config:
    return Config(
        stratum=StratumConfig(
            listen=HostPort("127.0.0.1", 0),
            min_difficulty=1e-9,
            start_difficulty=SHARE_DIFFICULTY,
            shutdown_grace_seconds=1.0,
        ),
        http=HttpConfig(listen=HostPort("127.0.0.1", 0)),
    )


async def test_daemon_in_bitcoind_mode_mines_blocks_into_the_node():
    node = await fake.started(mempool=250, nbits=target_to_bits(difficulty_to_target(NETWORK_DIFFICULTY)))
    source = BitcoindSource(source_config(node, pool_tag="/fleetd-e2e/"))
    app = fleetd_app.build_app(daemon_config(), source=source)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        http = f"http://127.0.0.1:{runner.addresses[0][1]}"
        server = app[fleetd_app.STRATUM_KEY]
        async with asyncio.timeout(WAIT):
            while server.current_job is None:
                await asyncio.sleep(0.01)
        start_height = node.height

        async with Miner(MinerConfig(*server.address, username="site.rig01")) as miner:
            mining = asyncio.create_task(miner.mine(seconds=60))
            try:
                async with asyncio.timeout(60):
                    while len(node.accepted) < 2:
                        await asyncio.sleep(0.05)
            finally:
                mining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mining
            # the rig is moved onto the node's new tip with a clean job
            async with asyncio.timeout(WAIT):
                while server.current_job.prevhash != node.tip:
                    await asyncio.sleep(0.01)
            await miner.wait_for_job(lambda job: job.job_id == server.current_job.job_id, timeout=WAIT)
            # each new tip came as a clean job (a difficulty change later may re-send the same
            # job with clean_jobs false, so the latest copy of it says nothing)
            assert miner.stats().clean_jobs >= 2
            extranonce1 = miner.stats().extranonce1

        target = bits_to_target(node.nbits)
        for i, block in enumerate(node.accepted[:2]):
            raw = block.serialize()
            assert raw in node.submitted  # the bytes the node received parse back to this block
            assert hash_to_int(dsha(raw[:80])) <= target
            assert block.merkle_root == merkle([dsha(tx.serialize(with_witness=False)) for tx in block.transactions])
            coinbase = block.transactions[0]
            script_sig = coinbase.inputs[0].script_sig
            assert script_sig.startswith(height_push(start_height + 1 + i) + bytes([12]) + extranonce1)
            assert script_sig.endswith(b"/fleetd-e2e/")
            assert coinbase.outputs[0].script_pubkey == REGTEST_P2WPKH_SCRIPT
        assert len(node.accepted[0].transactions) == 251  # the first block carried the whole mempool
        assert node.accepted[1].prevhash == dsha(node.accepted[0].serialize()[:80])

        assert server.blocks_submitted >= 2
        assert source.block_results["accepted"] >= 2
        assert server.workers["site.rig01"].accepted > 0
        async with aiohttp.ClientSession() as client, client.get(f"{http}/healthz") as response:
            health = await response.json()
        assert response.status == 200 and health["source"]["kind"] == "bitcoind" and health["source"]["up"]
        assert hash_to_display(server.current_job.prevhash) == node.tip_hex
    finally:
        await runner.cleanup()
        await node.close()
