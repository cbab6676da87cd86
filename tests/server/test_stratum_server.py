"""fleetd's Stratum listener on loopback: real sockets, real shares checked by the C core."""

from __future__ import annotations

import asyncio
import json

import pytest

from fake_clock import FakeClock
from fleetd.chain.byteorder import HEADER_SIZE, hash_to_display
from fleetd.chain.hashes import sha256d
from fleetd.chain.serialize import parse_block
from fleetd.server.stratum import IDLE_CHECK_SECONDS
from server_support import (
    TINY_DIFFICULTY,
    RawClient,
    grind,
    grind_between,
    http_json,
    make_config,
    replace,
    scrape,
    start_fleetd,
    submit_params,
    wait_until,
)


async def test_login_gets_difficulty_and_a_job(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    methods = [n["method"] for n in client.notifications]
    assert methods.index("mining.set_difficulty") < methods.index("mining.notify")
    assert client.difficulty == pytest.approx(1e-6)
    assert client.job.job_id == fleetd.server.current_job.job_id
    assert len(client.extranonce1) == 4 and client.extranonce2_size == 8
    client.close()


async def test_valid_share_accepted_and_counted(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login("acct.rig1")
    reply = await client.request("mining.submit", grind(client))
    assert reply == {"id": reply["id"], "result": True, "error": None}
    stats = fleetd.server.workers["acct.rig1"]
    assert stats.accepted == 1 and stats.accepted_work == pytest.approx(1e-6)
    client.close()


async def test_every_reject_code_over_a_real_socket(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    # 25: submitting before subscribing
    reply = await client.request("mining.submit", ["acct.rig1", "00", "00" * 8, "00000000", "00000000"])
    assert reply["error"][0] == 25
    await client.login("acct.rig1")

    good = grind(client)
    assert (await client.request("mining.submit", good))["result"] is True
    assert (await client.request("mining.submit", good))["error"][:2] == [22, "Duplicate share"]
    low = grind(client, valid=False, extranonce2=b"\x01" * 8)
    assert (await client.request("mining.submit", low))["error"][0] == 23
    unknown = ["acct.rig1", "feedface", *good[2:]]
    assert (await client.request("mining.submit", unknown))["error"][0] == 21
    short_en2 = [*good[:2], "00" * 4, *good[3:]]
    assert (await client.request("mining.submit", short_en2))["error"][:2] == [20, "Wrong extranonce2 size"]
    future = submit_params(client, b"\x02" * 8, client.job.ntime + 3 * 7200 + 10**6, 1)
    assert (await client.request("mining.submit", future))["error"][0] == 20
    past = submit_params(client, b"\x02" * 8, client.job.ntime - 1, 1)
    assert (await client.request("mining.submit", past))["error"][0] == 20
    other_worker = ["acct.someone-else", *good[1:]]
    assert (await client.request("mining.submit", other_worker))["error"][0] == 24

    rejected = fleetd.server.workers["acct.rig1"].rejected
    assert rejected == {
        "duplicate": 1,
        "low_difficulty": 1,
        "unknown_job": 1,
        "bad_extranonce2_size": 1,
        "ntime_out_of_range": 2,
        "unauthorized": 1,  # a claimed worker counts against the one this connection proved
    }
    assert fleetd.server.pool.unattributed_rejects == {"not_subscribed": 1}  # no rig record for it
    assert "acct.someone-else" not in fleetd.server.workers
    client.close()


async def test_block_is_submitted_and_older_jobs_become_stale():
    # network difficulty equal to the share difficulty: the first valid share is a block
    running = await start_fleetd(make_config(network_difficulty=1e-6))
    try:
        server, answers = running.server, []
        journal_block = server.on_block
        server.on_block = lambda job, outcome, worker: (answers.append((job, outcome, worker)),
                                                        journal_block(job, outcome, worker))  # fmt: skip
        client = await RawClient.connect(running.stratum)
        await client.login("acct.lucky")
        first_job = client.job
        block_share = grind(client)
        assert (await client.request("mining.submit", block_share))["result"] is True
        await client.wait_for(lambda: client.job.job_id != first_job.job_id and client.job.clean)

        found = running.source.found_blocks
        assert [(b.height, b.worker) for b in found] == [(1, "acct.lucky")]
        assert hash_to_display(client.job.prevhash) == found[0].hash  # the next job builds on the block just found
        assert running.server.blocks_submitted == 1

        # what the journal is handed carries the block itself
        await wait_until(lambda: answers)
        ((job, outcome, worker),) = answers
        assert (job.job_id, worker) == (first_job.job_id, "acct.lucky")
        assert (outcome.accepted, outcome.hash, outcome.height) == (True, found[0].hash, 1)
        assert outcome.block_hex == found[0].raw.hex()
        header = bytes.fromhex(outcome.header_hex)
        assert header == found[0].raw[:HEADER_SIZE] and hash_to_display(sha256d(header)) == outcome.hash
        coinbase = parse_block(found[0].raw).transactions[0]
        assert outcome.coinbase_hex == coinbase.serialize().hex()
        assert client.extranonce1 + bytes.fromhex(block_share[2]) in coinbase.inputs[0].script_sig

        client.job = first_job  # a share for the previous block's job, sent after the new block
        late = grind(client, extranonce2=b"\x07" * 8)
        assert (await client.request("mining.submit", late))["error"][:2] == [21, "Stale job"]
        client.close()
    finally:
        await running.runner.cleanup()


async def test_concurrent_miners_all_served(fleetd):
    clients = [await RawClient.connect(fleetd.stratum) for _ in range(8)]
    await asyncio.gather(*(c.login(f"acct.rig{i}") for i, c in enumerate(clients)))
    assert len({c.extranonce1 for c in clients}) == 8  # unique per connection

    async def mine(client, count):
        for n in range(count):
            params = grind(client, extranonce2=n.to_bytes(8, "big"))
            assert (await client.request("mining.submit", params))["result"] is True

    await asyncio.gather(*(mine(c, 3) for c in clients))
    assert sum(fleetd.server.workers[f"acct.rig{i}"].accepted for i in range(8)) == 24
    for c in clients:
        c.close()


async def test_healthz_reports_source_and_connections(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    status, body = await http_json(fleetd.http, "/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert body["source"]["kind"] == "demo" and body["source"]["up"] is True
    assert body["stratum"]["connections"] == 1
    assert body["stratum"]["current_job"] == client.job.job_id
    client.close()


async def test_shutdown_asks_miners_to_reconnect():
    running = await start_fleetd(make_config())
    client = await RawClient.connect(running.stratum)
    await client.login()
    await running.runner.cleanup()
    await client.wait_for(lambda: any(n["method"] == "client.reconnect" for n in client.notifications))
    assert await client.closed()


# --- what rigs ask for: mining.suggest_difficulty and BIP310 minimum-difficulty ---------------


HOUR = 3600.0


@pytest.fixture
async def start_1024():
    """fleetd starting rigs at the example configuration's 1024: far beyond a CPU miner.

    It runs on a fake clock that only the test moves, and the demo chain's timed jobs are a
    day apart, so every job a rig gets within the hour a test moves through is one it caused.
    """
    config = make_config(start_difficulty=1024.0, max_difficulty=1e6)
    config = replace(config, source=replace(config.source, refresh_seconds=24 * HOUR, block_interval_seconds=24 * HOUR))
    running = await start_fleetd(config, clock=FakeClock())
    yield running
    await running.runner.cleanup()


def difficulties(client: RawClient) -> list[float]:
    return [n["params"][0] for n in client.notifications if n["method"] == "mining.set_difficulty"]


async def test_a_suggestion_before_the_first_job_is_its_difficulty(start_1024):
    client = await RawClient.connect(start_1024.stratum)
    await client.subscribe()
    assert (await client.request("mining.suggest_difficulty", [TINY_DIFFICULTY]))["result"] is True
    await client.login(subscribed=True)
    assert difficulties(client) == [TINY_DIFFICULTY]  # 1024 never went out
    assert (await client.request("mining.submit", grind(client)))["result"] is True
    assert start_1024.server.workers["acct.rig1"].accepted_work == pytest.approx(TINY_DIFFICULTY)
    client.close()


async def test_a_suggestion_after_the_first_job_is_sent_at_once_and_applies_to_it(start_1024):
    # A Bitaxe's order: subscribe, authorize, then suggest_difficulty.
    client = await RawClient.connect(start_1024.stratum)
    await client.login()
    first = client.job
    assert client.difficulty == 1024.0
    seen = len(client.notifications)
    assert (await client.request("mining.suggest_difficulty", [TINY_DIFFICULTY]))["result"] is True
    # Now, not with the next job (the clock stands still: none is due), and the same job again.
    assert await client.notified_after(seen) == ["mining.set_difficulty", "mining.notify"]
    assert client.difficulty == TINY_DIFFICULTY
    assert client.job.job_id == first.job_id and not client.job.clean
    assert (await client.request("mining.submit", grind(client)))["result"] is True  # judged at the suggestion
    assert start_1024.server.workers["acct.rig1"].difficulty == TINY_DIFFICULTY
    client.close()


async def test_a_suggestion_is_clamped_to_the_configured_range():
    running = await start_fleetd(make_config(min_difficulty=1.0, start_difficulty=1024.0, max_difficulty=1e6))
    try:
        client = await RawClient.connect(running.stratum)
        await client.login()
        for asked, told in ((1e-12, 1.0), (1e12, 1e6)):
            seen = len(client.notifications)
            await client.request("mining.suggest_difficulty", [asked])
            await client.notified_after(seen)
            assert client.difficulty == told
        client.close()
    finally:
        await running.runner.cleanup()


async def test_a_suggestion_outranks_a_vardiff_step_for_a_share_sent_before_it(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    (connection,) = fleetd.server.connections
    shares = [grind(client, extranonce2=n.to_bytes(8, "big")) for n in range(connection.core.vardiff.config.quick_shares)]
    for share in shares[:-1]:
        assert (await client.request("mining.submit", share))["result"] is True
    assert connection.core.vardiff.difficulty == TINY_DIFFICULTY
    # One read: the share that makes vardiff jump, then the rig's own suggestion.
    seen = len(client.notifications)
    suggest = {"id": 99, "method": "mining.suggest_difficulty", "params": [2 * TINY_DIFFICULTY]}
    submit = {"id": 98, "method": "mining.submit", "params": shares[-1]}
    await client.send_raw(json.dumps(submit).encode() + b"\n" + json.dumps(suggest).encode() + b"\n")
    await client.reply(99)
    await client.notified_after(seen)
    await client.request("mining.ping", [])  # everything the read caused has arrived
    assert client.difficulty == connection.core.session.difficulty == connection.core.vardiff.difficulty == 2 * TINY_DIFFICULTY
    client.close()


async def test_vardiff_never_takes_a_rig_under_its_suggestion(start_1024):
    client = await RawClient.connect(start_1024.stratum)
    await client.login()
    await client.request("mining.suggest_difficulty", [1.0])
    (connection,) = start_1024.server.connections
    clock = start_1024.clock
    await clock.advance(HOUR)  # an hour without a share: the idle loop retargets all along
    assert connection.core.vardiff.difficulty == 1.0 and connection.core.session.difficulty == 1.0


async def test_a_bip310_minimum_only_raises_the_difficulty(start_1024):
    async def first_difficulty(minimum: float) -> float:
        client = await RawClient.connect(start_1024.stratum)
        options = {"minimum-difficulty.value": minimum}
        assert (await client.request("mining.configure", [["minimum-difficulty"], options]))["result"]
        await client.login()
        client.close()
        return client.difficulty

    assert await first_difficulty(1e-3) == 1024.0  # a floor, not a request
    assert await first_difficulty(4096.0) == 4096.0


async def test_the_rig_difficulty_is_the_one_of_the_latest_job_sent(fleetd):
    client = await RawClient.connect(fleetd.stratum)
    await client.login()
    assert (await client.request("mining.submit", grind(client)))["result"] is True  # makes the rig's record
    server = fleetd.server
    rig = server.workers["acct.rig1"]
    assert rig.difficulty == client.difficulty == TINY_DIFFICULTY
    (connection,) = server.connections
    # A vardiff step goes out with the current job again, which puts it in force.
    seen = len(client.notifications)
    connection.core.session.set_difficulty(4 * TINY_DIFFICULTY)
    connection.flush()
    assert await client.notified_after(seen) == ["mining.set_difficulty", "mining.notify"]
    assert client.difficulty == rig.difficulty == 4 * TINY_DIFFICULTY
    job = server.current_job
    server.publish(replace(job, job_id=job.job_id + "b", clean_jobs=False))
    await client.wait_for(lambda: client.job.job_id == job.job_id + "b")
    assert client.difficulty == rig.difficulty == 4 * TINY_DIFFICULTY
    status, api = await http_json(fleetd.http, "/api/v1/rigs/acct.rig1")
    assert status == 200 and api["difficulty"] == 4 * TINY_DIFFICULTY
    samples, _ = await scrape(fleetd.http)
    assert samples[("fleetd_rig_difficulty", (("rig", "acct.rig1"),))] == 4 * TINY_DIFFICULTY
    client.close()


async def test_a_share_on_an_older_job_meeting_a_lowered_difficulty_is_credited_at_it():
    # cgminer and bmminer put a lowered difficulty on the work they already hold.
    running = await start_fleetd(make_config(start_difficulty=4 * TINY_DIFFICULTY))
    try:
        client = await RawClient.connect(running.stratum)
        await client.login()
        older = client.job
        running.server.publish(replace(running.server.current_job, job_id=older.job_id + "b", clean_jobs=False))
        await client.wait_for(lambda: client.job.job_id == older.job_id + "b")
        lowish = grind_between(client, older, TINY_DIFFICULTY, 4 * TINY_DIFFICULTY)
        assert (await client.request("mining.submit", lowish))["error"][0] == 23  # below the job's, none lower yet
        seen = len(client.notifications)
        assert (await client.request("mining.suggest_difficulty", [TINY_DIFFICULTY]))["result"] is True
        await client.notified_after(seen)
        assert (await client.request("mining.submit", lowish))["result"] is True
        rig = running.server.workers["acct.rig1"]
        assert rig.accepted == 1 and rig.accepted_work == pytest.approx(TINY_DIFFICULTY)
        full = grind_between(client, older, 4 * TINY_DIFFICULTY, 1e9, extranonce2=b"\x01" * 8)
        assert (await client.request("mining.submit", full))["result"] is True
        assert rig.accepted_work == pytest.approx(5 * TINY_DIFFICULTY)  # credited at the job's own
        below = grind_between(client, older, 1e-12, TINY_DIFFICULTY, extranonce2=b"\x02" * 8)
        assert (await client.request("mining.submit", below))["error"][0] == 23
        client.close()
    finally:
        await running.runner.cleanup()


async def test_an_idle_vardiff_drop_goes_out_at_once_with_the_current_job(start_1024):
    client = await RawClient.connect(start_1024.stratum)
    await client.login()
    first = client.job
    (connection,) = start_1024.server.connections
    seen = len(client.notifications)
    clock = start_1024.clock
    while connection.core.vardiff.difficulty == 1024.0 and clock.elapsed < HOUR:  # silent: no share at all
        await clock.advance(IDLE_CHECK_SECONDS)
    assert connection.core.vardiff.difficulty < 1024.0
    assert clock.elapsed == connection.core.vardiff.config.retarget_interval  # at the first retarget of the silence
    # No read from the rig is needed, and the job follows so firmware applies it now.
    assert (await client.notified_after(seen))[:2] == ["mining.set_difficulty", "mining.notify"]
    assert client.difficulty == connection.core.vardiff.difficulty
    assert client.job.job_id == first.job_id and not client.job.clean
    assert connection.core.session.difficulty_in_force == client.difficulty  # no share: no rig record yet
    client.close()
