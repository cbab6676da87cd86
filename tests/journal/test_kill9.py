"""A real `fleetd serve` killed with -9 while rigs mine over real sockets comes back with every
rig and its counters, to the last flush; a second fleetd on the same journal refuses to start."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import sqlite3
import sys

import aiohttp

from server_support import RawClient, grind, scrape

FLUSH_SECONDS = 0.2
WAIT = 60.0  # a hang guard: a loaded machine may take seconds to start Python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, journal, network_difficulty: float = 1e9) -> tuple:
    stratum_port, http_port = _free_port(), _free_port()
    config = tmp_path / f"fleetd-{stratum_port}.toml"
    config.write_text(
        f'[stratum]\nlisten = "127.0.0.1:{stratum_port}"\nmin_difficulty = 1e-9\nstart_difficulty = 1e-6\n'
        "max_difficulty = 1e-6\nshutdown_grace_seconds = 1.0\n"
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n[rigs]\npoll = false\n'
        f'[journal]\npath = "{journal}"\nflush_seconds = {FLUSH_SECONDS}\n'
        '[source]\nkind = "demo"\n'
        f'network_difficulty = {network_difficulty!r}\n[log]\nformat = "json"\n'
    )
    return config, stratum_port, f"http://127.0.0.1:{http_port}"


async def _start(config):
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetd", "serve", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def _until_healthy(process, base: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(WAIT):
        while True:
            assert process.returncode is None, (await process.stdout.read()).decode()
            try:
                async with http.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


async def _rigs(base: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(base + "/api/v1/rigs") as response:
        assert response.status == 200
        body = await response.json()
    return {rig["rig"]: rig for rig in body["rigs"]}


async def _mine(port: int, worker: str, shares: int) -> None:
    client = await RawClient.connect(("127.0.0.1", port))
    await client.login(worker)
    nonce = 0
    for _ in range(shares):
        params = grind(client, start_nonce=nonce)
        nonce = int(params[4], 16) + 1
        assert (await client.request("mining.submit", params))["result"] is True
    client.close()


async def _kill(process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)
        await process.wait()


async def test_kill_9_then_restart_continues_every_rig_from_the_last_flush(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    config, port, base = _config(tmp_path, journal)
    process = await _start(config)
    try:
        await _until_healthy(process, base)
        await asyncio.gather(*(_mine(port, f"acct.rig{i}", 5 + 3 * i) for i in range(3)))
        before = await _rigs(base)
        last_share = max(rig["last_share"] for rig in before.values())
        async with asyncio.timeout(WAIT):  # the flush that took the last share in
            while (await scrape(base))[0].get(("fleetd_journal_last_flush_timestamp_seconds", ()), 0) < last_share:
                await asyncio.sleep(FLUSH_SECONDS / 2)
        samples, _ = await scrape(base)
        assert samples[("fleetd_journal_up", ())] == 1 and samples[("fleetd_journal_file_bytes", ())] > 0
    finally:
        await _kill(process)
    assert process.returncode == -signal.SIGKILL

    config, port, base = _config(tmp_path, journal)  # new ports, the same journal
    process = await _start(config)
    try:
        await _until_healthy(process, base)
        after = await _rigs(base)  # before any rig reconnects
        assert set(after) == {"acct.rig0", "acct.rig1", "acct.rig2"}
        for name, rig in before.items():
            assert after[name]["shares"] == rig["shares"], name
            assert after[name]["hashes_total"] == rig["hashes_total"], name
        samples, _ = await scrape(base)  # Prometheus counters continue where they stopped
        accepted = [value for (name, labels), value in samples.items()
                    if name == "fleetd_rig_shares_total" and ("result", "accepted") in labels]  # fmt: skip
        assert sorted(accepted) == [5, 8, 11]
        await _mine(port, "acct.rig0", 2)
        assert (await _rigs(base))["acct.rig0"]["shares"]["accepted"] == 7
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)


async def test_a_second_fleetd_on_one_journal_refuses_to_start_naming_it(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    config, _, base = _config(tmp_path, journal)
    first = await _start(config)
    try:
        await _until_healthy(first, base)
        config2, _, _ = _config(tmp_path, journal)
        second = await _start(config2)
        output, _ = await asyncio.wait_for(second.communicate(), timeout=WAIT)
        assert second.returncode == 2
        text = output.decode()
        assert "journal_in_use" in text and str(journal) in text and f"pid {first.pid}" in text
    finally:
        await _kill(first)


async def _health(base: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(base + "/healthz") as response:
        return await response.json()


async def test_after_kill_9_the_demo_chain_continues_from_its_height_and_no_found_block_is_missing(tmp_path):
    journal = tmp_path / "journal.sqlite3"
    config, port, base = _config(tmp_path, journal, network_difficulty=2e-6)  # about one share in two is a block
    process = await _start(config)
    try:
        await _until_healthy(process, base)
        client = await RawClient.connect(("127.0.0.1", port))
        await client.login("acct.finder")
        nonce = 0
        async with asyncio.timeout(WAIT):
            while (await scrape(base))[0].get(("fleetd_blocks_found_total", ()), 0) < 3:
                params = grind(client, start_nonce=nonce)
                nonce = int(params[4], 16) + 1
                await client.request("mining.submit", params)  # a share on a job a block just ended is stale
        client.close()
        found = (await scrape(base))[0][("fleetd_blocks_found_total", ())]
        height = (await _health(base))["stratum"]["height"]
        async with asyncio.timeout(WAIT):  # a flush after the last block: its tip and rows are in
            while (await scrape(base))[0].get(("fleetd_journal_last_flush_timestamp_seconds", ()), 0) < (
                await _rigs(base)
            )["acct.finder"]["last_share"]:
                await asyncio.sleep(FLUSH_SECONDS / 2)
    finally:
        await _kill(process)
    with sqlite3.connect(journal) as db:  # every found block is a row, fsynced when the source answered
        rows = db.execute("SELECT hash, block_hex, header_hex FROM blocks WHERE accepted").fetchall()
    assert len(rows) == found
    for block_hash, block_hex, header_hex in rows:  # with the block as submitted, whose header is its hash
        assert block_hex.startswith(header_hex) and len(header_hex) == 160
        assert hashlib.sha256(hashlib.sha256(bytes.fromhex(header_hex)).digest()).digest()[::-1].hex() == block_hash

    config, port, base = _config(tmp_path, journal, network_difficulty=2e-6)
    process = await _start(config)
    try:
        await _until_healthy(process, base)
        assert height >= 4 and (await _health(base))["stratum"]["height"] >= height  # not height 1 again
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
