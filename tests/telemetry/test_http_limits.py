"""What one HTTP client may cost the others: failed logins throttled per address (429 without
bcrypt, for a growing time), bad requests logged a few times per window with a summary, both
counted in /metrics; and `fleetd demo` served by the same listener as `fleetd serve`.

Everything goes over real loopback sockets; a second client comes from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import socket
import time

import aiohttp
import bcrypt

from fake_clock import FakeClock
from fleetd import app as fleetd_app
from fleetd import log as logging
from fleetd.config import HostPort
from fleetd.sim import demo
from fleetd.telemetry.listener import AUTH_KEY, GUARD_KEY, HttpGuard, HttpLimits
from http_support import HANG_GUARD_S, basic, raw, read_until_closed
from server_support import make_config, scrape

USER, PASSWORD = "prometheus", "right horse battery"
NUL_HEADER = b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n"
LIMITS = HttpLimits()  # the defaults: 5 failures, then 60 s, 120 s, ...


@contextlib.contextmanager
def json_log():
    """The log's JSON lines while inside, as a list of dicts read at the end."""
    lines, entries = io.StringIO(), []
    logging.configure("info", "json", stream=lines)
    try:
        yield entries
    finally:
        logging.configure("info", "json")
        entries.extend(json.loads(line) for line in lines.getvalue().splitlines())


@contextlib.asynccontextmanager
async def serve(tmp_path, clock, *, auth: bool = False):
    """fleetd's app on ``clock``, served as ``fleetd serve`` serves it; yields (base URL, app)."""
    config = make_config()
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        http = dataclasses.replace(config.http, web_config_file=str(tmp_path / "web.yml"))
        config = dataclasses.replace(config, http=http)
    app = fleetd_app.build_app(config, clock=clock)
    runner = await fleetd_app.start_http(app)
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", app
    finally:
        await runner.cleanup()


async def _get(base: str, path: str, headers=None, source: str = "127.0.0.1"):
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(base + path, headers=headers) as response:
            return response.status, dict(response.headers), await response.text()


def _auth_samples(samples) -> dict:
    return {
        (name, dict(labels).get("reason")): value
        for (name, labels), value in samples.items()
        if name.startswith(("fleetd_http_auth", "fleetd_http_banned"))
    }


# --- failed logins --------------------------------------------------------------------------


async def test_wrong_passwords_are_throttled_per_address_without_bcrypt(tmp_path):
    clock = FakeClock()
    limit = LIMITS.max_auth_failures
    with json_log() as logged:
        async with serve(tmp_path, clock, auth=True) as (base, app):
            auth = app[AUTH_KEY]
            wrong = basic(USER, "guess")
            # 20 guesses at once from one address: bcrypt runs for the first few only
            answers = await asyncio.gather(*(_get(base, "/metrics", wrong) for _ in range(20)))
            statuses = sorted(status for status, _, _ in answers)
            assert statuses == [401] * limit + [429] * (20 - limit)
            assert auth.bcrypt_checks == limit
            throttled = [(headers, json.loads(body)) for status, headers, body in answers if status == 429]
            assert all(headers["Content-Type"].startswith("application/json") for headers, _ in throttled)
            assert all(body["status"] == 429 and body["error"] == "Too Many Requests" for _, body in throttled)
            assert all(1 <= int(headers["Retry-After"]) <= LIMITS.ban_seconds for headers, _ in throttled)
            # banned now: even the right password is not checked (no free oracle for the remembered one)
            status, headers, _ = await _get(base, "/metrics", basic(USER, PASSWORD))
            assert status == 429 and int(headers["Retry-After"]) == LIMITS.ban_seconds
            assert auth.bcrypt_checks == limit
            # another client is not hurt: the right password gets in, a wrong one is a plain 401
            assert (await _get(base, "/api/v1/summary", basic(USER, PASSWORD), source="127.0.0.2"))[0] == 200
            assert (await _get(base, "/api/v1/summary", wrong, source="127.0.0.2"))[0] == 401
            # /healthz stays open to the banned address
            assert (await _get(base, "/healthz"))[0] in (200, 503)

            counts = app[GUARD_KEY].auth_failures
            assert counts["wrong_password"] == limit + 1 and counts["throttled"] == 20 - limit + 1
            assert (await _get(base, "/metrics"))[0] == 429  # no password, banned address: throttled too
            # /metrics, read by the other client, shows the failures by reason
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with aiohttp.ClientSession(connector=connector, headers=basic(USER, PASSWORD)) as session:
                async with session.get(base + "/metrics") as response:
                    text = await response.text()
            assert 'fleetd_http_auth_failures_total{reason="wrong_password"} 6.0' in text
            assert 'fleetd_http_auth_failures_total{reason="throttled"} 17.0' in text
            assert "fleetd_http_auth_bans_total 1.0" in text and "fleetd_http_banned_addresses 1.0" in text

            # the ban ends; the next one, five failures later, lasts twice as long
            clock.tick(LIMITS.ban_seconds)
            for _ in range(limit):
                assert (await _get(base, "/metrics", wrong))[0] == 401
            status, headers, _ = await _get(base, "/metrics", wrong)
            assert status == 429 and int(headers["Retry-After"]) == 2 * LIMITS.ban_seconds
            assert auth.bcrypt_checks == 2 * limit + 2  # + the other client's two logins
            # quiet for an hour after it ends: forgotten, the next ban is the first again
            clock.tick(2 * LIMITS.ban_seconds + LIMITS.ban_forget_seconds)
            assert (await _get(base, "/metrics", basic(USER, PASSWORD)))[0] == 200
            for _ in range(limit):
                assert (await _get(base, "/metrics", wrong))[0] == 401
            status, headers, _ = await _get(base, "/metrics", wrong)
            assert status == 429 and int(headers["Retry-After"]) == LIMITS.ban_seconds
    failed = [e for e in logged if e["event"] == "http_auth_failed" and e["peer"] == "127.0.0.1"]
    banned = [e for e in logged if e["event"] == "http_auth_banned"]
    # one line per window with failures: at the start, a window later, and an hour on
    assert len(failed) == 3, failed
    assert [e["seconds"] for e in banned] == [LIMITS.ban_seconds, 2 * LIMITS.ban_seconds, LIMITS.ban_seconds]
    assert all(USER not in json.dumps(e) and "guess" not in json.dumps(e) for e in failed + banned)


def test_the_guard_remembers_a_bounded_number_of_addresses():
    guard = HttpGuard(HttpLimits(max_addresses=100))
    for n in range(5_000):  # one failure each from many addresses (an IPv6 prefix, say)
        peer = f"2001:db8::{n:x}"
        guard.begin(peer, float(n))
        guard.end(peer, "wrong_password", float(n))
    assert guard.addresses() <= 100
    assert guard.auth_failures["wrong_password"] == 5_000
    guard.prune(1e9)
    assert guard.addresses() == 0


# --- bad requests -----------------------------------------------------------------------------


async def test_a_flood_of_bad_requests_writes_a_few_lines_and_a_summary(tmp_path):
    clock = FakeClock()
    with json_log() as logged:
        async with serve(tmp_path, clock) as (base, app):
            for _ in range(200):
                answer = await raw(base, NUL_HEADER)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.split(b" ")[1] == b"400" and json.loads(body)["status"] == 400
            samples, _ = await scrape(base)
            assert sum(v for (name, _), v in samples.items() if name == "fleetd_http_bad_requests_total") == 200
            assert samples[("fleetd_http_bad_requests_total", (("reason", "bad_http_message"),))] == 200
            await clock.advance(LIMITS.log_window)  # the window ends: what was held back is summarised
    bad = [e for e in logged if e["event"] == "http_bad_request"]
    assert len(bad) == LIMITS.bad_request_lines, len(bad)
    assert all(e["peer"] == "127.0.0.1" and e["reason"] == "bad_http_message" for e in bad)
    summaries = [e for e in logged if e["event"] == "log_suppressed" and e["suppressed_event"] == "http_bad_request"]
    assert [(e["peer"], e["suppressed"]) for e in summaries] == [("127.0.0.1", 200 - LIMITS.bad_request_lines)]


# --- the demo's listener ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_demo_closes_slow_clients_and_answers_bad_requests_in_json():
    port = _free_port()
    config = demo.demo_config(stratum=HostPort("127.0.0.1", 0), http=HostPort("127.0.0.1", port))
    config = dataclasses.replace(
        config,
        http=dataclasses.replace(config.http, request_timeout_seconds=0.5),
        rigs=dataclasses.replace(config.rigs, poll=False),
    )
    stop, out = asyncio.Event(), io.StringIO()
    task = asyncio.create_task(demo.run(config, rigs=1, faults=(), out=out, every=1.0, stop=stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while "fleetd demo:" not in out.getvalue():
                await asyncio.sleep(0.02)
        answer = await raw(base, NUL_HEADER)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"400" and b"Content-Type: application/json" in head, head
        assert json.loads(body)["status"] == 400

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")

        async def drip():  # a header that never ends, one byte every 50 ms
            with contextlib.suppress(ConnectionError):
                while not writer.is_closing():
                    writer.write(b"a")
                    await writer.drain()
                    await asyncio.sleep(0.05)

        started = time.monotonic()
        dripping = asyncio.create_task(drip())
        async with asyncio.timeout(HANG_GUARD_S):
            assert await read_until_closed(reader) == b""
        closed_after = time.monotonic() - started
        dripping.cancel()
        writer.close()
        assert closed_after < 3.0, closed_after
    finally:
        stop.set()
        assert await asyncio.wait_for(task, HANG_GUARD_S * 3) == 0
