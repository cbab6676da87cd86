"""`fleetd serve` as an operator runs it: a real process, JSON logs, SIGTERM shuts it down cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys

import aiohttp

from server_support import RawClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_runs_and_stops_gracefully_on_sigterm(tmp_path):
    stratum_port, http_port = _free_port(), _free_port()
    config = tmp_path / "fleetd.toml"
    config.write_text(
        f'[stratum]\nlisten = "127.0.0.1:{stratum_port}"\nmin_difficulty = 1e-9\nstart_difficulty = 1e-6\n'
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n[source]\nkind = "demo"\nnetwork_difficulty = 1e9\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetd", "serve", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(60):  # a hang guard: a loaded machine may take seconds to start Python
                while not await _healthy(http, http_port):
                    await asyncio.sleep(0.05)

        client = await RawClient.connect(("127.0.0.1", stratum_port))
        await client.login("acct.rig1")
        process.send_signal(signal.SIGTERM)
        await client.wait_for(lambda: any(n["method"] == "client.reconnect" for n in client.notifications))
        assert await client.closed()
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    events = [json.loads(line) for line in (await process.stdout.read()).decode().splitlines()]
    names = [e["event"] for e in events]
    for expected in ("starting", "stratum_listening", "job_published", "miner_authorized", "stratum_stopped"):
        assert expected in names
    authorized = next(e for e in events if e["event"] == "miner_authorized")
    assert authorized["worker"] == "acct.rig1" and authorized["peer"].startswith("127.0.0.1:")
    assert all("timestamp" in e and "level" in e for e in events)


async def _refused(*args: str, cwd) -> str:
    """``fleetd serve`` with ``args``: must exit 2 before binding anything; its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetd", "serve", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:  # it served instead of refusing: stop it
            process.kill()
            await process.wait()
    assert process.returncode == 2, stderr.decode()
    return stderr.decode()


async def test_serve_refuses_a_bad_config_with_every_problem(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[stratum]\nlisten = "nowhere"\n[source]\nkind = "carrier-pigeon"\n')
    text = await _refused("--config", str(config), cwd=tmp_path)
    assert "2 problem(s)" in text
    assert "[stratum] listen = 'nowhere'" in text and "[source] kind = 'carrier-pigeon'" in text


async def test_serve_refuses_the_demo_chain_on_a_network_address(tmp_path):
    config = tmp_path / "site.toml"
    config.write_text(f'[stratum]\nlisten = "0.0.0.0:{_free_port()}"\n[source]\nkind = "demo"\n')
    for args, source in (((), "built-in defaults"), (("--config", str(config)), str(config))):
        lines = (await _refused(*args, cwd=tmp_path)).splitlines()
        assert lines[0] == f"{source}: 1 problem(s)"
        (refusal,) = lines[1:]  # one line: why, and which key to set
        assert "the demo chain is not Bitcoin" in refusal and "allow_demo_on_network = true" in refusal


async def _healthy(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False
