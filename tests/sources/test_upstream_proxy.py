"""fleetd proxying another fleetd: real daemons, real sockets, simulated rigs, every share real work.

The upstream is a fleetd on its demo chain pinning the proxy at difficulty 1e-6; the proxy
pins its rigs at 1e-7, so about one rig share in ten also meets the upstream difficulty
and is forwarded. Misbehaving pools are ``FakePool``s. Every test is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from types import SimpleNamespace

import pytest

from fake_clock import FakeClock
from fleetd.chain.byteorder import hash_to_display, unpack_header
from fleetd.chain.hashes import sha256d
from fleetd.chain.merkle import fold_branch
from fleetd.chain.target import bits_to_target
from fleetd.native import PreparedJob
from fleetd.sources.upstream import UpstreamSource
from server_support import RawClient, grind
from upstream_support import (
    WAIT,
    FakePool,
    Running,
    fleetd_config,
    free_port,
    make_job,
    proxying,
    rig,
    self_signed_cert,
    start_fleetd,
    start_proxy,
    start_upstream,
    upstream_config,
    upstream_totals,
    wait_for,
)

BOUND = 120.0  # seconds any one test may take (a hang guard: they take a few)


@contextlib.asynccontextmanager
async def daemons():
    """Collects running daemons and stops every one of them, whatever the test did."""
    running: list[Running] = []
    try:
        async with asyncio.timeout(BOUND):
            yield running
    finally:
        for daemon in reversed(running):
            with contextlib.suppress(Exception):
                await daemon.stop()


async def mine_until(miners, predicate, timeout: float = WAIT) -> None:
    """Keep the rigs mining until ``predicate()`` holds (``timeout``: a hang guard)."""
    tasks = [asyncio.create_task(m.mine(seconds=timeout)) for m in miners]
    try:
        await wait_for(predicate, timeout)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def active_pool(source: UpstreamSource) -> str | None:
    return None if source.active is None else str(source.active.url)


def accepted_upstream(daemon: Running, worker: str = "acct") -> int:
    stats = daemon.server.workers.get(worker)
    return 0 if stats is None else stats.accepted


async def test_shares_flow_and_both_sides_count_them():
    async with daemons() as running:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(up.url)
        running.append(proxy)
        async with rig(proxy, "site.rig1", version_rolling=True) as a, rig(proxy, "site.rig2") as b:
            stats = await asyncio.gather(a.mine(max_shares=300), b.mine(max_shares=300))
            await wait_for(lambda: all(s.pending == 0 for s in proxy.server.upstream_workers.values()), WAIT)
        assert [s.accepted for s in stats] == [300, 300] and all(s.reconnects == 0 for s in stats)
        assert stats[0].version_mask == 0x1FFFE000  # negotiated upstream, passed down

        forwarded, accepted, rejected = upstream_totals(proxy)
        local = sum(proxy.server.workers[w].accepted for w in ("site.rig1", "site.rig2"))
        assert local == 600
        assert 0 < forwarded < local / 3  # only shares meeting the upstream difficulty go up
        assert accepted == forwarded and rejected == 0
        # the upstream counts the same shares, all under the one account, at its difficulty
        upstream_stats = up.server.workers["acct"]
        assert upstream_stats.accepted == accepted and not upstream_stats.rejected
        assert set(up.server.workers) == {"acct"}
        for name in ("site.rig1", "site.rig2"):
            mine = proxy.server.upstream_workers[name]
            assert mine.accepted > 0 and mine.accepted_work == pytest.approx(mine.accepted * 1e-6)
        health = proxy.source.health()
        assert health.up and health.kind == "upstream" and up.url in health.detail


async def test_passthrough_authorizes_each_rig_upstream_under_its_own_name():
    async with daemons() as running:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(up.url, passthrough=True)
        running.append(proxy)
        async with rig(proxy, "site.rig1") as a, rig(proxy, "site.rig2") as b, rig(proxy, "lonely") as c:
            await asyncio.gather(a.mine(max_shares=200), b.mine(max_shares=200), c.mine(max_shares=200))
            await wait_for(lambda: all(s.pending == 0 for s in proxy.server.upstream_workers.values()), WAIT)
        names = (("site.rig1", "acct.rig1"), ("site.rig2", "acct.rig2"), ("lonely", "acct.lonely"))
        for rig_name, upstream_name in names:
            ours = proxy.server.upstream_workers[rig_name]
            assert ours.accepted > 0 and not ours.rejected
            assert up.server.workers[upstream_name].accepted == ours.accepted  # both sides, per rig


async def test_failover_and_failback_never_disconnect_the_rigs():
    async with daemons() as running:
        primary_port = free_port()
        primary = await start_upstream(primary_port)
        backup = await start_upstream()
        running += [primary, backup]
        proxy = await start_proxy(primary.url, backup.url, failback_seconds=0.5)
        running.append(proxy)
        source: UpstreamSource = proxy.source
        async with rig(proxy, "site.rig1", extranonce_subscribe=True) as a, rig(proxy, "site.rig2") as b:
            miners = (a, b)
            await mine_until(miners, lambda: accepted_upstream(primary) >= 5)
            assert accepted_upstream(backup) == 0

            await primary.stop()  # the primary goes away with rigs mid-work: refused, so over at once
            await mine_until(miners, lambda: accepted_upstream(backup) >= 5)
            assert active_pool(source) == backup.url
            assert source.failovers == 1
            assert not source.health().detail.startswith("no upstream")

            primary = await start_upstream(primary_port)  # back, same address
            running.append(primary)
            await mine_until(miners, lambda: accepted_upstream(primary) >= 5)
            assert active_pool(source) == primary.url and source.failovers == 2
            before = [m.stats().accepted for m in miners]
            await mine_until(miners, lambda: all(m.stats().accepted > n + 20 for m, n in zip(miners, before)))
            for m in miners:
                stats = m.stats()
                assert stats.connected and stats.reconnects == 0 and stats.lost == 0
        ours = proxy.server.upstream_workers
        assert sum(s.accepted for s in ours.values()) >= 15


async def test_a_failover_that_shrinks_extranonce2_tells_or_reconnects_each_rig():
    async with daemons() as running:
        primary = await start_upstream()  # extranonce2 8: rigs get 8 - 2 = 6
        backup = await start_upstream(extranonce2_size=6)  # rigs get 4
        running += [primary, backup]
        proxy = await start_proxy(primary.url, backup.url)
        running.append(proxy)
        async with rig(proxy, "site.told", extranonce_subscribe=True) as told, rig(proxy, "site.moved") as moved:
            assert told.stats().extranonce2_size == moved.stats().extranonce2_size == 6
            await mine_until((told, moved), lambda: accepted_upstream(primary) >= 3)
            await primary.stop()
            await mine_until(
                (told, moved),
                lambda: told.stats().extranonce2_size == 4 and moved.stats().extranonce2_size == 4
                and accepted_upstream(backup) >= 10,
            )  # fmt: skip
            assert told.stats().reconnects == 0  # mining.set_extranonce, no reconnect
            assert moved.stats().reconnects == 1  # client.reconnect: it came back with the new size
            assert proxy.source.extranonce_layout().extranonce2_size == 4
            before = {n: proxy.server.upstream_workers[n].accepted for n in ("site.told", "site.moved")}
            await mine_until(
                (told, moved), lambda: all(proxy.server.upstream_workers[n].accepted > before[n] for n in before)
            )


async def test_a_block_found_by_a_rig_is_the_upstreams_block():
    async with daemons() as running:
        up = await start_fleetd(fleetd_config(difficulty=1e-6, network_difficulty=2e-6))
        running.append(up)
        await wait_for(lambda: up.server.current_job is not None, WAIT)
        proxy = await start_proxy(f"stratum+tcp://127.0.0.1:{up.port}")
        running.append(proxy)
        async with rig(proxy, "site.lucky") as lucky:
            await mine_until((lucky,), lambda: len(up.source.found_blocks) >= 1)  # ~7 blocks a second
        assert up.source.found_blocks[0].worker == "acct"
        await wait_for(lambda: proxy.server.blocks_submitted >= 1, WAIT)


async def test_a_block_below_the_pools_difficulty_is_forwarded_all_the_same():
    # a pool asking more than the network does (a test chain): its blocks must reach it anyway
    async with FakePool(difficulty=1e9) as pool:
        pool.job = dataclasses.replace(make_job(), nbits=0x207FFFFF)  # regtest: about every other hash is a block
        async with proxying(pool.url, clock=FakeClock()) as (source, jobs):
            await wait_for(lambda: jobs, WAIT)
            job = jobs[-1]
            layout = source.extranonce_layout()
            en1, en2 = b"\x01" * layout.extranonce1_size, b"\x02" * layout.extranonce2_size
            prepared = PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, len(en1 + en2))
            target = bits_to_target(job.nbits)
            checks = (prepared.check(en1 + en2, job.version, job.ntime, n, target) for n in itertools.count())
            nonce, block = next((n, c) for n, c in enumerate(checks) if c.meets_network)
            share = SimpleNamespace(worker="site.rig1", extranonce1=en1, extranonce2=en2, ntime=job.ntime,
                                    nonce=nonce, version=job.version)  # fmt: skip
            assert source.submit_share(job, share, b"\xff" * 32) is None  # neither the pool's work nor a block
            outcome = await asyncio.wait_for(source.submit_share(job, share, block.hash), WAIT)
            assert outcome.accepted, outcome
            (forwarded,) = pool.accepted
            assert (forwarded.nonce, forwarded.extranonce2[-len(en1 + en2) :]) == (nonce, en1 + en2)


async def test_a_forwarded_block_carries_the_header_and_coinbase_the_pool_was_sent():
    # the pool builds the block from the share: the proxy's outcome has its header and coinbase, not the block
    async with FakePool(difficulty=1e9) as pool, daemons() as running:
        pool.job = dataclasses.replace(make_job(), nbits=0x207FFFFF)  # any share at the rigs' difficulty is a block
        proxy = await start_proxy(pool.url)
        running.append(proxy)
        server, answers = proxy.server, []
        journal_block = server.on_block
        server.on_block = lambda job, outcome, worker: (answers.append((outcome, worker)),
                                                        journal_block(job, outcome, worker))  # fmt: skip
        client = await RawClient.connect(server.address)
        await client.login("site.lucky")
        share = grind(client)
        assert (await client.request("mining.submit", share))["result"] is True
        await wait_for(lambda: answers, WAIT)

        ((outcome, worker),) = answers
        (sent,) = pool.accepted  # what the pool was sent: nothing else met its difficulty
        job = pool.job
        coinbase = job.coinb1 + sent.extranonce1 + sent.extranonce2 + job.coinb2  # as the pool rebuilds it
        assert (worker, outcome.accepted, outcome.reason, outcome.block_hex) == ("site.lucky", True, "accepted", None)
        assert outcome.coinbase_hex == coinbase.hex()
        assert client.extranonce1 + bytes.fromhex(share[2]) in coinbase  # the rig's own extranonce
        header = bytes.fromhex(outcome.header_hex)
        assert hash_to_display(sha256d(header)) == outcome.hash
        root = fold_branch(sha256d(coinbase), job.merkle_branch)
        assert unpack_header(header) == (sent.version, job.prevhash, root, sent.ntime, job.nbits, sent.nonce)
        client.close()


async def test_when_every_pool_is_down_rigs_keep_the_last_job_until_it_is_too_old():
    async with daemons() as running:
        port = free_port()
        up = await start_upstream(port)
        running.append(up)
        max_age = 2.5
        proxy = await start_proxy(up.url, max_job_age_seconds=max_age, failover_seconds=0.5)
        running.append(proxy)
        async with rig(proxy, "site.rig1") as a:
            await mine_until((a,), lambda: accepted_upstream(up) >= 2)
            await up.stop()
            await wait_for(lambda: not proxy.source.health().up, WAIT)
            # the rig keeps mining the last job: its shares are taken, and refused for want of a pool
            await mine_until((a,), lambda: proxy.server.upstream_workers["site.rig1"].rejected["no_upstream"] >= 2)
            age = time.time() - proxy.source.health().last_job_time
            connected, withdrawn, detail = a.stats().connected, proxy.server.work_withdrawn, proxy.source.health().detail
            if age < max_age - 0.1:  # not yet withdrawn, unless a loaded machine got here after max_age
                assert connected and withdrawn is None and "no upstream pool (rigs keep the last job)" in detail

            await wait_for(lambda: proxy.server.work_withdrawn is not None, WAIT)
            await wait_for(lambda: not a.stats().connected, WAIT)  # let go: its own backup pools can take over

        up = await start_upstream(port)
        running.append(up)
        await wait_for(lambda: proxy.source.health().up and proxy.server.work_withdrawn is None, WAIT)
        async with rig(proxy, "site.rig1") as again:
            await mine_until((again,), lambda: accepted_upstream(up) >= 2)


@pytest.mark.parametrize("mode", ["garbage", "bad_notify", "silent", "closed"])
async def test_an_unusable_pool_is_skipped_for_the_next(mode):
    async with daemons() as running, FakePool(mode=mode) as fake:
        url = fake.url
        if mode == "closed":
            url = f"stratum+tcp://127.0.0.1:{free_port()}"
        up = await start_upstream()
        running.append(up)
        started = time.monotonic()
        proxy = await start_proxy(url, up.url, failover_seconds=1.0)  # waits (WAIT at most) for the next pool's job
        running.append(proxy)
        if mode == "silent":  # given up by its failover_seconds, no sooner
            assert time.monotonic() - started >= 1.0
        assert active_pool(proxy.source) == up.url
        assert proxy.source.pools[0].failures >= 1
        expected = {"garbage": "not_json", "bad_notify": "bad_message", "silent": "no usable session within 1 s",
                    "closed": "cannot connect"}[mode]  # fmt: skip
        assert expected in proxy.source.pools[0].last_error
        async with rig(proxy, "site.rig1") as a:
            await mine_until((a,), lambda: accepted_upstream(up) >= 2)


async def test_garbage_mid_session_fails_over_without_touching_the_rigs():
    async with daemons() as running, FakePool(mode="good") as fake:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(fake.url, up.url)
        running.append(proxy)
        async with rig(proxy, "site.rig1") as a:
            await mine_until((a,), lambda: len(fake.accepted) >= 3)  # the fake checks each share for real
            fake.send_raw(b'{"id":null,"method":"mining.notify","params":"garbage"}\n')
            await mine_until((a,), lambda: accepted_upstream(up) >= 3)
            assert a.stats().reconnects == 0 and a.stats().connected
        assert proxy.source.failovers == 1
        assert "bad_message" in proxy.source.pools[0].last_error


async def test_a_stalled_pool_is_left_after_stall_seconds():
    async with daemons() as running, FakePool(mode="stall") as fake:
        up = await start_upstream()
        running.append(up)
        started = time.monotonic()
        proxy = await start_proxy(fake.url, up.url, stall_seconds=1.0)
        running.append(proxy)
        assert active_pool(proxy.source) == fake.url
        async with rig(proxy, "site.rig1") as a:
            # left once stall_seconds (1 s) passed without a job, not before; the 15 s guard would
            # catch a stall judged by another setting (failback 30 s, the 120 s default)
            await mine_until((a,), lambda: active_pool(proxy.source) == up.url, timeout=15)
            assert time.monotonic() - started >= 1.0
            await mine_until((a,), lambda: accepted_upstream(up) >= 2)
            assert a.stats().reconnects == 0
        pool = proxy.source.pools[0]
        assert "stalled" in pool.last_error and pool.held_until > asyncio.get_running_loop().time()


async def test_a_pool_rejecting_everything_is_counted_per_rig_and_left():
    async with daemons() as running, FakePool(mode="reject") as fake:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(fake.url, up.url, max_consecutive_rejects=5)
        running.append(proxy)
        async with rig(proxy, "site.rig1") as a, rig(proxy, "site.rig2") as b:
            await mine_until((a, b), lambda: accepted_upstream(up) >= 3)
            assert a.stats().reconnects == b.stats().reconnects == 0
        ours = proxy.server.upstream_workers
        assert sum(s.rejected["low_difficulty"] for s in ours.values()) == 5  # the pool's reason, per rig
        assert fake.rejected >= 5 and not fake.accepted
        pool = proxy.source.pools[0]
        assert "rejected 5 shares in a row" in pool.last_error and pool.held_until > asyncio.get_running_loop().time() + 200


async def test_a_pool_with_too_small_an_extranonce2_is_refused_with_a_clear_reason():
    async with daemons() as running, FakePool(extranonce2_size=3) as fake:
        alone = UpstreamSource(upstream_config(fake.url, failover_seconds=1.0))
        proxy = await start_fleetd(fleetd_config(difficulty=1e-7), alone)
        running.append(proxy)
        await wait_for(lambda: alone.pools[0].failures >= 1, WAIT)
        health = alone.health()
        assert not health.up
        assert "extranonce2 too small: the pool offers 3 bytes, the rigs need prefix_size 2 + at least 2" in (
            health.detail
        )
        assert proxy.server.current_job is None


async def test_stratum_ssl_with_a_self_signed_pool(tmp_path):
    import ssl

    made = self_signed_cert(tmp_path)
    if made is None:
        pytest.skip("neither the cryptography package nor the openssl command is available to make a certificate")
    cert, key = made
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with daemons() as running, FakePool(tls=context) as fake:
        # Verification is on by default: the system's trust store does not know this pool.
        untrusted = UpstreamSource(upstream_config(fake.url, failover_seconds=1.0))
        proxy = await start_fleetd(fleetd_config(difficulty=1e-7), untrusted)
        running.append(proxy)
        await wait_for(lambda: untrusted.pools[0].failures >= 1, WAIT)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.pools[0].last_error
        await proxy.stop()

        proxy = await start_proxy(fake.url, tls_ca_file=str(cert))
        running.append(proxy)
        async with rig(proxy, "site.rig1") as a:
            await mine_until((a,), lambda: len(fake.accepted) >= 3)
        assert active_pool(proxy.source) == fake.url


async def test_reconnect_requests_are_followed_on_the_same_host_only_and_messages_kept():
    async with daemons() as running, FakePool(mode="good") as fake:
        up = await start_upstream()
        running.append(up)
        proxy = await start_proxy(fake.url)
        running.append(proxy)
        source: UpstreamSource = proxy.source
        async with rig(proxy, "site.rig1") as a:
            fake.send_raw(b'{"id":null,"method":"client.show_message","params":["maintenance at noon"]}\n')
            await wait_for(lambda: source.last_message == "maintenance at noon", WAIT)
            # elsewhere: refused (our rigs' work must not be sent anywhere a pool says); back to the same pool
            fake.send_raw(b'{"id":null,"method":"client.reconnect","params":["192.0.2.1","3333",0]}\n')
            await wait_for(lambda: len(fake.sessions) == 2 and source.health().up, WAIT)
            assert active_pool(source) == fake.url
            # same host, another port: followed
            fake.send_raw(b'{"id":null,"method":"client.reconnect","params":["127.0.0.1",%d,0]}\n' % up.port)
            await mine_until((a,), lambda: accepted_upstream(up) >= 2)
            assert active_pool(source) == up.url
            assert a.stats().reconnects == 0
